//! A certificate rollout, as `certs regenerate` and `certs rotate-ca` run it: the cluster must
//! be healthy first, the state directory is backed up and etcd snapshotted, then the plan is
//! executed one host at a time per service.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::stage::Stage;
use super::{Inputs, Reporter};
use crate::component::Unit;
use crate::pki;

pub struct Options {
    pub force: bool,
    pub dry_run: bool,
    pub break_lease: bool,
    pub gate_timeout: Duration,
}

/// Rolls out `inp` (whose PKI already holds the new certificates, in memory): survey and plan,
/// health check, backup, etcd snapshot when etcd restarts, then `save` (which writes the new
/// state) and the rollout. `what` says what is rolled out, for the dry run. Returns what apply
/// did, or None for a dry run.
pub async fn roll_out(
    inp: &Inputs<'_>,
    what: &str,
    expired: bool,
    opts: &Options,
    rep: &Reporter,
    save: impl FnOnce() -> Result<()>,
) -> Result<Option<super::Outcome>> {
    let conns = super::open(inp.cluster, rep).await?;
    let survey = super::survey(inp, conns, false, rep).await?;
    Stage::Plan.start(rep);
    let plan = super::make_plan(&survey);
    let restarts_etcd = plan.hosts.iter().any(|h| h.unit(Unit::Etcd).is_some());
    eprint!("{}", crate::plan::text(&plan));
    if opts.dry_run {
        eprintln!(
            "dry run: would back up the state directory{}, {what} and roll out the plan above, \
             one host at a time per service; nothing was changed",
            if restarts_etcd { ", snapshot etcd" } else { "" },
        );
        return Ok(None);
    }
    let held = super::lease::take(inp.cluster, &survey.conns, what, opts.break_lease, rep).await?;
    let work = roll_out_leased(inp, &survey, &plan, restarts_etcd, expired, opts, rep, save);
    super::under_lease(Some(held), work).await
}

/// [`roll_out`] once the cluster's lease is held.
#[allow(clippy::too_many_arguments)]
async fn roll_out_leased(
    inp: &Inputs<'_>,
    survey: &super::Survey,
    plan: &crate::plan::Plan,
    restarts_etcd: bool,
    expired: bool,
    opts: &Options,
    rep: &Reporter,
    save: impl FnOnce() -> Result<()>,
) -> Result<Option<super::Outcome>> {
    if let Err(e) = super::check_health(inp, survey, rep, Duration::from_secs(20)).await {
        if expired {
            eprintln!(
                "the cluster fails a health gate, as expected with expired certificates: {e:#}"
            );
        } else if opts.force {
            eprintln!("warning: continuing with --force although a health gate fails: {e:#}");
        } else {
            bail!(
                "{e:#}\nNothing was changed: the cluster must be healthy before certificates are \
                 rolled, or a restart could take the last healthy member down. Fix the failing \
                 service, or pass --force to regenerate anyway."
            );
        }
    }
    let c = inp.cluster;
    Stage::Backup.start(rep);
    let backup = pki::backup(&c.state_dir, c.keep_backups)?;
    eprintln!(
        "backed up the state directory's PKI and secrets to {}",
        backup.display()
    );
    if restarts_etcd {
        Stage::EtcdSnapshot.start(rep);
        match super::snapshot::take_on_host(c, &survey.conns).await {
            Ok(msg) => eprintln!("{msg}"),
            Err(e) if expired || opts.force => {
                eprintln!("warning: no etcd snapshot ({e:#}); continuing because etcd is not serving anyway")
            }
            Err(e) => return Err(e.context("taking an etcd snapshot before restarting etcd")),
        }
    }
    Stage::SaveState.start(rep);
    save()?;
    let walk = super::workflow::Options::with_gate_deadline(opts.gate_timeout);
    let outcome = super::execute(inp, survey, plan, rep, &walk)
        .await
        .context(
            "the rollout stopped there: the new certificates are in the state directory and on \
             the hosts already done, the rest still serve with the old ones (same CA, still \
             trusted). Fix what the gate reports, then run `provisioner apply` to finish",
        )?;
    Ok(Some(outcome))
}
