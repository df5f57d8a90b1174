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
    /// The cluster's pod range; in the CNI configs, the node's own.
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
    /// A worker's pods reach addresses outside the pod network from its address (pod to pod
    /// traffic keeps the pod's own, which NetworkPolicy rules match on).
    pub masquerade: bool,
    /// The NAT chain that decides it.
    pub egress_chain: &'static str,
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
