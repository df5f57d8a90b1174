//! `etcd snapshot`: a consistent snapshot taken on one member, copied to the operator's machine
//! with its SHA-256 and what it holds (revision, keys, members, versions) beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Remote;
use crate::inventory::Cluster;
use crate::pki::identity::host_path;
use crate::shell;

/// Where snapshots are made on the members (and where `certs regenerate` keeps its own).
use crate::layout::BACKUPS;

/// What a snapshot holds, written beside it as `FILE.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub cluster: String,
    pub file: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub revision: u64,
    pub total_keys: u64,
    pub etcd_version: String,
    pub kubernetes_version: String,
    /// The members etcd listed when the snapshot was taken.
    pub members: Vec<String>,
    /// The member it was taken on.
    pub taken_on: String,
    /// RFC 3339, UTC.
    pub taken_at: String,
}

#[derive(Deserialize)]
struct SnapshotStatus {
    #[serde(default)]
    revision: u64,
    #[serde(rename = "totalKey", default)]
    total_key: u64,
    #[serde(default)]
    version: String,
}

/// Takes a snapshot on the first etcd member at `now` (unix seconds) and copies it to `to`
/// (0600), with its metadata at `to` + `.json`. Nothing is left on the member.
pub async fn take<R: Remote>(
    c: &Cluster,
    conns: &BTreeMap<String, R>,
    to: &Path,
    now: i64,
) -> Result<Metadata> {
    let h = c
        .etcd_hosts()
        .next()
        .context("the cluster has no etcd member")?;
    let conn = &conns[&h.name];
    let endpoint = h.etcd_client_url();
    let on_host = on_host_path(now);
    conn.run_checked(&shell::etcd_snapshot(
        &endpoint,
        host_path::ETCD_PKI,
        &on_host,
    ))
    .await
    .with_context(|| format!("{}: etcdctl snapshot save", h.name))?;
    let copied = async {
        let status = conn
            .run_checked(&shell::etcd_snapshot_status(&on_host))
            .await?;
        let status: SnapshotStatus =
            serde_json::from_slice(&status.stdout).context("reading `etcdutl snapshot status`")?;
        let members = conn
            .run_checked(&shell::etcd_members(&endpoint, host_path::ETCD_PKI))
            .await?;
        let members = super::etcd_members::parse(&members.stdout)?;
        let got = conn.download(&on_host, to).await?;
        anyhow::Ok((status, members, got))
    }
    .await;
    // The member keeps no copy: snapshots hold every Secret of the cluster.
    let removed = conn.run_checked(&shell::remove_file(&on_host)).await;
    let (status, members, got) = copied?;
    removed.with_context(|| format!("{}: removing {on_host}", h.name))?;
    let mut names: Vec<String> = members.into_iter().map(|m| m.name).collect();
    names.sort();
    let meta = Metadata {
        cluster: c.name.clone(),
        file: to.to_path_buf(),
        sha256: got.sha256,
        size: got.size,
        revision: status.revision,
        total_keys: status.total_key,
        etcd_version: if status.version.is_empty() {
            c.versions.etcd.to_string()
        } else {
            status.version
        },
        kubernetes_version: c.kubernetes.to_string(),
        members: names,
        taken_on: h.name.clone(),
        taken_at: crate::pki::inspect::rfc3339(now),
    };
    crate::pki::store::replace(
        &metadata_path(to),
        serde_json::to_string_pretty(&meta)?.as_bytes(),
        0o600,
    )?;
    Ok(meta)
}

/// Where `etcd snapshot` makes its snapshot on the member before copying it.
fn on_host_path(now: i64) -> String {
    format!("{BACKUPS}/snapshot-{now}.db")
}

/// `etcdctl snapshot save` on the first etcd member, kept on that host.
pub async fn take_on_host<R: Remote>(c: &Cluster, conns: &BTreeMap<String, R>) -> Result<String> {
    let h = c
        .etcd_hosts()
        .next()
        .context("the cluster has no etcd member")?;
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let file = format!("{BACKUPS}/etcd-{stamp}.db");
    let endpoint = h.etcd_client_url();
    let cmd = crate::shell::etcd_snapshot(&endpoint, host_path::ETCD_PKI, &file);
    let conn = &conns[&h.name];
    conn.run_checked(&cmd).await?;
    conn.run_checked(&crate::shell::prune(BACKUPS, "etcd-", c.keep_backups))
        .await?;
    Ok(format!("etcd snapshot saved on {} at {file}", h.name))
}

/// Where a snapshot goes when the operator names no file: the state directory's
/// `etcd-snapshots/` (created private), named by cluster and time.
pub fn default_path(c: &Cluster, now: i64) -> Result<PathBuf> {
    let dir = c.state_dir.join("etcd-snapshots");
    crate::pki::store::ensure_private_dir(&dir)?;
    Ok(dir.join(file_name(&c.name, now)))
}

/// The metadata beside `snapshot`, refused when it describes another cluster than `cluster`.
pub fn read_metadata(snapshot: &Path, cluster: &str) -> Result<Metadata> {
    let path = metadata_path(snapshot);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading the snapshot's metadata {}", path.display()))?;
    let meta: Metadata = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a snapshot's metadata", path.display()))?;
    if meta.cluster != cluster {
        anyhow::bail!(
            "{} is a snapshot of cluster {}, not of {cluster}; nothing was changed",
            snapshot.display(),
            meta.cluster,
        );
    }
    Ok(meta)
}

