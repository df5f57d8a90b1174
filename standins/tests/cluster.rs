//! End to end on this machine: the rendered all-in-one host at 127.0.0.1 with the real etcd
//! and containerd from the test bundle, the five stand-ins started with the rendered command
//! lines (files under STANDIN_ROOT), and the real kubectl as the client.
//!
//! Needs: the test bundle (/tmp/test-bundle or STANDIN_TEST_BUNDLE), kubectl, root (containerd),
//! and free ports 2379-2381, 6443, 10248, 10250, 10256, 10257, 10259.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    http_get, https_get, kubectl, kubectl_available, ports_free, wait_for, Proc, Rendered, NODE,
};

const PORTS: [u16; 9] = [2379, 2380, 2381, 6443, 10248, 10250, 10256, 10257, 10259];

fn start_etcd(r: &Rendered, bundle: &Path) -> Proc {
    let root = r.root();
    let data = r.dir().join("etcd-data");
    let args: Vec<String> = r
        .unit_args("etcd")
        .into_iter()
        // etcd 3.5.1 of the test bundle predates --tls-min-version (3.5.2+).
        .filter(|a| !a.starts_with("--tls-min-version"))
        .map(|a| {
            let (flag, value) = a.split_once('=').unwrap_or((&a, ""));
            if flag == "--data-dir" {
                format!("--data-dir={}", data.display())
            } else if value.starts_with('/') {
                format!(
                    "{flag}={}",
                    root.join(value.trim_start_matches('/')).display()
                )
            } else {
                a.clone()
            }
        })
        .collect();
    let mut cmd = Command::new(bundle.join("bin/etcd"));
    cmd.args(args);
    Proc::start("etcd", cmd, &r.dir())
}

fn start_standin(r: &Rendered, name: &str) -> Proc {
    let mut cmd = Command::new(common::standin(name));
    cmd.args(r.unit_args(name)).env("STANDIN_ROOT", r.root());
    Proc::start(name, cmd, &r.dir())
}

