//! Upgrades on 3 control planes and 2 workers, with the real programs of two Kubernetes minors
//! (the previous test bundle, then the test bundle): a cluster built at the previous minor and
//! running the smoke test's Deployment behind its NodePort Service (with a
//! PodDisruptionBudget) is upgraded while a probe asks etcd, the API and the Service every
//! 200 ms; not one tick may fail, and every node ends at the new version. A minor downgrade
//! is refused before any change; `rollback` returns every host to the previous version
//! (etcd, whose minor changed, stays); an upgrade whose kubelet cannot start switches that
//! worker back and stops, the cluster still serving.

use serde_json::Value;

use provisioner::apply::workflow;

use crate::cluster::{announced_in_order, roles, unit_hosts, verify_cluster, Cluster, Kubectl};
use crate::common::{bundle, text};
use crate::machines::{lock_sandbox, Machines};
use crate::probe::{assert_clean, Probe};
use crate::smoke;
use crate::step::step;

const CONTROL_PLANES: [&str; 3] = ["cp-1", "cp-2", "cp-3"];
const WORKERS: [&str; 2] = ["worker-1", "worker-2"];

/// Where `/usr/local/bin/PROGRAM` points on `host`.
fn link(m: &Machines, host: &str, program: &str) -> String {
    m.ssh(host, &format!("readlink /usr/local/bin/{program}"))
        .trim()
        .to_string()
}

fn version_dir(release: &str, version: &str, program: &str) -> String {
    format!("/usr/local/lib/provisioner/{release}/{version}/{program}")
}

