//! Failures reported precisely, on one all-in-one host reached through a sudo user: a changed
//! host key is refused and an unreachable host named before anything is written, a unit that
//! cannot start stops the run at its gate with its journal tail; then a signed bundle archive
//! made by `bundle create` drives the apply, which converges. And one run at a time: the lease.

use std::path::{Path, PathBuf};
use std::process::Command;

use provisioner::apply::workflow;

use crate::cluster::{announced_in_order, no_op, verify_cluster, Cluster, UNITS_ALL};
use crate::common::ssh::keygen;
use crate::common::{bundle, provisioner, sha256_hex, text};
use crate::machines::{lock_sandbox, Machines};
use crate::step::step;

/// A copy of the bundle whose kube-proxy exits at once, with a manifest that matches it.
fn broken_bundle(good: &Path, into: &Path) -> PathBuf {
    let dir = into.join("broken-bundle");
    let o = Command::new("cp")
        .arg("-al")
        .arg(good)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let script = b"#!/bin/sh\necho 'kube-proxy: broken on purpose by the test' >&2\nexit 1\n";
    let bin = dir.join("bin/kube-proxy");
    std::fs::remove_file(&bin).unwrap();
    std::fs::write(&bin, script).unwrap();
    let manifest = dir.join("manifest.toml");
    let mut m = bundle::manifest(&dir);
    for f in m["files"].as_array_mut().unwrap() {
        if f["name"].as_str() == Some("kube-proxy") {
            f["sha256"] = toml::Value::String(sha256_hex(script));
            f["size"] = toml::Value::Integer(script.len() as i64);
        }
    }
    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(&manifest, toml::to_string(&m).unwrap()).unwrap();
    dir
}

