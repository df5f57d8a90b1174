//! What runs, in what order, for every command that talks to hosts: each command's
//! [`Stage`]s as a list below, announced in the output (`==> NAME`) as they start. Each runs in
//! a [`Session`](super::Session) (the state directory's lock, the runtime and the output);
//! those that change hosts hold the cluster's [`lease`](super::lease) around the work
//! ([`under_lease`](super::under_lease)). [`Stage::Files`] and [`Stage::Phases`] are the
//! engine's ([`execute`]): the files of every host, then [`PHASES`] in order, each unit action
//! behind its phase's gate. `status` has no stages: it connects to every host of every cluster
//! and asks them all at once, changing nothing (see [`super::status`]).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::execute::{self as engine};
use super::gates::Gates;
pub use super::stage::Stage;
use super::{Inputs, Outcome, Reporter, Survey};
use crate::component::{Phase, Release};
use crate::inventory::Cluster;
use crate::members::Members;
use crate::plan::upgrade::record_history;
use crate::plan::Plan;
use crate::transport::Connection;

/// `plan`.
pub const PLAN: &[Stage] = &[
    Stage::Connect,
    Stage::Identity,
    Stage::Pki,
    Stage::Render,
    Stage::Survey,
    Stage::Plan,
];
/// `apply`: [`converge`]; a stage with nothing to do (no removal, no version change) is
/// passed over.
pub const APPLY: &[Stage] = &[
    Stage::Connect,
    Stage::Identity,
    Stage::Lease,
    Stage::Pki,
    Stage::Render,
    Stage::Survey,
    Stage::Plan,
    Stage::SkewCheck,
    Stage::Members,
    Stage::UpgradePreparation,
    Stage::RemoveHosts,
    Stage::Files,
    Stage::Phases,
    Stage::PruneVersions,
];
/// `rollback`: [`rollback`] (no lease and no execution in a dry run).
pub const ROLLBACK: &[Stage] = &[
    Stage::Pki,
    Stage::Render,
    Stage::Connect,
    Stage::Identity,
    Stage::Lease,
    Stage::Survey,
    Stage::Plan,
    Stage::Files,
    Stage::Phases,
];
/// `certs check`.
pub const CERTS_CHECK: &[Stage] = &[
    Stage::Pki,
    Stage::Render,
    Stage::Connect,
    Stage::ReadCertificates,
];
/// `certs regenerate`: [`rollout`](super::rollout) after the reissue.
pub const CERTS_REGENERATE: &[Stage] = &[
    Stage::Pki,
    Stage::Render,
    Stage::Connect,
    Stage::Identity,
    Stage::Survey,
    Stage::Plan,
    Stage::Lease,
    Stage::HealthCheck,
    Stage::Backup,
    Stage::EtcdSnapshot,
    Stage::SaveState,
    Stage::Files,
    Stage::Phases,
];
/// `certs rotate-ca`: the state directory backed up when a rotation starts; then, for each of
/// the rotation's three stages (recorded when done), the stages from `Pki` on.
pub const CERTS_ROTATE_CA: &[Stage] = &[
    Stage::Backup,
    Stage::Pki,
    Stage::Render,
    Stage::Connect,
    Stage::Identity,
    Stage::Survey,
    Stage::Plan,
    Stage::Lease,
    Stage::HealthCheck,
    Stage::Backup,
    Stage::EtcdSnapshot,
    Stage::SaveState,
    Stage::Files,
    Stage::Phases,
];
/// `etcd snapshot`.
pub const ETCD_SNAPSHOT: &[Stage] = &[Stage::Connect, Stage::Identity, Stage::EtcdSnapshot];
/// `etcd restore`: [`restore`](super::restore::restore).
pub const ETCD_RESTORE: &[Stage] = &[
    Stage::Pki,
    Stage::Render,
    Stage::Connect,
    Stage::Identity,
    Stage::Lease,
    Stage::CopySnapshot,
    Stage::StopControlPlane,
    Stage::RestoreMembers,
    Stage::Files,
    Stage::Phases,
];
/// `reset`: the chosen hosts and the lease hosts; the lease hosts are reset last.
pub const RESET: &[Stage] = &[
    Stage::Connect,
    Stage::Identity,
    Stage::ReadRecords,
    Stage::Lease,
    Stage::Reset,
];
/// `state recover`.
pub const STATE_RECOVER: &[Stage] = &[Stage::Connect, Stage::ReadKeys];

/// The phases of a rollout, in order: a later phase's units depend on the earlier ones'.
pub const PHASES: [Phase; 11] = [
    Phase::Etcd,
    Phase::ApiServer,
    Phase::Controllers,
    Phase::Rbac,
    // Each worker's way to the API servers, before its kubelet and kube-proxy use it.
    Phase::ApiLoadBalancer,
    // All container runtimes (and their images) before any kubelet, so no pod waits for a pull.
    Phase::Containerd,
    Phase::Workers,
    Phase::PodRoutes,
    // Each worker enforces NetworkPolicy before any workload runs on it.
    Phase::NetworkPolicy,
    // Once every node is Ready and routes carry pod traffic between them.
    Phase::Addons,
    Phase::Schedules,
];

