//! The sandbox machines: systemd-nspawn containers booting Debian with real sshd and systemd,
//! started by `provisioner sandbox up` and reached with OpenSSH's client.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::common::host::is_root;
use crate::common::{provisioner, text};

/// One sandbox at a time: the machines share a subnet and names.
static SANDBOX: Mutex<()> = Mutex::new(());

/// Holds the sandbox for one scenario (also when a scenario before it failed holding it).
pub fn lock_sandbox() -> MutexGuard<'static, ()> {
    SANDBOX.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn state_dir() -> PathBuf {
    PathBuf::from("/var/lib/provisioner-sandbox/test")
}

/// A running sandbox, torn down when dropped (also when the test fails).
pub struct Machines {
    info: Value,
}

impl Machines {
    pub fn up(names: &[&str], sudo_user: bool) -> Machines {
        Machines::up_with(names, sudo_user, &[])
    }

    /// `names`, of which `routed` sit on a second subnet behind a router, each with an IPv6
    /// address too.
    pub fn up_routed_dual_stack(names: &[&str], routed: &[&str]) -> Machines {
        Machines::up_with(names, false, routed)
    }

    fn up_with(names: &[&str], sudo_user: bool, routed: &[&str]) -> Machines {
        assert!(
            is_root(),
            "the end-to-end tests need root (systemd-nspawn, network namespaces)"
        );
        let state = state_dir();
        let _ = provisioner(&["sandbox", "down", "--state-dir", state.to_str().unwrap()]);
        let names = names.join(",");
        let mut args = vec![
            "sandbox",
            "up",
            "--names",
            &names,
            "--state-dir",
            state.to_str().unwrap(),
            "--json",
        ];
        if sudo_user {
            args.push("--sudo-user");
        }
        let routed = routed.join(",");
        if !routed.is_empty() {
            args.extend(["--routed", &routed, "--ipv6"]);
        }
        let o = provisioner(&args);
        assert!(
            o.status.success(),
            "sandbox up failed:\n{}",
            text(&o.stderr)
        );
        Machines {
            info: serde_json::from_slice(&o.stdout).expect("sandbox up --json"),
        }
    }

    pub fn address(&self, name: &str) -> String {
        self.machine(name)["address"].as_str().unwrap().to_string()
    }

    /// Its IPv6 address, in a dual-stack sandbox.
    pub fn address6(&self, name: &str) -> Option<String> {
        self.machine(name)["address6"].as_str().map(String::from)
    }

    fn machine(&self, name: &str) -> &Value {
        self.info["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
    }

    pub fn key(&self) -> &str {
        self.info["key_path"].as_str().unwrap()
    }

    pub fn known_hosts(&self) -> &str {
        self.info["known_hosts_path"].as_str().unwrap()
    }

    /// OpenSSH's client logged in as root on a machine, to be given the command to run.
    pub fn ssh_command(&self, name: &str) -> Command {
        let mut ssh = Command::new("ssh");
        ssh.args([
            "-i",
            self.key(),
            "-o",
            &format!("UserKnownHostsFile={}", self.known_hosts()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
        ])
        .arg(format!("root@{}", self.address(name)));
        ssh
    }

    /// Runs a command as root on a machine with OpenSSH's client.
    pub fn ssh(&self, name: &str, command: &str) -> String {
        let o = self.ssh_command(name).arg(command).output().unwrap();
        assert!(
            o.status.success(),
            "ssh {name} `{command}`: {}",
            text(&o.stderr)
        );
        text(&o.stdout)
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        let _ = provisioner(&[
            "sandbox",
            "down",
            "--state-dir",
            state_dir().to_str().unwrap(),
        ]);
    }
}
