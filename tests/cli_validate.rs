//! Invalid inventories: each must exit 2, name the offending key (and its line where it has one),
//! never panic, and `validate` must report every problem in one run.

mod common;

use common::{provisioner, sha256_hex, text, Workspace};

const GOOD_HEAD: &str = r#"
[cluster]
name = "demo"
kubernetes_version = "1.35.0"
"#;

const ONE_HOST: &str = r#"
[[hosts]]
name = "cp-1"
address = "10.88.0.11"
roles = ["etcd", "control-plane", "worker"]
"#;

/// (what is wrong, inventory text, key path the message must name)
fn cases() -> Vec<(&'static str, String, &'static str)> {
    let with = |extra: &str| format!("{GOOD_HEAD}{extra}{ONE_HOST}");
    let hosts = |h: &str| format!("{GOOD_HEAD}{h}");
    vec![
        ("unknown top-level table", with("[clusterr]\nname = \"x\"\n"), "clusterr"),
        ("unknown key in a table", with("[network]\npod_cidrr = \"10.200.0.0/16\"\n"), "network.pod_cidrr"),
        ("missing required key", format!("[cluster]\nname = \"demo\"\n{ONE_HOST}"), "cluster.kubernetes_version"),
        ("wrong value type", with("[ssh]\nport = \"22\"\n"), "ssh.port"),
        ("pause image that is a shell command", with("[versions]\npause_image = \"registry.k8s.io/pause:3.10.1';touch /pwned;'\"\n"), "versions.pause_image"),
        ("port out of range", with("[ssh]\nport = 70000\n"), "ssh.port"),
        ("CA validity past year 9999", with("[pki]\nca_validity_days = 3000000\n"), "pki.ca_validity_days"),
        ("certificate validity past year 9999", with("[pki]\ncert_validity_days = 4000000000\n"), "pki.cert_validity_days"),
        ("too many parallel connections", with("[ssh]\nparallelism = 100000\n"), "ssh.parallelism"),
        ("cluster name with capitals", format!("[cluster]\nname = \"Demo\"\nkubernetes_version = \"1.35.0\"\n{ONE_HOST}"), "cluster.name"),
        ("unsupported Kubernetes", format!("[cluster]\nname = \"demo\"\nkubernetes_version = \"1.29.4\"\n{ONE_HOST}"), "cluster.kubernetes_version"),
        ("malformed version", format!("[cluster]\nname = \"demo\"\nkubernetes_version = \"latest\"\n{ONE_HOST}"), "cluster.kubernetes_version"),
        ("bundle key without a bundle", format!("[cluster]\nname = \"demo\"\nkubernetes_version = \"1.35.0\"\nbundle_public_key = \"signing.pub\"\n{ONE_HOST}"), "cluster.bundle_public_key"),
        ("malformed pod CIDR", with("[network]\npod_cidr = \"10.200.0.0/33\"\n"), "network.pod_cidr"),
        ("pod CIDR with host bits", with("[network]\npod_cidr = \"10.200.1.0/16\"\n"), "network.pod_cidr"),
        ("overlapping CIDRs", with("[network]\npod_cidr = \"10.0.0.0/8\"\nservice_cidr = \"10.32.0.0/24\"\n"), "network.service_cidr"),
        ("DNS address outside the service range", with("[network]\ncluster_dns = \"10.99.0.10\"\n"), "network.cluster_dns"),
        ("DNS address on the kubernetes Service", with("[network]\ncluster_dns = \"10.32.0.1\"\n"), "network.cluster_dns"),
        ("unknown proxy mode", with("[network]\nproxy_mode = \"ipvs\"\n"), "network.proxy_mode"),
        ("unknown policy engine", with("[network]\npolicy = \"calico\"\n"), "network.policy"),
        ("IPv6 pod range listed first", with("[network]\npod_cidr = [\"fd00:10:244::/56\", \"10.200.0.0/16\"]\nservice_cidr = [\"10.32.0.0/24\", \"fd00:10:96::/112\"]\n"), "network.pod_cidr"),
        ("three pod ranges", with("[network]\npod_cidr = [\"10.200.0.0/16\", \"fd00:1::/56\", \"fd00:2::/56\"]\n"), "network.pod_cidr"),
        ("dual-stack pods, IPv4-only Services", with("[network]\npod_cidr = [\"10.200.0.0/16\", \"fd00:10:244::/56\"]\n"), "network.service_cidr"),
        ("IPv6 Service range too large", with("[network]\npod_cidr = [\"10.200.0.0/16\", \"fd00:10:244::/56\"]\nservice_cidr = [\"10.32.0.0/24\", \"fd00:10:96::/64\"]\n"), "network.service_cidr[1]"),
        ("IPv4 Service range too large", with("[network]\nservice_cidr = \"10.0.0.0/8\"\npod_cidr = \"172.16.0.0/16\"\n"), "network.service_cidr"),
        ("dual-stack host without an IPv6 address", with("[network]\npod_cidr = [\"10.200.0.0/16\", \"fd00:10:244::/56\"]\nservice_cidr = [\"10.32.0.0/24\", \"fd00:10:96::/112\"]\n"), "hosts[0].internal_ipv6"),
        ("IPv6 address in an IPv4-only cluster", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\ninternal_ipv6 = \"fd00:88::11\"\nroles = [\"etcd\", \"control-plane\", \"worker\"]\n"), "hosts[0].internal_ipv6"),
        ("unknown pod network mode", with("[network]\nmode = \"geneve\"\n"), "network.mode"),
        ("MTU too small for the overlay", with("[network]\nmode = \"vxlan\"\nmtu = 1300\n"), "network.mtu"),
        ("MTU past jumbo frames", with("[network]\nmtu = 65000\n"), "network.mtu"),
        ("bad API endpoint", with("[api]\nendpoint = \"10.88.0.11\"\n"), "api.endpoint"),
        ("unknown API load balancer", with("[api]\nload_balancer = \"haproxy\"\n"), "api.load_balancer"),
        ("bad extra SAN", with("[api]\nextra_sans = [\"ok.example\", \"not a name\"]\n"), "api.extra_sans[1]"),
        ("unknown key algorithm", with("[pki]\nkey_algorithm = \"dsa\"\n"), "pki.key_algorithm"),
        ("leaf outlives CA", with("[pki]\ncert_validity_days = 4000\nca_validity_days = 3650\n"), "pki.cert_validity_days"),
        ("containerd 1.x", format!("[cluster]\nname = \"demo\"\nkubernetes_version = \"1.35.0\"\n[versions]\ncontainerd = \"1.7.28\"\n{ONE_HOST}"), "versions.containerd"),
        ("etcd 3.4", with("[versions]\netcd = \"3.4.34\"\n"), "versions.etcd"),
        ("snapshot schedule that is not a calendar", with("[etcd]\nsnapshot_schedule = \"daily\\nExecStart=/bin/evil\"\n"), "etcd.snapshot_schedule"),
        ("no scheduled snapshot kept", with("[etcd]\nsnapshot_schedule = \"daily\"\nsnapshot_keep = 0\n"), "etcd.snapshot_keep"),
        ("ignore host keys", with("[ssh]\nhost_key_policy = \"ignore\"\n"), "ssh.host_key_policy"),
        ("bad bastion", with("[ssh]\nbastion = \"ops@:22\"\n"), "ssh.bastion"),
        ("bastion port out of range", with("[ssh]\nbastion = \"ops@[fd00::1]:0\"\n"), "ssh.bastion"),
        ("no hosts", GOOD_HEAD.to_string(), "hosts"),
        ("host without roles", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = []\n"), "hosts[0].roles"),
        ("unknown role", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\", \"master\"]\n"), "hosts[0].roles[2]"),
        ("duplicate host names", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\"]\n[[hosts]]\nname = \"a\"\naddress = \"10.88.0.12\"\nroles = [\"worker\"]\n"), "hosts[1].name"),
        ("duplicate addresses", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\"]\n[[hosts]]\nname = \"b\"\naddress = \"10.88.0.11\"\nroles = [\"worker\"]\n"), "hosts[1].address"),
        ("host name unusable in a certificate subject", hosts("[[hosts]]\nname = \"cp,O=system:masters\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\"]\n"), "hosts[0].name"),
        ("malformed address", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.300\"\nroles = [\"etcd\", \"control-plane\"]\n"), "hosts[0].address"),
        ("DNS address without internal_ip", hosts("[[hosts]]\nname = \"a\"\naddress = \"a.example\"\nroles = [\"etcd\", \"control-plane\"]\n"), "hosts[0].internal_ip"),
        ("host inside the pod range", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.200.3.4\"\nroles = [\"etcd\", \"control-plane\"]\n"), "hosts[0].address"),
        ("no etcd member", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"control-plane\", \"worker\"]\n"), "hosts"),
        ("no control plane", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"worker\"]\n"), "hosts"),
        ("host pod range outside pod_cidr", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\", \"worker\"]\npod_cidr = \"10.201.0.0/24\"\n"), "hosts[0].pod_cidr"),
        ("overlapping host pod ranges", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\", \"worker\"]\npod_cidr = \"10.200.0.0/24\"\n[[hosts]]\nname = \"b\"\naddress = \"10.88.0.12\"\nroles = [\"worker\"]\npod_cidr = \"10.200.0.128/25\"\n"), "hosts[1].pod_cidr"),
        ("bad host key pin", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\"]\nhost_key = \"MD5:aa:bb\"\n"), "hosts[0].host_key"),
        ("unknown eviction signal", with("[kubelet]\neviction_hard = { \"memory.availble\" = \"100Mi\" }\n"), "kubelet.eviction_hard.\"memory.availble\""),
        ("malformed eviction threshold", with("[kubelet]\neviction_hard = { \"nodefs.available\" = \"10 %\" }\n"), "kubelet.eviction_hard.\"nodefs.available\""),
        ("CoreDNS image that is a shell command", with("[versions]\ncoredns_image = \"coredns:1;reboot\"\n"), "versions.coredns_image"),
        ("cluster DNS without a worker", hosts("[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\"]\n"), "hosts"),
        ("registry name that is a URL", with("[[registries]]\nname = \"https://registry.k8s.io\"\nmirrors = [\"https://m.internal\"]\n"), "registries[0].name"),
        ("registry without mirrors", with("[[registries]]\nname = \"quay.io\"\nmirrors = []\n"), "registries[0].mirrors"),
        ("plain HTTP mirror", with("[[registries]]\nname = \"quay.io\"\nmirrors = [\"https://a.internal\", \"http://b.internal\"]\n"), "registries[0].mirrors[1]"),
        ("mirror URL with credentials", with("[[registries]]\nname = \"quay.io\"\nmirrors = [\"https://u:p@a.internal\"]\n"), "registries[0].mirrors[0]"),
        ("missing mirror CA file", with("[[registries]]\nname = \"quay.io\"\nmirrors = [\"https://a.internal\"]\nca_file = \"absent.pem\"\n"), "registries[0].ca_file"),
        ("the same registry twice", with("[[registries]]\nname = \"quay.io\"\nmirrors = [\"https://a.internal\"]\n[[registries]]\nname = \"quay.io\"\nmirrors = [\"https://b.internal\"]\n"), "registries[1].name"),
        ("TOML syntax error", "[cluster\nname = \"demo\"\n".to_string(), "line 1"),
    ]
}