/// The phases of a rollback, the upgrade's order reversed so that no kubelet ever runs newer
/// than the API servers; the phases acting on the API come last, once everything runs.
pub const ROLLBACK_PHASES: [Phase; 11] = [
    Phase::NetworkPolicy,
    Phase::Workers,
    Phase::Containerd,
    Phase::PodRoutes,
    Phase::ApiLoadBalancer,
    Phase::Controllers,
    Phase::ApiServer,
    Phase::Etcd,
    Phase::Rbac,
    Phase::Addons,
    Phase::Schedules,
];

/// How [`execute`] walks the plan.
pub struct Options {
    /// How long each gate may wait.
    pub gate_deadline: Duration,
    /// Workers changing version at once.
    pub max_unavailable: usize,
    /// How long a worker's pods may take to leave it.
    pub drain_deadline: Duration,
}

impl Options {
    /// One worker at a time, drains taking at most five minutes.
    pub fn with_gate_deadline(gate_deadline: Duration) -> Options {
        Options {
            gate_deadline,
            max_unavailable: 1,
            drain_deadline: Duration::from_secs(300),
        }
    }
}

/// What [`converge`] did.
pub enum Converged {
    /// `plan`: the plan, nothing changed.
    Planned(Plan),
    /// `apply`: what it did.
    Applied(Outcome),
}

/// `plan` (`walk` is None) and `apply`, once the hosts are connected (and, for apply, leased):
/// the survey and the plan; for apply then the skew check, the members record, the upgrade's
/// preparation, the leaving hosts' removal, [`execute`], and the old versions pruned.
pub async fn converge(
    inp: &Inputs<'_>,
    conns: BTreeMap<String, Connection>,
    members: &Members,
    leaving: &Cluster,
    walk: Option<&Options>,
    rehash: bool,
    rep: &Reporter,
) -> Result<Converged> {
    let c = inp.cluster;
    let survey = super::survey(inp, conns, rehash, rep).await?;
    Stage::Plan.start(rep);
    let plan = super::make_plan(&survey).with_members(leaving, &members.new_etcd_members(c));
    let Some(walk) = walk else {
        return Ok(Converged::Planned(plan));
    };
    Stage::SkewCheck.start(rep);
    if !plan.refused.is_empty() {
        rep.plan(&plan);
        bail!(
            "{}\nNothing was changed: these version changes break upstream's version-skew \
             policy. Use a bundle one minor up from what the hosts run.",
            plan.refused.join("\n")
        );
    }
    // Every host is recorded before anything touches it.
    Stage::Members.start(rep);
    let record = members.with(c);
    if record != *members {
        crate::members::save(&c.state_dir, &record)?;
    }
    if plan.is_empty() && plan.removals.is_empty() {
        rep.note("Nothing to do: every host matches the inventory.");
        return Ok(Converged::Applied(Outcome::default()));
    }
    rep.plan(&plan);
    if !plan.versions.is_empty() {
        Stage::UpgradePreparation.start(rep);
        prepare_upgrade(inp, &survey, &plan).await?;
    }
    if !plan.removals.is_empty() {
        remove_hosts(inp, &survey, leaving, rep, walk)
            .await
            .context("removing hosts; the plan's other changes were not made")?;
        crate::members::save(&c.state_dir, &record.without(&plan.removals))?;
    }
    let outcome = execute(inp, &survey, &plan, rep, walk).await?;
    if !plan.versions.is_empty() {
        Stage::PruneVersions.start(rep);
        let history = crate::history::load(&c.state_dir)?;
        super::files::prune_versions(&survey.conns, &survey.desired, &history, rep).await?;
    }
    Ok(Converged::Applied(outcome))
}

/// Before a version change: the versions it starts from go to the state directory (for
/// `rollback`), and etcd is snapshotted when its version changes.
async fn prepare_upgrade(inp: &Inputs<'_>, survey: &Survey, plan: &Plan) -> Result<()> {
    let dir = &inp.cluster.state_dir;
    let history = record_history(crate::history::load(dir)?, &plan.versions);
    crate::history::save(dir, &history)?;
    if plan
        .versions
        .iter()
        .any(|m| m.release == Release::Etcd.name())
    {
        let said = super::snapshot::take_on_host(inp.cluster, &survey.conns)
            .await
            .context("taking an etcd snapshot before etcd changes version; nothing was changed")?;
        eprintln!("{said}");
    }
    Ok(())
}

