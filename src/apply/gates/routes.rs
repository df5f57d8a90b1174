//! The pod network routes phase's gate: routes to every other worker's pod range, through the
//! overlay in vxlan mode.
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::super::health::retry_until;
use super::super::remote::Remote;
use super::Gates;
use crate::component::Unit;
use crate::component::VXLAN_PORT;
use crate::inventory::NetworkMode;
use crate::layout::{POD_EGRESS_CHAIN, POD_OVERLAY_CHAIN, POD_OVERLAY_DEVICE};

impl<R: Remote> Gates<'_, R> {
    /// Each host routes to every other worker's pod range; a worker masquerades its pods'
    /// traffic that leaves the pod network; in vxlan mode, the overlay's UDP is firewalled.
    pub(super) async fn pod_routes(&self, hosts: &[&str]) -> Result<()> {
        let network = &self.inp.cluster.network;
        for h in hosts {
            self.wait_for(
                h,
                Some(Unit::PodRoutes),
                "routes to the other nodes' pod ranges",
                self.routes(h),
            )
            .await?;
            if self.host(h).roles.worker {
                let jump = format!(
                    "-A POSTROUTING -s {} -j {POD_EGRESS_CHAIN}",
                    network.pod_cidr
                );
                self.wait_for(
                    h,
                    Some(Unit::PodRoutes),
                    "pods' traffic out of the pod network masqueraded",
                    self.rule_present(h, "nat", "POSTROUTING", &jump),
                )
                .await?;
            }
            if network.mode == NetworkMode::Vxlan {
                let jump = format!("-p udp -m udp --dport {VXLAN_PORT} -j {POD_OVERLAY_CHAIN}");
                self.wait_for(
                    h,
                    Some(Unit::PodRoutes),
                    "the overlay's UDP admitted from the cluster's hosts only",
                    self.rule_present(h, "filter", "INPUT", &jump),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn routes(&self, host: &str) -> Result<()> {
        let conn = &self.conns[host];
        let c = self.inp.cluster;
        let device = match c.network.mode {
            NetworkMode::Routes => String::new(),
            NetworkMode::Vxlan => format!("dev {POD_OVERLAY_DEVICE} "),
        };
        // Each other worker's range and gateway, of both families in a dual-stack cluster.
        let mut routes = Vec::new();
        for w in c.worker_hosts().filter(|w| w.name != host) {
            let cidr = w.pod_cidr.context("workers have pod ranges")?;
            let gateway = c.pod_gateway(w).context("workers have pod ranges")?;
            routes.push((w, cidr.to_string(), gateway.to_string()));
            if let (Some(cidr), Some(gateway)) = (c.pod_cidr_v6(w), c.pod_gateway_v6(w)) {
                routes.push((w, cidr.to_string(), gateway.to_string()));
            }
        }
        retry_until(self.deadline, Duration::from_millis(300), || async {
            for (w, cidr, gateway) in &routes {
                let want = format!("via {gateway} {device}");
                let o = conn.run_checked(&crate::shell::route_show(cidr)).await?;
                if !o.stdout_text().contains(&want) {
                    bail!("no route to {cidr} {}({})", want.trim_end(), w.name);
                }
            }
            Ok(())
        })
        .await
    }
}
