//! Command-line interface: the commands, their help and their examples.

pub mod bundle;
mod certs;
mod etcd;
pub mod sandbox;

pub use certs::*;
pub use etcd::*;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  runtime failure (a file could not be written, a certificate could not be read, ...)
  2  invalid input: bad usage or an invalid inventory
  3  certs check: a certificate has expired or expires soon
  4  certs check: a certificate drifted from the state directory or the inventory
  5  plan, apply, certs regenerate/rotate-ca: the hosts carry another cluster's CAs or keys
     than the state directory (nothing was changed; see `provisioner state recover --help`)
  6  status: a cluster is unhealthy (each finding is listed)";

#[derive(Parser)]
#[command(
    name = "provisioner",
    version,
    about = "Builds a Kubernetes cluster the hard way from one inventory file, and keeps it healthy",
    long_about = "Builds a Kubernetes cluster the hard way from one inventory file, and keeps it healthy.\n\n\
        The inventory (inventory.toml) lists the hosts, their roles, the networks and the versions. \
        provisioner validates it, keeps the cluster's PKI in a local state directory, and renders every \
        certificate, kubeconfig, component config and systemd unit each host needs.",
    after_help = "Start with:\n  provisioner validate inventory.toml\n  provisioner render inventory.toml --out rendered/\n\n\
        On a terminal, plan and apply show a progress line per host; redirected or piped, they print \
        plain lines. Add -v (anywhere on the command line) to also log each SSH connection, host key \
        decision, remote command, upload, restart decision and health check, with timings.\n\n".to_string() + EXIT_CODES,
)]
pub struct Cli {
    /// Log what provisioner does on standard error: -v for SSH connections, host keys and
    /// authentication, remote commands, uploads, plan decisions and health checks; -vv for
    /// more. RUST_LOG adds its own filters (RUST_LOG=russh=debug)
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct InventoryArg {
    /// The inventory file
    #[arg(value_name = "INVENTORY")]
    pub inventory: PathBuf,
}

/// How apply and rollback walk the hosts.
#[derive(Args)]
pub struct WalkArgs {
    /// Seconds each health gate may take before the run stops
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub gate_timeout: u64,
    /// Workers changing version (cordoned, drained, restarted) at once
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub max_unavailable: u64,
    /// Seconds a worker's pods may take to be evicted before the run stops (and uncordons it)
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub drain_timeout: u64,
}

impl WalkArgs {
    pub fn options(&self) -> crate::apply::workflow::Options {
        crate::apply::workflow::Options {
            gate_deadline: std::time::Duration::from_secs(self.gate_timeout),
            max_unavailable: self.max_unavailable as usize,
            drain_deadline: std::time::Duration::from_secs(self.drain_timeout),
        }
    }
}

#[derive(Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

impl Output {
    /// How progress is reported: one JSON event per line, or text.
    pub fn format(self) -> crate::apply::Format {
        match self {
            Output::Json => crate::apply::Format::Json,
            Output::Text => crate::apply::Format::Text,
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Check an inventory and report every problem at once
    #[command(after_help = "Example:\n  provisioner validate inventory.toml\n\n\
        Each problem names its key (hosts[2].address) and line. Warnings (an even number of etcd \
        members, ...) do not fail validation.")]
    Validate(InventoryArg),

    /// Write every host's files to a directory, for review or for your own tooling
    #[command(
        after_help = "Example:\n  provisioner render inventory.toml --out rendered/\n\n\
        Writes rendered/<host>/<absolute path> with the modes the files will have on the host, and \
        rendered/admin.kubeconfig. Creates the PKI in the state directory on first use and reuses it \
        afterwards: a certificate the inventory no longer matches is reported, never replaced. \
        The output holds private keys; it is created readable by you only."
    )]
    Render(RenderArgs),

