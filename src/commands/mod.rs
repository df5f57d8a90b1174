//! The commands, one file per family: each takes what clap parsed, calls the library and
//! prints through `output.rs`; this file dispatches and holds what several commands share. A
//! command returns its exit status instead of exiting.

pub mod bundle;
mod certs;
mod converge;
mod etcd;
mod output;
mod render;
mod reset;
mod rollback;
pub mod sandbox;
mod state;
mod status;

use std::path::Path;

use anyhow::Result;

use crate::cli::{CertsCommand, Cli, Command, EtcdCommand, StateCommand};
use crate::inventory::Loaded;

/// Exit status of a command that did what it was asked.
pub const SUCCESS: u8 = 0;

/// Runs the command `cli` names; returns its exit status (see `provisioner --help`).
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Validate(a) => render::validate(&a.inventory),
        Command::Render(a) => render::render_cmd(&a),
        Command::Kubeconfig(a) => render::kubeconfig(&a.inventory),
        Command::Plan(a) => converge::plan(&a),
        Command::Apply(a) => converge::apply(&a),
        Command::Rollback(a) => rollback::rollback(&a),
        Command::Certs(CertsCommand::List(a)) => certs::list(&a),
        Command::Certs(CertsCommand::RotateCa(a)) => certs::rotate_ca(&a),
        Command::Certs(CertsCommand::Check(a)) => certs::check(&a, cli.verbose > 0),
        Command::Certs(CertsCommand::Regenerate(a)) => certs::regenerate(&a),
        Command::Status(a) => status::status(&a),
        Command::Etcd(EtcdCommand::Snapshot(a)) => etcd::snapshot(&a),
        Command::Etcd(EtcdCommand::Restore(a)) => etcd::restore(&a),
        Command::Reset(a) => reset::reset(&a),
        Command::State(StateCommand::Recover(a)) => state::recover(&a.inventory),
        Command::Sandbox(cmd) => sandbox::run(&cmd).map(|()| SUCCESS),
        Command::Bundle(cmd) => bundle::run(cmd).map(|()| SUCCESS),
        Command::Schema => {
            let schema = crate::inventory::schema();
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(SUCCESS)
        }
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "provisioner", &mut std::io::stdout());
            Ok(SUCCESS)
        }
    }
}

/// The inventory as the commands run it (see [`crate::apply::load`]), its warnings shown.
fn load(path: &Path) -> Result<Loaded> {
    let (loaded, warnings) = crate::apply::load(path)?;
    for w in warnings {
        eprintln!("{w}");
    }
    Ok(loaded)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
