//! The start order and the health gate after each step. A gate that does not pass by its
//! deadline stops the run, naming the host and the gate, with the unit's journal tail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::core::DynamicObject;
use serde_json::json;

use super::api::{Api, Target};
use super::dns;
use super::health::{self, retry_until, Request, Tls, HALF_SECOND};
use super::{Inputs, Reporter};
use crate::pki::{Ca, Pem};
use crate::plan::{ImageImport, UnitChange};
use crate::transport::Connection;

pub struct Phase {
    pub name: &'static str,
    pub units: &'static [&'static str],
    /// Runs whenever anything changed, even with no unit action of its own.
    pub always_after_change: bool,
}

const fn phase(name: &'static str, units: &'static [&'static str]) -> Phase {
    Phase {
        name,
        units,
        always_after_change: false,
    }
}

pub const PHASES: [Phase; 8] = [
    phase("etcd", &["etcd"]),
    phase("kube-apiserver", &["kube-apiserver"]),
    phase(
        "controllers",
        &["kube-controller-manager", "kube-scheduler"],
    ),
    Phase {
        name: "rbac",
        units: &[],
        always_after_change: true,
    },
    // All container runtimes (and their images) before any kubelet, so no pod waits for a pull.
    phase("containerd", &["containerd"]),
    phase("workers", &["kubelet", "kube-proxy"]),
    phase("pod network routes", &["pod-routes"]),
    // Once every node is Ready and routes carry pod traffic between them.
    Phase {
        name: "addons",
        units: &[],
        always_after_change: true,
    },
];

pub struct Gates<'a> {
    pub inp: &'a Inputs<'a>,
    /// How long each gate may take.
    pub deadline: Duration,
    pub conns: &'a BTreeMap<String, Connection>,
    pub rep: &'a Reporter,
}

