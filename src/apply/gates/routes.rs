//! The pod network routes phase's gate: routes to every other worker's pod range, through the
//! overlay in vxlan mode.
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::super::health::retry_until;
use super::super::remote::Remote;
use super::Gates;
use crate::component::Unit;
use crate::inventory::NetworkMode;
use crate::layout::{POD_EGRESS_CHAIN, POD_OVERLAY_DEVICE};

impl<R: Remote> Gates<'_, R> {
    /// Each host routes to every other worker's pod range; a worker masquerades its pods'
    /// traffic that leaves the pod network.
    pub(super) async fn pod_routes(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            self.wait_for(
                h,
                Some(Unit::PodRoutes),
                "routes to the other nodes' pod ranges",
                self.routes(h),
            )
            .await?;
            if self.host(h).roles.worker {
                self.wait_for(
                    h,
                    Some(Unit::PodRoutes),
                    "pods' traffic out of the pod network masqueraded",
                    self.egress_masqueraded(h),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn egress_masqueraded(&self, host: &str) -> Result<()> {
        let conn = &self.conns[host];
        let jump = format!(
            "-A POSTROUTING -s {} -j {POD_EGRESS_CHAIN}",
            self.inp.cluster.network.pod_cidr
        );
        retry_until(self.deadline, Duration::from_millis(300), || async {
            let o = conn
                .run_checked(&crate::shell::iptables_rules("nat", "POSTROUTING"))
                .await?;
            if !o.stdout_text().lines().any(|l| l == jump) {
                bail!("no `{jump}` in the nat table");
            }
            Ok(())
        })
        .await
    }

    async fn routes(&self, host: &str) -> Result<()> {
        let conn = &self.conns[host];
        let c = self.inp.cluster;
        let device = match c.network.mode {
            NetworkMode::Routes => String::new(),
            NetworkMode::Vxlan => format!("dev {POD_OVERLAY_DEVICE} "),
        };
        retry_until(self.deadline, Duration::from_millis(300), || async {
            for w in c.worker_hosts().filter(|w| w.name != host) {
                let cidr = w.pod_cidr.context("workers have pod ranges")?;
                let gateway = c.pod_gateway(w).context("workers have pod ranges")?;
                let want = format!("via {gateway} {device}");
                let o = conn
                    .run_checked(&crate::shell::route_show(&cidr.to_string()))
                    .await?;
                if !o.stdout_text().contains(&want) {
                    bail!("no route to {cidr} {}({})", want.trim_end(), w.name);
                }
            }
            Ok(())
        })
        .await
    }
}
