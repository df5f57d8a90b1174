//! The stages commands run, each named once; which command runs which, in what order, is
//! listed in [`workflow`](super::workflow).

use super::Reporter;

/// A step of a command's run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// One SSH connection per host.
    Connect,
    /// Every host belongs to the cluster the state directory describes.
    Identity,
    /// One run at a time per cluster.
    Lease,
    /// What the state directory's PKI lacks, created; the certificates a command reissues.
    Pki,
    /// Every host's files, rendered.
    Render,
    /// Facts from every host, preflight.
    Survey,
    /// The plan: what differs from the inventory.
    Plan,
    /// Version changes upstream's skew policy allows, or nothing.
    SkewCheck,
    /// Every host recorded in the state directory before anything touches it.
    Members,
    /// The versions an upgrade starts from recorded (for `rollback`), etcd snapshotted.
    UpgradePreparation,
    /// Hosts leaving: etcd's quorum without them, drain, Node and member removed, reset.
    RemoveHosts,
    /// The files of every host, then the reloads they need.
    Files,
    /// [`PHASES`](super::workflow::PHASES) in order, each announced by its own name: units started or restarted, each
    /// phase behind its gate.
    Phases,
    /// Program versions no host needs any more, removed.
    PruneVersions,
    /// Every gate, against the cluster as it is.
    HealthCheck,
    /// The state directory's PKI and secrets copied aside.
    Backup,
    /// `etcdctl snapshot save` on the first etcd member.
    EtcdSnapshot,
    /// The new certificates saved in the state directory.
    SaveState,
    /// The snapshot copied to every etcd member.
    CopySnapshot,
    /// The control plane and etcd stopped on every host.
    StopControlPlane,
    /// Each member's data restored from the snapshot.
    RestoreMembers,
    /// Each host's record of what provisioner installed.
    ReadRecords,
    /// Units stopped, recorded files removed.
    Reset,
    /// The keys and certificates on the hosts read back.
    ReadKeys,
    /// The certificates on the hosts read back.
    ReadCertificates,
}

impl Stage {
    /// What the output calls it.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Identity => "cluster identity",
            Stage::Lease => "lease",
            Stage::Pki => "pki",
            Stage::Render => "render",
            Stage::Survey => "gather facts",
            Stage::Plan => "plan",
            Stage::SkewCheck => "version skew",
            Stage::Members => "members record",
            Stage::UpgradePreparation => "upgrade preparation",
            Stage::RemoveHosts => "remove hosts",
            Stage::Files => "files",
            Stage::Phases => "phases",
            Stage::PruneVersions => "prune versions",
            Stage::HealthCheck => "health check",
            Stage::Backup => "backup",
            Stage::EtcdSnapshot => "etcd snapshot",
            Stage::SaveState => "save state",
            Stage::CopySnapshot => "copy the snapshot",
            Stage::StopControlPlane => "stop the control plane and etcd",
            Stage::RestoreMembers => "restore every member",
            Stage::ReadRecords => "read install records",
            Stage::Reset => "reset",
            Stage::ReadKeys => "read keys and certificates",
            Stage::ReadCertificates => "read certificates",
        }
    }

    /// Announces the stage (in the text output).
    pub fn start(self, rep: &Reporter) {
        rep.header(self.name());
    }
}
