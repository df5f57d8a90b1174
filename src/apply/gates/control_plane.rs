//! The control-plane phases' gates: API servers ready, controller-manager and scheduler
//! healthy, and the workers' way to them through their node-local load balancers.
use anyhow::Result;

use super::super::health::{self, Request};
use super::super::remote::Remote;
use super::{hosts_of, Gates};
use crate::component::Unit;
use crate::inventory::NODE_LOCAL_API_PORT;
use crate::plan::UnitChange;

impl<R: Remote> Gates<'_, R> {
    /// Each API server answers `/readyz` to the admin.
    pub(super) async fn api_servers(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            let ip = self.ip(h);
            self.wait_for(
                h,
                Some(Unit::KubeApiserver),
                "API server /readyz",
                self.https_ok(h, &ip, 6443, "/readyz", Some(self.admin())),
            )
            .await?;
        }
        Ok(())
    }

    /// An API server answers `/readyz` to the admin through each host's node-local load
    /// balancer, with the certificate every API server shares (it names `kubernetes`).
    pub(super) async fn api_load_balancers(&self, hosts: &[&str]) -> Result<()> {
        let tls = self.admin();
        for h in hosts {
            let r = Request {
                conn: &self.conns[*h],
                target: "127.0.0.1",
                port: NODE_LOCAL_API_PORT,
                tls: Some(&tls),
                server_name: "kubernetes",
                path: "/readyz",
            };
            self.wait_for(
                h,
                Some(Unit::KubeApiLb),
                "API server /readyz through the node-local load balancer",
                health::wait_ok(&r, self.deadline),
            )
            .await?;
        }
        Ok(())
    }

    /// The controller-manager and the scheduler that were acted on answer on their secure
    /// ports, verified against the cluster CA.
    pub(super) async fn controllers(&self, actions: &[(&str, &UnitChange)]) -> Result<()> {
        let acted =
            |host: &str, unit: Unit| actions.iter().any(|(h, u)| *h == host && u.unit == unit);
        for h in hosts_of(actions) {
            if acted(h, Unit::KubeControllerManager) {
                self.wait_for(
                    h,
                    Some(Unit::KubeControllerManager),
                    "controller-manager /healthz",
                    self.https_ok(h, "127.0.0.1", 10257, "/healthz", None),
                )
                .await?;
            }
            if acted(h, Unit::KubeScheduler) {
                self.wait_for(
                    h,
                    Some(Unit::KubeScheduler),
                    "scheduler /readyz",
                    self.https_ok(h, "127.0.0.1", 10259, "/readyz", None),
                )
                .await?;
            }
        }
        Ok(())
    }
}
