//! The validated cluster model every later stage works from. Everything here has been checked:
//! addresses parse, ranges do not overlap, every default is filled in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{Ipv4Net, Ipv6Net};

use super::version::{KubeVersion, Semver};
use crate::layout::{ETCD_CLIENT_PORT, ETCD_PEER_PORT};

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub kubernetes: KubeVersion,
    /// Absolute path of the state directory (PKI, secrets).
    pub state_dir: PathBuf,
    /// Absolute path of the binary bundle, when one is configured.
    pub bundle: Option<PathBuf>,
    /// Public key whose signature the bundle must carry.
    pub bundle_public_key: Option<PathBuf>,
    /// Backups of the state directory and etcd snapshots kept; older ones are removed.
    pub keep_backups: usize,
    /// Scheduled etcd snapshots on the etcd hosts, when asked for.
    pub etcd_snapshots: Option<SnapshotSchedule>,
    pub network: Network,
    pub api: Api,
    pub pki: PkiSettings,
    pub versions: Versions,
    pub kubelet: KubeletSettings,
    /// The hosts are containers themselves (`[nodes] containers`).
    pub hosts_are_containers: bool,
    pub addons: Addons,
    pub ssh: SshSettings,
    /// Registries pulled through mirrors, in inventory order.
    pub registries: Vec<Registry>,
    pub hosts: Vec<Host>,
}

/// A registry whose images containerd pulls through mirrors first (`[[registries]]`).
#[derive(Debug, Clone)]
pub struct Registry {
    /// As image names spell it, e.g. "registry.k8s.io" or "registry.internal:5000".
    pub name: String,
    /// The registry's own URL, tried after the mirrors (docker.io's is registry-1.docker.io).
    pub server: String,
    pub mirrors: Vec<Mirror>,
    /// The CA certificates (PEM) the mirrors' certificates are checked against, when set.
    pub ca_pem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub url: String,
    /// The URL carries the registry API's path itself (containerd's `override_path`), rather
    /// than containerd appending `/v2`.
    pub override_path: bool,
}

#[derive(Debug, Clone)]
pub struct SnapshotSchedule {
    /// A systemd calendar expression (OnCalendar=).
    pub calendar: String,
    pub keep: u32,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    /// The IPv6 ranges of a dual-stack cluster (IPv4 stays the primary family).
    pub ipv6: Option<Ipv6Ranges>,
    pub cluster_domain: String,
    pub cluster_dns: Ipv4Addr,
    /// The first address of service_cidr: the `kubernetes` Service's ClusterIP.
    pub api_service_ip: Ipv4Addr,
    /// Prefix length of each worker's pod range.
    pub node_cidr_prefix: u8,
    pub proxy_mode: ProxyMode,
    pub policy: PolicyEngine,
    pub mode: NetworkMode,
    /// MTU of the hosts' network (the interface holding each host's internal_ip).
    pub mtu: u16,
}

#[derive(Debug, Clone, Copy)]
pub struct Ipv6Ranges {
    pub pod_cidr: Ipv6Net,
    pub service_cidr: Ipv6Net,
}

/// Size of each worker's IPv6 pod range (kubeadm's default). A worker's is the block of the
/// IPv6 pod range with the same index as its IPv4 range has in the IPv4 one, so it never moves
/// either.
pub const NODE_CIDR_PREFIX_V6: u8 = 64;

/// How pod traffic crosses between nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Host routes to every other worker's pod range through its address: one L2 segment.
    Routes,
    /// A VXLAN overlay between every two hosts: any IP network between them.
    Vxlan,
}

impl Network {
    /// The MTU of the pods' interfaces: the hosts' own, less what the overlay adds.
    pub fn pod_mtu(&self) -> u16 {
        match self.mode {
            NetworkMode::Routes => self.mtu,
            NetworkMode::Vxlan => self.mtu - VXLAN_OVERHEAD,
        }
    }
}

/// What VXLAN adds to every packet over IPv4: outer IP (20), UDP (8), VXLAN (8) and inner
/// Ethernet (14) headers.
pub const VXLAN_OVERHEAD: u16 = 50;
/// The smallest pod MTU allowed: IPv6's minimum link MTU.
pub const MIN_POD_MTU: u16 = 1280;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Iptables,
    Nftables,
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Iptables => "iptables",
            ProxyMode::Nftables => "nftables",
        }
    }
}

/// What enforces NetworkPolicy objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyEngine {
    /// kube-router's network policy controller (iptables and ipset) on every worker.
    KubeRouter,
    /// Nothing: the API stores policies, every pod still reaches every other.
    None,
}

#[derive(Debug, Clone)]
pub struct Api {
    /// Host part of the endpoint (an IP address or a DNS name).
    pub host: String,
    pub port: u16,
    pub extra_sans: Vec<String>,
    pub load_balancer: LoadBalancer,
}

