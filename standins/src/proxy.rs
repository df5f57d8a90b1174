//! kube-proxy stand-in: strict KubeProxyConfiguration, its kubeconfig (as system:kube-proxy),
//! periodic node reads through the API server, and plain-HTTP /healthz and /livez on
//! healthzBindAddress. Programs no rules.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::apiclient::ApiClient;
use crate::config::{self, str_at};
use crate::filecheck::{self, FileKind};
use crate::flags::Flags;
use crate::health::{self, Health};
use crate::net::{self, Response};
use crate::say;

pub const SUMMARY: &str = "Reads nodes through the API server as system:kube-proxy and serves \
/healthz and /livez over plain HTTP; programs no rules.";

pub const FILES: &[(&str, FileKind)] = &[
    ("config", FileKind::Config("KubeProxyConfiguration")),
    ("kubeconfig", FileKind::Kubeconfig),
];

const MODES: [&str; 5] = ["", "iptables", "ipvs", "nftables", "kernelspace"];
const LOCAL_MODES: [&str; 5] = [
    "",
    "ClusterCIDR",
    "NodeCIDR",
    "BridgeInterface",
    "InterfaceNamePrefix",
];

struct Settings {
    kubeconfig: (String, String),
    healthz: String,
    node_name: String,
}

fn settings(flags: &Flags) -> Result<Settings> {
    let hostname = || {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .unwrap_or_default()
    };
    let Some(path) = flags.path("config") else {
        // Without --config the flags carry everything.
        let Some(kc) = flags.path("kubeconfig") else {
            bail!("neither --config nor --kubeconfig is given; kube-proxy cannot reach the API server");
        };
        return Ok(Settings {
            kubeconfig: ("--kubeconfig".into(), kc.into()),
            healthz: flags
                .get("healthz-bind-address")
                .unwrap_or("0.0.0.0:10256")
                .into(),
            node_name: flags
                .get("hostname-override")
                .map(str::to_lowercase)
                .unwrap_or_else(hostname),
        });
    };
    let doc = config::load("--config", path, "KubeProxyConfiguration")?;
    let shown = format!("--config {path}");
    let mode = str_at(&doc, &["mode"]).unwrap_or("");
    if !MODES.contains(&mode) {
        bail!(
            "{shown}: mode: Invalid value: {mode:?}: must be one of {:?}",
            &MODES[1..]
        );
    }
    let local = str_at(&doc, &["detectLocalMode"]).unwrap_or("");
    if !LOCAL_MODES.contains(&local) {
        bail!("{shown}: detectLocalMode: Invalid value: {local:?}");
    }
    for c in str_at(&doc, &["clusterCIDR"])
        .unwrap_or("")
        .split(',')
        .filter(|c| !c.is_empty())
    {
        net::parse_cidr(c).map_err(|e| anyhow::anyhow!("{shown}: clusterCIDR: {e}"))?;
    }
    let Some(kc) = str_at(&doc, &["clientConnection", "kubeconfig"]).filter(|s| !s.is_empty())
    else {
        bail!("{shown}: clientConnection.kubeconfig is not set; kube-proxy cannot reach the API server");
    };
    Ok(Settings {
        kubeconfig: ("clientConnection.kubeconfig".into(), kc.into()),
        healthz: str_at(&doc, &["healthzBindAddress"])
            .unwrap_or("0.0.0.0:10256")
            .into(),
        node_name: str_at(&doc, &["hostnameOverride"])
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase)
            .unwrap_or_else(hostname),
    })
}

/// `ip:port`, or a bare IP with the default port.
fn healthz_addr(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = s
        .parse()
        .with_context(|| format!("healthzBindAddress {s:?} is not ip:port"))?;
    Ok(SocketAddr::new(ip, 10256))
}

pub async fn run(flags: Flags) -> Result<()> {
    filecheck::check(&flags, FILES)?;
    let s = settings(&flags)?;
    let client = ApiClient::load(&s.kubeconfig.0, &s.kubeconfig.1)?;
    let health = Arc::new(Health::new());
    if !s.healthz.is_empty() {
        let addr = healthz_addr(&s.healthz)?;
        let listener = net::bind(addr).await?;
        let h = health.clone();
        let node = s.node_name.clone();
        net::serve(
            listener,
            None,
            net::handler(move |req| {
                let h = h.clone();
                let node = node.clone();
                async move {
                    match req.path.as_str() {
                        "/healthz" | "/livez" => {
                            let problem = h.problem();
                            let body = json!({
                                "lastUpdated": crate::timefmt::now(), "currentTime": crate::timefmt::now(),
                                "nodeEligible": true, "nodeName": node, "standIn": true,
                                "problem": problem,
                            });
                            Response::json(if problem.is_none() { 200 } else { 503 }, &body)
                        }
                        _ => Response::text(404, "404 page not found (kube-proxy stand-in)\n"),
                    }
                }
            }),
        );
        say!("serving /healthz and /livez on http://{addr}");
    }
    say!("rules are not programmed by the stand-in; nodes are only read");
    let mut warned_missing = false;
    loop {
        let r = async {
            let nodes = client.get_json("/api/v1/nodes").await?;
            let found = nodes["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|n| n["metadata"]["name"] == s.node_name.as_str())
            });
            if !found && !warned_missing {
                say!("node {:?} is not registered (yet)", s.node_name);
            }
            warned_missing = !found;
            Ok(())
        }
        .await;
        health::note(&health, &r);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_name_real_flags() {
        crate::filecheck::assert_table_flags_exist("kube-proxy", super::FILES, &[]);
    }

    #[test]
    fn healthz_addresses() {
        assert_eq!(super::healthz_addr("0.0.0.0:10256").unwrap().port(), 10256);
        assert_eq!(super::healthz_addr("127.0.0.1").unwrap().port(), 10256);
        assert!(super::healthz_addr("localhost:1").is_err());
    }
}
