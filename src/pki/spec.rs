//! Which certificates the cluster needs, derived from the inventory alone (pure).
//!
//! Names, subjects and usages follow kubeadm's layout, so operators find what they know:
//! ca, etcd/ca and front-proxy-ca; apiserver and its clients; one etcd server and peer
//! certificate per etcd member; one kubelet client and serving certificate per worker.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::inventory::{Cluster, Host, PolicyEngine};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ca {
    /// Signs the API server, every kubeconfig client and the kubelets.
    Cluster,
    /// Signs etcd's server, peer and client certificates only.
    Etcd,
    /// Signs the aggregation-layer proxy client only.
    FrontProxy,
}

impl Ca {
    pub const ALL: [Ca; 3] = [Ca::Cluster, Ca::Etcd, Ca::FrontProxy];

    pub fn name(self) -> &'static str {
        match self {
            Ca::Cluster => "ca",
            Ca::Etcd => "etcd-ca",
            Ca::FrontProxy => "front-proxy-ca",
        }
    }

    pub fn common_name(self) -> &'static str {
        match self {
            Ca::Cluster => "kubernetes-ca",
            Ca::Etcd => "etcd-ca",
            Ca::FrontProxy => "kubernetes-front-proxy-ca",
        }
    }

    /// File stem in the state directory and under /etc/kubernetes/pki.
    pub fn file(self) -> &'static str {
        match self {
            Ca::Cluster => "ca",
            Ca::Etcd => "etcd/ca",
            Ca::FrontProxy => "front-proxy-ca",
        }
    }
}

/// A kind of leaf certificate; per-host kinds have one certificate per host of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cert {
    Apiserver,
    ApiserverKubeletClient,
    ApiserverEtcdClient,
    FrontProxyClient,
    EtcdHealthcheckClient,
    Admin,
    SuperAdmin,
    ControllerManager,
    Scheduler,
    KubeProxy,
    /// The network policy engine's client, when kube-router enforces NetworkPolicy.
    KubeRouter,
    EtcdServer,
    EtcdPeer,
    ControllerManagerServer,
    SchedulerServer,
    KubeletClient,
    KubeletServer,
}

impl Cert {
    pub const ALL: [Cert; 17] = [
        Cert::Apiserver,
        Cert::ApiserverKubeletClient,
        Cert::ApiserverEtcdClient,
        Cert::FrontProxyClient,
        Cert::EtcdHealthcheckClient,
        Cert::Admin,
        Cert::SuperAdmin,
        Cert::ControllerManager,
        Cert::Scheduler,
        Cert::KubeProxy,
        Cert::KubeRouter,
        Cert::EtcdServer,
        Cert::EtcdPeer,
        Cert::ControllerManagerServer,
        Cert::SchedulerServer,
        Cert::KubeletClient,
        Cert::KubeletServer,
    ];

    /// The name operators select it by, and its file stem in the state directory.
    pub const fn name(self) -> &'static str {
        match self {
            Cert::Apiserver => "apiserver",
            Cert::ApiserverKubeletClient => "apiserver-kubelet-client",
            Cert::ApiserverEtcdClient => "apiserver-etcd-client",
            Cert::FrontProxyClient => "front-proxy-client",
            Cert::EtcdHealthcheckClient => "etcd-healthcheck-client",
            Cert::Admin => "admin",
            Cert::SuperAdmin => "super-admin",
            Cert::ControllerManager => "controller-manager",
            Cert::Scheduler => "scheduler",
            Cert::KubeProxy => "kube-proxy",
            Cert::KubeRouter => "kube-router",
            Cert::EtcdServer => "etcd-server",
            Cert::EtcdPeer => "etcd-peer",
            Cert::ControllerManagerServer => "controller-manager-server",
            Cert::SchedulerServer => "scheduler-server",
            Cert::KubeletClient => "kubelet-client",
            Cert::KubeletServer => "kubelet-server",
        }
    }

    pub fn from_name(name: &str) -> Option<Cert> {
        Cert::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl std::fmt::Display for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub server: bool,
    pub client: bool,
}

const SERVER: Usage = Usage {
    server: true,
    client: false,
};
const CLIENT: Usage = Usage {
    server: false,
    client: true,
};
/// etcd members use their serving certificate as a client too (etcd issue 9785).
const SERVER_AND_CLIENT: Usage = Usage {
    server: true,
    client: true,
};

