//! Every rendered artifact checked by the real tool that will consume or inspect it: openssl for
//! certificates and keys, kubectl for kubeconfigs, systemd-analyze for units, the test bundle's
//! caddy for the node-local API load balancer's configuration.

mod common;

use std::path::{Path, PathBuf};

use common::{repo, text, tool, tool_ok, Tree, Workspace};

fn rendered_default() -> (Workspace, Tree) {
    let ws = Workspace::with_inventory(&repo().join("inventory.toml"));
    let tree = ws.render();
    (ws, tree)
}

/// The CA file in the state directory that should have signed a certificate, by issuer.
fn ca_for(state: &Path, issuer: &str) -> PathBuf {
    let stem = match issuer {
        "CN=kubernetes-ca" => "ca",
        "CN=etcd-ca" => "etcd/ca",
        "CN=kubernetes-front-proxy-ca" => "front-proxy-ca",
        other => panic!("unexpected issuer {other}"),
    };
    state.join("pki").join(format!("{stem}.crt"))
}

fn openssl_verify(ca: &Path, cert: &Path, purpose: &str) -> (bool, String) {
    let o = tool(
        "openssl",
        &[
            "verify",
            "-purpose",
            purpose,
            "-CAfile",
            ca.to_str().unwrap(),
            cert.to_str().unwrap(),
        ],
    );
    (o.status.success(), text(&o.stdout) + &text(&o.stderr))
}

#[test]
fn every_certificate_verifies_against_its_ca_and_fails_against_the_others() {
    let (ws, tree) = rendered_default();
    let state = ws.state();
    let cas =
        ["ca", "etcd/ca", "front-proxy-ca"].map(|s| state.join("pki").join(format!("{s}.crt")));
    let mut checked = 0;
    for rel in tree.matching(".crt") {
        let info = provisioner::pki::inspect::parse(&tree.text(rel)).unwrap();
        if info.is_ca {
            continue;
        }
        let path = tree.path(rel);
        let right = ca_for(&state, &info.issuer);
        let purpose = if info.server_auth {
            "sslserver"
        } else {
            "sslclient"
        };
        let (ok, out) = openssl_verify(&right, &path, purpose);
        assert!(
            ok && out.contains(": OK"),
            "{rel} does not verify against {}: {out}",
            right.display()
        );
        for wrong in cas.iter().filter(|c| **c != right) {
            let (ok, out) = openssl_verify(wrong, &path, purpose);
            assert!(
                !ok,
                "{rel} verified against the wrong CA {}: {out}",
                wrong.display()
            );
        }
        checked += 1;
    }
    // 3 control planes × (4 apiserver certs, etcd server/peer/healthcheck, controller-manager and
    // scheduler serving) + 2 workers' kubelet serving certs.
    assert_eq!(checked, 3 * 9 + 2, "unexpected number of leaf certificates");
}

#[test]
fn every_private_key_matches_its_certificate() {
    let (_ws, tree) = rendered_default();
    let mut pairs = 0;
    for rel in tree.matching(".key") {
        let crt = rel.trim_end_matches(".key").to_string() + ".crt";
        if !tree.files.contains_key(&crt) {
            assert!(
                rel.ends_with("sa.key"),
                "{rel} has no certificate beside it"
            );
            continue;
        }
        let from_key = tool(
            "openssl",
            &["pkey", "-in", tree.path(rel).to_str().unwrap(), "-pubout"],
        );
        let from_crt = tool(
            "openssl",
            &[
                "x509",
                "-in",
                tree.path(&crt).to_str().unwrap(),
                "-noout",
                "-pubkey",
            ],
        );
        assert!(
            from_key.status.success(),
            "openssl cannot read {rel}: {}",
            text(&from_key.stderr)
        );
        assert_eq!(
            text(&from_key.stdout),
            text(&from_crt.stdout),
            "{rel} does not belong to {crt}"
        );
        assert_eq!(tree.files[rel].0, 0o600, "{rel} must be 0600");
        pairs += 1;
    }
    assert!(pairs >= 20, "only {pairs} key pairs found");
}

fn x509_text(path: &Path) -> String {
    tool_ok(
        "openssl",
        &["x509", "-in", path.to_str().unwrap(), "-noout", "-text"],
    )
}

