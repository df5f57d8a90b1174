//! kube-scheduler stand-in: strict KubeSchedulerConfiguration, its kubeconfig, the
//! kube-scheduler Lease through the API server, and /livez /readyz /healthz on 10259 over HTTPS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use serde_yaml::Value;

use crate::apiclient::ApiClient;
use crate::config::{self, str_at, value_at};
use crate::controlplane::{self, LeaderElection};
use crate::filecheck::{self, FileKind};
use crate::flags::Flags;
use crate::health::Health;
use crate::say;

pub const SUMMARY: &str =
    "Holds the kube-scheduler lease through the API server and serves /livez, \
/readyz and /healthz on the secure port; schedules nothing.";

pub const FILES: &[(&str, FileKind)] = &[
    ("config", FileKind::Config("KubeSchedulerConfiguration")),
    ("kubeconfig", FileKind::Kubeconfig),
    ("authentication-kubeconfig", FileKind::Kubeconfig),
    ("authorization-kubeconfig", FileKind::Kubeconfig),
    ("client-ca-file", FileKind::Certs),
    ("requestheader-client-ca-file", FileKind::Certs),
    ("tls-cert-file", FileKind::Certs),
    ("tls-private-key-file", FileKind::Key),
];

pub const PAIRS: &[(&str, &str)] = &[("tls-cert-file", "tls-private-key-file")];

pub async fn run(flags: Flags) -> Result<()> {
    filecheck::require(
        &flags,
        &["tls-cert-file", "tls-private-key-file"],
        "the stand-in serves only with the provisioner's certificate, never a self-signed one",
    )?;
    filecheck::check(&flags, FILES)?;
    filecheck::check_pairs(&flags, PAIRS)?;

    // With --config, the real scheduler takes the connection and leader election from the file
    // and ignores the deprecated flags.
    let (kubeconfig_what, kubeconfig, le) = match flags.path("config") {
        Some(path) => {
            let doc = config::load("--config", path, "KubeSchedulerConfiguration")?;
            let Some(kc) =
                str_at(&doc, &["clientConnection", "kubeconfig"]).filter(|s| !s.is_empty())
            else {
                bail!("--config {path}: clientConnection.kubeconfig is not set; the scheduler cannot reach the API server");
            };
            (
                "clientConnection.kubeconfig",
                kc.to_string(),
                leader_election(&doc)?,
            )
        }
        None => {
            let Some(kc) = flags.path("kubeconfig") else {
                bail!("neither --config nor --kubeconfig is given; the scheduler cannot reach the API server");
            };
            let le = LeaderElection::from_flags(&flags, "kube-scheduler")?;
            ("--kubeconfig", kc.to_string(), le)
        }
    };
    let client = ApiClient::load(kubeconfig_what, &kubeconfig)?;
    let server_tls = controlplane::serving_tls(&flags)?;
    let health = Arc::new(Health::new());
    let port = flags.get("secure-port").unwrap_or("10259");
    if port != "0" {
        let addr = controlplane::bind_addr(flags.path("bind-address"), port)?;
        controlplane::serve_health(
            addr,
            server_tls,
            &["/livez", "/readyz", "/healthz"],
            health.clone(),
        )
        .await?;
    }
    say!("pods are not scheduled by the stand-in; only the lease and health are");
    controlplane::run_loop(client, le, health).await;
    Ok(())
}

fn leader_election(doc: &Value) -> Result<LeaderElection> {
    let le = |k: &str| str_at(doc, &["leaderElection", k]);
    Ok(LeaderElection {
        enabled: value_at(doc, &["leaderElection", "leaderElect"])
            .and_then(Value::as_bool)
            .unwrap_or(true),
        namespace: le("resourceNamespace").unwrap_or("kube-system").into(),
        name: le("resourceName").unwrap_or("kube-scheduler").into(),
        lease_duration: controlplane::duration(
            le("leaseDuration"),
            Duration::from_secs(15),
            "leaderElection.leaseDuration",
        )?,
        retry_period: controlplane::duration(
            le("retryPeriod"),
            Duration::from_secs(2),
            "leaderElection.retryPeriod",
        )?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_name_real_flags() {
        crate::filecheck::assert_table_flags_exist("kube-scheduler", super::FILES, super::PAIRS);
    }
}
