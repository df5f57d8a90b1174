//! `etcd snapshot` on a running cluster: the copy is the member's (SHA-256), private, described
//! by its metadata, readable by the bundle's own etcdutl, gone from the member; `--keep` prunes.
//! `etcd restore` brings the snapshot's state back, the nodes and workloads running on.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use provisioner::apply::workflow;

use crate::cluster::{announced_in_order, Cluster, Kubectl};
use crate::common::{sha256_file, text};
use crate::machines::Machines;

fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    found.sort();
    found
}

pub fn snapshot_is_copied_with_its_metadata(m: &Machines, c: &Cluster) {
    let o = c.ws.run(&["etcd", "snapshot"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    announced_in_order(&text(&o.stderr), workflow::ETCD_SNAPSHOT);
    let dir = c.ws.state().join("etcd-snapshots");
    let taken = snapshots(&dir);
    assert_eq!(taken.len(), 1, "{taken:?}");
    let db = &taken[0];
    assert_eq!(
        std::fs::metadata(db).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut json = db.as_os_str().to_owned();
    json.push(".json");
    let meta: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        meta["sha256"].as_str(),
        Some(sha256_file(db).as_str()),
        "{meta:#}"
    );
    assert_eq!(meta["members"], serde_json::json!(["cp-1", "cp-2", "cp-3"]));
    assert_eq!(meta["taken_on"], "cp-1");
    assert!(meta["revision"].as_u64().unwrap() > 0, "{meta:#}");

    // The bundle's etcdutl reads the copy back at the same revision.
    let etcdutl = c.bundle.join("bin/etcdutl");
    let o = Command::new(&etcdutl)
        .arg("snapshot")
        .arg("status")
        .arg(db)
        .args(["-w", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["revision"], meta["revision"]);
    assert_eq!(status["totalKey"], meta["total_keys"]);

    // The member keeps no copy (it holds every Secret).
    let left = m.ssh(
        "cp-1",
        "ls /var/lib/provisioner/backups | grep -c '^snapshot-' || true",
    );
    assert_eq!(left.trim(), "0");

    // Names carry the second: the next one sorts after.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let o = c.ws.run(&["etcd", "snapshot", "--keep", "1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let kept = snapshots(&dir);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_ne!(&kept[0], db, "the newest is kept");
    assert!(
        !Path::new(&json).exists(),
        "the pruned snapshot's metadata goes with it"
    );
}

/// Waits up to two minutes for `check`, which says what it still waits for.
fn wait_for(what: &str, check: impl Fn() -> Result<(), String>) {
    let start = std::time::Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if start.elapsed() > std::time::Duration::from_secs(120) => {
                panic!("{what}: still {e} after 2 minutes")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(2)),
        }
    }
}

pub fn restore_brings_back_the_snapshots_state(m: &Machines, c: &Cluster) {
    let k = Kubectl::new(c);
    k.run(&["create", "configmap", "restore-a", "--from-literal=k=a"]);
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("before.db");
    let snap = snap.to_str().unwrap();
    let o = c.ws.run(&["etcd", "snapshot", "--out", snap]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    k.run(&["create", "configmap", "restore-b", "--from-literal=k=b"]);
    k.run(&["delete", "configmap", "restore-a"]);

    // No terminal to confirm on and no --yes: refused, nothing changed.
    let o =
        c.ws.run(&["etcd", "restore", "--gate-timeout", "120", snap]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--yes"), "{}", text(&o.stderr));
    k.run(&["get", "configmap", "restore-b"]);

    let o = c.ws.run(&["etcd", "restore", "--yes", snap]);
    assert!(o.status.success(), "restore failed:\n{}", text(&o.stderr));
    announced_in_order(&text(&o.stderr), workflow::ETCD_RESTORE);
    k.run(&["get", "configmap", "restore-a"]);
    let o = k
        .command(&["get", "configmap", "restore-b"])
        .output()
        .unwrap();
    assert!(
        !o.status.success() && text(&o.stderr).contains("NotFound"),
        "restore-b was created after the snapshot: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    wait_for("both workers Ready", || {
        let nodes = k.json(&["get", "nodes"]);
        let ready = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        (ready == 2)
            .then_some(())
            .ok_or(format!("{ready} of 2 Ready"))
    });
    wait_for("the web Deployment's pods running", || {
        let pods = k.json(&["get", "pods", "-l", "app=web"]);
        let running = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        (running == 3)
            .then_some(())
            .ok_or(format!("{running} of 3 Running"))
    });
    for h in ["cp-1", "cp-2", "cp-3"] {
        m.ssh(h, "ls -d /var/lib/etcd.before-restore-*");
    }
}

/// The inventory's scheduled snapshot: a timer on every etcd host whose job saves a snapshot
/// etcd can read and keeps only the newest `keep`.
pub fn scheduled_snapshots_are_taken_and_pruned(m: &Machines, etcd_hosts: &[&str], keep: usize) {
    for h in etcd_hosts {
        assert_eq!(
            m.ssh(
                h,
                "systemctl is-active etcd-snapshot.timer; systemctl is-enabled etcd-snapshot.timer"
            ),
            "active\nenabled\n",
            "{h}"
        );
    }
    let host = etcd_hosts[0];
    for _ in 0..=keep {
        // Names carry the second they were taken in.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        m.ssh(host, "systemctl start etcd-snapshot.service");
    }
    let listing = m.ssh(
        host,
        "cd /var/lib/provisioner/backups && stat -c '%a %n' scheduled-*.db",
    );
    let files: Vec<&str> = listing.lines().collect();
    assert_eq!(files.len(), keep, "{listing}");
    assert!(files.iter().all(|f| f.starts_with("600 ")), "{listing}");
    let newest = files.iter().map(|f| &f[4..]).max().unwrap();
    let status = m.ssh(
        host,
        &format!("etcdutl snapshot status /var/lib/provisioner/backups/{newest} -w json"),
    );
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(status["revision"].as_i64().unwrap() > 0, "{status}");
}
