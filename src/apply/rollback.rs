//! `rollback`, from a loaded inventory: every host back to the versions the state directory
//! recorded before the last upgrade (see [`crate::plan::rollback`] for what goes back), then
//! [`workflow::rollback`] under the cluster's lease.

use std::path::Path;

use anyhow::Result;

use super::stage::Stage;
use super::workflow::{self, RolledBack};
use super::{lease, under_lease, Inputs, Session};
use crate::history::{self, History};
use crate::inventory::Cluster;
use crate::plan::rollback::{at_versions, retarget, split};

pub struct Options {
    pub walk: workflow::Options,
    pub break_lease: bool,
    /// Show the plan and change nothing.
    pub dry_run: bool,
}

/// What rollback did, and what it left.
pub struct Report {
    /// The recorded steps that went back (or would, in a dry run).
    pub back: History,
    /// The recorded steps that cannot go back: etcd after a change of minor.
    pub kept: History,
    /// None when no upgrade is recorded.
    pub done: Option<RolledBack>,
}

pub fn run(c: &mut Cluster, inventory: &Path, opts: &Options, session: &Session) -> Result<Report> {
    let bundle = crate::bundle::cluster::open_for(c, inventory)?;
    let recorded = history::load(&c.state_dir)?;
    let (back, kept) = split(&recorded);
    if back.is_empty() {
        return Ok(Report {
            back,
            kept,
            done: None,
        });
    }
    // Rendered as at the previous versions: their files too (containerd's configuration format
    // depends on its minor).
    at_versions(c, &back)?;
    let c = &*c;
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let pki = super::session::ensure_pki(c, inventory)?;
    let rendered = super::render(c, &pki, rep)?;
    let inputs = Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle: &bundle,
    };
    let desired = retarget(crate::plan::desired(&rendered, &bundle)?, &back);
    let done = session.block_on(async {
        let conns = super::open(c, rep).await?;
        let held = match opts.dry_run {
            true => None,
            false => Some(lease::take(c, &conns, "rollback", opts.break_lease, rep).await?),
        };
        let work = workflow::rollback(&inputs, desired, conns, opts.dry_run, &opts.walk, rep);
        under_lease(held, work).await
    })?;
    if matches!(done, RolledBack::Done) {
        // What stays recorded is what could not go back.
        history::save(&c.state_dir, &kept)?;
    }
    Ok(Report {
        back,
        kept,
        done: Some(done),
    })
}