/// Each worker's Node: (kubelet version, unschedulable).
fn nodes(c: &Cluster) -> Vec<(String, String, bool)> {
    let nodes = Kubectl::new(c).json(&["get", "nodes"]);
    nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap().to_string(),
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                n["spec"]["unschedulable"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

fn assert_nodes_at(c: &Cluster, version: &str) {
    let nodes = nodes(c);
    assert_eq!(nodes.len(), WORKERS.len(), "{nodes:?}");
    for (name, v, unschedulable) in nodes {
        assert_eq!(v, format!("v{version}"), "{name}");
        assert!(!unschedulable, "{name} is still cordoned");
    }
}

/// The web Deployment's pods that run, ready.
fn ready_web_pods(c: &Cluster) -> usize {
    let pods = Kubectl::new(c).json(&["get", "pods", "-l", "app=web"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count()
}

pub fn run() {
    let _guard = lock_sandbox();
    let names = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"];
    let m = step("start the machines", || Machines::up(&names, false));
    let (previous, current) = (bundle::previous_dir(), bundle::dir());
    let (old, new) = (
        bundle::kubernetes_version(&previous),
        bundle::kubernetes_version(&current),
    );
    let mut c = step("write the inventory at the previous minor", || {
        let mut c = Cluster::new(&m, &roles(&names), "", "");
        c.use_bundle(&previous);
        c
    });
    step("first apply, at the previous minor", || {
        c.apply_ok();
    });
    step("verify the cluster at the previous minor", || {
        verify_cluster(&m, &c, "cp-1", &unit_hosts(&names), &WORKERS, 3);
        assert_nodes_at(&c, &old);
    });
    step("smoke test at the previous minor", || {
        smoke::smoke_test(&m, &c, "cp-1", WORKERS)
    });
    let service = step("a PodDisruptionBudget for the web Deployment", || {
        Kubectl::new(&c).apply(
            "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: web}
",
        );
        let svc = Kubectl::new(&c).json(&["get", "service", "web-nodeport"]);
        let port = svc["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        WORKERS
            .iter()
            .map(|w| format!("{}:{port}", m.address(w)))
            .collect::<Vec<String>>()
    });

    step("plan shows the upgrade path", || {
        c.use_bundle(&current);
        let o = c.ws.run(&["plan"]);
        let out = text(&o.stdout) + &text(&o.stderr);
        assert!(o.status.success(), "{out}");
        for want in [
            format!("upgrade kubernetes {old} → {new} on 5 host(s)"),
            "upgrade etcd 3.6.8 → 3.7.0 on 3 host(s)".to_string(),
            "order: an etcd snapshot, then etcd one member at a time".to_string(),
            "etcd changes minor".to_string(),
            format!(
                "> /usr/local/bin/kubelet → {} (was {})",
                version_dir("kubernetes", &new, "kubelet"),
                version_dir("kubernetes", &old, "kubelet")
            ),
        ] {
            assert!(out.contains(&want), "plan lacks {want:?}:\n{out}");
        }
        let plan = c.plan();
        assert_eq!(plan["refused"], Value::Array(vec![]), "{plan}");
    });

    // A version older than the previous one (left by an earlier upgrade) goes with this one.
    let oldest = version_dir("kubernetes", "1.35.0", "kubelet");
    let oldest_dir = oldest.rsplit_once('/').unwrap().0;
    m.ssh(
        "worker-1",
        &format!("mkdir -p {oldest_dir} && touch {oldest}"),
    );

    step(
        "upgrade under a probe: etcd, API and Service never fail",
        || {
            let probe = Probe::start_with_service(&m, &c, &CONTROL_PLANES, &service);
            let (ok, out, err) = c.apply();
            // The probe is stopped and read before a failed apply is reported, not leaked.
            let finished = probe.finish();
            assert!(ok, "the upgrade failed:\n{err}\n{out}");
            assert_clean(finished, 100);
            for w in WORKERS {
                assert!(
                    out.contains(&format!("\"host\":\"{w}\",\"step\":\"cordon and drain\"")),
                    "{out}"
                );
                assert!(
                    out.contains(&format!("\"host\":\"{w}\",\"step\":\"uncordon\"")),
                    "{out}"
                );
            }
        },
    );

    step("every host runs the new version", || {
        assert_nodes_at(&c, &new);
        // The last worker's evicted pods may still be starting.
        Kubectl::new(&c).run(&["rollout", "status", "deployment/web", "--timeout=180s"]);
        assert_eq!(ready_web_pods(&c), 3);
        let server = Kubectl::new(&c).json(&["version"]);
        assert_eq!(server["serverVersion"]["gitVersion"], format!("v{new}"));
        for h in CONTROL_PLANES {
            assert_eq!(
                link(&m, h, "kube-apiserver"),
                version_dir("kubernetes", &new, "kube-apiserver")
            );
            assert_eq!(link(&m, h, "etcd"), version_dir("etcd", "3.7.0", "etcd"));
            // The previous version stays beside it, for a rollback.
            m.ssh(
                h,
                &format!(
                    "test -x {}",
                    version_dir("kubernetes", &old, "kube-apiserver")
                ),
            );
        }
        let o = c
            .etcdctl(&m, "cp-1")
            .args(["endpoint", "status", "--cluster", "-w", "json"])
            .output()
            .unwrap();
        let status: Value = serde_json::from_slice(&o.stdout).unwrap();
        let versions: Vec<&str> = status
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Status"]["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["3.7.0"; 3]);
        let snapshots = m.ssh("cp-1", "ls /var/lib/provisioner/backups");
        assert!(
            snapshots.contains("etcd-"),
            "no etcd snapshot before the upgrade: {snapshots}"
        );
        let kept = m.ssh("worker-1", "ls /usr/local/lib/provisioner/kubernetes");
        assert_eq!(kept, format!("{old}\n{new}\n"), "versions kept on worker-1");
        let record = std::fs::read_to_string(c.ws.state().join("versions.toml")).unwrap();
        assert!(
            record.contains(&format!("previous = \"{old}\"")),
            "{record}"
        );
        crate::cluster::no_op(&c);
    });

    step("a minor downgrade is refused before any change", || {
        c.use_bundle(&previous);
        let (ok, _, err) = c.apply();
        assert!(!ok);
        assert!(
            err.contains("apply does not take a cluster down a minor")
                && err.contains("etcd cannot go down a minor")
                && err.contains("Nothing was changed"),
            "{err}"
        );
        c.use_bundle(&current);
        assert_eq!(
            link(&m, "worker-1", "kubelet"),
            version_dir("kubernetes", &new, "kubelet")
        );
    });

    step(
        "rollback returns every host to the previous version",
        || {
            let dry = c.ws.run(&["rollback", "--dry-run"]);
            let said = text(&dry.stdout) + &text(&dry.stderr);
            assert!(dry.status.success(), "{said}");
            assert!(
                said.contains(&format!(
                    "> /usr/local/bin/kubelet → {} (was {})",
                    version_dir("kubernetes", &old, "kubelet"),
                    version_dir("kubernetes", &new, "kubelet")
                )) && said.contains("nothing was changed"),
                "{said}"
            );
            assert_eq!(
                link(&m, "worker-1", "kubelet"),
                version_dir("kubernetes", &new, "kubelet")
            );
            let probe = Probe::start_with_service(&m, &c, &CONTROL_PLANES, &service);
            let o = c.ws.run(&["rollback", "--gate-timeout", "60"]);
            assert_clean(probe.finish(), 20);
            let (out, err) = (text(&o.stdout), text(&o.stderr));
            assert!(o.status.success(), "rollback failed:\n{err}\n{out}");
            announced_in_order(&err, workflow::ROLLBACK);
            assert!(out.contains(&format!("kubernetes {new} → {old}")), "{out}");
            assert!(err.contains("etcd stays at 3.7.0"), "{err}");
            assert_nodes_at(&c, &old);
            for h in CONTROL_PLANES {
                assert_eq!(
                    link(&m, h, "kube-apiserver"),
                    version_dir("kubernetes", &old, "kube-apiserver")
                );
                assert_eq!(link(&m, h, "etcd"), version_dir("etcd", "3.7.0", "etcd"));
            }
            let again = c.ws.run(&["rollback"]);
            assert!(again.status.success());
            assert!(
                text(&again.stdout).contains("nothing to roll back"),
                "{}",
                text(&again.stdout)
            );
        },
    );

    step(
        "an upgrade whose kubelet cannot start switches that worker back and stops",
        || {
            let dir = tempfile::tempdir().unwrap();
            let broken = dir.path().join("bundle");
            bundle::with_broken_program(&current, &broken, "kubelet");
            c.use_bundle(&broken);
            let probe = Probe::start_with_service(&m, &c, &CONTROL_PLANES, &service);
            let (ok, out, err) = c.apply();
            assert_clean(probe.finish(), 20);
            assert!(!ok, "{out}");
            assert!(
                err.contains(&format!(
                    "switched back at once (worker-1: kubelet → {};",
                    version_dir("kubernetes", &old, "kubelet")
                )) && err.contains("and passes its gate again"),
                "{err}"
            );
            // worker-1 runs its previous kubelet again, Ready and schedulable; worker-2 was never
            // touched; the control plane had been upgraded before the workers.
            assert_eq!(
                m.ssh("worker-1", "systemctl is-active kubelet").trim(),
                "active"
            );
            for w in WORKERS {
                assert_eq!(
                    link(&m, w, "kubelet"),
                    version_dir("kubernetes", &old, "kubelet")
                );
            }
            assert_nodes_at(&c, &old);
            assert_eq!(
                link(&m, "cp-1", "kube-apiserver"),
                version_dir("kubernetes", &new, "kube-apiserver")
            );
            verify_cluster(&m, &c, "cp-1", &unit_hosts(&names), &WORKERS, 3);
            c.use_bundle(&current);
        },
    );
}
