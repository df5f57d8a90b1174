//! `reset` on a running cluster: refused without a confirmation or for a control-plane host
//! alone; one worker reset keeping its images, then applied again; then the whole cluster,
//! after which every host holds exactly the files it had when it was freshly started and
//! listens where it listened.

use std::collections::BTreeMap;

use provisioner::apply::workflow;

use crate::cluster::{announced_in_order, Cluster};
use crate::common::text;
use crate::machines::Machines;

/// What a host looks like from the outside of provisioner's reach: every path (outside what
/// the OS changes by itself: /proc, /sys, /dev, logs and the journal, systemd's and the login
/// sessions' runtime state, temporary files, caches) and the ports something listens on.
pub fn snapshot_hosts(m: &Machines, names: &[&str]) -> BTreeMap<String, (String, String)> {
    let list = "find / \\( -path /proc -o -path /sys -o -path /dev -o -path /var/log/journal \
        -o -path /run/log -o -path /run/systemd -o -path /run/user -o -path /var/lib/systemd \
        -o -path /tmp -o -path /var/tmp -o -path /var/cache \\) -prune -o -print | LC_ALL=C sort";
    let ports = "ss -Hltun | awk '{print $1, $5}' | LC_ALL=C sort -u";
    names
        .iter()
        .map(|n| (n.to_string(), (m.ssh(n, list), m.ssh(n, ports))))
        .collect()
}

/// The lines of `a` not in `b`, and of `b` not in `a`.
fn difference(a: &str, b: &str) -> (Vec<String>, Vec<String>) {
    let only = |x: &str, y: &str| {
        let y: std::collections::BTreeSet<&str> = y.lines().collect();
        x.lines()
            .filter(|l| !y.contains(l))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    (only(a, b), only(b, a))
}

pub fn returns_every_host_to_fresh(
    m: &Machines,
    c: &Cluster,
    fresh: &BTreeMap<String, (String, String)>,
    worker: &str,
    control_plane: &str,
) {
    let names: Vec<&str> = fresh.keys().map(String::as_str).collect();

    // No terminal to confirm on and no --yes: refused before anything changes.
    let o = c.ws.run(&["reset", "--host", worker]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains("--yes") && err.contains("kubelet"), "{err}");
    // An API server or etcd member alone: refused before connecting.
    let o = c.ws.run(&["reset", "--host", control_plane, "--yes"]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("cannot be reset alone"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        m.ssh(worker, "systemctl is-active kubelet").trim(),
        "active"
    );

    // One worker, its images kept: its units and files are gone, containerd's store stays.
    let o =
        c.ws.run(&["reset", "--host", worker, "--keep-images", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("kubectl delete node {worker}")));
    let left = m.ssh(
        worker,
        "systemctl is-active kubelet containerd; ls /var/lib/containerd; \
         ls /usr/local/bin /var/lib/provisioner 2>&1; true",
    );
    assert!(left.starts_with("inactive\ninactive\n"), "{left}");
    assert!(left.contains("io.containerd.content.v1.content"), "{left}");
    assert!(
        !left.contains("kubelet\n") && left.contains("cannot access '/var/lib/provisioner'"),
        "{left}"
    );
    // The record went with the rest: apply brings the worker back, then the whole cluster goes.
    c.apply_ok();
    assert_eq!(
        m.ssh(worker, "systemctl is-active kubelet").trim(),
        "active"
    );

    // The whole cluster.
    let o = c.ws.run(&["reset", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    announced_in_order(&text(&o.stderr), workflow::RESET);
    let after = snapshot_hosts(m, &names);
    for n in &names {
        let (files, ports) = &after[*n];
        let (fresh_files, fresh_ports) = &fresh[*n];
        assert_eq!(
            difference(files, fresh_files),
            (Vec::new(), Vec::new()),
            "{n}: (paths only after the reset, paths gone since the machine was fresh)"
        );
        assert_eq!(ports, fresh_ports, "{n}: listening sockets");
        let net = m.ssh(
            n,
            "iptables-save | grep -c -e KUBE- -e CNI- -e PROVISIONER-; \
             ipset list -n | grep -c KUBE-; ip -o link show | grep -c ' cni0:'; \
             ls /run/netns 2>/dev/null | wc -l; ip route | grep -c 10.200.; true",
        );
        assert_eq!(
            net.split_whitespace().collect::<Vec<_>>(),
            ["0", "0", "0", "0", "0"],
            "{n}: rules, ipsets, bridge, namespaces, pod routes"
        );
    }
    // A second reset finds nothing recorded anywhere.
    let o = c.ws.run(&["reset", "--yes"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("nothing to reset"),
        "{}",
        text(&o.stdout)
    );
}
