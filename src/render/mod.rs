//! Renders, for every host, exactly the files its roles need. Pure: the same cluster and PKI
//! always give the same bytes, and nothing here touches a host or the disk.

pub mod addons;
mod context;
mod templates;
mod write;

use anyhow::Result;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;

use crate::component::{
    Unit, API_LB_PROGRAMS, CNI_PLUGINS, CONTROL_PLANE_PROGRAMS, ETCD_PROGRAMS, WORKER_PROGRAMS,
};
use crate::inventory::version;
use crate::inventory::{Cluster, Host, Registry, NODE_LOCAL_API_PORT};
use crate::layout::{
    BACKUPS, BIN_DIR, CNI_BIN_DIR, KUBELET_KUBECONFIG, MODULES_FILE, REGISTRY_HOSTS_DIR,
    SYSCTL_FILE, SYSUSERS_DIR,
};
use crate::pki::{Ca, Cert, Pem, Pki};
use context::*;
use templates::Templates;
pub use write::write_tree;

/// One file as it will be on a host.
#[derive(Debug, Clone, Serialize)]
pub struct File {
    /// Absolute path on the host.
    pub path: String,
    pub mode: u32,
    #[serde(skip)]
    pub content: Vec<u8>,
    /// Holds key material: its content is never printed.
    pub secret: bool,
    /// The units that read it: a change restarts exactly these.
    #[serde(skip)]
    pub readers: Vec<Unit>,
}

/// A binary the host needs from the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Binary {
    /// Name in the bundle manifest.
    pub name: &'static str,
    /// Where it is installed.
    pub path: String,
    /// The units that run it: a new version restarts exactly these.
    #[serde(skip)]
    pub readers: Vec<Unit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostFiles {
    pub host: String,
    /// Directories to create first, with their modes.
    pub dirs: Vec<(String, u32)>,
    pub files: Vec<File>,
    pub binaries: Vec<Binary>,
    /// systemd units this host runs, in start order.
    pub units: Vec<Unit>,
    /// Files an earlier layout had on this host that one of `files` replaces: removed where
    /// present (see [`RETIRED`]).
    pub retired: Vec<String>,
    /// Directories whose files are all provisioner's: a file there that is not one of `files`
    /// is removed.
    pub owned: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub hosts: Vec<HostFiles>,
    /// The operator's kubeconfig (admin credentials, bound to cluster-admin through RBAC).
    pub admin_kubeconfig: String,
    /// Deployed into the cluster once the nodes are Ready (and kept on the control-plane hosts).
    pub addons: Vec<addons::Addon>,
}

use crate::pki::identity::host_path::{self, PKI};
const SECRET: u32 = 0o600;
const PUBLIC: u32 = 0o644;

pub fn render(c: &Cluster, pki: &Pki) -> Result<Rendered> {
    let t = Templates::load()?;
    let addons = addons::addons(&t, c)?;
    let hosts = c
        .hosts
        .iter()
        .map(|h| host_files(&t, c, pki, h, &addons))
        .collect::<Result<_>>()?;
    let admin = pki.leaf(Cert::Admin, None);
    Ok(Rendered {
        hosts,
        addons,
        admin_kubeconfig: kubeconfig(&t, c, pki, "kubernetes-admin", admin, &c.api.url())?,
    })
}

/// Collects a host's files as they are rendered.
struct HostBuilder<'a> {
    t: &'a Templates,
    out: HostFiles,
}

