//! The commands, one file per family: each takes what clap parsed (`bundle` and `sandbox`
//! declare their own subcommands) and calls the library; this file dispatches and holds what
//! several commands share. A command returns its exit status instead of exiting.

pub mod bundle;
mod certs;
mod converge;
mod etcd;
mod render;
mod reset;
mod rollback;
pub mod sandbox;
mod state;
mod status;

use std::path::Path;

use anyhow::{Context, Result};

use crate::cli::{CertsCommand, Cli, Command, EtcdCommand, Output, StateCommand};
use crate::inventory::{self, Loaded};
use crate::pki;

/// Exit status of a command that did what it was asked.
pub const SUCCESS: u8 = 0;

/// Runs the command `cli` names; returns its exit status (see `provisioner --help`).
pub fn run(cli: Cli) -> Result<u8> {
    let verbose = cli.verbose > 0;
    match cli.command {
        Command::Validate(a) => render::validate(&a.inventory),
        Command::Render { inventory, out } => render::render_cmd(&inventory.inventory, &out),
        Command::Kubeconfig(a) => render::kubeconfig(&a.inventory),
        Command::Plan {
            inventory,
            output,
            rehash,
        } => converge::converge(&inventory.inventory, output, None, rehash),
        Command::Apply {
            inventory,
            output,
            walk,
            remove,
            rehash,
            break_lease,
        } => converge::converge(
            &inventory.inventory,
            output,
            Some(converge::ApplyOptions {
                walk: walk.options(),
                break_lease,
                remove,
            }),
            rehash,
        ),
        Command::Rollback {
            inventory,
            output,
            walk,
            break_lease,
            dry_run,
        } => rollback::rollback(
            &inventory.inventory,
            output,
            &rollback::Options {
                walk: walk.options(),
                break_lease,
                dry_run,
            },
        ),
        Command::Certs(CertsCommand::List { inventory, output }) => {
            certs::certs_list(&inventory.inventory, output)
        }
        Command::Certs(CertsCommand::RotateCa {
            inventory,
            ca,
            token_lifetime,
            rollout,
        }) => certs::certs_rotate_ca(&inventory.inventory, ca, token_lifetime, &rollout),
        Command::Certs(CertsCommand::Check {
            inventory,
            output,
            warn_days,
        }) => certs::certs_check(&inventory.inventory, output, warn_days, verbose),
        Command::Certs(CertsCommand::Regenerate {
            inventory,
            certs,
            hosts,
            all,
            rollout,
        }) => certs::certs_regenerate(
            &inventory.inventory,
            &crate::certs::regenerate::Selection { certs, hosts, all },
            &rollout,
        ),
        Command::Status {
            inventories,
            output,
            warn_days,
        } => status::status(&inventories, output, warn_days),
        Command::Etcd(EtcdCommand::Snapshot {
            inventory,
            out,
            keep,
        }) => etcd::snapshot(&inventory.inventory, out.as_deref(), keep),
        Command::Etcd(EtcdCommand::Restore {
            inventory,
            snapshot,
            yes,
            gate_timeout,
        }) => etcd::restore(&inventory.inventory, &snapshot, yes, gate_timeout),
        Command::Reset {
            inventory,
            hosts,
            keep_images,
            yes,
        } => reset::reset(&inventory.inventory, &hosts, keep_images, yes),
        Command::State(StateCommand::Recover(a)) => state::state_recover(&a.inventory),
        Command::Sandbox(cmd) => sandbox::run(&cmd).map(|()| SUCCESS),
        Command::Bundle(cmd) => bundle::run(cmd).map(|()| SUCCESS),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&inventory::schema())?);
            Ok(SUCCESS)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "provisioner", &mut std::io::stdout());
            Ok(SUCCESS)
        }
    }
}

/// Loads the inventory, keeps the pod ranges the state directory recorded (see
/// [`crate::members`]), takes the component versions its bundle carries (see
/// [`crate::bundle::versions`]), and prints the warnings to stderr.
fn load(path: &Path) -> Result<Loaded> {
    let mut loaded = inventory::load(path)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    let members = crate::members::load(&loaded.cluster.state_dir)?;
    crate::members::keep_pod_ranges(&mut loaded.cluster, &members);
    crate::members::mark_etcd_joins(&mut loaded.cluster, &members);
    // A bundle that cannot be read is reported by the commands that open it.
    let Some(bundle) = loaded.cluster.bundle.clone() else {
        return Ok(loaded);
    };
    if let Ok(m) = crate::bundle::peek_manifest(&bundle) {
        let shown = bundle.display().to_string();
        match crate::bundle::versions::adopt(&mut loaded.cluster, &m, &shown) {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
            }
            Err(problems) => return Err(inventory::invalid_at(path, problems).into()),
        }
    }
    Ok(loaded)
}

/// Creates what the PKI lacks and tells the operator what happened, including stale certificates.
fn ensure_pki(l: &Loaded, inventory: &Path) -> Result<pki::Pki> {
    let (pki, report) = pki::ensure(&l.cluster)
        .with_context(|| format!("preparing the PKI in {}", l.cluster.state_dir.display()))?;
    if !report.created.is_empty() {
        eprintln!(
            "created in {}: {}",
            l.cluster.state_dir.display(),
            report.created.join(", ")
        );
    }
    // A first render issues hundreds on a large cluster: a count then, the list with -v.
    match report.issued.len() {
        0 => {}
        n @ 1..=8 => eprintln!("issued {n} certificate(s): {}", report.issued.join(", ")),
        n => {
            eprintln!("issued {n} certificate(s) (-v lists them)");
            tracing::debug!(certificates = %report.issued.join(", "), "issued");
        }
    }
    for (id, why) in &report.reissued {
        eprintln!(
            "reissued {id} for the new control-plane host(s) ({}); the API servers restart one at a time to use it",
            why.join("; ")
        );
    }
    if !report.stale.is_empty() {
        eprintln!(
            "warning: {} certificate(s) no longer match the inventory; they were kept and are still used:",
            report.stale.len()
        );
        for (id, why) in &report.stale {
            eprintln!("  {id}: {}", why.join("; "));
        }
        eprintln!(
            "Replace them explicitly with `provisioner certs regenerate {}` (it restarts only the services that use them).",
            inventory.display()
        );
    }
    Ok(pki)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The PKI as the state directory holds it, refusing to create anything: the lifecycle commands
/// work on a cluster that exists.
fn existing_pki(l: &Loaded) -> Result<(Vec<pki::Listed>, pki::Pki)> {
    let listed = pki::list(&l.cluster)?;
    let missing: Vec<String> = listed
        .iter()
        .filter(|r| r.info.is_none())
        .map(pki::Listed::id)
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the state directory {} lacks {}: this command works on a cluster built by `provisioner apply`; run that first",
            l.cluster.state_dir.display(),
            missing.join(", ")
        );
    }
    let (pki, _) = pki::ensure(&l.cluster)?;
    Ok((listed, pki))
}

/// Prints `value` on stdout: as JSON, or as `text` renders it for people.
fn emit<T: serde::Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Text => print!("{}", text(value)),
    }
    Ok(())
}

/// Asks on the terminal for `expected`; refuses without a terminal.
fn confirm(question: &str, expected: &str) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("no terminal to confirm on: pass --yes to go on without asking");
    }
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim() != expected {
        anyhow::bail!("not confirmed; nothing was changed");
    }
    Ok(())
}
