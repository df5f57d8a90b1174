//! `etcd snapshot` and `etcd restore`.

use std::path::Path;

use anyhow::Result;

use super::output::confirm;
use super::{load, now, SUCCESS};
use crate::apply::workflow::Stage;
use crate::apply::{restore, snapshot, Format, Session};
use crate::cli::{RestoreArgs, SnapshotArgs};
use crate::layout::ETCD_DATA_DIR;

pub(super) fn snapshot(a: &SnapshotArgs) -> Result<u8> {
    let l = load(&a.inventory.inventory)?;
    let c = &l.cluster;
    let session = Session::start(&c.state_dir, Format::Text)?;
    let to = match &a.out {
        Some(f) => f.clone(),
        None => snapshot::default_path(c, now())?,
    };
    let rep = &session.rep;
    let meta = session.block_on(async {
        let conns = crate::apply::open(c, rep).await?;
        Stage::EtcdSnapshot.start(rep);
        snapshot::take(c, &conns, &to, now()).await
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
    if let Some(keep) = a.keep {
        let dir = to.parent().filter(|d| !d.as_os_str().is_empty());
        let removed = snapshot::prune(dir.unwrap_or(Path::new(".")), &c.name, keep as usize)?;
        for r in removed {
            println!("removed the older snapshot {}", r.display());
        }
    }
    Ok(SUCCESS)
}

pub(super) fn restore(a: &RestoreArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, Format::Text)?;
    let meta = snapshot::read_metadata(&a.snapshot, &l.cluster.name)?;
    let name = l.cluster.name.clone();
    if !a.yes {
        confirm(
            &format!(
                "This returns cluster {name} to its state at {} (revision {}): everything created \
                 since is lost, and the API is down meanwhile.\nType the cluster's name to go on: ",
                meta.taken_at, meta.revision
            ),
            &name,
        )?;
    }
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let deadline = std::time::Duration::from_secs(a.gate_timeout);
    restore::run(&l.cluster, &bundle, &a.snapshot, &meta, deadline, &session)?;
    println!(
        "cluster {name} restored to revision {} of {} ({}); each member's previous data is in {ETCD_DATA_DIR}.before-restore-*",
        meta.revision,
        meta.taken_at,
        a.snapshot.display()
    );
    Ok(SUCCESS)
}
