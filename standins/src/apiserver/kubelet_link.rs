//! The API server → kubelet link (`/api/v1/nodes/{name}/proxy/...`): TLS to the node's address
//! from status.addresses in --kubelet-preferred-address-types order, port from
//! status.daemonEndpoints, presenting --kubelet-client-certificate and verifying the kubelet's
//! serving certificate against --kubelet-certificate-authority.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use serde_json::Value;

use super::status::ApiError;
use crate::net::{HttpsClient, Response};

pub struct KubeletLink {
    /// None when --kubelet-certificate-authority is not set: the real API server would then
    /// skip verifying the kubelet; the stand-in refuses to proxy instead.
    pub tls: Option<Arc<ClientConfig>>,
    pub address_types: Vec<String>,
}

impl KubeletLink {
    fn address(&self, node: &Value) -> Option<String> {
        let addrs = node.pointer("/status/addresses")?.as_array()?;
        self.address_types.iter().find_map(|t| {
            addrs
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) == Some(t.as_str()))
                .and_then(|a| a.get("address").and_then(Value::as_str))
                .map(str::to_string)
        })
    }

    pub async fn proxy(
        &self,
        node: &Value,
        method: &str,
        path: &str,
    ) -> Result<Response, ApiError> {
        let name = super::store::name_of(node).to_string();
        let Some(tls) = &self.tls else {
            return Err(ApiError::unavailable(
                "the stand-in API server proxies to kubelets only with --kubelet-certificate-authority set".into(),
            ));
        };
        let Some(host) = self.address(node) else {
            return Err(ApiError::unavailable(format!(
                "node {name:?} has no address of types {:?}",
                self.address_types
            )));
        };
        let port = node
            .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .unwrap_or(10250);
        let client = HttpsClient::new(tls.clone(), &host, port, &host)
            .map_err(|e| ApiError::internal(format!("{e:#}")))?
            .with_timeout(Duration::from_secs(10));
        match client.request(method, path, None, Vec::new()).await {
            Ok(r) => Ok(Response {
                status: r.status,
                content_type: if r.content_type.is_empty() {
                    "text/plain".into()
                } else {
                    r.content_type.clone()
                },
                body: r.body.to_vec(),
            }),
            Err(e) => {
                crate::say!(
                    "proxy to kubelet of node {name:?} at {}: {e:#}",
                    client.target()
                );
                Err(ApiError::unavailable(format!(
                    "error trying to reach service: {e:#}"
                )))
            }
        }
    }
}
