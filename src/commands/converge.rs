//! `plan` and `apply`.

use std::path::Path;

use anyhow::Result;

use super::output::{emit, summary};
use super::{ensure_pki, load, SUCCESS};
use crate::apply::workflow::{self, Converged, Stage};
use crate::apply::{lease, under_lease, Format, Inputs, Session};
use crate::cli::{ApplyArgs, Output, PlanArgs};
use crate::render;

/// What `apply` adds to `plan`.
struct ApplyOptions {
    walk: workflow::Options,
    break_lease: bool,
    /// Hosts the inventory no longer names that the operator confirms are to be removed.
    remove: Vec<String>,
}

pub(super) fn plan(a: &PlanArgs) -> Result<u8> {
    converge(&a.inventory.inventory, a.output, None, a.rehash)
}

pub(super) fn apply(a: &ApplyArgs) -> Result<u8> {
    let opts = ApplyOptions {
        walk: a.walk.options(),
        break_lease: a.break_lease,
        remove: a.remove.clone(),
    };
    converge(&a.inventory.inventory, a.output, Some(opts), a.rehash)
}

/// `plan` and `apply`: survey the hosts, plan, and (for apply) execute under the cluster's lease.
fn converge(path: &Path, output: Output, apply: Option<ApplyOptions>, rehash: bool) -> Result<u8> {
    let mut l = load(path)?;
    // JSON events are apply's output; plan prints its JSON plan alone on stdout.
    let format = if output == Output::Json && apply.is_some() {
        Format::Json
    } else {
        Format::Text
    };
    let session = Session::start(&l.cluster.state_dir, format)?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let c = &l.cluster;
    let members = crate::members::load(&c.state_dir)?;
    let remove = apply.as_ref().map(|a| a.remove.as_slice());
    let leaving = crate::members::leaving(c, &members, remove)?;
    let rep = &session.rep;
    let done = session.block_on(async {
        // The hosts' identity is checked before the PKI is created: a missing state directory
        // must not gain a new cluster's CAs while the hosts run another's.
        let conns = crate::apply::open(c, rep).await?;
        let held = match &apply {
            Some(a) => Some(lease::take(c, &conns, "apply", a.break_lease, rep).await?),
            None => None,
        };
        under_lease(held, async {
            Stage::Pki.start(rep);
            let pki = ensure_pki(&l, path)?;
            Stage::Render.start(rep);
            let rendered = render::render(c, &pki)?;
            let inputs = Inputs {
                cluster: c,
                rendered: &rendered,
                pki: &pki,
                bundle: &bundle,
            };
            let walk = apply.as_ref().map(|a| &a.walk);
            workflow::converge(&inputs, conns, &members, &leaving, walk, rehash, rep).await
        })
        .await
    })?;
    match done {
        Converged::Planned(plan) => emit(output, &plan, crate::plan::text)?,
        Converged::Applied(outcome) => summary(output, &outcome, |o| {
            format!(
                "done in {:.1}s: {} file(s) written, {} service(s) started, {} restarted ({:.1}s transfer, {:.1}s starting and waiting)",
                o.seconds, o.files_written, o.units_started, o.units_restarted, o.transfer_seconds, o.wait_seconds
            )
        }),
    }
    Ok(SUCCESS)
}
