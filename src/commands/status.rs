//! `status`: one or several clusters at once, each read from its hosts in parallel.

use anyhow::{Context, Result};

use super::output::emit;
use super::SUCCESS;
use crate::apply::status::{self, ClusterStatus};
use crate::cli::StatusArgs;

/// Exit status when any cluster is unhealthy.
pub const EXIT_UNHEALTHY: u8 = 6;

pub(super) fn status(a: &StatusArgs) -> Result<u8> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (reports, warnings) = runtime.block_on(status::clusters(&a.inventories, a.warn_days));
    for w in warnings {
        eprintln!("{w}");
    }
    emit(a.output, &reports, |r| r.iter().map(status::text).collect())?;
    Ok(if reports.iter().all(ClusterStatus::healthy) {
        SUCCESS
    } else {
        EXIT_UNHEALTHY
    })
}
