//! Workers in and out of a running cluster (1 control plane, workers 1 and 2, then 3), while a
//! probe asks etcd, the API and a NodePort Service every 200 ms. The pod network goes from host
//! routes to the VXLAN overlay first, with the workload answering; worker-3 then joins from
//! another subnet behind a router, which only the overlay can reach. A worker added at the top
//! of the inventory changes only itself and the other hosts' pod routes (every worker keeps its
//! pod range); a worker taken out of the inventory is refused until named with `--remove`, then
//! drained, its Node deleted and the host reset, with the workload still answering. The cluster
//! is dual-stack throughout; the smoke test and a dual-stack Service end it, on workers on both
//! subnets.

use serde_json::Value;

use crate::cluster::{host_entry, no_op, Cluster, Kubectl};
use crate::common::text;
use crate::dual_stack;
use crate::machines::{lock_sandbox, Machines};
use crate::probe::{assert_clean, Probe};
use crate::smoke::{smoke_test, web_behind_a_node_port};
use crate::step::step;

/// Each worker's pod range, as its CNI bridge configuration (which the bridge plugin allocates
/// pod addresses from) names it.
fn pod_ranges(m: &Machines, workers: &[&str]) -> Vec<(String, String)> {
    workers
        .iter()
        .map(|w| {
            let conf = m.ssh(w, "cat /etc/cni/net.d/10-bridge.conflist");
            let conf: Value = serde_json::from_str(&conf).unwrap();
            let subnet = conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]
                .as_str()
                .unwrap();
            (w.to_string(), subnet.to_string())
        })
        .collect()
}

fn node_names(c: &Cluster) -> Vec<String> {
    let nodes = Kubectl::new(c).json(&["get", "nodes"]);
    let mut names: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// (host, path) of every file the plan changes.
fn planned_files(plan: &Value) -> Vec<(String, String)> {
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            let host = h["host"].as_str().unwrap().to_string();
            h["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| (host.clone(), f["path"].as_str().unwrap().to_string()))
        })
        .collect()
}

fn inventory_host(m: &Machines, name: &str) -> String {
    host_entry(m, name, "\"worker\"")
}