impl HostBuilder<'_> {
    /// Adds a file; `readers` are the units that read it, restarted when it changes.
    fn file(&mut self, path: &str, mode: u32, content: impl Into<Vec<u8>>, readers: &[Unit]) {
        self.out.files.push(File {
            path: path.to_string(),
            mode,
            content: content.into(),
            secret: mode & 0o077 == 0,
            readers: readers.to_vec(),
        });
    }

    fn template(
        &mut self,
        path: &str,
        mode: u32,
        template: &str,
        ctx: &impl Serialize,
        readers: &[Unit],
    ) -> Result<()> {
        let text = self.t.render(template, ctx)?;
        self.file(path, mode, text, readers);
        Ok(())
    }

    fn pair(&mut self, stem: &str, pem: &Pem, readers: &[Unit]) {
        self.file(&format!("{stem}.crt"), PUBLIC, pem.cert.as_str(), readers);
        self.file(&format!("{stem}.key"), SECRET, pem.key.as_str(), readers);
    }

    fn unit(&mut self, unit: Unit, ctx: &impl Serialize) -> Result<()> {
        self.template(&unit.unit_file(), PUBLIC, &unit.file_name(), ctx, &[unit])?;
        self.out.units.push(unit);
        Ok(())
    }

    /// Bundle programs, each restarting the units the unit table says run it.
    fn binaries(&mut self, dir: &str, names: &[&'static str]) {
        for n in names {
            self.out.binaries.push(Binary {
                name: n,
                path: format!("{dir}/{n}"),
                readers: Unit::ALL
                    .into_iter()
                    .filter(|u| u.props().binaries.contains(n))
                    .collect(),
            });
        }
    }

    /// Makes a file already added readable by root only, though it holds no secret (the CIS
    /// benchmark asks it of the kubelet's unit and configuration).
    fn root_only(&mut self, path: &str) {
        let f = self
            .out
            .files
            .iter_mut()
            .find(|f| f.path == path)
            .expect("a file is added before it is restricted");
        f.mode = SECRET;
    }

    fn dir(&mut self, path: &str, mode: u32) {
        self.out.dirs.push((path.to_string(), mode));
    }
}

/// containerd's registry configuration: no restart, containerd reads it on every pull.
fn registry_hosts(b: &mut HostBuilder<'_>, registries: &[Registry]) -> Result<()> {
    b.dir(REGISTRY_HOSTS_DIR, 0o755);
    // A registry taken out of the inventory must stop redirecting pulls.
    b.out.owned.push(REGISTRY_HOSTS_DIR.to_string());
    for r in registries {
        let dir = format!("{REGISTRY_HOSTS_DIR}/{}", r.name);
        b.dir(&dir, 0o755);
        let ca = r.ca_pem.as_ref().map(|pem| {
            let path = format!("{dir}/ca.crt");
            b.file(&path, PUBLIC, pem.as_str(), &[]);
            path
        });
        let ctx = RegistryHosts {
            name: &r.name,
            server: &r.server,
            mirrors: r
                .mirrors
                .iter()
                .map(|m| MirrorCtx {
                    url: &m.url,
                    override_path: m.override_path,
                })
                .collect(),
            ca: ca.as_deref(),
        };
        b.template(
            &format!("{dir}/hosts.toml"),
            PUBLIC,
            "containerd-hosts.toml",
            &ctx,
            &[],
        )?;
    }
    Ok(())
}

/// Files an earlier release of provisioner wrote, each with the file that replaces it. A host
/// that gets the replacement has the old one removed: its readers would otherwise still find
/// it (containerd loads the first CNI configuration by name, and `10-bridge.conf` sorts before
/// `10-bridge.conflist`).
pub const RETIRED: &[(&str, &str)] = &[(CNI_BRIDGE_CONF_V1, CNI_BRIDGE_CONF)];
/// The pod network's CNI configuration: the bridge, then portmap for `hostPort`.
const CNI_BRIDGE_CONF: &str = "/etc/cni/net.d/10-bridge.conflist";
/// The bridge alone, before hostPort worked.
const CNI_BRIDGE_CONF_V1: &str = "/etc/cni/net.d/10-bridge.conf";

/// The TLS 1.2 cipher suites the Kubernetes components serve with: ECDHE key exchange and an
/// AEAD cipher only (Go's defaults still accept CBC ones); TLS 1.3's are not configurable and
/// all strong. The CIS Kubernetes Benchmark's list (1.2.29, 4.2.12).
const TLS_CIPHER_SUITES: &[&str] = &[
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
];

/// What an etcd member reads on its first start only (the members to bootstrap with or join):
/// the one file a unit reads whose change restarts nothing, so that a new member list
/// restarts no member.
pub const ETCD_BOOTSTRAP_ENV: &str = "/etc/kubernetes/etcd-bootstrap.env";

