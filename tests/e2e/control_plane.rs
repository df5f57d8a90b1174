//! The control plane grows while the cluster serves: 3 control-plane/etcd hosts and a worker
//! (behind its node-local API load balancer), then cp-4, then cp-5, each added by one apply
//! under the probe (etcd, the API and a NodePort Service every 200 ms). Each new etcd member
//! joins as a learner and is promoted, so etcd has 4 then 5 voting members, all healthy; the API
//! server certificate is reissued to name the new host, whose API server answers with it; the
//! worker's balancer sends to the new API server too; and the next apply has nothing to do.
//! Two new etcd members at once are refused before anything changes. Then cp-4 leaves: refused
//! while the members that stay have no quorum, then its member is removed before the host is
//! reset, with the probe answered throughout and 4 healthy members left.

use serde_json::Value;

use crate::cluster::{no_op, Cluster, Kubectl};
use crate::common::text;
use crate::machines::{lock_sandbox, Machines};
use crate::probe::{assert_clean, Probe};
use crate::smoke::web_behind_a_node_port;
use crate::step::step;

const CP: &str = "\"etcd\", \"control-plane\"";

fn inventory_host(m: &Machines, name: &str) -> String {
    format!(
        "[[hosts]]\nname = \"{name}\"\naddress = \"{}\"\nroles = [{CP}]\n\n",
        m.address(name)
    )
}

