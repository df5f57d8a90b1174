//! Audit logging: the `--audit-policy-file` rules decide each request's level, and events are
//! appended as JSON lines to `--audit-log-path`, like the real log backend in its default
//! ("batch" aside) configuration.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::rbac::{resource_path, Attributes};
use crate::identity::Identity;

pub struct Audit {
    rules: Vec<Value>,
    omit_stages: Vec<String>,
    out: Mutex<Box<dyn Write + Send>>,
}

const LEVELS: [&str; 4] = ["None", "Metadata", "Request", "RequestResponse"];

/// Checks the decoded Policy the way the real audit policy loader validates it.
pub fn validate_policy(shown: &str, policy: &Value) -> Result<()> {
    for (i, rule) in policy["rules"].as_array().into_iter().flatten().enumerate() {
        let level = rule.get("level").and_then(Value::as_str).unwrap_or("");
        if !LEVELS.contains(&level) {
            bail!("{shown}: rules[{i}].level: Unsupported value: {level:?}: supported values: {LEVELS:?}");
        }
        let has_resources = rule.get("resources").is_some();
        if has_resources && rule.get("nonResourceURLs").is_some() {
            bail!("{shown}: rules[{i}]: rules cannot apply to both regular resources and non-resource URLs");
        }
    }
    Ok(())
}

fn matches_list(list: Option<&Value>, want: &str) -> bool {
    match list.and_then(Value::as_array) {
        None => true,
        Some(l) if l.is_empty() => true,
        Some(l) => l.iter().filter_map(Value::as_str).any(|v| v == want),
    }
}

fn rule_matches(rule: &Value, who: &Identity, verb: &str, a: &Attributes) -> bool {
    let users_ok = matches_list(rule.get("users"), &who.user);
    let groups_ok = match rule.get("userGroups").and_then(Value::as_array) {
        None => true,
        Some(l) if l.is_empty() => true,
        Some(l) => l.iter().filter_map(Value::as_str).any(|g| who.in_group(g)),
    };
    if !(users_ok && groups_ok && matches_list(rule.get("verbs"), verb)) {
        return false;
    }
    match a {
        Attributes::NonResource { path, .. } => {
            if rule.get("resources").is_some() || rule.get("namespaces").is_some() {
                return false;
            }
            match rule.get("nonResourceURLs").and_then(Value::as_array) {
                None => true,
                Some(urls) => urls
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|u| u == path || u.strip_suffix('*').is_some_and(|p| path.starts_with(p))),
            }
        }
        Attributes::Resource {
            group,
            resource,
            subresource,
            namespace,
            name,
            ..
        } => {
            if rule.get("nonResourceURLs").is_some()
                || !matches_list(rule.get("namespaces"), namespace)
            {
                return false;
            }
            let Some(groups) = rule.get("resources").and_then(Value::as_array) else {
                return true;
            };
            let full = resource_path(resource, subresource);
            groups.iter().any(|g| {
                g.get("group").and_then(Value::as_str).unwrap_or("") == group
                    && g.get("resources")
                        .and_then(Value::as_array)
                        .is_none_or(|rs| {
                            rs.is_empty()
                                || rs.iter().filter_map(Value::as_str).any(|r| {
                                    r == full
                                        || r == "*"
                                        || (r == format!("{resource}/*") && !subresource.is_empty())
                                        || r == format!("*/{subresource}")
                                })
                        })
                    && matches_list(g.get("resourceNames"), name)
            })
        }
    }
}

