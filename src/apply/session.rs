//! One command's run against a cluster: the state directory's lock (one run at a time per
//! state directory), the async runtime the hosts are talked to on, the one output path, and
//! the cluster's lease around the work that changes the hosts.

use std::future::Future;
use std::path::Path;

use anyhow::{Context, Result};

use super::{lease, Format, Reporter};
use crate::inventory::{self, Loaded};
use crate::pki::store::{self, StateLock};

pub struct Session {
    _lock: StateLock,
    runtime: tokio::runtime::Runtime,
    pub rep: Reporter,
}

impl Session {
    /// Locks `state_dir` for the life of the session; refused while another run holds it.
    pub fn start(state_dir: &Path, format: Format) -> Result<Session> {
        let lock = store::lock(state_dir)?;
        let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
        Ok(Session {
            _lock: lock,
            runtime,
            rep: Reporter::new(format),
        })
    }

    /// Runs `work` to its end on the session's runtime.
    pub fn block_on<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(work)
    }
}

/// Runs `work` while this run holds the cluster's lease (taken with [`lease::take`]; none for
/// a run that changes nothing), released whatever `work` returns.
pub async fn under_lease<T, R: super::Remote>(
    held: Option<lease::Lease<R>>,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let result = work.await;
    if let Some(held) = held {
        held.release().await;
    }
    result
}

/// The inventory as the commands run it: validated, with the pod ranges the state directory
/// recorded kept (see [`crate::members`]) and the component versions its bundle carries taken
/// (see [`crate::bundle::versions`]). Returns it with the warnings to show, each one line.
pub fn load(path: &Path) -> Result<(Loaded, Vec<String>)> {
    let mut loaded = inventory::load(path)?;
    let mut warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    let members = crate::members::load(&loaded.cluster.state_dir)?;
    crate::members::keep_pod_ranges(&mut loaded.cluster, &members);
    crate::members::mark_etcd_joins(&mut loaded.cluster, &members);
    // A bundle that cannot be read is reported by the commands that open it.
    let Some(bundle) = loaded.cluster.bundle.clone() else {
        return Ok((loaded, warnings));
    };
    if let Ok(m) = crate::bundle::peek_manifest(&bundle) {
        let shown = bundle.display().to_string();
        match crate::bundle::versions::adopt(&mut loaded.cluster, &m, &shown) {
            Ok(adopted) => warnings.extend(adopted.iter().map(|w| format!("warning: {w}"))),
            Err(problems) => return Err(inventory::invalid_at(path, problems).into()),
        }
    }
    Ok((loaded, warnings))
}

/// The cluster's PKI, what it lacks created, and what that did told on stderr: stale
/// certificates too, which are kept (`inventory` names the inventory in the command that
/// replaces them).
pub fn ensure_pki(c: &crate::inventory::Cluster, inventory: &Path) -> Result<crate::pki::Pki> {
    let (pki, report) = crate::pki::ensure(c)
        .with_context(|| format!("preparing the PKI in {}", c.state_dir.display()))?;
    for line in report.notes(&c.state_dir, inventory) {
        eprintln!("{line}");
    }
    Ok(pki)
}
