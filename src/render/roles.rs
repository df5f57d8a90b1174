//! What each role puts on a host: an etcd member, a control-plane host, a worker (its pod
//! network's part in `network`).

use anyhow::Result;

use super::context::*;
use super::{addons, kubeconfig, HostBuilder, PUBLIC, SECRET, TLS_CIPHER_SUITES};
use crate::component::{
    Unit, API_LB_PROGRAMS, CONTROL_PLANE_PROGRAMS, ETCD_PROGRAMS, WORKER_PROGRAMS,
};
use crate::inventory::version;
use crate::inventory::{Cluster, Host, Registry, NODE_LOCAL_API_PORT};
use crate::layout::*;
use crate::pki::identity::host_path;
use crate::pki::{Ca, Cert, Pki};

/// An etcd member: its certificates, user, unit and scheduled snapshots.
pub(super) fn etcd_member(
    b: &mut HostBuilder<'_>,
    c: &Cluster,
    pki: &Pki,
    h: &Host,
    common: &HostCtx<'_>,
) -> Result<()> {
    use Unit::*;
    let etcd_ca = pki.ca(Ca::Etcd).cert.as_str();
    b.dir(ETCD_PKI_DIR, 0o755);
    b.dir(ETCD_DATA_DIR, 0o700);
    b.programs(ETCD_PROGRAMS);
    b.file(
        &host_path::ca_cert(Ca::Etcd),
        PUBLIC,
        etcd_ca,
        &[Etcd, KubeApiserver],
    );
    b.pair(
        &format!("{ETCD_PKI_DIR}/server"),
        pki.leaf(Cert::EtcdServer, Some(&h.name)),
        &[Etcd],
    );
    b.pair(
        &format!("{ETCD_PKI_DIR}/peer"),
        pki.leaf(Cert::EtcdPeer, Some(&h.name)),
        &[Etcd],
    );
    // Lets an operator on the host run etcdctl, and the health gates check the member.
    b.pair(
        &format!("{ETCD_PKI_DIR}/healthcheck-client"),
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
        common,
        &[],
    )?;
    let etcd = c.versions.etcd;
    let ctx = EtcdUnit {
        host: common,
        tls_min_version: (etcd.major, etcd.minor, etcd.patch) >= (3, 5, 8),
        // 3.6 renamed the experimental flags and made 10000 the default snapshot count
        // (3.5's 100000 keeps too many entries in memory). Progress notifications let the
        // API server's watch cache serve consistent reads: without them a read waits for a
        // revision the cache never sees, and each API server stop takes a minute.
        etcd_3_5: etcd.minor < 6,
    };
    b.unit(Etcd, &ctx)?;
    if let Some(s) = &c.etcd_snapshots {
        let script = ETCD_SNAPSHOT_SCRIPT;
        let ctx = EtcdSnapshotJob {
            host: common,
            calendar: &s.calendar,
            keep: s.keep,
            dir: BACKUPS,
            pki: ETCD_PKI_DIR,
            script,
        };
        // The job and its script are read at each run: a change restarts nothing.
        b.template(script, SECRET, "etcd-snapshot.sh", &ctx, &[])?;
        b.template(
            &format!("{UNIT_DIR}/etcd-snapshot.service"),
            PUBLIC,
            "etcd-snapshot.service",
            &ctx,
            &[],
        )?;
        b.unit(EtcdSnapshot, &ctx)?;
    }
    Ok(())
}