#[test]
fn sans_and_key_usages_are_what_kubernetes_expects() {
    let (_ws, tree) = rendered_default();
    let api = x509_text(&tree.path("cp-2/etc/kubernetes/pki/apiserver.crt"));
    for san in [
        "DNS:kubernetes,",
        "DNS:kubernetes.default,",
        "DNS:kubernetes.default.svc,",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:cp-1",
        "DNS:cp-3",
        "IP Address:10.32.0.1",
        "IP Address:127.0.0.1",
        "IP Address:10.88.0.11",
        "IP Address:10.88.0.12",
        "IP Address:10.88.0.13",
    ] {
        assert!(
            api.contains(san),
            "apiserver certificate lacks {san}:\n{api}"
        );
    }
    assert!(api.contains("TLS Web Server Authentication"));
    assert!(!api.contains("TLS Web Client Authentication"));

    let etcd = x509_text(&tree.path("cp-1/etc/kubernetes/pki/etcd/server.crt"));
    for s in [
        "DNS:cp-1",
        "DNS:localhost",
        "IP Address:10.88.0.11",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
    ] {
        assert!(
            etcd.contains(s),
            "etcd server certificate lacks {s}:\n{etcd}"
        );
    }
    assert!(etcd.contains("TLS Web Server Authentication, TLS Web Client Authentication"));

    let kubelet = x509_text(&tree.path("worker-2/var/lib/kubelet/pki/kubelet.crt"));
    assert!(
        kubelet.contains("DNS:worker-2") && kubelet.contains("IP Address:10.88.0.15"),
        "{kubelet}"
    );
    assert!(
        kubelet.contains("Subject: O = system:nodes, CN = system:node:worker-2"),
        "{kubelet}"
    );

    for rel in tree.matching(".crt") {
        let t = x509_text(&tree.path(rel));
        assert!(
            !t.contains("Key Encipherment"),
            "{rel}: keyEncipherment is meaningless on an ECDSA key"
        );
        assert!(
            t.contains("Digital Signature"),
            "{rel} lacks digitalSignature"
        );
        assert!(
            t.contains("ecdsa-with-SHA256"),
            "{rel} is not signed with ECDSA P-256"
        );
    }
}

/// What each kubeconfig must authenticate as.
fn expected_identity(rel: &str) -> (String, Option<&'static str>) {
    let host = rel.split('/').next().unwrap();
    match rel.rsplit('/').next().unwrap() {
        "admin.conf" | "admin.kubeconfig" => {
            ("kubernetes-admin".into(), Some("kubeadm:cluster-admins"))
        }
        "controller-manager.conf" => ("system:kube-controller-manager".into(), None),
        "scheduler.conf" => ("system:kube-scheduler".into(), None),
        "kubelet.conf" => (format!("system:node:{host}"), Some("system:nodes")),
        "kube-proxy.conf" => ("system:kube-proxy".into(), None),
        "kube-router.conf" => ("system:kube-router".into(), None),
        other => panic!("unexpected kubeconfig {other}"),
    }
}

