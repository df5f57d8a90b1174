//! The workers phase's gates: kubelet healthy, its Node Ready in the API, kube-proxy healthy.
use std::time::Duration;

use anyhow::{anyhow, Result};

use super::super::health::retry_until;
use super::super::remote::Remote;
use super::Gates;
use crate::component::{parse_release_path, Unit};
use crate::layout::BIN_DIR;
use crate::pki::Cert;
use crate::shell;

impl<R: Remote> Gates<'_, R> {
    /// The kubelet is healthy and its Node Ready; kube-proxy is healthy.
    pub(super) async fn workers(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            self.wait_for(
                h,
                Some(Unit::Kubelet),
                "kubelet /healthz",
                self.http_ok(h, "127.0.0.1", 10248),
            )
            .await?;
            self.wait_for(
                h,
                Some(Unit::Kubelet),
                "Node Ready in the API",
                self.node_ready(h),
            )
            .await?;
            // The version its link points at: the new one after an upgrade, the previous one
            // after a switch back.
            if let Some(version) = self.kubelet_version_installed(h).await? {
                self.wait_for(
                    h,
                    Some(Unit::Kubelet),
                    &format!("Node reports kubelet v{version}"),
                    self.node_version(h, &version),
                )
                .await?;
            }
            self.wait_for(
                h,
                Some(Unit::KubeProxy),
                "kube-proxy /healthz",
                self.http_ok(h, "127.0.0.1", 10256),
            )
            .await?;
        }
        Ok(())
    }

    /// The version of the kubelet the host's link points at (none in the unversioned layout).
    async fn kubelet_version_installed(&self, host: &str) -> Result<Option<String>> {
        let link = format!("{BIN_DIR}/{}", Unit::Kubelet.name());
        let out = self.conns[host]
            .run_checked(&shell::read_link(&link))
            .await?;
        let target = out.stdout_text();
        Ok(parse_release_path(target.trim()).map(|(_, v)| v.to_string()))
    }

    async fn node_version(&self, node: &str, version: &str) -> Result<()> {
        let api = self.api(self.inp.pki.leaf(Cert::Admin, None)).await?;
        let want = format!("v{version}");
        retry_until(self.deadline, Duration::from_secs(1), || async {
            match api.kubelet_version(node).await? {
                Some(v) if v == want => Ok(()),
                v => Err(anyhow!(
                    "Node {node} reports kubelet {}, not {want}",
                    v.as_deref().unwrap_or("(none)")
                )),
            }
        })
        .await
    }

    async fn node_ready(&self, node: &str) -> Result<()> {
        let api = self.api(self.inp.pki.leaf(Cert::Admin, None)).await?;
        retry_until(self.deadline, Duration::from_secs(1), || async {
            api.node_ready(node).await?.map_err(|e| anyhow!(e))
        })
        .await
    }
}
