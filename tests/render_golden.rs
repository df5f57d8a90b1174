//! Golden trees of `provisioner render`. Key material changes on every run, so keys are replaced
//! by a marker and certificates by a summary of what they say (subject, issuer, SANs, usages,
//! validity); everything else is compared byte for byte, modes included.
//!
//! To accept a change: `UPDATE_GOLDEN=1 cargo test --test render_golden`, then review the diff.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use common::{repo, Tree, Workspace};

fn cert_summary(pem: &str) -> String {
    let i = provisioner::pki::inspect::parse(pem).expect("a rendered certificate parses");
    let mut usages = Vec::new();
    if i.server_auth {
        usages.push("serverAuth");
    }
    if i.client_auth {
        usages.push("clientAuth");
    }
    format!(
        "certificate\n  subject: {}\n  issuer: {}\n  SANs: {}\n  CA: {}\n  extended key usage: {}\n  key: {}\n  validity: {} days\n",
        i.subject,
        i.issuer,
        i.sans().join(", "),
        i.is_ca,
        usages.join(", "),
        i.key_algorithm,
        (i.not_after - i.not_before) / 86_400
    )
}

fn b64_text(value: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .expect("kubeconfig data is base64");
    String::from_utf8(bytes).expect("PEM text")
}

/// Replaces key material with stable descriptions.
fn normalize(path: &str, content: &[u8]) -> String {
    let text = String::from_utf8_lossy(content);
    if text.starts_with("-----BEGIN CERTIFICATE") {
        return cert_summary(&text);
    }
    if text.starts_with("-----BEGIN PRIVATE KEY") {
        return "<private key>\n".into();
    }
    if text.starts_with("-----BEGIN PUBLIC KEY") {
        return "<public key>\n".into();
    }
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let replaced = if let Some(v) = trimmed.strip_prefix("certificate-authority-data: ") {
            Some(format!(
                "certificate-authority-data: <{}>",
                one_line(&cert_summary(&b64_text(v)))
            ))
        } else if let Some(v) = trimmed.strip_prefix("client-certificate-data: ") {
            Some(format!(
                "client-certificate-data: <{}>",
                one_line(&cert_summary(&b64_text(v)))
            ))
        } else if trimmed.starts_with("client-key-data: ") {
            Some("client-key-data: <private key>".to_string())
        } else if trimmed.starts_with("secret: ") && path.ends_with("encryption-config.yaml") {
            let key = base64::engine::general_purpose::STANDARD
                .decode(trimmed["secret: ".len()..].trim())
                .expect("the encryption key is base64");
            Some(format!("secret: <{}-byte key>", key.len()))
        } else {
            None
        };
        out.push_str(indent);
        out.push_str(replaced.as_deref().unwrap_or(trimmed));
        out.push('\n');
    }
    out
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join("; ")
}

fn normalized_tree(tree: &Tree) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut modes = String::new();
    for (rel, (mode, content)) in &tree.files {
        modes.push_str(&format!("{mode:04o} {rel}\n"));
        files.insert(rel.clone(), normalize(rel, content));
    }
    files.insert("MODES".into(), modes);
    files
}

fn check_golden(case: &str, inventory: &Path) {
    let ws = Workspace::with_inventory(inventory);
    let actual = normalized_tree(&ws.render());
    let golden_dir = repo().join("tests/golden").join(case);

    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden_dir);
        for (rel, content) in &actual {
            let p = golden_dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        return;
    }

    let expected = Tree::read(&golden_dir);
    let expected: BTreeMap<String, String> = expected
        .files
        .into_iter()
        .map(|(k, (_, c))| (k, String::from_utf8(c).unwrap()))
        .collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{case}: rendered files differ from the golden tree\n  missing: {missing:?}\n  unexpected: {extra:?}\n\
         (UPDATE_GOLDEN=1 rewrites tests/golden/{case})"
    );
    for (rel, want) in &expected {
        let got = &actual[rel];
        if got != want {
            let diff = similar::TextDiff::from_lines(want, got)
                .unified_diff()
                .context_radius(2)
                .header("golden", "rendered")
                .to_string();
            panic!(
                "{case}: {rel} differs from the golden file:\n{diff}\n(UPDATE_GOLDEN=1 rewrites tests/golden/{case})"
            );
        }
    }
}

#[test]
fn golden_all_in_one() {
    check_golden(
        "all-in-one",
        &common::fixture("inventories/all-in-one.toml"),
    );
}

#[test]
fn golden_default_inventory_three_control_planes_two_workers() {
    check_golden("ha-3cp-2w", &repo().join("inventory.toml"));
}

#[test]
fn golden_oldest_supported_minor() {
    check_golden("oldest-1.35", &common::fixture("inventories/oldest.toml"));
}

#[test]
fn golden_newest_supported_minor() {
    check_golden("newest-1.37", &common::fixture("inventories/newest.toml"));
}

#[test]
fn normalization_keeps_identities_visible() {
    // The golden comparison is only worth something if a changed identity changes the summary.
    let ws = Workspace::with_inventory(&common::fixture("inventories/all-in-one.toml"));
    let tree = ws.render();
    let apiserver = normalize(
        "x",
        &tree.files["node-1/etc/kubernetes/pki/apiserver.crt"].1,
    );
    assert!(apiserver.contains("CN=kube-apiserver"), "{apiserver}");
    assert!(
        apiserver.contains("DNS:kubernetes.default.svc.cluster.local"),
        "{apiserver}"
    );
    let kubelet = normalize("x", &tree.files["node-1/etc/kubernetes/kubelet.conf"].1);
    assert!(kubelet.contains("CN=system:node:node-1"), "{kubelet}");
    assert!(
        !kubelet.contains("LS0t"),
        "base64 PEM must not reach the golden files"
    );
}
