//! kube-controller-manager stand-in: validates flags and files (kubeconfigs, signing pair,
//! service-account key), holds the kube-controller-manager Lease through the API server, and
//! serves /healthz on 10257 over HTTPS.

use std::sync::Arc;

use anyhow::{bail, Result};

use crate::apiclient::ApiClient;
use crate::controlplane::{self, LeaderElection};
use crate::filecheck::{self, FileKind};
use crate::flags::Flags;
use crate::health::Health;
use crate::{files, net, say};

pub const SUMMARY: &str =
    "Holds the kube-controller-manager lease through the API server and serves \
/healthz on the secure port; runs no controllers.";

pub const FILES: &[(&str, FileKind)] = &[
    ("kubeconfig", FileKind::Kubeconfig),
    ("authentication-kubeconfig", FileKind::Kubeconfig),
    ("authorization-kubeconfig", FileKind::Kubeconfig),
    ("client-ca-file", FileKind::Certs),
    ("requestheader-client-ca-file", FileKind::Certs),
    ("root-ca-file", FileKind::Certs),
    ("tls-cert-file", FileKind::Certs),
    ("tls-private-key-file", FileKind::Key),
    ("service-account-private-key-file", FileKind::Key),
    ("cluster-signing-cert-file", FileKind::Certs),
    ("cluster-signing-key-file", FileKind::Key),
    ("cluster-signing-kubelet-serving-cert-file", FileKind::Certs),
    ("cluster-signing-kubelet-serving-key-file", FileKind::Key),
    ("cluster-signing-kubelet-client-cert-file", FileKind::Certs),
    ("cluster-signing-kubelet-client-key-file", FileKind::Key),
    (
        "cluster-signing-kube-apiserver-client-cert-file",
        FileKind::Certs,
    ),
    (
        "cluster-signing-kube-apiserver-client-key-file",
        FileKind::Key,
    ),
    ("cluster-signing-legacy-unknown-cert-file", FileKind::Certs),
    ("cluster-signing-legacy-unknown-key-file", FileKind::Key),
];

pub const PAIRS: &[(&str, &str)] = &[
    ("tls-cert-file", "tls-private-key-file"),
    ("cluster-signing-cert-file", "cluster-signing-key-file"),
    (
        "cluster-signing-kubelet-serving-cert-file",
        "cluster-signing-kubelet-serving-key-file",
    ),
    (
        "cluster-signing-kubelet-client-cert-file",
        "cluster-signing-kubelet-client-key-file",
    ),
    (
        "cluster-signing-kube-apiserver-client-cert-file",
        "cluster-signing-kube-apiserver-client-key-file",
    ),
    (
        "cluster-signing-legacy-unknown-cert-file",
        "cluster-signing-legacy-unknown-key-file",
    ),
];

pub async fn run(flags: Flags) -> Result<()> {
    filecheck::require(
        &flags,
        &["kubeconfig"],
        "the controller manager must reach the API server",
    )?;
    filecheck::require(
        &flags,
        &["tls-cert-file", "tls-private-key-file"],
        "the stand-in serves only with the provisioner's certificate, never a self-signed one",
    )?;
    filecheck::check(&flags, FILES)?;
    filecheck::check_pairs(&flags, PAIRS)?;
    // A signer that is not a CA issues certificates nobody accepts.
    for (cert, _) in PAIRS.iter().skip(1) {
        if let Some(p) = flags.path(cert) {
            if !files::is_ca(&files::load_certs(&format!("--{cert}"), p)?[0])? {
                bail!("--{cert} {p} is not a CA certificate (basicConstraints CA:TRUE)");
            }
        }
    }
    for f in ["cluster-cidr", "service-cluster-ip-range"] {
        for c in flags.list(f) {
            net::parse_cidr(&c).map_err(|e| anyhow::anyhow!("--{f}: {e}"))?;
        }
    }
    if flags.bool_or("allocate-node-cidrs", false) && flags.path("cluster-cidr").is_none() {
        bail!("--cluster-cidr is required with --allocate-node-cidrs=true");
    }

    let client = ApiClient::load("--kubeconfig", flags.path("kubeconfig").unwrap_or_default())?;
    let server_tls = controlplane::serving_tls(&flags)?;
    let le = LeaderElection::from_flags(&flags, "kube-controller-manager")?;
    let health = Arc::new(Health::new());
    let port = flags.get("secure-port").unwrap_or("10257");
    if port != "0" {
        let addr = controlplane::bind_addr(flags.path("bind-address"), port)?;
        controlplane::serve_health(addr, server_tls, &["/healthz"], health.clone()).await?;
    }
    say!("controllers are not run by the stand-in; only the lease and health are");
    controlplane::run_loop(client, le, health).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tables_name_real_flags() {
        crate::filecheck::assert_table_flags_exist(
            "kube-controller-manager",
            super::FILES,
            super::PAIRS,
        );
    }
}