/// containerd 1.6 of the test bundle with its own root, state and socket (under the host tree,
/// where the kubelet's STANDIN_ROOT finds it) and the rendered CNI configuration.
fn start_containerd(r: &Rendered, bundle: &Path) -> Proc {
    let dir = r.dir().join("containerd");
    let sock_dir = r.host("/run/containerd");
    std::fs::create_dir_all(&sock_dir).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{s}/containerd.sock\"\n[ttrpc]\n  address = \"{s}/containerd.sock.ttrpc\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{b}\"\n  conf_dir = \"{c}\"\n",
            d = dir.display(),
            s = sock_dir.display(),
            b = bundle.join("cni").display(),
            c = r.host("/etc/cni/net.d").display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(bundle.join("bin/containerd"));
    cmd.arg("--config").arg(&config).env(
        "PATH",
        format!(
            "{}:{}",
            bundle.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    Proc::start("containerd", cmd, &r.dir())
}

fn node_ready(admin: &Path) -> Result<String, String> {
    let node = kubectl(admin, &["get", "--raw", &format!("/api/v1/nodes/{NODE}")])?;
    let v: serde_json::Value = serde_json::from_str(&node).map_err(|e| e.to_string())?;
    let ready = v["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .ok_or("no Ready condition")?;
    if ready["status"] == "True" {
        Ok(v["status"]["nodeInfo"]["containerRuntimeVersion"].to_string())
    } else {
        Err(format!("Ready={} {}", ready["status"], ready["message"]))
    }
}

fn binding(name: &str, role: &str, kind: &str, subject: &str) -> String {
    serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
    })
    .to_string()
}

#[test]
fn cluster_on_localhost() {
    let bundle = common::bundle();
    kubectl_available();
    assert!(
        Command::new("id")
            .arg("-u")
            .output()
            .unwrap()
            .stdout
            .starts_with(b"0"),
        "the cluster test runs containerd and needs root"
    );
    ports_free(&PORTS);
    // The real 1.35 kubelet refuses cgroup v1 hosts; the inventory's escape hatch renders
    // failCgroupV1: false for them (the startup test covers the refusal itself).
    let extra = if common::host_is_cgroup_v2() {
        ""
    } else {
        eprintln!("host is cgroup v1: rendering with [kubelet] allow_cgroup_v1 = true");
        "[kubelet]\nallow_cgroup_v1 = true\n"
    };
    let r = Rendered::with(extra);
    let admin = r.admin_kubeconfig();
    let ca = r.host("/etc/kubernetes/pki/ca.crt");
    eprintln!("cluster test working directory: {}", r.dir().display());

    // etcd, then the API server against it.
    let mut etcd = start_etcd(&r, &bundle);
    let mut api = start_standin(&r, "kube-apiserver");
    wait_for("kube-apiserver /readyz via kubectl", 60, || {
        etcd.assert_running();
        api.assert_running();
        kubectl(&admin, &["get", "--raw", "/readyz"])
    });
    assert_eq!(kubectl(&admin, &["get", "--raw", "/readyz"]).unwrap(), "ok");
    let version: serde_json::Value =
        serde_json::from_str(&kubectl(&admin, &["get", "--raw", "/version"]).unwrap()).unwrap();
    assert_eq!(version["gitVersion"], "v1.35.0");
    assert_eq!(version["standIn"], true);

    // kubeadm:cluster-admins has no rights until a binding gives them cluster-admin.
    let e = kubectl(&admin, &["get", "--raw", "/api/v1/nodes"]).unwrap_err();
    assert!(
        e.contains("Forbidden") && e.contains("kubernetes-admin"),
        "{e}"
    );
    let super_admin = r.super_admin_kubeconfig();
    for (file, body) in [
        (
            "admins.json",
            binding(
                "kubeadm:cluster-admins",
                "cluster-admin",
                "Group",
                "kubeadm:cluster-admins",
            ),
        ),
        (
            "kubelet-api.json",
            binding(
                "kube-apiserver-kubelet-client",
                "system:kubelet-api-admin",
                "User",
                "kube-apiserver-kubelet-client",
            ),
        ),
    ] {
        let f = r.dir().join(file);
        std::fs::write(&f, body).unwrap();
        // --validate=false: the stand-in serves no OpenAPI document.
        kubectl(
            &super_admin,
            &["create", "--validate=false", "-f", f.to_str().unwrap()],
        )
        .unwrap();
    }
    let list = kubectl(&admin, &["get", "--raw", "/api/v1/nodes"]).unwrap();
    assert!(list.contains("\"kind\":\"NodeList\""), "{list}");

    // A certificate from the cluster CA that is none of the expected identities: health paths
    // are open to it, nothing else.
    let (client_crt, client_key) = (
        r.host("/etc/kubernetes/pki/apiserver-kubelet-client.crt"),
        r.host("/etc/kubernetes/pki/apiserver-kubelet-client.key"),
    );
    let odd = Some((client_crt.as_path(), client_key.as_path()));
    assert_eq!(
        https_get(&ca, "127.0.0.1", 6443, "/livez", odd).unwrap().0,
        200
    );
    let (code, body) = https_get(&ca, "127.0.0.1", 6443, "/api/v1/nodes", odd).unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("unexpected client identity"), "{body}");
    // No client certificate at all: the TLS handshake is refused.
    assert!(https_get(&ca, "127.0.0.1", 6443, "/livez", None).is_err());

    // Controller manager, scheduler, kube-proxy: healthy once their API server round trips work.
    let mut cm = start_standin(&r, "kube-controller-manager");
    let mut sched = start_standin(&r, "kube-scheduler");
    let mut proxy = start_standin(&r, "kube-proxy");
    for (port, path) in [
        (10257, "/healthz"),
        (10259, "/livez"),
        (10259, "/readyz"),
        (10259, "/healthz"),
    ] {
        wait_for(&format!("https://127.0.0.1:{port}{path}"), 30, || {
            cm.assert_running();
            sched.assert_running();
            match https_get(&ca, "127.0.0.1", port, path, None)? {
                (200, b) if b == "ok" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let (code, _) = https_get(&ca, "127.0.0.1", 10257, "/metrics", None).unwrap();
    assert_eq!(code, 403, "only the health paths are open");
    wait_for("kube-proxy /healthz", 30, || {
        proxy.assert_running();
        match http_get(10256, "/healthz")? {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    for lease in ["kube-controller-manager", "kube-scheduler"] {
        let l = kubectl(
            &admin,
            &[
                "get",
                "--raw",
                &format!("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}"),
            ],
        )
        .unwrap();
        assert!(l.contains("holderIdentity"), "{l}");
    }

    // The kubelet with the real containerd: Ready only while containerd answers over CRI.
    let kubelet_config = r.host("/var/lib/kubelet/config.yaml");
    if !common::host_is_cgroup_v2() {
        // The real 1.35 kubelet refuses cgroup v1 hosts (startup test covers the refusal).
        eprintln!("host is cgroup v1: running the kubelet with failCgroupV1: false");
        let text = std::fs::read_to_string(&kubelet_config).unwrap();
        std::fs::write(
            &kubelet_config,
            text.replace("failCgroupV1: true", "failCgroupV1: false"),
        )
        .unwrap();
    }
    let mut kubelet = start_standin(&r, "kubelet");
    wait_for("node registered (NotReady without containerd)", 30, || {
        kubelet.assert_running();
        match node_ready(&admin) {
            Err(e) if e.contains("Ready=\"False\"") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        http_get(10248, "/healthz").unwrap().0,
        500,
        "kubelet healthz fails without a runtime"
    );
    let mut containerd = start_containerd(&r, &bundle);
    let runtime = wait_for("node Ready with containerd", 60, || {
        containerd.assert_running();
        kubelet.assert_running();
        node_ready(&admin)
    });
    assert!(runtime.contains("containerd://"), "{runtime}");
    assert_eq!(
        http_get(10248, "/healthz").unwrap(),
        (200, "ok".to_string())
    );

    // API server → kubelet: kubelet client certificate, kubelet serving certificate checked
    // against the cluster CA, SubjectAccessReview back to the API server.
    let health = kubectl(
        &admin,
        &[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{NODE}/proxy/healthz"),
        ],
    )
    .unwrap();
    assert_eq!(health, "ok");
    // The kubelet itself asks the API server about every caller: kube-proxy's certificate is
    // a valid client of the cluster CA, but nothing binds it to the kubelet API.
    let (proxy_crt, proxy_key) = (r.state_pki("kube-proxy.crt"), r.state_pki("kube-proxy.key"));
    let (code, body) = https_get(
        &ca,
        "127.0.0.1",
        10250,
        "/healthz",
        Some((&proxy_crt, &proxy_key)),
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("user=system:kube-proxy"), "{body}");
    // A serving certificate (no clientAuth usage) does not even get through the handshake.
    let serving = (
        r.host("/etc/kubernetes/pki/kube-controller-manager.crt"),
        r.host("/etc/kubernetes/pki/kube-controller-manager.key"),
    );
    assert!(https_get(
        &ca,
        "127.0.0.1",
        10250,
        "/healthz",
        Some((&serving.0, &serving.1))
    )
    .is_err());

    // Losing containerd makes the node NotReady again.
    containerd.terminate();
    wait_for(
        "node NotReady after containerd stops",
        30,
        || match node_ready(&admin) {
            Err(e) if e.contains("Ready=\"False\"") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // The audit log got the requests the policy records.
    let audit = std::fs::read_to_string(r.host("/var/log/kubernetes/audit.log")).unwrap();
    assert!(
        audit.contains("\"kind\":\"Event\"") && audit.contains("clusterrolebindings"),
        "{audit}"
    );

    // Without etcd the API server is alive but not ready.
    etcd.terminate();
    wait_for("/readyz to fail without etcd", 30, || {
        match https_get(&ca, "127.0.0.1", 6443, "/readyz", odd)? {
            (500, b) if b.contains("[-]etcd failed") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(
        https_get(&ca, "127.0.0.1", 6443, "/livez", odd).unwrap().0,
        200
    );

    // SIGTERM: every stand-in exits 0.
    for p in [&mut kubelet, &mut proxy, &mut sched, &mut cm, &mut api] {
        let st = p.terminate();
        assert!(
            st.success(),
            "{} exit status on SIGTERM: {st}\n{}",
            p.name,
            p.output()
        );
        assert!(
            p.output().lines().all(|l| l.contains("stand-in")),
            "{}",
            p.output()
        );
    }
}
