//! The import graph of `src/`, read from its `crate::`, `super::` and `self::` paths: every
//! module imports only from the layers below its own, and no two files import each other.
//! Comments (doc links) and unit tests (`#[cfg(test)]` to the end of a file) are left out: a
//! test may build its fixtures with anything.
//!
//! A new module gets a row in [`LAYERS`]; a failure names the file and the import to move.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules of the library, bottom layer first. A module may name modules of
/// lower layers only: nothing below knows what stands above it, and there is no circle.
const LAYERS: &[&[&str]] = &[
    // Facts every layer shares: where things live on a host, the digest, the terminal.
    &["digest", "layout", "term", "testhook"],
    // The inventory as read and validated; every shell command; logging.
    &["inventory", "logging", "shell"],
    // Units and phases; the PKI; SSH; test machines.
    &["component", "pki", "sandbox", "transport"],
    // Rendering and the state directory's records; bundles.
    &["bundle", "history", "members", "render"],
    // Pure decisions: the plan, what certificates a host should carry.
    &["certs", "plan"],
    // The runner, the only part that touches hosts.
    &["apply"],
    &["cli"],
    &["commands"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("src/{module}: give this module a row in LAYERS"))
}

/// A module path (`["plan", "upgrade"]`) for each source file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            let mut path = prefix.to_vec();
            if p.is_dir() {
                path.push(name);
                walk(&p, &path, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                // The crate's roots only declare modules and hand on to them.
                if prefix.is_empty() && matches!(name.as_str(), "lib" | "main") {
                    continue;
                }
                if name != "mod" {
                    path.push(name);
                }
                out.insert(path, p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// Every path that starts with `crate::`, `super::` or `self::`, braces expanded:
/// `use super::{a, b::{c, d}}` gives `super::a`, `super::b::c` and `super::b::d`.
fn paths(text: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let ident = |i: usize| {
        bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|s| bytes[i..].starts_with(s.as_bytes()) && (i == 0 || !ident(i - 1)));
        match starts {
            Some(s) => {
                let (found, end) = expand(text, i + s.len(), vec![s[..s.len() - 2].to_string()]);
                out.extend(found);
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// Reads one path from `at` (after `prefix::`): identifiers joined by `::`, then maybe a group.
fn expand(text: &str, mut at: usize, mut prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    loop {
        while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
            at += 1;
        }
        if bytes.get(at) == Some(&b'{') {
            let mut out = Vec::new();
            at += 1;
            loop {
                while bytes
                    .get(at)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
                {
                    at += 1;
                }
                if bytes.get(at).is_none_or(|b| *b == b'}') {
                    return (out, at + 1);
                }
                let (found, end) = expand(text, at, prefix.clone());
                out.extend(found);
                at = end;
            }
        }
        let start = at;
        while bytes
            .get(at)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            at += 1;
        }
        if at > start {
            prefix.push(text[start..at].to_string());
        }
        if bytes[at..].starts_with(b"::") {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

/// The file a path names: its longest prefix that is a module of `files`.
fn resolve(
    files: &BTreeMap<Vec<String>, PathBuf>,
    here: &[String],
    is_mod: bool,
    path: &[String],
) -> Option<Vec<String>> {
    let mut base: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        "self" if is_mod => here.to_vec(),
        "self" | "super" if !is_mod => here[..here.len() - 1].to_vec(),
        "super" => here[..here.len().checked_sub(1)?].to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    let mut found = files.contains_key(&base).then(|| base.clone());
    for seg in rest {
        base.push(seg.clone());
        if files.contains_key(&base) {
            found = Some(base.clone());
        } else {
            break;
        }
    }
    found
}

fn imports() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    let mut graph = BTreeMap::new();
    for (module, file) in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text
            .split("\n#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let is_mod = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let mut to = BTreeSet::new();
        for p in paths(&code) {
            if let Some(target) = resolve(&files, module, is_mod, &p) {
                if &target != module && !target.is_empty() {
                    to.insert(target);
                }
            }
        }
        graph.insert(module.clone(), to);
    }
    graph
}

fn show(m: &[String]) -> String {
    m.join("::")
}

#[test]
fn no_module_imports_from_a_layer_above_its_own_or_its_own_layer() {
    let mut wrong = Vec::new();
    for (from, to) in imports() {
        let Some(top) = from.first() else { continue };
        for t in to {
            let (a, b) = (layer(top), layer(&t[0]));
            if t[0] != *top && b >= a {
                wrong.push(format!("{} imports {}", show(&from), show(&t)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let graph = imports();
    let mut circles = Vec::new();
    for (from, to) in &graph {
        for t in to {
            if from < t && graph.get(t).is_some_and(|back| back.contains(from)) {
                circles.push(format!("{} and {}", show(from), show(t)));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "files that import each other:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_relative_imports() {
    let p = paths("use super::{a, b::{c, d}};\nlet x = crate::plan::upgrade::Move;\nmy_crate::x");
    let want: Vec<Vec<String>> = [
        &["super", "a"][..],
        &["super", "b", "c"],
        &["super", "b", "d"],
        &["crate", "plan", "upgrade", "Move"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(p, want);
}
