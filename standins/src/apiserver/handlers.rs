//! Request routing: RequestInfo parsing, authorization, admission, then the few resources the
//! stand-in serves.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::audit::Audit;
use super::authz::{authorize, forbidden_message, node_restriction};
use super::kubelet_link::KubeletLink;
use super::rbac::Attributes;
use super::status::ApiError;
use super::store::{name_of, Kind, Store, KINDS, NAMESPACES, NODES};
use crate::identity::Identity;
use crate::net::{Request, Response};
use crate::say;

pub struct Server {
    pub store: Store,
    pub rbac: super::authz::RbacCache,
    pub audit: Option<Audit>,
    pub kubelet: KubeletLink,
    /// advertise-address:secure-port, for discovery's serverAddressByClientCIDRs.
    pub advertise: String,
}

/// The request as RBAC sees it (k8s.io/apiserver RequestInfo), plus the API version.
struct Info {
    attrs: Attributes,
    version: String,
    /// Path after `proxy/` for the nodes/proxy subresource.
    proxy_path: String,
}

fn verb_for(method: &str, has_name: bool, watch: bool) -> &'static str {
    match (method, has_name) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn request_info(req: &Request) -> Info {
    let path = req.path.clone();
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let non_resource = |method: &str| Info {
        attrs: Attributes::NonResource {
            verb: method.to_ascii_lowercase().replace("head", "get"),
            path: path.clone(),
        },
        version: String::new(),
        proxy_path: String::new(),
    };
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return non_resource(&req.method),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        _ => (String::new(), rest),
    };
    let resource = rest[0].to_string();
    let name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    let subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    let proxy_path = if rest.len() > 3 {
        format!("/{}", rest[3..].join("/"))
    } else {
        "/".to_string()
    };
    let watch = req
        .query_param("watch")
        .is_some_and(|w| w == "true" || w == "1");
    Info {
        attrs: Attributes::Resource {
            verb: verb_for(&req.method, !name.is_empty(), watch).to_string(),
            group: group.to_string(),
            resource,
            subresource,
            namespace,
            name,
        },
        version: version.to_string(),
        proxy_path,
    }
}

