//! `reset`.

use anyhow::Result;

use super::output::confirm;
use super::{load, SUCCESS};
use crate::apply::reset;
use crate::apply::workflow::Stage;
use crate::apply::{lease, under_lease, Format, Session};
use crate::cli::ResetArgs;
use crate::plan::installed::{chosen, summary};

pub(super) fn reset(a: &ResetArgs) -> Result<u8> {
    let (keep_images, yes) = (a.keep_images, a.yes);
    let l = load(&a.inventory.inventory)?;
    let c = &l.cluster;
    let chosen = chosen(c, &a.hosts)?;
    let session = Session::start(&c.state_dir, Format::Text)?;
    // The lease hosts are reached too (the lease keeps other runs out), reset or not.
    let leased = lease::lease_hosts(c);
    let mut scope = c.clone();
    scope
        .hosts
        .retain(|h| chosen.contains(&h.name) || leased.contains(&h.name.as_str()));

    let rep = &session.rep;
    let parallel = c.ssh.parallelism as usize;
    let acted = session.block_on(async {
        let conns = crate::apply::open(&scope, rep).await?;
        let mut chosen_conns = conns.clone();
        chosen_conns.retain(|h, _| chosen.contains(h));
        Stage::ReadRecords.start(rep);
        let plans = reset::survey(&chosen_conns, keep_images, parallel).await?;
        let summary = summary(&plans, keep_images);
        if plans.iter().all(|p| p.reset.is_none()) {
            println!("{summary}nothing to reset");
            return anyhow::Ok(false);
        }
        eprint!("{summary}");
        if !yes {
            confirm(
                &format!("Type the cluster's name ({}) to go on: ", c.name),
                &c.name,
            )?;
        }
        let held = lease::take(c, &conns, "reset", false, rep).await?;
        let work = reset::reset(&conns, &plans, &leased, parallel, rep);
        under_lease(Some(held), work).await.map(|()| true)
    })?;
    if !acted {
        return Ok(SUCCESS);
    }

    if chosen.len() < c.hosts.len() {
        println!(
            "reset {}; their Node objects stay registered until deleted: kubectl delete node {}",
            chosen.join(", "),
            chosen.join(" ")
        );
    } else {
        println!(
            "reset every host of cluster {}. The state directory {} still holds its CAs and keys: \
             the next apply builds the same cluster again; remove it to build a new one",
            c.name,
            c.state_dir.display()
        );
    }
    Ok(SUCCESS)
}
