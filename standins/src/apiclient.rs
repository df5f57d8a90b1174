//! The API server client of controller-manager, scheduler, kubelet and kube-proxy: the
//! kubeconfig's server, CA and client certificate, nothing else.

use anyhow::{bail, Result};
use serde_json::Value;

use crate::kubeconfig::Kubeconfig;
use crate::net::{ClientResponse, HttpsClient};
use crate::say;

#[derive(Clone)]
pub struct ApiClient {
    http: HttpsClient,
    /// Who we are to the API server (client certificate CN).
    pub user: String,
    pub server: String,
}

impl ApiClient {
    pub fn from_kubeconfig(kc: Kubeconfig) -> Result<ApiClient> {
        let what = format!("{} certificate-authority", kc.path);
        let tls = crate::tls::client_config(&what, &kc.ca, Some((kc.client_chain, kc.client_key)))?;
        Ok(ApiClient {
            http: HttpsClient::new(tls, &kc.host, kc.port, &kc.server_name)?,
            user: kc.identity.user,
            server: kc.server,
        })
    }

    /// Loads `path` (named by `what`) and builds a client, logging whom it talks to as whom.
    pub fn load(what: &str, path: &str) -> Result<ApiClient> {
        let kc = Kubeconfig::load(what, path)?;
        say!("{what} {path}: API server {} as {}", kc.server, kc.identity);
        ApiClient::from_kubeconfig(kc)
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ClientResponse> {
        match body {
            Some(b) => self.http.send_json(method, path, b).await,
            None => self.http.get(path).await,
        }
    }

    /// PATCH with a given patch content type.
    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> Result<ClientResponse> {
        self.http
            .request("PATCH", path, Some(content_type), serde_json::to_vec(body)?)
            .await
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> Result<Value> {
        let r = self.http.get(path).await?;
        ok_json(path, &r)
    }
}

/// The body of a 2xx answer, else an error quoting the API server's Status message.
pub fn ok_json(path: &str, r: &ClientResponse) -> Result<Value> {
    if !(200..300).contains(&r.status) {
        bail!("{path}: HTTP {} {}", r.status, status_message(r));
    }
    r.json()
}

/// The `message` of a Status body, or the raw text.
pub fn status_message(r: &ClientResponse) -> String {
    r.json()
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| r.text().chars().take(300).collect())
}
