//! kubelet stand-in: strict KubeletConfiguration and the provisioner's promises about it, the
//! real containerd over CRI gRPC, node registration and status as system:node:<name>, HTTPS on
//! 10250 behind webhook authorization, /healthz on 10248. Runs no pods.

pub mod cri;
pub mod node;
pub mod server;
pub mod settings;

use std::sync::{Arc, Mutex};

use anyhow::Result;

use crate::apiclient::ApiClient;
use crate::filecheck;
use crate::flags::Flags;
use crate::{files, net, say, tls};
use node::NodeAgent;

pub const SUMMARY: &str = "Registers its Node and keeps its Ready condition (Ready only while the real \
containerd answers over CRI), serves /healthz on 10248 and, behind SubjectAccessReview, on 10250; runs no pods.";

pub async fn run(flags: Flags) -> Result<()> {
    filecheck::check(&flags, settings::FILES)?;
    filecheck::check_pairs(&flags, settings::PAIRS)?;
    let s = settings::load(&flags)?;
    let client = ApiClient::from_kubeconfig(s.kubeconfig)?;

    let (chain, key) =
        files::load_pair("tlsCertFile", &s.tls_cert, "tlsPrivateKeyFile", &s.tls_key)?;
    let cas = files::load_certs("authentication.x509.clientCAFile", &s.client_ca)?;
    let server_tls = tls::server_config(
        chain,
        key,
        tls::ClientAuth::Required("authentication.x509.clientCAFile", &cas),
        s.tls_min_version.as_deref(),
    )?;
    let runtime_problem = Arc::new(Mutex::new(Some("not checked yet".to_string())));
    let https = net::bind(s.serve).await?;
    server::serve_https(
        https,
        server_tls,
        client.clone(),
        s.node_name.clone(),
        runtime_problem.clone(),
    );
    say!(
        "serving https://{} (client certificates required; webhook authorization)",
        s.serve
    );
    if let Some(addr) = s.healthz {
        server::serve_healthz(net::bind(addr).await?, runtime_problem.clone());
        say!("serving http://{addr}/healthz");
    }

    let mut agent = NodeAgent::new(
        client,
        s.node_name.clone(),
        s.node_ip.to_string(),
        s.serve.port(),
        s.lease_seconds,
    );
    let mut registered = false;
    let mut last_runtime: Option<Result<String, String>> = None;
    loop {
        let runtime = cri::check(&s.runtime_socket)
            .await
            .map_err(|e| format!("{e:#}"));
        let summary = runtime
            .as_ref()
            .map(|r| {
                format!(
                    "{} {} (CRI {})",
                    r.runtime_name, r.runtime_version, r.runtime_api_version
                )
            })
            .map_err(Clone::clone);
        if last_runtime.as_ref() != Some(&summary) {
            match &summary {
                Ok(v) => say!(
                    "container runtime at {} answers: {v}; node is Ready",
                    s.runtime_socket.display()
                ),
                Err(e) => say!(
                    "container runtime at {} not ready (retrying): {e}",
                    s.runtime_socket.display()
                ),
            }
            last_runtime = Some(summary);
        }
        if let Ok(mut p) = runtime_problem.lock() {
            *p = runtime.as_ref().err().cloned();
        }
        if s.register {
            let r = if registered {
                agent.post_status(&runtime).await
            } else {
                agent.register(&runtime).await
            };
            match r {
                Ok(()) => registered = true,
                Err(e) => say!("node status: {e:#}"),
            }
            if let Err(e) = agent.renew_lease().await {
                say!("node lease: {e:#}");
            }
        }
        tokio::time::sleep(s.status_every).await;
    }
}
