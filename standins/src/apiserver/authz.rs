//! Authorization as `--authorization-mode=Node,RBAC` and the NodeRestriction admission plugin
//! decide it, over the ClusterRoles and ClusterRoleBindings stored in etcd.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;

use super::rbac::{binding_applies, resource_path, role_ref, rule_allows, Attributes};
use super::status::ApiError;
use super::store::{name_of, Store, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS};
use crate::identity::Identity;

/// An authorization decision and the reason given for it.
#[derive(Debug)]
pub struct Decision {
    pub allowed: bool,
    pub reason: String,
}

/// The Node authorizer: what kubelets may do beyond RBAC (plugin/pkg/auth/authorizer/node).
/// `None` = no opinion.
fn node_authorizer(node: &str, a: &Attributes) -> Option<Decision> {
    let Attributes::Resource {
        verb,
        group,
        resource,
        subresource,
        namespace,
        name,
    } = a
    else {
        return None;
    };
    let allow = |why: &str| {
        Some(Decision {
            allowed: true,
            reason: format!("Node authorizer: {why}"),
        })
    };
    match (group.as_str(), resource.as_str(), subresource.as_str()) {
        ("", "nodes", "")
            if [
                "get", "list", "watch", "create", "update", "patch", "delete",
            ]
            .contains(&verb.as_str()) =>
        {
            allow("node objects (NodeRestriction limits writes to its own)")
        }
        ("", "nodes", "status") if ["update", "patch"].contains(&verb.as_str()) => {
            allow("node status")
        }
        ("coordination.k8s.io", "leases", "")
            if namespace == "kube-node-lease" && (name == node || verb == "create") =>
        {
            allow("its node lease")
        }
        ("authorization.k8s.io", "subjectaccessreviews", "")
        | ("authentication.k8s.io", "tokenreviews", "")
            if verb == "create" =>
        {
            allow("delegated authentication and authorization checks")
        }
        _ => None,
    }
}

/// The RBAC objects at one moment.
#[derive(Clone, Default)]
pub struct Snapshot {
    bindings: Vec<Value>,
    roles: BTreeMap<String, Value>,
}

/// The last snapshot read from etcd. The real authorizer works from an informer cache, so it
/// keeps answering (and /readyz can report etcd as failed) while etcd is away; this does the same.
#[derive(Default)]
pub struct RbacCache(Mutex<Option<Snapshot>>);

async fn snapshot(store: &Store, cache: &RbacCache) -> Result<Snapshot, ApiError> {
    let read = async {
        let bindings = store.list(&CLUSTER_ROLE_BINDINGS, "").await?;
        let roles = store.list(&CLUSTER_ROLES, "").await?;
        let items = |v: &Value| v["items"].as_array().cloned().unwrap_or_default();
        Ok::<_, ApiError>(Snapshot {
            bindings: items(&bindings),
            roles: items(&roles)
                .into_iter()
                .map(|r| (name_of(&r).to_string(), r))
                .collect(),
        })
    };
    match read.await {
        Ok(s) => {
            if let Ok(mut c) = cache.0.lock() {
                *c = Some(s.clone());
            }
            Ok(s)
        }
        Err(e) => match cache.0.lock().ok().and_then(|c| c.clone()) {
            Some(s) => Ok(s),
            None => Err(e),
        },
    }
}

/// RBAC over the stored ClusterRoleBindings.
async fn rbac(
    store: &Store,
    cache: &RbacCache,
    who: &Identity,
    a: &Attributes,
) -> Result<Option<Decision>, ApiError> {
    let snap = snapshot(store, cache).await?;
    for b in snap.bindings.iter().filter(|b| binding_applies(b, who)) {
        let Some(role_name) = role_ref(b) else {
            continue;
        };
        let Some(role) = snap.roles.get(role_name) else {
            continue;
        };
        if role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| rule_allows(r, a))
        {
            return Ok(Some(Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {role_name:?}",
                    b["metadata"]["name"].as_str().unwrap_or("")
                ),
            }));
        }
    }
    Ok(None)
}