/// Paths every authenticated user may read (system:public-info-viewer).
fn is_public(path: &str) -> bool {
    ["/livez", "/readyz", "/healthz", "/version"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

pub async fn handle(srv: Arc<Server>, req: Request) -> Response {
    let received = crate::timefmt::now_micro();
    // The TLS layer requires a verified client certificate, so there always is a peer.
    let Some(who) = req.peer.clone() else {
        return Response::json(
            401,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        );
    };
    let info = request_info(&req);
    let resp = match dispatch(&srv, &req, &who, &info).await {
        Ok(r) => r,
        Err(e) => e.response(),
    };
    if let Some(audit) = &srv.audit {
        let uri = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        audit.record(
            &who,
            &info.attrs,
            &uri,
            &req.remote.ip().to_string(),
            resp.status,
            &received,
        );
    }
    resp
}

async fn dispatch(
    srv: &Server,
    req: &Request,
    who: &Identity,
    info: &Info,
) -> Result<Response, ApiError> {
    if !is_public(&req.path) {
        if let Err(why) = who.expected_form() {
            say!(
                "refused {} {} from {}: unexpected client identity {who}: {why}",
                req.method,
                req.path,
                req.remote
            );
            return Err(ApiError::forbidden(format!(
                "{} (stand-in: unexpected client identity {who})",
                forbidden_message(who, &info.attrs)
            )));
        }
    }
    let decision = authorize(&srv.store, &srv.rbac, who, &info.attrs).await?;
    if !decision.allowed {
        say!("forbidden: {who}: {}", info.attrs);
        return Err(ApiError::forbidden(decision.reason));
    }
    match &info.attrs {
        Attributes::NonResource { path, .. } => non_resource(srv, req, path).await,
        Attributes::Resource { .. } => resource(srv, req, who, info).await,
    }
}

async fn non_resource(srv: &Server, req: &Request, path: &str) -> Result<Response, ApiError> {
    let verbose = req.query_param("verbose").is_some();
    match path.trim_end_matches('/') {
        "/livez" | "/livez/ping" | "/healthz/ping" | "/readyz/ping" => {
            Ok(Response::text(200, "ok"))
        }
        "/readyz" | "/healthz" | "/readyz/etcd" | "/healthz/etcd" | "/livez/etcd" => {
            let probe = tokio::time::timeout(Duration::from_secs(3), srv.store.etcd.probe()).await;
            let etcd = match probe {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("etcd probe timed out".to_string()),
            };
            let check = path
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or("readyz");
            match etcd {
                Ok(()) if verbose => Ok(Response::text(
                    200,
                    format!("[+]ping ok\n[+]etcd ok\n[+]poststarthook/rbac/bootstrap-roles ok\n{check} check passed (stand-in)\n"),
                )),
                Ok(()) => Ok(Response::text(200, "ok")),
                Err(e) => {
                    say!("{check}: etcd not ready: {e}");
                    Ok(Response::text(500, format!("[+]ping ok\n[-]etcd failed: {e}\n{check} check failed\n")))
                }
            }
        }
        "/version" => Ok(Response::json(200, &version_info())),
        "/api" => Ok(Response::json(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": srv.advertise}]}),
        )),
        "/apis" => Ok(Response::json(200, &group_list())),
        p => match discovery(p) {
            Some(v) => Ok(Response::json(200, &v)),
            None => Err(ApiError::not_found_path(p)),
        },
    }
}

pub fn version_info() -> Value {
    let v = crate::version::version();
    json!({
        "major": crate::version::major(),
        "minor": crate::version::minor().to_string(),
        "gitVersion": crate::version::git_version(),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none (stand-in written in Rust)",
        "compiler": "rustc",
        "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
        "standIn": true,
        "standInNote": format!("provisioner test stand-in claiming Kubernetes {v}; not the real kube-apiserver"),
    })
}

fn group_list() -> Value {
    let mut groups: Vec<&str> = KINDS
        .iter()
        .map(|k| k.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.push("authorization.k8s.io");
    groups.dedup();
    let groups: Vec<Value> = groups
        .iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn discovery(path: &str) -> Option<Value> {
    let gv = path
        .strip_prefix("/api/")
        .or_else(|| path.strip_prefix("/apis/"))?;
    let mut resources: Vec<Value> = KINDS
        .iter()
        .filter(|k| k.api_version() == gv)
        .flat_map(|k| {
            let verbs = json!(["create", "delete", "get", "list", "patch", "update"]);
            let main = json!({"name": k.plural, "singularName": k.kind.to_lowercase(),
                              "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs});
            let mut out = vec![main];
            if *k == &NODES {
                out.push(
                    json!({"name": "nodes/status", "singularName": "", "namespaced": false,
                                "kind": "Node", "verbs": ["get", "patch", "update"]}),
                );
                out.push(
                    json!({"name": "nodes/proxy", "singularName": "", "namespaced": false,
                                "kind": "NodeProxyOptions", "verbs": ["get"]}),
                );
            }
            out
        })
        .collect();
    if gv == "authorization.k8s.io/v1" {
        resources.push(json!({"name": "subjectaccessreviews", "singularName": "subjectaccessreview",
                              "namespaced": false, "kind": "SubjectAccessReview", "verbs": ["create"]}));
    }
    (!resources.is_empty()).then(|| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
    })
}

fn parse_body(req: &Request) -> Result<Value, ApiError> {
    let ct = req.content_type().split(';').next().unwrap_or("").trim();
    // Bodies are JSON only: kubectl's typed create commands send protobuf, which the stand-in
    // refuses plainly rather than misreading (`kubectl create -f x.json` sends JSON).
    if ct.contains("protobuf") || ct.contains("cbor") || ct.contains("yaml") {
        return Err(ApiError::unsupported_media(format!(
            "the stand-in API server accepts JSON bodies only, not {ct:?}"
        )));
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

async fn resource(
    srv: &Server,
    req: &Request,
    who: &Identity,
    info: &Info,
) -> Result<Response, ApiError> {
    let Attributes::Resource {
        verb,
        group,
        resource,
        subresource,
        namespace,
        name,
    } = &info.attrs
    else {
        return Err(ApiError::internal("not a resource request".into()));
    };
    if group == "authorization.k8s.io" && info.version == "v1" && resource == "subjectaccessreviews"
    {
        return match verb.as_str() {
            "create" => subject_access_review(srv, req).await,
            _ => Err(ApiError::method_not_allowed(format!(
                "{verb} is not supported on subjectaccessreviews"
            ))),
        };
    }
    let Some(kind) = KINDS
        .iter()
        .copied()
        .find(|k| k.group == group && k.version == info.version && k.plural == resource)
    else {
        return Err(ApiError::not_found_path(&req.path));
    };
    if kind.namespaced && !namespace.is_empty() && !NAMESPACES.contains(&namespace.as_str()) {
        return Err(ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("namespaces {namespace:?} not found"),
            details: Some(json!({"name": namespace, "kind": "namespaces"})),
        });
    }
    if !kind.namespaced && !namespace.is_empty() {
        return Err(ApiError::not_found_path(&req.path));
    }
    let body_name = if matches!(verb.as_str(), "create") {
        parse_body(req).ok().map(|b| name_of(&b).to_string())
    } else {
        None
    };
    node_restriction(who, &info.attrs, body_name.as_deref())?;
    let store = &srv.store;
    match (subresource.as_str(), verb.as_str()) {
        ("proxy", _) if kind == &NODES => {
            let node = store.get(kind, "", name).await?;
            let mut path = info.proxy_path.clone();
            if !req.query.is_empty() {
                path = format!("{path}?{}", req.query);
            }
            srv.kubelet.proxy(&node, &req.method, &path).await
        }
        ("" | "status", "get") if subresource.is_empty() || kind == &NODES => Ok(Response::json(
            200,
            &store.get(kind, namespace, name).await?,
        )),
        ("", "list") => Ok(Response::json(200, &store.list(kind, namespace).await?)),
        ("", "watch") => Err(ApiError::method_not_allowed(
            "watch is not supported by the stand-in API server".into(),
        )),
        ("", "create") => {
            let created = store.create(kind, namespace, parse_body(req)?).await?;
            say!(
                "created {} {:?} for {who}",
                kind.qualified(),
                name_of(&created)
            );
            Ok(Response::json(201, &created))
        }
        ("" | "status", "update") if subresource.is_empty() || kind == &NODES => {
            let sub = (!subresource.is_empty()).then_some(subresource.as_str());
            Ok(Response::json(
                200,
                &store
                    .update(kind, namespace, name, parse_body(req)?, sub)
                    .await?,
            ))
        }
        ("" | "status", "patch") if subresource.is_empty() || kind == &NODES => {
            let sub = (!subresource.is_empty()).then_some(subresource.as_str());
            patch(store, kind, namespace, name, req, sub).await
        }
        ("", "delete") => {
            store.delete(kind, namespace, name).await?;
            say!("deleted {} {name:?} for {who}", kind.qualified());
            Ok(Response::json(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "kind": kind.plural}}),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{verb} {}{} is not supported by the stand-in API server",
            kind.plural,
            if subresource.is_empty() {
                String::new()
            } else {
                format!("/{subresource}")
            }
        ))),
    }
}

async fn patch(
    store: &Store,
    kind: &Kind,
    ns: &str,
    name: &str,
    req: &Request,
    sub: Option<&str>,
) -> Result<Response, ApiError> {
    let strategic = match req.content_type().split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" => false,
        "application/strategic-merge-patch+json" => true,
        other => {
            return Err(ApiError::unsupported_media(format!(
                "the stand-in API server supports merge and strategic merge patches, not {other:?}"
            )))
        }
    };
    let p = parse_body(req)?;
    let pinned = p.pointer("/metadata/resourceVersion").is_some();
    // Like the real server, retry a patch that does not pin a resourceVersion when a concurrent
    // write got in between.
    for _ in 0..5 {
        let mut obj = store.get(kind, ns, name).await?;
        super::patch::apply(&mut obj, &p, strategic);
        match store.update(kind, ns, name, obj, sub).await {
            Err(e) if e.reason == "Conflict" && !pinned => continue,
            r => return Ok(Response::json(200, &r?)),
        }
    }
    Err(ApiError::conflict(kind, name))
}

/// SubjectAccessReview: asks the same authorizers about someone else (the kubelet's webhook).
async fn subject_access_review(srv: &Server, req: &Request) -> Result<Response, ApiError> {
    let mut sar = parse_body(req)?;
    let spec = sar.get("spec").cloned().unwrap_or(json!({}));
    let s = |v: Option<&Value>, k: &str| {
        v.and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ra = spec.get("resourceAttributes");
    let nra = spec.get("nonResourceAttributes");
    let attrs = match (ra, nra) {
        (Some(_), None) => Attributes::Resource {
            verb: s(ra, "verb"),
            group: s(ra, "group"),
            resource: s(ra, "resource"),
            subresource: s(ra, "subresource"),
            namespace: s(ra, "namespace"),
            name: s(ra, "name"),
        },
        (None, Some(_)) => Attributes::NonResource {
            verb: s(nra, "verb"),
            path: s(nra, "path"),
        },
        _ => {
            return Err(ApiError {
                code: 422,
                reason: "Invalid",
                message: "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: \
                          Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified"
                    .into(),
                details: None,
            })
        }
    };
    let subject = Identity {
        user: s(Some(&spec), "user"),
        groups: spec["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
    };
    if subject.user.is_empty() && subject.groups.is_empty() {
        return Err(ApiError {
            code: 422,
            reason: "Invalid",
            message: "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": \
                      at least one of user or group must be specified"
                .into(),
            details: None,
        });
    }
    let d = authorize(&srv.store, &srv.rbac, &subject, &attrs).await?;
    say!(
        "SubjectAccessReview: {subject} {attrs}: {}",
        if d.allowed { "allowed" } else { "denied" }
    );
    sar["apiVersion"] = json!("authorization.k8s.io/v1");
    sar["kind"] = json!("SubjectAccessReview");
    sar["status"] = if d.allowed {
        json!({"allowed": true, "reason": d.reason})
    } else {
        json!({"allowed": false})
    };
    Ok(Response::json(201, &sar))
}
