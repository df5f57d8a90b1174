//! Checks the shape of the inventory (known keys, value types, required keys) against the JSON
//! Schema derived from the inventory types, collecting every problem instead of stopping at the
//! first as a deserializer does. The schema is the one `provisioner schema` prints, so editors and
//! this check can never disagree.

use serde_json::Value as Json;

use super::problem::{KeyPath, Problem};
use super::source::{Node, Source};

pub fn check(source: &Source, schema: &Json) -> Vec<Problem> {
    let mut problems = Vec::new();
    let defs = schema.get("$defs").cloned().unwrap_or(Json::Null);
    let walker = Walker { defs: &defs };
    walker.node(source.root(), schema, &KeyPath::root(), &mut problems);
    problems
}

struct Walker<'s> {
    defs: &'s Json,
}

impl Walker<'_> {
    fn resolve<'a>(&'a self, schema: &'a Json) -> &'a Json {
        match schema.get("$ref").and_then(Json::as_str) {
            Some(r) => r
                .strip_prefix("#/$defs/")
                .and_then(|name| self.defs.get(name))
                .unwrap_or(schema),
            None => schema,
        }
    }

    fn node(&self, node: Node<'_>, schema: &Json, path: &KeyPath, out: &mut Vec<Problem>) {
        let schema = self.resolve(schema);
        let types = allowed_types(schema);
        let kind = node.kind();
        if !types.is_empty() && !types.iter().any(|t| matches_type(t, kind)) {
            let wanted: Vec<_> = types.iter().filter(|t| *t != "null").cloned().collect();
            out.push(Problem::error(
                path.clone(),
                format!("expected {}, found {kind}", wanted.join(" or ")),
            ));
            return;
        }
        match kind {
            "table" => self.table(node, schema, path, out),
            "array" => {
                if let Some(items) = schema.get("items") {
                    for (i, el) in node.elements().into_iter().enumerate() {
                        self.node(el, items, &path.index(i), out);
                    }
                }
            }
            "integer" => {
                let (n, min, max) = (
                    node.integer(),
                    schema.get("minimum").and_then(Json::as_i64),
                    schema.get("maximum").and_then(Json::as_i64),
                );
                if let Some(n) = n {
                    if min.is_some_and(|m| n < m) || max.is_some_and(|m| n > m) {
                        out.push(Problem::error(
                            path.clone(),
                            format!(
                                "{n} is out of range ({} to {})",
                                min.map_or("-".into(), |m| m.to_string()),
                                max.map_or("-".into(), |m| m.to_string())
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    fn table(&self, node: Node<'_>, schema: &Json, path: &KeyPath, out: &mut Vec<Problem>) {
        let empty = serde_json::Map::new();
        let props = schema
            .get("properties")
            .and_then(Json::as_object)
            .unwrap_or(&empty);
        let closed = schema.get("additionalProperties") == Some(&Json::Bool(false));
        let entries = node.entries();
        for (key, _, child) in &entries {
            match props.get(*key) {
                Some(s) => self.node(*child, s, &path.key(key), out),
                None if closed => {
                    let hint = closest(key, props.keys().map(String::as_str))
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_else(|| {
                            let known: Vec<_> = props.keys().map(|k| format!("`{k}`")).collect();
                            format!("; known keys: {}", known.join(", "))
                        });
                    out.push(Problem::error(
                        path.key(key),
                        format!("unknown key `{key}`{hint}"),
                    ));
                }
                None => {}
            }
        }
        if let Some(required) = schema.get("required").and_then(Json::as_array) {
            for r in required.iter().filter_map(Json::as_str) {
                if !entries.iter().any(|(k, _, _)| *k == r) {
                    out.push(Problem::error(path.key(r), "required key is missing"));
                }
            }
        }
    }
}

fn allowed_types(schema: &Json) -> Vec<String> {
    match schema.get("type") {
        Some(Json::String(t)) => vec![t.clone()],
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn matches_type(schema_type: &str, toml_kind: &str) -> bool {
    match schema_type {
        "object" => toml_kind == "table",
        "number" => toml_kind == "integer" || toml_kind == "float",
        other => other == toml_kind,
    }
}

/// The known key nearest to a misspelt one, if it is close enough to be a typo.
fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_keys() {
        let known = ["identity_file", "known_hosts", "port"];
        assert_eq!(
            closest("identity_fil", known.into_iter()),
            Some("identity_file")
        );
        assert_eq!(closest("zzz", known.into_iter()), None);
    }
}