    /// Show what `apply` would change on each host, without changing anything
    #[command(
        after_help = "Examples:\n  provisioner plan inventory.toml\n  provisioner plan inventory.toml --output json\n\n\
        Connects to every host, gathers what is there (file hashes, unit states, OS facts), runs the \
        preflight checks and prints, per host, the files to create or update (secret contents are \
        never shown) and the services to start or restart, with the reason."
    )]
    Plan(PlanArgs),

    /// Say whether each cluster is healthy, reading its hosts without changing anything
    #[command(
        after_help = "Examples:\n  provisioner status inventory.toml\n  provisioner status prod.toml staging.toml --output json\n\n\
        For each cluster (one inventory each, all at once) and each host: reachable over SSH, units \
        active, the versions of their installed programs, etcd (members answering, leader, database size), \
        the API server's /readyz, worker Nodes Ready, the soonest certificate expiry on each host \
        (its own copies, read over SSH) and in the state directory, and whether `plan` would change anything. Nothing is written to any host. Exits \
        6 when any cluster is unhealthy, listing every finding."
    )]
    Status(StatusArgs),

    /// Bring every host to the state the inventory describes, in dependency order
    #[command(after_help = "Examples:\n  provisioner apply inventory.toml\n  \
        provisioner apply inventory.toml --max-unavailable 2   (an upgrade, two workers at a time)\n\n\
        Verifies the bundle, connects to every host over SSH (host keys always verified), checks \
        preflight conditions on all hosts before writing anything, uploads only what differs, and \
        starts services in order: etcd, kube-apiserver, controller-manager and scheduler, RBAC, \
        containerd/kubelet/kube-proxy, pod routes, then the cluster DNS; each behind a health gate. A second apply with \
        nothing changed writes nothing and restarts nothing.\n\n\
        Upgrades: point the inventory at a newer bundle (and kubernetes_version). `plan` shows the \
        path; apply refuses a skipped minor, a minor downgrade, a kubelet newer than the API servers \
        and an etcd minor downgrade before changing anything. It snapshots etcd, then upgrades \
        etcd one member at a time, the API servers one host at a time, the controllers, then the \
        workers --max-unavailable at a time (cordon, drain through the Eviction API, upgrade, Node \
        Ready at the new version, uncordon). Each version stays on the hosts beside the other: a \
        failed gate switches that host back at once and stops; `provisioner rollback` returns \
        every host to the previous version.\n\n\
        A worker taken out of the inventory is listed by `plan` as a removal and refused by apply \
        until named with --remove NAME: then it is drained, its Node deleted and the host reset.")]
    Apply(ApplyArgs),

    /// Print the admin kubeconfig to standard output
    #[command(
        after_help = "Example:\n  provisioner kubeconfig inventory.toml > ~/.kube/config && chmod 600 ~/.kube/config\n\n\
        The admin user is in the group kubeadm:cluster-admins, bound to cluster-admin through RBAC."
    )]
    Kubeconfig(InventoryArg),

    /// Certificates: list, check on the hosts, regenerate without downtime
    #[command(subcommand)]
    Certs(CertsCommand),

    /// The state directory: rebuild a lost one from the hosts
    #[command(subcommand)]
    State(StateCommand),

    /// etcd: snapshots of the cluster's data
    #[command(subcommand)]
    Etcd(EtcdCommand),

    /// Return every host to the versions it ran before the last upgrade
    #[command(
        after_help = "Examples:\n  provisioner rollback inventory.toml --dry-run\n  provisioner rollback inventory.toml\n\n\
        The state directory records the versions each upgrade started from. Rollback points every \
        host's programs back at those versions (still on the hosts, beside the new ones) and \
        restarts them in the reverse of the upgrade's order: the workers first, drained \
        --max-unavailable at a time, then the controllers, the API servers and containerd, each \
        behind its health gate. etcd stays at its new version when the upgrade changed its minor: \
        its data cannot go back (restore a snapshot taken before the upgrade for that). The \
        inventory is not changed: point it back at the previous bundle, or the next apply \
        upgrades again."
    )]
    Rollback(RollbackArgs),

    /// Return hosts to what they were before provisioner: its units stopped, its files gone
    #[command(
        after_help = "Examples:\n  provisioner reset inventory.toml\n  provisioner reset inventory.toml --host worker-2 --yes\n\n\
        Each host keeps a record of every file provisioner wrote there and every directory it \
        created (/var/lib/provisioner/installed, written before anything else). Reset shows what \
        that record holds, asks for the cluster's name (unless --yes), then on each host: stops and \
        disables the recorded units (the kubelet's pods and their containers too), removes \
        kube-proxy's and the CNI plugins' rules, the pods' network namespaces and the bridge, \
        containerd's state (images too, unless --keep-images), the pod routes, and every recorded \
        file and directory. A directory that was there before provisioner stays. \
        Without --host the whole cluster is reset; --host resets only the named hosts, which must \
        be workers only (an etcd member or API server leaves a running cluster with `apply --remove`), \
        and their Node objects stay registered until deleted. The state directory is kept: the \
        next apply builds the same cluster again, with the same CAs."
    )]
    Reset(ResetArgs),

    /// Test machines on this Linux box: systemd containers in their own network namespaces
    #[command(
        subcommand,
        after_help = "Example:\n  provisioner sandbox up --nodes 5 && provisioner apply inventory.toml\n\n\
        Needs root, systemd-nspawn (package systemd-container) and debootstrap. The machines get \
        10.88.0.11, .12, ... on a bridge that exists only inside their network namespaces."
    )]
    Sandbox(sandbox::SandboxCommand),

    /// Bundles for air-gapped sites: fetch, create, sign and verify the one file apply installs from
    #[command(
        subcommand,
        after_help = "The flow:\n  \
        provisioner bundle fetch --kubernetes 1.35.0 --image pause.tar --out k8s.tar.zst   (connected machine)\n  \
        provisioner bundle sign k8s.tar.zst --key bundle-signing\n  \
        (carry k8s.tar.zst and k8s.tar.zst.sig in)\n  \
        provisioner bundle verify k8s.tar.zst --public-key bundle-signing.pub\n  \
        set [cluster] bundle = \"k8s.tar.zst\" and bundle_public_key = \"bundle-signing.pub\", then apply"
    )]
    Bundle(bundle::BundleCommand),

    /// Print the JSON Schema of the inventory file, for editors
    #[command(
        after_help = "Example (taplo, Even Better TOML):\n  provisioner schema > inventory.schema.json\n  \
        then put `#:schema ./inventory.schema.json` on the first line of inventory.toml"
    )]
    Schema,

    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  provisioner completions bash > /etc/bash_completion.d/provisioner\n  \
        provisioner completions zsh > \"${fpath[1]}/_provisioner\"\n  \
        provisioner completions fish > ~/.config/fish/completions/provisioner.fish"
    )]
    Completions(CompletionsArgs),
}

