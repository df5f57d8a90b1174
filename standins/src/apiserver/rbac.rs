//! RBAC: the bootstrap ClusterRoles and ClusterRoleBindings the real API server creates at
//! startup (only those the provisioner's components touch), and the rule evaluation over the
//! ClusterRoleBindings stored in etcd. Namespaced Roles are not modelled.

use serde_json::{json, Value};

use crate::identity::Identity;

/// What is being asked, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        group: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

/// `resource` or `resource/subresource`, the form RBAC rules and messages use.
pub fn resource_path(resource: &str, subresource: &str) -> String {
    if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    }
}

impl std::fmt::Display for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attributes::Resource {
                verb,
                group,
                resource,
                subresource,
                namespace,
                name,
            } => {
                let res = resource_path(resource, subresource);
                let group = if group.is_empty() { "\"\"" } else { group };
                write!(f, "{verb} {res} (group {group})")?;
                if !namespace.is_empty() {
                    write!(f, " in namespace {namespace}")?;
                }
                if !name.is_empty() {
                    write!(f, " named {name:?}")?;
                }
                Ok(())
            }
            Attributes::NonResource { verb, path } => write!(f, "{verb} {path}"),
        }
    }
}

fn has(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array).is_some_and(|l| {
        l.iter()
            .any(|v| v.as_str() == Some(want) || v.as_str() == Some("*"))
    })
}

fn is_empty(list: Option<&Value>) -> bool {
    list.and_then(Value::as_array).is_none_or(|l| l.is_empty())
}

/// Whether one PolicyRule allows the request (k8s.io/component-helpers/auth/rbac/validation).
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    match a {
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            name,
            ..
        } => {
            let combined = resource_path(resource, subresource);
            let resources = rule.get("resources").and_then(Value::as_array);
            let resource_ok = resources.is_some_and(|rs| {
                rs.iter().filter_map(Value::as_str).any(|r| {
                    r == "*"
                        || r == combined
                        || (!subresource.is_empty() && r == format!("*/{subresource}"))
                        || (!subresource.is_empty() && r == format!("{resource}/*"))
                })
            });
            let names = rule.get("resourceNames");
            has(rule.get("verbs"), verb)
                && has(rule.get("apiGroups"), group)
                && resource_ok
                && (is_empty(names) || (!name.is_empty() && has(names, name)))
        }
        Attributes::NonResource { verb, path } => {
            has(rule.get("verbs"), verb)
                && rule
                    .get("nonResourceURLs")
                    .and_then(Value::as_array)
                    .is_some_and(|urls| {
                        urls.iter().filter_map(Value::as_str).any(|u| {
                            u == "*"
                                || u == path
                                || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))
                        })
                    })
        }
    }
}

/// Whether a ClusterRoleBinding's subjects include this identity.
pub fn binding_applies(binding: &Value, who: &Identity) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                let name = s.get("name").and_then(Value::as_str).unwrap_or("");
                match s.get("kind").and_then(Value::as_str) {
                    Some("User") => name == who.user,
                    Some("Group") => who.in_group(name),
                    // Service accounts authenticate with tokens, which this API server does not
                    // accept: such a subject never matches a certificate user.
                    _ => false,
                }
            })
        })
}

/// The ClusterRole a binding refers to, if it refers to one.
pub fn role_ref(binding: &Value) -> Option<&str> {
    let r = binding.get("roleRef")?;
    (r.get("kind").and_then(Value::as_str) == Some("ClusterRole"))
        .then(|| r.get("name").and_then(Value::as_str))
        .flatten()
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

fn named_rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "resourceNames": names, "verbs": verbs })
}

/// The controller-manager's and the scheduler's roles, reduced to what their stand-ins do: hold
/// their own lease, read nodes, and delegate authentication and authorization to the API server.
fn control_plane_role(component: &str) -> Value {
    cluster_role(
        &format!("system:{component}"),
        vec![
            rule(&[COORD], &["leases"], &["create"]),
            named_rule(&[COORD], &["leases"], &[component], &["get", "update"]),
            rule(&[""], &["nodes"], READ),
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
        ],
    )
}

fn cluster_role(name: &str, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" }
        },
        "rules": rules,
    })
}

fn binding(name: &str, role: &str, kind: &str, subjects: &[&str]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|s| json!({ "apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": s }))
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": { "kubernetes.io/bootstrapping": "rbac-defaults" },
            "annotations": { "rbac.authorization.kubernetes.io/autoupdate": "true" }
        },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": subjects,
    })
}

