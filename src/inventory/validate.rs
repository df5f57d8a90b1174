//! Turns the raw inventory into the model, checking meaning. Every problem is collected; a model
//! is returned only when there is no error.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};

use super::model::*;
use super::problem::{KeyPath, Problem};
use super::raw;
use super::version::{self, KubeVersion, Semver};

mod registries;

pub fn validate(inv: &raw::Inventory, base_dir: &Path) -> (Option<Cluster>, Vec<Problem>) {
    let mut v = Validator::default();
    let cluster = v.cluster(inv, base_dir);
    let ok = v
        .problems
        .iter()
        .all(|p| p.severity != super::problem::Severity::Error);
    (cluster.filter(|_| ok), v.problems)
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

fn at(path: &str) -> KeyPath {
    KeyPath::parse(path)
}

impl Validator {
    fn error(&mut self, path: KeyPath, msg: impl Into<String>) {
        self.problems.push(Problem::error(path, msg));
    }

    fn warn(&mut self, path: KeyPath, msg: impl Into<String>) {
        self.problems.push(Problem::warning(path, msg));
    }

    /// Runs a parse, recording its error at `path`; None when it failed.
    fn support(&mut self, path: KeyPath, s: version::Support) {
        match s {
            version::Support::Yes => {}
            version::Support::Warn(w) => self.warn(path, w),
            version::Support::No(e) => self.error(path, e),
        }
    }

    fn check<T>(&mut self, path: KeyPath, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.error(path, e)).ok()
    }

    fn cluster(&mut self, inv: &raw::Inventory, base_dir: &Path) -> Option<Cluster> {
        let c = &inv.cluster;
        self.check(at("cluster.name"), dns_label(&c.name));
        let kubernetes = self.check(
            at("cluster.kubernetes_version"),
            KubeVersion::parse(&c.kubernetes_version),
        );
        let state_dir = base_dir.join(c.state_dir.as_deref().unwrap_or(".provisioner"));
        let bundle = c.bundle.as_deref().map(|b| base_dir.join(expand_home(b)));
        let bundle_public_key = c
            .bundle_public_key
            .as_deref()
            .map(|k| base_dir.join(expand_home(k)));
        if bundle_public_key.is_some() && bundle.is_none() {
            self.error(
                at("cluster.bundle_public_key"),
                "is set but [cluster] bundle is not: name the signed bundle too",
            );
        }
        let keep_backups = c.keep_backups.unwrap_or(10);
        if !(1..=1000).contains(&keep_backups) {
            self.error(at("cluster.keep_backups"), "must be 1 to 1000");
        }

        let etcd_snapshots = self.etcd_snapshots(&inv.etcd);
        let network = self.network(&inv.network);
        let pki = self.pki(&inv.pki);
        let versions = kubernetes.and_then(|k| self.versions(&inv.versions, k));
        let ssh = self.ssh_settings(&inv.ssh);
        let hosts = self.hosts(inv, base_dir, network.as_ref());
        let api = hosts.as_ref().and_then(|h| self.api(&inv.api, h));

        Some(Cluster {
            name: c.name.clone(),
            kubernetes: kubernetes?,
            state_dir,
            bundle,
            bundle_public_key,
            keep_backups: keep_backups as usize,
            etcd_snapshots,
            network: network?,
            api: api?,
            pki: pki?,
            versions: versions?,
            kubelet: self.kubelet(&inv.kubelet),
            hosts_are_containers: inv.nodes.containers.unwrap_or(false),
            addons: self.addons(&inv.addons),
            ssh: ssh?,
            registries: self.registries(&inv.registries, base_dir),
            hosts: hosts?,
        })
    }

    fn etcd_snapshots(&mut self, e: &raw::Etcd) -> Option<SnapshotSchedule> {
        let keep = e.snapshot_keep.unwrap_or(7);
        if !(1..=1000).contains(&keep) {
            self.error(at("etcd.snapshot_keep"), "must be 1 to 1000");
        }
        let calendar = e.snapshot_schedule.as_deref()?.trim();
        // It goes into a unit file line as it is: systemd checks the expression itself when
        // the timer loads, and the gate reports a timer that did not.
        let plain = calendar
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " *:-/,.~".contains(c));
        if calendar.is_empty() || !plain {
            self.error(
                at("etcd.snapshot_schedule"),
                "must be a systemd calendar expression such as \"daily\", \"hourly\" or \
                 \"*-*-* 02:30:00\" (letters, digits, spaces and * : - / , . ~)",
            );
        }
        Some(SnapshotSchedule {
            calendar: calendar.to_string(),
            keep,
        })
    }

    fn network(&mut self, n: &raw::Network) -> Option<Network> {
        let pods = self.ranges("network.pod_cidr", n.pod_cidr.as_ref(), "10.200.0.0/16");
        let services = self.ranges(
            "network.service_cidr",
            n.service_cidr.as_ref(),
            "10.32.0.0/24",
        );
        let pod_cidr = pods.map(|(v4, _)| v4);
        let service_cidr = services.map(|(v4, _)| v4);
        let ipv6 = match (pods.map(|(_, v6)| v6), services.map(|(_, v6)| v6)) {
            (Some(Some(pod_cidr)), Some(Some(service_cidr))) => {
                if pod_cidr.contains(&service_cidr.network())
                    || service_cidr.contains(&pod_cidr.network())
                {
                    self.error(
                        at("network.service_cidr").index(1),
                        format!("{service_cidr} overlaps network.pod_cidr {pod_cidr}; the two ranges must be disjoint"),
                    );
                }
                if service_cidr.prefix_len() < 108 {
                    self.error(
                        at("network.service_cidr").index(1),
                        format!("{service_cidr} is too large: the API server takes at most 20 bits of Service addresses (/108 or longer)"),
                    );
                }
                Some(Ipv6Ranges {
                    pod_cidr,
                    service_cidr,
                })
            }
            (Some(Some(_)), Some(None)) => {
                self.error(at("network.service_cidr"), "network.pod_cidr is dual-stack, so the Services need an IPv6 range too: give [\"IPV4/N\", \"IPV6/N\"]");
                None
            }
            (Some(None), Some(Some(_))) => {
                self.error(at("network.pod_cidr"), "network.service_cidr is dual-stack, so the pods need an IPv6 range too: give [\"IPV4/N\", \"IPV6/N\"]");
                None
            }
            _ => None,
        };
        let cluster_domain = n
            .cluster_domain
            .clone()
            .unwrap_or_else(|| "cluster.local".into());
        self.check(at("network.cluster_domain"), dns_name(&cluster_domain));
        let proxy_mode = match n.proxy_mode.as_deref().unwrap_or("iptables") {
            "iptables" => Some(ProxyMode::Iptables),
            "nftables" => Some(ProxyMode::Nftables),
            other => {
                self.error(
                    at("network.proxy_mode"),
                    format!("`{other}` is not a kube-proxy mode this tool configures; use \"iptables\" or \"nftables\" (ipvs is deprecated since Kubernetes 1.35)"),
                );
                None
            }
        };
        let policy = match n.policy.as_deref().unwrap_or("kube-router") {
            "kube-router" => Some(PolicyEngine::KubeRouter),
            "none" => {
                self.warn(
                    at("network.policy"),
                    "NetworkPolicy objects will be accepted but not enforced: every pod reaches \
                     every other; remove the setting to enforce them with kube-router",
                );
                Some(PolicyEngine::None)
            }
            other => {
                self.error(
                    at("network.policy"),
                    format!("`{other}` is not a network policy engine this tool installs; use \"kube-router\" (the default) or \"none\""),
                );
                None
            }
        };
        let mode = match n.mode.as_deref().unwrap_or("routes") {
            "routes" => Some(NetworkMode::Routes),
            "vxlan" => Some(NetworkMode::Vxlan),
            other => {
                self.error(
                    at("network.mode"),
                    format!("`{other}` is not a pod network mode; use \"routes\" (every host on one L2 segment) or \"vxlan\" (an overlay across subnets and routers)"),
                );
                None
            }
        };
        let mtu = n.mtu.unwrap_or(1500);
        let overhead = match mode {
            Some(NetworkMode::Vxlan) => VXLAN_OVERHEAD,
            _ => 0,
        };
        if !(MIN_POD_MTU + overhead..=9216).contains(&mtu) {
            self.error(
                at("network.mtu"),
                format!(
                    "{mtu} is outside {}..=9216: pods need at least {MIN_POD_MTU}{}",
                    MIN_POD_MTU + overhead,
                    if overhead > 0 {
                        format!(" after the overlay's {overhead} bytes")
                    } else {
                        String::new()
                    }
                ),
            );
        }
        if let (Some(p), Some(s)) = (pod_cidr, service_cidr) {
            if p.contains(&s.network()) || s.contains(&p.network()) {
                self.error(
                    at("network.service_cidr"),
                    format!("{s} overlaps network.pod_cidr {p}; the two ranges must be disjoint"),
                );
            }
        }
        let service_cidr = service_cidr?;
        if service_cidr.prefix_len() < 12 {
            self.error(
                at("network.service_cidr"),
                format!("{service_cidr} is too large: the API server takes at most 20 bits of Service addresses (/12 or longer)"),
            );
        }
        let api_service_ip = nth_address(service_cidr, 1);
        if service_cidr.prefix_len() > 28 {
            self.error(at("network.service_cidr"), format!("{service_cidr} is too small; use a /28 or larger so the cluster DNS address (the 10th) fits"));
        }
        let cluster_dns = match &n.cluster_dns {
            None => nth_address(service_cidr, 10),
            Some(s) => {
                let ip = self.check(at("network.cluster_dns"), ipv4(s))?;
                if !service_cidr.contains(&ip) {
                    self.error(
                        at("network.cluster_dns"),
                        format!("{ip} is outside network.service_cidr {service_cidr}"),
                    );
                } else if ip == api_service_ip || ip == service_cidr.network() {
                    self.error(at("network.cluster_dns"), format!("{ip} is reserved (the network address or the `kubernetes` Service address {api_service_ip})"));
                }
                ip
            }
        };
        let node_prefix = n.node_cidr_prefix.unwrap_or(24);
        if let Some(p) = pod_cidr {
            if node_prefix <= p.prefix_len() || node_prefix > 28 {
                self.error(
                    at("network.node_cidr_prefix"),
                    format!(
                        "/{node_prefix} must be longer than network.pod_cidr's /{} and at most /28",
                        p.prefix_len()
                    ),
                );
            }
        }
        if let (Some(v6), Some(p)) = (ipv6, pod_cidr) {
            // Worker i's IPv6 range is block i of the IPv6 pod range (NODE_CIDR_PREFIX_V6).
            let needed = node_prefix.saturating_sub(p.prefix_len());
            if v6.pod_cidr.prefix_len() + needed > NODE_CIDR_PREFIX_V6 {
                self.error(
                    at("network.pod_cidr").index(1),
                    format!(
                        "{} holds fewer /{NODE_CIDR_PREFIX_V6} ranges than {p} holds /{node_prefix} ones; use a /{} or larger",
                        v6.pod_cidr,
                        NODE_CIDR_PREFIX_V6 - needed
                    ),
                );
            }
        }
        Some(Network {
            pod_cidr: pod_cidr?,
            service_cidr,
            ipv6,
            cluster_domain,
            cluster_dns,
            api_service_ip,
            node_cidr_prefix: node_prefix,
            proxy_mode: proxy_mode?,
            policy: policy?,
            mode: mode?,
            mtu,
        })
    }

    /// One IPv4 CIDR, or a list of one IPv4 and (dual-stack) one IPv6 CIDR, in that order.
    fn ranges(
        &mut self,
        key: &str,
        value: Option<&raw::Cidrs>,
        default: &str,
    ) -> Option<(Ipv4Net, Option<Ipv6Net>)> {
        let list = match value {
            None => return self.check(at(key), cidr(default)).map(|v4| (v4, None)),
            Some(raw::Cidrs::One(one)) => {
                return self.check(at(key), cidr(one)).map(|v4| (v4, None))
            }
            Some(raw::Cidrs::Each(list)) => list,
        };
        match list.as_slice() {
            [v4] => self.check(at(key).index(0), cidr(v4)).map(|v4| (v4, None)),
            [v4, v6] if v4.parse::<Ipv6Net>().is_ok() && v6.parse::<Ipv4Net>().is_ok() => {
                self.error(
                    at(key),
                    format!("list the IPv4 range first ([\"{v6}\", \"{v4}\"]): IPv4 is the cluster's primary family"),
                );
                None
            }
            [v4, v6] => {
                let v4 = self.check(at(key).index(0), cidr(v4));
                let v6 = self.check(at(key).index(1), cidr6(v6));
                Some((v4?, Some(v6?)))
            }
            _ => {
                self.error(
                    at(key),
                    format!("{} ranges; give one, or two for a dual-stack cluster: the IPv4 range, then the IPv6 one", list.len()),
                );
                None
            }
        }
    }

    fn pki(&mut self, p: &raw::Pki) -> Option<PkiSettings> {
        let algorithm = match p.key_algorithm.as_deref().unwrap_or("ecdsa-p256") {
            "ecdsa-p256" => Some(KeyAlgorithm::EcdsaP256),
            "ecdsa-p384" => Some(KeyAlgorithm::EcdsaP384),
            other => {
                self.error(at("pki.key_algorithm"), format!("`{other}` is not supported; use \"ecdsa-p256\" (default) or \"ecdsa-p384\""));
                None
            }
        };
        let cert = p.cert_validity_days.unwrap_or(365);
        let ca = p.ca_validity_days.unwrap_or(3650);
        // Certificates must end before X.509's year 9999; 100 years is more than any CA needs.
        const MAX_DAYS: u32 = 36_500;
        if cert == 0 || cert > MAX_DAYS {
            self.error(
                at("pki.cert_validity_days"),
                format!("must be 1 to {MAX_DAYS} days"),
            );
        }
        if ca == 0 || ca > MAX_DAYS {
            self.error(
                at("pki.ca_validity_days"),
                format!("must be 1 to {MAX_DAYS} days"),
            );
        } else if cert > ca {
            self.error(
                at("pki.cert_validity_days"),
                format!("{cert} days outlives the CAs ({ca} days, pki.ca_validity_days)"),
            );
        }
        Some(PkiSettings {
            algorithm: algorithm?,
            cert_validity_days: cert,
            ca_validity_days: ca,
        })
    }

    fn versions(&mut self, v: &raw::Versions, k: KubeVersion) -> Option<Versions> {
        let etcd = self.check(
            at("versions.etcd"),
            v.etcd
                .as_deref()
                .unwrap_or(k.default_etcd())
                .parse::<Semver>(),
        );
        if let Some(e) = etcd {
            self.support(at("versions.etcd"), version::etcd_support(e, k));
        }
        let containerd = self.check(
            at("versions.containerd"),
            v.containerd
                .as_deref()
                .unwrap_or(k.default_containerd())
                .parse::<Semver>(),
        );
        if let Some(c) = containerd {
            self.support(at("versions.containerd"), version::containerd_support(c, k));
        }
        // Copied into containerd's config, the CoreDNS manifest and host commands.
        let pause_image = self.image(
            "versions.pause_image",
            v.pause_image.as_ref(),
            k.default_pause_image(),
        );
        let coredns_image = self.image(
            "versions.coredns_image",
            v.coredns_image.as_ref(),
            k.default_coredns_image(),
        );
        Some(Versions {
            coredns_image,
            coredns_image_pinned: v.coredns_image.is_some(),
            etcd: etcd?,
            containerd: containerd?,
            pause_image,
            pause_image_pinned: v.pause_image.is_some(),
            etcd_pinned: v.etcd.is_some(),
            containerd_pinned: v.containerd.is_some(),
        })
    }

    /// An image reference the inventory sets at `key`, or `default`.
    fn image(&mut self, key: &str, set: Option<&String>, default: String) -> String {
        let reference = set.cloned().unwrap_or_else(|| default.clone());
        if let Err(e) = super::reference::image_reference(&reference) {
            self.error(at(key), format!("{e}; use one such as {default}"));
        }
        reference
    }

    fn kubelet(&mut self, k: &raw::Kubelet) -> KubeletSettings {
        for (signal, threshold) in &k.eviction_hard {
            let key = at("kubelet.eviction_hard").key(signal);
            if !EVICTION_SIGNALS.contains(&signal.as_str()) {
                self.error(
                    key.clone(),
                    format!(
                        "`{signal}` is not an eviction signal; use one of {}",
                        EVICTION_SIGNALS.join(", ")
                    ),
                );
            }
            self.check(key, eviction_threshold(threshold));
        }
        KubeletSettings {
            allow_swap: k.allow_swap.unwrap_or(false),
            allow_cgroup_v1: k.allow_cgroup_v1.unwrap_or(false),
            eviction_hard: k.eviction_hard.clone(),
        }
    }

    fn addons(&mut self, a: &raw::Addons) -> Addons {
        let dns_upstreams = a.dns_upstreams.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, s)| self.check(at("addons.dns_upstreams").index(i), ipv4(s)))
                .collect()
        });
        Addons {
            coredns: a.coredns.unwrap_or(true),
            dns_upstreams,
        }
    }

    fn ssh_settings(&mut self, s: &raw::Ssh) -> Option<SshSettings> {
        let parallelism = s.parallelism.unwrap_or(16);
        if !(1..=256).contains(&parallelism) {
            self.error(at("ssh.parallelism"), "must be 1 to 256");
        }
        let bastion = s.bastion.as_deref().and_then(|b| {
            let parsed = Bastion::parse(b).filter(|p| address(&p.host).is_ok());
            if parsed.is_none() {
                self.error(
                    at("ssh.bastion"),
                    format!("`{b}` is not [user@]host[:port] (an IPv6 address in brackets)"),
                );
            }
            parsed
        });
        let command_timeout = s.command_timeout.unwrap_or(super::DEFAULT_COMMAND_TIMEOUT);
        if !(10..=86_400).contains(&command_timeout) {
            self.error(at("ssh.command_timeout"), "must be 10 to 86400 seconds");
        }
        Some(SshSettings {
            parallelism,
            bastion,
            command_timeout: std::time::Duration::from_secs(command_timeout),
        })
    }

    fn hosts(
        &mut self,
        inv: &raw::Inventory,
        base_dir: &Path,
        net: Option<&Network>,
    ) -> Option<Vec<Host>> {
        if inv.hosts.is_empty() {
            self.error(at("hosts"), "no hosts; add at least one [[hosts]] entry");
            return None;
        }
        let mut hosts = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut addresses: HashMap<String, usize> = HashMap::new();
        let mut internal: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut internal6: HashMap<Ipv6Addr, usize> = HashMap::new();
        let mut failed = false;
        for (i, h) in inv.hosts.iter().enumerate() {
            let p = at("hosts").index(i);
            if self.check(p.key("name"), dns_name(&h.name)).is_none() {
                failed = true;
            }
            if let Some(j) = names.insert(&h.name, i) {
                self.error(
                    p.key("name"),
                    format!(
                        "`{}` is also the name of hosts[{j}]; host names must be unique",
                        h.name
                    ),
                );
            }
            if self.check(p.key("address"), address(&h.address)).is_none() {
                failed = true;
            }
            if let Some(j) = addresses.insert(h.address.to_lowercase(), i) {
                self.error(
                    p.key("address"),
                    format!("{} is also the address of hosts[{j}]", h.address),
                );
            }
            let internal_ip = match &h.internal_ip {
                Some(ip) => self.check(p.key("internal_ip"), ipv4(ip)),
                None => match ipv4(&h.address) {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        if address(&h.address).is_ok() {
                            self.error(p.key("internal_ip"), format!("address `{}` is not an IPv4 address, so internal_ip must be set", h.address));
                        }
                        None
                    }
                },
            };
            if let Some(ip) = internal_ip {
                if let Some(j) = internal.insert(ip, i) {
                    self.error(
                        p.key("internal_ip"),
                        format!("{ip} is also the internal address of hosts[{j}]"),
                    );
                }
                if let Some(n) = net {
                    for (range, key) in [(n.pod_cidr, "pod_cidr"), (n.service_cidr, "service_cidr")]
                    {
                        if range.contains(&ip) {
                            self.error(p.key(if h.internal_ip.is_some() { "internal_ip" } else { "address" }), format!("{ip} lies inside network.{key} {range}; host addresses must be outside the cluster's ranges"));
                        }
                    }
                }
            }
            let internal_ipv6 = self.host_ipv6(h, i, net, &mut internal6);
            let roles = self.roles(&h.roles, &p);
            let ssh = self.ssh_target(&inv.ssh, h, &p, base_dir);
            let explicit_pod_cidr = h
                .pod_cidr
                .as_deref()
                .and_then(|c| self.check(p.key("pod_cidr"), cidr(c)));
            if let (Some(c), Some(n)) = (explicit_pod_cidr, net) {
                if !n.pod_cidr.contains(&c) {
                    self.error(
                        p.key("pod_cidr"),
                        format!("{c} is outside network.pod_cidr {}", n.pod_cidr),
                    );
                }
            }
            if h.pod_cidr.is_some() && roles.is_some_and(|r| !r.worker) {
                self.warn(
                    p.key("pod_cidr"),
                    "only workers run pods; this range is unused",
                );
            }
            match (internal_ip, roles, ssh) {
                (Some(internal_ip), Some(roles), Some(ssh)) if !failed => hosts.push(Host {
                    name: h.name.clone(),
                    address: h.address.clone(),
                    internal_ip,
                    internal_ipv6,
                    roles,
                    pod_cidr: explicit_pod_cidr,
                    pod_cidr_explicit: explicit_pod_cidr.is_some(),
                    etcd_joins: false,
                    ssh,
                }),
                _ => failed = true,
            }
        }
        let etcd = inv
            .hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == "etcd"))
            .count();
        let cp = inv
            .hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == "control-plane"))
            .count();
        let workers = inv
            .hosts
            .iter()
            .filter(|h| h.roles.iter().any(|r| r == "worker"))
            .count();
        if etcd == 0 {
            self.error(
                at("hosts"),
                "no host has the `etcd` role; the cluster needs at least one etcd member",
            );
        } else if etcd % 2 == 0 {
            self.warn(
                at("hosts"),
                format!(
                    "{etcd} etcd members tolerate no more failures than {}; use an odd number",
                    etcd - 1
                ),
            );
        }
        if cp == 0 {
            self.error(at("hosts"), "no host has the `control-plane` role");
        }
        if workers == 0 && inv.addons.coredns != Some(false) {
            self.error(
                at("hosts"),
                "no host has the `worker` role, so the cluster DNS cannot run; add a worker or \
                 set [addons] coredns = false",
            );
        } else if workers == 0 {
            self.warn(at("hosts"), "no host has the `worker` role; no pod can run");
        }
        if failed {
            return None;
        }
        if let Some(n) = net {
            self.assign_pod_ranges(&mut hosts, n)?;
        }
        Some(hosts)
    }

    fn roles(&mut self, roles: &[String], p: &KeyPath) -> Option<Roles> {
        if roles.is_empty() {
            self.error(
                p.key("roles"),
                "a host needs at least one role: etcd, control-plane or worker",
            );
            return None;
        }
        let mut r = Roles::default();
        let mut ok = true;
        for (i, role) in roles.iter().enumerate() {
            let slot = match role.as_str() {
                "etcd" => &mut r.etcd,
                "control-plane" => &mut r.control_plane,
                "worker" => &mut r.worker,
                other => {
                    self.error(
                        p.key("roles").index(i),
                        format!("unknown role `{other}`; roles are etcd, control-plane and worker"),
                    );
                    ok = false;
                    continue;
                }
            };
            if *slot {
                self.error(
                    p.key("roles").index(i),
                    format!("role `{role}` is listed twice"),
                );
            }
            *slot = true;
        }
        ok.then_some(r)
    }

    fn ssh_target(
        &mut self,
        d: &raw::Ssh,
        h: &raw::Host,
        p: &KeyPath,
        base_dir: &Path,
    ) -> Option<SshTarget> {
        let user = h
            .user
            .clone()
            .or_else(|| d.user.clone())
            .unwrap_or_else(|| "root".into());
        let user_key = if h.user.is_some() {
            p.key("user")
        } else {
            at("ssh.user")
        };
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            self.error(user_key, format!("`{user}` is not a valid login name"));
        }
        let port = h.port.or(d.port).unwrap_or(22);
        if port == 0 {
            self.error(
                if h.port.is_some() {
                    p.key("port")
                } else {
                    at("ssh.port")
                },
                "port 0 is not a valid SSH port",
            );
        }
        let policy_key = if h.host_key_policy.is_some() {
            p.key("host_key_policy")
        } else {
            at("ssh.host_key_policy")
        };
        let host_key_policy = match h
            .host_key_policy
            .as_deref()
            .or(d.host_key_policy.as_deref())
            .unwrap_or("strict")
        {
            "strict" => Some(HostKeyPolicy::Strict),
            "accept-new" => Some(HostKeyPolicy::AcceptNew),
            other => {
                self.error(policy_key, format!("`{other}` is not a host key policy; use \"strict\" or \"accept-new\" (host keys are always verified)"));
                None
            }
        };
        if let Some(k) = &h.host_key {
            self.check(p.key("host_key"), fingerprint(k));
        }
        let file = |v: Option<&String>, default: &str| {
            base_dir.join(expand_home(v.map_or(default, String::as_str)))
        };
        Some(SshTarget {
            user,
            port,
            identity_file: file(
                h.identity_file.as_ref().or(d.identity_file.as_ref()),
                "~/.ssh/id_ed25519",
            ),
            known_hosts: file(
                h.known_hosts.as_ref().or(d.known_hosts.as_ref()),
                "~/.ssh/known_hosts",
            ),
            host_key_policy: host_key_policy?,
            sudo: h.sudo.or(d.sudo).unwrap_or(false),
            host_key: h.host_key.clone(),
        })
    }

    /// Gives each worker without an explicit range the next free block of pod_cidr, in host order.
    fn assign_pod_ranges(&mut self, hosts: &mut [Host], net: &Network) -> Option<()> {
        let (pod_cidr, prefix) = (net.pod_cidr, net.node_cidr_prefix);
        let taken: Vec<(usize, Ipv4Net)> = hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.roles.worker)
            .filter_map(|(i, h)| h.pod_cidr.map(|c| (i, c)))
            .collect();
        for (a, (i, x)) in taken.iter().enumerate() {
            for (j, y) in &taken[a + 1..] {
                if x.contains(&y.network()) || y.contains(&x.network()) {
                    self.error(
                        at("hosts").index(*j).key("pod_cidr"),
                        format!("{y} overlaps hosts[{i}].pod_cidr {x}"),
                    );
                }
            }
        }
        let mut free = pod_cidr.subnets(prefix).ok()?.filter(|s| {
            !taken
                .iter()
                .any(|(_, t)| t.contains(&s.network()) || s.contains(&t.network()))
        });
        for (i, h) in hosts.iter_mut().enumerate() {
            if h.roles.worker && h.pod_cidr.is_none() {
                match free.next() {
                    Some(s) => h.pod_cidr = Some(s),
                    None => {
                        self.error(at("hosts").index(i), format!("network.pod_cidr {pod_cidr} has no free /{prefix} left for this worker"));
                        return None;
                    }
                }
            }
        }
        Some(())
    }

    /// A host's IPv6 address: required in a dual-stack cluster, refused in one without IPv6.
    fn host_ipv6(
        &mut self,
        h: &raw::Host,
        i: usize,
        net: Option<&Network>,
        seen: &mut HashMap<Ipv6Addr, usize>,
    ) -> Option<Ipv6Addr> {
        let key = at("hosts").index(i).key("internal_ipv6");
        let v6 = net?.ipv6;
        let Some(text) = &h.internal_ipv6 else {
            if v6.is_some() {
                self.error(key, "the cluster is dual-stack (network.pod_cidr has an IPv6 range): every host needs its IPv6 address here");
            }
            return None;
        };
        let Some(ranges) = v6 else {
            self.error(key, "the cluster has no IPv6 ranges: add one to network.pod_cidr and network.service_cidr, or remove this address");
            return None;
        };
        let ip = self.check(key.clone(), ipv6(text))?;
        if let Some(j) = seen.insert(ip, i) {
            self.error(
                key.clone(),
                format!("{ip} is also the IPv6 address of hosts[{j}]"),
            );
        }
        for (range, name) in [
            (ranges.pod_cidr, "pod_cidr[1]"),
            (ranges.service_cidr, "service_cidr[1]"),
        ] {
            if range.contains(&ip) {
                self.error(key.clone(), format!("{ip} lies inside network.{name} {range}; host addresses must be outside the cluster's ranges"));
            }
        }
        Some(ip)
    }

    fn api(&mut self, a: &raw::Api, hosts: &[Host]) -> Option<Api> {
        for (i, san) in a.extra_sans.iter().enumerate() {
            if san.parse::<IpAddr>().is_err() {
                self.check(
                    at("api.extra_sans").index(i),
                    dns_name(san.strip_prefix("*.").unwrap_or(san)),
                );
            }
        }
        let load_balancer = match a.load_balancer.as_deref().unwrap_or("none") {
            "none" => Some(LoadBalancer::None),
            "node-local" => Some(LoadBalancer::NodeLocal),
            other => {
                self.error(
                    at("api.load_balancer"),
                    format!("`{other}` is not a load balancer this tool runs; use \"node-local\" (a TCP proxy to every API server on each worker) or \"none\""),
                );
                None
            }
        };
        let (host, port) = match &a.endpoint {
            Some(e) => self.check(at("api.endpoint"), endpoint(e))?,
            None => (
                hosts
                    .iter()
                    .find(|h| h.roles.control_plane)?
                    .internal_ip
                    .to_string(),
                6443,
            ),
        };
        let cps: Vec<&Host> = hosts.iter().filter(|h| h.roles.control_plane).collect();
        let single = cps
            .iter()
            .find(|h| h.internal_ip.to_string() == host || h.name == host || h.address == host);
        let node_local = load_balancer == Some(LoadBalancer::NodeLocal);
        if let (true, false, Some(h)) = (cps.len() > 1, node_local, single) {
            // Every kubelet and kube-proxy would depend on this one host.
            let key = if a.endpoint.is_some() {
                at("api.endpoint")
            } else {
                at("hosts")
            };
            self.warn(
                key,
                format!(
                    "{} control-plane hosts, but clients reach the API at {} only ({}): when it is \
                     down, every node loses the API; set api.load_balancer = \"node-local\", or \
                     api.endpoint to a load balancer or a virtual IP in front of all of them",
                    cps.len(),
                    h.name,
                    host
                ),
            );
        }
        Some(Api {
            host,
            port,
            extra_sans: a.extra_sans.clone(),
            load_balancer: load_balancer?,
        })
    }
}

