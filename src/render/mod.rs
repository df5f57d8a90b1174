//! Renders, for every host, exactly the files its roles need. Pure: the same cluster and PKI
//! always give the same bytes, and nothing here touches a host or the disk.

pub mod addons;
mod context;
mod network;
mod roles;
mod templates;
mod write;

use anyhow::Result;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Serialize;

use crate::component::{Program, Unit};
use crate::inventory::{Cluster, Host};
use crate::layout::{KUBERNETES_DIR, PKI_DIR};
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
    /// present (see [`network::RETIRED`]).
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
    pub addons: Vec<addons::Rendered>,
}

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

    /// Bundle programs, in [`BIN_DIR`](crate::layout::BIN_DIR), each restarting the units the
    /// unit table says run it.
    fn programs(&mut self, list: &[Program]) {
        self.binaries(crate::layout::BIN_DIR, list.iter().map(|p| p.name()));
    }

    fn binaries(&mut self, dir: &str, names: impl IntoIterator<Item = &'static str>) {
        for n in names {
            self.out.binaries.push(Binary {
                name: n,
                path: format!("{dir}/{n}"),
                readers: Unit::ALL
                    .into_iter()
                    .filter(|u| u.props().binaries.iter().any(|p| p.name() == n))
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

fn host_files(
    t: &Templates,
    c: &Cluster,
    pki: &Pki,
    h: &Host,
    addons: &[addons::Rendered],
) -> Result<HostFiles> {
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
        internal_ipv6: h.internal_ipv6.map(|ip| ip.to_string()),
        pod_cidr: both(c.network.pod_cidr, c.network.ipv6.map(|v6| v6.pod_cidr)),
        service_cidr: both(
            c.network.service_cidr,
            c.network.ipv6.map(|v6| v6.service_cidr),
        ),
        tls_cipher_suites: TLS_CIPHER_SUITES.join(","),
    };
    b.dir(KUBERNETES_DIR, 0o755);
    b.dir(PKI_DIR, 0o755);
    if h.roles.etcd {
        roles::etcd_member(&mut b, c, pki, h, &common)?;
    }
    if h.roles.control_plane {
        roles::control_plane(&mut b, c, pki, h, &common, addons)?;
    }
    if h.roles.worker {
        roles::worker(&mut b, c, pki, h, &common)?;
    }
    network::every_host(&mut b, c, h)?;

    let mut out = b.out;
    out.retired = network::RETIRED
        .iter()
        .filter(|(_, by)| out.files.iter().any(|f| f.path == *by))
        .map(|(old, _)| old.to_string())
        .collect();
    out.dirs.sort();
    out.dirs.dedup();
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// An IPv4 range and, in a dual-stack cluster, its IPv6 sibling, as flags take them: "v4,v6".
fn both(v4: impl std::fmt::Display, v6: Option<impl std::fmt::Display>) -> String {
    match v6 {
        Some(v6) => format!("{v4},{v6}"),
        None => v4.to_string(),
    }
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
    use crate::layout::ETCD_BOOTSTRAP_ENV;

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
    fn kube_router_enforces_policy_on_every_worker_unless_the_inventory_says_none() {
        let c = crate::inventory::bundled_for_test(tempfile::tempdir().unwrap().path());
        let has = |r: &Rendered, host: &str| {
            let h = r.hosts.iter().find(|h| h.host == host).unwrap();
            let conf = h
                .files
                .iter()
                .any(|f| f.path == crate::layout::KUBE_ROUTER_KUBECONFIG && f.secret);
            let bin = h.binaries.iter().any(|b| b.name == "kube-router");
            (h.units.contains(&Unit::KubeRouter), conf, bin)
        };
        let on = rendered();
        for h in &c.hosts {
            let w = h.roles.worker;
            assert_eq!(has(&on, &h.name), (w, w, w), "{}", h.name);
        }
        let unit = on.hosts.iter().find(|h| h.host == "worker-1").unwrap();
        let unit = unit
            .files
            .iter()
            .find(|f| f.path == Unit::KubeRouter.unit_file())
            .unwrap();
        let text = String::from_utf8_lossy(&unit.content);
        for flag in [
            "--run-router=false",
            "--run-service-proxy=false",
            "--hostname-override=worker-1",
            "--service-cluster-ip-range=10.32.0.0/24",
        ] {
            assert!(text.contains(flag), "{flag} missing:\n{text}");
        }
        let off = rendered_with(|c| c.network.policy = crate::inventory::PolicyEngine::None);
        for h in &c.hosts {
            assert_eq!(has(&off, &h.name), (false, false, false), "{}", h.name);
        }
    }

    #[test]
    fn vxlan_mode_routes_every_pod_range_through_the_overlay_with_a_smaller_pod_mtu() {
        use crate::inventory::NetworkMode;
        let c = crate::inventory::bundled_for_test(tempfile::tempdir().unwrap().path());
        let text = |r: &Rendered, host: &str, path: &str| {
            let h = r.hosts.iter().find(|h| h.host == host).unwrap();
            let f = h.files.iter().find(|f| f.path == path).unwrap();
            String::from_utf8(f.content.clone()).unwrap()
        };
        let script = crate::layout::POD_ROUTES_SCRIPT;
        let conflist = "/etc/cni/net.d/10-bridge.conflist";
        let routes = rendered();
        assert!(text(&routes, "worker-1", conflist).contains("\"mtu\": 1500,"));
        assert!(!text(&routes, "cp-1", script).contains("peers="));

        let vxlan = rendered_with(|c| c.network.mode = NetworkMode::Vxlan);
        assert!(text(&vxlan, "worker-1", conflist).contains("\"mtu\": 1450,"));
        for h in &c.hosts {
            let s = text(&vxlan, &h.name, script);
            assert!(s.contains("ip link set \"$vx\" mtu 1450 up"), "{}", h.name);
            for other in c.hosts.iter().filter(|o| o.name != h.name) {
                let [a, b, x, d] = other.internal_ip.octets();
                let peer = format!(
                    "0e:76:{a:02x}:{b:02x}:{x:02x}:{d:02x} {}",
                    other.internal_ip
                );
                assert!(s.contains(&peer), "{}: no peer {}", h.name, other.name);
                if let Some(range) = other.pod_cidr {
                    let route = format!("{range} {}\n", range.network());
                    assert!(s.contains(&route), "{}: no route to {range}", h.name);
                }
            }
            // A worker's pods answer hosts without pods through the overlay; those hosts have
            // no pods to answer for.
            let replies = match h.pod_cidr {
                Some(range) => format!("' '{range}' '{}\n", c.hosts[0].internal_ip),
                None => "' '' ''\n".to_string(),
            };
            assert!(s.contains(&replies), "{}: {replies:?} in\n{s}", h.name);
        }
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