fn host_files(
    t: &Templates,
    c: &Cluster,
    pki: &Pki,
    h: &Host,
    addons: &[addons::Addon],
) -> Result<HostFiles> {
    use Unit::*;
    let mut b = HostBuilder {
        t,
        out: HostFiles {
            host: h.name.clone(),
            dirs: Vec::new(),
            files: Vec::new(),
            binaries: Vec::new(),
            units: Vec::new(),
            retired: Vec::new(),
            owned: Vec::new(),
        },
    };
    let common = HostCtx {
        cluster_name: &c.name,
        node_name: &h.name,
        internal_ip: h.internal_ip.to_string(),
        pod_cidr: c.network.pod_cidr.to_string(),
        service_cidr: c.network.service_cidr.to_string(),
        tls_cipher_suites: TLS_CIPHER_SUITES.join(","),
    };
    b.dir("/etc/kubernetes", 0o755);
    b.dir(PKI, 0o755);
    let etcd_ca = pki.ca(Ca::Etcd).cert.as_str();

    if h.roles.etcd {
        b.dir(&format!("{PKI}/etcd"), 0o755);
        b.dir("/var/lib/etcd", 0o700);
        b.binaries(BIN_DIR, ETCD_PROGRAMS);
        b.file(
            &host_path::ca_cert(Ca::Etcd),
            PUBLIC,
            etcd_ca,
            &[Etcd, KubeApiserver],
        );
        b.pair(
            &format!("{PKI}/etcd/server"),
            pki.leaf(Cert::EtcdServer, Some(&h.name)),
            &[Etcd],
        );
        b.pair(
            &format!("{PKI}/etcd/peer"),
            pki.leaf(Cert::EtcdPeer, Some(&h.name)),
            &[Etcd],
        );
        // Lets an operator on the host run etcdctl, and the health gates check the member.
        b.pair(
            &format!("{PKI}/etcd/healthcheck-client"),
            pki.leaf(Cert::EtcdHealthcheckClient, None),
            &[],
        );
        b.template(
            ETCD_BOOTSTRAP_ENV,
            PUBLIC,
            "etcd-bootstrap.env",
            &EtcdBootstrap {
                cluster_name: &c.name,
                initial_cluster: c.etcd_initial_cluster(),
                initial_cluster_state: if h.etcd_joins { "existing" } else { "new" },
            },
            &[],
        )?;
        // Read by systemd-sysusers when it changes, before etcd (re)starts.
        b.template(
            &format!("{SYSUSERS_DIR}etcd.conf"),
            PUBLIC,
            "etcd-sysusers.conf",
            &common,
            &[],
        )?;
        let etcd = c.versions.etcd;
        let ctx = EtcdUnit {
            host: &common,
            tls_min_version: (etcd.major, etcd.minor, etcd.patch) >= (3, 5, 8),
            // 3.6 renamed the experimental flags and made 10000 the default snapshot count
            // (3.5's 100000 keeps too many entries in memory). Progress notifications let the
            // API server's watch cache serve consistent reads: without them a read waits for a
            // revision the cache never sees, and each API server stop takes a minute.
            etcd_3_5: etcd.minor < 6,
        };
        b.unit(Etcd, &ctx)?;
        if let Some(s) = &c.etcd_snapshots {
            let script = "/etc/kubernetes/etcd-snapshot.sh";
            let ctx = EtcdSnapshotJob {
                host: &common,
                calendar: &s.calendar,
                keep: s.keep,
                dir: BACKUPS,
                pki: host_path::ETCD_PKI,
                script,
            };
            // The job and its script are read at each run: a change restarts nothing.
            b.template(script, SECRET, "etcd-snapshot.sh", &ctx, &[])?;
            b.template(
                "/etc/systemd/system/etcd-snapshot.service",
                PUBLIC,
                "etcd-snapshot.service",
                &ctx,
                &[],
            )?;
            b.unit(EtcdSnapshot, &ctx)?;
        }
    }

    if h.roles.control_plane {
        b.dir(&format!("{PKI}/etcd"), 0o755);
        b.dir("/var/log/kubernetes", 0o700);
        b.binaries(BIN_DIR, CONTROL_PLANE_PROGRAMS);
        // Every CA key is on every control-plane host, as kubeadm keeps them: root there can
        // already mint any identity with the cluster CA key, so the other two add no power, and
        // `state recover` can rebuild a lost state directory from any of these hosts.
        let cluster_ca = pki.ca(Ca::Cluster);
        b.file(
            &host_path::ca_cert(Ca::Cluster),
            PUBLIC,
            cluster_ca.cert.as_str(),
            &[KubeApiserver, KubeControllerManager, Kubelet],
        );
        // The controller-manager signs with it (the CSR signer).
        b.file(
            &host_path::ca_key(Ca::Cluster),
            SECRET,
            cluster_ca.key.as_str(),
            &[KubeControllerManager],
        );
        let front_proxy_ca = pki.ca(Ca::FrontProxy);
        b.file(
            &host_path::ca_cert(Ca::FrontProxy),
            PUBLIC,
            front_proxy_ca.cert.as_str(),
            &[KubeApiserver, KubeControllerManager],
        );
        b.file(
            &host_path::ca_key(Ca::FrontProxy),
            SECRET,
            front_proxy_ca.key.as_str(),
            &[],
        );
        if !h.roles.etcd {
            b.file(
                &host_path::ca_cert(Ca::Etcd),
                PUBLIC,
                etcd_ca,
                &[Etcd, KubeApiserver],
            );
        }
        b.file(
            &host_path::ca_key(Ca::Etcd),
            SECRET,
            pki.ca(Ca::Etcd).key.as_str(),
            &[],
        );
        for (stem, cert) in [
            ("apiserver", Cert::Apiserver),
            ("apiserver-kubelet-client", Cert::ApiserverKubeletClient),
            ("apiserver-etcd-client", Cert::ApiserverEtcdClient),
            ("front-proxy-client", Cert::FrontProxyClient),
        ] {
            b.pair(
                &format!("{PKI}/{stem}"),
                pki.leaf(cert, None),
                &[KubeApiserver],
            );
        }
        b.pair(
            &format!("{PKI}/kube-controller-manager"),
            pki.leaf(Cert::ControllerManagerServer, Some(&h.name)),
            &[KubeControllerManager],
        );
        b.pair(
            &format!("{PKI}/kube-scheduler"),
            pki.leaf(Cert::SchedulerServer, Some(&h.name)),
            &[KubeScheduler],
        );
        b.file(
            host_path::SA_KEY,
            SECRET,
            pki.sa_key.as_str(),
            &[KubeApiserver, KubeControllerManager],
        );
        b.file(
            host_path::SA_PUB,
            PUBLIC,
            pki.sa_pub.as_str(),
            &[KubeApiserver],
        );

        // Each controller-manager and scheduler talks to the API server on its own host, as
        // kubeadm does, so a control-plane host works even when the endpoint is down.
        let local = format!("https://{}:6443", h.internal_ip);
        for (file, user, cert, server, readers) in [
            (
                "admin.conf",
                "kubernetes-admin",
                Cert::Admin,
                c.api.url(),
                &[][..],
            ),
            (
                "controller-manager.conf",
                "system:kube-controller-manager",
                Cert::ControllerManager,
                local.clone(),
                &[KubeControllerManager],
            ),
            (
                "scheduler.conf",
                "system:kube-scheduler",
                Cert::Scheduler,
                local,
                &[KubeScheduler],
            ),
        ] {
            let text = kubeconfig(t, c, pki, user, pki.leaf(cert, None), &server)?;
            b.file(&format!("/etc/kubernetes/{file}"), SECRET, text, readers);
        }
        b.template(
            "/etc/kubernetes/kube-scheduler.yaml",
            PUBLIC,
            "kube-scheduler.yaml",
            &common,
            &[KubeScheduler],
        )?;
        b.template(
            host_path::ENCRYPTION_CONFIG,
            SECRET,
            "encryption-config.yaml",
            &EncryptionConfig {
                encryption_key: &pki.encryption_key,
            },
            &[KubeApiserver],
        )?;
        b.template(
            "/etc/kubernetes/audit-policy.yaml",
            PUBLIC,
            "audit-policy.yaml",
            &common,
            &[KubeApiserver],
        )?;
        let apiserver = ApiserverUnit {
            host: &common,
            etcd_servers: c.etcd_servers().join(","),
            service_account_issuer: format!(
                "https://kubernetes.default.svc.{}",
                c.network.cluster_domain
            ),
        };
        b.unit(KubeApiserver, &apiserver)?;
        let controller_manager = ControllerManagerUnit {
            host: &common,
            signing_duration_hours: u64::from(c.pki.cert_validity_days) * 24,
        };
        b.unit(KubeControllerManager, &controller_manager)?;
        b.unit(KubeScheduler, &common)?;
        if !addons.is_empty() {
            b.dir(addons::DIR, 0o755);
        }
        // Applied through the API by the addons phase; no unit reads them.
        for a in addons {
            b.file(&a.path(), PUBLIC, a.manifest.as_str(), &[]);
        }
    }

    if h.roles.worker {
        let pod_cidr = h
            .pod_cidr
            .expect("validation assigns every worker a pod range")
            .to_string();
        let node = HostCtx {
            pod_cidr,
            ..common.clone()
        };
        for (dir, mode) in [
            ("/var/lib/kubelet", 0o700),
            ("/var/lib/kubelet/pki", 0o700),
            ("/var/lib/kube-proxy", 0o755),
            ("/etc/containerd", 0o755),
            ("/etc/cni/net.d", 0o755),
            (CNI_BIN_DIR, 0o755),
        ] {
            b.dir(dir, mode);
        }
        b.binaries(BIN_DIR, WORKER_PROGRAMS);
        // CNI plugins and the files below them are read on demand, for each new pod.
        b.binaries(CNI_BIN_DIR, CNI_PLUGINS);
        b.template(MODULES_FILE, PUBLIC, "modules-load.conf", &common, &[])?;
        b.template(SYSCTL_FILE, PUBLIC, "sysctl.conf", &common, &[])?;
        if !h.roles.control_plane {
            b.file(
                &host_path::ca_cert(Ca::Cluster),
                PUBLIC,
                pki.ca(Ca::Cluster).cert.as_str(),
                &[KubeApiserver, KubeControllerManager, Kubelet],
            );
        }
        b.pair(
            "/var/lib/kubelet/pki/kubelet",
            pki.leaf(Cert::KubeletServer, Some(&h.name)),
            &[Kubelet],
        );
        if c.runs_api_load_balancer(h) {
            b.binaries(BIN_DIR, API_LB_PROGRAMS);
            let lb = context::ApiLoadBalancer {
                port: NODE_LOCAL_API_PORT,
                upstreams: c
                    .control_plane_hosts()
                    .map(|cp| format!("{}:6443", cp.internal_ip))
                    .collect(),
            };
            b.template(
                "/etc/kubernetes/kube-api-lb.json",
                PUBLIC,
                "kube-api-lb.json",
                &lb,
                &[KubeApiLb],
            )?;
            b.unit(KubeApiLb, &lb)?;
        }
        let api = c.node_api_url(h);
        let kubelet_user = format!("system:node:{}", h.name);
        let kubelet_conf = kubeconfig(
            t,
            c,
            pki,
            &kubelet_user,
            pki.leaf(Cert::KubeletClient, Some(&h.name)),
            &api,
        )?;
        b.file(KUBELET_KUBECONFIG, SECRET, kubelet_conf, &[Kubelet]);
        let proxy_conf = kubeconfig(
            t,
            c,
            pki,
            "system:kube-proxy",
            pki.leaf(Cert::KubeProxy, None),
            &api,
        )?;
        b.file(
            "/etc/kubernetes/kube-proxy.conf",
            SECRET,
            proxy_conf,
            &[KubeProxy],
        );

        let containerd = c.versions.containerd;
        b.template(
            "/etc/containerd/config.toml",
            PUBLIC,
            "containerd-config.toml",
            &ContainerdConfig {
                containerd_version: containerd.to_string(),
                config_version: version::containerd_config_version(containerd),
                cni_bin_dirs: containerd.minor >= 1,
                pause_image: &c.versions.pause_image,
                hosts_are_containers: c.hosts_are_containers,
                registry_hosts_dir: REGISTRY_HOSTS_DIR,
            },
            &[Containerd],
        )?;
        registry_hosts(&mut b, &c.registries)?;
        b.template(CNI_BRIDGE_CONF, PUBLIC, "cni-bridge.conflist", &node, &[])?;
        b.template(
            "/etc/cni/net.d/99-loopback.conf",
            PUBLIC,
            "cni-loopback.conf",
            &node,
            &[],
        )?;
        b.template(
            "/var/lib/kubelet/config.yaml",
            PUBLIC,
            "kubelet-config.yaml",
            &KubeletConfig {
                tls_cipher_suites: TLS_CIPHER_SUITES,
                cluster_domain: &c.network.cluster_domain,
                cluster_dns: c.network.cluster_dns.to_string(),
                minor: c.kubernetes.minor(),
                allow_cgroup_v1: c.kubelet.allow_cgroup_v1,
                allow_swap: c.kubelet.allow_swap,
                eviction_hard: &c.kubelet.eviction_hard,
                hosts_are_containers: c.hosts_are_containers,
            },
            &[Kubelet],
        )?;
        b.template(
            "/var/lib/kube-proxy/config.yaml",
            PUBLIC,
            "kube-proxy-config.yaml",
            &KubeProxyConfig {
                host: &common,
                proxy_mode: c.network.proxy_mode.as_str(),
                hosts_are_containers: c.hosts_are_containers,
            },
            &[KubeProxy],
        )?;
        b.unit(Containerd, &common)?;
        b.unit(Kubelet, &common)?;
        b.unit(KubeProxy, &common)?;
        b.root_only(&Kubelet.unit_file());
        b.root_only("/var/lib/kubelet/config.yaml");
    }

    let routes: Vec<Route> = c
        .worker_hosts()
        .filter(|w| w.name != h.name)
        .map(|w| Route {
            cidr: w
                .pod_cidr
                .expect("validation assigns every worker a pod range")
                .to_string(),
            via: w.internal_ip.to_string(),
        })
        .collect();
    if !routes.is_empty() {
        let ctx = context::PodRoutes {
            routes,
            pod_cidr: c.network.pod_cidr.to_string(),
        };
        b.template(
            "/etc/kubernetes/pod-routes.sh",
            PUBLIC,
            "pod-routes.sh",
            &ctx,
            &[PodRoutes],
        )?;
        b.unit(PodRoutes, &ctx)?;
    }

    let mut out = b.out;
    out.retired = RETIRED
        .iter()
        .filter(|(_, by)| out.files.iter().any(|f| f.path == *by))
        .map(|(old, _)| old.to_string())
        .collect();
    out.dirs.sort();
    out.dirs.dedup();
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn kubeconfig(
    t: &Templates,
    c: &Cluster,
    pki: &Pki,
    user: &str,
    pem: &Pem,
    server: &str,
) -> Result<String> {
    t.render(
        "kubeconfig.yaml",
        &Kubeconfig {
            cluster_name: &c.name,
            server,
            user,
            ca_data: B64.encode(&pki.ca(Ca::Cluster).cert),
            cert_data: B64.encode(&pem.cert),
            key_data: B64.encode(&pem.key),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        rendered_with(|_| {})
    }

    fn rendered_with(change: impl FnOnce(&mut Cluster)) -> Rendered {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = crate::inventory::bundled_for_test(dir.path());
        change(&mut cluster);
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        render(&cluster, &pki).unwrap()
    }

    #[test]
    fn a_snapshot_schedule_gives_each_etcd_host_its_timer_job_and_script() {
        let r = rendered_with(|c| {
            c.etcd_snapshots = Some(crate::inventory::SnapshotSchedule {
                calendar: "*-*-* 02:30:00".into(),
                keep: 3,
            })
        });
        let c = crate::inventory::bundled_for_test(tempfile::tempdir().unwrap().path());
        for h in &r.hosts {
            let etcd = c.host(&h.host).unwrap().roles.etcd;
            assert_eq!(h.units.contains(&Unit::EtcdSnapshot), etcd, "{}", h.host);
            let file = |p: &str| h.files.iter().find(|f| f.path == p);
            let timer = file("/etc/systemd/system/etcd-snapshot.timer");
            assert_eq!(timer.is_some(), etcd, "{}", h.host);
            if !etcd {
                continue;
            }
            let text = |p: &str| String::from_utf8(file(p).unwrap().content.clone()).unwrap();
            assert!(text("/etc/systemd/system/etcd-snapshot.timer")
                .contains("\nOnCalendar=*-*-* 02:30:00\n"));
            assert!(text("/etc/systemd/system/etcd-snapshot.service")
                .contains("ExecStart=/bin/sh /etc/kubernetes/etcd-snapshot.sh\n"));
            let script = text("/etc/kubernetes/etcd-snapshot.sh");
            let ip = c.host(&h.host).unwrap().internal_ip;
            assert!(
                script.contains(&format!("--endpoints=https://{ip}:2379")),
                "{script}"
            );
            assert!(script.contains("tail -n +4 "), "keeps 3: {script}");
            // A new schedule takes effect at the next start: it restarts nothing.
            assert!(file("/etc/kubernetes/etcd-snapshot.sh")
                .unwrap()
                .readers
                .is_empty());
        }
        assert!(!rendered()
            .hosts
            .iter()
            .any(|h| h.units.contains(&Unit::EtcdSnapshot)));
    }

    #[test]
    fn every_supported_kubernetes_minor_renders_the_same_files() {
        // A gate failing on a new Kubernetes version switches the program back and keeps the
        // files: that is whole only while every supported minor renders the same ones.
        use crate::inventory::version::{KubeVersion, MAX_MINOR, MIN_MINOR};
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = crate::inventory::bundled_for_test(dir.path());
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let files = |c: &Cluster| -> Vec<(String, Vec<u8>)> {
            let r = render(c, &pki).unwrap();
            r.hosts
                .into_iter()
                .flat_map(|h| h.files.into_iter().map(|f| (f.path, f.content)))
                .collect()
        };
        let base = files(&cluster);
        for minor in MIN_MINOR..=MAX_MINOR {
            cluster.kubernetes = KubeVersion::parse(&format!("1.{minor}.0")).unwrap();
            assert!(
                files(&cluster) == base,
                "1.{minor} renders other files: switching a failed upgrade back must restore \
                 files too"
            );
        }
    }

    #[test]
    fn every_file_a_unit_reads_restarts_that_unit() {
        // Any absolute path on a unit's command line, and any path a config it reads names,
        // must list the unit among the file's restarts; otherwise a change would go unnoticed.
        for h in rendered().hosts {
            let by_path: std::collections::HashMap<&str, &File> =
                h.files.iter().map(|f| (f.path.as_str(), f)).collect();
            for f in h
                .files
                .iter()
                .filter(|f| f.path.starts_with("/etc/systemd/system/"))
            {
                let unit = Unit::from_name(
                    f.path
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .trim_end_matches(".service"),
                )
                .unwrap();
                let text = String::from_utf8_lossy(&f.content).replace("\\\n", " ");
                let mut referenced: Vec<String> = text
                    .split(|c: char| c.is_whitespace() || c == '=' || c == ',')
                    .filter(|w| w.starts_with('/') && by_path.contains_key(w))
                    .filter(|w| *w != ETCD_BOOTSTRAP_ENV)
                    .map(String::from)
                    .collect();
                // Config files name further files (kubeconfigs, certificates).
                for r in referenced.clone() {
                    let inner = String::from_utf8_lossy(&by_path[r.as_str()].content).into_owned();
                    referenced.extend(
                        inner
                            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                            .filter(|w| w.starts_with('/') && by_path.contains_key(w))
                            .map(String::from),
                    );
                }
                for r in referenced {
                    assert!(
                        by_path[r.as_str()].readers.contains(&unit),
                        "{}: {r} is read by {unit} but does not restart it",
                        h.host
                    );
                }
                assert_eq!(f.readers, [unit], "{}", f.path);
            }
        }
    }

    #[test]
    fn secrets_are_marked_and_private() {
        for h in rendered().hosts {
            for f in &h.files {
                let text = String::from_utf8_lossy(&f.content);
                if text.contains("PRIVATE KEY")
                    || text.contains("client-key-data")
                    || text.contains("secretbox")
                {
                    assert!(
                        f.secret && f.mode == 0o600,
                        "{}: {} holds a secret",
                        h.host,
                        f.path
                    );
                }
            }
        }
    }
}