pub fn expand_home(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(p), |h| PathBuf::from(h).join(rest)),
        None => PathBuf::from(p),
    }
}

/// The kubelet's eviction signals (pkg/kubelet/eviction/api).
const EVICTION_SIGNALS: [&str; 8] = [
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
];

/// A percentage ("10%", "7.5%") or a resource quantity ("100Mi", "1G", "5000").
fn eviction_threshold(s: &str) -> Result<(), String> {
    let number = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit() || c == '.')
            && n.parse::<f64>().is_ok()
    };
    if let Some(p) = s.strip_suffix('%') {
        return match p.parse::<f64>() {
            Ok(v) if number(p) && (0.0..=100.0).contains(&v) => Ok(()),
            _ => Err(format!("`{s}` is not a percentage from 0% to 100%")),
        };
    }
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    match SUFFIXES
        .iter()
        .find_map(|u| s.strip_suffix(u).filter(|n| number(n)))
    {
        Some(_) => Ok(()),
        None => Err(format!(
            "`{s}` is neither a percentage (\"10%\") nor a quantity (\"100Mi\", \"1Gi\")"
        )),
    }
}

fn nth_address(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(n))
}

fn cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv4 CIDR such as 10.200.0.0/16"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{s}` has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn cidr6(s: &str) -> Result<Ipv6Net, String> {
    let net: Ipv6Net = s
        .parse()
        .map_err(|_| format!("`{s}` is not an IPv6 CIDR such as fd00:10:244::/56"))?;
    if net.network() != net.addr() {
        return Err(format!(
            "`{s}` has host bits set; did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

fn ipv6(s: &str) -> Result<Ipv6Addr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an IPv6 address"))
}

fn ipv4(s: &str) -> Result<Ipv4Addr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an IPv4 address"))
}

/// An SSH address: an IP address or a DNS name.
fn address(s: &str) -> Result<(), String> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("`{s}` is not a valid IPv4 address"));
    }
    dns_name(s).map_err(|_| format!("`{s}` is neither an IP address nor a DNS name"))
}

