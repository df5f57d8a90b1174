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

// ---- Kubernetes' configuration

/// Kubeconfigs, component configs and the files only control-plane hosts hold.
pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
/// The cluster's certificates and keys (kubeadm's layout), CAs as `NAME.crt`/`NAME.key`.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// etcd's certificates, the healthcheck client's (which etcdctl on the host uses) among them.
pub const ETCD_PKI_DIR: &str = "/etc/kubernetes/pki/etcd";
/// The service-account token signing key pair.
pub const SA_PUB: &str = "/etc/kubernetes/pki/sa.pub";
pub const SA_KEY: &str = "/etc/kubernetes/pki/sa.key";
/// The API servers' encryption-at-rest configuration, with its key.
pub const ENCRYPTION_CONFIG: &str = "/etc/kubernetes/encryption-config.yaml";
pub const AUDIT_POLICY: &str = "/etc/kubernetes/audit-policy.yaml";
/// The API servers' audit log, readable by root only.
pub const AUDIT_LOG_DIR: &str = "/var/log/kubernetes";
pub const SCHEDULER_CONFIG: &str = "/etc/kubernetes/kube-scheduler.yaml";
/// What an etcd member reads on its first start only (the members to bootstrap with or join):
/// the one file a unit reads whose change restarts nothing, so that a new member list
/// restarts no member.
pub const ETCD_BOOTSTRAP_ENV: &str = "/etc/kubernetes/etcd-bootstrap.env";
/// The scheduled etcd snapshot's script.
pub const ETCD_SNAPSHOT_SCRIPT: &str = "/etc/kubernetes/etcd-snapshot.sh";
/// The node-local API load balancer's configuration.
pub const API_LB_CONFIG: &str = "/etc/kubernetes/kube-api-lb.json";
/// The addons' manifests, applied through the API.
pub const ADDONS_DIR: &str = "/etc/kubernetes/addons";
/// The script of the unit that keeps the routes to the other hosts' pod ranges.
pub const POD_ROUTES_SCRIPT: &str = "/etc/kubernetes/pod-routes.sh";
/// The NAT chain (iptables, table nat) that masquerades a worker's pods' traffic leaving the
/// pod network; `reset` removes what names it.
pub const POD_EGRESS_CHAIN: &str = "PROVISIONER-POD-EGRESS";
/// The pod network's VXLAN device, in vxlan mode; `reset` removes it.
pub const POD_OVERLAY_DEVICE: &str = "pods.vxlan";
/// A host's pod overlay device's MAC address: locally administered, unicast, and derived from
/// its address, so that every other host's static entry for it is known when rendering.
pub fn pod_overlay_mac(ip: std::net::Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x0e, 0x76, a, b, c, d]
}

/// The link-local IPv6 address of that device (EUI-64 of its MAC, as the kernel would make it):
/// the gateway other hosts' IPv6 routes to its pods name. A gateway inside the pod range would
/// be refused while the route it replaces still covers it.
pub fn pod_overlay_link_local(ip: std::net::Ipv4Addr) -> std::net::Ipv6Addr {
    let [m0, m1, m2, m3, m4, m5] = pod_overlay_mac(ip);
    let group = |hi: u8, lo: u8| u16::from_be_bytes([hi, lo]);
    std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        group(m0 ^ 0x02, m1),
        group(m2, 0xff),
        group(0xfe, m3),
        group(m4, m5),
    )
}

/// The filter chain (iptables, INPUT) that accepts the overlay's UDP only from the cluster's
/// hosts: VXLAN carries no authentication.
pub const POD_OVERLAY_CHAIN: &str = "PROVISIONER-VXLAN";
/// The routing table, and the priority of the rule that selects it, that send a worker's
/// pods' replies to hosts without pods back through the overlay they came in by.
pub const POD_OVERLAY_TABLE: u32 = 4789;
/// kube-proxy's kubeconfig and its configuration.
pub const KUBE_PROXY_KUBECONFIG: &str = "/etc/kubernetes/kube-proxy.conf";
pub const KUBE_PROXY_DIR: &str = "/var/lib/kube-proxy";
pub const KUBE_PROXY_CONFIG: &str = "/var/lib/kube-proxy/config.yaml";
/// kube-router's kubeconfig (it takes every other setting as a flag).
pub const KUBE_ROUTER_KUBECONFIG: &str = "/etc/kubernetes/kube-router.conf";

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

/// The kubelet's own directory: its configuration, certificates and pods' state.
pub const KUBELET_DIR: &str = "/var/lib/kubelet";
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";

/// The kubelet's kubeconfig, with the client certificate provisioner issued.
pub const KUBELET_KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
/// The kubelet's certificate directory: provisioner's serving pair, and the client pairs the
/// kubelet renews itself through the CSR API (`kubelet-client-*.pem`).
pub const KUBELET_PKI: &str = "/var/lib/kubelet/pki";
/// The client pair the kubelet renewed last (a link to a dated file), preferred by the kubelet
/// over its kubeconfig's. A new kubeconfig certificate (renewed, or from a new CA) must replace
/// it: its files go when the kubeconfig is written, and the kubelet starts from the new one.
pub const KUBELET_RENEWED_CLIENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

// ---- containerd and the pod network

pub const CONTAINERD_DIR: &str = "/etc/containerd";
pub const CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
/// containerd's CRI socket, which the kubelet talks to.
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// The CNI configuration containerd reads.
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";

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

/// The paths the templates name, as `{{ paths.NAME }}`: every template is rendered with them, so
/// a unit or config file says where things are from this table too.
pub const FOR_TEMPLATES: &[(&str, &str)] = &[
    ("bin", BIN_DIR),
    ("cni_bin", CNI_BIN_DIR),
    ("cni_conf", CNI_CONF_DIR),
    ("kubernetes", KUBERNETES_DIR),
    ("pki", PKI_DIR),
    ("etcd_pki", ETCD_PKI_DIR),
    ("sa_pub", SA_PUB),
    ("sa_key", SA_KEY),
    ("encryption_config", ENCRYPTION_CONFIG),
    ("audit_policy", AUDIT_POLICY),
    ("audit_log_dir", AUDIT_LOG_DIR),
    ("scheduler_config", SCHEDULER_CONFIG),
    ("etcd_bootstrap_env", ETCD_BOOTSTRAP_ENV),
    ("etcd_data", ETCD_DATA_DIR),
    ("sysusers", SYSUSERS_DIR),
    ("api_lb_config", API_LB_CONFIG),
    ("pod_routes_script", POD_ROUTES_SCRIPT),
    ("kubelet_config", KUBELET_CONFIG),
    ("kubelet_kubeconfig", KUBELET_KUBECONFIG),
    ("kubelet_pki", KUBELET_PKI),
    ("kube_proxy_config", KUBE_PROXY_CONFIG),
    ("kube_proxy_kubeconfig", KUBE_PROXY_KUBECONFIG),
    ("kube_router_kubeconfig", KUBE_ROUTER_KUBECONFIG),
    ("containerd_config", CONTAINERD_CONFIG),
    ("containerd_socket", CONTAINERD_SOCKET),
];
