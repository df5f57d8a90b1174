//! `provisioner sandbox ...`: its arguments.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::sandbox::{UpOptions, DEFAULT_PREFIX, DEFAULT_ROOT, DEFAULT_SUDO_USER};

/// Test machines on this host: systemd-nspawn containers on a private bridge (Linux, root).
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Start the machines and wait until each accepts SSH.
    Up(UpArgs),
    /// Stop the machines and remove everything but the cached base root.
    Down(StateArgs),
    /// Show the machines and whether each is running and answering SSH.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct StateArgs {
    /// Where the sandbox keeps its keys, known_hosts, state and machine overlays.
    #[arg(long, value_name = "DIR", default_value_os_t = default_state_dir())]
    pub state_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub state: StateArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// How many machines, named cp-1, cp-2, ...
    #[arg(long, default_value_t = 3, conflicts_with = "names")]
    pub nodes: usize,
    /// The machines' names instead of cp-1..cp-N, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub names: Vec<String>,
    /// Also create a non-root user with the sandbox key and passwordless sudo.
    #[arg(long, value_name = "USER", num_args = 0..=1, default_missing_value = DEFAULT_SUDO_USER)]
    pub sudo_user: Option<String>,
    /// Network address of the machines' /24: the host is .1, machines from --first-host on.
    #[arg(long, default_value = "10.88.0.0")]
    pub subnet: Ipv4Addr,
    /// Last octet of the first machine's address.
    #[arg(long, default_value_t = 11)]
    pub first_host: u8,
    /// Machines to put on a second /24 (the one after --subnet) behind a router, so that
    /// they share no L2 segment with the others, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub routed: Vec<String>,
    /// Give every machine an IPv6 address too (fd00:10:88:0::11 for 10.88.0.11), for
    /// dual-stack clusters.
    #[arg(long)]
    pub ipv6: bool,
    #[command(flatten)]
    pub state: StateArgs,
    /// The cached Debian base root (built by debootstrap on first use, kept by `down`).
    #[arg(long, value_name = "DIR", default_value_os_t = UpOptions::new(0).base_dir)]
    pub base_dir: PathBuf,
    /// Prefix of the namespace, interface and cgroup names.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// Debian archive URL [default: $PROVISIONER_DEBIAN_MIRROR, else the host's apt sources].
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Seconds all machines together may take to boot to a working SSH login.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// Keep /proc/sys and /sys read-only in the machines (kubelet will not start then).
    #[arg(long)]
    pub read_only_kernel_settings: bool,
    /// Leave a sandbox that failed to start in place, for inspection.
    #[arg(long)]
    pub keep_on_failure: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_ROOT).join("run")
}

impl UpArgs {
    pub fn options(&self) -> UpOptions {
        let mut opts = UpOptions::new(self.nodes);
        if !self.names.is_empty() {
            opts.names = self.names.clone();
        }
        opts.sudo_user = self.sudo_user.clone();
        opts.subnet = self.subnet;
        opts.first_host = self.first_host;
        opts.routed = self.routed.clone();
        opts.ipv6 = self.ipv6;
        opts.state_dir = self.state.state_dir.clone();
        opts.base_dir = self.base_dir.clone();
        opts.prefix = self.prefix.clone();
        opts.mirror = self.mirror.clone();
        opts.boot_timeout = Duration::from_secs(self.boot_timeout);
        opts.writable_kernel_settings = !self.read_only_kernel_settings;
        opts.keep_on_failure = self.keep_on_failure;
        opts
    }
}
