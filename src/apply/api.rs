//! The Kubernetes API as the runner uses it: a kube-rs client whose every connection goes
//! through a control-plane host's SSH connection (as the health checks do), so the operator's
//! machine needs no route to the API server. TLS is verified against the cluster CA, with the
//! server name the serving certificate carries; the client authenticates with a certificate.

use std::time::Duration;

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use kube::api::{Patch, PatchParams};
use kube::client::ConfigExt;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use rustls::pki_types::pem::PemObject;

use super::remote::Remote;
use crate::pki::Pem;
use crate::transport::Forward;

/// Who changes what we apply, as `kubectl get -o yaml --show-managed-fields` shows it.
pub const FIELD_MANAGER: &str = "provisioner";

/// A client for one API server, reached through one host's SSH connection. Dropping it closes
/// the forward.
pub struct Api {
    pub client: kube::Client,
    _forward: Forward,
}

/// Where the API server is and who we are to it.
pub struct Target<'a, R> {
    pub conn: &'a R,
    /// The address the API server listens on, as the host sees it.
    pub address: &'a str,
    /// A name the serving certificate carries (the host's name).
    pub server_name: &'a str,
    pub ca: &'a str,
    pub client: &'a Pem,
}

impl Api {
    pub async fn connect<R: Remote>(t: &Target<'_, R>) -> Result<Api> {
        // The process-wide TLS provider, ring as everywhere else (a no-op once installed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let forward = t.conn.forward(t.address, 6443).await?;
        let socket = forward.socket().to_path_buf();
        // Every connection the client makes, whatever its URL, is a new forwarded one.
        let connector = tower::service_fn(move |_: http::Uri| {
            let socket = socket.clone();
            async move {
                tokio::net::UnixStream::connect(&socket)
                    .await
                    .map(TokioIo::new)
            }
        });
        let url = format!("https://{}:6443", t.server_name);
        let mut config =
            kube::Config::new(url.parse().with_context(|| format!("the API URL {url}"))?);
        config.root_cert = Some(
            rustls::pki_types::CertificateDer::pem_slice_iter(t.ca.as_bytes())
                .map(|c| c.map(|c| c.to_vec()))
                .collect::<Result<_, _>>()
                .context("reading the cluster CA certificate")?,
        );
        config.auth_info.client_certificate_data = Some(B64.encode(&t.client.cert));
        config.auth_info.client_key_data = Some(B64.encode(&t.client.key).into());
        config.connect_timeout = Some(Duration::from_secs(10));
        config.read_timeout = Some(Duration::from_secs(30));
        let https = config
            .rustls_https_connector_with_connector(connector)
            .context("setting up TLS for the API client")?;
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
        let service = tower::ServiceBuilder::new()
            .layer(config.base_uri_layer())
            .service(http);
        Ok(Api {
            client: kube::Client::new(service, "default"),
            _forward: forward,
        })
    }

    /// Server-side apply of one object (any kind), owned by [`FIELD_MANAGER`]; conflicts with
    /// other managers are taken over, as the tool owns what it declares.
    pub async fn apply(&self, obj: &DynamicObject) -> Result<DynamicObject> {
        let (api, kind, name) = self.api_for(obj)?;
        // Strict: a field the API server does not know is an error, not silently dropped.
        let params = PatchParams::apply(FIELD_MANAGER)
            .force()
            .validation_strict();
        api.patch(name, &params, &Patch::Apply(obj))
            .await
            .with_context(|| format!("applying {kind} {name}"))
    }

    /// Deletes the object `obj` names (any kind); nothing when it is gone already.
    pub async fn delete(&self, obj: &DynamicObject) -> Result<()> {
        let (api, kind, name) = self.api_for(obj)?;
        match api.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {kind} {name}")),
        }
    }

    /// The API of `obj`'s kind, in its namespace, with its kind and name.
    fn api_for<'o>(
        &self,
        obj: &'o DynamicObject,
    ) -> Result<(kube::Api<DynamicObject>, String, &'o str)> {
        let types = obj
            .types
            .as_ref()
            .context("an object without apiVersion and kind")?;
        let gvk = GroupVersionKind::try_from(types)?;
        let resource = ApiResource::from_gvk(&gvk);
        let name = obj
            .metadata
            .name
            .as_deref()
            .context("an object without a name")?;
        let api = match &obj.metadata.namespace {
            Some(ns) => kube::Api::namespaced_with(self.client.clone(), ns, &resource),
            None => kube::Api::all_with(self.client.clone(), &resource),
        };
        Ok((api, gvk.kind, name))
    }

    /// One line per pod matching `selector`: where it runs and what its containers are doing,
    /// for the error of a gate that waited on them.
    pub async fn pod_states(&self, namespace: &str, selector: &str) -> Result<Vec<String>> {
        let pods: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&kube::api::ListParams::default().labels(selector))
            .await?;
        Ok(list.items.iter().map(pod_state).collect())
    }

    /// Whether the Node reports Ready, and why not when it does not.
    pub async fn node_ready(&self, name: &str) -> Result<std::result::Result<(), String>> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let Some(node) = nodes.get_opt(name).await? else {
            return Ok(Err(format!("Node {name} is not registered")));
        };
        Ok(match ready_condition(&node) {
            Some(c) if c.status == "True" => Ok(()),
            Some(c) => Err(format!(
                "Node {name} is not Ready: {}",
                c.message.unwrap_or(c.reason.unwrap_or_default())
            )),
            None => Err(format!("Node {name} reports no Ready condition yet")),
        })
    }

    /// The kubelet version the Node reports ("v1.37.2").
    pub async fn kubelet_version(&self, name: &str) -> Result<Option<String>> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let node = nodes.get_opt(name).await?;
        Ok(node.and_then(|n| Some(n.status?.node_info?.kubelet_version)))
    }

    /// Deletes the Node (nothing when it is gone already).
    pub async fn delete_node(&self, name: &str) -> Result<()> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        match nodes.delete(name, &Default::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting Node {name}")),
        }
    }

    /// Marks the Node unschedulable (or schedulable again); nothing when it is not registered
    /// (a kubelet that never started).
    pub async fn cordon(&self, name: &str, cordoned: bool) -> Result<()> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let what = if cordoned { "cordoning" } else { "uncordoning" };
        let done = if cordoned {
            nodes.cordon(name).await
        } else {
            nodes.uncordon(name).await
        };
        match done {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e).with_context(|| format!("{what} Node {name}")),
        }
    }

    /// The pods a drain of the Node moves away or waits for: not those of DaemonSets (which
    /// belong on every node), not static pods (the kubelet's own), not finished ones, unless
    /// they are being deleted.
    pub async fn pods_to_evict(&self, node: &str) -> Result<Vec<Pod>> {
        let pods: kube::Api<Pod> = kube::Api::all(self.client.clone());
        let on_node = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
        let list = pods
            .list(&on_node)
            .await
            .with_context(|| format!("listing the pods on {node}"))?;
        Ok(list.items.into_iter().filter(evictable).collect())
    }

    /// Asks the Eviction API to evict the pod: true once asked (or gone), false while a
    /// PodDisruptionBudget does not allow it yet.
    pub async fn evict(&self, namespace: &str, name: &str) -> Result<bool> {
        let pods: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        match pods.evict(name, &Default::default()).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 429 => Ok(false),
            Err(e) => Err(e).with_context(|| format!("evicting pod {namespace}/{name}")),
        }
    }

    /// The names of the Nodes that report Ready.
    pub async fn ready_nodes(&self) -> Result<Vec<String>> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let list = nodes.list(&Default::default()).await?;
        Ok(list
            .items
            .iter()
            .filter(|n| ready_condition(n).is_some_and(|c| c.status == "True"))
            .filter_map(|n| n.metadata.name.clone())
            .collect())
    }
}