pub fn run() {
    let _guard = lock_sandbox();
    let m = step("start the machine", || Machines::up(&["node-1"], true));
    let all = "\"etcd\", \"control-plane\", \"worker\"";
    let c = step("write the inventory", || {
        Cluster::new(&m, &[("node-1", all)], "user = \"kube\"\nsudo = true", "")
    });

    let inv = step("a changed host key is refused", || {
        // A host key that differs from known_hosts is refused before anything is sent.
        let real = std::fs::read_to_string(m.known_hosts()).unwrap();
        let other_key = keygen(c.ws.dir.path(), "other", "ed25519", "");
        let fake_pub = std::fs::read_to_string(other_key.with_extension("pub")).unwrap();
        let fake_line = format!(
            "{} {}",
            m.address("node-1"),
            fake_pub
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        );
        let fake_known = c.ws.dir.path().join("known_hosts.changed");
        std::fs::write(&fake_known, format!("{fake_line}\n")).unwrap();
        let inv = c.ws.read_inventory();
        c.ws.write_inventory(&inv.replace(m.known_hosts(), fake_known.to_str().unwrap()));
        let (ok, _, err) = c.apply();
        assert!(
            !ok && err.contains("node-1") && err.contains("SHA256:"),
            "a changed host key must be refused:\n{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        c.ws.write_inventory(&inv);
        assert_eq!(std::fs::read_to_string(m.known_hosts()).unwrap(), real);
        inv
    });

    step("an unreachable host fails before any write", || {
        // An unreachable host fails the run, naming it, before any write.
        c.ws.write_inventory(&format!(
            "{inv}\n[[hosts]]\nname = \"ghost\"\naddress = \"10.88.0.99\"\nroles = [\"worker\"]\n"
        ));
        let (ok, _, err) = c.apply();
        assert!(
            !ok && err.contains("ghost") && err.contains("nothing was changed"),
            "{err}"
        );
        c.ws.write_inventory(&inv);
        assert_eq!(
            m.ssh("node-1", "test -e /etc/kubernetes && echo yes || echo no")
                .trim(),
            "no"
        );
    });

    step("a unit that cannot start stops at its gate", || {
        // A unit that cannot start stops the run at its gate, with its journal.
        let broken = broken_bundle(&c.bundle, c.ws.dir.path());
        c.ws.write_inventory(&inv.replace(c.bundle.to_str().unwrap(), broken.to_str().unwrap()));
        let (ok, _, err) = c.apply();
        assert!(!ok, "apply must fail with a broken kube-proxy");
        assert!(
            err.contains("node-1: gate \"kube-proxy /healthz\" failed"),
            "{err}"
        );
        assert!(
            err.contains("broken on purpose"),
            "the journal tail is missing:\n{err}"
        );
    });

    step("a signed bundle archive, through sudo", || {
        // Through the sudo user, with the good binaries carried in a signed archive made by
        // `bundle create`, everything comes up and converges.
        let archive = c.ws.dir.path().join("bundle.tar.zst");
        let key = keygen(c.ws.dir.path(), "signing", "ed25519", "");
        for args in [
            vec![
                "bundle",
                "create",
                "--from",
                c.bundle.to_str().unwrap(),
                "--out",
                archive.to_str().unwrap(),
            ],
            vec![
                "bundle",
                "sign",
                archive.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        ] {
            let o = provisioner(&args);
            assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        }
        c.ws.write_inventory(&inv.replace(
            &format!("bundle = \"{}\"", c.bundle.display()),
            &format!(
                "bundle = \"{}\"\nbundle_public_key = \"{}\"",
                archive.display(),
                key.with_extension("pub").display()
            ),
        ));
        // kube-proxy restarts; the units of the phases after the gate that stopped the last run
        // (pod-routes, kube-router) start for the first time.
        let fixed = c.apply_ok();
        assert_eq!(
            (
                fixed["units_restarted"].as_u64(),
                fixed["units_started"].as_u64()
            ),
            (Some(1), Some(2)),
            "only kube-proxy restarts, pod-routes and kube-router start: {fixed}"
        );
        no_op(&c);
        verify_cluster(&m, &c, "node-1", &[("node-1", UNITS_ALL)], &["node-1"], 1);
    });

    step("one run at a time per cluster", || {
        one_run_at_a_time_per_cluster(&m, &c)
    });
}

/// The lease on the hosts: another machine's live lease refuses apply with its holder's details;
/// a lease left by a process of this machine that is gone (`kill -9`) is taken over;
/// `--break-lease` takes any; a finished run leaves none.
fn one_run_at_a_time_per_cluster(m: &Machines, c: &Cluster) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lease = |machine: &str| {
        let line = format!(
            r#"{{"user":"alice","machine":"{}","pid":4194000,"command":"apply","since":{now},"token":"t"}}"#,
            machine.trim()
        );
        m.ssh(
            "node-1",
            &format!("printf '%s\\n' '{line}' > /var/lib/provisioner/lease"),
        );
    };
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "--gate-timeout", "30"];
        args.extend(extra);
        let o = c.ws.run(&args);
        (o.status.success(), text(&o.stderr))
    };
    lease("other-laptop");
    let (ok, err) = apply(&[]);
    assert!(!ok, "a live lease of another machine must refuse");
    assert!(
        err.contains("alice@other-laptop (process 4194000) running `apply`")
            && err.contains("--break-lease")
            && err.contains("nothing was changed"),
        "{err}"
    );
    let (ok, err) = apply(&["--break-lease"]);
    assert!(
        ok && err.contains("taking over the lease: --break-lease"),
        "{err}"
    );
    announced_in_order(&err, workflow::APPLY);
    lease(&here);
    let (ok, err) = apply(&[]);
    assert!(
        ok && err.contains("no longer runs on this machine"),
        "{err}"
    );
    assert_eq!(
        m.ssh(
            "node-1",
            "test -e /var/lib/provisioner/lease && echo held || echo free"
        )
        .trim(),
        "free",
        "a finished run gives the lease back"
    );
}
