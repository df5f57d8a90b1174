//! kube-apiserver stand-in: validates the command line and every file it names, talks to the
//! real etcd over mTLS, serves a small part of the Kubernetes API over HTTPS with client
//! certificates, Node+RBAC authorization, NodeRestriction, audit logging and the kubelet proxy.

pub mod audit;
pub mod authz;
pub mod etcd;
pub mod handlers;
pub mod kubelet_link;
pub mod patch;
pub mod rbac;
pub mod status;
pub mod store;
mod validate;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::flags::Flags;
use crate::net;
use crate::say;
use handlers::Server;
use status::ApiError;
use store::{Store, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS};

pub const SUMMARY: &str =
    "Serves /livez, /readyz, /version, nodes, cluster roles and bindings, leases, \
subject access reviews and the node proxy, stored in the real etcd.";

/// How long startup waits for etcd before giving up (the real API server also gives up).
const ETCD_WAIT: Duration = Duration::from_secs(60);

pub async fn run(flags: Flags) -> Result<()> {
    let v = validate::validate(&flags)?;
    let mut listeners = Vec::new();
    for addr in &v.bind {
        listeners.push((addr, net::bind(*addr).await?));
    }
    let store = Store {
        etcd: etcd::Etcd::new(&v.etcd_servers, v.etcd_tls.clone())?,
    };
    wait_for_etcd(&store, &v.etcd_servers).await?;
    bootstrap_rbac(&store).await?;
    let srv = Arc::new(Server {
        store,
        rbac: Default::default(),
        audit: v.audit,
        kubelet: v.kubelet,
        advertise: v.advertise,
    });
    let handler = {
        let srv = srv.clone();
        net::handler(move |req| handlers::handle(srv.clone(), req))
    };
    for (addr, l) in listeners {
        net::serve(l, Some(v.tls.clone()), handler.clone());
        say!("listening on {addr} (HTTPS, client certificates from --client-ca-file required)");
    }
    std::future::pending::<()>().await;
    Ok(())
}

/// Certificate problems do not fix themselves: fail at once. Anything else (etcd still
/// starting) is retried for a while.
fn is_tls_rejection(e: &anyhow::Error) -> bool {
    let s = format!("{e:#}");
    s.contains("invalid peer certificate") || s.contains("received fatal alert")
}

async fn wait_for_etcd(store: &Store, servers: &[String]) -> Result<()> {
    let start = Instant::now();
    loop {
        match store.etcd.probe().await {
            Ok(()) => {
                say!(
                    "etcd {} answers (probe key written and read back over mTLS)",
                    servers.join(",")
                );
                return Ok(());
            }
            Err(e) if is_tls_rejection(&e) => return Err(e.context(
                "etcd TLS handshake failed (check --etcd-cafile/--etcd-certfile/--etcd-keyfile)",
            )),
            Err(e) if start.elapsed() > ETCD_WAIT => {
                return Err(e.context(format!(
                    "etcd did not answer within {}s",
                    ETCD_WAIT.as_secs()
                )))
            }
            Err(e) => {
                say!("waiting for etcd: {e:#}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The real API server's rbac/bootstrap-roles post-start hook: create the default roles and
/// bindings that are missing, leave existing ones alone.
async fn bootstrap_rbac(store: &Store) -> Result<()> {
    let objects = rbac::bootstrap_roles()
        .into_iter()
        .map(|r| (&CLUSTER_ROLES, r))
        .chain(
            rbac::bootstrap_bindings()
                .into_iter()
                .map(|b| (&CLUSTER_ROLE_BINDINGS, b)),
        );
    let mut created = 0;
    for (kind, obj) in objects {
        match store.create(kind, "", obj).await {
            Ok(_) => created += 1,
            Err(ApiError { code: 409, .. }) => {}
            Err(e) => bail!("creating bootstrap RBAC objects: {}", e.message),
        }
    }
    say!("bootstrap RBAC: {created} default cluster roles/bindings created");
    Ok(())
}

/// Addresses to listen on: --bind-address if given, else the advertise address and loopback.
fn bind_addresses(flags: &Flags, port: u16) -> Result<Vec<SocketAddr>> {
    let parse = |flag: &str, v: &str| -> Result<IpAddr> {
        v.parse()
            .with_context(|| format!("--{flag} {v:?} is not an IP address"))
    };
    let mut ips = Vec::new();
    if let Some(b) = flags.path("bind-address") {
        ips.push(parse("bind-address", b)?);
    } else if let Some(a) = flags.path("advertise-address") {
        ips.push(parse("advertise-address", a)?);
        ips.push(IpAddr::from([127, 0, 0, 1]));
    } else {
        ips.push(IpAddr::from([0, 0, 0, 0]));
    }
    ips.dedup();
    Ok(ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}
