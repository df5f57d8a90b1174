//! The state directory: created with safe modes, reused as is, never silently regenerated; identity
//! changes are reported as stale and only missing certificates are issued.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{repo, text, Workspace};

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let tree = common::Tree::read(dir);
    tree.files.into_iter().map(|(k, (_, c))| (k, c)).collect()
}

#[test]
fn state_directory_modes_are_private() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    ws.render();
    let tree = common::Tree::read(&ws.state());
    let mut keys = 0;
    for (rel, (mode, content)) in &tree.files {
        let secret = rel.ends_with(".key") || rel.ends_with("encryption-key");
        if secret {
            keys += 1;
            assert_eq!(*mode, 0o600, "{rel}");
        } else if rel == ".lock" {
            assert!(
                content.is_empty() && *mode == 0o600,
                "the run lock is empty and private"
            );
        } else {
            assert!(
                String::from_utf8_lossy(content).contains("-----BEGIN"),
                "{rel}"
            );
        }
    }
    assert!(keys >= 24, "{keys} secrets");
    for dir in ["", "pki", "pki/etcd", "pki/hosts/cp-1", "secrets"] {
        let mode = std::fs::metadata(ws.state().join(dir))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700, "state dir {dir:?}");
    }
    let out_mode = std::fs::metadata(ws.out()).unwrap().permissions().mode() & 0o777;
    assert_eq!(out_mode, 0o700, "the render output holds keys");
}

#[test]
fn a_second_render_reuses_everything_and_writes_the_same_files() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    let first = ws.render();
    let state_before = snapshot(&ws.state());
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    assert!(o.status.success());
    let stderr = text(&o.stderr);
    assert!(
        !stderr.contains("issued") && !stderr.contains("created"),
        "{stderr}"
    );
    assert_eq!(
        snapshot(&ws.state()),
        state_before,
        "the state directory changed"
    );
    let second = common::Tree::read(&ws.out());
    assert_eq!(first.files, second.files, "rendering is not deterministic");
}

#[test]
fn identity_changes_are_reported_and_only_missing_certificates_issued() {
    let base = std::fs::read_to_string(repo().join("inventory.toml")).unwrap();
    let ws = Workspace::with_text(&base);
    ws.render();
    let api_before = std::fs::read(ws.state().join("pki/apiserver.crt")).unwrap();
    let w1_before =
        std::fs::read(ws.state().join("pki/hosts/worker-1/kubelet-server.crt")).unwrap();

    let changed = base.replace("extra_sans = []", "extra_sans = [\"api.demo.example\"]")
        + "\n[[hosts]]\nname = \"worker-3\"\naddress = \"10.88.0.16\"\nroles = [\"worker\"]\n";
    ws.write_inventory(&changed);
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("issued 2 certificate(s): kubelet-client@worker-3, kubelet-server@worker-3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apiserver: missing SAN DNS:api.demo.example"),
        "{stderr}"
    );
    assert!(
        stderr.contains("provisioner certs regenerate"),
        "the message must say how to replace them:\n{stderr}"
    );
    assert_eq!(
        std::fs::read(ws.state().join("pki/apiserver.crt")).unwrap(),
        api_before,
        "a stale cert was replaced silently"
    );
    assert_eq!(
        std::fs::read(ws.state().join("pki/hosts/worker-1/kubelet-server.crt")).unwrap(),
        w1_before
    );

    // The stale certificate is also flagged by `certs list`.
    let o = ws.run(&["certs", "list", "--output", "json"]);
    assert!(o.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let api = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "apiserver")
        .unwrap();
    assert!(
        api["stale"].to_string().contains("api.demo.example"),
        "{api}"
    );
}

#[test]
fn a_new_control_plane_host_reissues_the_api_server_certificate_and_nothing_else() {
    let base = std::fs::read_to_string(repo().join("inventory.toml")).unwrap();
    let ws = Workspace::with_text(&base);
    ws.render();
    let before = snapshot(&ws.state().join("pki"));
    let cp4 = "\n[[hosts]]\nname = \"cp-4\"\naddress = \"10.88.0.16\"\nroles = [\"etcd\", \"control-plane\"]\n";

    // With another identity change besides, nothing is replaced: that one is the operator's.
    let both = base.replace("extra_sans = []", "extra_sans = [\"api.demo.example\"]") + cp4;
    ws.write_inventory(&both);
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("apiserver: missing SAN DNS:api.demo.example"),
        "{stderr}"
    );
    assert!(!stderr.contains("reissued"), "{stderr}");
    let api_before = &before.iter().find(|(p, _)| p == "apiserver.crt").unwrap().1;
    assert_eq!(
        &std::fs::read(ws.state().join("pki/apiserver.crt")).unwrap(),
        api_before
    );

    ws.write_inventory(&(base + cp4));
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    let stderr = text(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("reissued apiserver for the new control-plane host(s) (missing SAN DNS:cp-4; missing SAN IP:10.88.0.16)"),
        "{stderr}"
    );
    assert!(!stderr.contains("no longer match"), "{stderr}");
    let sans = common::tool_ok(
        "openssl",
        &[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            ws.state().join("pki/apiserver.crt").to_str().unwrap(),
        ],
    );
    assert!(
        sans.contains("DNS:cp-4") && sans.contains("IP Address:10.88.0.16"),
        "{sans}"
    );
    // Every other certificate and key of the cluster is the same.
    let after = snapshot(&ws.state().join("pki"));
    for (path, content) in &before {
        let now = &after.iter().find(|(p, _)| p == path).unwrap().1;
        if !path.starts_with("apiserver.") {
            assert_eq!(now, content, "{path} changed");
        } else {
            assert_ne!(now, content, "{path} was not reissued");
        }
    }
}