#[derive(Subcommand)]
pub enum StateCommand {
    /// Rebuild a lost state directory from the cluster's hosts, over SSH
    #[command(
        after_help = "Example:\n  provisioner state recover inventory.toml && provisioner plan inventory.toml\n\n\
        For a cluster whose state directory is gone (a fresh clone of the inventory repository, \
        another machine, a deleted .provisioner/): plan and apply refuse such hosts with exit code 5 \
        rather than replace the cluster's identity. This reads the three CAs with their keys, the \
        service-account key pair, the encryption-at-rest key and every certificate already issued \
        from the hosts (keys never leave the process, nothing is printed), checks that every host \
        holds the same copies, that each key matches its certificate and each certificate chains \
        to its CA, and writes the state directory (0700, keys 0600). Only the break-glass \
        super-admin credential, which never goes to a host, is issued anew. An existing state \
        directory is never overwritten: move it away first. A CA rotation in progress cannot be \
        recovered; finish it from the state directory that started it."
    )]
    Recover(InventoryArg),
}

#[derive(Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Directory to write (new, empty, or an earlier render's output)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Hash every managed file on the hosts again, instead of trusting the per-host record
    /// of files whose size, mtime, ctime and inode are unchanged since they were checked
    #[arg(long)]
    pub rehash: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The inventories of the clusters to check
    #[arg(value_name = "INVENTORY", required = true)]
    pub inventories: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Count a certificate expiring within this many days as a problem
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=36_500))]
    pub warn_days: i64,
}

#[derive(Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Progress as text (live lines on a terminal, plain lines otherwise) or one JSON event
    /// per line (json)
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// Remove this host, which the inventory no longer names: drain it, delete its Node,
    /// remove its etcd member (refused without a quorum of the others; one member per
    /// apply), reset it (repeat for more)
    #[arg(long = "remove", value_name = "NAME")]
    pub remove: Vec<String>,
    /// Hash every managed file on the hosts again (see `plan --rehash`)
    #[arg(long)]
    pub rehash: bool,
    /// Take the cluster's lease even though another run holds it (when that run's machine
    /// is gone for good)
    #[arg(long)]
    pub break_lease: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    #[command(flatten)]
    pub walk: WalkArgs,
    /// Take the cluster's lease even though another run holds it
    #[arg(long)]
    pub break_lease: bool,
    /// Show what rollback would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Reset only this host (repeat for more); workers only
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Keep containerd's images, so the next apply need not import them again
    #[arg(long)]
    pub keep_images: bool,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn verbosity(args: &[&str]) -> u8 {
        Cli::try_parse_from(args)
            .map(|c| c.verbose)
            .unwrap_or(u8::MAX)
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn v_counts_and_goes_anywhere() {
        assert_eq!(verbosity(&["provisioner", "validate", "i.toml"]), 0);
        assert_eq!(verbosity(&["provisioner", "-v", "validate", "i.toml"]), 1);
        assert_eq!(verbosity(&["provisioner", "-vv", "validate", "i.toml"]), 2);
        assert_eq!(verbosity(&["provisioner", "validate", "i.toml", "-v"]), 1);
        assert_eq!(verbosity(&["provisioner", "apply", "i.toml", "-vv"]), 2);
        assert_eq!(
            verbosity(&["provisioner", "--verbose", "plan", "i.toml"]),
            1
        );
        assert_eq!(verbosity(&["provisioner", "-v", "sandbox", "status"]), 1);
    }
}
