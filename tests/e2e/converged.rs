//! 3 control planes and 2 workers: apply builds the cluster, the checks every cluster must pass
//! and the hard way's smoke test hold, the kubelets renew their client certificates, the CIS
//! Kubernetes Benchmark (kube-bench) fails no check on any host, `status` says healthy (and names a stopped unit), an etcd snapshot is copied and restored, the scheduled ones are taken and pruned, and from then on apply changes exactly what changed: a
//! no-op writes and restarts nothing, one drifted file restarts only its reader, a removed image
//! is imported again, one inventory value or a new DNS upstream touches only their readers. A
//! lost state directory is refused, then recovered from the hosts. Reset, last, leaves every
//! host as it was when freshly started.

use std::collections::BTreeMap;

use provisioner::apply::workflow;

use crate::cis;
use crate::cluster::{
    announced_in_order, image_digest, no_op, pause_image, timestamps, unit_hosts, verify_cluster,
    Cluster, Kubectl,
};
use crate::common::text;
use crate::machines::{lock_sandbox, Machines};
use crate::reset;
use crate::smoke;
use crate::snapshot;
use crate::status;
use crate::step::step;

pub fn run() {
    let _guard = lock_sandbox();
    let names = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"];
    let m = step("start the machines", || Machines::up(&names, false));
    let fresh = step("what the fresh machines hold", || {
        reset::snapshot_hosts(&m, &names)
    });
    let cp = "\"etcd\", \"control-plane\"";
    let w = "\"worker\"";
    let c = step("write the inventory", || {
        Cluster::new(
            &m,
            &[
                ("cp-1", cp),
                ("cp-2", cp),
                ("cp-3", cp),
                ("worker-1", w),
                ("worker-2", w),
            ],
            "",
            "[etcd]\nsnapshot_schedule = \"hourly\"\nsnapshot_keep = 2\n",
        )
    });

    step("first apply", || {
        let first = c.apply_ok();
        assert!(first["files_written"].as_u64().unwrap() > 100, "{first}");
    });

    let hosts = unit_hosts(&names);
    step("verify the cluster", || {
        verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1", "worker-2"], 3)
    });
    step("the kubelets renew their client certificates", || {
        kubelets_renew_their_client_certificates(&c, &["worker-1", "worker-2"])
    });
    step("CIS benchmark: kube-bench fails no check", || {
        cis::no_check_fails(&m, &["cp-1", "cp-2", "cp-3"], &["worker-1", "worker-2"])
    });
    step("smoke test", || {
        smoke::smoke_test(&m, &c, "cp-1", ["worker-1", "worker-2"])
    });
    step("status: healthy, then a stopped unit named", || {
        status::healthy_then_a_stopped_unit_is_named(&m, &c, &names)
    });
    step("etcd snapshot, copied and described", || {
        snapshot::snapshot_is_copied_with_its_metadata(&m, &c)
    });
    step("scheduled etcd snapshots", || {
        snapshot::scheduled_snapshots_are_taken_and_pruned(&m, &["cp-1", "cp-2", "cp-3"], 2)
    });
    step("etcd restore brings the snapshot back", || {
        snapshot::restore_brings_back_the_snapshots_state(&m, &c)
    });

    let before = step("a second apply changes nothing", || {
        let before = timestamps(&m, &hosts);
        no_op(&c);
        assert_eq!(
            timestamps(&m, &hosts),
            before,
            "a no-op apply restarted something"
        );
        before
    });

    step("a drifted file restarts only its reader", || {
        // One file changed on one host: the plan shows exactly that, apply restarts only its
        // reader.
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
    });

    step("a removed image is imported again", || {
        // An image removed from containerd is imported again, and nothing restarts for it.
        let (pause, digest) = pause_image(&c.bundle);
        let rm =
            format!("ctr --address /run/containerd/containerd.sock -n k8s.io images rm '{pause}'");
        m.ssh("worker-2", &rm);
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
    });

    step("an inventory change restarts only its readers", || {
        // One inventory value changed: both workers' kube-proxy config, nothing else.
        c.switch_kube_proxy_to_nftables();
        let before = timestamps(&m, &hosts);
        let fourth = c.apply_ok();
        assert_eq!(fourth["units_restarted"].as_u64(), Some(2), "{fourth}");
        let after = timestamps(&m, &hosts);
        let restarted: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
        assert_eq!(
            restarted,
            vec!["worker-1/kube-proxy", "worker-2/kube-proxy"]
        );
    });

    step("a changed Corefile rolls CoreDNS only", || {
        corefile_change_rolls_coredns_and_nothing_else(&m, &c, &hosts)
    });

    step("a lost state directory, refused then recovered", || {
        lost_state_directory_is_refused_then_recovered(&m, &c, &names, &hosts)
    });

    step("reset: one worker, then every host as it was fresh", || {
        reset::returns_every_host_to_fresh(&m, &c, &fresh, "worker-2", "cp-1")
    });
}

/// Each kubelet asked for a client certificate of its own through the CSR API at its first
/// start, the controller-manager approved and issued it, and `certs check` reads it: signed by
/// the cluster CA, nothing drifted.
fn kubelets_renew_their_client_certificates(c: &Cluster, workers: &[&str]) {
    let k = Kubectl::new(c);
    let issued = |w: &str| {
        k.json(&["get", "csr"])["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|csr| {
                csr["spec"]["username"] == format!("system:node:{w}")
                    && csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
                    && csr["status"]["conditions"][0]["type"] == "Approved"
                    && csr["status"]["certificate"].is_string()
            })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !workers.iter().all(|w| issued(w)) {
        assert!(
            std::time::Instant::now() < deadline,
            "no approved and issued client certificate request of every kubelet:\n{}",
            k.run(&["get", "csr"])
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let o = c.ws.run(&["certs", "check", "--output", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for w in workers {
        let renewed = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == format!("kubelet-client@{w} (renewed by the kubelet)"))
            .unwrap_or_else(|| panic!("certs check shows no renewed certificate on {w}"));
        assert_eq!(renewed["issuer"], "CN=kubernetes-ca", "{renewed}");
        assert_eq!(renewed["drift"], serde_json::json!([]), "{renewed}");
        assert!(renewed["days_left"].as_i64().unwrap() > 300, "{renewed}");
    }
}

/// A changed Corefile (another upstream) is a change of the addon manifest on the control-plane
/// hosts only; apply restarts no unit and rolls the CoreDNS Deployment, whose new pods answer.
fn corefile_change_rolls_coredns_and_nothing_else(
    m: &Machines,
    c: &Cluster,
    hosts: &[(&str, &[&str])],
) {
    let k = Kubectl::new(c);
    let generation = || {
        k.run(&[
            "-n",
            "kube-system",
            "get",
            "deployment",
            "coredns",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .trim()
        .parse::<u64>()
        .unwrap()
    };
    let before_generation = generation();
    let inv = c.ws.read_inventory();
    c.ws.write_inventory(&inv.replace("dns_upstreams = []", "dns_upstreams = [\"10.88.0.1\"]"));
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
                 /var/lib/kube-proxy /usr/local/bin /usr/local/lib/provisioner -type f -printf '%p %m %T@ ' -exec sha256sum {} \\; \
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
    announced_in_order(&text(&o.stderr), workflow::STATE_RECOVER);
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
