//! `etcd snapshot`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{load, SUCCESS};
use crate::apply::snapshot;
use crate::pki;

pub(super) fn snapshot(path: &Path, out: Option<&Path>, keep: Option<u32>) -> Result<u8> {
    let l = load(path)?;
    let c = &l.cluster;
    let _lock = pki::store::lock(&c.state_dir)?;
    let to: PathBuf = match out {
        Some(f) => f.to_path_buf(),
        None => {
            let dir = c.state_dir.join("etcd-snapshots");
            pki::store::ensure_private_dir(&dir)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            dir.join(snapshot::file_name(&c.name, now))
        }
    };
    let rep = crate::apply::Reporter::new(crate::apply::Format::Text);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let meta = runtime.block_on(async {
        let conns = crate::apply::open(c, &rep).await?;
        rep.phase("etcd snapshot");
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
