//! `provisioner certs ...`: its arguments.

use clap::{Args, Subcommand, ValueEnum};

use super::{InventoryArg, Output};

/// How `certs regenerate` and `certs rotate-ca` roll their changes out.
#[derive(Args)]
pub struct RolloutArgs {
    /// Go on even though a health gate fails before the start
    #[arg(long)]
    pub force: bool,
    /// Take the cluster's lease even though another run holds it (see `apply --help`)
    #[arg(long)]
    pub break_lease: bool,
    /// Print what would be done; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds each health gate may take before the rollout stops
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub gate_timeout: u64,
    /// Progress as plain lines (text) or one JSON event per line (json)
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

impl RolloutArgs {
    pub fn options(&self) -> crate::apply::rollout::Options {
        crate::apply::rollout::Options {
            force: self.force,
            dry_run: self.dry_run,
            break_lease: self.break_lease,
            gate_timeout: std::time::Duration::from_secs(self.gate_timeout),
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CaChoice {
    Cluster,
    Etcd,
    FrontProxy,
    /// The three CAs (not the service-account key, whose last stage waits for old tokens)
    All,
    /// The service-account token signing key pair
    ServiceAccount,
}

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Replace a CA without downtime: trust both, reissue everything, drop the old one
    #[command(
        after_help = "Examples:\n  provisioner certs rotate-ca inventory.toml --dry-run\n  \
        provisioner certs rotate-ca inventory.toml --ca all\n  \
        provisioner certs rotate-ca inventory.toml --ca etcd\n\n\
        Three stages, each rolled out like `certs regenerate` (health check first, backup, etcd \
        snapshot, one host at a time behind its gate):\n  \
        1. a new CA is made; every trust bundle (client CA files, kubeconfig CA data, etcd's \
        trusted CA, the kubelet's client CA, the requestheader CA) carries the old and the new one;\n  \
        2. every certificate the CA signs is reissued from the new one;\n  \
        3. the old CA leaves every bundle and the new one takes its place in the state directory.\n\
        The stage is recorded in STATE_DIR/pki/rotation.toml: after an interruption, the same \
        command continues where it stopped. Clients outside the cluster need the new CA after \
        stage 3 (`provisioner kubeconfig` prints it).\n\n\
        --ca service-account rotates the token signing key the same way: the API server accepts \
        tokens of both keys, then the new one signs, then the old public key is dropped once \
        --token-lifetime has passed since (default 70 minutes: kubelet-projected tokens live an \
        hour); until then the command stops after stage 2 and says when to run it again."
    )]
    RotateCa(RotateCaArgs),

    /// Check every certificate in the state directory and on every host: expiry and drift
    #[command(after_help = "Examples:\n  provisioner certs check inventory.toml\n  \
        provisioner certs check inventory.toml --warn-days 60 --output json\n\n\
        Reads the certificates on the hosts over SSH (kubeconfigs: only their client certificate; \
        the client certificate a kubelet renewed itself: only the certificate; no private key \
        leaves a host), so it works when they have already expired. For each: \
        name, subject, issuer, SANs, not-after, days left, and drift: the host's copy differs from \
        the state directory, or the certificate no longer matches the inventory.\n\n\
        Exit codes:\n  0  all certificates valid for more than --warn-days, no drift\n  \
        1  the check itself failed (a host unreachable, ...)\n  \
        3  a certificate has expired or expires within --warn-days (this wins over 4)\n  \
        4  drift: a host's copy differs, or a certificate no longer matches the inventory")]
    Check(CheckArgs),

    /// Reissue leaf certificates from the same CAs and roll them out, the cluster serving throughout
    #[command(
        after_help = "Examples:\n  provisioner certs regenerate inventory.toml --dry-run\n  \
        provisioner certs regenerate inventory.toml --all\n  \
        provisioner certs regenerate inventory.toml --cert apiserver --cert kubelet-server@worker-1\n  \
        provisioner certs regenerate inventory.toml --host worker-2\n\n\
        Without a selection, regenerates the certificates that no longer match the inventory \
        (a new SAN, a renamed node) and those expiring within 30 days. The kubeconfigs embedding \
        them follow. First: every health gate must pass (--force skips this; with expired \
        certificates it is skipped by itself), the state directory's PKI is backed up to \
        STATE_DIR/backups/<time>/, and when etcd restarts, an etcd snapshot is saved on its first \
        member. Then only the services using a new certificate restart, one host at a time behind \
        its health gate: etcd members one by one with every member healthy before each, then the \
        API servers, controller-managers and schedulers, then kubelets and kube-proxies. The run \
        stops at the first failing gate with the rest of the cluster still serving."
    )]
    Regenerate(RegenerateArgs),

    /// List every certificate of the cluster: subject, SANs, issuer, expiry, and whether it still
    /// matches the inventory
    #[command(after_help = "Examples:\n  provisioner certs list inventory.toml\n  \
        provisioner certs list inventory.toml --output json | jq '.[] | select(.stale != [])'")]
    List(ListArgs),
}

#[derive(Args)]
pub struct RotateCaArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Which CA (or the service-account key pair)
    #[arg(long, value_enum, default_value = "all")]
    pub ca: CaChoice,
    /// With --ca service-account: how long a token signed by the old key may live (the old
    /// public key stays trusted that long after the new key signs)
    #[arg(long, value_name = "SECONDS", default_value_t = 4200, value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub token_lifetime: u64,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// Warn about certificates expiring within this many days
    #[arg(long, value_name = "DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(0..=36_500))]
    pub warn_days: i64,
}

#[derive(Args)]
pub struct RegenerateArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// A certificate name (every host's) or NAME@HOST (repeatable)
    #[arg(long = "cert", value_name = "NAME")]
    pub certs: Vec<String>,
    /// Every certificate of this host (repeatable; with --cert, only those on these hosts)
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Every leaf certificate
    #[arg(long, conflicts_with_all = ["certs", "hosts"])]
    pub all: bool,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}