/// How the kubelets and kube-proxies reach the API servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancer {
    /// At the endpoint, like every other client.
    None,
    /// A worker that is not a control-plane host runs a TCP proxy on 127.0.0.1
    /// ([`NODE_LOCAL_API_PORT`]) to every API server; a control-plane host's node talks to its own
    /// API server.
    NodeLocal,
}

/// Where the node-local API load balancer listens, on 127.0.0.1.
pub const NODE_LOCAL_API_PORT: u16 = 6444;

impl Api {
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("https://[{}]:{}", self.host, self.port)
        } else {
            format!("https://{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PkiSettings {
    pub algorithm: KeyAlgorithm,
    pub cert_validity_days: u32,
    pub ca_validity_days: u32,
}

#[derive(Debug, Clone)]
pub struct Versions {
    pub etcd: Semver,
    pub containerd: Semver,
    pub pause_image: String,
    /// Set in the inventory rather than defaulted: a bundle carrying another version is an error
    /// (otherwise the bundle decides).
    pub etcd_pinned: bool,
    /// `pause_image` was set in the inventory (otherwise a bundle's pause image is used).
    pub pause_image_pinned: bool,
    pub containerd_pinned: bool,
    /// The CoreDNS image the cluster DNS runs.
    pub coredns_image: String,
    /// `coredns_image` was set in the inventory (otherwise a bundle's CoreDNS image is used).
    pub coredns_image_pinned: bool,
}

#[derive(Debug, Clone, Default)]
pub struct KubeletSettings {
    pub allow_swap: bool,
    pub allow_cgroup_v1: bool,
    /// evictionHard: signal to threshold, as the kubelet spells them.
    pub eviction_hard: std::collections::BTreeMap<String, String>,
}

/// What `apply` deploys into the cluster.
#[derive(Debug, Clone)]
pub struct Addons {
    pub coredns: bool,
    /// Where the cluster DNS forwards other names: None for the hosts' resolv.conf.
    pub dns_upstreams: Option<Vec<Ipv4Addr>>,
}

#[derive(Debug, Clone)]
pub struct SshSettings {
    pub parallelism: u32,
    pub bastion: Option<Bastion>,
    /// How long a remote command may run.
    pub command_timeout: std::time::Duration,
}

/// `[ssh] bastion`: `[user@]host[:port]`, an IPv6 address in brackets (`[fd00::1]:2222`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bastion {
    /// None: each host's own SSH user.
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl Bastion {
    /// None when `spec` is not `[user@]host[:port]` with a port from 1 to 65535.
    pub fn parse(spec: &str) -> Option<Bastion> {
        let (user, rest) = match spec.split_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, spec),
        };
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 22,
                None => return None,
            };
            (h, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().ok()?),
                None => (rest, 22),
            }
        };
        let ok = !host.is_empty() && user.as_ref().is_none_or(|u| !u.is_empty()) && port != 0;
        ok.then(|| Bastion {
            user,
            host: host.to_string(),
            port,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    Strict,
    AcceptNew,
}

/// How to reach one host, with the `[ssh]` defaults and the host's overrides already merged.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub user: String,
    pub port: u16,
    pub identity_file: PathBuf,
    pub known_hosts: PathBuf,
    pub host_key_policy: HostKeyPolicy,
    pub sudo: bool,
    pub host_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    pub etcd: bool,
    pub control_plane: bool,
    pub worker: bool,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// Where SSH connects: an IP address or a DNS name.
    pub address: String,
    pub internal_ip: Ipv4Addr,
    /// Its IPv6 address, in a dual-stack cluster.
    pub internal_ipv6: Option<Ipv6Addr>,
    pub roles: Roles,
    /// The node's pod range; set for workers only.
    pub pod_cidr: Option<Ipv4Net>,
    /// The inventory sets `pod_cidr` (otherwise it is the next free block, or the one the state
    /// directory recorded for this host).
    pub pod_cidr_explicit: bool,
    /// Its etcd member joins (or joined) a running cluster, as a learner promoted once caught
    /// up, rather than bootstrapping it with the first members. Set from the state directory's
    /// record of the hosts.
    pub etcd_joins: bool,
    pub ssh: SshTarget,
}

impl Host {
    /// Where this host's etcd member serves clients (the API servers, etcdctl, the gates).
    pub fn etcd_client_url(&self) -> String {
        format!("https://{}:{ETCD_CLIENT_PORT}", self.internal_ip)
    }

    /// Where this host's etcd member talks to the other members.
    pub fn etcd_peer_url(&self) -> String {
        format!("https://{}:{ETCD_PEER_PORT}", self.internal_ip)
    }
}