#[test]
fn a_missing_ca_key_is_an_error_not_a_new_ca() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    ws.render();
    std::fs::remove_file(ws.state().join("pki/etcd/ca.key")).unwrap();
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("etcd/ca.crt") && text(&o.stderr).contains("backup"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !ws.state().join("pki/etcd/ca.key").exists(),
        "a CA key was regenerated"
    );

    // Losing both halves of a CA while its certificates remain is refused too.
    std::fs::remove_file(ws.state().join("pki/etcd/ca.crt")).unwrap();
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("etcd-ca certificate authority is missing"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn render_refuses_to_replace_a_directory_it_did_not_write() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    std::fs::create_dir_all(ws.out()).unwrap();
    std::fs::write(ws.out().join("precious.txt"), "keep me").unwrap();
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("not written by `provisioner render`"));
    assert!(ws.out().join("precious.txt").exists());
}

#[test]
fn certs_list_shows_every_certificate() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    let before = ws.run(&["certs", "list"]);
    assert!(text(&before.stdout).contains("not issued yet"));
    assert!(
        !ws.state().join("pki").exists(),
        "certs list must not create anything"
    );
    ws.render();
    let o = ws.run(&["certs", "list"]);
    let out = text(&o.stdout);
    assert!(o.status.success());
    for needle in [
        "apiserver\n  subject:   CN=kube-apiserver\n  issuer:    CN=kubernetes-ca",
        "etcd-peer@cp-2\n  subject:   CN=cp-2\n  issuer:    CN=etcd-ca",
        "kubelet-client@worker-1\n  subject:   O=system:nodes, CN=system:node:worker-1",
        "DNS:kubernetes.default.svc.cluster.local",
        "not after:",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&ws.run(&["certs", "list", "--output", "json"]).stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(
        rows.len(),
        3 + 11 + 3 * 2 + 3 * 2 + 2 * 2,
        "3 CAs, 11 shared leaves (kube-router's with it), per-host etcd, control-plane serving and \
         kubelet pairs"
    );
    assert!(rows.iter().all(
        |r| r["info"]["not_after"].as_i64().unwrap() > 0 && r["stale"] == serde_json::json!([])
    ));
}

#[test]
fn kubeconfig_prints_the_admin_kubeconfig_and_nothing_else() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    let tree = ws.render();
    let o = ws.run(&["kubeconfig"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, tree.files["admin.kubeconfig"].1);
}

#[test]
fn schema_describes_the_inventory_strictly() {
    let o = common::provisioner(&["schema"]);
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    for key in [
        "cluster", "network", "api", "ssh", "hosts", "pki", "versions",
    ] {
        assert!(schema["properties"][key].is_object(), "schema lacks {key}");
    }
    let host = &schema["$defs"]["Host"];
    assert_eq!(host["additionalProperties"], false);
    assert!(host["required"]
        .as_array()
        .unwrap()
        .contains(&"roles".into()));
}

/// Every complete credential of a state directory: each key, certificate and secret.
fn credentials(state: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    if !state.exists() {
        return Default::default();
    }
    common::Tree::read(state)
        .files
        .into_iter()
        .filter(|(k, _)| {
            !k.contains(".journal")
                && !k.ends_with(".tmp")
                && !k.starts_with("bundles")
                && (k.ends_with(".key")
                    || k.ends_with(".crt")
                    || k.ends_with(".pub")
                    || k.ends_with("encryption-key"))
        })
        .map(|(k, (_, c))| (k, c))
        .collect()
}

/// A render killed at a write point (the test hook aborts the process there, as `kill -9`
/// would), then run again, converges: every pair complete, nothing left half written, and no
/// key or certificate that existed after the crash replaced by a new one. Needs the
/// `test-hooks` feature: without it nothing crashes and the test fails.
#[test]
fn render_converges_after_a_crash_at_any_write_point() {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    let out = ws.out();
    let args = ["render", "--out", out.to_str().unwrap()];
    let mut crashes = 0;
    // Every point of the CA, key-pair and journal writes, then a sample of the leaf writes.
    let points = (1..=60).chain((61..2000).step_by(9));
    for n in points {
        std::fs::remove_dir_all(ws.state()).ok();
        std::fs::remove_dir_all(&out).ok();
        let at = n.to_string();
        let o = ws.run_env(&args, &[(provisioner::testhook::CRASH_AT, &at)]);
        if o.status.success() {
            break;
        }
        let err = text(&o.stderr);
        assert!(
            err.contains(&format!("crashing at write point {n}")),
            "render failed without the hook crashing it:\n{err}"
        );
        crashes += 1;
        let before = credentials(&ws.state());
        let o = ws.run(&args);
        assert!(
            o.status.success(),
            "resume after a crash at point {n}:\n{}",
            text(&o.stderr)
        );
        let after = credentials(&ws.state());
        for (file, content) in &before {
            assert_eq!(
                Some(content),
                after.get(file),
                "point {n}: {file} was replaced"
            );
        }
        for file in after.keys().filter(|f| f.ends_with(".crt")) {
            let key = file.replace(".crt", ".key");
            assert!(after.contains_key(&key), "point {n}: {file} without {key}");
        }
        let leftovers: Vec<String> = common::Tree::read(&ws.state())
            .files
            .into_keys()
            .filter(|k| k.contains(".journal") || k.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "point {n}: {leftovers:?}");
    }
    assert!(
        crashes > 60,
        "only {crashes} crash(es): run the tests with --features test-hooks"
    );
}
