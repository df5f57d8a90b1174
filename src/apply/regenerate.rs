//! `certs regenerate`: leaf certificates reissued from the same CAs and rolled out like a
//! rotation stage (see [`super::rollout`]), the cluster serving throughout.

use anyhow::Result;

use super::rollout::{roll_out, Options};
use super::stage::Stage;
use super::{Inputs, Outcome, Session};
use crate::bundle::Bundle;
use crate::certs::regenerate::{any_expired, select, Selection};
use crate::inventory::Cluster;
use crate::pki;

/// Certificates expiring within this many days are regenerated without being named.
const RENEW_WITHIN_DAYS: i64 = 30;

pub enum Regenerated {
    /// Nothing was selected: every certificate matches the inventory and has time left.
    Nothing,
    /// These certificates were replaced; what the rollout did (none for a dry run).
    Done {
        ids: Vec<String>,
        outcome: Option<Outcome>,
    },
}

pub fn run(
    c: &Cluster,
    bundle: &Bundle,
    sel: &Selection,
    opts: &Options,
    session: &Session,
    now: i64,
) -> Result<Regenerated> {
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let (listed, mut pki) = pki::existing(c)?;
    let ids = select(c, &listed, sel, RENEW_WITHIN_DAYS, now)?;
    if ids.is_empty() {
        return Ok(Regenerated::Nothing);
    }
    eprintln!(
        "regenerating {} certificate(s): {}",
        ids.len(),
        ids.join(", ")
    );
    let expired = any_expired(&listed, &ids, now);
    pki.reissue(c, &ids)?;
    let rendered = super::render(c, &pki, rep)?;
    let inputs = Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle,
    };
    let what = format!("replace {} certificate(s)", ids.len());
    let save = || pki::save_leaves(c, &pki, &ids);
    let outcome = session.block_on(roll_out(&inputs, &what, expired, opts, rep, save))?;
    Ok(Regenerated::Done { ids, outcome })
}