/// One leaf certificate the cluster needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Kind of certificate.
    pub name: Cert,
    /// The host it belongs to, for per-host certificates.
    pub host: Option<String>,
    pub ca: Ca,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub usage: Usage,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl CertSpec {
    /// `apiserver`, or `etcd-server@cp-1` for a per-host certificate.
    pub fn id(&self) -> String {
        match &self.host {
            Some(h) => format!("{}@{h}", self.name),
            None => self.name.to_string(),
        }
    }

    /// File stem in the state directory, relative to its `pki/`.
    pub fn state_file(&self) -> String {
        match &self.host {
            Some(h) => format!("hosts/{h}/{}", self.name),
            None => match self.name {
                Cert::EtcdHealthcheckClient => "etcd/healthcheck-client".to_string(),
                n => n.name().to_string(),
            },
        }
    }

    fn new(name: Cert, ca: Ca, cn: impl Into<String>, usage: Usage) -> Self {
        CertSpec {
            name,
            host: None,
            ca,
            common_name: cn.into(),
            organizations: Vec::new(),
            usage,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    fn org(mut self, o: &str) -> Self {
        self.organizations.push(o.to_string());
        self
    }

    fn on(mut self, host: &Host) -> Self {
        self.host = Some(host.name.clone());
        self
    }

    fn sans(mut self, dns: Vec<String>, ips: Vec<IpAddr>) -> Self {
        self.dns_names = dedup(dns);
        self.ip_addresses = dedup(ips);
        self
    }
}

/// The group the admin certificate carries. It is bound to the `cluster-admin` role through RBAC,
/// so the day-to-day admin credential can be revoked by deleting a binding; only the break-glass
/// `super-admin` credential (kept in the state directory, never copied to a host) bypasses RBAC.
pub const ADMIN_GROUP: &str = "kubeadm:cluster-admins";
/// The user kube-router's client certificate names, bound to what its policy controller reads.
pub const KUBE_ROUTER_USER: &str = "system:kube-router";

/// Every leaf certificate of the cluster, in a stable order.
pub fn leaf_certs(c: &Cluster) -> Vec<CertSpec> {
    let loopback4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let loopback6 = IpAddr::V6(Ipv6Addr::LOCALHOST);

    let mut api_dns: Vec<String> = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
        .map(String::from)
        .to_vec();
    api_dns.push(format!(
        "kubernetes.default.svc.{}",
        c.network.cluster_domain
    ));
    let mut api_ips = vec![IpAddr::V4(c.network.api_service_ip), loopback4];
    for h in c.control_plane_hosts() {
        api_dns.push(h.name.clone());
        api_ips.push(IpAddr::V4(h.internal_ip));
    }
    match c.api_host_ip() {
        Some(ip) => api_ips.push(ip),
        None => api_dns.push(c.api.host.clone()),
    }
    for san in &c.api.extra_sans {
        match san.parse::<IpAddr>() {
            Ok(ip) => api_ips.push(ip),
            Err(_) => api_dns.push(san.clone()),
        }
    }

    let mut certs = vec![
        CertSpec::new(Cert::Apiserver, Ca::Cluster, "kube-apiserver", SERVER)
            .sans(api_dns, api_ips),
        CertSpec::new(
            Cert::ApiserverKubeletClient,
            Ca::Cluster,
            "kube-apiserver-kubelet-client",
            CLIENT,
        ),
        CertSpec::new(
            Cert::ApiserverEtcdClient,
            Ca::Etcd,
            "kube-apiserver-etcd-client",
            CLIENT,
        ),
        CertSpec::new(
            Cert::FrontProxyClient,
            Ca::FrontProxy,
            "front-proxy-client",
            CLIENT,
        ),
        CertSpec::new(
            Cert::EtcdHealthcheckClient,
            Ca::Etcd,
            "kube-etcd-healthcheck-client",
            CLIENT,
        ),
        CertSpec::new(Cert::Admin, Ca::Cluster, "kubernetes-admin", CLIENT).org(ADMIN_GROUP),
        CertSpec::new(
            Cert::SuperAdmin,
            Ca::Cluster,
            "kubernetes-super-admin",
            CLIENT,
        )
        .org("system:masters"),
        CertSpec::new(
            Cert::ControllerManager,
            Ca::Cluster,
            "system:kube-controller-manager",
            CLIENT,
        ),
        CertSpec::new(
            Cert::Scheduler,
            Ca::Cluster,
            "system:kube-scheduler",
            CLIENT,
        ),
        CertSpec::new(Cert::KubeProxy, Ca::Cluster, "system:kube-proxy", CLIENT),
    ];
    if c.network.policy == PolicyEngine::KubeRouter {
        certs.push(CertSpec::new(
            Cert::KubeRouter,
            Ca::Cluster,
            KUBE_ROUTER_USER,
            CLIENT,
        ));
    }
    for h in c.etcd_hosts() {
        let dns = vec![h.name.clone(), "localhost".to_string()];
        let ips = vec![IpAddr::V4(h.internal_ip), loopback4, loopback6];
        certs.push(
            CertSpec::new(Cert::EtcdServer, Ca::Etcd, &h.name, SERVER_AND_CLIENT)
                .on(h)
                .sans(dns.clone(), ips.clone()),
        );
        certs.push(
            CertSpec::new(Cert::EtcdPeer, Ca::Etcd, &h.name, SERVER_AND_CLIENT)
                .on(h)
                .sans(dns, ips),
        );
    }
    for h in c.control_plane_hosts() {
        // kubeadm leaves these two with self-signed serving certificates; signed ones let health
        // checks verify whom they talk to.
        let dns = vec![h.name.clone(), "localhost".to_string()];
        let ips = vec![IpAddr::V4(h.internal_ip), loopback4];
        certs.push(
            CertSpec::new(
                Cert::ControllerManagerServer,
                Ca::Cluster,
                "kube-controller-manager",
                SERVER,
            )
            .on(h)
            .sans(dns.clone(), ips.clone()),
        );
        certs.push(
            CertSpec::new(Cert::SchedulerServer, Ca::Cluster, "kube-scheduler", SERVER)
                .on(h)
                .sans(dns, ips),
        );
    }
    for h in c.worker_hosts() {
        let node = format!("system:node:{}", h.name);
        let mut ips = vec![IpAddr::V4(h.internal_ip)];
        // The API server reaches a dual-stack node at either of its addresses.
        ips.extend(h.internal_ipv6.map(IpAddr::V6));
        if let Ok(ip) = h.address.parse::<IpAddr>() {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        certs.push(
            CertSpec::new(Cert::KubeletClient, Ca::Cluster, &node, CLIENT)
                .org("system:nodes")
                .on(h),
        );
        certs.push(
            CertSpec::new(Cert::KubeletServer, Ca::Cluster, &node, SERVER)
                .org("system:nodes")
                .on(h)
                .sans(vec![h.name.clone()], ips),
        );
    }
    certs
}

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}
