//! The kubelet's Node object: registration, the Ready condition, and the node Lease in
//! kube-node-lease, all as `system:node:<name>`.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::cri::RuntimeInfo;
use crate::apiclient::{status_message, ApiClient};
use crate::say;
use crate::timefmt;

pub struct NodeAgent {
    pub client: ApiClient,
    pub name: String,
    pub ip: String,
    pub port: u16,
    pub lease_seconds: u64,
    /// Ready status last posted, and since when.
    last: Option<(bool, String)>,
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl NodeAgent {
    pub fn new(
        client: ApiClient,
        name: String,
        ip: String,
        port: u16,
        lease_seconds: u64,
    ) -> NodeAgent {
        NodeAgent {
            client,
            name,
            ip,
            port,
            lease_seconds,
            last: None,
        }
    }

    fn status(&mut self, runtime: &Result<RuntimeInfo, String>) -> Value {
        let now = timefmt::now();
        let ready = runtime.is_ok();
        let since = match &self.last {
            Some((was, t)) if *was == ready => t.clone(),
            _ => now.clone(),
        };
        self.last = Some((ready, since.clone()));
        let (reason, message) = match runtime {
            Ok(_) => (
                "KubeletReady",
                "kubelet is posting ready status (stand-in)".to_string(),
            ),
            Err(e) => ("KubeletNotReady", e.clone()),
        };
        let runtime_version = match runtime {
            Ok(r) => format!(
                "{}://{}",
                r.runtime_name,
                r.runtime_version.trim_start_matches('v')
            ),
            Err(_) => String::new(),
        };
        json!({
            "addresses": [
                {"type": "InternalIP", "address": self.ip},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "kubeletVersion": crate::version::git_version(),
                "containerRuntimeVersion": runtime_version,
                "operatingSystem": "linux",
                "architecture": arch(),
                "osImage": "provisioner kubelet stand-in",
                "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
            },
            "conditions": [{
                "type": "Ready",
                "status": if ready { "True" } else { "False" },
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": since,
            }],
        })
    }

    fn node(&mut self, runtime: &Result<RuntimeInfo, String>) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": arch(),
                },
                "annotations": {"provisioner.example/stand-in": "registered by the kubelet stand-in"},
            },
            "spec": {},
            "status": self.status(runtime),
        })
    }

    /// Registers the Node (an existing one is fine, as for the real kubelet after a restart).
    pub async fn register(&mut self, runtime: &Result<RuntimeInfo, String>) -> Result<()> {
        let node = self.node(runtime);
        let r = self
            .client
            .request("POST", "/api/v1/nodes", Some(&node))
            .await?;
        match r.status {
            201 => say!("successfully registered node {:?}", self.name),
            409 => say!(
                "node {:?} already registered; updating its status",
                self.name
            ),
            s => bail!(
                "registering node {:?}: HTTP {s} {}",
                self.name,
                status_message(&r)
            ),
        }
        // A POST of an existing node does not update its status: do it now.
        self.post_status(runtime).await
    }

    /// Strategic-merge patch of the node's status; re-registers a node that was deleted.
    pub async fn post_status(&mut self, runtime: &Result<RuntimeInfo, String>) -> Result<()> {
        let patch = json!({"status": self.status(runtime)});
        let path = format!("/api/v1/nodes/{}/status", self.name);
        let r = self
            .client
            .patch(&path, "application/strategic-merge-patch+json", &patch)
            .await?;
        match r.status {
            200 => Ok(()),
            404 => {
                say!("node {:?} is gone; registering it again", self.name);
                Box::pin(self.register(runtime)).await
            }
            s => bail!(
                "updating node {:?} status: HTTP {s} {}",
                self.name,
                status_message(&r)
            ),
        }
    }

    /// Renews (or creates) the node Lease, the real kubelet's heartbeat.
    pub async fn renew_lease(&self) -> Result<()> {
        let base = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
        let path = format!("{base}/{}", self.name);
        let now = timefmt::now_micro();
        let r = self.client.request("GET", &path, None).await?;
        let (method, target, body) = match r.status {
            404 => (
                "POST",
                base.to_string(),
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                       "spec": {"holderIdentity": self.name, "leaseDurationSeconds": self.lease_seconds, "renewTime": now}}),
            ),
            200 => {
                let mut lease = r.json()?;
                lease["spec"]["holderIdentity"] = json!(self.name);
                lease["spec"]["leaseDurationSeconds"] = json!(self.lease_seconds);
                lease["spec"]["renewTime"] = json!(now);
                ("PUT", path.clone(), lease)
            }
            s => bail!("node lease: HTTP {s} {}", status_message(&r)),
        };
        let w = self.client.request(method, &target, Some(&body)).await?;
        if !(200..300).contains(&w.status) {
            bail!(
                "node lease {method}: HTTP {} {}",
                w.status,
                status_message(&w)
            );
        }
        Ok(())
    }
}