#[test]
fn every_bad_inventory_exits_2_and_names_the_key() {
    let cases = cases();
    assert!(cases.len() >= 20);
    for (what, inventory, key) in cases {
        let ws = Workspace::with_text(&inventory);
        let o = ws.run(&["validate"]);
        let err = text(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{what}: exit code {:?}\n{err}",
            o.status.code()
        );
        assert!(
            err.contains(key),
            "{what}: the message does not name `{key}`:\n{err}"
        );
        // A position is known whenever the key, or the table it is missing from, is in the file.
        let top = key.split(['.', '[']).next().unwrap();
        if inventory.contains(top) {
            assert!(
                err.contains("line "),
                "{what}: the message has no line number:\n{err}"
            );
        }
        assert!(!err.contains("panicked"), "{what}: panicked:\n{err}");
        // The same inventory must stop render before anything is written.
        let r = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
        assert_eq!(r.status.code(), Some(2), "{what}: render exit code");
        assert!(
            !ws.state().exists() && !ws.out().exists(),
            "{what}: render wrote files for an invalid inventory"
        );
    }
}

#[test]
fn the_supported_minors_are_accepted_and_1_34_is_refused_with_the_reason() {
    for v in ["1.35.4", "1.36.3", "1.37.2"] {
        let ws = Workspace::with_text(&format!(
            "[cluster]\nname = \"demo\"\nkubernetes_version = \"{v}\"\n{ONE_HOST}"
        ));
        let o = ws.run(&["validate"]);
        assert!(o.status.success(), "{v}: {}", text(&o.stderr));
    }
    let ws = Workspace::with_text(&format!(
        "[cluster]\nname = \"demo\"\nkubernetes_version = \"1.34.4\"\n{ONE_HOST}"
    ));
    let o = ws.run(&["validate"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cluster.kubernetes_version")
            && err.contains("upstream support for 1.34 ended in October 2026")
            && err.contains("1.35.x to 1.37.x"),
        "{err}"
    );
}

#[test]
fn all_problems_are_reported_at_once_with_positions() {
    let inventory = r#"[cluster]
name = "Demo"
kubernetes_version = "1.35.0"

[network]
pod_cidr = "10.200.0.1/16"

[[hosts]]
name = "cp-1"
address = "10.88.0.11"
roles = ["etcd", "control-plane", "wrker"]

[[hosts]]
name = "cp-1"
address = "10.88.0.12"
roles = ["worker"]
"#;
    let ws = Workspace::with_text(inventory);
    let o = ws.run(&["validate"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    for expected in [
        "cluster.name (line 2, column 1)",
        "network.pod_cidr (line 6, column 1)",
        "did you mean 10.200.0.0/16?",
        "hosts[0].roles[2] (line 11, column 35)",
        "hosts[1].name (line 14, column 1)",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(err.contains("(4 errors)"), "{err}");
}

#[test]
fn unknown_keys_are_all_reported_with_suggestions() {
    let ws = Workspace::with_text(&format!(
        "{GOOD_HEAD}[ssh]\nidentity_fille = \"k\"\nhost_key_polcy = \"strict\"\n{ONE_HOST}"
    ));
    let err = text(&ws.run(&["validate"]).stderr);
    assert!(
        err.contains("ssh.identity_fille") && err.contains("did you mean `identity_file`?"),
        "{err}"
    );
    assert!(
        err.contains("ssh.host_key_policy`?") || err.contains("did you mean `host_key_policy`?"),
        "{err}"
    );
}

#[test]
fn warnings_do_not_fail_validation() {
    let two_etcd = format!(
        "{GOOD_HEAD}[[hosts]]\nname = \"a\"\naddress = \"10.88.0.11\"\nroles = [\"etcd\", \"control-plane\"]\n\
         [[hosts]]\nname = \"b\"\naddress = \"10.88.0.12\"\nroles = [\"etcd\", \"worker\"]\n"
    );
    let ws = Workspace::with_text(&two_etcd);
    let o = ws.run(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("warning: hosts") && text(&o.stderr).contains("odd number"));

    // Policies that nothing enforces are allowed, and said.
    let ws = Workspace::with_text(&format!("{two_etcd}[network]\npolicy = \"none\"\n"));
    let o = ws.run(&["validate"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("warning: network.policy")
            && text(&o.stderr).contains("not enforced"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn bash_completes_the_commands_with_the_script_completions_prints() {
    let o = provisioner(&["completions", "bash"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), &o.stdout).unwrap();
    // Real bash loads the script and asks its completion function for `provisioner ce<TAB>`.
    let probe = format!(
        "source {}; COMP_WORDS=(provisioner ce); COMP_CWORD=1; COMP_LINE='provisioner ce'; \
         COMP_POINT=14; _provisioner provisioner ce provisioner; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display()
    );
    let o = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "certs");
}

#[test]
fn the_bundled_inventory_is_valid() {
    let o = provisioner(&[
        "validate",
        common::repo().join("inventory.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("5 hosts (3 etcd, 3 control-plane, 2 worker)"));
}

#[test]
fn usage_errors_exit_2_and_missing_files_too() {
    assert_eq!(provisioner(&["render"]).status.code(), Some(2));
    assert_eq!(provisioner(&["frobnicate"]).status.code(), Some(2));
    let o = provisioner(&["validate", "/nonexistent/inventory.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("cannot read the file"));
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in [
        &["validate"][..],
        &["render"],
        &["kubeconfig"],
        &["certs", "list"],
        &["status"],
        &["etcd", "snapshot"],
        &["etcd", "restore"],
        &["schema"],
        &["completions"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let o = provisioner(&args);
        assert!(o.status.success(), "{cmd:?}");
        assert!(
            text(&o.stdout).contains("provisioner "),
            "{cmd:?} help has no example:\n{}",
            text(&o.stdout)
        );
    }
    let top = text(&provisioner(&["--help"]).stdout);
    assert!(
        top.contains("Exit codes") && top.contains("2  invalid input"),
        "{top}"
    );
}

#[test]
fn v_logs_debug_lines_on_stderr_and_nothing_without_it() {
    let inventory = common::repo().join("inventory.toml");
    let inventory = inventory.to_str().unwrap();
    let quiet = provisioner(&["validate", inventory]);
    assert_eq!(quiet.status.code(), Some(0), "{}", text(&quiet.stderr));
    // The bundled inventory reaches its three API servers through cp-1, which validate warns of.
    let quiet_err = text(&quiet.stderr);
    assert!(
        quiet_err.lines().all(|l| l.starts_with("warning: ")),
        "nothing but the inventory's warnings without -v:\n{quiet_err}"
    );

    for args in [
        &["-v", "validate", inventory][..],
        &["validate", inventory, "--verbose"],
        &["-vv", "validate", inventory],
    ] {
        let o = provisioner(args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(o.stdout, quiet.stdout, "{args:?}: -v changes stderr only");
        assert!(
            err.lines().any(|l| l.contains("DEBUG")
                && l.contains("provisioner::inventory")
                && l.contains("reading the inventory")),
            "{args:?}: no debug line:\n{err}"
        );
        assert!(!err.contains('\x1b'), "{args:?}: colours in a pipe:\n{err}");
    }

    let top = text(&provisioner(&["--help"]).stdout);
    assert!(
        top.contains("-v, --verbose") && top.contains("-vv"),
        "{top}"
    );
}

/// A bundle directory holding only a manifest that names etcd `etcd`.
fn bundle_with_etcd(dir: &std::path::Path, etcd: &str) -> std::path::PathBuf {
    let b = dir.join("bundle");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("manifest.toml"),
        format!(
            "[bundle]\nformat = 1\narch = \"amd64\"\nkubernetes_version = \"1.35.0\"\n\n\
             [[files]]\nname = \"etcd\"\ncomponent = \"etcd\"\nversion = \"{etcd}\"\npath = \"bin/etcd\"\n\
             sha256 = \"{}\"\nsize = 1\nmode = \"0755\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    b
}

#[test]
fn a_bundle_without_the_coredns_image_is_refused_while_cluster_dns_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("bundle");
    std::fs::create_dir_all(b.join("bin")).unwrap();
    std::fs::write(b.join("bin/etcd"), b"x").unwrap();
    std::fs::write(
        b.join("manifest.toml"),
        format!(
            "[bundle]\nformat = 1\narch = \"amd64\"\nkubernetes_version = \"1.35.0\"\n\n\
             [[files]]\nname = \"etcd\"\ncomponent = \"etcd\"\nversion = \"3.6.6\"\npath = \"bin/etcd\"\n\
             sha256 = \"{}\"\nsize = 1\nmode = \"0755\"\n",
            sha256_hex(b"x")
        ),
    )
    .unwrap();
    let head = format!(
        "[cluster]\nname = \"demo\"\nkubernetes_version = \"1.35.0\"\nbundle = \"{}\"\n",
        b.display()
    );
    // Refused before any host is contacted.
    let ws = Workspace::with_text(&format!("{head}{ONE_HOST}"));
    let o = ws.run(&["plan"]);
    let err = text(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("carries no CoreDNS image") && err.contains("[addons] coredns = false"),
        "{err}"
    );
    assert!(!err.contains("connect"), "{err}");
}

#[test]
fn the_bundle_decides_component_versions_and_a_different_pin_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = bundle_with_etcd(dir.path(), "3.5.1");
    let head = format!(
        "[cluster]\nname = \"demo\"\nkubernetes_version = \"1.35.0\"\nbundle = \"{}\"\n",
        bundle.display()
    );
    // Unpinned: the bundle's etcd is used (with its warning), the inventory is valid.
    let ws = Workspace::with_text(&format!("{head}{ONE_HOST}"));
    let o = ws.run(&["validate"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("etcd 3.5.1 is older than 3.5.24"),
        "{}",
        text(&o.stderr)
    );
    // Pinned to another version: exit 2 at the key, naming both versions.
    let ws = Workspace::with_text(&format!(
        "{head}\n[versions]\netcd = \"3.5.24\"\n{ONE_HOST}"
    ));
    let o = ws.run(&["validate"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("versions.etcd")
            && err.contains("line 7")
            && err.contains("etcd 3.5.24 is set here")
            && err.contains("carries etcd 3.5.1"),
        "{err}"
    );
    // A bundle whose etcd the cluster cannot use is refused before anything is rendered.
    let old = bundle_with_etcd(&dir.path().join("old"), "3.4.27");
    let ws = Workspace::with_text(&format!(
        "[cluster]\nname = \"demo\"\nkubernetes_version = \"1.35.0\"\nbundle = \"{}\"\n{ONE_HOST}",
        old.display()
    ));
    let o = ws.run(&["render", "--out", ws.out().to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cluster.bundle") && err.contains("etcd 3.4.27 is not supported"),
        "{err}"
    );
    assert!(!ws.out().exists() && !ws.state().exists());
}

#[test]
fn status_reports_each_unreadable_cluster_and_exits_6() {
    let a = Workspace::with_text(&format!("{GOOD_HEAD}{ONE_HOST}"));
    let o = provisioner(&["status", a.inventory().as_str(), "/nonexistent/other.toml"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(6), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("demo (") && out.contains("no state directory"),
        "{out}"
    );
    assert!(
        out.contains("other (/nonexistent/other.toml): UNHEALTHY"),
        "{out}"
    );
    assert!(!a.state().exists(), "status writes no state directory");
}

#[test]
fn out_of_range_numbers_on_the_command_line_are_usage_errors() {
    let ws = Workspace::with_text(&format!("{GOOD_HEAD}{ONE_HOST}"));
    for args in [
        vec!["apply", "--gate-timeout", "18446744073709551615"],
        vec!["apply", "--gate-timeout", "0"],
        vec!["certs", "check", "--warn-days", "-1"],
        vec!["certs", "rotate-ca", "--token-lifetime", "99999999999"],
        vec!["certs", "rotate-ca", "--token-lifetime", "-1"],
    ] {
        let o = ws.run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(!text(&o.stderr).contains("panicked"), "{args:?}");
    }
}

#[test]
fn one_api_endpoint_for_several_control_planes_is_warned_of_without_node_local_balancing() {
    let inventory = std::fs::read_to_string(common::repo().join("inventory.toml")).unwrap();
    let balanced = Workspace::with_text(&inventory);
    let o = balanced.run(&["validate"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stderr).contains("only"), "{}", text(&o.stderr));
    let line = "load_balancer = \"node-local\"\n";
    assert!(inventory.contains(line));
    let single = Workspace::with_text(&inventory.replace(line, ""));
    let o = single.run(&["validate"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("api.endpoint")
            && err.contains("reach the API at cp-1 only")
            && err.contains("api.load_balancer = \"node-local\""),
        "{err}"
    );
    let one = Workspace::with_text(&format!("{GOOD_HEAD}{ONE_HOST}"));
    let o = one.run(&["validate"]);
    assert!(!text(&o.stderr).contains("only"), "{}", text(&o.stderr));
}
