//! One health gate per phase, each in its file. A gate that does not pass by its deadline
//! stops the run, naming the host and the gate, with the unit's journal tail.

mod addons;
mod containerd;
mod control_plane;
mod drain;
mod etcd;
mod policy;
mod rbac;
mod routes;
mod schedules;
mod workers;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};

use super::api::{Api, Target};
use super::execute::Health;
use super::health::{self, Request, Tls};
use super::remote::Remote;
use super::{Inputs, Reporter};
use crate::component::{Phase, Unit};
use crate::pki::{Ca, Cert, Pem};
use crate::plan::{ImageImport, UnitChange};

pub struct Gates<'a, R> {
    pub inp: &'a Inputs<'a>,
    /// How long each gate may take.
    pub deadline: Duration,
    /// How long a worker's pods may take to leave it.
    pub drain_deadline: Duration,
    pub conns: &'a BTreeMap<String, R>,
    pub rep: &'a Reporter,
}

impl<R: Remote> Health for Gates<'_, R> {
    async fn gate(&self, phase: Phase, actions: &[(&str, &UnitChange)]) -> Result<()> {
        let hosts = hosts_of(actions);
        match phase {
            Phase::Etcd => self.etcd(&hosts).await,
            Phase::ApiServer => self.api_servers(&hosts).await,
            Phase::Controllers => self.controllers(actions).await,
            Phase::Rbac => self.rbac().await,
            Phase::ApiLoadBalancer => self.api_load_balancers(&hosts).await,
            Phase::Containerd => self.containerd(&hosts).await,
            Phase::Workers => self.workers(&hosts).await,
            Phase::PodRoutes => self.pod_routes(&hosts).await,
            Phase::NetworkPolicy => self.policy_engines(&hosts).await,
            Phase::Addons => self.addons().await,
            Phase::Schedules => self.schedules(actions).await,
        }
    }

    async fn etcd_quorum(&self) -> Result<()> {
        self.etcd_all_healthy().await
    }

    async fn before_etcd_restart(&self, host: &str) -> Result<()> {
        self.gate_etcd_quorum(host).await
    }

    async fn before_etcd_start(&self, hosts: &[&str]) -> Result<()> {
        self.add_learners(hosts).await
    }

    async fn import_images(&self, imports: &[(&str, &ImageImport)]) -> Result<()> {
        self.images(imports).await
    }

    async fn drain(&self, hosts: &[&str]) -> Result<()> {
        self.drain_nodes(hosts).await
    }

    async fn uncordon(&self, hosts: &[&str]) -> Result<()> {
        self.uncordon_nodes(hosts).await
    }
}

/// The hosts of `actions`, each once, in order.
fn hosts_of<'a>(actions: &[(&'a str, &UnitChange)]) -> Vec<&'a str> {
    let mut hosts: Vec<&str> = actions.iter().map(|(h, _)| *h).collect();
    hosts.dedup();
    hosts
}

impl<R: Remote> Gates<'_, R> {
    fn host(&self, host: &str) -> &crate::inventory::Host {
        self.inp
            .cluster
            .host(host)
            .expect("planned hosts are in the inventory")
    }

    fn ip(&self, host: &str) -> String {
        self.host(host).internal_ip.to_string()
    }

    fn admin(&self) -> Tls {
        Tls {
            ca: self.inp.pki.ca(Ca::Cluster).cert.clone(),
            client: Some(self.inp.pki.leaf(Cert::Admin, None).clone()),
        }
    }

    fn super_admin(&self) -> Pem {
        self.inp.pki.leaf(Cert::SuperAdmin, None).clone()
    }

    /// Runs one gate; on failure, the error names the host and the gate and carries the unit's
    /// journal (when a unit of that host is what the gate waits on).
    async fn wait_for(
        &self,
        host: &str,
        unit: Option<Unit>,
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
                let journal = self.conns[host].journal_excerpt(unit).await;
                Err(anyhow!(
                    "{host}: gate \"{what}\" failed: {reason}\n{journal}"
                ))
            }
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

    /// Waits until `chain` of the IPv4 `table` on `host` has a rule that ends with `rule` (as
    /// `iptables -S` prints it).
    async fn rule_present(&self, host: &str, table: &str, chain: &str, rule: &str) -> Result<()> {
        let conn = &self.conns[host];
        let command = crate::shell::iptables_rules(table, chain);
        health::retry_until(self.deadline, Duration::from_millis(300), || async {
            let rules = conn.run_checked(&command).await?.stdout_text();
            let found = rules.lines().any(|l| l.ends_with(rule));
            if !found {
                anyhow::bail!("no `{rule}` in {chain} of the {table} table yet");
            }
            Ok(())
        })
        .await
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
}
