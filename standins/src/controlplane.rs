//! What kube-controller-manager and kube-scheduler share: Lease-based leader election against
//! the API server (client-go's leaderelection with a LeaseLock) and the HTTPS health server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use rustls::ServerConfig;
use serde_json::{json, Value};

use crate::apiclient::{status_message, ApiClient};
use crate::health::{self, Health};
use crate::net::{self, Response};
use crate::say;
use crate::timefmt;

pub struct LeaderElection {
    pub enabled: bool,
    pub namespace: String,
    pub name: String,
    pub lease_duration: Duration,
    pub retry_period: Duration,
}

impl LeaderElection {
    /// From the `--leader-elect*` flags both components accept (for the scheduler, only when it
    /// has no --config), with client-go's defaults.
    pub fn from_flags(flags: &crate::flags::Flags, default_name: &str) -> Result<LeaderElection> {
        Ok(LeaderElection {
            enabled: flags.bool_or("leader-elect", true),
            namespace: flags
                .get("leader-elect-resource-namespace")
                .unwrap_or("kube-system")
                .into(),
            name: flags
                .get("leader-elect-resource-name")
                .unwrap_or(default_name)
                .into(),
            lease_duration: duration(
                flags.get("leader-elect-lease-duration"),
                Duration::from_secs(15),
                "--leader-elect-lease-duration",
            )?,
            retry_period: duration(
                flags.get("leader-elect-retry-period"),
                Duration::from_secs(2),
                "--leader-elect-retry-period",
            )?,
        })
    }
}

/// `<hostname>_<random>`, the form client-go uses for holder identities.
pub fn holder_identity() -> String {
    use ring::rand::SecureRandom;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut b = [0u8; 8];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    let r: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{host}_{r}")
}

/// One acquire-or-renew attempt. Returns whether we hold the lease afterwards.
async fn try_acquire(client: &ApiClient, le: &LeaderElection, me: &str) -> Result<bool> {
    let base = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
        le.namespace
    );
    let path = format!("{base}/{}", le.name);
    let now = timefmt::now_micro();
    let secs = le.lease_duration.as_secs();
    let r = client.request("GET", &path, None).await?;
    match r.status {
        404 => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": le.name, "namespace": le.namespace},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": secs,
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
            });
            let c = client.request("POST", &base, Some(&lease)).await?;
            match c.status {
                201 => Ok(true),
                409 => Ok(false), // someone else created it first
                s => bail!("create lease {path}: HTTP {s} {}", status_message(&c)),
            }
        }
        200 => {
            let mut lease: Value = r.json()?;
            let spec = lease.get("spec").cloned().unwrap_or(json!({}));
            let holder = spec
                .get("holderIdentity")
                .and_then(Value::as_str)
                .unwrap_or("");
            let renewed = spec
                .get("renewTime")
                .and_then(Value::as_str)
                .and_then(timefmt::parse_rfc3339);
            let duration = Duration::from_secs(
                spec.get("leaseDurationSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(secs),
            );
            let expired = renewed.is_none_or(|t| t + duration < SystemTime::now());
            if holder != me && !holder.is_empty() && !expired {
                return Ok(false);
            }
            let transitions = spec
                .get("leaseTransitions")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            lease["spec"]["holderIdentity"] = json!(me);
            lease["spec"]["leaseDurationSeconds"] = json!(secs);
            lease["spec"]["renewTime"] = json!(now);
            if holder != me {
                lease["spec"]["acquireTime"] = json!(now);
                lease["spec"]["leaseTransitions"] = json!(transitions + 1);
            }
            // resourceVersion from the GET: a concurrent writer makes this a 409, as it should.
            let u = client.request("PUT", &path, Some(&lease)).await?;
            match u.status {
                200 => Ok(true),
                409 => Ok(false),
                s => bail!("update lease {path}: HTTP {s} {}", status_message(&u)),
            }
        }
        s => bail!("get lease {path}: HTTP {s} {}", status_message(&r)),
    }
}

/// Runs forever: leader election if enabled, else a plain node list, as the API server round
/// trip that keeps the component healthy.
pub async fn run_loop(client: ApiClient, le: LeaderElection, health: Arc<Health>) {
    let me = holder_identity();
    let mut leading = None;
    loop {
        let r = if le.enabled {
            match try_acquire(&client, &le, &me).await {
                Ok(now_leading) => {
                    if leading != Some(now_leading) {
                        if now_leading {
                            say!(
                                "successfully acquired lease {}/{} as {me}",
                                le.namespace,
                                le.name
                            );
                        } else {
                            say!(
                                "lease {}/{} is held by another instance; standing by",
                                le.namespace,
                                le.name
                            );
                        }
                        leading = Some(now_leading);
                    }
                    Ok(())
                }
                Err(e) => Err(e),
            }
        } else {
            client.get_json("/api/v1/nodes").await.map(drop)
        };
        health::note(&health, &r);
        tokio::time::sleep(le.retry_period).await;
    }
}

/// Serves the health paths over HTTPS; every other path is refused, as a real component does
/// for a caller it cannot authorize.
pub async fn serve_health(
    addr: SocketAddr,
    tls: Arc<ServerConfig>,
    paths: &'static [&'static str],
    health: Arc<Health>,
) -> Result<()> {
    let listener = net::bind(addr).await?;
    net::serve(
        listener,
        Some(tls),
        net::handler(move |req| {
            let health = health.clone();
            async move {
                let check = req.path.trim_start_matches('/');
                if paths.contains(&req.path.as_str()) {
                    health.response(check, req.query_param("verbose").is_some())
                } else {
                    Response::json(
                        403,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": format!("forbidden: the stand-in serves only {paths:?} (path {:?})", req.path),
                                "reason": "Forbidden", "code": 403}),
                    )
                }
            }
        }),
    );
    say!("serving {paths:?} on https://{addr}");
    Ok(())
}

/// `--bind-address` and `--secure-port` as a socket address.
/// The secure port's TLS, as both components configure it: --tls-cert-file and
/// --tls-private-key-file, client certificates checked against --client-ca-file when given.
pub fn serving_tls(flags: &crate::flags::Flags) -> Result<Arc<ServerConfig>> {
    let (chain, key) = crate::files::load_pair(
        "--tls-cert-file",
        flags.path("tls-cert-file").unwrap_or_default(),
        "--tls-private-key-file",
        flags.path("tls-private-key-file").unwrap_or_default(),
    )?;
    let client_ca = match flags.path("client-ca-file") {
        Some(p) => crate::files::load_certs("--client-ca-file", p)?,
        None => Vec::new(),
    };
    let auth = if client_ca.is_empty() {
        crate::tls::ClientAuth::None
    } else {
        crate::tls::ClientAuth::Optional("--client-ca-file", &client_ca)
    };
    crate::tls::server_config(chain, key, auth, flags.get("tls-min-version"))
}

pub fn bind_addr(bind: Option<&str>, port: &str) -> Result<SocketAddr> {
    let ip: std::net::IpAddr = bind
        .unwrap_or("0.0.0.0")
        .parse()
        .with_context(|| format!("--bind-address {bind:?} is not an IP address"))?;
    let port: u16 = port.parse().context("--secure-port is not a port number")?;
    Ok(SocketAddr::new(ip, port))
}

/// A Go duration from a flag or config field, with its default.
pub fn duration(v: Option<&str>, default: Duration, what: &str) -> Result<Duration> {
    match v {
        None => Ok(default),
        Some(s) => {
            timefmt::parse_go_duration(s).with_context(|| format!("{what}: invalid duration {s:?}"))
        }
    }
}