/// Whether a drain evicts the pod or waits for it to go: it is running or about to, or being
/// deleted, and neither a DaemonSet's nor a static (mirror) pod. An evicted pod reports a
/// finished phase before the kubelet deletes it: a drain that stopped waiting then would leave
/// it behind for the pod collector once the host is gone.
fn evictable(p: &Pod) -> bool {
    let m = &p.metadata;
    let daemon = m
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = m
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
    !daemon && !mirror && (!finished || m.deletion_timestamp.is_some())
}

/// The Node's Ready condition, once the kubelet has reported one.
fn ready_condition(node: &Node) -> Option<NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .cloned()
}

/// "NAME on NODE: STATE", the state as `kubectl get pods` sums it up, with the last exit.
fn pod_state(p: &Pod) -> String {
    let name = p.metadata.name.as_deref().unwrap_or("?");
    let spec_node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
    let status = p.status.clone().unwrap_or_default();
    let mut state = status.phase.unwrap_or_else(|| "Unknown".into());
    for c in status.container_statuses.unwrap_or_default() {
        let now = c.state.unwrap_or_default();
        if let Some(w) = now.waiting.and_then(|w| w.reason) {
            state = w;
        } else if c.ready {
            continue;
        } else if now.running.is_some() {
            state = "Running, not ready".into();
        }
        if let Some(t) = c.last_state.and_then(|l| l.terminated) {
            state.push_str(&format!(
                " (last exit {}{}, {} restart(s))",
                t.exit_code,
                t.reason.map(|r| format!(" {r}")).unwrap_or_default(),
                c.restart_count
            ));
        }
    }
    match spec_node {
        Some(n) => format!("{name} on {n}: {state}"),
        None => format!("{name}: {state} (not scheduled)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_leaves_daemon_set_static_and_finished_pods() {
        let pod = |meta: serde_json::Value, phase: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": meta, "status": { "phase": phase }
            }))
            .unwrap()
        };
        let owned = |kind: &str| {
            serde_json::json!({ "name": "p", "ownerReferences": [
                { "apiVersion": "apps/v1", "kind": kind, "name": "o", "uid": "u" }] })
        };
        assert!(evictable(&pod(owned("ReplicaSet"), "Running")));
        assert!(evictable(&pod(
            serde_json::json!({ "name": "bare" }),
            "Pending"
        )));
        assert!(!evictable(&pod(owned("DaemonSet"), "Running")));
        assert!(!evictable(&pod(owned("ReplicaSet"), "Succeeded")));
        let stopping = serde_json::json!({ "name": "p",
            "deletionTimestamp": "2026-12-07T00:00:00Z" });
        assert!(evictable(&pod(stopping, "Failed")));
        let mirror = serde_json::json!({ "name": "m",
            "annotations": { "kubernetes.io/config.mirror": "x" } });
        assert!(!evictable(&pod(mirror, "Running")));
    }

    #[test]
    fn a_crashing_pod_says_so_with_its_last_exit() {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "coredns-1" },
            "spec": { "nodeName": "worker-1", "containers": [] },
            "status": { "phase": "Running", "containerStatuses": [{
                "name": "coredns", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                "lastState": { "terminated": { "exitCode": 1, "reason": "Error" } },
            }]},
        }))
        .unwrap();
        assert_eq!(
            pod_state(&p),
            "coredns-1 on worker-1: CrashLoopBackOff (last exit 1 Error, 3 restart(s))"
        );
        let pending: Pod = serde_json::from_value(
            serde_json::json!({ "metadata": { "name": "p" }, "status": { "phase": "Pending" } }),
        )
        .unwrap();
        assert_eq!(pod_state(&pending), "p: Pending (not scheduled)");
    }
}
