//! NetworkPolicy, enforced by the cluster's policy engine (kube-router): a policy that denies
//! all ingress stops a pod on one worker from reaching a pod on the other within seconds; a rule
//! that allows the web pods lets them in again and no one else; deleting the policies leaves
//! none of their chains or ipsets on the target's worker, and traffic flows as before.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Kubectl};
use crate::machines::Machines;
use crate::smoke::web_pod;

/// How long a change of policy may take to be enforced.
const ENFORCED_WITHIN: Duration = Duration::from_secs(30);

/// `client` (a web pod) and the pod `target` run on different workers; `target_worker` is
/// the latter's.
pub fn enforced_across_workers(
    m: &Machines,
    c: &Cluster,
    k: &Kubectl,
    client: &str,
    client_worker: &str,
    target_worker: &str,
) {
    web_pod(c, k, "outsider", client_worker, None);
    let target = k.json(&["get", "pod", "target"])["status"]["podIP"]
        .as_str()
        .expect("the target pod has an address")
        .to_string();
    let reaches = |from: &str| reaches(k, from, &target);
    wait_for("the web pod to reach the target", || reaches(client));
    assert!(
        reaches("outsider"),
        "outsider cannot reach {target} before any policy"
    );

    k.apply(DENY_ALL);
    let t = wait_for("the deny-all policy to be enforced", || !reaches(client));
    eprintln!("deny-all enforced after {:.1} s", t.as_secs_f64());
    assert!(
        !reaches("outsider"),
        "outsider still reaches {target} under deny-all"
    );

    k.apply(ALLOW_WEB);
    let t = wait_for("the allow rule to let the web pod in", || reaches(client));
    eprintln!("allow rule enforced after {:.1} s", t.as_secs_f64());
    assert!(
        !reaches("outsider"),
        "the allow rule for app=web lets outsider reach {target} too"
    );

    let (chains, sets) = policy_state(m, target_worker);
    assert!(
        !chains.is_empty() && !sets.is_empty(),
        "{target_worker} shows no policy chain ({chains:?}) or ipset ({sets:?}) while two apply"
    );
    k.run(&[
        "delete",
        "networkpolicy",
        "target-deny-all",
        "target-allow-web",
    ]);
    wait_for("the policies' chains and ipsets to go", || {
        policy_state(m, target_worker) == (vec![], vec![])
    });
    assert!(
        reaches("outsider"),
        "outsider cannot reach {target} once the policies are gone"
    );
    // The web server, process 1 of its container, ignores SIGTERM: no grace period to wait out.
    k.run(&[
        "delete",
        "pod",
        "outsider",
        "--grace-period=1",
        "--wait=true",
    ]);
}

const DENY_ALL: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: target-deny-all
spec:
  podSelector:
    matchLabels: {app: target}
  policyTypes: [Ingress]
";

const ALLOW_WEB: &str = "apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: target-allow-web
spec:
  podSelector:
    matchLabels: {app: target}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector:
        matchLabels: {app: web}
    ports:
    - port: 8080
      protocol: TCP
";

/// Whether pod `from` gets the web page from `ip`:8080 within 3 seconds.
fn reaches(k: &Kubectl, from: &str, ip: &str) -> bool {
    k.wget(from, &format!("http://{ip}:8080/"), 3)
        .status
        .success()
}

/// Polls `done` until it holds; how long that took. Fails after [`ENFORCED_WITHIN`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < ENFORCED_WITHIN,
            "waited {ENFORCED_WITHIN:?} for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    start.elapsed()
}

/// The chains of individual policies and the ipsets of their peers on `host` (kube-router's
/// chain for pods no policy selects, KUBE-NWPLCY-DEFAULT, always stays).
fn policy_state(m: &Machines, host: &str) -> (Vec<String>, Vec<String>) {
    let chains = m
        .ssh(host, "iptables-save -t filter")
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| c.starts_with("KUBE-NWPLCY-") && *c != "KUBE-NWPLCY-DEFAULT")
        .map(String::from)
        .collect();
    let sets = m
        .ssh(host, "ipset list -n")
        .lines()
        .filter(|s| s.starts_with("KUBE-SRC-") || s.starts_with("KUBE-DST-"))
        .map(String::from)
        .collect();
    (chains, sets)
}
