//! Health checks over TLS (reqwest + rustls, ring provider), reaching every endpoint through the
//! host's SSH connection so that services bound to 127.0.0.1 and networks the operator's machine
//! cannot route to are checked the same way. Certificates are always verified against the
//! cluster's own CAs; the client presents a certificate where the endpoint requires one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::remote::Remote;
use crate::pki::Pem;

/// How a check authenticates: which CA to trust and, optionally, which client certificate to show.
#[derive(Clone)]
pub struct Tls {
    pub ca: String,
    pub client: Option<Pem>,
}

fn client_config(tls: &Tls) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(tls.ca.as_bytes()) {
        roots.add(cert.context("reading a CA certificate")?)?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match &tls.client {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .context("reading a client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes())
                .context("reading a client key")?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    })
}

/// One HTTP(S) GET of `target:port` as seen from `conn`'s host. `server_name` is the name the
/// serving certificate must carry.
pub struct Request<'a, R> {
    pub conn: &'a R,
    pub target: &'a str,
    pub port: u16,
    pub tls: Option<&'a Tls>,
    pub server_name: &'a str,
    pub path: &'a str,
}

pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `r`, and logs its answer or why there was none.
pub async fn send<R: Remote>(r: &Request<'_, R>) -> Result<Response> {
    let t = Instant::now();
    let result = request(r).await;
    // The URL as seen from the host, not the forwarded local port the client really used.
    let scheme = if r.tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}:{}{}", r.target, r.port, r.path);
    let host = r.conn.host_name();
    let ms = t.elapsed().as_millis() as u64;
    match &result {
        Ok(resp) => {
            tracing::debug!(host, %url, status = resp.status, ms, "health check")
        }
        Err(e) => tracing::debug!(host, %url, ms, "health check failed: {e:#}"),
    }
    result
}

async fn request<R: Remote>(r: &Request<'_, R>) -> Result<Response> {
    // reqwest needs a process-wide provider even for plain HTTP; ring is the one used everywhere.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fwd = r.conn.forward(r.target, r.port).await?;
    // Every connection goes through the forward's socket; the URL names the host the
    // certificate must carry.
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .unix_socket(fwd.socket());
    let url = match r.tls {
        Some(tls) => {
            builder = builder.use_preconfigured_tls(client_config(tls)?);
            format!("https://{}:{}{}", r.server_name, r.port, r.path)
        }
        None => format!("http://{}:{}{}", r.server_name, r.port, r.path),
    };
    let client = builder.build().context("building the HTTP client")?;
    let resp = client.get(&url).send().await.map_err(|e| {
        let detail = fwd
            .last_error()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        anyhow!(
            "{url} via {}: {}{detail}",
            r.conn.host_name(),
            error_chain(&e)
        )
    })?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    Ok(Response { status, body })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Polls a GET until it answers 200 or the deadline passes; the error carries the last answer.
pub async fn wait_ok<R: Remote>(r: &Request<'_, R>, deadline: Duration) -> Result<()> {
    retry_until(deadline, HALF_SECOND, || async {
        let resp = send(r).await?;
        if resp.status != 200 {
            bail!("HTTP {}: {}", resp.status, resp.body.trim());
        }
        Ok(())
    })
    .await
    .map_err(|e| {
        anyhow!(
            "no healthy answer within {} s; last: {e:#}",
            deadline.as_secs()
        )
    })
}

pub const HALF_SECOND: Duration = Duration::from_millis(500);

/// Calls `check` every `every` until it succeeds or `deadline` has passed; the error is the
/// last one `check` gave.
pub async fn retry_until<F, Fut>(deadline: Duration, every: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= deadline => return Err(e),
            Err(e) => tracing::debug!("not yet: {e:#}"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retry_until_returns_the_first_success_or_the_last_error() {
        let mut tries = 0;
        let r = retry_until(Duration::from_secs(5), Duration::from_millis(1), || {
            tries += 1;
            let n = tries;
            async move {
                if n < 3 {
                    bail!("try {n}")
                }
                Ok(())
            }
        })
        .await;
        assert!(r.is_ok());
        assert_eq!(tries, 3);

        let mut tries = 0;
        let e = retry_until(Duration::from_millis(20), Duration::from_millis(1), || {
            tries += 1;
            let n = tries;
            async move { bail!("try {n}") }
        })
        .await
        .unwrap_err();
        assert_eq!(e.to_string(), format!("try {tries}"));
        assert!(tries > 1);
    }
}
