//! etcd v3 through its JSON gateway (`/v3/kv/*` over HTTPS): the same members, CA and client
//! certificate the real API server's gRPC client uses, so every TLS mistake shows the same way.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rustls::ClientConfig;
use serde_json::{json, Value};

use crate::kubeconfig::split_https_url;
use crate::net::HttpsClient;

/// A stored value and its etcd modification revision (the object's resourceVersion).
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// Result of a conditional write.
#[derive(Debug)]
pub enum Write {
    Done(i64),
    /// Create: the key exists. Update: the revision did not match.
    Conflict,
    /// Update: the key does not exist.
    Missing,
}

pub struct Etcd {
    members: Vec<HttpsClient>,
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// int64 fields come as JSON strings from the gateway.
fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kvs(resp: &Value) -> Result<Vec<Kv>> {
    resp.get("kvs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            let key = B64.decode(kv.get("key").and_then(Value::as_str).unwrap_or(""))?;
            let value = B64.decode(kv.get("value").and_then(Value::as_str).unwrap_or(""))?;
            Ok(Kv {
                key: String::from_utf8_lossy(&key).into_owned(),
                value,
                mod_revision: int(kv.get("mod_revision")),
            })
        })
        .collect()
}

/// The end of the key range holding every key that starts with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Etcd {
    /// One client per `--etcd-servers` URL.
    pub fn new(servers: &[String], tls: Arc<ClientConfig>) -> Result<Etcd> {
        let members = servers
            .iter()
            .map(|url| {
                if url.starts_with("http://") {
                    bail!("--etcd-servers {url}: the stand-in talks to etcd over TLS only");
                }
                let (host, port) =
                    split_https_url(url).with_context(|| format!("--etcd-servers {url}"))?;
                Ok(HttpsClient::new(tls.clone(), &host, port, &host)?
                    .with_timeout(Duration::from_secs(5)))
            })
            .collect::<Result<Vec<_>>>()?;
        if members.is_empty() {
            bail!("--etcd-servers is empty");
        }
        Ok(Etcd { members })
    }

    /// Calls the first member that answers, as the real client fails over between endpoints.
    async fn call(&self, path: &str, body: Value) -> Result<Value> {
        let mut errors = Vec::new();
        for m in &self.members {
            match m.send_json("POST", path, &body).await {
                Ok(r) if r.status == 200 => return r.json(),
                Ok(r) => errors.push(format!(
                    "{}: HTTP {} {}",
                    m.target(),
                    r.status,
                    r.text().trim()
                )),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        Err(anyhow!("etcd {path}: {}", errors.join("; ")))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let r = self
            .call("/v3/kv/range", json!({ "key": b64(key) }))
            .await?;
        Ok(kvs(&r)?.into_iter().next())
    }

    /// Every key under `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let r = self
            .call(
                "/v3/kv/range",
                json!({ "key": b64(prefix), "range_end": B64.encode(prefix_end(prefix)) }),
            )
            .await?;
        let revision = int(r.get("header").and_then(|h| h.get("revision")));
        Ok((kvs(&r)?, revision))
    }

    pub async fn put(&self, key: &str, value: &[u8]) -> Result<i64> {
        let r = self
            .call(
                "/v3/kv/put",
                json!({ "key": b64(key), "value": B64.encode(value) }),
            )
            .await?;
        Ok(int(r.get("header").and_then(|h| h.get("revision"))))
    }

    /// Writes `value` if the key does not exist.
    pub async fn create(&self, key: &str, value: &[u8]) -> Result<Write> {
        self.txn(
            json!({ "key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0" }),
            key,
            value,
        )
        .await
    }

    /// Writes `value` if the key exists and, when `revision` is given, was last modified there.
    pub async fn update(&self, key: &str, value: &[u8], revision: Option<i64>) -> Result<Write> {
        let compare = match revision {
            Some(rev) => {
                json!({ "key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string() })
            }
            None => {
                json!({ "key": b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0" })
            }
        };
        self.txn(compare, key, value).await
    }

    async fn txn(&self, compare: Value, key: &str, value: &[u8]) -> Result<Write> {
        let r = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [compare],
                    "success": [{ "request_put": { "key": b64(key), "value": B64.encode(value) } }],
                    "failure": [{ "request_range": { "key": b64(key) } }],
                }),
            )
            .await?;
        if r.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(Write::Done(int(r
                .get("header")
                .and_then(|h| h.get("revision")))));
        }
        let existing = r
            .pointer("/responses/0/response_range")
            .map(kvs)
            .transpose()?
            .unwrap_or_default();
        Ok(if existing.is_empty() {
            Write::Missing
        } else {
            Write::Conflict
        })
    }

    pub async fn delete(&self, key: &str) -> Result<bool> {
        let r = self
            .call("/v3/kv/deleterange", json!({ "key": b64(key) }))
            .await?;
        Ok(int(r.get("deleted")) > 0)
    }

    /// Writes and reads back a probe key: the real API server's etcd health check, made a
    /// little stronger (a write proves quorum).
    pub async fn probe(&self) -> Result<()> {
        const KEY: &str = "/registry/stand-in/health-probe";
        let stamp = crate::timefmt::now_micro();
        self.put(KEY, stamp.as_bytes()).await?;
        match self.get(KEY).await? {
            Some(kv) if kv.value == stamp.as_bytes() => Ok(()),
            Some(_) => Ok(()), // a concurrent probe (another API server) wrote after us
            None => bail!("etcd probe key vanished after a write"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_range_end() {
        assert_eq!(
            prefix_end("/registry/minions/"),
            b"/registry/minions0".to_vec()
        );
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
