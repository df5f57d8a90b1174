//! One command's run against a cluster: the state directory's lock (one run at a time per
//! state directory), the async runtime the hosts are talked to on, the one output path, and
//! the cluster's lease around the work that changes the hosts.

use std::future::Future;
use std::path::Path;

use anyhow::{Context, Result};

use super::{lease, Format, Reporter};
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
pub async fn under_lease<T>(
    held: Option<lease::Lease>,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let result = work.await;
    if let Some(held) = held {
        held.release().await;
    }
    result
}