#[test]
fn kubectl_reads_every_kubeconfig_and_its_client_cert_chains_to_the_cluster_ca() {
    let (ws, tree) = rendered_default();
    let ca = ws.state().join("pki/ca.crt");
    let scratch = tempfile::tempdir().unwrap();
    let kubeconfigs: Vec<&String> = tree
        .files
        .keys()
        .filter(|k| {
            k.ends_with(".conf") && k.contains("/etc/kubernetes/")
                || k.as_str() == "admin.kubeconfig"
        })
        .collect();
    // Control planes: admin, controller-manager, scheduler; workers: kubelet, kube-proxy,
    // kube-router; and the operator's admin.kubeconfig.
    assert_eq!(kubeconfigs.len(), 3 * 3 + 2 * 3 + 1);
    for rel in kubeconfigs {
        let path = tree.path(rel);
        let view = |jsonpath: &str| {
            let o = tool(
                "kubectl",
                &[
                    "config",
                    "view",
                    "--raw",
                    "--kubeconfig",
                    path.to_str().unwrap(),
                    "-o",
                    &format!("jsonpath={jsonpath}"),
                ],
            );
            assert!(
                o.status.success(),
                "kubectl cannot read {rel}: {}",
                text(&o.stderr)
            );
            text(&o.stdout)
        };
        let server = view("{.clusters[0].cluster.server}");
        // The workers' nodes go through their node-local load balancer.
        let expected = if rel.starts_with("worker-") && !rel.ends_with("/admin.conf") {
            server == "https://127.0.0.1:6444"
        } else {
            server.starts_with("https://10.88.0.1") && server.ends_with(":6443")
        };
        assert!(expected, "{rel}: server {server}");
        let ctx = view("{.current-context}");
        assert!(ctx.ends_with("@demo"), "{rel}: current-context {ctx}");

        let cert_path = scratch.path().join("client.crt");
        let cert = base64_decode(&view("{.users[0].user.client-certificate-data}"));
        std::fs::write(&cert_path, &cert).unwrap();
        let (ok, out) = openssl_verify(&ca, &cert_path, "sslclient");
        assert!(
            ok,
            "{rel}: client certificate does not chain to the cluster CA: {out}"
        );

        let ca_data = base64_decode(&view("{.clusters[0].cluster.certificate-authority-data}"));
        assert_eq!(
            ca_data,
            std::fs::read(&ca).unwrap(),
            "{rel} embeds a different CA"
        );

        let info = provisioner::pki::inspect::parse(&String::from_utf8(cert).unwrap()).unwrap();
        let (cn, org) = expected_identity(rel);
        assert_eq!(info.common_name, cn, "{rel}");
        assert_eq!(
            info.organizations,
            org.map(String::from).into_iter().collect::<Vec<_>>(),
            "{rel}"
        );
        assert_eq!(
            tree.files[rel].0, 0o600,
            "{rel} holds a private key and must be 0600"
        );
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .expect("base64")
}

/// A root directory systemd-analyze can verify units in: systemd's own units, and an executable
/// placeholder at every path the units start.
fn analyze_root(units: &[(String, String)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let lib = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    tool_ok(
        "cp",
        &["-r", "/usr/lib/systemd/system", lib.to_str().unwrap()],
    );
    let sysdir = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&sysdir).unwrap();
    for (name, content) in units {
        std::fs::write(sysdir.join(name), content).unwrap();
        for line in content.lines() {
            let Some(cmd) = line
                .split_once('=')
                .filter(|(k, _)| k.starts_with("Exec"))
                .map(|(_, v)| v)
            else {
                continue;
            };
            let exe = cmd
                .trim_start_matches(['-', '@', '+', '!'])
                .split_whitespace()
                .next()
                .unwrap();
            let p = root.path().join(exe.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    root
}

fn analyze(units: &[(String, String)]) -> (bool, String) {
    let root = analyze_root(units);
    let mut args = vec![
        "verify".to_string(),
        format!("--root={}", root.path().display()),
    ];
    args.extend(
        units
            .iter()
            .map(|(n, _)| format!("/etc/systemd/system/{n}")),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = tool("systemd-analyze", &args);
    (o.status.success(), text(&o.stdout) + &text(&o.stderr))
}

#[test]
fn systemd_analyze_verify_is_silent_for_every_unit() {
    let (_ws, tree) = rendered_default();
    for host in tree.hosts() {
        let units: Vec<(String, String)> = tree
            .files
            .keys()
            .filter(|k| k.starts_with(&format!("{host}/etc/systemd/system/")))
            .map(|k| (k.rsplit('/').next().unwrap().to_string(), tree.text(k)))
            .collect();
        assert!(!units.is_empty(), "{host} has no units");
        let (ok, out) = analyze(&units);
        assert!(
            ok && out.trim().is_empty(),
            "systemd-analyze verify on {host}'s units:\n{out}"
        );
    }
}

#[test]
fn systemd_analyze_check_catches_a_bad_unit() {
    // The check above is only meaningful if systemd-analyze speaks up for a broken unit.
    let bad = "[Unit]\nDescription=x\n[Service]\nExecStart=/usr/local/bin/x\nRestartt=always\n"
        .to_string();
    let (_, out) = analyze(&[("bad.service".into(), bad)]);
    assert!(
        out.contains("Unknown key") && out.contains("Restartt"),
        "{out}"
    );
}

#[test]
fn caddy_accepts_the_node_local_load_balancer_config_and_refuses_a_broken_one() {
    let (_ws, tree) = rendered_default();
    let caddy = common::bundle::dir().join("bin/caddy");
    let configs: Vec<&String> = tree
        .files
        .keys()
        .filter(|k| k.ends_with("/etc/kubernetes/kube-api-lb.json"))
        .collect();
    assert_eq!(configs.len(), 2, "the default inventory's two workers");
    let scratch = tempfile::tempdir().unwrap();
    let validate = |text: &str| {
        let file = scratch.path().join("kube-api-lb.json");
        std::fs::write(&file, text).unwrap();
        let o = tool(
            caddy.to_str().unwrap(),
            &["validate", "--config", file.to_str().unwrap()],
        );
        (o.status.success(), text_of(&o))
    };
    for k in configs {
        let config = tree.text(k);
        let (ok, out) = validate(&config);
        assert!(ok, "caddy validate {k}:\n{out}");
        // Only meaningful if caddy speaks up for a config its proxy cannot take.
        let broken = config.replace("\"least_conn\"", "\"fastest\"");
        assert_ne!(broken, config);
        let (ok, out) = validate(&broken);
        assert!(!ok && out.contains("fastest"), "{out}");
    }
}

fn text_of(o: &std::process::Output) -> String {
    text(&o.stdout) + &text(&o.stderr)
}