/// The real API server's Forbidden message.
pub fn forbidden_message(who: &Identity, a: &Attributes) -> String {
    match a {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
        } => {
            let res = resource_path(resource, subresource);
            let target = if name.is_empty() {
                format!("{res} is forbidden")
            } else {
                format!("{res} {name:?} is forbidden")
            };
            let scope = if namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace {namespace:?}")
            };
            format!(
                "{target}: User {:?} cannot {verb} resource {res:?} in API group {group:?} {scope}",
                who.user
            )
        }
        Attributes::NonResource { verb, path } => {
            format!("forbidden: User {:?} cannot {verb} path {path:?}", who.user)
        }
    }
}

/// Node, then RBAC: the first to allow wins; nobody allowing means forbidden.
pub async fn authorize(
    store: &Store,
    cache: &RbacCache,
    who: &Identity,
    a: &Attributes,
) -> Result<Decision, ApiError> {
    if let Some(node) = who.node_name() {
        if let Some(d) = node_authorizer(node, a) {
            return Ok(d);
        }
    }
    if let Some(d) = rbac(store, cache, who, a).await? {
        return Ok(d);
    }
    Ok(Decision {
        allowed: false,
        reason: forbidden_message(who, a),
    })
}

/// NodeRestriction: a kubelet may only write its own Node and its own Lease.
pub fn node_restriction(
    who: &Identity,
    a: &Attributes,
    body_name: Option<&str>,
) -> Result<(), ApiError> {
    let (
        Some(node),
        Attributes::Resource {
            verb,
            resource,
            name,
            ..
        },
    ) = (who.node_name(), a)
    else {
        return Ok(());
    };
    if !["create", "update", "patch", "delete"].contains(&verb.as_str()) {
        return Ok(());
    }
    let target = if name.is_empty() {
        body_name.unwrap_or("")
    } else {
        name.as_str()
    };
    match resource.as_str() {
        "nodes" if target != node => Err(ApiError::forbidden(format!(
            "nodes {target:?} is forbidden: node {node:?} is not allowed to modify node {target:?}"
        ))),
        "leases" if target != node => Err(ApiError::forbidden(format!(
            "leases.coordination.k8s.io {target:?} is forbidden: can only access node lease with the same name as the requesting node"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_id(n: &str) -> Identity {
        Identity {
            user: format!("system:node:{n}"),
            groups: vec!["system:nodes".into(), "system:authenticated".into()],
        }
    }

    fn nodes(verb: &str, sub: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: String::new(),
            resource: "nodes".into(),
            subresource: sub.into(),
            namespace: String::new(),
            name: name.into(),
        }
    }

    #[test]
    fn nodes_read_all_and_write_their_own() {
        assert!(node_authorizer("n1", &nodes("list", "", "")).is_some());
        assert!(node_authorizer("n1", &nodes("patch", "status", "n1")).is_some());
        assert!(node_authorizer("n1", &nodes("get", "proxy", "n1")).is_none());
        let who = node_id("n1");
        assert!(node_restriction(&who, &nodes("patch", "status", "n1"), None).is_ok());
        let e = node_restriction(&who, &nodes("update", "status", "n2"), None).unwrap_err();
        assert_eq!(e.code, 403);
        assert!(e.message.contains("not allowed to modify node \"n2\""));
        assert!(node_restriction(&who, &nodes("create", "", ""), Some("n2")).is_err());
        assert!(node_restriction(&who, &nodes("create", "", ""), Some("n1")).is_ok());
    }

    #[test]
    fn forbidden_messages_match_the_real_wording() {
        let who = Identity {
            user: "kubernetes-admin".into(),
            groups: vec![],
        };
        assert_eq!(
            forbidden_message(&who, &nodes("list", "", "")),
            "nodes is forbidden: User \"kubernetes-admin\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }
}
