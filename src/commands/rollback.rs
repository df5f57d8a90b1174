//! `rollback`: every host back to the versions recorded before the last upgrade.

use anyhow::Result;

use super::{load, SUCCESS};
use crate::apply::rollback::{self, Options};
use crate::apply::workflow::RolledBack;
use crate::apply::Session;
use crate::cli::RollbackArgs;

pub(super) fn rollback(a: &RollbackArgs) -> Result<u8> {
    let path = &a.inventory.inventory;
    let mut l = load(path)?;
    let session = Session::start(&l.cluster.state_dir, a.output.format())?;
    let opts = Options {
        walk: a.walk.options(),
        break_lease: a.break_lease,
        dry_run: a.dry_run,
    };
    let r = rollback::run(&mut l.cluster, path, &opts, &session)?;
    for (release, step) in &r.kept {
        eprintln!(
            "{release} stays at {}: its data cannot go back to {} (restore an etcd snapshot \
             taken before the upgrade for that)",
            step.to, step.previous
        );
    }
    match r.done {
        None => println!(
            "nothing to roll back: no upgrade is recorded in {}",
            l.cluster.state_dir.display()
        ),
        Some(RolledBack::Nothing) => {
            println!("nothing to roll back: every host runs the recorded previous versions")
        }
        Some(RolledBack::DryRun(plan)) => {
            eprint!("{}", crate::plan::text(&plan));
            println!("dry run: rollback would make the changes above; nothing was changed");
        }
        Some(RolledBack::Done) => {
            let list: Vec<String> = r
                .back
                .iter()
                .map(|(release, s)| format!("{release} {} → {}", s.to, s.previous))
                .collect();
            println!(
                "rolled back {}. The inventory still names its bundle ({}): point it at the \
                 previous bundle, or the next apply upgrades again",
                list.join(", "),
                l.cluster
                    .bundle
                    .as_ref()
                    .map_or(String::new(), |b| b.display().to_string()),
            );
        }
    }
    Ok(SUCCESS)
}
