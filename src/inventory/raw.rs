//! The inventory file exactly as the operator writes it.
//!
//! These types only describe the TOML shape (strict: unknown keys are errors). Meaning is checked in
//! `validate`, which turns them into the model in `model.rs`. Addresses and CIDRs stay strings here
//! so that a malformed one is reported with its key path instead of failing the whole parse.

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "provisioner inventory",
    description = "A Kubernetes cluster built by provisioner"
)]
pub struct Inventory {
    pub cluster: Cluster,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub pki: Pki,
    #[serde(default)]
    pub versions: Versions,
    #[serde(default)]
    pub etcd: Etcd,
    #[serde(default)]
    pub kubelet: Kubelet,
    #[serde(default)]
    pub nodes: Nodes,
    #[serde(default)]
    pub addons: Addons,
    #[serde(default)]
    pub ssh: Ssh,
    /// Registry mirrors: where the container runtime pulls a registry's images from first.
    #[serde(default)]
    pub registries: Vec<Registry>,
    #[serde(default)]
    pub hosts: Vec<Host>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Cluster name: lowercase letters, digits and '-'. Used in kubeconfig context names.
    pub name: String,
    /// Kubernetes version to install, e.g. "1.37.2". Supported minors: 1.35 to 1.37.
    pub kubernetes_version: String,
    /// Where PKI and secrets are kept, relative to the inventory file. Default ".provisioner".
    pub state_dir: Option<String>,
    /// Bundle with the binaries and images to install: an archive made by `provisioner bundle
    /// fetch|create`, or a directory with a manifest.toml. Relative to the inventory file.
    pub bundle: Option<String>,
    /// OpenSSH public key (ed25519) whose signature the bundle must carry (FILE.sig beside an
    /// archive, manifest.toml.sig in a directory). Relative to the inventory file.
    pub bundle_public_key: Option<String>,
    /// How many backups of the state directory (STATE_DIR/backups/) and etcd snapshots (on the
    /// etcd hosts, /var/lib/provisioner/backups/) are kept; older ones are removed. Default 10.
    pub keep_backups: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Pod address range of the whole cluster. Default "10.200.0.0/16". A list of two, the
    /// IPv4 range then an IPv6 one, makes the cluster dual-stack.
    pub pod_cidr: Option<Cidrs>,
    /// Service address range. Default "10.32.0.0/24". A list of two (IPv4, then IPv6) in a
    /// dual-stack cluster.
    pub service_cidr: Option<Cidrs>,
    /// DNS domain of the cluster. Default "cluster.local".
    pub cluster_domain: Option<String>,
    /// Cluster DNS service address. Default: the 10th address of service_cidr.
    pub cluster_dns: Option<String>,
    /// Size of each node's pod range carved from pod_cidr. Default 24.
    pub node_cidr_prefix: Option<u8>,
    /// kube-proxy mode: "iptables" (default) or "nftables".
    pub proxy_mode: Option<String>,
    /// What enforces NetworkPolicy objects: "kube-router" (default: its network policy
    /// controller on every worker, from the bundle) or "none" (policies are stored but nothing
    /// enforces them: every pod reaches every other).
    pub policy: Option<String>,
    /// How pods reach the other nodes' pods: "routes" (default: host routes, every host on one
    /// L2 segment) or "vxlan" (an overlay: hosts on different subnets or behind routers, UDP
    /// port 4789 between them).
    pub mode: Option<String>,
    /// MTU of the hosts' network. Default 1500. Pods get it, less the overlay's 50 bytes in
    /// vxlan mode.
    pub mtu: Option<u16>,
}

/// One CIDR, or a list with one per address family.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Cidrs {
    One(String),
    Each(Vec<String>),
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// "host:port" clients use to reach the API server (a load balancer or a control-plane host).
    /// Default: the first control-plane host's internal_ip and port 6443.
    pub endpoint: Option<String>,
    /// Extra names or addresses for the API server certificate.
    #[serde(default)]
    pub extra_sans: Vec<String>,
    /// How the nodes' kubelet and kube-proxy reach the API servers: "none" (default: at the
    /// endpoint) or "node-local": every worker that is not a control-plane host runs a TCP proxy
    /// (caddy's layer4 app, from the bundle) on 127.0.0.1:6444 to every API server, checked
    /// every second, so a node keeps the API while any API server answers; a control-plane
    /// host's node uses its own API server.
    pub load_balancer: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pki {
    /// Key algorithm: "ecdsa-p256" (default) or "ecdsa-p384".
    pub key_algorithm: Option<String>,
    /// Validity of leaf certificates in days. Default 365.
    pub cert_validity_days: Option<u32>,
    /// Validity of certificate authorities in days. Default 3650.
    pub ca_validity_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Versions {
    /// etcd version. Default depends on kubernetes_version.
    pub etcd: Option<String>,
    /// containerd version; decides the containerd config format. Default depends on kubernetes_version.
    pub containerd: Option<String>,
    /// Pause (sandbox) image the container runtime uses. Default depends on kubernetes_version;
    /// a bundle's pause image replaces the default.
    pub pause_image: Option<String>,
    /// CoreDNS image of the cluster DNS. Default depends on kubernetes_version; a bundle's CoreDNS
    /// image replaces the default.
    pub coredns_image: Option<String>,
}

/// etcd's scheduled snapshots, taken on every etcd host by a systemd timer.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Etcd {
    /// When to take a snapshot, as systemd's OnCalendar= reads it: "daily", "hourly",
    /// "*-*-* 02:30:00", ... Each etcd host saves its own under
    /// /var/lib/provisioner/backups/scheduled-TIME.db. Default: no scheduled snapshot.
    pub snapshot_schedule: Option<String>,
    /// How many scheduled snapshots each etcd host keeps. Default 7.
    pub snapshot_keep: Option<u32>,
}