impl Gates<'_> {
    pub async fn run(&self, phase: &Phase, actions: &[(&str, &UnitChange)]) -> Result<()> {
        let mut hosts: Vec<&str> = actions.iter().map(|(h, _)| *h).collect();
        hosts.dedup();
        let acted =
            |host: &str, unit: &str| actions.iter().any(|(h, u)| *h == host && u.unit == unit);
        match phase.name {
            "etcd" => {
                for h in &hosts {
                    self.gate(
                        h,
                        Some("etcd"),
                        "etcd member healthy (mTLS /health)",
                        self.etcd_health(h),
                    )
                    .await?;
                }
            }
            "kube-apiserver" => {
                for h in &hosts {
                    let ip = self.ip(h);
                    self.gate(
                        h,
                        Some("kube-apiserver"),
                        "API server /readyz",
                        self.https_ok(h, &ip, 6443, "/readyz", Some(self.admin())),
                    )
                    .await?;
                }
            }
            "controllers" => {
                for h in &hosts {
                    if acted(h, "kube-controller-manager") {
                        self.gate(
                            h,
                            Some("kube-controller-manager"),
                            "controller-manager /healthz",
                            self.https_ok(h, "127.0.0.1", 10257, "/healthz", None),
                        )
                        .await?;
                    }
                    if acted(h, "kube-scheduler") {
                        self.gate(
                            h,
                            Some("kube-scheduler"),
                            "scheduler /readyz",
                            self.https_ok(h, "127.0.0.1", 10259, "/readyz", None),
                        )
                        .await?;
                    }
                }
            }
            "rbac" => self.rbac().await?,
            "containerd" => {
                for h in &hosts {
                    let conn = &self.conns[*h];
                    let containerd = retry_until(self.deadline, HALF_SECOND, || async {
                        let o = conn.run(&crate::shell::containerd_version()).await?;
                        if !o.success() {
                            bail!(
                                "containerd's socket does not answer: {}",
                                o.stderr_text().trim()
                            );
                        }
                        Ok(())
                    });
                    self.gate(
                        h,
                        Some("containerd"),
                        "containerd socket answers",
                        containerd,
                    )
                    .await?;
                }
            }
            "workers" => {
                for h in &hosts {
                    self.gate(
                        h,
                        Some("kubelet"),
                        "kubelet /healthz",
                        self.http_ok(h, "127.0.0.1", 10248),
                    )
                    .await?;
                    self.gate(
                        h,
                        Some("kubelet"),
                        "Node Ready in the API",
                        self.node_ready(h),
                    )
                    .await?;
                    self.gate(
                        h,
                        Some("kube-proxy"),
                        "kube-proxy /healthz",
                        self.http_ok(h, "127.0.0.1", 10256),
                    )
                    .await?;
                }
            }
            "pod network routes" => {
                for h in &hosts {
                    self.gate(
                        h,
                        Some("pod-routes"),
                        "routes to the other nodes' pod ranges",
                        self.routes(h),
                    )
                    .await?;
                }
            }
            "addons" => self.addons().await?,
            other => unreachable!("no gate for phase {other}"),
        }
        Ok(())
    }

    fn ip(&self, host: &str) -> String {
        let h = self
            .inp
            .cluster
            .host(host)
            .expect("planned hosts are in the inventory");
        h.internal_ip.to_string()
    }

    fn admin(&self) -> Tls {
        Tls {
            ca: self.inp.pki.ca(Ca::Cluster).cert.clone(),
            client: Some(self.inp.pki.leaf("admin", None).clone()),
        }
    }

    fn super_admin(&self) -> Pem {
        self.inp.pki.leaf("super-admin", None).clone()
    }

    /// Runs one gate; on failure, the error names the host and the gate and carries the unit's
    /// journal (when a unit of that host is what the gate waits on).
    async fn gate(
        &self,
        host: &str,
        unit: Option<&str>,
        what: &str,
        check: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        self.rep.start(Some(host), what);
        tracing::debug!(
            host,
            gate = what,
            deadline_s = self.deadline.as_secs(),
            "waiting for a health gate"
        );
        let t = Instant::now();
        match tokio::time::timeout(self.deadline + Duration::from_secs(10), check).await {
            Ok(Ok(())) => {
                self.rep
                    .step("gate", Some(host), what, t.elapsed(), "ok", None);
                Ok(())
            }
            outcome => {
                let reason = match outcome {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => format!("no answer within {} s", self.deadline.as_secs()),
                };
                self.rep.step(
                    "gate",
                    Some(host),
                    what,
                    t.elapsed(),
                    "failed",
                    Some(&reason),
                );
                let Some(unit) = unit else {
                    return Err(anyhow!("{host}: gate \"{what}\" failed: {reason}"));
                };
                let journal = self.conns[host]
                    .run(&crate::shell::journal_tail(unit, 30))
                    .await
                    .map(|o| o.stdout_text())
                    .unwrap_or_else(|e| format!("(journal unavailable: {e})"));
                Err(anyhow!(
                    "{host}: gate \"{what}\" failed: {reason}\nlast lines of `journalctl -u {unit}` on {host}:\n{}",
                    indent(&journal)
                ))
            }
        }
    }

    /// Imports image archives into containerd's k8s.io namespace with containerd's own `ctr`,
    /// then checks that containerd lists each under the digest the bundle manifest names.
    pub async fn import_images(&self, imports: &[(&str, &ImageImport)]) -> Result<()> {
        for (host, i) in imports {
            let conn = &self.conns[*host];
            let img = &i.image;
            let check = async {
                conn.run_checked(&crate::shell::import_image(&img.archive))
                    .await
                    .context("ctr images import")?;
                conn.run_checked(&crate::shell::pin_image(&img.reference))
                    .await
                    .context("ctr images label")?;
                let out = conn
                    .run_checked(&crate::shell::list_image(&img.reference))
                    .await?;
                let listed = out.stdout_text().lines().skip(1).find_map(|l| {
                    let mut parts = l.split_whitespace();
                    let reference = parts.next()?;
                    let digest = parts.nth(1)?;
                    (reference == img.reference).then(|| digest.to_string())
                });
                match listed {
                    Some(d) if d == img.digest => Ok(()),
                    Some(d) => bail!(
                        "containerd lists {} with the digest {d}, but the bundle manifest says {}",
                        img.reference,
                        img.digest
                    ),
                    None => bail!(
                        "containerd does not list {} after the import",
                        img.reference
                    ),
                }
            };
            let what = format!("image {} imported ({})", img.reference, i.reason);
            self.gate(host, Some("containerd"), &what, check).await?;
        }
        Ok(())
    }

    /// Every etcd member answers healthy right now (no waiting).
    pub async fn etcd_quorum(&self) -> Result<()> {
        for h in self.inp.cluster.etcd_hosts() {
            self.etcd_health_once(&h.name)
                .await
                .with_context(|| format!("etcd member {}", h.name))?;
        }
        Ok(())
    }

    /// The gate before an etcd member goes down for a restart: every member is healthy, so the
    /// others keep a quorum while it is away.
    pub async fn gate_etcd_quorum(&self, host: &str) -> Result<()> {
        let check = retry_until(self.deadline, HALF_SECOND, || self.etcd_quorum());
        self.gate(
            host,
            Some("etcd"),
            "every etcd member healthy before this one restarts",
            check,
        )
        .await
    }

    async fn etcd_health(&self, host: &str) -> Result<()> {
        retry_until(self.deadline, HALF_SECOND, || self.etcd_health_once(host)).await
    }

    /// One `/health` request to the member over mTLS with the healthcheck client certificate.
    async fn etcd_health_once(&self, host: &str) -> Result<()> {
        let tls = Tls {
            ca: self.inp.pki.ca(Ca::Etcd).cert.clone(),
            client: Some(self.inp.pki.leaf("etcd-healthcheck-client", None).clone()),
        };
        let ip = self.ip(host);
        let r = Request {
            conn: &self.conns[host],
            target: &ip,
            port: 2379,
            tls: Some(&tls),
            server_name: host,
            path: "/health",
        };
        let resp = health::send(&r).await?;
        if resp.status == 200 && resp.body.contains("\"true\"") {
            Ok(())
        } else {
            bail!("HTTP {}: {}", resp.status, resp.body.trim())
        }
    }

    async fn https_ok(
        &self,
        host: &str,
        target: &str,
        port: u16,
        path: &str,
        tls_client: Option<Tls>,
    ) -> Result<()> {
        let tls = tls_client.unwrap_or_else(|| Tls {
            ca: self.inp.pki.ca(Ca::Cluster).cert.clone(),
            client: None,
        });
        let r = Request {
            conn: &self.conns[host],
            target,
            port,
            tls: Some(&tls),
            server_name: host,
            path,
        };
        health::wait_ok(&r, self.deadline).await
    }

    async fn http_ok(&self, host: &str, target: &str, port: u16) -> Result<()> {
        let r = Request {
            conn: &self.conns[host],
            target,
            port,
            tls: None,
            server_name: "localhost",
            path: "/healthz",
        };
        health::wait_ok(&r, self.deadline).await
    }

    /// A control-plane host to talk to the API through.
    fn api_host(&self) -> &str {
        &self
            .inp
            .cluster
            .control_plane_hosts()
            .next()
            .expect("validation requires a control plane")
            .name
    }

    /// A client of the API server on [`Self::api_host`], as `who`.
    async fn api(&self, who: &Pem) -> Result<Api> {
        let host = self.api_host();
        let address = self.ip(host);
        let ca = &self.inp.pki.ca(Ca::Cluster).cert;
        Api::connect(&Target {
            conn: &self.conns[host],
            address: &address,
            server_name: host,
            ca,
            client: who,
        })
        .await
        .with_context(|| format!("{host}: connecting to the API server"))
    }

    async fn node_ready(&self, node: &str) -> Result<()> {
        let api = self.api(self.inp.pki.leaf("admin", None)).await?;
        retry_until(self.deadline, Duration::from_secs(1), || async {
            api.node_ready(node).await?.map_err(|e| anyhow!(e))
        })
        .await
    }

    /// The bindings a hard-way cluster needs that Kubernetes does not create itself: the admin
    /// group to cluster-admin, and the API server's kubelet client to the kubelet API. Applied
    /// as super-admin, whose group needs no binding (the admin's only works after this).
    async fn rbac(&self) -> Result<()> {
        let host = self.api_host();
        self.rep.start(Some(host), "cluster role bindings");
        let t = Instant::now();
        let api = self.api(&self.super_admin()).await?;
        for doc in cluster_role_bindings() {
            api.apply(&doc).await?;
        }
        self.rep.step(
            "rbac",
            Some(host),
            "cluster role bindings",
            t.elapsed(),
            "ok",
            None,
        );
        Ok(())
    }

    /// Applies each addon's manifest, then gates on it working.
    async fn addons(&self) -> Result<()> {
        let host = self.api_host();
        for addon in &self.inp.rendered.addons {
            let what = format!("{} applied", addon.name);
            self.rep.start(Some(host), &what);
            let t = Instant::now();
            let docs: Vec<DynamicObject> = serde_saphyr::from_multiple(&addon.manifest)
                .with_context(|| format!("reading the {} manifest", addon.path()))?;
            let api = self.api(self.inp.pki.leaf("admin", None)).await?;
            for doc in &docs {
                api.apply(doc).await?;
            }
            self.rep
                .step("addons", Some(host), &what, t.elapsed(), "ok", None);
            match addon.name {
                "coredns" => self.gate_dns(&api).await?,
                other => unreachable!("no gate for addon {other}"),
            }
        }
        Ok(())
    }

    /// CoreDNS's Deployment is Available, and the cluster DNS Service answers a lookup of the
    /// `kubernetes` Service with its address, asked from a worker (through kube-proxy's rules).
    async fn gate_dns(&self, api: &Api) -> Result<()> {
        let host = self.api_host();
        let deployments: kube::Api<Deployment> =
            kube::Api::namespaced(api.client.clone(), "kube-system");
        let available = retry_until(self.deadline, Duration::from_secs(1), || async {
            let d = deployments.get("coredns").await?;
            if let Err(e) = rolled_out(&d) {
                let pods = api.pod_states("kube-system", "k8s-app=kube-dns").await?;
                bail!(
                    "Deployment kube-system/coredns: {e}; its pods: {}; \
                     `kubectl -n kube-system logs -l k8s-app=kube-dns` shows why",
                    pods.join(", ")
                );
            }
            Ok(())
        });
        self.gate(host, None, "CoreDNS Deployment Available", available)
            .await?;
        let worker = &self
            .inp
            .cluster
            .worker_hosts()
            .next()
            .context("validation requires a worker for cluster DNS")?
            .name;
        let net = &self.inp.cluster.network;
        let name = format!("kubernetes.default.svc.{}", net.cluster_domain);
        let what = format!("{name} resolves at {}", net.cluster_dns);
        let conn = &self.conns[worker];
        let lookup = retry_until(self.deadline, HALF_SECOND, || async {
            let fwd = conn.forward(&net.cluster_dns.to_string(), 53).await?;
            let mut stream = tokio::net::UnixStream::connect(fwd.socket()).await?;
            let ips =
                tokio::time::timeout(Duration::from_secs(5), dns::lookup_a(&mut stream, &name))
                    .await
                    .map_err(|_| anyhow!("no answer within 5 s"))?
                    .map_err(|e| match fwd.last_error() {
                        Some(f) => anyhow!("{e:#} ({f})"),
                        None => e,
                    })?;
            if ips.contains(&net.api_service_ip) {
                Ok(())
            } else {
                bail!("answered {ips:?}, not {}", net.api_service_ip)
            }
        });
        self.gate(worker, Some("kube-proxy"), &what, lookup).await
    }

    async fn routes(&self, host: &str) -> Result<()> {
        let conn = &self.conns[host];
        retry_until(self.deadline, Duration::from_millis(300), || async {
            for w in self.inp.cluster.worker_hosts().filter(|w| w.name != host) {
                let cidr = w.pod_cidr.context("workers have pod ranges")?;
                let o = conn
                    .run_checked(&crate::shell::route_show(&cidr.to_string()))
                    .await?;
                if !o.stdout_text().contains(&format!("via {}", w.internal_ip)) {
                    bail!("no route to {cidr} via {} ({})", w.internal_ip, w.name);
                }
            }
            Ok(())
        })
        .await
    }
}

