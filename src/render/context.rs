//! What each template is given: one struct per template (or family of templates), so a
//! template's inputs are named and typed where they are made.

use std::collections::BTreeMap;

use serde::Serialize;

/// What every host template may use.
#[derive(Serialize, Clone)]
pub struct HostCtx<'a> {
    pub cluster_name: &'a str,
    pub node_name: &'a str,
    pub internal_ip: String,
    /// Its IPv6 address, in a dual-stack cluster.
    pub internal_ipv6: Option<String>,
    /// The cluster's pod ranges (the IPv4 one, then the IPv6 one when dual-stack, with a
    /// comma between them, as the components' flags take them).
    pub pod_cidr: String,
    pub service_cidr: String,
    /// What the Kubernetes components serve TLS 1.2 with (see `TLS_CIPHER_SUITES`).
    pub tls_cipher_suites: String,
}

#[derive(Serialize)]
pub struct EtcdUnit<'a> {
    #[serde(flatten)]
    pub host: &'a HostCtx<'a>,
    /// etcd gained --tls-min-version in 3.5.8.
    pub tls_min_version: bool,
    /// 3.6 renamed the experimental flags.
    pub etcd_3_5: bool,
}

/// What an etcd member reads on its first start only.
#[derive(Serialize)]
pub struct EtcdBootstrap<'a> {
    pub cluster_name: &'a str,
    /// `name=https://ip:2380,...` for every member.
    pub initial_cluster: String,
    /// "new" for the members that bootstrap the cluster, "existing" for one that joins it.
    pub initial_cluster_state: &'static str,
}

/// The scheduled snapshot's timer, job and script.
#[derive(Serialize)]
pub struct EtcdSnapshotJob<'a> {
    #[serde(flatten)]
    pub host: &'a HostCtx<'a>,
    pub calendar: &'a str,
    pub keep: u32,
    /// Where the snapshots go.
    pub dir: &'a str,
    /// etcd's PKI directory (the healthcheck client's certificate).
    pub pki: &'a str,
    /// The script the job runs.
    pub script: &'a str,
}

#[derive(Serialize)]
pub struct ApiserverUnit<'a> {
    #[serde(flatten)]
    pub host: &'a HostCtx<'a>,
    pub etcd_servers: String,
    pub service_account_issuer: String,
}

#[derive(Serialize)]
pub struct ControllerManagerUnit<'a> {
    #[serde(flatten)]
    pub host: &'a HostCtx<'a>,
    /// How long the certificates it signs live (the kubelets' renewed client certificates):
    /// as long as provisioner's own.
    pub signing_duration_hours: u64,
}

#[derive(Serialize)]
pub struct EncryptionConfig<'a> {
    pub encryption_key: &'a str,
}

#[derive(Serialize)]
pub struct ContainerdConfig<'a> {
    pub containerd_version: String,
    pub config_version: u32,
    /// containerd 2.1 replaced cni.bin_dir with bin_dirs (and 2.4 removed bin_dir).
    pub cni_bin_dirs: bool,
    pub pause_image: &'a str,
    pub hosts_are_containers: bool,
    pub registry_hosts_dir: &'a str,
}

#[derive(Serialize)]
pub struct RegistryHosts<'a> {
    pub name: &'a str,
    pub server: &'a str,
    pub mirrors: Vec<MirrorCtx<'a>>,
    /// Where the mirrors' CA certificates are on the host, when the inventory names them.
    pub ca: Option<&'a str>,
}

#[derive(Serialize)]
pub struct MirrorCtx<'a> {
    pub url: &'a str,
    pub override_path: bool,
}

#[derive(Serialize)]
pub struct KubeletConfig<'a> {
    pub tls_cipher_suites: &'a [&'a str],
    pub cluster_domain: &'a str,
    pub cluster_dns: String,
    pub minor: u32,
    pub allow_cgroup_v1: bool,
    pub allow_swap: bool,
    pub eviction_hard: &'a BTreeMap<String, String>,
    pub hosts_are_containers: bool,
}

#[derive(Serialize)]
pub struct KubeProxyConfig<'a> {
    #[serde(flatten)]
    pub host: &'a HostCtx<'a>,
    pub proxy_mode: &'a str,
    pub hosts_are_containers: bool,
}

