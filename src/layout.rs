//! Where provisioner puts things on a host: every directory and file that more than one module
//! names, in one table at the bottom of the code, so that render, plan, the runner, reset and the
//! shell builders agree on them.

// ---- programs

/// Where the bundle's programs are run from: links into [`RELEASES_DIR`].
pub const BIN_DIR: &str = "/usr/local/bin";
/// Where the CNI plugins are run from: links into [`RELEASES_DIR`] too.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// Every version of every program installed stays in its own directory,
/// `RELEASES_DIR/RELEASE/VERSION/PROGRAM`, and the path a unit runs (in [`BIN_DIR`] or
/// [`CNI_BIN_DIR`]) is a link to one of them: switching versions, up or back, is changing a
/// link and restarting, and the previous version is still there to switch back to.
pub const RELEASES_DIR: &str = "/usr/local/lib/provisioner";

// ---- services

/// Where the unit files provisioner installs go.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// etcd's data directory, owned by the etcd user, 0700.
pub const ETCD_DATA_DIR: &str = "/var/lib/etcd";

// ---- ports

/// etcd's client port on every member (the API servers, etcdctl, the gates).
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// etcd's peer port: the members among themselves.
pub const ETCD_PEER_PORT: u16 = 2380;
/// etcd's metrics and plain health, on 127.0.0.1 only.
pub const ETCD_METRICS_PORT: u16 = 2381;

// ---- the system's own configuration

/// Where the system users that units run as are declared (`systemd-sysusers` reads them).
pub const SYSUSERS_DIR: &str = "/etc/sysusers.d/";
/// The kernel settings containerd and kube-proxy need, applied with `sysctl -p`.
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/99-kubernetes.conf";
/// The kernel modules they need, loaded at boot and by `apply`.
pub const MODULES_FILE: &str = "/etc/modules-load.d/kubernetes.conf";

// ---- the kubelet

/// The kubelet's kubeconfig, with the client certificate provisioner issued.
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The kubelet's certificate directory: provisioner's serving pair, and the client pairs the
/// kubelet renews itself through the CSR API (`kubelet-client-*.pem`).
pub const KUBELET_PKI: &str = "/var/lib/kubelet/pki";
/// The client pair the kubelet renewed last (a link to a dated file), preferred by the kubelet
/// over its kubeconfig's. A new kubeconfig certificate (renewed, or from a new CA) must replace
/// it: its files go when the kubeconfig is written, and the kubelet starts from the new one.
pub const KUBELET_RENEWED_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

// ---- containerd

/// containerd's registry configuration: `NAME/hosts.toml` (and the mirrors' `NAME/ca.crt`) for
/// each registry pulled through mirrors. provisioner owns the directory: a file there that the
/// inventory no longer asks for is removed.
pub const REGISTRY_HOSTS_DIR: &str = "/etc/containerd/certs.d";
/// containerd's content and snapshots: the images `reset --keep-images` keeps.
pub const IMAGE_STORE: &str = "/var/lib/containerd";
/// The bridge the CNI configuration names; `reset` removes it.
pub const CNI_BRIDGE: &str = "cni0";

// ---- provisioner's own records

/// provisioner's own directory on each host: its records, lease, image archives and etcd
/// backups. `reset` removes it last.
pub const HOME: &str = "/var/lib/provisioner";
/// etcd snapshots taken on the host (before a certificate rollout, scheduled ones), kept there.
pub const BACKUPS: &str = "/var/lib/provisioner/backups";
/// What provisioner installed, for `reset`: lines `file PATH` and `dir PATH`, sorted.
pub const INSTALLED: &str = "/var/lib/provisioner/installed";
/// `sha256 size mtime ctime inode path` of the files provisioner last wrote or checked. A file
/// whose stamp still matches is not hashed again, which keeps a no-op run fast (binaries are
/// most of the bytes); any write, even one that restores the mtime, changes the ctime and
/// brings the hash back. `--rehash` ignores the record.
pub const FILE_HASHES: &str = "/var/lib/provisioner/files.sha256";
/// The follow-up work an apply has not finished (see `plan::follow_up`).
pub const FOLLOW_UP: &str = "/var/lib/provisioner/follow-up";
/// The lease of the run that changes the cluster (on its lease hosts).
pub const LEASE: &str = "/var/lib/provisioner/lease";
/// Image archives, kept so that a no-op run finds them by hash and sends nothing.
pub const IMAGE_DIR: &str = "/var/lib/provisioner/images";
