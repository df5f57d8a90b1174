//! JSON merge patch (RFC 7386) and the part of strategic merge patch the components send:
//! lists of conditions and addresses merge by their `type` key.

use serde_json::{json, Value};

/// Lists that strategic merge patch merges by key instead of replacing (Node status).
const MERGE_BY_TYPE: [&str; 2] = ["conditions", "addresses"];

pub fn apply(target: &mut Value, patch: &Value, strategic: bool) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in p {
        // Strategic merge directives ($setElementOrder/..., $retainKeys): ordering hints only.
        if strategic && k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        if strategic && MERGE_BY_TYPE.contains(&k.as_str()) {
            if let (Some(Value::Array(current)), Value::Array(items)) = (t.get_mut(k), v) {
                merge_by_type(current, items);
                continue;
            }
        }
        apply(t.entry(k.clone()).or_insert(Value::Null), v, strategic);
    }
}

fn merge_by_type(current: &mut Vec<Value>, items: &[Value]) {
    for item in items {
        let key = item.get("type").cloned();
        let pos = current
            .iter()
            .position(|c| key.is_some() && c.get("type") == key.as_ref());
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                current.remove(i);
            }
            (Some(i), false) => apply(&mut current[i], item, true),
            (None, false) => {
                let mut fresh = Value::Null;
                apply(&mut fresh, item, true);
                current.push(fresh);
            }
            (None, true) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_replaces_lists_and_removes_nulls() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        apply(&mut t, &json!({"b": {"c": null, "e": 4}, "l": [3]}), false);
        assert_eq!(t, json!({"a": 1, "b": {"d": 3, "e": 4}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_conditions_by_type() {
        let mut t = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "MemoryPressure", "status": "False"}
        ]}});
        let p = json!({"status": {
            "$setElementOrder/conditions": [{"type": "MemoryPressure"}, {"type": "Ready"}],
            "conditions": [{"type": "Ready", "status": "True"}]
        }});
        apply(&mut t, &p, true);
        assert_eq!(t["status"]["conditions"][0]["status"], "True");
        assert_eq!(t["status"]["conditions"][1]["type"], "MemoryPressure");
        assert!(t["status"].get("$setElementOrder/conditions").is_none());
    }
}
