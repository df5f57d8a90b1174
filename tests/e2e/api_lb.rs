//! No single API endpoint: 3 control planes and a worker with `api.load_balancer =
//! "node-local"`. The worker's kubelet and kube-proxy reach the API servers through caddy's
//! layer4 proxy on 127.0.0.1:6444, which runs as no user of the host. With the API server of
//! cp-1 (the endpoint every node would otherwise use) stopped for longer than the Node monitor's
//! grace period, the worker stays Ready, its kubelet keeps renewing its lease and starts a new
//! pod, and the web Service answers throughout; once cp-1's API server is back, the balancer
//! sends to it again and apply has nothing to do.
//!
//! Then registry mirrors: with the test host's read-only registry named as registry.k8s.io's
//! mirror (with its own CA), a pod of an image only that mirror has, pulled with `Always`, runs
//! on the worker, which reaches no other registry; the registry taken out of the inventory has its
//! files removed, and the same pod no longer pulls.

use std::time::{Duration, Instant};

use crate::cluster::{no_op, verify_cluster, Cluster, Kubectl, UNITS_CP};
use crate::common::text;
use crate::machines::{lock_sandbox, Machines};
use crate::probe::{assert_clean, Probe};
use crate::registry::{host_address, Registry};
use crate::smoke::web_behind_a_node_port;
use crate::step::step;

/// How long cp-1's API server stays down: past the Node monitor's grace period (50 s), after
/// which a node whose kubelet cannot reach any API server is marked NotReady.
const OUTAGE: Duration = Duration::from_secs(70);

/// Lines of the balancer's journal on `host` that mention `address`.
fn balancer_log(m: &Machines, host: &str, address: &str) -> String {
    m.ssh(
        host,
        &format!("journalctl -u kube-api-lb --no-pager -o cat | grep -F '\"{address}\"' || true"),
    )
}

pub fn run() {
    let _guard = lock_sandbox();
    let names = ["cp-1", "cp-2", "cp-3", "worker-1"];
    let m = step("start the machines", || Machines::up(&names, false));
    let cp = "\"etcd\", \"control-plane\"";
    let c = step("write the inventory, node-local API load balancing", || {
        Cluster::new(
            &m,
            &[
                ("cp-1", cp),
                ("cp-2", cp),
                ("cp-3", cp),
                ("worker-1", "\"worker\""),
            ],
            "",
            "[api]\nload_balancer = \"node-local\"\n",
        )
    });
    step("plan names the balancer", || {
        let plan = c.plan();
        let worker = plan["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == "worker-1")
            .unwrap();
        assert!(
            worker["units"].to_string().contains("kube-api-lb"),
            "{worker}"
        );
        assert!(
            worker["files"]
                .to_string()
                .contains("/etc/kubernetes/kube-api-lb.json"),
            "{worker}"
        );
    });
    step("first apply", || {
        c.apply_ok();
    });
    // The only worker has no other worker's pod range to route to.
    let worker_units: &[&str] = &["containerd", "kubelet", "kube-proxy", "kube-api-lb"];
    step("verify the cluster", || {
        let hosts: Vec<(&str, &[&str])> = vec![
            ("cp-1", UNITS_CP),
            ("cp-2", UNITS_CP),
            ("cp-3", UNITS_CP),
            ("worker-1", worker_units),
        ];
        verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1"], 3);
    });
    step(
        "the worker's nodes use the balancer, which runs unprivileged",
        || {
            for file in ["kubelet.conf", "kube-proxy.conf"] {
                let conf = m.ssh("worker-1", &format!("cat /etc/kubernetes/{file}"));
                assert!(
                    conf.contains("server: https://127.0.0.1:6444"),
                    "{file}:\n{conf}"
                );
            }
            let cp_kubelet = m.ssh(
                "cp-1",
                "test ! -e /etc/systemd/system/kube-api-lb.service && echo none",
            );
            assert_eq!(
                cp_kubelet.trim(),
                "none",
                "a control-plane host runs no balancer"
            );
            let user = m.ssh("worker-1", "ps -o user= -C caddy");
            assert!(!user.trim().is_empty(), "caddy is not running");
            assert!(
                user.lines().all(|u| u.trim() != "root"),
                "the balancer runs as root: {user}"
            );
            let listening = m.ssh("worker-1", "ss -Htln 'sport = :6444'");
            assert!(
                listening.contains("127.0.0.1:6444") && listening.lines().count() == 1,
                "the balancer must listen on 127.0.0.1 only: {listening}"
            );
        },
    );
    let service = step("a web Deployment behind a NodePort", || {
        web_behind_a_node_port(&m, &c, &["worker-1"])
    });

    // The endpoint is cp-1: the operator's kubeconfig cannot reach the API while it is down.
    let cp2 = format!("https://{}:6443", m.address("cp-2"));
    let k = Kubectl::new(&c);
    let kubectl = |args: &[&str]| {
        let mut all = vec!["--server", cp2.as_str()];
        all.extend_from_slice(args);
        k.run(&all)
    };
    let cp1 = format!("{}:6443", m.address("cp-1"));
    step(
        "cp-1's API server stopped: the worker keeps the API and its workload",
        || {
            let probe = Probe::start_with_service(&m, &c, &["cp-2", "cp-3"], &service);
            m.ssh("cp-1", "systemctl stop kube-apiserver");
            let stopped = Instant::now();
            let renewed = || {
                kubectl(&[
                    "get",
                    "lease",
                    "-n",
                    "kube-node-lease",
                    "worker-1",
                    "-o",
                    "jsonpath={.spec.renewTime}",
                ])
            };
            let renewed_before = renewed();
            while stopped.elapsed() < OUTAGE {
                let ready = kubectl(&[
                    "get",
                    "node",
                    "worker-1",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ]);
                assert_eq!(
                    ready.trim(),
                    "True",
                    "worker-1 left Ready {} s after cp-1's API server stopped",
                    stopped.elapsed().as_secs()
                );
                std::thread::sleep(Duration::from_secs(5));
            }
            let renewed_after = renewed();
            assert!(
            renewed_after > renewed_before,
            "worker-1's kubelet stopped renewing its lease: {renewed_before} then {renewed_after}"
        );
            // A new pod: scheduled, started by the kubelet and reported Ready through the balancer.
            kubectl(&["scale", "deployment/web", "--replicas=3"]);
            kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
            assert_clean(probe.finish(), 100);
            let log = balancer_log(&m, "worker-1", &cp1);
            assert!(
                log.contains("host is down"),
                "the balancer never saw cp-1 go:\n{log}"
            );
        },
    );
    step(
        "cp-1's API server back: the balancer uses it again, apply has nothing to do",
        || {
            let before = balancer_log(&m, "worker-1", &cp1)
                .matches("host is up")
                .count();
            m.ssh("cp-1", "systemctl start kube-apiserver");
            let deadline = Instant::now() + Duration::from_secs(120);
            while balancer_log(&m, "worker-1", &cp1)
                .matches("host is up")
                .count()
                == before
            {
                assert!(
                    Instant::now() < deadline,
                    "the balancer did not see cp-1's API server come back"
                );
                std::thread::sleep(Duration::from_secs(1));
            }
            // Through the endpoint, cp-1: its API server is ready a moment after it listens.
            let ready = (0..60).any(|_| {
                let o = k.command(&["get", "--raw", "/readyz"]).output().unwrap();
                let ok = o.status.success() && text(&o.stdout).trim() == "ok";
                if !ok {
                    std::thread::sleep(Duration::from_secs(1));
                }
                ok
            });
            assert!(ready, "cp-1's API server did not become ready again");
            no_op(&c);
        },
    );
    mirrors(&m, &c);
}

/// A pod of `image` pulled with `Always` on worker-1; its name.
fn pull_always(k: &Kubectl, name: &str, image: &str) {
    k.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: worker-1
  containers:
  - name: web
    image: {image}
    imagePullPolicy: Always
"
    ));
}

