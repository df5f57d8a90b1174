//! Objects in etcd as JSON under `/registry/...`, with the API server's metadata handling:
//! uid and creationTimestamp on create, resourceVersion = etcd mod revision, optimistic
//! concurrency on update.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::etcd::{Etcd, Write};
use super::status::ApiError;

/// A resource type the stand-in serves.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    /// etcd key prefix (the real API server's, e.g. nodes live under "minions").
    pub prefix: &'static str,
}

pub const NODES: Kind = Kind {
    group: "",
    version: "v1",
    kind: "Node",
    plural: "nodes",
    namespaced: false,
    prefix: "/registry/minions/",
};
pub const CLUSTER_ROLES: Kind = Kind {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRole",
    plural: "clusterroles",
    namespaced: false,
    prefix: "/registry/clusterroles/",
};
pub const CLUSTER_ROLE_BINDINGS: Kind = Kind {
    group: "rbac.authorization.k8s.io",
    version: "v1",
    kind: "ClusterRoleBinding",
    plural: "clusterrolebindings",
    namespaced: false,
    prefix: "/registry/clusterrolebindings/",
};
pub const LEASES: Kind = Kind {
    group: "coordination.k8s.io",
    version: "v1",
    kind: "Lease",
    plural: "leases",
    namespaced: true,
    prefix: "/registry/leases/",
};

pub const KINDS: [&Kind; 4] = [&NODES, &CLUSTER_ROLES, &CLUSTER_ROLE_BINDINGS, &LEASES];

/// The namespaces every cluster starts with; Namespace objects are not modelled.
pub const NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `nodes` or `leases.coordination.k8s.io`, as Status messages name resources.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    fn key(&self, namespace: &str, name: &str) -> String {
        if self.namespaced {
            format!("{}{namespace}/{name}", self.prefix)
        } else {
            format!("{}{name}", self.prefix)
        }
    }

    fn list_prefix(&self, namespace: &str) -> String {
        if self.namespaced && !namespace.is_empty() {
            format!("{}{namespace}/", self.prefix)
        } else {
            self.prefix.to_string()
        }
    }
}

/// A DNS-1123 subdomain (node and lease names).
pub fn valid_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A name usable as a path segment (RBAC names may hold ':').
fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn metadata(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

fn random_uid() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // SystemRandom only fails when the OS has no entropy source; a zero uid is still unique
    // enough for a stand-in in that case.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub struct Store {
    pub etcd: Etcd,
}

fn decode(kind: &Kind, kv: &super::etcd::Kv) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
        ApiError::internal(format!(
            "stored {} {} is not JSON: {e}",
            kind.plural, kv.key
        ))
    })?;
    metadata(&mut obj).insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
    Ok(obj)
}

fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&o).unwrap_or_default()
}

impl Store {
    pub async fn get(&self, kind: &Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        match self.etcd.get(&kind.key(ns, name)).await? {
            Some(kv) => decode(kind, &kv),
            None => Err(ApiError::not_found(kind, name)),
        }
    }

