//! Startup behaviour of the stand-ins with the project's rendered units and files: what they
//! accept, and that they stop with exit 1 and a clear message where the real component would.
//! None of these binds a port, so they run beside the cluster test.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{run_to_exit, standin, Rendered};

const ALL: [&str; 5] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
];

#[test]
fn version_and_help_say_stand_in() {
    for name in ALL {
        let out = std::process::Command::new(standin(name))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name} --version");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Kubernetes v1.35.0 (stand-in)\n",
            "{name}"
        );
        let help = std::process::Command::new(standin(name))
            .arg("-h")
            .output()
            .unwrap();
        assert!(help.status.success());
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("stand-in"),
            "{name} -h"
        );
    }
}

#[test]
fn unknown_flags_exit_1_with_pflags_message() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ALL {
        let (code, out) = run_to_exit(name, tmp.path(), &["--no-such-flag=1".into()]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains("Error: unknown flag: --no-such-flag"),
            "{name}: {out}"
        );
        assert!(out.contains("stand-in"), "{name}: {out}");
    }
    // Removed in 1.35: the real 1.35 kubelet no longer knows it.
    let (code, out) = run_to_exit(
        "kubelet",
        tmp.path(),
        &["--pod-infra-container-image=pause".into()],
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("unknown flag: --pod-infra-container-image"),
        "{out}"
    );
}

/// Every rendered unit's command line parses, and each stand-in gets past flag parsing into
/// file validation (here stopped on purpose by a missing file).
#[test]
fn rendered_command_lines_parse() {
    let r = Rendered::new();
    let empty = tempfile::tempdir().unwrap();
    for name in ALL {
        // An empty root: the first file the stand-in opens is missing.
        let (code, out) = run_to_exit(name, empty.path(), &r.unit_args(name));
        assert_eq!(code, 1, "{name}: {out}");
        assert!(!out.contains("unknown flag"), "{name}: {out}");
        assert!(
            out.contains("cannot read it"),
            "{name} should stop at a missing file: {out}"
        );
        assert!(
            out.lines().all(|l| l.contains("stand-in")),
            "{name}: every line says stand-in: {out}"
        );
    }
}

