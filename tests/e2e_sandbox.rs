//! End to end on sandbox machines (systemd-nspawn containers booting Debian with real sshd and
//! systemd), running the real programs: Kubernetes, etcd, containerd, runc and the CNI plugins,
//! built from their upstream Go modules into the test bundle (tests/testbed/make-test-bundle.sh).
//! Needs root, systemd-nspawn and debootstrap (see .ci/run).

mod common;
#[path = "e2e/smoke.rs"]
mod smoke;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{provisioner, repo, text};
use serde_json::Value;

/// One sandbox at a time: the machines share a subnet and names.
static SANDBOX: Mutex<()> = Mutex::new(());

fn state_dir() -> PathBuf {
    PathBuf::from("/var/lib/provisioner-sandbox/test")
}

/// A running sandbox, torn down when dropped (also when the test fails).
struct Machines {
    info: Value,
}

impl Machines {
    fn up(names: &[&str], sudo_user: bool) -> Machines {
        assert!(
            is_root(),
            "the end-to-end tests need root (systemd-nspawn, network namespaces)"
        );
        let state = state_dir();
        let _ = provisioner(&["sandbox", "down", "--state-dir", state.to_str().unwrap()]);
        let names = names.join(",");
        let mut args = vec![
            "sandbox",
            "up",
            "--names",
            &names,
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ];
        if sudo_user {
            args.push("--sudo-user");
        }
        let o = provisioner(&args);
        assert!(
            o.status.success(),
            "sandbox up failed:\n{}",
            text(&o.stderr)
        );
        Machines {
            info: serde_json::from_slice(&o.stdout).expect("sandbox up --json"),
        }
    }