/// Executes a plan made from `s` by [`make_plan`](super::make_plan). A version change walks
/// the same [`PHASES`]: etcd one member at a time, the API servers one host at a time, then
/// the controllers, then the workers drained in batches.
pub async fn execute(
    inp: &Inputs<'_>,
    s: &Survey,
    p: &Plan,
    rep: &Reporter,
    opts: &Options,
) -> Result<Outcome> {
    walk(inp, s, p, &PHASES, rep, opts).await
}

/// What [`rollback`] did.
pub enum RolledBack {
    /// Every host already runs the recorded previous versions.
    Nothing,
    /// The plan of a dry run, nothing changed.
    DryRun(Plan),
    Done,
}

/// `rollback`, once the hosts are connected (and, unless a dry run, leased): the survey
/// towards `desired` (the previous versions), refused when a host no longer has one of them,
/// then [`roll_back`].
pub async fn rollback(
    inp: &Inputs<'_>,
    desired: Vec<crate::plan::DesiredHost>,
    conns: BTreeMap<String, Connection>,
    dry_run: bool,
    walk: &Options,
    rep: &Reporter,
) -> Result<RolledBack> {
    let survey = super::survey_for(inp, desired, conns, false, rep).await?;
    super::survey::missing_versions(&survey).await?;
    Stage::Plan.start(rep);
    let mut plan = super::make_plan(&survey);
    // The versions come from the record of an upgrade that passed the skew checks the
    // other way; going back one minor to them is what rollback is for.
    plan.refused.clear();
    if plan.is_empty() {
        return Ok(RolledBack::Nothing);
    }
    if dry_run {
        return Ok(RolledBack::DryRun(plan));
    }
    rep.plan(&plan);
    roll_back(inp, &survey, &plan, rep, walk).await?;
    Ok(RolledBack::Done)
}

/// Executes a rollback's plan (see [`ROLLBACK_PHASES`]).
pub async fn roll_back(
    inp: &Inputs<'_>,
    s: &Survey,
    p: &Plan,
    rep: &Reporter,
    opts: &Options,
) -> Result<Outcome> {
    walk(inp, s, p, &ROLLBACK_PHASES, rep, opts).await
}

async fn walk(
    inp: &Inputs<'_>,
    s: &Survey,
    p: &Plan,
    phases: &[Phase],
    rep: &Reporter,
    opts: &Options,
) -> Result<Outcome> {
    let gates = Gates {
        inp,
        deadline: opts.gate_deadline,
        drain_deadline: opts.drain_deadline,
        conns: &s.conns,
        rep,
    };
    let walk = engine::Walk {
        parallel: inp.cluster.ssh.parallelism as usize,
        max_unavailable: opts.max_unavailable,
    };
    engine::execute(&s.conns, &s.desired, p, phases, &gates, &walk, rep).await
}

/// Removes the hosts of `leaving` (hosts the inventory no longer names, confirmed with
/// `apply --remove`): connected to (their identity checked like any host's); refused first when
/// the etcd members that stay would have no quorum; drained through the Eviction API, their
/// Nodes deleted, their etcd members removed from the cluster while they still run, then reset
/// from their own records.
pub async fn remove_hosts(
    inp: &Inputs<'_>,
    s: &Survey,
    leaving: &crate::inventory::Cluster,
    rep: &Reporter,
    opts: &Options,
) -> Result<()> {
    Stage::RemoveHosts.start(rep);
    let conns = super::open(leaving, rep).await?;
    let names: Vec<&str> = leaving.hosts.iter().map(|h| h.name.as_str()).collect();
    let gates = Gates {
        inp,
        deadline: opts.gate_deadline,
        drain_deadline: opts.drain_deadline,
        conns: &s.conns,
        rep,
    };
    let members: Vec<&crate::inventory::Host> =
        leaving.hosts.iter().filter(|h| h.roles.etcd).collect();
    if !members.is_empty() {
        let names: Vec<&str> = members.iter().map(|h| h.name.as_str()).collect();
        gates.etcd_quorum_without(&names).await?;
    }
    engine::Health::drain(&gates, &names).await?;
    gates.delete_nodes(&names).await?;
    for h in members {
        let peer_url = h.etcd_peer_url();
        gates.remove_etcd_member(&h.name, &peer_url).await?;
    }
    let parallel = inp.cluster.ssh.parallelism as usize;
    let plans = super::reset::survey(&conns, false, parallel).await?;
    super::reset::reset(&conns, &plans, &[], parallel, rep).await
}

/// Runs every health gate against the cluster as it is (each unit of each host, as if it had
/// just been started), without changing anything. `certs regenerate` refuses to start on a
/// cluster that fails one.
pub async fn check_health(
    inp: &Inputs<'_>,
    s: &Survey,
    rep: &Reporter,
    deadline: Duration,
) -> Result<()> {
    let gates = Gates {
        inp,
        deadline,
        drain_deadline: deadline,
        conns: &s.conns,
        rep,
    };
    Stage::HealthCheck.start(rep);
    engine::check(&s.desired, &PHASES, &gates).await
}
