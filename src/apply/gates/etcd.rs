//! The etcd phase's gates: each member healthy, and every member healthy before one restarts.
use anyhow::{bail, Context, Result};

use super::super::health::{self, retry_until, Request, Tls, HALF_SECOND};
use super::super::remote::Remote;
use super::Gates;
use crate::component::Unit;
use crate::pki::{Ca, Cert};

impl<R: Remote> Gates<'_, R> {
    /// Each member answers healthy over mTLS.
    pub(super) async fn etcd(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            self.wait_for(
                h,
                Some(Unit::Etcd),
                "etcd member healthy (mTLS /health)",
                self.etcd_health(h),
            )
            .await?;
        }
        Ok(())
    }

    /// Every etcd member answers healthy right now (no waiting).
    pub(super) async fn etcd_all_healthy(&self) -> Result<()> {
        for h in self.inp.cluster.etcd_hosts() {
            self.etcd_health_once(&h.name)
                .await
                .with_context(|| format!("etcd member {}", h.name))?;
        }
        Ok(())
    }

    /// The gate before an etcd member goes down for a restart: every member is healthy, so the
    /// others keep a quorum while it is away.
    pub(super) async fn gate_etcd_quorum(&self, host: &str) -> Result<()> {
        let check = retry_until(self.deadline, HALF_SECOND, || self.etcd_all_healthy());
        self.wait_for(
            host,
            Some(Unit::Etcd),
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
            client: Some(self.inp.pki.leaf(Cert::EtcdHealthcheckClient, None).clone()),
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
}