/// `FILE.json` beside `FILE`.
pub fn metadata_path(snapshot: &Path) -> PathBuf {
    let mut name = snapshot.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// The snapshot file name for `cluster` at `unix` time: sorts by time.
pub fn file_name(cluster: &str, unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{cluster}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.db",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Removes all but the newest `keep` snapshots of `cluster` in `dir` (with their metadata);
/// returns the removed files.
pub fn prune(dir: &Path, cluster: &str, keep: usize) -> Result<Vec<PathBuf>> {
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(cluster)
                    .and_then(|r| r.strip_prefix('-'))
                    .is_some_and(|r| r.ends_with("Z.db") && r.len() == "20260101T000000Z.db".len())
            })
        })
        .collect();
    snapshots.sort();
    let excess = snapshots.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = snapshots.into_iter().take(excess).collect();
    for p in &removed {
        std::fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
        let _ = std::fs::remove_file(metadata_path(p));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_pruning_keeps_the_newest_of_this_cluster_only() {
        assert_eq!(file_name("demo", 0), "demo-19700101T000000Z.db");
        let dir = tempfile::tempdir().unwrap();
        let mut made = Vec::new();
        for t in [100, 300, 200] {
            let p = dir.path().join(file_name("demo", t));
            std::fs::write(&p, "db").unwrap();
            std::fs::write(metadata_path(&p), "{}").unwrap();
            made.push(p);
        }
        let other = dir.path().join(file_name("demo-two", 50));
        std::fs::write(&other, "db").unwrap();
        let mine = dir.path().join("demo-notes.db");
        std::fs::write(&mine, "kept").unwrap();
        let removed = prune(dir.path(), "demo", 1).unwrap();
        assert_eq!(removed, [made[0].clone(), made[2].clone()]);
        assert!(made[1].exists() && metadata_path(&made[1]).exists());
        assert!(!metadata_path(&made[0]).exists());
        assert!(
            other.exists() && mine.exists(),
            "other clusters' and other files stay"
        );
    }

    use super::super::fake::{Fixture, Log};

    /// `etcd snapshot` on fake hosts whose first member answers `status` for `etcdutl snapshot
    /// status` and holds the snapshot's `content`: the result and what happened.
    async fn take_fake(
        status: &str,
        content: &[u8],
    ) -> (Result<Metadata>, Vec<String>, PathBuf, tempfile::TempDir) {
        let f = Fixture::new(|_| {});
        let c = &f.cluster;
        let now = 1_800_000_000;
        let on_host = on_host_path(now);
        let member = c.etcd_hosts().next().unwrap();
        let members = serde_json::json!({ "members": [
            { "ID": "b2", "name": "cp-2", "peerURLs": [] },
            { "ID": "a1", "name": "cp-1", "peerURLs": [] },
        ]})
        .to_string();
        let log = Log::default();
        let mut conns = f.hosts(&log);
        let fake = conns.remove(&member.name).unwrap();
        let mut fake = fake
            .answer(shell::etcd_snapshot_status(&on_host), status)
            .answer(
                shell::etcd_members(&member.etcd_client_url(), host_path::ETCD_PKI),
                &members,
            );
        fake.files.insert(on_host.clone(), content.to_vec());
        conns.insert(member.name.clone(), fake);
        let dir = tempfile::tempdir().unwrap();
        let to = dir.path().join("s.db");
        let r = take(c, &conns, &to, now).await;
        let events = log.lock().unwrap().clone();
        (r, events, to, dir)
    }

    #[tokio::test]
    async fn a_snapshot_is_copied_with_what_it_holds_and_none_is_left_on_the_member() {
        let (r, events, to, _dir) = take_fake(
            r#"{"hash":1,"revision":42,"totalKey":7,"totalSize":8,"version":"3.6.0"}"#,
            b"snapshot",
        )
        .await;
        let meta = r.unwrap();
        assert_eq!(std::fs::read(&to).unwrap(), b"snapshot");
        assert_eq!(meta.sha256, crate::digest::sha256_hex(b"snapshot"));
        assert_eq!((meta.revision, meta.total_keys), (42, 7));
        assert_eq!(meta.members, ["cp-1", "cp-2"]);
        assert_eq!(meta.taken_on, "cp-1");
        let written: Metadata =
            serde_json::from_slice(&std::fs::read(metadata_path(&to)).unwrap()).unwrap();
        assert_eq!(written, meta);
        let removed = format!(
            "cp-1: run {}",
            shell::remove_file(&on_host_path(1_800_000_000))
        );
        assert_eq!(events.last(), Some(&removed), "{events:#?}");
    }

    #[tokio::test]
    async fn a_failed_copy_still_removes_the_snapshot_from_the_member() {
        // etcdutl's answer cannot be read: the copy fails after the snapshot was made.
        let (r, events, to, _dir) = take_fake("not json", b"snapshot").await;
        assert!(r.is_err());
        assert!(!to.exists() && !metadata_path(&to).exists());
        let removed = format!(
            "cp-1: run {}",
            shell::remove_file(&on_host_path(1_800_000_000))
        );
        assert_eq!(events.last(), Some(&removed), "{events:#?}");
    }
}
