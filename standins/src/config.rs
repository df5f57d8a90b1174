//! Strict decoding of the components' config files against the real field lists.
//!
//! The real components decode KubeletConfiguration, KubeProxyConfiguration,
//! KubeSchedulerConfiguration, EncryptionConfiguration and audit Policy strictly: an unknown or
//! duplicated field, or a value of the wrong type, stops them at startup. The field lists are the
//! project's fixtures (`tests/fixtures/k8s/config`), embedded at build time.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_yaml::Value;

use crate::timefmt::parse_go_duration;

/// The field list of one config kind.
#[derive(Debug, Clone)]
pub struct FieldList {
    pub kind: String,
    pub api_version: String,
    pub minor_label: String,
    /// `a.b[].c` → Go type as the reference docs print it.
    pub fields: BTreeMap<String, String>,
}

fn list_text(kind: &str, minor: u32) -> Option<&'static str> {
    macro_rules! pick {
        ($name:literal) => {
            if minor >= 36 {
                include_str!(concat!(
                    "../../tests/fixtures/k8s/config/v1.36/",
                    $name,
                    ".txt"
                ))
            } else {
                include_str!(concat!("../../tests/fixtures/k8s/config/", $name, ".txt"))
            }
        };
    }
    Some(match kind {
        "Config" => pick!("Config"),
        "EncryptionConfiguration" => pick!("EncryptionConfiguration"),
        "KubeProxyConfiguration" => pick!("KubeProxyConfiguration"),
        "KubeSchedulerConfiguration" => pick!("KubeSchedulerConfiguration"),
        "KubeletConfiguration" => pick!("KubeletConfiguration"),
        "Policy" => pick!("Policy"),
        _ => return None,
    })
}

fn plugin_args_text(minor: u32) -> &'static str {
    if minor >= 36 {
        include_str!(
            "../../tests/fixtures/k8s/config/v1.36/KubeSchedulerConfiguration.pluginargs.txt"
        )
    } else {
        include_str!("../../tests/fixtures/k8s/config/KubeSchedulerConfiguration.pluginargs.txt")
    }
}

fn header(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

impl FieldList {
    pub fn for_kind(kind: &str, minor: u32) -> Option<FieldList> {
        let text = list_text(kind, minor)?;
        let fields = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (path, ty) = l.split_once('\t').unwrap_or((l, ""));
                (path.to_string(), ty.trim().to_string())
            })
            .collect();
        Some(FieldList {
            kind: header(text, "# kind: "),
            api_version: header(text, "# apiVersion: "),
            minor_label: format!("1.{}", minor.min(36)),
            fields,
        })
    }

    /// The argument kinds of scheduler plugins (`<Plugin>Args`), each as its own list.
    fn plugin_args(minor: u32) -> BTreeMap<String, FieldList> {
        let mut out: BTreeMap<String, FieldList> = BTreeMap::new();
        for line in plugin_args_text(minor).lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (path, ty) = line.split_once('\t').unwrap_or((line, ""));
            let Some((kind, field)) = path.split_once(':') else {
                continue;
            };
            let list = out.entry(kind.to_string()).or_insert_with(|| FieldList {
                kind: kind.to_string(),
                api_version: "kubescheduler.config.k8s.io/v1".into(),
                minor_label: format!("1.{}", minor.min(36)),
                fields: [("apiVersion", "string"), ("kind", "string")]
                    .into_iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            });
            list.fields.insert(field.to_string(), ty.trim().to_string());
        }
        out
    }

    /// A struct type whose fields the list does not spell out (RawExtension, ObjectMeta, ...):
    /// its content is not checked, as the list cannot say what it may hold.
    fn is_opaque(&self, path: &str) -> bool {
        let dot = format!("{path}.");
        let elem = format!("{path}[]");
        !self
            .fields
            .keys()
            .any(|k| k.starts_with(&dot) || k.starts_with(&elem))
    }
}