/// Node requirements the kubelet enforces, and their escape hatches.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Kubelet {
    /// Let the kubelet run on hosts with swap enabled (failSwapOn: false). Default false.
    pub allow_swap: Option<bool>,
    /// Let the kubelet run on cgroup v1 hosts, which Kubernetes 1.35+ refuses by default
    /// (failCgroupV1: false). A temporary escape hatch; default false.
    pub allow_cgroup_v1: Option<bool>,
    /// Hard eviction thresholds (evictionHard), signal = threshold: a quantity ("100Mi") or a
    /// percentage ("10%"). The signals listed replace the kubelet's defaults for those signals.
    #[serde(default)]
    pub eviction_hard: std::collections::BTreeMap<String, String>,
}

/// What the hosts are.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nodes {
    /// The hosts are containers themselves (systemd-nspawn, LXC, Docker), not machines or VMs:
    /// kube-proxy leaves the conntrack table size to the real host, the kubelet does not account
    /// local ephemeral storage, and containerd does not lower containers' oom_score_adj. Default false.
    pub containers: Option<bool>,
}

/// What `apply` deploys into the cluster once the nodes are Ready.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Addons {
    /// Cluster DNS: CoreDNS at network.cluster_dns, from the bundle's CoreDNS image. Default true.
    pub coredns: Option<bool>,
    /// DNS servers the cluster DNS forwards other names to (IPv4 addresses). Default: the
    /// servers in the hosts' /etc/resolv.conf. An empty list answers cluster names only, for
    /// sites without a DNS server.
    pub dns_upstreams: Option<Vec<String>>,
}

/// SSH access. Every key except `bastion` and `parallelism` can be overridden per host.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    /// Login user. Default "root".
    pub user: Option<String>,
    /// SSH port. Default 22.
    pub port: Option<u16>,
    /// Private key file. Default "~/.ssh/id_ed25519".
    pub identity_file: Option<String>,
    /// known_hosts file checked (and, with accept-new, extended). Default "~/.ssh/known_hosts".
    pub known_hosts: Option<String>,
    /// "strict" (default): unknown or changed host keys are refused. "accept-new": unknown keys are recorded.
    pub host_key_policy: Option<String>,
    /// Run commands through passwordless sudo (for a non-root user). Default false.
    pub sudo: Option<bool>,
    /// Optional jump host, "user@host:port".
    pub bastion: Option<String>,
    /// How many hosts are worked on at once. Default 16.
    pub parallelism: Option<u32>,
    /// Seconds a remote command may run before it is abandoned (an upload gets one more second
    /// per MiB). Default 600.
    pub command_timeout: Option<u64>,
}

/// A registry whose images are pulled through mirrors first, such as an air-gapped site's own
/// registry standing in for registry.k8s.io. The mirrors are tried in order, the registry itself
/// last. Pods keep their image names; only where the bytes come from changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// The registry as image names spell it: "registry.k8s.io", "docker.io", "quay.io", or
    /// "host:port".
    pub name: String,
    /// Mirror URLs, tried in order: "https://host[:port]", or with a path for a mirror that
    /// serves the registry under one (Harbor's proxy cache: "https://harbor.internal/v2/k8s"),
    /// used as given.
    pub mirrors: Vec<String>,
    /// PEM file of the CA that signed the mirrors' certificates, when the hosts do not trust it
    /// already. Relative to the inventory file.
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Host name: lowercase letters, digits, '-' and '.'. Becomes the node and etcd member name.
    pub name: String,
    /// Address SSH connects to.
    pub address: String,
    /// Address used for cluster traffic. Default: address.
    pub internal_ip: Option<String>,
    /// IPv6 address for cluster traffic; every host has one in a dual-stack cluster.
    pub internal_ipv6: Option<String>,
    /// Any of "etcd", "control-plane", "worker".
    pub roles: Vec<String>,
    /// This node's pod range; default: the next free block of network.pod_cidr.
    pub pod_cidr: Option<String>,
    // Per-host SSH overrides. They repeat `Ssh`'s fields because serde cannot combine
    // `flatten` with `deny_unknown_fields`, and strictness matters more here.
    /// Login user for this host.
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
    pub host_key_policy: Option<String>,
    pub sudo: Option<bool>,
    /// Pinned SSH host key fingerprint, "SHA256:...".
    pub host_key: Option<String>,
}
