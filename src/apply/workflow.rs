//! What runs, in what order. A newcomer's answer to "what does `apply` do?":
//!
//! `plan`: [`connect`](super::connect) → [`open`](super::open) (every host belongs to this
//! cluster) → [`survey`](super::survey) (facts, preflight) → [`make_plan`](super::make_plan).
//!
//! `apply`: the same, under the cluster's [`lease`](super::lease), then [`execute`]: the files
//! of every host, then [`PHASES`] in order, each unit action behind its phase's gate.
//!
//! `certs regenerate` and `certs rotate-ca`: the same survey and plan, then
//! [`rollout`](super::rollout): [`check_health`], a backup of the state directory, an etcd
//! snapshot when etcd restarts, the new state saved, then [`execute`].
//!
//! `status`: [`status::collect`](super::status::collect), which only reads: every host (an
//! unreachable one is a finding), its facts and versions, etcd, the API server, the Nodes, the
//! state directory's certificates, and the plan's size.
//!
//! `etcd snapshot`: [`open`](super::open), then [`snapshot::take`](super::snapshot::take).
//! `etcd restore`: [`open`](super::open), the lease, then
//! [`restore::restore`](super::restore::restore): copy, stop, restore each member, and
//! [`execute`] of etcd, the API servers and the controllers.
//!
//! `reset`: [`open`](super::open) of the chosen hosts and the lease hosts,
//! [`reset::survey`](super::reset::survey) (each host's record of what was installed), the
//! lease, then [`reset::reset`](super::reset::reset): the other hosts, then the lease hosts.

use std::time::Duration;

use anyhow::Result;

use super::execute::{self as engine};
use super::gates::Gates;
use super::{Inputs, Outcome, Reporter, Survey};
use crate::component::Phase;
use crate::plan::Plan;

/// The phases of a rollout, in order: a later phase's units depend on the earlier ones'.
pub const PHASES: [Phase; 9] = [
    Phase::Etcd,
    Phase::ApiServer,
    Phase::Controllers,
    Phase::Rbac,
    // All container runtimes (and their images) before any kubelet, so no pod waits for a pull.
    Phase::Containerd,
    Phase::Workers,
    Phase::PodRoutes,
    // Once every node is Ready and routes carry pod traffic between them.
    Phase::Addons,
    Phase::Schedules,
];

/// Executes a plan made from `s` by [`make_plan`](super::make_plan), each gate waiting at
/// most `gate_deadline`.
pub async fn execute(
    inp: &Inputs<'_>,
    s: &Survey,
    p: &Plan,
    rep: &Reporter,
    gate_deadline: Duration,
) -> Result<Outcome> {
    let gates = Gates {
        inp,
        deadline: gate_deadline,
        conns: &s.conns,
        rep,
    };
    let parallel = inp.cluster.ssh.parallelism as usize;
    engine::execute(&s.conns, &s.desired, p, &PHASES, &gates, parallel, rep).await
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
        conns: &s.conns,
        rep,
    };
    rep.phase("health check");
    engine::check(&s.desired, &PHASES, &gates).await
}