    fn address(&self, name: &str) -> String {
        self.info["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no machine {name}"))["address"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn key(&self) -> &str {
        self.info["key_path"].as_str().unwrap()
    }

    fn known_hosts(&self) -> &str {
        self.info["known_hosts_path"].as_str().unwrap()
    }

    /// Runs a command as root on a machine with OpenSSH's client.
    fn ssh(&self, name: &str, command: &str) -> String {
        let o = Command::new("ssh")
            .args([
                "-i",
                self.key(),
                "-o",
                &format!("UserKnownHostsFile={}", self.known_hosts()),
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
            ])
            .arg(format!("root@{}", self.address(name)))
            .arg(command)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ssh {name} `{command}`: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        let _ = provisioner(&[
            "sandbox",
            "down",
            "--state-dir",
            state_dir().to_str().unwrap(),
        ]);
    }
}

fn is_root() -> bool {
    text(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// The test bundle of real programs: `PROVISIONER_TEST_BUNDLE`, else built into the target
/// directory on first use (the programs themselves come from the build cache).
fn bundle() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROVISIONER_TEST_BUNDLE") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("test-bundle");
    if !dir.join("manifest.toml").exists() {
        let o = Command::new("bash")
            .arg(repo().join("tests/testbed/make-test-bundle.sh"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "make-test-bundle.sh failed:\n{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    dir
}

/// The Kubernetes version of the bundle, for the inventory.
fn bundle_kubernetes(dir: &Path) -> String {
    let m: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("manifest.toml")).unwrap()).unwrap();
    m["bundle"]["kubernetes_version"]
        .as_str()
        .unwrap()
        .to_string()
}

fn cgroup_v1_host() -> bool {
    text(
        &Command::new("stat")
            .args(["-fc", "%T", "/sys/fs/cgroup"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
        != "cgroup2fs"
}

struct Cluster {
    ws: common::Workspace,
    bundle: PathBuf,
}

impl Cluster {
    fn new(m: &Machines, hosts: &[(&str, &str)], ssh_extra: &str, extra: &str) -> Cluster {
        let bundle = bundle();
        let mut inv = format!(
            "[cluster]\nname = \"e2e\"\nkubernetes_version = \"{}\"\nbundle = \"{}\"\n\n\
             [kubelet]\nallow_cgroup_v1 = {}\n\n\
             [nodes]\ncontainers = true\n\n\
             [addons]\ndns_upstreams = []\n\n\
             [ssh]\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\n{ssh_extra}\n{extra}\n",
            bundle_kubernetes(&bundle),
            bundle.display(),
            cgroup_v1_host(),
            m.key(),
            m.known_hosts()
        );
        for (name, roles) in hosts {
            inv.push_str(&format!(
                "[[hosts]]\nname = \"{name}\"\naddress = \"{}\"\nroles = [{roles}]\n\n",
                m.address(name)
            ));
        }
        Cluster {
            ws: common::Workspace::with_text(&inv),
            bundle,
        }
    }

    fn apply(&self) -> (bool, String, String) {
        let o = self
            .ws
            .run(&["apply", "--output", "json", "--gate-timeout", "30"]);
        (o.status.success(), text(&o.stdout), text(&o.stderr))
    }

    fn apply_ok(&self) -> Value {
        let (ok, out, err) = self.apply();
        assert!(ok, "apply failed:\n{err}\n{out}");
        let summary = out
            .lines()
            .rev()
            .find(|l| l.contains("\"summary\""))
            .unwrap_or_else(|| panic!("no summary in:\n{out}"));
        serde_json::from_str::<Value>(summary).unwrap()["summary"].clone()
    }

    fn plan(&self) -> Value {
        let o = self.ws.run(&["plan", "--output", "json"]);
        assert!(o.status.success(), "plan failed:\n{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn admin_kubeconfig(&self) -> PathBuf {
        let o = self.ws.run(&["kubeconfig"]);
        assert!(o.status.success());
        let path = self.ws.dir.path().join("admin.kubeconfig");
        std::fs::write(&path, &o.stdout).unwrap();
        path
    }
}

/// The checks every applied cluster must pass, with the real tools: etcdctl with the generated
/// healthcheck certificate, kubectl with the admin kubeconfig, systemd on every host.
fn verify_cluster(
    m: &Machines,
    c: &Cluster,
    etcd_host: &str,
    hosts: &[(&str, &[&str])],
    workers: &[&str],
    members: usize,
) {
    let pki = c.ws.state().join("pki");
    let o = Command::new(c.bundle.join("bin/etcdctl"))
        .args([
            "--endpoints",
            &format!("https://{}:2379", m.address(etcd_host)),
        ])
        .args(["--cacert", pki.join("etcd/ca.crt").to_str().unwrap()])
        .args([
            "--cert",
            pki.join("etcd/healthcheck-client.crt").to_str().unwrap(),
        ])
        .args([
            "--key",
            pki.join("etcd/healthcheck-client.key").to_str().unwrap(),
        ])
        .args(["endpoint", "health", "--cluster"])
        .output()
        .unwrap();
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(
        o.status.success() && out.matches("is healthy").count() == members,
        "etcdctl:\n{out}"
    );

    // kubectl at the cluster's version, from the bundle.
    let kc = c.admin_kubeconfig();
    let kubectl = |args: &[&str]| {
        let o = Command::new(c.bundle.join("bin/kubectl"))
            .arg("--kubeconfig")
            .arg(&kc)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "kubectl {args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    assert_eq!(kubectl(&["get", "--raw", "/readyz"]).trim(), "ok");
    let nodes: Value = serde_json::from_str(&kubectl(&["get", "--raw", "/api/v1/nodes"])).unwrap();
    for worker in workers {
        let node = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["metadata"]["name"] == *worker);
        let ready = node
            .and_then(|n| n["status"]["conditions"].as_array())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
        assert!(ready, "{worker} is not Ready: {nodes}");
    }

    for worker in workers {
        let (reference, digest) = pause_image(&c.bundle);
        assert_eq!(
            image_digest(m, worker, &reference).as_deref(),
            Some(digest.as_str()),
            "{worker}: containerd must hold the bundle's pause image with the manifest's digest"
        );
        let config = m.ssh(worker, "cat /etc/containerd/config.toml");
        assert!(
            config.contains(&format!("'{reference}'"))
                || config.contains(&format!("\"{reference}\"")),
            "{worker}: containerd's sandbox image must be the bundled one:\n{config}"
        );
    }

    for (h, units) in hosts {
        let states = m.ssh(h, &format!("systemctl is-active {}", units.join(" ")));
        assert!(states.lines().all(|l| l == "active"), "{h}: {states}");
        let keys = m.ssh(h, "find /etc/kubernetes /var/lib/kubelet -name '*.key' -printf '%m %p\\n' 2>/dev/null; true");
        assert!(!keys.is_empty());
        assert!(
            keys.lines().all(|l| l.starts_with("600 ")),
            "{h}: private keys must be 0600: {keys}"
        );
    }
}

/// The bundle's pause image: (reference, manifest digest).
fn pause_image(bundle: &Path) -> (String, String) {
    let m: toml::Value =
        toml::from_str(&std::fs::read_to_string(bundle.join("manifest.toml")).unwrap()).unwrap();
    let image = m["images"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["name"].as_str() == Some("pause")))
        .expect("the test bundle carries a pause image");
    (
        image["reference"].as_str().unwrap().to_string(),
        image["digest"].as_str().unwrap().to_string(),
    )
}

/// The digest containerd (real, through its own ctr) lists an image under, if it has it.
fn image_digest(m: &Machines, host: &str, reference: &str) -> Option<String> {
    let out = m.ssh(
        host,
        &format!(
            "ctr --address /run/containerd/containerd.sock -n k8s.io images ls 'name=={reference}'"
        ),
    );
    out.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.first() == Some(&reference)).then(|| f[2].to_string())
    })
}

const UNITS_CP: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "pod-routes",
];
const UNITS_WORKER: &[&str] = &["containerd", "kubelet", "kube-proxy", "pod-routes"];
/// An all-in-one host's units (no other worker, so no pod routes).
const UNITS_ALL: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
];

fn timestamps(m: &Machines, hosts: &[(&str, &[&str])]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (h, units) in hosts {
        for u in *units {
            let ts = m.ssh(
                h,
                &format!("systemctl show -p ActiveEnterTimestampMonotonic --value {u}.service"),
            );
            out.insert(format!("{h}/{u}"), ts.trim().to_string());
        }
    }
    out
}

#[test]
fn three_control_planes_and_two_workers_come_up_and_stay_converged() {
    let _guard = SANDBOX.lock().unwrap_or_else(|e| e.into_inner());
    let names = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"];
    let m = Machines::up(&names, false);
    let cp = "\"etcd\", \"control-plane\"";
    let w = "\"worker\"";
    let c = Cluster::new(
        &m,
        &[
            ("cp-1", cp),
            ("cp-2", cp),
            ("cp-3", cp),
            ("worker-1", w),
            ("worker-2", w),
        ],
        "",
        "",
    );

    let first = c.apply_ok();
    assert!(first["files_written"].as_u64().unwrap() > 100, "{first}");

    let hosts: Vec<(&str, &[&str])> = names
        .iter()
        .map(|n| {
            (
                *n,
                if n.starts_with("cp") {
                    UNITS_CP
                } else {
                    UNITS_WORKER
                },
            )
        })
        .collect();
    verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1", "worker-2"], 3);
    smoke::smoke_test(&m, &c, "cp-1", ["worker-1", "worker-2"]);

    // A second apply writes nothing and restarts nothing.
    let before = timestamps(&m, &hosts);
    let second = c.apply_ok();
    assert_eq!(
        (
            second["files_written"].as_u64(),
            second["units_started"].as_u64(),
            second["units_restarted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{second}"
    );
    assert_eq!(
        timestamps(&m, &hosts),
        before,
        "a no-op apply restarted something"
    );

    // One file changed on one host: the plan shows exactly that, apply restarts only its reader.
    m.ssh(
        "worker-1",
        "echo '# drift' >> /var/lib/kube-proxy/config.yaml",
    );
    let plan = c.plan();
    let changes: Vec<(String, String)> = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["files"].as_array().unwrap().iter().map(move |f| {
                (
                    h["host"].as_str().unwrap().to_string(),
                    f["path"].as_str().unwrap().to_string(),
                )
            })
        })
        .collect();
    assert_eq!(
        changes,
        vec![(
            "worker-1".to_string(),
            "/var/lib/kube-proxy/config.yaml".to_string()
        )],
        "{plan}"
    );
    let third = c.apply_ok();
    assert_eq!(
        (
            third["files_written"].as_u64(),
            third["units_restarted"].as_u64()
        ),
        (Some(1), Some(1)),
        "{third}"
    );
    let after = timestamps(&m, &hosts);
    let restarted: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
    assert_eq!(
        restarted,
        vec!["worker-1/kube-proxy"],
        "only kube-proxy on worker-1 may restart"
    );

    // An image removed from containerd is imported again, and nothing restarts for it.
    let (pause, digest) = pause_image(&c.bundle);
    m.ssh(
        "worker-2",
        &format!("ctr --address /run/containerd/containerd.sock -n k8s.io images rm '{pause}'"),
    );
    assert_eq!(image_digest(&m, "worker-2", &pause), None);
    let plan = c.plan();
    let imports: Vec<(&str, usize)> = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap(),
                h["images"].as_array().unwrap().len(),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(imports, vec![("worker-2", 1)], "{plan}");
    let before = timestamps(&m, &hosts);
    let reimport = c.apply_ok();
    assert_eq!(
        (
            reimport["images_imported"].as_u64(),
            reimport["files_written"].as_u64(),
            reimport["units_restarted"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{reimport}"
    );
    assert_eq!(timestamps(&m, &hosts), before);
    assert_eq!(image_digest(&m, "worker-2", &pause), Some(digest));

    // One inventory value changed: both workers' kube-proxy config, nothing else.
    let inv = std::fs::read_to_string(c.ws.inventory()).unwrap();
    std::fs::write(
        c.ws.inventory(),
        inv.replace(
            "[kubelet]",
            "[network]\nproxy_mode = \"nftables\"\n\n[kubelet]",
        ),
    )
    .unwrap();
    let before = timestamps(&m, &hosts);
    let fourth = c.apply_ok();
    assert_eq!(fourth["units_restarted"].as_u64(), Some(2), "{fourth}");
    let after = timestamps(&m, &hosts);
    let restarted: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
    assert_eq!(
        restarted,
        vec!["worker-1/kube-proxy", "worker-2/kube-proxy"]
    );

    corefile_change_rolls_coredns_and_nothing_else(&m, &c, &hosts);

    lost_state_directory_is_refused_then_recovered(&m, &c, &names, &hosts);
}

/// A changed Corefile (another upstream) is a change of the addon manifest on the control-plane
/// hosts only; apply restarts no unit and rolls the CoreDNS Deployment, whose new pods answer.
fn corefile_change_rolls_coredns_and_nothing_else(
    m: &Machines,
    c: &Cluster,
    hosts: &[(&str, &[&str])],
) {
    let kc = c.admin_kubeconfig();
    let generation = || {
        let o = Command::new(c.bundle.join("bin/kubectl"))
            .arg("--kubeconfig")
            .arg(&kc)
            .args(["-n", "kube-system", "get", "deployment", "coredns"])
            .args(["-o", "jsonpath={.metadata.generation}"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout).trim().parse::<u64>().unwrap()
    };
    let before_generation = generation();
    let inv = std::fs::read_to_string(c.ws.inventory()).unwrap();
    std::fs::write(
        c.ws.inventory(),
        inv.replace("dns_upstreams = []", "dns_upstreams = [\"10.88.0.1\"]"),
    )
    .unwrap();
    let plan = c.plan();
    let changed: Vec<String> = plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["files"].as_array().unwrap().iter().map(move |f| {
                format!(
                    "{}:{}",
                    h["host"].as_str().unwrap(),
                    f["path"].as_str().unwrap()
                )
            })
        })
        .collect();
    assert_eq!(
        changed,
        ["cp-1", "cp-2", "cp-3"].map(|h| format!("{h}:/etc/kubernetes/addons/coredns.yaml")),
        "{plan}"
    );
    let before = timestamps(m, hosts);
    let applied = c.apply_ok();
    assert_eq!(applied["units_restarted"].as_u64(), Some(0), "{applied}");
    assert_eq!(timestamps(m, hosts), before);
    assert!(
        generation() > before_generation,
        "the Deployment was not rolled"
    );
}

/// Every managed file of every host with its hash, mode and mtime: what must not change.
fn host_files(m: &Machines, names: &[&str]) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|n| {
            let listing = m.ssh(
                n,
                "find /etc/kubernetes /etc/systemd/system /etc/containerd /etc/cni /var/lib/kubelet \
                 /var/lib/kube-proxy /usr/local/bin -type f -printf '%p %m %T@ ' -exec sha256sum {} \\; \
                 2>/dev/null | sort",
            );
            (n.to_string(), listing)
        })
        .collect()
}

