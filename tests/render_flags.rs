//! Every flag in a rendered unit and every field in a rendered config must be accepted by the real
//! component of the target version, according to the lists in tests/fixtures/k8s/v1.<minor>/,
//! generated from the real programs (flags from their `--help`, fields from their Go types).
//! Deprecated flags are refused too: they are the next release's "unknown flag".

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{fixture, repo, Tree, Workspace};
use serde_json::Value;

struct Case {
    name: &'static str,
    inventory: PathBuf,
    minor: u32,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "default",
            inventory: repo().join("inventory.toml"),
            minor: 37,
        },
        Case {
            name: "all-in-one",
            inventory: fixture("inventories/all-in-one.toml"),
            minor: 35,
        },
        Case {
            name: "oldest",
            inventory: fixture("inventories/oldest.toml"),
            minor: 35,
        },
        Case {
            name: "newest",
            inventory: fixture("inventories/newest.toml"),
            minor: 37,
        },
    ]
}

/// A list of the real programs of Kubernetes 1.`minor` (and the etcd and containerd it pins).
fn read_fixture(minor: u32, rel: &str) -> String {
    let p = fixture(&format!("k8s/v1.{minor}/{rel}"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Accepted flags of a component: name → deprecated.
fn flag_list(component: &str, minor: u32) -> Vec<(String, bool)> {
    read_fixture(minor, &format!("flags/{component}.txt"))
        .lines()
        .filter(|l| l.starts_with("--"))
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_string(), cols.get(2) == Some(&"deprecated"))
        })
        .collect()
}

/// The flags on a unit's ExecStart line, for every binary the checks know.
fn exec_flags(unit: &str) -> Option<(String, Vec<String>)> {
    let joined = unit.replace("\\\n", " ");
    let exec = joined.lines().find_map(|l| l.strip_prefix("ExecStart="))?;
    let mut words = exec.split_whitespace();
    let binary = words.next()?.rsplit('/').next()?.to_string();
    let flags = words
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect();
    Some((binary, flags))
}

/// Deprecated flags used on purpose, each with why: every other deprecated flag is a problem.
/// They must still exist in each version (an unknown flag stops the program).
const DEPRECATED_ON_PURPOSE: &[(&str, &str, &str)] = &[(
    "kube-scheduler",
    "--profiling",
    "ignored beside --config, which says the same; auditors read the command line (CIS 1.4.1)",
)];

fn check_unit(unit: &str, minor: u32) -> Vec<String> {
    let Some((binary, flags)) = exec_flags(unit) else {
        return vec![];
    };
    let known = [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
    ];
    if !known.contains(&binary.as_str()) {
        return vec![];
    }
    let list = flag_list(&binary, minor);
    let mut problems = Vec::new();
    for f in flags {
        match list.iter().find(|(n, _)| *n == f) {
            None => problems.push(format!("{binary} 1.{minor} has no flag {f}")),
            Some((_, true))
                if !DEPRECATED_ON_PURPOSE
                    .iter()
                    .any(|(b, name, _)| *b == binary && *name == f) =>
            {
                problems.push(format!("{binary} flag {f} is deprecated"))
            }
            Some(_) => {}
        }
    }
    problems
}

/// Field paths of a config kind, in the fixture's notation (`a.b[].c`, `.*` for map values).
fn field_list(kind: &str, minor: u32) -> (String, BTreeSet<String>) {
    let text = read_fixture(minor, &format!("config/{kind}.txt"));
    let api_version = text
        .lines()
        .find_map(|l| l.strip_prefix("# apiVersion: "))
        .map(|v| v.split_whitespace().next().unwrap().to_string())
        .unwrap_or_default();
    let mut fields = BTreeSet::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (path, ty) = l.split_once('\t').unwrap_or((l, ""));
        fields.insert(path.to_string());
        // A map of plain values: any key (even one with dots, as eviction signals have) is valid.
        let scalar = ["string", "bool", "int32", "int64", "float64", "[]string"];
        if let Some((_, value)) = ty.strip_prefix("map[").and_then(|t| t.split_once(']')) {
            if scalar.contains(&value) {
                fields.insert(format!("{path}.**"));
            }
        }
    }
    (api_version, fields)
}

