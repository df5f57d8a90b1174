//! The addons phase: each addon's manifest applied, then gated on working, by the checks its
//! row of the addon table lists (CoreDNS: the Deployment Available and a lookup answered from a
//! worker).
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::core::DynamicObject;

use super::super::api::Api;
use super::super::dns;
use super::super::health::{retry_until, HALF_SECOND};
use super::super::remote::Remote;
use super::Gates;
use crate::component::{AddonCheck, Unit};
use crate::pki::Cert;

impl<R: Remote> Gates<'_, R> {
    /// Applies each addon's manifest, then gates on it working: the checks of its row in the
    /// addon table, in order.
    pub(super) async fn addons(&self) -> Result<()> {
        let host = self.api_host();
        for rendered in &self.inp.rendered.addons {
            let name = rendered.addon.name();
            let what = format!("{name} applied");
            self.rep.start(Some(host), &what);
            let t = Instant::now();
            let docs: Vec<DynamicObject> = serde_saphyr::from_multiple(&rendered.manifest)
                .with_context(|| format!("reading the {} manifest", rendered.path()))?;
            let api = self.api(self.inp.pki.leaf(Cert::Admin, None)).await?;
            for doc in &docs {
                api.apply(doc).await?;
            }
            self.rep
                .step("addons", Some(host), &what, t.elapsed(), "ok", None);
            for check in rendered.addon.props().checks {
                match *check {
                    AddonCheck::DeploymentAvailable { name, pods } => {
                        self.deployment_available(&api, name, pods).await?
                    }
                    AddonCheck::ClusterDnsAnswers => self.cluster_dns_answers().await?,
                }
            }
        }
        Ok(())
    }

    /// The Deployment kube-system/`name` has rolled out; while it has not, its pods (selected
    /// by `pods`) say why.
    async fn deployment_available(&self, api: &Api, name: &str, pods: &str) -> Result<()> {
        let host = self.api_host();
        let deployments: kube::Api<Deployment> =
            kube::Api::namespaced(api.client.clone(), "kube-system");
        let available = retry_until(self.deadline, Duration::from_secs(1), || async {
            let d = deployments.get(name).await?;
            if let Err(e) = rolled_out(&d) {
                let states = api.pod_states("kube-system", pods).await?;
                bail!(
                    "Deployment kube-system/{name}: {e}; its pods: {}; \
                     `kubectl -n kube-system logs -l {pods}` shows why",
                    states.join(", ")
                );
            }
            Ok(())
        });
        let what = format!("Deployment kube-system/{name} Available");
        self.wait_for(host, None, &what, available).await
    }

    /// The cluster DNS Service answers a lookup of the `kubernetes` Service with its address,
    /// asked from a worker (through kube-proxy's rules).
    async fn cluster_dns_answers(&self) -> Result<()> {
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
        self.wait_for(worker, Some(Unit::KubeProxy), &what, lookup)
            .await
    }
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
