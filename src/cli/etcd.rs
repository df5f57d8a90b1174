//! `provisioner etcd ...`: its arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::InventoryArg;

#[derive(Subcommand)]
pub enum EtcdCommand {
    /// Take a consistent snapshot on one member and copy it here, with its SHA-256 and metadata
    #[command(
        after_help = "Examples:\n  provisioner etcd snapshot inventory.toml\n  provisioner etcd snapshot inventory.toml --keep 7\n  provisioner etcd snapshot inventory.toml --out /backups/prod.db\n\n\
        The snapshot is taken with etcdctl on the first etcd member (a consistent point in time), \
        copied over SSH and checked against its SHA-256 on the host, then removed from the host: it \
        holds every Secret of the cluster, so it is kept 0600 and only where you put it. By default \
        it goes to STATE_DIR/etcd-snapshots/CLUSTER-TIME.db; FILE.json beside it records the \
        SHA-256, revision, number of keys, members, etcd and Kubernetes versions, and when and where \
        it was taken."
    )]
    Snapshot(SnapshotArgs),

    /// Restore every etcd member from one snapshot, the control plane stopped meanwhile
    #[command(
        after_help = "Example:\n  provisioner etcd restore inventory.toml .provisioner/etcd-snapshots/demo-20261202T103000Z.db\n\n\
        The cluster goes back to the snapshot's state: what was created since is lost. The snapshot \
        is checked against the SHA-256 in its metadata (FILE.json, written by `etcd snapshot`) \
        before anything changes. Then the API servers, controller-managers and schedulers stop, \
        etcd stops on every member, each member is restored from the same snapshot into a new data \
        directory under a new cluster token (the old data is kept as \
        /var/lib/etcd.before-restore-TIME), and etcd, the API servers and the controllers start \
        again behind their health gates. Asks for the cluster's name first, unless --yes."
    )]
    Restore(RestoreArgs),
}

#[derive(Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// Where to write the snapshot (its metadata goes to FILE.json)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Afterwards, keep only the newest N snapshots of this cluster in the snapshot's
    /// directory (with their metadata)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub inventory: InventoryArg,
    /// The snapshot, with its metadata beside it as SNAPSHOT.json
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
    /// Seconds each health gate may take
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub gate_timeout: u64,
}
