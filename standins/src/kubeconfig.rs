//! Kubeconfig files: strictly decoded, the current context resolved, the CA and client
//! certificate loaded (embedded `*-data` or file paths relative to the kubeconfig).

use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_yaml::Value;

use crate::files;
use crate::identity::Identity;

/// What a stand-in needs from a kubeconfig to reach the API server.
#[derive(Debug)]
pub struct Kubeconfig {
    /// The file, as the flag or field named it.
    pub path: String,
    pub server: String,
    pub host: String,
    pub port: u16,
    /// Name the server certificate must carry (tls-server-name, else the server's host).
    pub server_name: String,
    pub ca: Vec<CertificateDer<'static>>,
    pub client_chain: Vec<CertificateDer<'static>>,
    pub client_key: PrivateKeyDer<'static>,
    /// Who the client certificate says we are.
    pub identity: Identity,
}

fn entry<'a>(doc: &'a Value, list: &str, name: &str, field: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get(field)
}

/// `host:port` of an `https://` URL, as (host, port).
pub fn split_https_url(url: &str) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("server {url:?} is not an https:// URL"))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, p) = v6.split_once(']').context("bad IPv6 address in URL")?;
        (h.to_string(), p.strip_prefix(':').unwrap_or("443"))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), "443"),
        }
    };
    let port = port
        .parse()
        .with_context(|| format!("bad port in URL {url:?}"))?;
    if host.is_empty() {
        bail!("no host in URL {url:?}");
    }
    Ok((host, port))
}

impl Kubeconfig {
    /// Loads the kubeconfig that `what` (a flag or field name) points at.
    pub fn load(what: &str, path: &str) -> Result<Kubeconfig> {
        let shown = format!("{what} {path}");
        let doc = crate::config::load(what, path, "Config")?;
        let base = Path::new(path).parent().unwrap_or(Path::new("/"));
        // Relative paths inside a kubeconfig are relative to the kubeconfig's directory.
        let resolve = |p: &str| -> String {
            if Path::new(p).is_absolute() {
                p.to_string()
            } else {
                base.join(p).to_string_lossy().into_owned()
            }
        };
        let context_name = doc
            .get("current-context")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{shown}: no current-context"))?;
        let ctx = entry(&doc, "contexts", context_name, "context")
            .with_context(|| format!("{shown}: context {context_name:?} is not defined"))?;
        let cluster_name = ctx.get("cluster").and_then(Value::as_str).unwrap_or("");
        let user_name = ctx.get("user").and_then(Value::as_str).unwrap_or("");
        let cluster = entry(&doc, "clusters", cluster_name, "cluster")
            .with_context(|| format!("{shown}: cluster {cluster_name:?} is not defined"))?;
        let user = entry(&doc, "users", user_name, "user")
            .with_context(|| format!("{shown}: user {user_name:?} is not defined"))?;

        let server = cluster
            .get("server")
            .and_then(Value::as_str)
            .with_context(|| format!("{shown}: cluster {cluster_name:?} has no server"))?;
        let (host, port) = split_https_url(server).with_context(|| shown.clone())?;
        if cluster
            .get("insecure-skip-tls-verify")
            .and_then(Value::as_bool)
            == Some(true)
        {
            bail!("{shown}: insecure-skip-tls-verify is set; the stand-ins always verify the API server");
        }
        let b64 = |field: &str, v: &Value| -> Result<Vec<u8>> {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .with_context(|| format!("{shown}: {field} is not base64"))
        };

        let ca = match (
            cluster.get("certificate-authority-data"),
            cluster.get("certificate-authority").and_then(Value::as_str),
        ) {
            (Some(d), _) => files::parse_certs(
                &format!("{shown}:"),
                "certificate-authority-data",
                &b64("certificate-authority-data", d)?,
            )?,
            (None, Some(p)) => {
                files::load_certs(&format!("{shown}: certificate-authority"), &resolve(p))?
            }
            (None, None) => bail!(
                "{shown}: cluster {cluster_name:?} has no certificate-authority(-data); \
                 the stand-ins do not trust the system roots for the API server"
            ),
        };

        let client_chain = match (
            user.get("client-certificate-data"),
            user.get("client-certificate").and_then(Value::as_str),
        ) {
            (Some(d), _) => files::parse_certs(
                &format!("{shown}:"),
                "client-certificate-data",
                &b64("client-certificate-data", d)?,
            )?,
            (None, Some(p)) => {
                files::load_certs(&format!("{shown}: client-certificate"), &resolve(p))?
            }
            (None, None) => bail!(
                "{shown}: user {user_name:?} has no client certificate; the stand-in API server \
                 authenticates clients by certificate only"
            ),
        };
        let client_key = match (
            user.get("client-key-data"),
            user.get("client-key").and_then(Value::as_str),
        ) {
            (Some(d), _) => {
                // The kubeconfig itself holds the key, so it is the secret file.
                files::require_private(what, path)?;
                files::parse_key(
                    &format!("{shown}:"),
                    "client-key-data",
                    &b64("client-key-data", d)?,
                )?
            }
            (None, Some(p)) => files::load_key(&format!("{shown}: client-key"), &resolve(p))?,
            (None, None) => {
                bail!("{shown}: user {user_name:?} has a client certificate but no client key")
            }
        };
        files::check_pair(
            &format!("{shown}:"),
            "client certificate",
            &client_chain[0],
            "its",
            "client key",
            &client_key,
        )?;
        let (user_cn, mut groups) = files::subject(&client_chain[0])?;
        groups.push(crate::identity::AUTHENTICATED.into());
        let server_name = cluster
            .get("tls-server-name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&host)
            .to_string();
        Ok(Kubeconfig {
            path: path.to_string(),
            server: server.to_string(),
            host,
            port,
            server_name,
            ca,
            client_chain,
            client_key,
            identity: Identity {
                user: user_cn,
                groups,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            split_https_url("https://10.0.0.1:6443").unwrap(),
            ("10.0.0.1".into(), 6443)
        );
        assert_eq!(
            split_https_url("https://api.example.com").unwrap(),
            ("api.example.com".into(), 443)
        );
        assert_eq!(
            split_https_url("https://[::1]:6443/").unwrap(),
            ("::1".into(), 6443)
        );
        assert!(split_https_url("http://10.0.0.1:8080").is_err());
    }
}
