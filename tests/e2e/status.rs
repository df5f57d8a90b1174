//! `status` on a running cluster: every check healthy, each host's certificates read from the
//! host; a certificate within the warning window and a stopped unit are named and the exit
//! status says unhealthy, then healthy again once the unit runs.

use serde_json::Value;

use crate::cluster::Cluster;
use crate::common::{bundle, text};
use crate::machines::Machines;

fn status(c: &Cluster, args: &[&str]) -> (i32, String) {
    let mut full = vec!["status"];
    full.extend(args);
    let o = c.ws.run(&full);
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout) + &text(&o.stderr),
    )
}

pub fn healthy_then_a_stopped_unit_is_named(m: &Machines, c: &Cluster, hosts: &[&str]) {
    let o = c.ws.run(&["status", "--output", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let json: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &json[0];
    assert_eq!(s["problems"], serde_json::json!([]), "{s:#}");
    let listed: Vec<&str> = s["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(listed, hosts);
    let k8s = bundle::kubernetes_version(&c.bundle);
    for h in s["hosts"].as_array().unwrap() {
        assert_eq!(h["reachable"], true, "{h:#}");
        for (unit, state) in h["units"].as_object().unwrap() {
            assert_eq!(state, "active", "{unit} on {h:#}");
        }
        // Every host holds certificates (its CA bundle at least), read from the host itself.
        let days = h["soonest_expiry"]["days_left"].as_i64();
        assert!(days.is_some_and(|d| d > 300), "{h:#}");
        if let Some(v) = h["versions"].get("kube-apiserver") {
            assert_eq!(v.as_str(), Some(k8s.trim_start_matches('v')), "{h:#}");
        }
    }
    let etcd = &s["etcd"];
    assert_eq!(
        (etcd["answering"].as_u64(), etcd["members"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(
        etcd["leader"]
            .as_str()
            .is_some_and(|l| l.starts_with("cp-")),
        "{etcd:#}"
    );
    assert!(etcd["db_size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["api_ready"], true);
    assert_eq!(s["nodes_ready"], serde_json::json!([2, 2]));
    assert_eq!(s["plan_changes"], 0);
    assert!(
        s["soonest_expiry"]["days_left"].as_i64().unwrap() > 300,
        "{s:#}"
    );

    // A warning window longer than the certificates' life: each host's copies are named.
    let (code, out) = status(c, &["--warn-days", "400"]);
    assert_eq!(code, 6, "{out}");
    for h in hosts {
        assert!(
            out.contains(&format!("problem: {h}: certificate ")),
            "{h}: {out}"
        );
    }

    m.ssh("cp-2", "systemctl stop kube-scheduler");
    let (code, out) = status(c, &[]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("UNHEALTHY"), "{out}");
    assert!(
        out.contains("problem: cp-2: kube-scheduler is inactive"),
        "{out}"
    );
    m.ssh("cp-2", "systemctl start kube-scheduler");
    let (code, out) = status(c, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("healthy") && out.contains("plan: no change"),
        "{out}"
    );
}
