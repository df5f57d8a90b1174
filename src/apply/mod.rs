//! The runner: the only part of provisioner that touches hosts, each through the [`Remote`]
//! interface. What runs, in which order, is in [`workflow`]; each step has its file:
//! `connect` (SSH and the cluster identity), `survey` (facts and preflight), `files`,
//! `execute` (the phases and their restarts), `gates/` (one health gate per phase), `rollout`
//! (a certificate rollout, as `certs regenerate` runs it), `rotate_ca` (the three rollouts of
//! `certs rotate-ca`), `status`, `snapshot`, `restore` and `reset`.

mod api;
pub mod check_certs;
mod connect;
pub mod converge;
mod dns;
mod etcd_members;
mod execute;
#[cfg(test)]
mod fake;
pub mod files;
mod gates;
pub mod health;
pub mod lease;
pub mod recover;
pub mod regenerate;
mod remote;
pub mod report;
pub mod reset;
pub mod restore;
pub mod rollback;
pub mod rollout;
pub mod rotate_ca;
mod session;
pub mod snapshot;
mod stage;
pub mod status;
mod survey;
pub mod workflow;

use crate::bundle::Bundle;
use crate::inventory::Cluster;
use crate::pki::Pki;
use crate::render::Rendered;
pub use connect::{connect, open};
pub use remote::Remote;
pub use report::{Format, Reporter};
pub use session::{ensure_pki, load, under_lease, Session};
pub use survey::{make_plan, survey, survey_for, Survey};
pub use workflow::{check_health, execute};

/// The render stage: announced, then every host's files rendered from `c` and `pki`.
fn render(c: &Cluster, pki: &Pki, rep: &Reporter) -> anyhow::Result<Rendered> {
    stage::Stage::Render.start(rep);
    crate::render::render(c, pki)
}

pub struct Inputs<'a> {
    pub cluster: &'a Cluster,
    pub rendered: &'a Rendered,
    pub pki: &'a Pki,
    pub bundle: &'a Bundle,
}

/// What a run did, for the summary and the tests.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub files_written: usize,
    pub units_started: usize,
    pub units_restarted: usize,
    pub images_imported: usize,
    pub seconds: f64,
    pub transfer_seconds: f64,
    pub wait_seconds: f64,
}