fn mirrors(m: &Machines, c: &Cluster) {
    let k = Kubectl::new(c);
    let image = "registry.k8s.io/provisioner-test/web:mirrored";
    let hosts_toml = "/etc/containerd/certs.d/registry.k8s.io/hosts.toml";
    let registry = step(
        "the site's registry, read-only over HTTPS with its own CA",
        || {
            let web = c.bundle.join("images/web.tar");
            Registry::start(
                c.ws.dir.path(),
                &host_address(&m.address("worker-1")),
                &[("provisioner-test/web:mirrored", &web)],
            )
        },
    );
    let inventory = c.ws.read_inventory();
    step(
        "registry.k8s.io mirrored there: plan writes hosts.toml and its CA, restarts nothing",
        || {
            c.ws.write_inventory(&format!(
                "{inventory}\n[[registries]]\nname = \"registry.k8s.io\"\nmirrors = [\"{}\"]\n\
                 ca_file = \"{}\"\n",
                registry.url,
                registry.ca_file.display()
            ));
            let plan = c.plan();
            let hosts = plan["hosts"].as_array().unwrap();
            let worker = hosts.iter().find(|h| h["host"] == "worker-1").unwrap();
            let files = worker["files"].to_string();
            assert!(files.contains(hosts_toml), "{worker}");
            assert!(files.contains("registry.k8s.io/ca.crt"), "{worker}");
            assert_eq!(worker["units"], serde_json::json!([]), "{worker}");
            for h in hosts.iter().filter(|h| h["host"] != "worker-1") {
                assert_eq!(h["files"], serde_json::json!([]), "{h}");
            }
            c.apply_ok();
            no_op(c);
        },
    );
    step(
        "a pod pulling with Always from registry.k8s.io runs: the mirror served it",
        || {
            pull_always(&k, "mirrored", image);
            k.run(&[
                "wait",
                "pod/mirrored",
                "--for=condition=Ready",
                "--timeout=120s",
            ]);
            let log = registry.log();
            assert!(
                log.contains("/v2/provisioner-test/web/manifests/mirrored"),
                "the registry served no manifest:\n{log}"
            );
            k.run(&["delete", "pod/mirrored", "--wait=false"]);
        },
    );
    step(
        "the registry out of the inventory: its files removed, the pod no longer pulls",
        || {
            c.ws.write_inventory(&inventory);
            let plan = c.plan();
            assert!(
                plan.to_string().contains(hosts_toml),
                "plan does not remove {hosts_toml}: {plan}"
            );
            c.apply_ok();
            no_op(c);
            let left = m.ssh(
                "worker-1",
                "ls /etc/containerd/certs.d/registry.k8s.io/ 2>&1; true",
            );
            assert!(
                !left.contains("hosts.toml") && !left.contains("ca.crt"),
                "{left}"
            );
            pull_always(&k, "unmirrored", image);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let reason = k.run(&[
                    "get",
                    "pod/unmirrored",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
                ]);
                if reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the pod did not fail to pull without the mirror: {reason:?}"
                );
                std::thread::sleep(Duration::from_secs(2));
            }
            k.run(&["delete", "pod/unmirrored", "--wait=false"]);
        },
    );
}
