//! The network policy phase's gate: each worker's kube-router is healthy and has hooked its
//! chains into the filter table, so its pods' traffic passes the policies from now on.
use anyhow::Result;

use super::super::remote::Remote;
use super::Gates;
use crate::component::{Unit, KUBE_ROUTER_HEALTH_PORT};

/// kube-router's chain for forwarded traffic; `FORWARD` jumps to it once its first sync is done.
const FORWARD_CHAIN: &str = "KUBE-ROUTER-FORWARD";

impl<R: Remote> Gates<'_, R> {
    pub(super) async fn policy_engines(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            self.wait_for(
                h,
                Some(Unit::KubeRouter),
                "kube-router /healthz",
                self.http_ok(h, "127.0.0.1", KUBE_ROUTER_HEALTH_PORT),
            )
            .await?;
            self.wait_for(
                h,
                Some(Unit::KubeRouter),
                "forwarded traffic passes kube-router's chains",
                self.rule_present(h, "filter", "FORWARD", &format!("-j {FORWARD_CHAIN}")),
            )
            .await?;
        }
        Ok(())
    }
}
