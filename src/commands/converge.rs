//! `plan` and `apply`.

use anyhow::Result;

use super::output::{emit, summary};
use super::{load, SUCCESS};
use crate::apply::converge::{self, ApplyOptions};
use crate::apply::workflow::Converged;
use crate::apply::{Format, Session};
use crate::cli::{ApplyArgs, PlanArgs};

pub(super) fn plan(a: &PlanArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    // plan prints its JSON plan alone on stdout: its progress is text.
    let session = Session::start(&l.cluster.state_dir, Format::Text)?;
    if let Converged::Planned(plan) = converge::run(&mut l.cluster, path, None, a.rehash, &session)?
    {
        emit(a.output, &plan, crate::plan::text)?;
    }
    Ok(SUCCESS)
}

pub(super) fn apply(a: &ApplyArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, a.output.format())?;
    let opts = ApplyOptions {
        walk: a.walk.options(),
        break_lease: a.break_lease,
        remove: a.remove.clone(),
    };
    let done = converge::run(&mut l.cluster, path, Some(opts), a.rehash, &session)?;
    if let Converged::Applied(outcome) = done {
        summary(a.output, &outcome, |o| {
            format!(
                "done in {:.1}s: {} file(s) written, {} service(s) started, {} restarted ({:.1}s transfer, {:.1}s starting and waiting)",
                o.seconds, o.files_written, o.units_started, o.units_restarted, o.transfer_seconds, o.wait_seconds
            )
        });
    }
    Ok(SUCCESS)
}