#[test]
fn a_private_key_readable_by_others_is_refused() {
    let r = Rendered::new();
    let key = r.host("/etc/kubernetes/pki/apiserver.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out) = run_to_exit("kube-apiserver", &r.root(), &r.unit_args("kube-apiserver"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("/etc/kubernetes/pki/apiserver.key has mode 0644"),
        "{out}"
    );
    // A kubeconfig holding a key is a secret file too.
    let kc = r.host("/etc/kubernetes/scheduler.conf");
    std::fs::set_permissions(&kc, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, out) = run_to_exit("kube-scheduler", &r.root(), &r.unit_args("kube-scheduler"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("scheduler.conf has mode 0640"), "{out}");
}

#[test]
fn mismatched_and_garbage_files_are_refused() {
    let r = Rendered::new();
    // The etcd client certificate with the kubelet client key: a pair that does not match.
    std::fs::copy(
        r.host("/etc/kubernetes/pki/apiserver-kubelet-client.key"),
        r.host("/etc/kubernetes/pki/apiserver-etcd-client.key"),
    )
    .unwrap();
    let (code, out) = run_to_exit("kube-apiserver", &r.root(), &r.unit_args("kube-apiserver"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("--etcd-certfile") && out.contains("do not match"),
        "{out}"
    );

    let r = Rendered::new();
    std::fs::write(
        r.host("/etc/kubernetes/pki/front-proxy-ca.crt"),
        "not a certificate\n",
    )
    .unwrap();
    let (code, out) = run_to_exit("kube-apiserver", &r.root(), &r.unit_args("kube-apiserver"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--requestheader-client-ca-file"), "{out}");
}

#[test]
fn required_apiserver_flags() {
    let r = Rendered::new();
    let args: Vec<String> = r
        .unit_args("kube-apiserver")
        .into_iter()
        .filter(|a| !a.starts_with("--service-account-issuer"))
        .collect();
    let (code, out) = run_to_exit("kube-apiserver", &r.root(), &args);
    assert_eq!(code, 1);
    assert!(
        out.contains("--service-account-issuer is required"),
        "{out}"
    );

    let args: Vec<String> = r
        .unit_args("kube-apiserver")
        .into_iter()
        .map(|a| {
            if a.starts_with("--enable-admission-plugins") {
                "--enable-admission-plugins=NamespaceLifecycle".into()
            } else {
                a
            }
        })
        .collect();
    let (code, out) = run_to_exit("kube-apiserver", &r.root(), &args);
    assert_eq!(code, 1);
    assert!(out.contains("NodeRestriction"), "{out}");
}

#[test]
fn config_files_are_strict() {
    let r = Rendered::new();
    let path = r.host("/var/lib/kubelet/config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}cgroupDriverr: systemd\n")).unwrap();
    let (code, out) = run_to_exit("kubelet", &r.root(), &r.unit_args("kubelet"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("unknown field \"cgroupDriverr\"")
            && out.contains("/var/lib/kubelet/config.yaml"),
        "{out}"
    );

    let path = r.host("/etc/kubernetes/kube-scheduler.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("leaderElect:", "leaderElection:")).unwrap();
    let (code, out) = run_to_exit("kube-scheduler", &r.root(), &r.unit_args("kube-scheduler"));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("leaderElection.leaderElection"), "{out}");

    let path = r.host("/etc/kubernetes/audit-policy.yaml");
    std::fs::write(
        &path,
        "apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: []\n",
    )
    .unwrap();
    let (code, out) = run_to_exit("kube-apiserver", &r.root(), &r.unit_args("kube-apiserver"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("apiVersion is \"audit.k8s.io/v1beta1\""),
        "{out}"
    );
}

#[test]
fn kubelet_promises_and_identity() {
    let r = Rendered::new();
    let path = r.host("/var/lib/kubelet/config.yaml");
    let rendered = std::fs::read_to_string(&path).unwrap();
    assert!(
        rendered.contains("failCgroupV1: true"),
        "the rendered config states failCgroupV1"
    );
    let args = r.unit_args("kubelet");
    // With the rendered config, a cgroup v1 host is refused as the real 1.35 kubelet refuses it.
    if !common::host_is_cgroup_v2() {
        let (code, out) = run_to_exit("kubelet", &r.root(), &args);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("cgroup v1"), "{out}");
    }
    let relaxed = rendered.replace("failCgroupV1: true", "failCgroupV1: false");
    for (from, to, expect) in [
        (
            "cgroupDriver: systemd",
            "cgroupDriver: cgroupfs",
            "cgroupDriver",
        ),
        ("mode: Webhook", "mode: AlwaysAllow", "authorization.mode"),
        ("readOnlyPort: 0", "readOnlyPort: 10255", "readOnlyPort"),
        ("enabled: false", "enabled: true", "anonymous"),
    ] {
        std::fs::write(&path, relaxed.replace(from, to)).unwrap();
        let (code, out) = run_to_exit("kubelet", &r.root(), &args);
        assert_eq!(code, 1, "{from} -> {to}: {out}");
        assert!(out.contains(expect), "{from} -> {to}: {out}");
    }
    // The kubeconfig says system:node:solo; another node name is refused.
    std::fs::write(&path, &relaxed).unwrap();
    let other: Vec<String> = args
        .iter()
        .map(|a| {
            if a.starts_with("--hostname-override") {
                "--hostname-override=other".into()
            } else {
                a.clone()
            }
        })
        .collect();
    let (code, out) = run_to_exit("kubelet", &r.root(), &other);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("must authenticate as user \"system:node:other\""),
        "{out}"
    );
}