impl Cluster {
    pub fn etcd_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.roles.etcd)
    }

    pub fn control_plane_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.roles.control_plane)
    }

    /// Where a host sends traffic for worker `w`'s pods: `w` itself on one segment, its
    /// overlay address (the first of its pod range, never given to a pod) in vxlan mode.
    pub fn pod_gateway(&self, w: &Host) -> Option<Ipv4Addr> {
        match self.network.mode {
            NetworkMode::Routes => Some(w.internal_ip),
            NetworkMode::Vxlan => w.pod_cidr.map(|r| r.network()),
        }
    }

    /// [`Self::pod_gateway`] for worker `w`'s IPv6 pods, in a dual-stack cluster: in vxlan
    /// mode its overlay device's link-local address.
    pub fn pod_gateway_v6(&self, w: &Host) -> Option<Ipv6Addr> {
        self.pod_cidr_v6(w)?;
        match self.network.mode {
            NetworkMode::Routes => w.internal_ipv6,
            NetworkMode::Vxlan => Some(crate::layout::pod_overlay_link_local(w.internal_ip)),
        }
    }

    /// Worker `w`'s IPv6 pod range, in a dual-stack cluster: the block of the IPv6 pod range
    /// with its IPv4 range's index (see [`NODE_CIDR_PREFIX_V6`]).
    pub fn pod_cidr_v6(&self, w: &Host) -> Option<Ipv6Net> {
        let v6 = self.network.ipv6?;
        let range = w.pod_cidr?;
        let offset = u32::from(range.network()) - u32::from(self.network.pod_cidr.network());
        let index = u128::from(offset >> (32 - self.network.node_cidr_prefix));
        let base = u128::from(v6.pod_cidr.network()) + (index << (128 - NODE_CIDR_PREFIX_V6));
        Ipv6Net::new(Ipv6Addr::from(base), NODE_CIDR_PREFIX_V6).ok()
    }

    pub fn worker_hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.roles.worker)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The etcd client URLs the API servers use, one per etcd member.
    pub fn etcd_servers(&self) -> Vec<String> {
        self.etcd_hosts().map(Host::etcd_client_url).collect()
    }

    /// etcd's `--initial-cluster`: `name=PEER_URL` for every member.
    pub fn etcd_initial_cluster(&self) -> String {
        self.etcd_hosts()
            .map(|h| format!("{}={}", h.name, h.etcd_peer_url()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether `h` runs the node-local API load balancer.
    pub fn runs_api_load_balancer(&self, h: &Host) -> bool {
        self.api.load_balancer == LoadBalancer::NodeLocal
            && h.roles.worker
            && !h.roles.control_plane
    }

    /// The API server URL of `h`'s kubelet and kube-proxy.
    pub fn node_api_url(&self, h: &Host) -> String {
        match self.api.load_balancer {
            LoadBalancer::None => self.api.url(),
            LoadBalancer::NodeLocal if h.roles.control_plane => {
                format!("https://{}:6443", h.internal_ip)
            }
            LoadBalancer::NodeLocal => format!("https://127.0.0.1:{NODE_LOCAL_API_PORT}"),
        }
    }

    /// Whether the API endpoint host is an IP address (it then goes into the certificate as an IP SAN).
    pub fn api_host_ip(&self) -> Option<IpAddr> {
        self.api.host.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bastion_specs() {
        let b = |user: Option<&str>, host: &str, port| {
            Some(Bastion {
                user: user.map(String::from),
                host: host.into(),
                port,
            })
        };
        assert_eq!(
            Bastion::parse("jump@10.0.0.5:2222"),
            b(Some("jump"), "10.0.0.5", 2222)
        );
        assert_eq!(
            Bastion::parse("bastion.example"),
            b(None, "bastion.example", 22)
        );
        assert_eq!(Bastion::parse("u@[::1]:2200"), b(Some("u"), "::1", 2200));
        assert_eq!(Bastion::parse("[fd00::1]"), b(None, "fd00::1", 22));
        for bad in ["u@host:0", "u@host:x", "@host", "ops@:22", "[::1]x", "[::1"] {
            assert_eq!(Bastion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_workers_ipv6_range_has_its_ipv4_ranges_index() {
        let mut c = crate::inventory::bundled_for_test(tempfile::tempdir().unwrap().path());
        assert_eq!(c.pod_cidr_v6(&c.hosts[3]), None, "IPv4 only");
        c.network.pod_cidr = "10.244.0.0/16".parse().unwrap();
        c.network.ipv6 = Some(Ipv6Ranges {
            pod_cidr: "fd00:10:244::/56".parse().unwrap(),
            service_cidr: "fd00:10:96::/112".parse().unwrap(),
        });
        let w = &mut c.hosts[3];
        w.pod_cidr = Some("10.244.3.0/24".parse().unwrap());
        let w = c.hosts[3].clone();
        assert_eq!(
            c.pod_cidr_v6(&w),
            Some("fd00:10:244:3::/64".parse().unwrap())
        );
        c.network.node_cidr_prefix = 25;
        c.hosts[3].pod_cidr = Some("10.244.1.128/25".parse().unwrap());
        let w = c.hosts[3].clone();
        assert_eq!(
            c.pod_cidr_v6(&w),
            Some("fd00:10:244:3::/64".parse().unwrap())
        );
        assert_eq!(
            c.pod_cidr_v6(&c.hosts[0]),
            None,
            "no pods on a control-plane host"
        );
    }
}
