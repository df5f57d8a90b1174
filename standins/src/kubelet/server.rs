//! The kubelet's servers: HTTPS on 10250 (client certificates from clientCAFile, every request
//! authorized by a SubjectAccessReview to the API server, as authorization.mode=Webhook does)
//! and plain-HTTP /healthz on 127.0.0.1:10248.

use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::{json, Value};

use crate::apiclient::{status_message, ApiClient};
use crate::identity::Identity;
use crate::net::{self, Request, Response};
use crate::say;

/// The subresources the real kubelet checks for a path (with KubeletFineGrainedAuthz, on by
/// default since 1.33: the specific one first, then `proxy`).
pub fn subresources(path: &str) -> Vec<&'static str> {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "stats" => vec!["stats"],
        "metrics" => vec!["metrics"],
        "logs" => vec!["log"],
        "checkpoint" => vec!["checkpoint"],
        "healthz" => vec!["healthz", "proxy"],
        "pods" | "runningpods" => vec!["pods", "proxy"],
        "configz" => vec!["configz", "proxy"],
        _ => vec!["proxy"],
    }
}

fn verb(method: &str) -> &'static str {
    match method {
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "get",
    }
}

/// Asks the API server whether `who` may `verb` nodes/<sub> of this node.
async fn allowed(
    client: &ApiClient,
    node: &str,
    who: &Identity,
    verb: &str,
    sub: &str,
) -> Result<bool> {
    let sar = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who.user,
            "groups": who.groups,
            "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": sub, "name": node, "version": "v1"},
        },
    });
    let r = client
        .request(
            "POST",
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            Some(&sar),
        )
        .await?;
    if r.status != 201 && r.status != 200 {
        anyhow::bail!(
            "SubjectAccessReview: HTTP {} {}",
            r.status,
            status_message(&r)
        );
    }
    Ok(r.json()?
        .pointer("/status/allowed")
        .and_then(Value::as_bool)
        == Some(true))
}

async fn handle(
    client: ApiClient,
    node: String,
    runtime_ok: Arc<Mutex<Option<String>>>,
    req: Request,
) -> Response {
    let Some(who) = req.peer.clone() else {
        return Response::text(401, "Unauthorized");
    };
    let v = verb(&req.method);
    let subs = subresources(&req.path);
    let mut permitted = false;
    for sub in &subs {
        match allowed(&client, &node, &who, v, sub).await {
            Ok(true) => {
                permitted = true;
                break;
            }
            Ok(false) => {}
            Err(e) => {
                say!("authorizing {who} for {} {}: {e:#}", req.method, req.path);
                return Response::text(
                    500,
                    format!(
                        "Authorization error (user={}, verb={v}, resource=nodes, subresource={})\n",
                        who.user, subs[0]
                    ),
                );
            }
        }
    }
    if !permitted {
        say!(
            "forbidden: {who} {} {} (subresources {subs:?})",
            req.method,
            req.path
        );
        return Response::text(
            403,
            format!(
                "Forbidden (user={}, verb={v}, resource=nodes, subresource(s)=[{}])\n",
                who.user,
                subs.join(" ")
            ),
        );
    }
    match req.path.as_str() {
        "/healthz" => match runtime_ok.lock().ok().and_then(|g| g.clone()) {
            None => Response::text(200, "ok"),
            Some(e) => Response::text(
                500,
                format!("[-]runtime failed: {e}\nhealthz check failed\n"),
            ),
        },
        "/pods" | "/pods/" => Response::json(
            200,
            &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}),
        ),
        p => Response::text(
            404,
            format!("404 page not found ({p} is not served by the kubelet stand-in)\n"),
        ),
    }
}

/// Serves 10250. `runtime_problem` is None while the runtime answers.
pub fn serve_https(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    client: ApiClient,
    node: String,
    runtime_problem: Arc<Mutex<Option<String>>>,
) {
    net::serve(
        listener,
        Some(tls),
        net::handler(move |req| handle(client.clone(), node.clone(), runtime_problem.clone(), req)),
    );
}

/// Serves the local /healthz: ok while the container runtime answers (the real one fails its
/// PLEG check when the runtime is gone).
pub fn serve_healthz(
    listener: tokio::net::TcpListener,
    runtime_problem: Arc<Mutex<Option<String>>>,
) {
    net::serve(
        listener,
        None,
        net::handler(move |req| {
            let p = runtime_problem.clone();
            async move {
                if req.path != "/healthz" {
                    return Response::text(404, "404 page not found\n");
                }
                match p.lock().ok().and_then(|g| g.clone()) {
                    None => Response::text(200, "ok"),
                    Some(e) => Response::text(
                        500,
                        format!("[-]runtime failed: {e}\nhealthz check failed\n"),
                    ),
                }
            }
        }),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn fine_grained_subresources() {
        assert_eq!(super::subresources("/healthz"), vec!["healthz", "proxy"]);
        assert_eq!(super::subresources("/stats/summary"), vec!["stats"]);
        assert_eq!(super::subresources("/exec/x"), vec!["proxy"]);
    }
}