#[derive(Serialize)]
pub struct KubeRouterUnit<'a> {
    #[serde(flatten)]
    pub host: &'a HostCtx<'a>,
    pub health_port: u16,
}

/// A route to another worker's pod range.
#[derive(Serialize)]
pub struct Route {
    pub cidr: String,
    pub via: String,
}

#[derive(Serialize)]
pub struct PodRoutes {
    pub routes: Vec<Route>,
    pub pod_cidr: String,
    /// The IPv6 routes and pod network of a dual-stack cluster.
    pub routes6: Vec<Route>,
    pub pod_cidr6: Option<String>,
    /// This host's address, on the interface whose MTU is checked against `mtu`.
    pub internal_ip: String,
    /// The inventory's network.mtu.
    pub mtu: u16,
    /// A worker's pods reach addresses outside the pod network from its address (pod to pod
    /// traffic keeps the pod's own, which NetworkPolicy rules match on).
    pub masquerade: bool,
    /// The NAT chain that decides it.
    pub egress_chain: &'static str,
    /// The overlay's names, in both modes: routes mode removes what vxlan mode left.
    pub vxlan: VxlanNames,
    /// The VXLAN overlay the routes go through, in vxlan mode.
    pub overlay: Option<Overlay>,
}

#[derive(Serialize)]
pub struct VxlanNames {
    pub device: &'static str,
    pub port: u16,
    /// The filter chain that admits the overlay's UDP from the peers only.
    pub chain: &'static str,
    /// The routing table of the replies to hosts without pods, and its rule's priority.
    pub table: u32,
}

/// One host's VXLAN device and what it knows of the other hosts'. The device carries both
/// families of a dual-stack cluster over IPv4.
#[derive(Serialize)]
pub struct Overlay {
    pub vni: u32,
    pub mtu: u16,
    /// This host's device's MAC address.
    pub mac: String,
    /// Its link-local IPv6 address, in a dual-stack cluster: the other hosts' gateway to this
    /// one's IPv6 pods.
    pub link_local: Option<String>,
    /// Every other host's device.
    pub peers: Vec<Peer>,
    /// IPv4, then (dual-stack) IPv6.
    pub families: Vec<OverlayFamily>,
}

/// Another host's VXLAN device: its MAC and the address it is reached at (its internal_ip).
#[derive(Serialize)]
pub struct Peer {
    pub mac: String,
    pub ip: String,
}

/// What one address family needs of the overlay on one host.
#[derive(Serialize)]
pub struct OverlayFamily {
    /// `ip`'s option for it: "-4" or "-6".
    pub option: &'static str,
    /// A worker's device's address with its prefix length (its pod range's first address;
    /// for IPv4 also the others' gateway to its pods): its own traffic to other hosts' pods,
    /// and its pods' traffic to hosts without pods, leave from it.
    pub address: Option<String>,
    /// A worker's pod range, whose replies to `podless` go back through the overlay.
    pub pod_range: Option<String>,
    /// The neighbour address routes name each other host by, with that host's MAC: a
    /// worker's gateway (see `Cluster::pod_gateway`), a host without pods its own address.
    pub neighbours: Vec<(String, String)>,
    /// On a worker, the addresses of the other hosts without pods (control-plane or etcd
    /// hosts).
    pub podless: Vec<String>,
}

/// The CNI bridge's configuration: the node's pod ranges (one per family) and its pods' MTU.
#[derive(Serialize)]
pub struct CniBridge {
    pub ranges: Vec<String>,
    /// The default route of each family.
    pub defaults: Vec<&'static str>,
    pub mtu: u16,
}

/// The node-local API load balancer: where it listens and the API servers it passes to.
#[derive(Serialize)]
pub struct ApiLoadBalancer {
    pub port: u16,
    /// `ip:6443` of every API server.
    pub upstreams: Vec<String>,
}

#[derive(Serialize)]
pub struct Kubeconfig<'a> {
    pub cluster_name: &'a str,
    pub server: &'a str,
    pub user: &'a str,
    pub ca_data: String,
    pub cert_data: String,
    pub key_data: String,
}
