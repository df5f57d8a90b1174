//! `certs rotate-ca`: a new CA without downtime, in three stages each rolled out like
//! `certs regenerate` (one host at a time behind its gate) and recorded when done, so that the
//! same command continues an interrupted rotation. See [`crate::pki::rotation`] for the stages.

use anyhow::{bail, Result};

use super::rollout::{roll_out, Options};
use super::{Inputs, Session};
use crate::bundle::Bundle;
use crate::inventory::Cluster;
use crate::pki::rotation::{self, Rotated, Stage};
use crate::pki::{self, inspect, Ca};

/// What to rotate.
pub struct Target {
    pub cas: Vec<Ca>,
    pub service_account: bool,
    /// How long tokens signed by the old service-account key may live: its public key is
    /// trusted that long after the new key started signing.
    pub token_lifetime: std::time::Duration,
}

pub fn run(
    c: &Cluster,
    bundle: &Bundle,
    t: &Target,
    opts: &Options,
    session: &Session,
) -> Result<()> {
    let rep = &session.rep;
    let dir = pki::pki_dir(&c.state_dir);
    let which = t.cas.as_slice();
    let wanted = Rotated::list(which, t.service_account);
    let names = wanted
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ");
    let mut r = match rotation::read(&dir)? {
        Some(r) if r.cas != wanted => bail!(
            "a rotation of {} is in progress (stage {} of 3); finish it first: \
             `provisioner certs rotate-ca INVENTORY --ca {}`",
            r.cas
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", "),
            r.stage,
            r.option()
        ),
        Some(r) => {
            eprintln!(
                "resuming the rotation of {} at stage {} of 3 ({})",
                names,
                r.stage,
                r.stage.description()
            );
            r
        }
        None if opts.dry_run => {
            eprintln!("dry run: rotating {} would take three stages:", names);
            for s in Stage::ALL {
                eprintln!(
                    "  {s}. {}, rolled out one host at a time behind the health gates",
                    s.description()
                );
            }
            eprintln!("nothing was changed");
            return Ok(());
        }
        None => {
            super::stage::Stage::Backup.start(rep);
            let backup = pki::backup(&c.state_dir, c.keep_backups)?;
            eprintln!(
                "backed up the state directory's PKI and secrets to {}",
                backup.display()
            );
            let r = rotation::start(&dir, which, t.service_account, &c.pki)?;
            eprintln!("created the new {}", names);
            r
        }
    };
    loop {
        let stage = r.stage;
        if let (Stage::DropOld, Some(since)) = (stage, r.new_key_signing_since) {
            let lifetime = r.token_lifetime_secs.unwrap_or(t.token_lifetime.as_secs());
            let until = since.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX));
            if time::OffsetDateTime::now_utc().unix_timestamp() < until {
                // Said on stderr in every output format: the operator must come back later.
                eprintln!(
                    "stages 1 and 2 are done. The old service-account public key stays trusted until {} \
                     so that the tokens it signed can expire; run the same command again after that to \
                     finish (stage 3)",
                    crate::pki::inspect::rfc3339(until)
                );
                return Ok(());
            }
        }
        rep.note(&format!("stage {stage} of 3: {}", stage.description()));
        super::stage::Stage::Pki.start(rep);
        let (mut p, _) = pki::ensure(c)?;
        let mut ids = Vec::new();
        if stage == Stage::NewSigns {
            // Only what the new CA has not signed yet, so a resumed stage reissues nothing twice.
            for (s, pem) in p.leaves() {
                let signer = &p.ca(s.ca).cert;
                if which.contains(&s.ca) && !inspect::signed_by(&pem.cert, signer)? {
                    ids.push(s.id());
                }
            }
            p.reissue(c, &ids)?;
        }
        let rendered = super::render(c, &p, rep)?;
        let inputs = Inputs {
            cluster: c,
            rendered: &rendered,
            pki: &p,
            bundle,
        };
        let what = match stage {
            Stage::NewSigns => format!("reissue {} certificate(s) from the new CA", ids.len()),
            _ => stage.description().to_string(),
        };
        let save = || pki::save_leaves(c, &p, &ids);
        let done = session.block_on(roll_out(&inputs, &what, false, opts, rep, save))?;
        if done.is_none() {
            return Ok(());
        }
        let Some(next) = stage.next() else {
            rotation::finish(&dir, &r)?;
            rep.note(&format!("the rotation of {} is complete", names));
            return Ok(());
        };
        r.stage = next;
        if r.stage == Stage::DropOld && r.includes_service_account() {
            r.new_key_signing_since = Some(time::OffsetDateTime::now_utc().unix_timestamp());
            r.token_lifetime_secs = Some(t.token_lifetime.as_secs());
        }
        rotation::write(&dir, &r)?;
        if crate::testhook::stop_after_stage(stage.number()) {
            bail!(
                "stopped after stage {stage} by {}",
                crate::testhook::STOP_AFTER_STAGE
            );
        }
    }
}
