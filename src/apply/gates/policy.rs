//! The network policy phase's gate: each worker's kube-router is healthy and has hooked its
//! chains into the filter table, so its pods' traffic passes the policies from now on.
use std::time::Duration;

use anyhow::{bail, Result};

use super::super::health::retry_until;
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
                self.forward_hooked(h),
            )
            .await?;
        }
        Ok(())
    }

    async fn forward_hooked(&self, host: &str) -> Result<()> {
        let conn = &self.conns[host];
        retry_until(self.deadline, Duration::from_millis(500), || async {
            let rules = conn
                .run_checked(&crate::shell::iptables_rules("filter", "FORWARD"))
                .await?
                .stdout_text();
            if !rules
                .lines()
                .any(|l| l.ends_with(&format!("-j {FORWARD_CHAIN}")))
            {
                bail!("the FORWARD chain does not jump to {FORWARD_CHAIN} yet");
            }
            Ok(())
        })
        .await
    }
}
