//! Workers changing version, or leaving the cluster, are drained first: cordoned, their pods
//! evicted through the Eviction API (so PodDisruptionBudgets decide the pace), DaemonSet and
//! static pods left. A worker leaving has its Node deleted then.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::super::remote::Remote;
use super::Gates;
use crate::component::Phase;
use crate::pki::Cert;

impl<R: Remote> Gates<'_, R> {
    /// Cordons every Node of `hosts`, then evicts their pods until none is left, within the
    /// drain deadline.
    pub(super) async fn drain_nodes(&self, hosts: &[&str]) -> Result<()> {
        let api = self.api(self.inp.pki.leaf(Cert::Admin, None)).await?;
        for h in hosts {
            api.cordon(h, true).await?;
        }
        let what = "cordon and drain";
        for h in hosts {
            self.rep.start(Some(h), what);
        }
        let t = Instant::now();
        // Pod → why it is still there, for the error when time runs out.
        let mut left: BTreeMap<String, String>;
        loop {
            left = BTreeMap::new();
            for h in hosts {
                for pod in api.pods_to_evict(h).await? {
                    let ns = pod.metadata.namespace.clone().unwrap_or_default();
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    let why = if pod.metadata.deletion_timestamp.is_some() {
                        "stopping"
                    } else if api.evict(&ns, &name).await? {
                        "evicted, stopping"
                    } else {
                        "its PodDisruptionBudget allows no disruption yet"
                    };
                    left.insert(format!("{ns}/{name} on {h}"), why.to_string());
                }
            }
            if left.is_empty() {
                break;
            }
            if t.elapsed() >= self.drain_deadline {
                let list: Vec<String> = left.iter().map(|(p, why)| format!("{p}: {why}")).collect();
                bail!(
                    "{}: the drain did not finish within {} s (--drain-timeout); pods still \
                     there:\n  {}",
                    hosts.join(", "),
                    self.drain_deadline.as_secs(),
                    list.join("\n  ")
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        for h in hosts {
            self.rep.step(
                Phase::Workers.name(),
                Some(h),
                what,
                t.elapsed(),
                "ok",
                None,
            );
        }
        Ok(())
    }

    /// Deletes the Nodes of `hosts` (drained, leaving the cluster).
    pub async fn delete_nodes(&self, hosts: &[&str]) -> Result<()> {
        let api = self.api(self.inp.pki.leaf(Cert::Admin, None)).await?;
        for h in hosts {
            api.delete_node(h).await?;
            self.rep.step(
                "remove hosts",
                Some(h),
                "delete Node",
                Duration::ZERO,
                "ok",
                None,
            );
        }
        Ok(())
    }

    pub(super) async fn uncordon_nodes(&self, hosts: &[&str]) -> Result<()> {
        let api = self.api(self.inp.pki.leaf(Cert::Admin, None)).await?;
        for h in hosts {
            api.cordon(h, false).await?;
            self.rep.step(
                Phase::Workers.name(),
                Some(h),
                "uncordon",
                Duration::ZERO,
                "ok",
                None,
            );
        }
        Ok(())
    }
}