/// The admin group to cluster-admin; the API server's kubelet client to the kubelet API.
fn cluster_role_bindings() -> Vec<DynamicObject> {
    let binding = |name: &str, role: &str, user_or_group: (&str, &str)| {
        serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "provisioner" } },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": user_or_group.0,
                "name": user_or_group.1,
            }],
        }))
        .expect("a well-formed object")
    };
    vec![
        binding(
            crate::pki::ADMIN_GROUP,
            "cluster-admin",
            ("Group", crate::pki::ADMIN_GROUP),
        ),
        binding(
            "provisioner:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            ("User", "kube-apiserver-kubelet-client"),
        ),
    ]
}

/// Whether a Deployment has rolled out its current template to every replica, as
/// `kubectl rollout status` decides it.
fn rolled_out(d: &Deployment) -> std::result::Result<(), String> {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let s = d.status.clone().unwrap_or_default();
    if s.observed_generation < d.metadata.generation {
        return Err("the controller has not seen the latest change yet".into());
    }
    let updated = s.updated_replicas.unwrap_or(0);
    let available = s.available_replicas.unwrap_or(0);
    if updated < want || s.replicas.unwrap_or(0) > updated || available < want {
        return Err(format!(
            "{updated} of {want} replicas updated, {available} available"
        ));
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
