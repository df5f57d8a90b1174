//! A cluster on the sandbox machines: its inventory and state directory, `apply` and `plan`,
//! the real kubectl and etcdctl of the bundle, and the checks every applied cluster must pass.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use provisioner::apply::workflow::{self, Stage};

use crate::common::{self, bundle, host, text};
use crate::machines::Machines;

pub struct Cluster {
    pub ws: common::Workspace,
    pub bundle: PathBuf,
}

impl Cluster {
    pub fn new(m: &Machines, hosts: &[(&str, &str)], ssh_extra: &str, extra: &str) -> Cluster {
        let bundle = bundle::dir();
        let mut inv = format!(
            "[cluster]\nname = \"e2e\"\nkubernetes_version = \"{}\"\nbundle = \"{}\"\n\n\
             [kubelet]\nallow_cgroup_v1 = {}\n\n\
             [nodes]\ncontainers = true\n\n\
             [addons]\ndns_upstreams = []\n\n\
             [ssh]\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\n{ssh_extra}\n{extra}\n",
            bundle::kubernetes_version(&bundle),
            bundle.display(),
            host::cgroup_v1(),
            m.key(),
            m.known_hosts()
        );
        for (name, roles) in hosts {
            inv.push_str(&host_entry(m, name, roles));
        }
        Cluster {
            ws: common::Workspace::with_text(&inv),
            bundle,
        }
    }

    /// Points the inventory at another bundle directory, with its Kubernetes version.
    pub fn use_bundle(&mut self, dir: &Path) {
        let inv = self.ws.read_inventory();
        let version =
            |b: &Path| format!("kubernetes_version = \"{}\"", bundle::kubernetes_version(b));
        let inv = inv.replace(&version(&self.bundle), &version(dir)).replace(
            &format!("bundle = \"{}\"", self.bundle.display()),
            &format!("bundle = \"{}\"", dir.display()),
        );
        self.ws.write_inventory(&inv);
        self.bundle = dir.to_path_buf();
    }

    pub fn apply(&self) -> (bool, String, String) {
        self.apply_with(&[])
    }

    /// `apply` with more options.
    pub fn apply_with(&self, extra: &[&str]) -> (bool, String, String) {
        let mut args = vec!["apply", "--output", "json", "--gate-timeout", "30"];
        args.extend(extra);
        let o = self.ws.run(&args);
        (o.status.success(), text(&o.stdout), text(&o.stderr))
    }

    pub fn apply_ok(&self) -> Value {
        let (ok, out, err) = self.apply();
        assert!(ok, "apply failed:\n{err}\n{out}");
        let summary = out
            .lines()
            .rev()
            .find(|l| l.contains("\"summary\""))
            .unwrap_or_else(|| panic!("no summary in:\n{out}"));
        serde_json::from_str::<Value>(summary).unwrap()["summary"].clone()
    }

    pub fn plan(&self) -> Value {
        let o = self.ws.run(&["plan", "--output", "json"]);
        assert!(o.status.success(), "plan failed:\n{}", text(&o.stderr));
        announced_in_order(&text(&o.stderr), workflow::PLAN);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        let o = self.ws.run(&["kubeconfig"]);
        assert!(o.status.success());
        let path = self.ws.dir.path().join("admin.kubeconfig");
        std::fs::write(&path, &o.stdout).unwrap();
        path
    }

    /// The bundle's etcdctl at one etcd member, with the generated healthcheck certificate; to
    /// be given the etcdctl command.
    pub fn etcdctl(&self, m: &Machines, etcd_host: &str) -> Command {
        let pki = self.ws.state().join("pki");
        let mut etcdctl = Command::new(self.bundle.join("bin/etcdctl"));
        etcdctl
            .arg("--endpoints")
            .arg(format!("https://{}:2379", m.address(etcd_host)))
            .arg("--cacert")
            .arg(pki.join("etcd/ca.crt"))
            .arg("--cert")
            .arg(pki.join("etcd/healthcheck-client.crt"))
            .arg("--key")
            .arg(pki.join("etcd/healthcheck-client.key"));
        etcdctl
    }

    /// One inventory value changed: kube-proxy in nftables mode.
    pub fn switch_kube_proxy_to_nftables(&self) {
        let inv = self.ws.read_inventory();
        self.ws.write_inventory(&inv.replace(
            "[kubelet]",
            "[network]\nproxy_mode = \"nftables\"\n\n[kubelet]",
        ));
    }
}

/// kubectl at the cluster's version, from the bundle, with the admin kubeconfig
/// `provisioner kubeconfig` prints.
pub struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    pub fn new(c: &Cluster) -> Kubectl {
        Kubectl {
            bin: c.bundle.join("bin/kubectl"),
            kubeconfig: c.admin_kubeconfig(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd
    }

    /// Runs kubectl, which must succeed; its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        let o = self.command(args).output().unwrap();
        assert!(
            o.status.success(),
            "kubectl {}: {}{}",
            args.join(" "),
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    /// Runs kubectl with `input` on its standard input; its output, whatever its status.
    pub fn with_input(&self, args: &[&str], input: &str) -> std::process::Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// `wget -O- URL` in `pod` (the web image's busybox), bounded by `seconds`.
    pub fn wget(&self, pod: &str, url: &str, seconds: u32) -> std::process::Output {
        let seconds = seconds.to_string();
        self.command(&[
            "exec",
            pod,
            "--",
            // busybox's own `wget -T` crashes (exit 139) in this build; `timeout` bounds it.
            "/bin/busybox",
            "timeout",
            &seconds,
            "/bin/busybox",
            "wget",
            "-q",
            "-O",
            "-",
            url,
        ])
        .output()
        .unwrap()
    }

    /// [`wget`](Self::wget) until it succeeds, for up to 60 s (rules and endpoints take a
    /// moment); the page.
    pub fn wget_ok(&self, pod: &str, url: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let o = self.wget(pod, url, 10);
            if o.status.success() {
                return text(&o.stdout);
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "wget {url} from {pod}: {}",
                text(&o.stderr)
            );
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) {
        let o = self.with_input(&["apply", "-f", "-"], manifest);
        assert!(o.status.success(), "kubectl apply: {}", text(&o.stderr));
    }

    /// [`run`](Self::run) with `-o json`, parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.run(&a)).unwrap()
    }
}

pub const UNITS_CP: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "pod-routes",
];
pub const UNITS_WORKER: &[&str] = &[
    "containerd",
    "kubelet",
    "kube-proxy",
    "pod-routes",
    "kube-router",
];
/// An all-in-one host's units (pod-routes with no route: its pods' way out of the pod network).
pub const UNITS_ALL: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
    "pod-routes",
    "kube-router",
];

