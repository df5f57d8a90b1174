//! `provisioner sandbox ...`.

use anyhow::Result;

use crate::cli::sandbox::SandboxCommand;
use crate::sandbox::{self, Sandbox};

/// Runs the subcommand, printing the result to stdout (progress goes to stderr).
pub fn run(command: &SandboxCommand) -> Result<()> {
    match command {
        SandboxCommand::Up(args) => print(&sandbox::up(&args.options())?, args.json),
        SandboxCommand::Down(args) => sandbox::down(&args.state_dir),
        SandboxCommand::Status(args) => {
            let sandbox = sandbox::status(&args.state.state_dir)?;
            print(&sandbox, args.json)?;
            if sandbox.machines.iter().all(|m| m.reachable) {
                Ok(())
            } else {
                anyhow::bail!("not every machine is running and reachable")
            }
        }
    }
}

fn print(sandbox: &Sandbox, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(sandbox)?);
        return Ok(());
    }
    println!("{:<12} {:<16} {:<8} SSH", "MACHINE", "ADDRESS", "STATE");
    for m in &sandbox.machines {
        let state = if m.running { "running" } else { "stopped" };
        let ssh = if m.reachable { "answers" } else { "no answer" };
        println!("{:<12} {:<16} {:<8} {ssh}", m.name, m.address, state);
    }
    let users = match sandbox
        .machines
        .first()
        .and_then(|m| m.sudo_user.as_deref())
    {
        Some(user) => format!("root, {user} (passwordless sudo)"),
        None => "root".to_string(),
    };
    println!(
        "subnet:      {} (host at {})",
        sandbox.subnet, sandbox.host_address
    );
    if let Some(routed) = &sandbox.routed_subnet {
        println!("routed:      {routed} (through the hub)");
    }
    println!("users:       {users}");
    println!("key:         {}", sandbox.key_path.display());
    println!("known_hosts: {}", sandbox.known_hosts_path.display());
    Ok(())
}
