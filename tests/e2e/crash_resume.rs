//! `certs regenerate` and `certs rotate-ca` killed at their write points (the first of each kind
//! and the last; the test hook aborts the process there): the same command then resumes and
//! converges, the CA is never replaced outside the rotation, a rotation ends on the CA it made
//! before the crash, and the cluster serves at the end. Needs the `test-hooks` feature.

use crate::cluster::{no_op, verify_cluster, Cluster, UNITS_ALL};
use crate::common::text;
use crate::machines::{lock_sandbox, Machines};
use crate::step::step;

/// The write points a command reaches, as a run with the crash hook set to 0 lists them; of
/// each kind (a temporary file written, a journal staged, committed, applied, ...) the first
/// point, and the last point of the run.
fn points_of_each_kind(c: &Cluster, args: &[&str]) -> Vec<String> {
    let o =
        c.ws.run_env(args, &[(provisioner::testhook::CRASH_AT, "0")]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{args:?}:\n{err}");
    let mut kinds = std::collections::BTreeSet::new();
    let mut points = Vec::new();
    let mut last = None;
    for (n, what) in err
        .lines()
        .filter_map(|l| l.strip_prefix("write point ")?.split_once(": "))
    {
        if kinds.insert(what.to_string()) {
            points.push(n.to_string());
        }
        last = Some(n.to_string());
    }
    points.extend(last.filter(|l| !points.contains(l)));
    assert!(
        points.len() >= 5,
        "{args:?} reached too few write points:\n{err}"
    );
    points
}

pub fn run() {
    let _guard = lock_sandbox();
    let m = step("start the machine", || Machines::up(&["node-1"], false));
    let all = "\"etcd\", \"control-plane\", \"worker\"";
    let c = step("write the inventory", || {
        Cluster::new(&m, &[("node-1", all)], "", "")
    });
    step("first apply", || {
        c.apply_ok();
    });
    let pki = c.ws.state().join("pki");
    let ca = || std::fs::read(pki.join("ca.crt")).unwrap();
    let crash = provisioner::testhook::CRASH_AT;

    step("regenerate resumes after each crash", || {
        // The admin credential restarts nothing, so each run is quick; the write points (backup,
        // journal) are those of any selection.
        let regenerate = ["certs", "regenerate", "--cert", "admin"];
        let before = ca();
        for n in points_of_each_kind(&c, &regenerate) {
            let o = c.ws.run_env(&regenerate, &[(crash, &n)]);
            let err = text(&o.stderr);
            assert!(
                err.contains(&format!("crashing at write point {n}")),
                "{err}"
            );
            let o = c.ws.run(&regenerate);
            assert!(
                o.status.success(),
                "resume after point {n}:\n{}",
                text(&o.stderr)
            );
            assert_eq!(ca(), before, "point {n}: the CA changed");
            no_op(&c);
        }
    });

    step("rotate-ca resumes after each crash", || {
        let rotate = ["certs", "rotate-ca", "--ca", "cluster"];
        for n in points_of_each_kind(&c, &rotate) {
            let o = c.ws.run_env(&rotate, &[(crash, &n)]);
            let err = text(&o.stderr);
            assert!(
                err.contains(&format!("crashing at write point {n}")),
                "{err}"
            );
            // A new CA waiting in rotation/ must be the one the rotation ends on, unless the crash
            // came after the rotation had ended (what is left there is the current CA).
            let pending = std::fs::read(pki.join("rotation/ca.crt"))
                .ok()
                .filter(|p| *p != ca());
            let o = c.ws.run(&rotate);
            let err = text(&o.stderr);
            assert!(o.status.success(), "resume after point {n}:\n{err}");
            if let Some(new) = pending {
                assert_eq!(
                    ca(),
                    new,
                    "point {n}: the rotation ended on another CA than it made"
                );
            }
            assert!(!pki.join("rotation.toml").exists() && !pki.join("rotation").exists());
            no_op(&c);
        }
    });

    step("verify the cluster", || {
        verify_cluster(&m, &c, "node-1", &[("node-1", UNITS_ALL)], &["node-1"], 1)
    });
}