/// The inventory roles of the test machines: `cp-*` run etcd and the control plane, the rest
/// are workers.
/// A host's `[[hosts]]` entry, with its IPv6 address in a dual-stack sandbox.
pub fn host_entry(m: &Machines, name: &str, roles: &str) -> String {
    let ipv6 = m
        .address6(name)
        .map(|a| format!("internal_ipv6 = \"{a}\"\n"))
        .unwrap_or_default();
    format!(
        "[[hosts]]\nname = \"{name}\"\naddress = \"{}\"\n{ipv6}roles = [{roles}]\n\n",
        m.address(name)
    )
}

pub fn roles<'a>(names: &[&'a str]) -> Vec<(&'a str, &'static str)> {
    names
        .iter()
        .map(|n| {
            let roles = if n.starts_with("cp") {
                "\"etcd\", \"control-plane\""
            } else {
                "\"worker\""
            };
            (*n, roles)
        })
        .collect()
}

/// The units of each host: control-plane units on the `cp-*` hosts, worker units on the others.
pub fn unit_hosts<'a>(names: &[&'a str]) -> Vec<(&'a str, &'static [&'static str])> {
    names
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
        .collect()
}

/// The checks every applied cluster must pass, with the real tools: etcdctl with the generated
/// healthcheck certificate, kubectl with the admin kubeconfig, systemd on every host.
pub fn verify_cluster(
    m: &Machines,
    c: &Cluster,
    etcd_host: &str,
    hosts: &[(&str, &[&str])],
    workers: &[&str],
    members: usize,
) {
    let o = c
        .etcdctl(m, etcd_host)
        .args(["endpoint", "health", "--cluster"])
        .output()
        .unwrap();
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(
        o.status.success() && out.matches("is healthy").count() == members,
        "etcdctl:\n{out}"
    );

    let k = Kubectl::new(c);
    assert_eq!(k.run(&["get", "--raw", "/readyz"]).trim(), "ok");
    let nodes: Value = serde_json::from_str(&k.run(&["get", "--raw", "/api/v1/nodes"])).unwrap();
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
        if units.contains(&"etcd") {
            let who = m.ssh(
                h,
                "ps -o user= -C etcd; stat -c '%U:%G %a' /var/lib/etcd /var/lib/etcd/member",
            );
            assert_eq!(
                who.split_whitespace().collect::<Vec<_>>(),
                ["etcd", "etcd:etcd", "700", "etcd:etcd", "700"],
                "{h}: etcd must run as its own user and own its data directory alone"
            );
        }
        let keys = m.ssh(h, "find /etc/kubernetes /var/lib/kubelet -name '*.key' -printf '%m %p\\n' 2>/dev/null; true");
        assert!(!keys.is_empty());
        assert!(
            keys.lines().all(|l| l.starts_with("600 ")),
            "{h}: private keys must be 0600: {keys}"
        );
    }
}

/// The bundle's pause image: (reference, manifest digest).
pub fn pause_image(bundle: &Path) -> (String, String) {
    let image = bundle::image(bundle, "pause").expect("the test bundle carries a pause image");
    (
        image["reference"].as_str().unwrap().to_string(),
        image["digest"].as_str().unwrap().to_string(),
    )
}

/// The digest containerd (real, through its own ctr) lists an image under, if it has it.
pub fn image_digest(m: &Machines, host: &str, reference: &str) -> Option<String> {
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

/// The start time of each unit of each host (`host/unit`): what a restart changes.
pub fn timestamps(m: &Machines, hosts: &[(&str, &[&str])]) -> BTreeMap<String, String> {
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

/// Another apply writes, starts and restarts nothing.
pub fn no_op(c: &Cluster) {
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

/// The stages a command announced (`==> NAME` on stderr) are stages of its list in
/// workflow.rs, in the list's order: the list says what the command runs. A phase's header
/// stands for the `phases` stage.
pub fn announced_in_order(stderr: &str, list: &[Stage]) {
    let announced: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("==> "))
        .map(
            |name| match workflow::PHASES.iter().any(|p| p.name() == name) {
                true => Stage::Phases.name(),
                false => name,
            },
        )
        .collect();
    assert!(!announced.is_empty(), "no stage announced:\n{stderr}");
    let mut at = 0;
    for name in announced {
        match list[at..].iter().position(|s| s.name() == name) {
            Some(i) => at += i,
            None => panic!("stage `{name}` is not next in {list:?}:\n{stderr}"),
        }
    }
}