fn yaml_paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(p.clone());
                yaml_paths(child, &p, out);
            }
        }
        Value::Array(s) => {
            for child in s {
                yaml_paths(child, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn field_known(fields: &BTreeSet<String>, path: &str) -> bool {
    if fields.contains(path) {
        return true;
    }
    if path
        .match_indices('.')
        .any(|(i, _)| fields.contains(&format!("{}.**", &path[..i])))
    {
        return true;
    }
    // A map value: `a.b.key` is listed as `a.b.*`.
    match path.rsplit_once('.') {
        Some((parent, _)) => fields.contains(&format!("{parent}.*")),
        None => false,
    }
}

fn check_yaml(text: &str, minor: u32) -> Vec<String> {
    let doc: Value = serde_saphyr::from_str(text).expect("rendered YAML parses");
    let Some(kind) = doc.get("kind").and_then(|k| k.as_str()) else {
        return vec!["no kind".into()];
    };
    let (api_version, fields) = field_list(kind, minor);
    let mut problems = Vec::new();
    let got_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or("");
    if got_version != api_version {
        problems.push(format!(
            "{kind}: apiVersion {got_version}, the component reads {api_version}"
        ));
    }
    let mut paths = Vec::new();
    yaml_paths(&doc, "", &mut paths);
    for p in paths {
        if !field_known(&fields, &p) {
            problems.push(format!("{kind} 1.{minor} has no field {p}"));
        }
    }
    problems
}

/// TOML key paths as segment lists, each with whether it is a table; `*` in the fixture matches
/// any one segment.
fn toml_paths(v: &toml::Value, prefix: &[String], out: &mut Vec<(Vec<String>, bool)>) {
    if let toml::Value::Table(t) = v {
        for (k, child) in t {
            let mut p = prefix.to_vec();
            p.push(k.clone());
            out.push((p.clone(), child.is_table()));
            toml_paths(child, &p, out);
        }
    }
}

fn split_key(key: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in key.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('.', None) => parts.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// Checked against the keys of the containerd release the minor pins, whose config format is the
/// only one listed for it.
fn check_containerd(text: &str, minor: u32) -> Vec<String> {
    let doc: toml::Value = toml::from_str(text).expect("containerd config parses");
    let version = doc.get("version").and_then(|v| v.as_integer()).unwrap_or(1);
    let list = format!("config/containerd-config-v{version}.txt");
    if !fixture(&format!("k8s/v1.{minor}/{list}")).exists() {
        return vec![format!(
            "containerd config version {version} is not the format of the containerd 1.{minor} pins"
        )];
    }
    let known: Vec<(Vec<String>, bool)> = read_fixture(minor, &list)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (split_key(cols[0]), cols.get(2) == Some(&"deprecated"))
        })
        .collect();
    let mut paths = Vec::new();
    toml_paths(&doc, &[], &mut paths);
    let mut problems = Vec::new();
    let matches = |k: &[String], p: &[String]| k.iter().zip(p).all(|(a, b)| a == "*" || a == b);
    for (p, is_table) in paths {
        // A table only holds keys; it is known when some listed key lies inside it.
        if is_table
            && known
                .iter()
                .any(|(k, _)| k.len() > p.len() && matches(k, &p))
        {
            continue;
        }
        let found = known
            .iter()
            .find(|(k, _)| k.len() == p.len() && matches(k, &p));
        match found {
            None => problems.push(format!(
                "containerd config v{version} has no key {}",
                p.join(".")
            )),
            Some((_, true)) => {
                problems.push(format!("containerd key {} is deprecated", p.join(".")))
            }
            Some(_) => {}
        }
    }
    problems
}

fn check_tree(tree: &Tree, minor: u32) -> Vec<String> {
    let mut problems = Vec::new();
    for (rel, (_, content)) in &tree.files {
        let text = String::from_utf8_lossy(content);
        // API objects, not component configs: the real API server checks them (strict field
        // validation) when the end-to-end tests apply them.
        if rel.contains("/etc/kubernetes/addons/") {
            continue;
        }
        let found = if rel.ends_with(".service") {
            check_unit(&text, minor)
        } else if rel.ends_with("containerd/config.toml") {
            check_containerd(&text, minor)
        } else if rel.ends_with(".yaml")
            || rel.ends_with(".conf") && text.contains("kind: Config")
            || rel.ends_with(".kubeconfig")
        {
            check_yaml(&text, minor)
        } else {
            continue;
        };
        problems.extend(found.into_iter().map(|p| format!("{rel}: {p}")));
    }
    problems
}

#[test]
fn rendered_flags_and_fields_are_accepted_by_the_target_version() {
    for case in cases() {
        let ws = Workspace::with_inventory(&case.inventory);
        let tree = ws.render();
        let problems = check_tree(&tree, case.minor);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            case.name,
            problems.join("\n  ")
        );
    }
}

#[test]
fn every_kind_of_artifact_is_checked() {
    // Guards against a check that silently skips files: each artifact kind must be seen.
    let ws = Workspace::with_inventory(&fixture("inventories/all-in-one.toml"));
    let tree = ws.render();
    let binaries: BTreeSet<String> = tree
        .matching(".service")
        .filter_map(|k| exec_flags(&tree.text(k)))
        .map(|(b, _)| b)
        .collect();
    // kube-router's flags come from its own release, not a Kubernetes one; `sh` runs the
    // pod-routes script.
    let want: BTreeSet<String> = [
        "containerd",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-proxy",
        "kube-router",
        "kube-scheduler",
        "kubelet",
        "sh",
    ]
    .map(String::from)
    .into();
    assert_eq!(binaries, want);
    let kinds: BTreeSet<String> = tree
        .files
        .keys()
        .filter(|k| k.ends_with(".yaml") || k.ends_with(".conf") || k.ends_with(".kubeconfig"))
        .filter_map(|k| serde_saphyr::from_str::<Value>(&tree.text(k)).ok())
        .filter_map(|d| d.get("kind").and_then(|k| k.as_str()).map(String::from))
        .collect();
    let want: BTreeSet<String> = [
        "Config",
        "EncryptionConfiguration",
        "KubeProxyConfiguration",
        "KubeSchedulerConfiguration",
        "KubeletConfiguration",
        "Policy",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds, want);
}

#[test]
fn the_checks_reject_2018_era_flags_and_unknown_fields() {
    let ws = Workspace::with_inventory(&fixture("inventories/all-in-one.toml"));
    let tree = ws.render();
    let api = tree.text("node-1/etc/systemd/system/kube-apiserver.service");
    let kubelet = tree.text("node-1/etc/systemd/system/kubelet.service");
    let cfg = tree.text("node-1/var/lib/kubelet/config.yaml");
    let sched = tree.text("node-1/etc/kubernetes/kube-scheduler.yaml");
    let ctd = tree.text("node-1/etc/containerd/config.toml");
    for minor in 35..=37 {
        let bad = api.replace(
            "--profiling=false",
            "--kubelet-https=true \\\n  --insecure-port=0",
        );
        let p = check_unit(&bad, minor);
        assert!(
            p.iter().any(|m| m.contains("--kubelet-https"))
                && p.iter().any(|m| m.contains("--insecure-port")),
            "{p:?}"
        );

        let bad = kubelet.replace("--node-ip", "--pod-infra-container-image=registry.k8s.io/pause:3.10 \\\n  --container-runtime=remote \\\n  --node-ip");
        let p = check_unit(&bad, minor);
        assert!(
            p.iter().any(|m| m.contains("--pod-infra-container-image")),
            "{p:?}"
        );
        assert!(p.iter().any(|m| m.contains("--container-runtime")), "{p:?}");
        // Deprecated: the kubelet takes these from its config file.
        let p = check_unit(
            &kubelet.replace("--node-ip", "--cgroup-driver=systemd \\\n  --node-ip"),
            minor,
        );
        assert!(
            p.iter()
                .any(|m| m.contains("--cgroup-driver is deprecated")),
            "{p:?}"
        );

        let p = check_yaml(
            &cfg.replace("readOnlyPort: 0", "readOnlyPort: 0\nnetworkPlugin: cni"),
            minor,
        );
        assert!(p.iter().any(|m| m.contains("networkPlugin")), "{p:?}");
        let p = check_yaml(
            &sched.replace("kubescheduler.config.k8s.io/v1", "componentconfig/v1alpha1"),
            minor,
        );
        assert!(p.iter().any(|m| m.contains("apiVersion")), "{p:?}");
    }
    // The all-in-one inventory is 1.35, whose containerd reads format 3.
    let p = check_containerd(
        &ctd.replace(
            "SystemdCgroup = true",
            "SystemdCgroup = true\n  systemd_cgroup = true",
        ),
        35,
    );
    assert!(p.iter().any(|m| m.contains("systemd_cgroup")), "{p:?}");
}

#[test]
fn the_checks_know_what_each_minor_added_and_removed() {
    let ws = Workspace::with_inventory(&fixture("inventories/all-in-one.toml"));
    let tree = ws.render();
    // A flag added in 1.36 is refused for 1.35; a kubelet field added in 1.37 for 1.36.
    let api = tree.text("node-1/etc/systemd/system/kube-apiserver.service");
    let newer = api.replace(
        "--profiling=false",
        "--profiling=false \\\n  --tls-curve-preferences=23",
    );
    assert!(check_unit(&newer, 36).is_empty());
    let p = check_unit(&newer, 35);
    assert!(
        p.iter().any(|m| m.contains("--tls-curve-preferences")),
        "{p:?}"
    );
    let cfg = tree.text("node-1/var/lib/kubelet/config.yaml");
    let newer = cfg.replace("readOnlyPort: 0", "readOnlyPort: 0\ndefaultPodSysctls: []");
    assert!(check_yaml(&newer, 37).is_empty());
    assert!(!check_yaml(&newer, 36).is_empty());
    // containerd 2.3 (1.36's) writes format 4; 1.35's containerd 2.2 reads format 3.
    let ctd = tree.text("node-1/etc/containerd/config.toml");
    assert!(ctd.contains("version = 3"), "{ctd}");
    assert!(check_containerd(&ctd, 35).is_empty());
    let p = check_containerd(&ctd, 37);
    assert!(p.iter().any(|m| m.contains("config version 3")), "{p:?}");
}

#[test]
fn version_specific_choices_follow_the_minor() {
    let old = Workspace::with_inventory(&fixture("inventories/oldest.toml")).render();
    let new = Workspace::with_inventory(&fixture("inventories/newest.toml")).render();
    // containerd 2.2 (1.35's) reads format 3 and its cni.bin_dirs; 2.4 (1.37's) format 4.
    let old_ctd = old.text("w-1/etc/containerd/config.toml");
    assert!(old_ctd.contains("version = 3"), "{old_ctd}");
    assert!(old_ctd.contains("bin_dirs"), "{old_ctd}");
    assert!(
        old_ctd.contains("registry.k8s.io/pause:3.10.1"),
        "{old_ctd}"
    );
    let new_ctd = new.text("w-1/etc/containerd/config.toml");
    assert!(new_ctd.contains("version = 4"), "{new_ctd}");
    assert!(
        new_ctd.contains("registry.k8s.io/pause:3.10.2"),
        "{new_ctd}"
    );
    assert!(new
        .text("w-1/var/lib/kubelet/config.yaml")
        .contains("failCgroupV1: true"));
    assert!(new
        .text("w-1/var/lib/kube-proxy/config.yaml")
        .contains("mode: nftables"));
}