pub fn run() {
    let _guard = lock_sandbox();
    let m = step("start the machines, worker-3 on another subnet", || {
        Machines::up_routed_dual_stack(&["cp-1", "worker-1", "worker-2", "worker-3"], &["worker-3"])
    });
    let c = step("write the inventory: cp-1, worker-1, worker-2", || {
        Cluster::new(
            &m,
            &[
                ("cp-1", "\"etcd\", \"control-plane\""),
                ("worker-1", "\"worker\""),
                ("worker-2", "\"worker\""),
            ],
            "",
            "[network]\npod_cidr = [\"10.200.0.0/16\", \"fd00:200::/56\"]\n\
             service_cidr = [\"10.32.0.0/24\", \"fd00:32::/112\"]\n",
        )
    });
    step("first apply", || {
        c.apply_ok();
    });
    let before = pod_ranges(&m, &["worker-1", "worker-2"]);
    let k = Kubectl::new(&c);
    let service = step(
        "a web Deployment with a PodDisruptionBudget behind a NodePort",
        || web_behind_a_node_port(&m, &c, &["worker-2", "worker-3"]),
    );

    step(
        "routes to vxlan: only the pod network changes, the Service keeps answering",
        || {
            let inv = c.ws.read_inventory();
            c.ws.write_inventory(&inv.replacen("[network]\n", "[network]\nmode = \"vxlan\"\n", 1));
            let plan = c.plan();
            for (host, path) in planned_files(&plan) {
                assert!(
                    path == "/etc/kubernetes/pod-routes.sh"
                        || (host.starts_with("worker")
                            && path == "/etc/cni/net.d/10-bridge.conflist"),
                    "the switch changes {host}:{path}"
                );
            }
            for h in plan["hosts"].as_array().unwrap() {
                let units: Vec<&Value> = h["units"].as_array().unwrap().iter().collect();
                assert_eq!(units.len(), 1, "{h}");
                assert_eq!(units[0]["unit"], "pod-routes", "{h}");
            }
            let probe = Probe::start_with_service(&m, &c, &["cp-1"], &service[..1]);
            c.apply_ok();
            assert_clean(probe.finish(), 1);
            for h in ["cp-1", "worker-1"] {
                let routes = m.ssh(h, "ip route");
                assert!(
                    routes.contains("dev pods.vxlan onlink"),
                    "{h} routes no pod range through the overlay:\n{routes}"
                );
            }
            no_op(&c);
        },
    );

    step(
        "worker-3 joins from the other subnet at the top of the inventory: only it and the pod routes change",
        || {
            let inv = c.ws.read_inventory();
            let (head, hosts) = inv.split_once("[[hosts]]").unwrap();
            c.ws.write_inventory(&format!(
                "{head}{}[[hosts]]{hosts}",
                inventory_host(&m, "worker-3")
            ));
            let plan = c.plan();
            for (host, path) in planned_files(&plan) {
                assert!(
                    host == "worker-3" || path == "/etc/kubernetes/pod-routes.sh",
                    "adding worker-3 changes {host}:{path}"
                );
            }
            for h in plan["hosts"].as_array().unwrap() {
                if h["host"] != "worker-3" {
                    for u in h["units"].as_array().unwrap() {
                        assert_eq!(u["unit"], "pod-routes", "{h}");
                    }
                }
            }
            let probe = Probe::start_with_service(&m, &c, &["cp-1"], &service[..1]);
            c.apply_ok();
            assert_clean(probe.finish(), 1);
            let after = pod_ranges(&m, &["worker-1", "worker-2", "worker-3"]);
            assert_eq!(after[..2], before[..], "a worker's pod range moved");
            assert!(!before.iter().any(|(_, r)| *r == after[2].1), "{after:?}");
            assert_eq!(node_names(&c), ["worker-1", "worker-2", "worker-3"]);
            no_op(&c);
        },
    );

    step(
        "worker-1 leaves the inventory: refused until named with --remove",
        || {
            let inv = c.ws.read_inventory();
            let without = inv.replace(&inventory_host(&m, "worker-1"), "");
            assert_ne!(without, inv, "worker-1's entry not found in:\n{inv}");
            c.ws.write_inventory(&without);
            let o = c.ws.run(&["plan"]);
            let out = text(&o.stdout) + &text(&o.stderr);
            assert!(out.contains("worker-1: remove"), "{out}");
            let (ok, _, err) = c.apply();
            assert!(!ok);
            assert!(
                err.contains("pass --remove worker-1") && err.contains("Nothing was changed"),
                "{err}"
            );
            let (ok, _, err) = c.apply_with(&["--remove", "cp-1"]);
            assert!(!ok);
            assert!(
                err.contains("--remove cp-1: cp-1 is still in the inventory"),
                "{err}"
            );
            assert_eq!(
                m.ssh("worker-1", "systemctl is-active kubelet").trim(),
                "active"
            );
        },
    );

    step(
        "apply --remove worker-1: drained, Node deleted, host reset, Service answering",
        || {
            let probe = Probe::start_with_service(&m, &c, &["cp-1"], &service);
            let (ok, out, err) = c.apply_with(&["--remove", "worker-1"]);
            let finished = probe.finish();
            assert!(ok, "{err}\n{out}");
            assert_clean(finished, 1);
            assert_eq!(node_names(&c), ["worker-2", "worker-3"]);
            k.run(&["rollout", "status", "deployment/web", "--timeout=180s"]);
            let pods = k.json(&["get", "pods", "-l", "app=web"]);
            for p in pods["items"].as_array().unwrap() {
                assert_ne!(p["spec"]["nodeName"], "worker-1", "{p}");
            }
            let left = m.ssh(
            "worker-1",
            "systemctl is-active kubelet containerd; ls /etc/kubernetes /var/lib/provisioner 2>&1; true",
        );
            assert!(!left.contains("\nactive"), "{left}");
            assert!(
                left.contains("No such file"),
                "worker-1 was not reset: {left}"
            );
            let overlay = m.ssh(
                "worker-1",
                "ip -o link show pods.vxlan 2>&1; ip rule; iptables-save | grep PROVISIONER; true",
            );
            assert!(
                overlay.contains("does not exist") && !overlay.contains("4789"),
                "worker-1's overlay outlived its reset:\n{overlay}"
            );
            let record = std::fs::read_to_string(c.ws.state().join("hosts.toml")).unwrap();
            assert!(!record.contains("worker-1"), "{record}");
            let w1_range = &before.iter().find(|(n, _)| n == "worker-1").unwrap().1;
            let routes = m.ssh("worker-2", "ip route");
            assert!(!routes.contains(w1_range.as_str()), "{routes}");
            let fdb = m.ssh("worker-2", "bridge fdb show dev pods.vxlan");
            assert!(!fdb.contains(&m.address("worker-1")), "{fdb}");
            no_op(&c);
        },
    );

    step("the smoke test's web Deployment replaces this one", || {
        // Its pods ignore SIGTERM: deleted with a one-second grace, not the Deployment's thirty.
        // Its ReplicaSet goes first, or the new Deployment would adopt it and roll from it.
        k.run(&["delete", "deployment", "web", "--cascade=orphan"]);
        k.run(&["delete", "replicaset", "-l", "app=web", "--cascade=orphan"]);
        k.run(&[
            "delete",
            "pods",
            "-l",
            "app=web",
            "--grace-period=1",
            "--wait=true",
        ]);
    });
    let pods = smoke_test(&m, &c, "cp-1", ["worker-2", "worker-3"]);
    step(
        "dual-stack: a Service answers on both families from the other subnet",
        || {
            let (client, _) = pods
                .iter()
                .find(|(_, n)| n == "worker-2")
                .expect("a web pod on worker-2");
            dual_stack::service_answers_on_both_families(&k, client);
        },
    );
}
