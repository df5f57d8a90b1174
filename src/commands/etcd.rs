//! `etcd snapshot`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{confirm, existing_pki, load, SUCCESS};
use crate::apply::workflow::Stage;
use crate::apply::{lease, restore, snapshot, under_lease, Format, Session};
use crate::pki;

pub(super) fn snapshot(path: &Path, out: Option<&Path>, keep: Option<u32>) -> Result<u8> {
    let l = load(path)?;
    let c = &l.cluster;
    let session = Session::start(&c.state_dir, Format::Text)?;
    let to: PathBuf = match out {
        Some(f) => f.to_path_buf(),
        None => {
            let dir = c.state_dir.join("etcd-snapshots");
            pki::store::ensure_private_dir(&dir)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            dir.join(snapshot::file_name(&c.name, now))
        }
    };
    let rep = &session.rep;
    let meta = session.block_on(async {
        let conns = crate::apply::open(c, rep).await?;
        Stage::EtcdSnapshot.start(rep);
        snapshot::take(c, &conns, &to).await
    })?;
    println!(
        "etcd snapshot of {} taken on {} at revision {} ({} keys, {:.1} MiB, members {}): {}\nsha256 {}; metadata in {}",
        meta.cluster,
        meta.taken_on,
        meta.revision,
        meta.total_keys,
        meta.size as f64 / (1 << 20) as f64,
        meta.members.join(", "),
        to.display(),
        meta.sha256,
        snapshot::metadata_path(&to).display()
    );
    if let Some(keep) = keep {
        let dir = to.parent().filter(|d| !d.as_os_str().is_empty());
        let removed = snapshot::prune(dir.unwrap_or(Path::new(".")), &c.name, keep as usize)?;
        for r in removed {
            println!("removed the older snapshot {}", r.display());
        }
    }
    Ok(SUCCESS)
}

pub(super) fn restore(path: &Path, snapshot: &Path, yes: bool, gate_timeout: u64) -> Result<u8> {
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, Format::Text)?;
    let meta_path = snapshot::metadata_path(snapshot);
    let meta: snapshot::Metadata = serde_json::from_slice(
        &std::fs::read(&meta_path)
            .with_context(|| format!("reading the snapshot's metadata {}", meta_path.display()))?,
    )
    .with_context(|| format!("{} is not a snapshot's metadata", meta_path.display()))?;
    let c = &l.cluster;
    if meta.cluster != c.name {
        bail!(
            "{} is a snapshot of cluster {}, not of {}; nothing was changed",
            snapshot.display(),
            meta.cluster,
            c.name
        );
    }
    if !yes {
        confirm(
            &format!(
            "This returns cluster {} to its state at {} (revision {}): everything created since is \
             lost, and the API is down meanwhile.\nType the cluster's name to go on: ",
            c.name, meta.taken_at, meta.revision
        ),
            &c.name,
        )?;
    }
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let (_, pki) = existing_pki(&l)?;
    let c = &l.cluster;
    Stage::Render.start(rep);
    let rendered = crate::render::render(c, &pki)?;
    let inputs = crate::apply::Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle: &bundle,
    };
    let deadline = std::time::Duration::from_secs(gate_timeout);
    session.block_on(async {
        let conns = crate::apply::open(c, rep).await?;
        let held = lease::take(c, &conns, "etcd restore", false, rep).await?;
        let work = restore::restore(&inputs, &conns, snapshot, &meta, deadline, rep);
        under_lease(Some(held), work).await
    })?;
    println!(
        "cluster {} restored to revision {} of {} ({}); each member's previous data is in /var/lib/etcd.before-restore-*",
        c.name, meta.revision, meta.taken_at, snapshot.display()
    );
    Ok(SUCCESS)
}
