//! `etcd snapshot` on a running cluster: the copy is the member's (SHA-256), private, described
//! by its metadata, readable by the bundle's own etcdutl, gone from the member; `--keep` prunes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cluster::Cluster;
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