/// (name, is a learner) of every etcd member, asked on `via`.
fn etcd_members(m: &Machines, c: &Cluster, via: &str) -> Vec<(String, bool)> {
    let o = c
        .etcdctl(m, via)
        .args(["member", "list", "-w", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut members: Vec<(String, bool)> = list["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["isLearner"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    members.sort();
    members
}

fn assert_etcd_healthy(m: &Machines, c: &Cluster, names: &[&str]) {
    let want: Vec<(String, bool)> = names.iter().map(|n| (n.to_string(), false)).collect();
    assert_eq!(etcd_members(m, c, "cp-1"), want, "voting members");
    let o = c
        .etcdctl(m, "cp-1")
        .args(["endpoint", "health", "--cluster"])
        .output()
        .unwrap();
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(
        o.status.success() && out.matches("is healthy").count() == names.len(),
        "{out}"
    );
}

/// Adds `name` to the inventory and applies under the probe, which must see no failed tick.
fn add_control_plane(m: &Machines, c: &Cluster, name: &str, service: &[String]) {
    let inv = c.ws.read_inventory();
    c.ws.write_inventory(&format!("{inv}\n{}", inventory_host(m, name)));
    let probe = Probe::start_with_service(m, c, &["cp-1", "cp-2", "cp-3"], service);
    let (ok, out, err) = c.apply();
    let (ticks, failures) = probe.finish();
    assert!(ok, "{err}\n{out}");
    assert!(
        err.contains("reissued apiserver for the new control-plane host(s)"),
        "{err}"
    );
    assert!(ticks > 20, "the probe ran only {ticks} ticks");
    if !failures.is_empty() {
        // What etcd and the run said meanwhile, to tell an election from a slow member.
        let mut journals = String::new();
        for h in ["cp-1", "cp-2", "cp-3", "cp-4", "cp-5"] {
            let j = m.ssh(
                h,
                "journalctl -u etcd --since -5min --no-pager -o short-precise \
                 | grep -iE 'elect|leader|lost|promot|learner|unhealthy|slow|stopp|remov' | tail -n 40; true",
            );
            journals.push_str(&format!("--- {h}\n{j}"));
        }
        panic!(
            "{} of {ticks} ticks failed: {failures:#?}\napply:\n{err}\netcd:\n{journals}",
            failures.len()
        );
    }
}

/// The new host's API server answers, with a certificate that names its address (curl checks).
fn assert_api_server_serves(m: &Machines, c: &Cluster, name: &str) {
    let k = Kubectl::new(c);
    let server = format!("https://{}:6443", m.address(name));
    let ready = k
        .command(&["--server", &server, "get", "--raw", "/readyz"])
        .output()
        .unwrap();
    assert_eq!(
        text(&ready.stdout).trim(),
        "ok",
        "{name}: {}",
        text(&ready.stderr)
    );
    let nodes = k.json(&["get", "nodes"]);
    assert!(nodes["items"].as_array().unwrap().iter().all(|n| {
        n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    }));
}

pub fn run() {
    let _guard = lock_sandbox();
    let names = ["cp-1", "cp-2", "cp-3", "cp-4", "cp-5", "worker-1"];
    let m = step("start the machines", || Machines::up(&names, false));
    let c = step("write the inventory: cp-1 to cp-3 and worker-1", || {
        Cluster::new(
            &m,
            &[
                ("cp-1", CP),
                ("cp-2", CP),
                ("cp-3", CP),
                ("worker-1", "\"worker\""),
            ],
            "",
            "[api]\nload_balancer = \"node-local\"\n",
        )
    });
    step("first apply", || {
        c.apply_ok();
        assert_etcd_healthy(&m, &c, &["cp-1", "cp-2", "cp-3"]);
    });
    let service = step("a web Deployment behind a NodePort", || {
        web_behind_a_node_port(&m, &c, &["worker-1"])
    });

    step("two new etcd members at once are refused", || {
        let inv = c.ws.read_inventory();
        c.ws.write_inventory(&format!(
            "{inv}\n{}{}",
            inventory_host(&m, "cp-4"),
            inventory_host(&m, "cp-5")
        ));
        let (ok, _, err) = c.apply();
        assert!(!ok);
        assert!(
            err.contains("cp-4, cp-5: etcd members join a running cluster one at a time")
                && err.contains("Nothing was changed"),
            "{err}"
        );
        c.ws.write_inventory(&inv);
        assert_eq!(
            m.ssh("cp-4", "systemctl is-active etcd || true").trim(),
            "inactive"
        );
    });

    step(
        "cp-4 joins: etcd has 4 voting members, the API 4 servers",
        || {
            add_control_plane(&m, &c, "cp-4", &service);
            assert_etcd_healthy(&m, &c, &["cp-1", "cp-2", "cp-3", "cp-4"]);
            assert_api_server_serves(&m, &c, "cp-4");
            let lb = m.ssh("worker-1", "cat /etc/kubernetes/kube-api-lb.json");
            assert!(
                lb.contains(&format!("\"{}:6443\"", m.address("cp-4"))),
                "{lb}"
            );
            no_op(&c);
        },
    );

    step("cp-5 joins: etcd has 5 voting members", || {
        add_control_plane(&m, &c, "cp-5", &service);
        assert_etcd_healthy(&m, &c, &["cp-1", "cp-2", "cp-3", "cp-4", "cp-5"]);
        assert_api_server_serves(&m, &c, "cp-5");
        no_op(&c);
    });

    step(
        "cp-4 leaves: refused while the members that stay have no quorum",
        || {
            let inv = c.ws.read_inventory();
            let without = inv.replace(&inventory_host(&m, "cp-4"), "");
            assert_ne!(without, inv);
            c.ws.write_inventory(&without);
            // 3 of 5 still run, but only 2 of the 4 that stay.
            for h in ["cp-2", "cp-3"] {
                m.ssh(h, "systemctl stop etcd");
            }
            let (ok, _, err) = c.apply_with(&["--remove", "cp-4"]);
            assert!(!ok);
            assert!(
                err.contains("removing cp-4 would leave etcd 2 healthy member(s) of 4"),
                "{err}"
            );
            for h in ["cp-2", "cp-3"] {
                m.ssh(h, "systemctl start etcd");
            }
            assert_eq!(m.ssh("cp-4", "systemctl is-active etcd").trim(), "active");
            assert_etcd_healthy(&m, &c, &["cp-1", "cp-2", "cp-3", "cp-4", "cp-5"]);
        },
    );

    step(
        "apply --remove cp-4: its member removed first, the host reset, serving throughout",
        || {
            let probe = Probe::start_with_service(&m, &c, &["cp-1", "cp-2", "cp-3"], &service);
            let (ok, out, err) = c.apply_with(&["--remove", "cp-4"]);
            let finished = probe.finish();
            assert!(ok, "{err}\n{out}");
            assert_clean(finished, 20);
            assert_etcd_healthy(&m, &c, &["cp-1", "cp-2", "cp-3", "cp-5"]);
            let left = m.ssh(
                "cp-4",
                "systemctl is-active etcd kube-apiserver; ls /var/lib/etcd /etc/kubernetes 2>&1; true",
            );
            assert!(
                !left.contains("\nactive") && !left.starts_with("active"),
                "{left}"
            );
            assert!(left.contains("No such file"), "cp-4 was not reset: {left}");
            let lb = m.ssh("worker-1", "cat /etc/kubernetes/kube-api-lb.json");
            assert!(
                !lb.contains(&format!("\"{}:6443\"", m.address("cp-4"))),
                "{lb}"
            );
            no_op(&c);
        },
    );
}