/// Checks a scalar or map value against the Go type the list names.
fn type_problem(ty: &str, v: &Value) -> Option<String> {
    if v.is_null() {
        return None;
    }
    let want = |ok: bool, what: &str| (!ok).then(|| format!("expected {what}, got {}", kind_of(v)));
    match ty {
        "string" => want(v.is_string(), "a string"),
        "bool" => want(v.is_bool(), "a boolean"),
        "int" | "int32" | "int64" => want(v.is_i64() || v.is_u64(), "an integer"),
        "float32" | "float64" => want(v.is_number(), "a number"),
        "[]string" => want(
            v.as_sequence()
                .is_some_and(|s| s.iter().all(Value::is_string)),
            "a list of strings",
        ),
        "[]byte" => match v.as_str() {
            Some(s) if base64::engine::general_purpose::STANDARD.decode(s).is_ok() => None,
            _ => Some("expected base64 data".into()),
        },
        "meta/v1.Duration" => match v.as_str() {
            Some(s) if parse_go_duration(s).is_some() => None,
            Some(s) => Some(format!("time: invalid duration {s:?}")),
            None => Some(format!("expected a duration string, got {}", kind_of(v))),
        },
        t if t.starts_with("map[string]") => {
            let Some(m) = v.as_mapping() else {
                return Some(format!("expected a map, got {}", kind_of(v)));
            };
            let value_ty = &t["map[string]".len()..];
            m.values().find_map(|mv| type_problem(value_ty, mv))
        }
        _ => None,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

fn walk(list: &FieldList, v: &Value, prefix: &str, problems: &mut Vec<String>) {
    let Some(map) = v.as_mapping() else {
        if !prefix.is_empty() {
            problems.push(format!("{prefix}: expected an object, got {}", kind_of(v)));
        }
        return;
    };
    for (k, child) in map {
        let Some(k) = k.as_str() else {
            problems.push(format!("{prefix}: non-string key {k:?}"));
            continue;
        };
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        let Some(ty) = list.fields.get(&path) else {
            problems.push(format!("unknown field {path:?}"));
            continue;
        };
        if let Some(p) = type_problem(ty, child) {
            problems.push(format!("field {path:?} ({ty}): {p}"));
            continue;
        }
        if ty.starts_with("map[") || list.is_opaque(&path) {
            continue;
        }
        match child {
            Value::Mapping(_) => walk(list, child, &path, problems),
            Value::Sequence(items) => {
                let elem = format!("{path}[]");
                for item in items.iter().filter(|i| i.is_mapping()) {
                    walk(list, item, &elem, problems);
                }
            }
            _ => {}
        }
    }
}

/// Every problem of `doc` as a config of `list`'s kind; empty when it would decode strictly.
pub fn problems(doc: &Value, list: &FieldList) -> Vec<String> {
    let mut out = Vec::new();
    let got_kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let got_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if got_kind != list.kind {
        out.push(format!("kind is {got_kind:?}, expected {:?}", list.kind));
    }
    if got_version != list.api_version {
        out.push(format!(
            "apiVersion is {got_version:?}, expected {:?}",
            list.api_version
        ));
    }
    walk(list, doc, "", &mut out);
    out
}

/// Scheduler plugin arguments: `profiles[].pluginConfig[].args` of a known plugin are decoded
/// strictly as `<Plugin>Args`, as the real scheduler does.
fn plugin_arg_problems(doc: &Value, minor: u32) -> Vec<String> {
    let kinds = FieldList::plugin_args(minor);
    let mut out = Vec::new();
    let profiles = doc.get("profiles").and_then(Value::as_sequence);
    for pc in profiles
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("pluginConfig"))
    {
        for entry in pc.as_sequence().into_iter().flatten() {
            let name = entry.get("name").and_then(Value::as_str).unwrap_or("");
            let (Some(args), Some(list)) = (entry.get("args"), kinds.get(&format!("{name}Args")))
            else {
                continue;
            };
            let mut p = Vec::new();
            walk(list, args, "", &mut p);
            out.extend(
                p.into_iter()
                    .map(|e| format!("pluginConfig {name} args: {e}")),
            );
        }
    }
    out
}

/// Parses `text` (read from `shown`) and decodes it strictly as `kind` at Kubernetes `minor`.
pub fn decode_strict(text: &str, shown: &str, kind: &str, minor: u32) -> Result<Value> {
    let list = FieldList::for_kind(kind, minor)
        .with_context(|| format!("stand-in has no field list for {kind}"))?;
    let doc: Value = serde_yaml::from_str(text)
        .with_context(|| format!("{shown}: not a valid {kind} YAML document"))?;
    let mut found = problems(&doc, &list);
    if kind == "KubeSchedulerConfiguration" {
        found.extend(plugin_arg_problems(&doc, minor));
    }
    if !found.is_empty() {
        bail!(
            "{shown}: strict decoding error for {kind} ({} at Kubernetes {}): {}",
            list.api_version,
            list.minor_label,
            found.join("; ")
        );
    }
    Ok(doc)
}

/// Reads and strictly decodes the config file at `path` (a path as the component sees it).
pub fn load(what: &str, path: &str, kind: &str) -> Result<Value> {
    let bytes = crate::files::read(what, path)?;
    let text = String::from_utf8(bytes).with_context(|| format!("{what} {path}: not UTF-8"))?;
    decode_strict(
        &text,
        &format!("{what} {path}"),
        kind,
        crate::version::minor(),
    )
}

/// `doc.a.b.c` as a string, if present.
pub fn str_at<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a str> {
    value_at(doc, path)?.as_str()
}

pub fn value_at<'a>(doc: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, k| v.get(*k))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBELET: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";

    fn check(text: &str, kind: &str) -> Result<Value> {
        decode_strict(text, "test.yaml", kind, 35)
    }

    #[test]
    fn rendered_kubelet_config_decodes() {
        let text = format!(
            "{KUBELET}authentication:\n  anonymous:\n    enabled: false\n  x509:\n    clientCAFile: /ca.crt\n\
             authorization:\n  mode: Webhook\nreadOnlyPort: 0\nclusterDNS:\n- 10.32.0.10\n\
             runtimeRequestTimeout: 15m\nevictionHard:\n  memory.available: 100Mi\n\
             featureGates:\n  SomeGate: true\n"
        );
        check(&text, "KubeletConfiguration").unwrap();
    }

    #[test]
    fn unknown_field_is_named() {
        let e = check(
            &format!("{KUBELET}authentication:\n  anonymus: {{}}\n"),
            "KubeletConfiguration",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("unknown field \"authentication.anonymus\""),
            "{e}"
        );
        assert!(e.contains("test.yaml"), "{e}");
    }

    #[test]
    fn wrong_types_are_refused() {
        for (body, field) in [
            ("readOnlyPort: \"0\"\n", "readOnlyPort"),
            ("cgroupDriver: 1\n", "cgroupDriver"),
            (
                "runtimeRequestTimeout: 15 minutes\n",
                "runtimeRequestTimeout",
            ),
            ("featureGates:\n  X: maybe\n", "featureGates"),
            ("clusterDNS: 10.0.0.10\n", "clusterDNS"),
        ] {
            let e = check(&format!("{KUBELET}{body}"), "KubeletConfiguration").unwrap_err();
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn kind_and_api_version_must_match() {
        let e = check(
            "apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n",
            "KubeletConfiguration",
        )
        .unwrap_err();
        assert!(e.to_string().contains("apiVersion"), "{e}");
        let e = check(KUBELET, "KubeProxyConfiguration").unwrap_err();
        assert!(
            e.to_string().contains("kind is \"KubeletConfiguration\""),
            "{e}"
        );
    }

    #[test]
    fn duplicate_fields_are_refused() {
        assert!(check(
            &format!("{KUBELET}port: 1\nport: 2\n"),
            "KubeletConfiguration"
        )
        .is_err());
    }

    #[test]
    fn opaque_types_are_not_descended() {
        let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nmetadata:\n  name: x\n  labels: {a: b}\n\
                      rules:\n- level: Metadata\n  resources:\n  - group: \"\"\n    resources: [secrets]\n";
        check(policy, "Policy").unwrap();
        let bad = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  user: [x]\n";
        let e = check(bad, "Policy").unwrap_err();
        assert!(e.to_string().contains("rules[].user"), "{e}");
    }

    #[test]
    fn scheduler_plugin_args_are_strict() {
        let base = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n\
                    profiles:\n- schedulerName: default-scheduler\n  pluginConfig:\n  - name: NodeResourcesFit\n    args:\n";
        check(
            &format!("{base}      scoringStrategy:\n        type: LeastAllocated\n"),
            "KubeSchedulerConfiguration",
        )
        .unwrap();
        let e = check(
            &format!("{base}      scoringStrategi: {{}}\n"),
            "KubeSchedulerConfiguration",
        )
        .unwrap_err();
        assert!(e.to_string().contains("scoringStrategi"), "{e}");
    }

    #[test]
    fn newer_lists_apply_to_newer_minors() {
        let text = format!("{KUBELET}tlsCurvePreferences: [23]\n");
        assert!(decode_strict(&text, "t", "KubeletConfiguration", 35).is_err());
        assert!(decode_strict(&text, "t", "KubeletConfiguration", 36).is_ok());
    }
}
