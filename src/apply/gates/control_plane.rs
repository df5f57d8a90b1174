//! The control-plane phases' gates: API servers ready, controller-manager and scheduler healthy.
use anyhow::Result;

use super::super::remote::Remote;
use super::{hosts_of, Gates};
use crate::component::Unit;
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
