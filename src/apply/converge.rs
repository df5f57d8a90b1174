//! `plan` and `apply`, from a loaded inventory: the hosts' identity checked before the PKI is
//! touched, the cluster's lease taken for apply, then [`workflow::converge`].

use std::path::Path;

use anyhow::Result;

use super::stage::Stage;
use super::workflow::{self, Converged};
use super::{lease, under_lease, Inputs, Session};
use crate::inventory::Cluster;

/// What `apply` adds to `plan`.
pub struct ApplyOptions {
    pub walk: workflow::Options,
    pub break_lease: bool,
    /// Hosts the inventory no longer names that the operator confirms are to be removed.
    pub remove: Vec<String>,
}

/// `plan` (`apply` is None) or `apply` of `c`, read from `inventory`.
pub fn run(
    c: &mut Cluster,
    inventory: &Path,
    apply: Option<ApplyOptions>,
    rehash: bool,
    session: &Session,
) -> Result<Converged> {
    let bundle = crate::bundle::cluster::open_for(c, inventory)?;
    let c = &*c;
    let members = crate::members::load(&c.state_dir)?;
    let remove = apply.as_ref().map(|a| a.remove.as_slice());
    let leaving = crate::members::leaving(c, &members, remove)?;
    let rep = &session.rep;
    session.block_on(async {
        // The hosts' identity is checked before the PKI is created: a missing state directory
        // must not gain a new cluster's CAs while the hosts run another's.
        let conns = super::open(c, rep).await?;
        let held = match &apply {
            Some(a) => Some(lease::take(c, &conns, "apply", a.break_lease, rep).await?),
            None => None,
        };
        under_lease(held, async {
            Stage::Pki.start(rep);
            let pki = super::session::ensure_pki(c, inventory)?;
            let rendered = super::render(c, &pki, rep)?;
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
    })
}