impl Audit {
    /// Opens the log (creating its directory, as the real lumberjack writer does).
    pub fn open(policy: &Value, log_path: &str) -> Result<Audit> {
        let out: Box<dyn Write + Send> = if log_path == "-" {
            Box::new(std::io::stdout())
        } else {
            let path = crate::files::host_path(log_path);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("--audit-log-path {log_path}: cannot create its directory")
                })?;
            }
            let f: File = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(&path))
                .with_context(|| {
                    format!("--audit-log-path {log_path}: cannot open it for appending")
                })?;
            Box::new(f)
        };
        Ok(Audit {
            rules: policy["rules"].as_array().cloned().unwrap_or_default(),
            omit_stages: policy["omitStages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            out: Mutex::new(out),
        })
    }

    /// The level of the first matching rule; no rule matching means None.
    pub fn level(&self, who: &Identity, verb: &str, a: &Attributes) -> &str {
        self.rules
            .iter()
            .find(|r| rule_matches(r, who, verb, a))
            .and_then(|r| r.get("level").and_then(Value::as_str))
            .unwrap_or("None")
    }

    /// Records one request at the ResponseComplete stage.
    pub fn record(
        &self,
        who: &Identity,
        a: &Attributes,
        uri: &str,
        source: &str,
        code: u16,
        received: &str,
    ) {
        let verb = match a {
            Attributes::Resource { verb, .. } | Attributes::NonResource { verb, .. } => {
                verb.as_str()
            }
        };
        let level = self.level(who, verb, a);
        if level == "None" || self.omit_stages.iter().any(|s| s == "ResponseComplete") {
            return;
        }
        let mut event = json!({
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": level,
            "stage": "ResponseComplete",
            "requestURI": uri,
            "verb": verb,
            "user": { "username": who.user, "groups": who.groups },
            "sourceIPs": [source],
            "userAgent": "",
            "responseStatus": { "metadata": {}, "code": code },
            "requestReceivedTimestamp": received,
            "stageTimestamp": crate::timefmt::now_micro(),
            "annotations": { "stand-in": "kube-apiserver stand-in; request bodies are not recorded" },
        });
        if let Attributes::Resource {
            group,
            resource,
            subresource,
            namespace,
            name,
            ..
        } = a
        {
            event["objectRef"] = json!({
                "resource": resource, "subresource": subresource, "namespace": namespace,
                "name": name, "apiGroup": group,
            });
        }
        let mut line = event.to_string();
        line.push('\n');
        if let Ok(mut out) = self.out.lock() {
            // A failing audit write must not take the request down with it; the real backend
            // logs and drops too.
            if let Err(e) = out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
                crate::say!("audit log write failed: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Value {
        let text = include_str!("../../../templates/audit-policy.yaml.tera");
        serde_yaml::from_str(text).unwrap()
    }

    fn who(user: &str) -> Identity {
        Identity {
            user: user.into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    fn res(verb: &str, group: &str, resource: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
        }
    }

    #[test]
    fn the_rendered_policy_levels() {
        let p = policy();
        validate_policy("p", &p).unwrap();
        let d = tempfile::tempdir().unwrap();
        let a = Audit::open(&p, d.path().join("a.log").to_str().unwrap()).unwrap();
        let readyz = Attributes::NonResource {
            verb: "get".into(),
            path: "/readyz".into(),
        };
        assert_eq!(a.level(&who("x"), "get", &readyz), "None");
        assert_eq!(
            a.level(&who("x"), "get", &res("get", "", "secrets")),
            "Metadata"
        );
        assert_eq!(
            a.level(&who("x"), "create", &res("create", "", "nodes")),
            "Request"
        );
        assert_eq!(
            a.level(
                &who("x"),
                "update",
                &res("update", "coordination.k8s.io", "leases")
            ),
            "None"
        );
        a.record(
            &who("x"),
            &res("create", "", "nodes"),
            "/api/v1/nodes",
            "127.0.0.1",
            201,
            "t",
        );
        let log = std::fs::read_to_string(d.path().join("a.log")).unwrap();
        assert!(log.contains("\"level\":\"Request\""), "{log}");
    }

    #[test]
    fn bad_levels_are_refused() {
        let p: Value = serde_yaml::from_str("rules:\n- level: Everything\n").unwrap();
        assert!(validate_policy("p", &p).is_err());
    }
}
