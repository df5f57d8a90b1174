//! The rbac phase: the cluster role bindings a hard-way cluster needs, applied as super-admin.
use std::time::Instant;

use anyhow::Result;
use kube::core::DynamicObject;
use serde_json::json;

use super::super::remote::Remote;
use super::Gates;
use crate::inventory::PolicyEngine;

impl<R: Remote> Gates<'_, R> {
    /// The bindings a hard-way cluster needs that Kubernetes does not create itself: the admin
    /// group to cluster-admin, the API server's kubelet client to the kubelet API, and the
    /// nodes to renewing their own client certificates; kube-router, when it enforces
    /// NetworkPolicy, to reading what it enforces (removed when it does not). Applied as
    /// super-admin, whose group needs no binding (the admin's only works after this).
    pub(super) async fn rbac(&self) -> Result<()> {
        let host = self.api_host();
        self.rep.start(Some(host), "cluster role bindings");
        let t = Instant::now();
        let api = self.api(&self.super_admin()).await?;
        for doc in cluster_role_bindings() {
            api.apply(&doc).await?;
        }
        // Without kube-router its role goes too: nothing else may act as it.
        for doc in kube_router_role() {
            match self.inp.cluster.network.policy {
                PolicyEngine::KubeRouter => drop(api.apply(&doc).await?),
                PolicyEngine::None => api.delete(&doc).await?,
            };
        }
        self.rep.step(
            "rbac",
            Some(host),
            "cluster role bindings",
            t.elapsed(),
            "ok",
            None,
        );
        Ok(())
    }
}

/// What kube-router's network policy controller reads, and no more (upstream's role for the
/// whole of kube-router also writes leases and Service status, for parts not run here).
fn kube_router_role() -> Vec<DynamicObject> {
    let name = "provisioner:kube-router";
    let labels = json!({ "app.kubernetes.io/managed-by": "provisioner" });
    let read = json!(["get", "list", "watch"]);
    [
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": name, "labels": labels },
            "rules": [
                { "apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"], "verbs": read },
                { "apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": read },
                { "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": read },
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name, "labels": labels },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
            "subjects": [{
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": crate::pki::KUBE_ROUTER_USER,
            }],
        }),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).expect("a well-formed object"))
    .collect()
}

/// The admin group to cluster-admin; the API server's kubelet client to the kubelet API; the
/// nodes to asking for their own client certificates, which the controller-manager then approves
/// (a kubelet may ask only for its own name: the approver checks the request against it).
fn cluster_role_bindings() -> Vec<DynamicObject> {
    let binding = |name: &str, role: &str, user_or_group: (&str, &str)| {
        serde_json::from_value(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": name, "labels": { "app.kubernetes.io/managed-by": "provisioner" } },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
            "subjects": [{
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": user_or_group.0,
                "name": user_or_group.1,
            }],
        }))
        .expect("a well-formed object")
    };
    vec![
        binding(
            crate::pki::ADMIN_GROUP,
            "cluster-admin",
            ("Group", crate::pki::ADMIN_GROUP),
        ),
        binding(
            "provisioner:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            ("User", "kube-apiserver-kubelet-client"),
        ),
        binding(
            "provisioner:node-client-certificate-renewal",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            ("Group", "system:nodes"),
        ),
    ]
}