    pub async fn list(&self, kind: &Kind, ns: &str) -> Result<Value, ApiError> {
        let (kvs, revision) = self.etcd.list(&kind.list_prefix(ns)).await?;
        let items = kvs
            .iter()
            .map(|kv| decode(kind, kv))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": { "resourceVersion": revision.to_string() },
            "items": items,
        }))
    }

    /// Checks the body against the URL and fills in what the decoder would default.
    fn admit_body(
        kind: &Kind,
        ns: &str,
        url_name: Option<&str>,
        obj: &mut Value,
    ) -> Result<(), ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "{} body is not a JSON object",
                kind.kind
            )));
        }
        let want_version = kind.api_version();
        match obj.get("apiVersion").and_then(Value::as_str) {
            None => obj["apiVersion"] = json!(want_version),
            Some(v) if v == want_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want_version})"
                )))
            }
        }
        match obj.get("kind").and_then(Value::as_str) {
            None => obj["kind"] = json!(kind.kind),
            Some(k) if k == kind.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    kind.kind
                )))
            }
        }
        let name = name_of(obj).to_string();
        if let Some(url_name) = url_name {
            if name.is_empty() {
                metadata(obj).insert("name".into(), json!(url_name));
            } else if name != url_name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({url_name})"
                )));
            }
        }
        let name = name_of(obj).to_string();
        let valid = if kind.group == "rbac.authorization.k8s.io" {
            valid_path_segment(&name)
        } else {
            valid_subdomain(&name)
        };
        if !valid {
            return Err(ApiError::invalid(
                kind,
                &name,
                format!("metadata.name: Invalid value: {name:?}: must be a valid name (lowercase RFC 1123 subdomain)"),
            ));
        }
        if kind.namespaced {
            match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                None | Some("") => {
                    metadata(obj).insert("namespace".into(), json!(ns));
                }
                Some(n) if n == ns => {}
                Some(n) => {
                    return Err(ApiError::bad_request(format!(
                        "the namespace of the provided object ({n}) does not match the namespace sent on the request ({ns})"
                    )))
                }
            }
        }
        Ok(())
    }

    pub async fn create(&self, kind: &Kind, ns: &str, mut obj: Value) -> Result<Value, ApiError> {
        Self::admit_body(kind, ns, None, &mut obj)?;
        let name = name_of(&obj).to_string();
        let meta = metadata(&mut obj);
        meta.insert("uid".into(), json!(random_uid()));
        meta.insert("creationTimestamp".into(), json!(crate::timefmt::now()));
        match self
            .etcd
            .create(&kind.key(ns, &name), &encode(&obj))
            .await?
        {
            Write::Done(rev) => {
                metadata(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
                Ok(obj)
            }
            Write::Conflict | Write::Missing => Err(ApiError::already_exists(kind, &name)),
        }
    }

    /// Replaces an object. `keep_status`: updates of the main resource leave `status` alone and
    /// updates of `/status` leave everything else alone, as for the real Node.
    pub async fn update(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
    ) -> Result<Value, ApiError> {
        Self::admit_body(kind, ns, Some(name), &mut obj)?;
        let current = self.get(kind, ns, name).await?;
        let current_rv: i64 = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let expected = match obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            Some(rv) if !rv.is_empty() => {
                let rv: i64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                Some(rv)
            }
            // Unconditional update: guard against a racing writer all the same.
            _ => Some(current_rv),
        };
        let mut next = match subresource {
            Some("status") => {
                let mut n = current.clone();
                n["status"] = obj.get("status").cloned().unwrap_or(json!({}));
                n
            }
            _ => {
                let mut n = obj;
                if kind == &NODES {
                    n["status"] = current.get("status").cloned().unwrap_or(json!({}));
                }
                // uid and creationTimestamp are the server's.
                let cur_meta = current.get("metadata").cloned().unwrap_or(json!({}));
                let meta = metadata(&mut n);
                for k in ["uid", "creationTimestamp"] {
                    if let Some(v) = cur_meta.get(k) {
                        meta.insert(k.into(), v.clone());
                    }
                }
                n
            }
        };
        match self
            .etcd
            .update(&kind.key(ns, name), &encode(&next), expected)
            .await?
        {
            Write::Done(rev) => {
                metadata(&mut next).insert("resourceVersion".into(), json!(rev.to_string()));
                Ok(next)
            }
            Write::Conflict => Err(ApiError::conflict(kind, name)),
            Write::Missing => Err(ApiError::not_found(kind, name)),
        }
    }

    pub async fn delete(&self, kind: &Kind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let current = self.get(kind, ns, name).await?;
        if !self.etcd.delete(&kind.key(ns, name)).await? {
            return Err(ApiError::not_found(kind, name));
        }
        Ok(current)
    }
}