/// A DNS-1123 label: what cluster names must be.
fn dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    ok.then_some(()).ok_or_else(|| {
        format!("`{s}` must be 1 to 63 lowercase letters, digits or '-', not starting or ending with '-'")
    })
}

/// A DNS-1123 subdomain: host names (they become node names, etcd member names and certificate
/// subjects, so nothing outside this alphabet may slip into a subject).
fn dns_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns_label(l).is_ok());
    ok.then_some(()).ok_or_else(|| {
        format!("`{s}` is not a valid name: use lowercase letters, digits, '-' and '.', each part 1 to 63 characters")
    })
}

fn endpoint(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{s}` is not host:port (e.g. 10.88.0.11:6443 or api.example.com:6443)");
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        s.rsplit_once(':').ok_or_else(bad)?
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    address(host).map_err(|_| bad())?;
    Ok((host.to_string(), port))
}

fn fingerprint(s: &str) -> Result<(), String> {
    let ok = s.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    });
    ok.then_some(()).ok_or_else(|| {
        format!("`{s}` is not an SSH key fingerprint; `ssh-keyscan HOST | ssh-keygen -lf -` prints it as SHA256:<43 characters>")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_must_be_network_addresses() {
        assert!(cidr("10.200.0.0/16").is_ok());
        let e = cidr("10.200.0.1/16").unwrap_err();
        assert!(e.contains("10.200.0.0/16"), "{e}");
        assert!(cidr("10.200.0.0").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            endpoint("10.0.0.1:6443").unwrap(),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            endpoint("api.example.com:443").unwrap().0,
            "api.example.com"
        );
        assert!(endpoint("10.0.0.1").is_err());
        assert!(endpoint("10.0.0.1:0").is_err());
        assert!(endpoint("bad_host:6443").is_err());
    }

    #[test]
    fn eviction_thresholds_are_percentages_or_quantities() {
        for good in ["10%", "0%", "7.5%", "100Mi", "1Gi", "500", "1.5G"] {
            assert!(eviction_threshold(good).is_ok(), "{good}");
        }
        for bad in ["101%", "%", "10 %", "-1%", "100MB", "Mi", ""] {
            assert!(eviction_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert!(dns_name("cp-1").is_ok());
        assert!(dns_name("node-1.example").is_ok());
        for bad in ["CP-1", "cp_1", "-cp", "a,b", "cn=x", ""] {
            assert!(dns_name(bad).is_err(), "{bad}");
        }
    }
}
