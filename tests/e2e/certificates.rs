//! Certificates on 3 control planes and 2 workers: `certs check` finds drift and expiry,
//! `certs regenerate` refuses an unhealthy cluster and otherwise reissues every leaf, and
//! `certs rotate-ca` replaces every CA (resumed after a stop) and the service-account key (with
//! a pause while old tokens may live), all while a probe keeps connecting: the cluster never
//! stops serving.

use std::process::Command;

use provisioner::apply::workflow;

use crate::cluster::{announced_in_order, roles, unit_hosts, verify_cluster, Cluster};
use crate::common::text;
use crate::machines::{lock_sandbox, Machines};
use crate::probe::Probe;
use crate::step::step;

fn certs_check(c: &Cluster) -> (i32, String) {
    let o = c.ws.run(&["certs", "check"]);
    announced_in_order(&text(&o.stderr), workflow::CERTS_CHECK);
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout) + &text(&o.stderr),
    )
}

pub fn run() {
    let _guard = lock_sandbox();
    let names = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"];
    let m = step("start the machines", || Machines::up(&names, false));
    let c = step("write the inventory", || {
        Cluster::new(&m, &roles(&names), "", "")
    });
    step("first apply", || {
        c.apply_ok();
    });
    let unit_hosts = unit_hosts(&names);

    step("all well: certs check exits 0", || {
        // All well: exit 0.
        let (code, out) = certs_check(&c);
        assert_eq!(code, 0, "{out}");
        assert!(
            out.contains("0 expired, 0 expiring within 30 days, 0 drifted"),
            "{out}"
        );
    });

    step("a replaced host copy is drift: exit 4", || {
        // A host's copy replaced by another certificate: drift, exit 4, naming host and file.
        m.ssh(
            "worker-1",
            "cp /var/lib/kubelet/pki/kubelet.crt /root/kubelet.crt.orig && \
         cp /etc/kubernetes/pki/ca.crt /var/lib/kubelet/pki/kubelet.crt",
        );
        let (code, out) = certs_check(&c);
        assert_eq!(code, 4, "{out}");
        assert!(
            out.contains("worker-1:/var/lib/kubelet/pki/kubelet.crt")
                && out.contains("DRIFT: differs from the state directory"),
            "{out}"
        );
        m.ssh(
            "worker-1",
            "cp /root/kubelet.crt.orig /var/lib/kubelet/pki/kubelet.crt",
        );
        assert_eq!(certs_check(&c).0, 0);
    });

    let state_crt = c.ws.state().join("pki/apiserver.crt");
    let before = step("regenerate --dry-run changes nothing", || {
        // --dry-run changes nothing.
        let before = std::fs::read_to_string(&state_crt).unwrap();
        let o = c.ws.run(&["certs", "regenerate", "--all", "--dry-run"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains("dry run"), "{}", text(&o.stderr));
        assert_eq!(std::fs::read_to_string(&state_crt).unwrap(), before);
        before
    });

    step("regenerate refuses an unhealthy cluster", || {
        // A failing gate before the start: refused, nothing changed, and it says what to do.
        m.ssh("cp-2", "systemctl stop kube-scheduler");
        let o = c.ws.run(&["certs", "regenerate", "--cert", "admin"]);
        let err = text(&o.stderr);
        assert!(
            !o.status.success(),
            "regenerate must refuse an unhealthy cluster"
        );
        assert!(
            err.contains("cp-2") && err.contains("scheduler") && err.contains("pass --force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&state_crt).unwrap(), before);
        m.ssh("cp-2", "systemctl start kube-scheduler");
    });

    step("every leaf regenerated while serving", || {
        // Every leaf regenerated and rolled out while a client keeps connecting: no failed tick.
        let probe = Probe::start(&m, &c, &["cp-1", "cp-2", "cp-3"]);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let o =
            c.ws.run(&["certs", "regenerate", "--all", "--gate-timeout", "60"]);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let (ticks, failures) = probe.finish();
        let err = text(&o.stderr);
        assert!(o.status.success(), "regenerate --all failed:\n{err}");
        announced_in_order(&err, workflow::CERTS_REGENERATE);
        assert!(ticks > 20, "the probe ran only {ticks} ticks");
        assert!(
            failures.is_empty(),
            "the cluster stopped serving during the rollout:\n{}\n{err}",
            failures.join("\n")
        );
        assert!(err.contains("backed up the state directory"), "{err}");
        assert!(err.contains("etcd snapshot saved on cp-1"), "{err}");
        let after = std::fs::read_to_string(&state_crt).unwrap();
        assert_ne!(after, before, "the API server certificate was not reissued");
        assert_eq!(
            m.ssh("cp-2", "cat /etc/kubernetes/pki/apiserver.crt")
                .trim(),
            after.trim(),
            "the host must serve the new certificate"
        );
        assert_eq!(certs_check(&c).0, 0);
        let again = c.apply_ok();
        assert_eq!(
            (
                again["files_written"].as_u64(),
                again["units_restarted"].as_u64()
            ),
            (Some(0), Some(0)),
            "{again}"
        );
    });

    step("expired certificates, then regenerated", || {
        // Expired certificates (a test hook issues them already expired): check says 3, and
        // regenerate brings every gate back.
        let o = c.ws.run_env(
            &[
                "certs",
                "regenerate",
                "--all",
                "--force",
                "--gate-timeout",
                "10",
            ],
            &[(provisioner::testhook::ISSUE_EXPIRED, "1")],
        );
        assert!(
            !o.status.success(),
            "expired certificates cannot pass a gate"
        );
        assert!(
            text(&o.stderr).contains("the rollout stopped there"),
            "{}",
            text(&o.stderr)
        );
        let (code, out) = certs_check(&c);
        assert_eq!(code, 3, "{out}");
        assert!(out.contains("EXPIRED"), "{out}");
        let o =
            c.ws.run(&["certs", "regenerate", "--all", "--gate-timeout", "60"]);
        assert!(o.status.success(), "recovery failed:\n{}", text(&o.stderr));
        let (code, out) = certs_check(&c);
        assert_eq!(code, 0, "{out}");
        verify_cluster(&m, &c, "cp-1", &unit_hosts, &["worker-1", "worker-2"], 3);
    });

    let pki = c.ws.state().join("pki");
    let old_cas = c.ws.dir.path().join("old-cas.pem");
    let read = |rel: &str| std::fs::read_to_string(pki.join(rel)).unwrap();
    step("every CA rotated, stopped and resumed", || {
        // Every CA rotated, interrupted after stage 1 by a test hook and resumed by the same
        // command, while the probe keeps connecting with the current trust bundle: no failed tick.
        std::fs::write(&old_cas, read("ca.crt") + &read("etcd/ca.crt")).unwrap();
        let probe = Probe::start(&m, &c, &["cp-1", "cp-2", "cp-3"]);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let o = c.ws.run_env(
            &["certs", "rotate-ca", "--ca", "all", "--gate-timeout", "60"],
            &[(provisioner::testhook::STOP_AFTER_STAGE, "1")],
        );
        let err = text(&o.stderr);
        assert!(
            !o.status.success() && err.contains("stopped after stage 1"),
            "the test hook must stop the rotation after stage 1:\n{err}"
        );
        assert!(
            read("rotation.toml").contains("stage = 2"),
            "{}",
            read("rotation.toml")
        );
        let o =
            c.ws.run(&["certs", "rotate-ca", "--ca", "all", "--gate-timeout", "60"]);
        std::thread::sleep(std::time::Duration::from_secs(1));
        let (ticks, failures) = probe.finish();
        let err = text(&o.stderr);
        assert!(o.status.success(), "rotate-ca failed:\n{err}");
        assert!(
            err.contains("resuming the rotation") && err.contains("stage 2 of 3"),
            "{err}"
        );
        assert!(ticks > 20, "the probe ran only {ticks} ticks");
        assert!(
            failures.is_empty(),
            "the cluster stopped serving during the rotation:\n{}\n{err}",
            failures.join("\n")
        );
        assert!(!pki.join("rotation.toml").exists() && !pki.join("rotation").exists());
    });

    step("a client trusting the old CAs is refused", || {
        // A client trusting only the old CAs is refused, by the API server and by etcd.
        let (old_ca, admin, admin_key) = (
            old_cas.to_str().unwrap(),
            pki.join("admin.crt"),
            pki.join("admin.key"),
        );
        for url in [
            format!("https://{}:6443/readyz", m.address("cp-1")),
            format!("https://{}:2379/health", m.address("cp-2")),
        ] {
            let o = Command::new("curl")
                .args(["-sS", "--max-time", "5", "--cacert", old_ca, "--cert"])
                .arg(&admin)
                .arg("--key")
                .arg(&admin_key)
                .arg(&url)
                .output()
                .unwrap();
            assert!(
                !o.status.success(),
                "{url} must not be trusted through the old CA"
            );
        }
    });

    step("every certificate chains to a new CA", || {
        // Every certificate on every host chains to a new CA (real openssl verify), the client
        // certificates the kubelets renewed themselves included.
        let new_cas = c.ws.dir.path().join("new-cas.pem");
        std::fs::write(
            &new_cas,
            read("ca.crt") + &read("etcd/ca.crt") + &read("front-proxy-ca.crt"),
        )
        .unwrap();
        let old_text = std::fs::read_to_string(&old_cas).unwrap();
        assert!(
            !old_text.contains(read("ca.crt").trim()),
            "the cluster CA did not change"
        );
        let (mut checked, mut renewed) = (0, 0);
        for h in names {
            let list = m.ssh(
                h,
                "find /etc/kubernetes/pki /var/lib/kubelet/pki \\( -name '*.crt' \
                 -o -name kubelet-client-current.pem \\) 2>/dev/null; true",
            );
            renewed += list.matches("kubelet-client-current.pem").count();
            for path in list.lines() {
                let local = c.ws.dir.path().join("host.crt");
                let cert = format!("sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p' {path}");
                std::fs::write(&local, m.ssh(h, &cert)).unwrap();
                let o = Command::new("openssl")
                    .args([
                        "verify",
                        "-CAfile",
                        new_cas.to_str().unwrap(),
                        local.to_str().unwrap(),
                    ])
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "{h}:{path} does not chain to a new CA: {}",
                    text(&o.stderr)
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 30,
            "only {checked} certificates found on the hosts"
        );
        assert_eq!(
            renewed, 2,
            "each worker's kubelet renewed its client certificate"
        );
        assert_eq!(certs_check(&c).0, 0);
    });

    step("the service-account key rotated", || {
        // The service-account key: stages 1 and 2, then a pause while old tokens may live, then
        // the old public key goes. The API server refuses to start with a signing key whose public
        // half it is not given, so each stage's pair is checked on every control-plane host.
        let count_keys = |h: &str| {
            m.ssh(h, "grep -c 'BEGIN PUBLIC KEY' /etc/kubernetes/pki/sa.pub")
                .trim()
                .to_string()
        };
        let old_sa_key = read("sa.key");
        let probe = Probe::start(&m, &c, &["cp-1", "cp-2", "cp-3"]);
        // A short token lifetime, recorded with stage 2: a resumed run cannot shorten it.
        let o = c.ws.run(&[
            "certs",
            "rotate-ca",
            "--ca",
            "service-account",
            "--token-lifetime",
            "20",
            "--gate-timeout",
            "60",
        ]);
        let err = text(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("stays trusted until"), "{err}");
        assert!(read("rotation.toml").contains("token_lifetime_secs = 20"));
        // Stage 2 was recorded before this point, so its 20 s end no later than 20 s from here.
        let paused = std::time::Instant::now();
        assert!(read("rotation.toml").contains("stage = 3"));
        for h in ["cp-1", "cp-2", "cp-3"] {
            assert_eq!(
                count_keys(h),
                "2",
                "{h}: both public keys during the rotation"
            );
        }
        assert_ne!(
            m.ssh("cp-1", "cat /etc/kubernetes/pki/sa.key").trim(),
            old_sa_key.trim(),
            "the new key signs after stage 2"
        );
        let resume = |lifetime: &str| {
            c.ws.run(&[
                "certs",
                "rotate-ca",
                "--ca",
                "service-account",
                "--token-lifetime",
                lifetime,
                "--gate-timeout",
                "60",
            ])
        };
        if paused.elapsed() < std::time::Duration::from_secs(15) {
            let o = resume("0");
            assert!(
                text(&o.stderr).contains("stays trusted until"),
                "the recorded lifetime must hold:\n{}",
                text(&o.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_secs(21).saturating_sub(paused.elapsed()));
        let o = resume("0");
        let (ticks, failures) = probe.finish();
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            ticks > 10 && failures.is_empty(),
            "{ticks} ticks: {failures:?}"
        );
        for h in ["cp-1", "cp-2", "cp-3"] {
            assert_eq!(
                count_keys(h),
                "1",
                "{h}: only the new public key at the end"
            );
        }
        assert_ne!(read("sa.key"), old_sa_key);
        assert!(!pki.join("rotation.toml").exists());
        let again = c.apply_ok();
        assert_eq!(
            (
                again["files_written"].as_u64(),
                again["units_restarted"].as_u64()
            ),
            (Some(0), Some(0)),
            "{again}"
        );
    });
}
