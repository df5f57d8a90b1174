//! `rollback`: every host back to the versions recorded before the last upgrade.

use anyhow::Result;

use super::{ensure_pki, load, SUCCESS};
use crate::apply::workflow::{self, RolledBack, Stage};
use crate::apply::{lease, under_lease, Inputs, Session};
use crate::cli::RollbackArgs;
use crate::history;
use crate::plan::rollback::{at_versions, retarget, split};

pub(super) fn rollback(a: &RollbackArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, a.output.format())?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let recorded = history::load(&l.cluster.state_dir)?;
    let (back, kept) = split(&recorded);
    // Rendered as at the previous versions: their files too (containerd's configuration format
    // depends on its minor).
    at_versions(&mut l.cluster, &back)?;
    let c = &l.cluster;
    for (release, step) in &kept {
        eprintln!(
            "{release} stays at {}: its data cannot go back to {} (restore an etcd snapshot \
             taken before the upgrade for that)",
            step.to, step.previous
        );
    }
    if back.is_empty() {
        println!(
            "nothing to roll back: no upgrade is recorded in {}",
            c.state_dir.display()
        );
        return Ok(SUCCESS);
    }
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let pki = ensure_pki(&l, path)?;
    Stage::Render.start(rep);
    let rendered = crate::render::render(c, &pki)?;
    let inputs = Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle: &bundle,
    };
    let desired = retarget(crate::plan::desired(&rendered, &bundle)?, &back);
    let done = session.block_on(async {
        let conns = crate::apply::open(c, rep).await?;
        let held = match a.dry_run {
            true => None,
            false => Some(lease::take(c, &conns, "rollback", a.break_lease, rep).await?),
        };
        let walk = a.walk.options();
        let work = workflow::rollback(&inputs, desired, conns, a.dry_run, &walk, rep);
        under_lease(held, work).await
    })?;
    match done {
        RolledBack::Nothing => {
            println!("nothing to roll back: every host runs the recorded previous versions")
        }
        RolledBack::DryRun(plan) => {
            eprint!("{}", crate::plan::text(&plan));
            println!("dry run: rollback would make the changes above; nothing was changed");
        }
        RolledBack::Done => {
            // What stays recorded is what could not go back.
            history::save(&c.state_dir, &kept)?;
            let list: Vec<String> = back
                .iter()
                .map(|(r, s)| format!("{r} {} → {}", s.to, s.previous))
                .collect();
            println!(
                "rolled back {}. The inventory still names its bundle ({}): point it at the \
                 previous bundle, or the next apply upgrades again",
                list.join(", "),
                bundle.dir.display()
            );
        }
    }
    Ok(SUCCESS)
}