/// The state directory is lost (a fresh clone, another laptop): plan and apply refuse with exit
/// code 5 and leave every host byte-identical; `state recover` rebuilds it from the hosts, the
/// plan is then empty, and the cluster served throughout.
fn lost_state_directory_is_refused_then_recovered(
    m: &Machines,
    c: &Cluster,
    names: &[&str],
    hosts: &[(&str, &[&str])],
) {
    let before = host_files(m, names);
    let state = c.ws.state();
    let lost = c.ws.dir.path().join("lost-state");
    std::fs::rename(&state, &lost).unwrap();
    for args in [
        vec!["plan"],
        vec!["apply", "--output", "json", "--gate-timeout", "30"],
    ] {
        let o = c.ws.run(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(5), "{args:?} must refuse:\n{err}");
        for want in [
            "cp-1: /etc/kubernetes/pki/ca.crt holds a cluster CA",
            "worker-2: /etc/kubernetes/pki/ca.crt",
            "encryption-at-rest key",
            "nothing was changed",
            "provisioner state recover",
        ] {
            assert!(
                err.contains(want),
                "{args:?}: `{want}` missing from:\n{err}"
            );
        }
        assert!(
            !state.join("pki").exists(),
            "{args:?} created a PKI beside a running cluster"
        );
    }
    assert_eq!(host_files(m, names), before, "a refused run changed a host");

    let o = c.ws.run(&["state", "recover"]);
    assert!(o.status.success(), "state recover:\n{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("super-admin"),
        "{}",
        text(&o.stdout)
    );
    for file in [
        "pki/ca.crt",
        "pki/ca.key",
        "pki/etcd/ca.key",
        "pki/front-proxy-ca.key",
        "pki/sa.key",
        "pki/hosts/cp-2/etcd-peer.key",
        "pki/hosts/worker-1/kubelet-server.crt",
        "secrets/encryption-key",
    ] {
        assert_eq!(
            std::fs::read(state.join(file)).unwrap(),
            std::fs::read(lost.join(file)).unwrap(),
            "{file} was not recovered as it was"
        );
    }
    let plan = c.plan();
    for h in plan["hosts"].as_array().unwrap() {
        for part in ["dirs", "files", "units", "images"] {
            assert_eq!(h[part].as_array().map(Vec::len), Some(0), "{plan}");
        }
    }
    let o = c.ws.run(&["state", "recover"]);
    assert!(
        !o.status.success() && text(&o.stderr).contains("never overwrites"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(host_files(m, names), before);
    verify_cluster(m, c, "cp-1", hosts, &["worker-1", "worker-2"], 3);
}

/// A copy of the bundle whose kube-proxy exits at once, with a manifest that matches it.
fn broken_bundle(good: &Path, into: &Path) -> PathBuf {
    let dir = into.join("broken-bundle");
    let o = Command::new("cp")
        .arg("-al")
        .arg(good)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let script = b"#!/bin/sh\necho 'kube-proxy: broken on purpose by the test' >&2\nexit 1\n";
    let bin = dir.join("bin/kube-proxy");
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(&bin, script).unwrap();
    let manifest = dir.join("manifest.toml");
    let mut m: toml::Value = toml::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    for f in m["files"].as_array_mut().unwrap() {
        if f["name"].as_str() == Some("kube-proxy") {
            f["sha256"] = toml::Value::String(provisioner::bundle::sha256_hex(script));
            f["size"] = toml::Value::Integer(script.len() as i64);
        }
    }
    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
    dir
}

#[test]
fn failures_are_reported_precisely_and_the_sudo_path_works() {
    let _guard = SANDBOX.lock().unwrap_or_else(|e| e.into_inner());
    let m = Machines::up(&["node-1"], true);
    let all = "\"etcd\", \"control-plane\", \"worker\"";
    let c = Cluster::new(&m, &[("node-1", all)], "user = \"kube\"\nsudo = true", "");

    // A host key that differs from known_hosts is refused before anything is sent.
    let real = std::fs::read_to_string(m.known_hosts()).unwrap();
    let other_key = c.ws.dir.path().join("other");
    let o = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            other_key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let fake_pub = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
    let fake_line = format!(
        "{} {}",
        m.address("node-1"),
        fake_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let fake_known = c.ws.dir.path().join("known_hosts.changed");
    std::fs::write(&fake_known, format!("{fake_line}\n")).unwrap();
    let inv = std::fs::read_to_string(c.ws.inventory()).unwrap();
    std::fs::write(
        c.ws.inventory(),
        inv.replace(m.known_hosts(), fake_known.to_str().unwrap()),
    )
    .unwrap();
    let (ok, _, err) = c.apply();
    assert!(
        !ok && err.contains("node-1") && err.contains("SHA256:"),
        "a changed host key must be refused:\n{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    std::fs::write(c.ws.inventory(), &inv).unwrap();
    assert_eq!(std::fs::read_to_string(m.known_hosts()).unwrap(), real);

    // An unreachable host fails the run, naming it, before any write.
    std::fs::write(
        c.ws.inventory(),
        format!(
            "{inv}\n[[hosts]]\nname = \"ghost\"\naddress = \"10.88.0.99\"\nroles = [\"worker\"]\n"
        ),
    )
    .unwrap();
    let (ok, _, err) = c.apply();
    assert!(
        !ok && err.contains("ghost") && err.contains("nothing was changed"),
        "{err}"
    );
    std::fs::write(c.ws.inventory(), &inv).unwrap();
    assert_eq!(
        m.ssh("node-1", "test -e /etc/kubernetes && echo yes || echo no")
            .trim(),
        "no"
    );

    // A unit that cannot start stops the run at its gate, with its journal.
    let broken = broken_bundle(&c.bundle, c.ws.dir.path());
    std::fs::write(
        c.ws.inventory(),
        inv.replace(c.bundle.to_str().unwrap(), broken.to_str().unwrap()),
    )
    .unwrap();
    let (ok, _, err) = c.apply();
    assert!(!ok, "apply must fail with a broken kube-proxy");
    assert!(
        err.contains("node-1: gate \"kube-proxy /healthz\" failed"),
        "{err}"
    );
    assert!(
        err.contains("broken on purpose"),
        "the journal tail is missing:\n{err}"
    );

    // Through the sudo user, with the good binaries carried in a signed archive made by
    // `bundle create`, everything comes up and converges.
    let archive = c.ws.dir.path().join("bundle.tar.zst");
    let key = c.ws.dir.path().join("signing");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    for args in [
        vec![
            "bundle",
            "create",
            "--from",
            c.bundle.to_str().unwrap(),
            "--out",
            archive.to_str().unwrap(),
        ],
        vec![
            "bundle",
            "sign",
            archive.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    ] {
        let o = common::provisioner(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    }
    std::fs::write(
        c.ws.inventory(),
        inv.replace(
            &format!("bundle = \"{}\"", c.bundle.display()),
            &format!(
                "bundle = \"{}\"\nbundle_public_key = \"{}\"",
                archive.display(),
                key.with_extension("pub").display()
            ),
        ),
    )
    .unwrap();
    let fixed = c.apply_ok();
    let acted =
        fixed["units_started"].as_u64().unwrap() + fixed["units_restarted"].as_u64().unwrap();
    assert_eq!(acted, 1, "only kube-proxy is (re)started: {fixed}");
    let again = c.apply_ok();
    assert_eq!(
        (
            again["files_written"].as_u64(),
            again["units_started"].as_u64(),
            again["units_restarted"].as_u64()
        ),
        (Some(0), Some(0), Some(0))
    );
    verify_cluster(&m, &c, "node-1", &[("node-1", UNITS_ALL)], &["node-1"], 1);

    one_run_at_a_time_per_cluster(&m, &c);
}

/// The lease on the hosts: another machine's live lease refuses apply with its holder's details;
/// a lease left by a process of this machine that is gone (`kill -9`) is taken over;
/// `--break-lease` takes any; a finished run leaves none.
fn one_run_at_a_time_per_cluster(m: &Machines, c: &Cluster) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lease = |machine: &str| {
        let line = format!(
            r#"{{"user":"alice","machine":"{}","pid":4194000,"command":"apply","since":{now},"token":"t"}}"#,
            machine.trim()
        );
        m.ssh(
            "node-1",
            &format!("printf '%s\\n' '{line}' > /var/lib/provisioner/lease"),
        );
    };
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "--gate-timeout", "30"];
        args.extend(extra);
        let o = c.ws.run(&args);
        (o.status.success(), text(&o.stderr))
    };
    lease("other-laptop");
    let (ok, err) = apply(&[]);
    assert!(!ok, "a live lease of another machine must refuse");
    assert!(
        err.contains("alice@other-laptop (process 4194000) running `apply`")
            && err.contains("--break-lease")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let (ok, err) = apply(&["--break-lease"]);
    assert!(
        ok && err.contains("taking over the lease: --break-lease"),
        "{err}"
    );
    lease(&here);
    let (ok, err) = apply(&[]);
    assert!(
        ok && err.contains("no longer runs on this machine"),
        "{err}"
    );
    assert_eq!(
        m.ssh(
            "node-1",
            "test -e /var/lib/provisioner/lease && echo held || echo free"
        )
        .trim(),
        "free",
        "a finished run gives the lease back"
    );
}

/// A background client opening a fresh TLS connection (a new curl each time) every 200 ms to
/// etcd (real, client certificate) and to the API server (`/readyz`, admin certificate), with the
/// credentials the state directory holds at that moment: the current trust bundle (the CA, and
/// during a rotation the new one too) and the current client certificate. A tick fails only when
/// no member answers (members restart one at a time; the cluster must not stop).
struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl Probe {
    fn start(m: &Machines, c: &Cluster, members: &[&str]) -> Probe {
        let pki = c.ws.state().join("pki");
        let addresses: Vec<String> = members.iter().map(|h| m.address(h)).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let scratch = tempfile::tempdir().unwrap();
            // Copies the credentials of the moment: `ca` plus the rotation's new CA if any.
            let snapshot = |ca: &str, cert: &str| {
                let read = |rel: &str| std::fs::read_to_string(pki.join(rel)).unwrap_or_default();
                let bundle = read(&format!("{ca}.crt")) + &read(&format!("rotation/{ca}.crt"));
                let p = |ext: &str| {
                    scratch
                        .path()
                        .join(format!("{}.{ext}", cert.replace('/', "-")))
                };
                std::fs::write(p("ca"), bundle).unwrap();
                std::fs::write(p("crt"), read(&format!("{cert}.crt"))).unwrap();
                std::fs::write(p("key"), read(&format!("{cert}.key"))).unwrap();
                (p("ca"), p("crt"), p("key"))
            };
            let answered = |port: u16, path: &str, ca: &str, cert: &str, want: &str| {
                // A certificate and its key are replaced one after the other: a pair read in
                // between does not match, so a failed round is retried once with a fresh read.
                (0..2).any(|_| {
                    let (ca, crt, key) = snapshot(ca, cert);
                    addresses.iter().any(|ip| {
                        Command::new("curl")
                            .args(["-sS", "--max-time", "2", "--cacert"])
                            .arg(&ca)
                            .arg("--cert")
                            .arg(&crt)
                            .arg("--key")
                            .arg(&key)
                            .arg(format!("https://{ip}:{port}{path}"))
                            .output()
                            .is_ok_and(|o| o.status.success() && text(&o.stdout).contains(want))
                    })
                })
            };
            let (mut ticks, mut failures) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                ticks += 1;
                let etcd = answered(
                    2379,
                    "/health",
                    "etcd/ca",
                    "etcd/healthcheck-client",
                    "true",
                );
                let api = answered(6443, "/readyz", "ca", "admin", "ok");
                for (ok, what) in [(etcd, "etcd"), (api, "kube-apiserver")] {
                    if !ok {
                        failures.push(format!("tick {ticks}: no {what} answered"));
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            (ticks, failures)
        });
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn certs_check(c: &Cluster) -> (i32, String) {
    let o = c.ws.run(&["certs", "check"]);
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout) + &text(&o.stderr),
    )
}

#[test]
fn certificates_are_checked_and_regenerated_while_the_cluster_keeps_serving() {
    let _guard = SANDBOX.lock().unwrap_or_else(|e| e.into_inner());
    let names = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"];
    let m = Machines::up(&names, false);
    let cp = "\"etcd\", \"control-plane\"";
    let hosts: Vec<(&str, &str)> = names
        .iter()
        .map(|n| {
            (
                *n,
                if n.starts_with("cp") {
                    cp
                } else {
                    "\"worker\""
                },
            )
        })
        .collect();
    let c = Cluster::new(&m, &hosts, "", "");
    c.apply_ok();
    let unit_hosts: Vec<(&str, &[&str])> = names
        .iter()
        .map(|n| {
            (
                *n,
                if n.starts_with("cp") {
                    UNITS_CP
                } else {
                    UNITS_WORKER
                },
            )
        })
        .collect();

    // All well: exit 0.
    let (code, out) = certs_check(&c);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0 expired, 0 expiring within 30 days, 0 drifted"),
        "{out}"
    );

    // A host's copy replaced by another certificate: drift, exit 4, naming host and file.
    m.ssh(
        "worker-1",
        "cp /var/lib/kubelet/pki/kubelet.crt /root/kubelet.crt.orig && \
         cp /etc/kubernetes/pki/ca.crt /var/lib/kubelet/pki/kubelet.crt",
    );
    let (code, out) = certs_check(&c);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("worker-1:/var/lib/kubelet/pki/kubelet.crt")
            && out.contains("DRIFT: differs from the state directory"),
        "{out}"
    );
    m.ssh(
        "worker-1",
        "cp /root/kubelet.crt.orig /var/lib/kubelet/pki/kubelet.crt",
    );
    assert_eq!(certs_check(&c).0, 0);

    // --dry-run changes nothing.
    let state_crt = c.ws.state().join("pki/apiserver.crt");
    let before = std::fs::read_to_string(&state_crt).unwrap();
    let o = c.ws.run(&["certs", "regenerate", "--all", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("dry run"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&state_crt).unwrap(), before);

    // A failing gate before the start: refused, nothing changed, and it says what to do.
    m.ssh("cp-2", "systemctl stop kube-scheduler");
    let o = c.ws.run(&["certs", "regenerate", "--cert", "admin"]);
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "regenerate must refuse an unhealthy cluster"
    );
    assert!(
        err.contains("cp-2") && err.contains("scheduler") && err.contains("pass --force"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&state_crt).unwrap(), before);
    m.ssh("cp-2", "systemctl start kube-scheduler");

    // Every leaf regenerated and rolled out while a client keeps connecting: no failed tick.
    let probe = Probe::start(&m, &c, &["cp-1", "cp-2", "cp-3"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let o =
        c.ws.run(&["certs", "regenerate", "--all", "--gate-timeout", "60"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (ticks, failures) = probe.finish();
    let err = text(&o.stderr);
    assert!(o.status.success(), "regenerate --all failed:\n{err}");
    assert!(ticks > 20, "the probe ran only {ticks} ticks");
    assert!(
        failures.is_empty(),
        "the cluster stopped serving during the rollout:\n{}\n{err}",
        failures.join("\n")
    );
    assert!(err.contains("backed up the state directory"), "{err}");
    assert!(err.contains("etcd snapshot saved on cp-1"), "{err}");
    let after = std::fs::read_to_string(&state_crt).unwrap();
    assert_ne!(after, before, "the API server certificate was not reissued");
    assert_eq!(
        m.ssh("cp-2", "cat /etc/kubernetes/pki/apiserver.crt")
            .trim(),
        after.trim(),
        "the host must serve the new certificate"
    );
    assert_eq!(certs_check(&c).0, 0);
    let again = c.apply_ok();
    assert_eq!(
        (
            again["files_written"].as_u64(),
            again["units_restarted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );

    // Expired certificates (a test hook issues them already expired): check says 3, and
    // regenerate brings every gate back.
    let o = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["certs", "regenerate", &c.ws.inventory(), "--all", "--force"])
        .args(["--gate-timeout", "10"])
        .env(provisioner::testhook::ISSUE_EXPIRED, "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "expired certificates cannot pass a gate"
    );
    assert!(
        text(&o.stderr).contains("the rollout stopped there"),
        "{}",
        text(&o.stderr)
    );
    let (code, out) = certs_check(&c);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("EXPIRED"), "{out}");
    let o =
        c.ws.run(&["certs", "regenerate", "--all", "--gate-timeout", "60"]);
    assert!(o.status.success(), "recovery failed:\n{}", text(&o.stderr));
    let (code, out) = certs_check(&c);
    assert_eq!(code, 0, "{out}");
    verify_cluster(&m, &c, "cp-1", &unit_hosts, &["worker-1", "worker-2"], 3);

    // Every CA rotated, interrupted after stage 1 by a test hook and resumed by the same command,
    // while the probe keeps connecting with the current trust bundle: no failed tick.
    let pki = c.ws.state().join("pki");
    let old_cas = c.ws.dir.path().join("old-cas.pem");
    let read = |rel: &str| std::fs::read_to_string(pki.join(rel)).unwrap();
    std::fs::write(&old_cas, read("ca.crt") + &read("etcd/ca.crt")).unwrap();
    let probe = Probe::start(&m, &c, &["cp-1", "cp-2", "cp-3"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let o = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["certs", "rotate-ca", &c.ws.inventory(), "--ca", "all"])
        .args(["--gate-timeout", "60"])
        .env(provisioner::testhook::STOP_AFTER_STAGE, "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(
        !o.status.success() && err.contains("stopped after stage 1"),
        "the test hook must stop the rotation after stage 1:\n{err}"
    );
    assert!(
        read("rotation.toml").contains("stage = 2"),
        "{}",
        read("rotation.toml")
    );
    let o =
        c.ws.run(&["certs", "rotate-ca", "--ca", "all", "--gate-timeout", "60"]);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let (ticks, failures) = probe.finish();
    let err = text(&o.stderr);
    assert!(o.status.success(), "rotate-ca failed:\n{err}");
    assert!(
        err.contains("resuming the rotation") && err.contains("stage 2 of 3"),
        "{err}"
    );
    assert!(ticks > 20, "the probe ran only {ticks} ticks");
    assert!(
        failures.is_empty(),
        "the cluster stopped serving during the rotation:\n{}\n{err}",
        failures.join("\n")
    );
    assert!(!pki.join("rotation.toml").exists() && !pki.join("rotation").exists());

    // A client trusting only the old CAs is refused, by the API server and by etcd.
    let (old_ca, admin, admin_key) = (
        old_cas.to_str().unwrap(),
        pki.join("admin.crt"),
        pki.join("admin.key"),
    );
    for url in [
        format!("https://{}:6443/readyz", m.address("cp-1")),
        format!("https://{}:2379/health", m.address("cp-2")),
    ] {
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert", old_ca, "--cert"])
            .arg(&admin)
            .arg("--key")
            .arg(&admin_key)
            .arg(&url)
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{url} must not be trusted through the old CA"
        );
    }

    // Every certificate on every host chains to a new CA (real openssl verify).
    let new_cas = c.ws.dir.path().join("new-cas.pem");
    std::fs::write(
        &new_cas,
        read("ca.crt") + &read("etcd/ca.crt") + &read("front-proxy-ca.crt"),
    )
    .unwrap();
    let old_text = std::fs::read_to_string(&old_cas).unwrap();
    assert!(
        !old_text.contains(read("ca.crt").trim()),
        "the cluster CA did not change"
    );
    let mut checked = 0;
    for h in names {
        let list = m.ssh(
            h,
            "find /etc/kubernetes/pki /var/lib/kubelet/pki -name '*.crt' 2>/dev/null; true",
        );
        for path in list.lines() {
            let local = c.ws.dir.path().join("host.crt");
            std::fs::write(&local, m.ssh(h, &format!("cat {path}"))).unwrap();
            let o = Command::new("openssl")
                .args([
                    "verify",
                    "-CAfile",
                    new_cas.to_str().unwrap(),
                    local.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{h}:{path} does not chain to a new CA: {}",
                text(&o.stderr)
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 30,
        "only {checked} certificates found on the hosts"
    );
    assert_eq!(certs_check(&c).0, 0);

    // The service-account key: stages 1 and 2, then a pause while old tokens may live, then
    // the old public key goes. The API server refuses to start with a signing key whose public
    // half it is not given, so each stage's pair is checked on every control-plane host.
    let count_keys = |h: &str| {
        m.ssh(h, "grep -c 'BEGIN PUBLIC KEY' /etc/kubernetes/pki/sa.pub")
            .trim()
            .to_string()
    };
    let old_sa_key = read("sa.key");
    let probe = Probe::start(&m, &c, &["cp-1", "cp-2", "cp-3"]);
    // A short token lifetime, recorded with stage 2: a resumed run cannot shorten it.
    let o = c.ws.run(&[
        "certs",
        "rotate-ca",
        "--ca",
        "service-account",
        "--token-lifetime",
        "20",
        "--gate-timeout",
        "60",
    ]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("stays trusted until"), "{err}");
    assert!(read("rotation.toml").contains("token_lifetime_secs = 20"));
    // Stage 2 was recorded before this point, so its 20 s end no later than 20 s from here.
    let paused = std::time::Instant::now();
    assert!(read("rotation.toml").contains("stage = 3"));
    for h in ["cp-1", "cp-2", "cp-3"] {
        assert_eq!(
            count_keys(h),
            "2",
            "{h}: both public keys during the rotation"
        );
    }
    assert_ne!(
        m.ssh("cp-1", "cat /etc/kubernetes/pki/sa.key").trim(),
        old_sa_key.trim(),
        "the new key signs after stage 2"
    );
    let resume = |lifetime: &str| {
        c.ws.run(&[
            "certs",
            "rotate-ca",
            "--ca",
            "service-account",
            "--token-lifetime",
            lifetime,
            "--gate-timeout",
            "60",
        ])
    };
    if paused.elapsed() < std::time::Duration::from_secs(15) {
        let o = resume("0");
        assert!(
            text(&o.stderr).contains("stays trusted until"),
            "the recorded lifetime must hold:\n{}",
            text(&o.stderr)
        );
    }
    std::thread::sleep(std::time::Duration::from_secs(21).saturating_sub(paused.elapsed()));
    let o = resume("0");
    let (ticks, failures) = probe.finish();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        ticks > 10 && failures.is_empty(),
        "{ticks} ticks: {failures:?}"
    );
    for h in ["cp-1", "cp-2", "cp-3"] {
        assert_eq!(
            count_keys(h),
            "1",
            "{h}: only the new public key at the end"
        );
    }
    assert_ne!(read("sa.key"), old_sa_key);
    assert!(!pki.join("rotation.toml").exists());
    let again = c.apply_ok();
    assert_eq!(
        (
            again["files_written"].as_u64(),
            again["units_restarted"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
}

/// Runs a command in a machine's network namespace from the test host (works with its link
/// down, when SSH does not).
fn in_netns(machine: &str, args: &[&str]) {
    let ns = format!("psbx-{machine}");
    let o = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{ns}: {args:?}: {}", text(&o.stderr));
}

/// Slows the traffic to a machine to 8 Mbit/s (on its link's hub end, where uploads leave for
/// it), so an upload takes seconds and can be interrupted: the 8 MB containerd shim takes about
/// 8 s, and the steps below interrupt it 2 s in.
fn throttle(machine: &str, on: bool) {
    let state: Value = serde_json::from_slice(
        &std::fs::read(state_dir().join("state.json")).expect("the sandbox's state.json"),
    )
    .unwrap();
    let index = state["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine)
        .and_then(|m| m["index"].as_u64())
        .unwrap_or_else(|| panic!("no machine {machine} in state.json"));
    let dev = format!("psbx-m{index}");
    let mut args = vec!["netns", "exec", "psbx-hub", "tc", "qdisc"];
    if on {
        args.extend([
            "replace", "dev", &dev, "root", "tbf", "rate", "8mbit", "burst", "64kb", "latency",
            "2s",
        ]);
    } else {
        args.extend(["del", "dev", &dev, "root"]);
    }
    let o = Command::new("ip").args(&args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
}

/// An apply running in the background, its stderr lines arriving on a channel.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(c: &Cluster) -> Running {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .args(["apply", &c.ws.inventory(), "--gate-timeout", "30"])
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while std::time::Instant::now() < deadline {
            match self.lines.recv_timeout(std::time::Duration::from_secs(1)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?} in:\n{}", self.seen.join("\n"));
    }

    /// `kill -9`, as an operator's crashed laptop or a killed CI job would stop it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for it to end; returns whether it succeeded, its stderr and how long it took.
    fn finish(mut self) -> (bool, String, std::time::Duration) {
        let t = std::time::Instant::now();
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.success(), self.seen.join("\n"), t.elapsed())
    }
}

/// The files `plan` would rewrite although they exist: a partial file at a target path shows
/// here (nothing but complete files, written by a rename, may ever be there).
fn rewritten(c: &Cluster) -> Vec<String> {
    let plan = c.plan();
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["action"] != "create")
                .map(move |f| format!("{}:{} ({})", h["host"], f["path"], f["action"]))
        })
        .collect()
}

fn no_op(c: &Cluster) {
    let again = c.apply_ok();
    assert_eq!(
        (
            again["files_written"].as_u64(),
            again["units_started"].as_u64(),
            again["units_restarted"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{again}"
    );
}

/// Faults while apply runs: `kill -9` during uploads and during rolling restarts, the SSH
/// session killed during a large upload, a host's link cut. No partial file ever sits at a
/// target path, the next apply converges, and a cut host is named within the documented time
/// while the rest of the cluster serves.
#[test]
fn faults_leave_no_partial_file_and_the_next_apply_converges() {
    let _guard = SANDBOX.lock().unwrap_or_else(|e| e.into_inner());
    let names = ["cp-1", "worker-1", "worker-2"];
    let m = Machines::up(&names, false);
    let c = Cluster::new(
        &m,
        &[
            ("cp-1", "\"etcd\", \"control-plane\""),
            ("worker-1", "\"worker\""),
            ("worker-2", "\"worker\""),
        ],
        "",
        "",
    );
    let hosts: Vec<(&str, &[&str])> = vec![
        ("cp-1", UNITS_CP),
        ("worker-1", UNITS_WORKER),
        ("worker-2", UNITS_WORKER),
    ];

    // kill -9 in the middle of the first uploads (worker-1's slowed down).
    throttle("worker-1", true);
    let mut run = Running::start(&c);
    run.wait_for("==> files");
    std::thread::sleep(std::time::Duration::from_secs(3));
    run.kill();
    throttle("worker-1", false);
    assert_eq!(
        rewritten(&c),
        Vec::<String>::new(),
        "a partial file sits at a target path"
    );
    c.apply_ok();
    no_op(&c);
    verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1", "worker-2"], 1);

    // kill -9 during rolling restarts: the next run takes the dead run's lease over and
    // finishes the restarts.
    let inv = std::fs::read_to_string(c.ws.inventory()).unwrap();
    std::fs::write(
        c.ws.inventory(),
        inv.replace(
            "[kubelet]",
            "[network]\nproxy_mode = \"nftables\"\n\n[kubelet]",
        ),
    )
    .unwrap();
    let mut run = Running::start(&c);
    run.wait_for("restart kube-proxy");
    run.kill();
    let (ok, out, err) = c.apply();
    assert!(ok, "{err}");
    assert!(
        format!("{out}{err}").contains("no longer runs on this machine"),
        "{out}{err}"
    );
    no_op(&c);

    // The SSH session killed during a large upload: the target is absent or whole.
    m.ssh("worker-1", "rm -f /usr/local/bin/containerd-shim-runc-v2");
    throttle("worker-1", true);
    let mut run = Running::start(&c);
    run.wait_for("==> files");
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Also ends the session running this command; its own failure is expected.
    let _ = Command::new("ssh")
        .args(["-i", m.key(), "-o"])
        .arg(format!("UserKnownHostsFile={}", m.known_hosts()))
        .args(["-o", "BatchMode=yes"])
        .arg(format!("root@{}", m.address("worker-1")))
        .arg("pkill -KILL -f '^sshd: root@notty'")
        .output();
    let (ok, err, _) = run.finish();
    throttle("worker-1", false);
    assert!(
        !ok && err.contains("worker-1"),
        "the upload must fail naming the host:\n{err}"
    );
    assert_eq!(
        rewritten(&c),
        Vec::<String>::new(),
        "a partial file sits at a target path"
    );
    c.apply_ok();
    no_op(&c);

    // worker-2's link cut mid-run: the run fails naming it within the documented time (three
    // missed keepalives of 15 s, then the reconnection attempts), the control plane serves
    // throughout, and once the link is back the next apply converges.
    m.ssh("worker-2", "rm -f /usr/local/bin/containerd-shim-runc-v2");
    throttle("worker-2", true);
    let mut run = Running::start(&c);
    run.wait_for("==> files");
    std::thread::sleep(std::time::Duration::from_secs(2));
    in_netns("worker-2", &["ip", "link", "set", "eth0", "down"]);
    let (ok, err, took) = run.finish();
    assert!(!ok && err.contains("worker-2"), "{err}");
    assert!(
        took < std::time::Duration::from_secs(180),
        "a cut host took {took:?} to be noticed"
    );
    let kubeconfig = c.admin_kubeconfig();
    let ready = Command::new(c.bundle.join("bin/kubectl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "--raw", "/readyz"])
        .output()
        .unwrap();
    assert_eq!(text(&ready.stdout).trim(), "ok", "{}", text(&ready.stderr));
    in_netns("worker-2", &["ip", "link", "set", "eth0", "up"]);
    throttle("worker-2", false);
    c.apply_ok();
    no_op(&c);
    verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1", "worker-2"], 1);
}

/// The write points a command reaches, as a run with the crash hook set to 0 lists them; of
/// each kind (a temporary file written, a journal staged, committed, applied, ...) the first
/// point, and the last point of the run.
fn points_of_each_kind(c: &Cluster, args: &[&str]) -> Vec<String> {
    let o =
        c.ws.run_env(args, &[(provisioner::testhook::CRASH_AT, "0")]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{args:?}:\n{err}");
    let mut kinds = std::collections::BTreeSet::new();
    let mut points = Vec::new();
    let mut last = None;
    for (n, what) in err
        .lines()
        .filter_map(|l| l.strip_prefix("write point ")?.split_once(": "))
    {
        if kinds.insert(what.to_string()) {
            points.push(n.to_string());
        }
        last = Some(n.to_string());
    }
    points.extend(last.filter(|l| !points.contains(l)));
    assert!(
        points.len() >= 5,
        "{args:?} reached too few write points:\n{err}"
    );
    points
}

/// `certs regenerate` and `certs rotate-ca` killed at their write points (the first of each kind
/// and the last; the test hook aborts the process there): the same command then resumes and
/// converges, the CA is never replaced outside the rotation, a rotation ends on the CA it made
/// before the crash, and the cluster serves at the end. Needs the `test-hooks` feature.
#[test]
fn regenerate_and_rotate_ca_resume_after_a_crash() {
    let _guard = SANDBOX.lock().unwrap_or_else(|e| e.into_inner());
    let m = Machines::up(&["node-1"], false);
    let all = "\"etcd\", \"control-plane\", \"worker\"";
    let c = Cluster::new(&m, &[("node-1", all)], "", "");
    c.apply_ok();
    let pki = c.ws.state().join("pki");
    let ca = || std::fs::read(pki.join("ca.crt")).unwrap();
    let crash = provisioner::testhook::CRASH_AT;

    // The admin credential restarts nothing, so each run is quick; the write points (backup,
    // journal) are those of any selection.
    let regenerate = ["certs", "regenerate", "--cert", "admin"];
    let before = ca();
    for n in points_of_each_kind(&c, &regenerate) {
        let o = c.ws.run_env(&regenerate, &[(crash, &n)]);
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("crashing at write point {n}")),
            "{err}"
        );
        let o = c.ws.run(&regenerate);
        assert!(
            o.status.success(),
            "resume after point {n}:\n{}",
            text(&o.stderr)
        );
        assert_eq!(ca(), before, "point {n}: the CA changed");
        no_op(&c);
    }

    let rotate = ["certs", "rotate-ca", "--ca", "cluster"];
    for n in points_of_each_kind(&c, &rotate) {
        let o = c.ws.run_env(&rotate, &[(crash, &n)]);
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("crashing at write point {n}")),
            "{err}"
        );
        // A new CA waiting in rotation/ must be the one the rotation ends on, unless the crash
        // came after the rotation had ended (what is left there is the current CA).
        let pending = std::fs::read(pki.join("rotation/ca.crt"))
            .ok()
            .filter(|p| *p != ca());
        let o = c.ws.run(&rotate);
        let err = text(&o.stderr);
        assert!(o.status.success(), "resume after point {n}:\n{err}");
        if let Some(new) = pending {
            assert_eq!(
                ca(),
                new,
                "point {n}: the rotation ended on another CA than it made"
            );
        }
        assert!(!pki.join("rotation.toml").exists() && !pki.join("rotation").exists());
        no_op(&c);
    }
    verify_cluster(&m, &c, "node-1", &[("node-1", UNITS_ALL)], &["node-1"], 1);
}