/// A control-plane host: the API server, controller-manager and scheduler with their
/// certificates, kubeconfigs and configs, every CA key, and the addons' manifests.
pub(super) fn control_plane(
    b: &mut HostBuilder<'_>,
    c: &Cluster,
    pki: &Pki,
    h: &Host,
    common: &HostCtx<'_>,
    addons: &[addons::Rendered],
) -> Result<()> {
    use Unit::*;
    let t = b.t;
    let etcd_ca = pki.ca(Ca::Etcd).cert.as_str();
    b.dir(ETCD_PKI_DIR, 0o755);
    b.dir(AUDIT_LOG_DIR, 0o700);
    b.programs(CONTROL_PLANE_PROGRAMS);
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
            &format!("{PKI_DIR}/{stem}"),
            pki.leaf(cert, None),
            &[KubeApiserver],
        );
    }
    b.pair(
        &format!("{PKI_DIR}/kube-controller-manager"),
        pki.leaf(Cert::ControllerManagerServer, Some(&h.name)),
        &[KubeControllerManager],
    );
    b.pair(
        &format!("{PKI_DIR}/kube-scheduler"),
        pki.leaf(Cert::SchedulerServer, Some(&h.name)),
        &[KubeScheduler],
    );
    b.file(
        SA_KEY,
        SECRET,
        pki.sa_key.as_str(),
        &[KubeApiserver, KubeControllerManager],
    );
    b.file(SA_PUB, PUBLIC, pki.sa_pub.as_str(), &[KubeApiserver]);

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
        b.file(&format!("{KUBERNETES_DIR}/{file}"), SECRET, text, readers);
    }
    b.template(
        SCHEDULER_CONFIG,
        PUBLIC,
        "kube-scheduler.yaml",
        common,
        &[KubeScheduler],
    )?;
    b.template(
        ENCRYPTION_CONFIG,
        SECRET,
        "encryption-config.yaml",
        &EncryptionConfig {
            encryption_key: &pki.encryption_key,
        },
        &[KubeApiserver],
    )?;
    b.template(
        AUDIT_POLICY,
        PUBLIC,
        "audit-policy.yaml",
        common,
        &[KubeApiserver],
    )?;
    let apiserver = ApiserverUnit {
        host: common,
        etcd_servers: c.etcd_servers().join(","),
        service_account_issuer: format!(
            "https://kubernetes.default.svc.{}",
            c.network.cluster_domain
        ),
    };
    b.unit(KubeApiserver, &apiserver)?;
    let controller_manager = ControllerManagerUnit {
        host: common,
        signing_duration_hours: u64::from(c.pki.cert_validity_days) * 24,
    };
    b.unit(KubeControllerManager, &controller_manager)?;
    b.unit(KubeScheduler, common)?;
    if !addons.is_empty() {
        b.dir(ADDONS_DIR, 0o755);
    }
    // Applied through the API by the addons phase; no unit reads them.
    for a in addons {
        b.file(&a.path(), PUBLIC, a.manifest.as_str(), &[]);
    }
    Ok(())
}

/// A worker: containerd, the kubelet and kube-proxy with their configs and kubeconfigs, the
/// CNI configuration, and the node-local API load balancer when the inventory asks for it.
pub(super) fn worker(
    b: &mut HostBuilder<'_>,
    c: &Cluster,
    pki: &Pki,
    h: &Host,
    common: &HostCtx<'_>,
) -> Result<()> {
    use Unit::*;
    let t = b.t;
    for (dir, mode) in [
        (KUBELET_DIR, 0o700),
        (KUBELET_PKI, 0o700),
        (KUBE_PROXY_DIR, 0o755),
        (CONTAINERD_DIR, 0o755),
        (CNI_CONF_DIR, 0o755),
        (CNI_BIN_DIR, 0o755),
    ] {
        b.dir(dir, mode);
    }
    b.programs(WORKER_PROGRAMS);
    b.template(MODULES_FILE, PUBLIC, "modules-load.conf", common, &[])?;
    b.template(SYSCTL_FILE, PUBLIC, "sysctl.conf", common, &[])?;
    if !h.roles.control_plane {
        b.file(
            &host_path::ca_cert(Ca::Cluster),
            PUBLIC,
            pki.ca(Ca::Cluster).cert.as_str(),
            &[KubeApiserver, KubeControllerManager, Kubelet],
        );
    }
    b.pair(
        &format!("{KUBELET_PKI}/kubelet"),
        pki.leaf(Cert::KubeletServer, Some(&h.name)),
        &[Kubelet],
    );
    if c.runs_api_load_balancer(h) {
        b.programs(API_LB_PROGRAMS);
        let lb = ApiLoadBalancer {
            port: NODE_LOCAL_API_PORT,
            upstreams: c
                .control_plane_hosts()
                .map(|cp| format!("{}:6443", cp.internal_ip))
                .collect(),
        };
        b.template(API_LB_CONFIG, PUBLIC, "kube-api-lb.json", &lb, &[KubeApiLb])?;
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
    b.file(KUBE_PROXY_KUBECONFIG, SECRET, proxy_conf, &[KubeProxy]);

    let containerd = c.versions.containerd;
    b.template(
        CONTAINERD_CONFIG,
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
    registry_hosts(b, &c.registries)?;
    super::network::worker(b, c, h)?;
    b.template(
        KUBELET_CONFIG,
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
        KUBE_PROXY_CONFIG,
        PUBLIC,
        "kube-proxy-config.yaml",
        &KubeProxyConfig {
            host: common,
            proxy_mode: c.network.proxy_mode.as_str(),
            hosts_are_containers: c.hosts_are_containers,
        },
        &[KubeProxy],
    )?;
    b.unit(Containerd, common)?;
    b.unit(Kubelet, common)?;
    b.unit(KubeProxy, common)?;
    super::network::policy(b, c, pki, common, &api)?;
    b.root_only(&Kubelet.unit_file());
    b.root_only(KUBELET_CONFIG);
    Ok(())
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