const READ: &[&str] = &["get", "list", "watch"];
const COORD: &str = "coordination.k8s.io";

/// The bootstrap ClusterRoles (subset of plugin/pkg/auth/authorizer/rbac/bootstrappolicy).
pub fn bootstrap_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            vec![
                rule(&["*"], &["*"], &["*"]),
                json!({ "nonResourceURLs": ["*"], "verbs": ["*"] }),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            vec![json!({
                "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                "verbs": ["get"]
            })],
        ),
        cluster_role(
            "system:discovery",
            vec![json!({
                "nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                    "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                "verbs": ["get"]
            })],
        ),
        cluster_role(
            "system:kubelet-api-admin",
            vec![
                rule(&[""], &["nodes"], &["get", "list", "watch", "proxy"]),
                rule(
                    &[""],
                    &[
                        "nodes/log",
                        "nodes/metrics",
                        "nodes/proxy",
                        "nodes/stats",
                        "nodes/configz",
                        "nodes/healthz",
                        "nodes/pods",
                    ],
                    &["*"],
                ),
            ],
        ),
        control_plane_role("kube-controller-manager"),
        control_plane_role("kube-scheduler"),
        cluster_role("system:node-proxier", vec![rule(&[""], &["nodes"], READ)]),
    ]
}

/// The bootstrap ClusterRoleBindings. Note what is absent, as in a real cluster: nothing binds
/// kubeadm:cluster-admins or the API server's kubelet client; the installer creates those.
pub fn bootstrap_bindings() -> Vec<Value> {
    vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            "Group",
            &["system:masters"],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            "Group",
            &["system:authenticated", "system:unauthenticated"],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            "Group",
            &["system:authenticated"],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            "User",
            &["system:kube-controller-manager"],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            "User",
            &["system:kube-scheduler"],
        ),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            "User",
            &["system:kube-proxy"],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: String::new(),
            name: name.into(),
        }
    }

    fn role(name: &str) -> Value {
        bootstrap_roles()
            .into_iter()
            .find(|r| r["metadata"]["name"] == name)
            .unwrap()
    }

    fn allows(role_name: &str, a: &Attributes) -> bool {
        role(role_name)["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| rule_allows(r, a))
    }

    #[test]
    fn cluster_admin_allows_everything() {
        assert!(allows(
            "cluster-admin",
            &res("delete", "apps", "deployments", "", "x")
        ));
        let path = Attributes::NonResource {
            verb: "get".into(),
            path: "/metrics".into(),
        };
        assert!(allows("cluster-admin", &path));
    }

    #[test]
    fn resource_names_restrict_get_but_never_match_create() {
        let cm = "system:kube-controller-manager";
        assert!(allows(
            cm,
            &res("get", COORD, "leases", "", "kube-controller-manager")
        ));
        assert!(!allows(
            cm,
            &res("get", COORD, "leases", "", "kube-scheduler")
        ));
        assert!(allows(cm, &res("create", COORD, "leases", "", "")));
        assert!(!allows(
            cm,
            &res("delete", COORD, "leases", "", "kube-controller-manager")
        ));
    }

    #[test]
    fn kubelet_api_admin_covers_node_proxy_and_healthz() {
        let r = "system:kubelet-api-admin";
        assert!(allows(r, &res("get", "", "nodes", "proxy", "n1")));
        assert!(allows(r, &res("get", "", "nodes", "healthz", "n1")));
        assert!(!allows(r, &res("delete", "", "nodes", "", "n1")));
    }

    #[test]
    fn non_resource_prefixes() {
        let a = |p: &str| Attributes::NonResource {
            verb: "get".into(),
            path: p.into(),
        };
        assert!(allows(
            "system:discovery",
            &a("/apis/rbac.authorization.k8s.io/v1")
        ));
        assert!(allows("system:public-info-viewer", &a("/readyz")));
        assert!(!allows("system:public-info-viewer", &a("/metrics")));
    }

    #[test]
    fn bindings_match_users_and_groups() {
        let who = Identity {
            user: "kubernetes-admin".into(),
            groups: vec!["kubeadm:cluster-admins".into()],
        };
        let b = binding("x", "cluster-admin", "Group", &["kubeadm:cluster-admins"]);
        assert!(binding_applies(&b, &who));
        assert_eq!(role_ref(&b), Some("cluster-admin"));
        let u = binding("y", "cluster-admin", "User", &["someone-else"]);
        assert!(!binding_applies(&u, &who));
    }
}
