//! `reset`.

use anyhow::Result;

use super::output::confirm;
use super::{load, SUCCESS};
use crate::apply::reset::{self, Outcome};
use crate::apply::{Format, Session};
use crate::cli::ResetArgs;
use crate::plan::installed::chosen;

pub(super) fn reset(a: &ResetArgs) -> Result<u8> {
    let l = load(&a.inventory.inventory)?;
    let c = &l.cluster;
    let chosen = chosen(c, &a.hosts)?;
    let session = Session::start(&c.state_dir, Format::Text)?;
    let approve = |summary: &str| {
        eprint!("{summary}");
        match a.yes {
            true => Ok(()),
            false => confirm(
                &format!("Type the cluster's name ({}) to go on: ", c.name),
                &c.name,
            ),
        }
    };
    match reset::run(c, &chosen, a.keep_images, &session, approve)? {
        Outcome::Nothing(summary) => println!("{summary}nothing to reset"),
        Outcome::Done if chosen.len() < c.hosts.len() => println!(
            "reset {}; their Node objects stay registered until deleted: kubectl delete node {}",
            chosen.join(", "),
            chosen.join(" ")
        ),
        Outcome::Done => println!(
            "reset every host of cluster {}. The state directory {} still holds its CAs and keys: \
             the next apply builds the same cluster again; remove it to build a new one",
            c.name,
            c.state_dir.display()
        ),
    }
    Ok(SUCCESS)
}
