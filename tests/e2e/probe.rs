//! A client that keeps connecting to the cluster while certificates and CAs are replaced, and
//! while programs change version.

use std::process::Command;

use crate::cluster::Cluster;
use crate::common::text;
use crate::machines::Machines;

/// A background client opening a fresh TLS connection (a new curl each time) every 200 ms to
/// etcd (real, client certificate) and to the API server (`/readyz`, admin certificate), with the
/// credentials the state directory holds at that moment: the current trust bundle (the CA, and
/// during a rotation the new one too) and the current client certificate. A tick fails only when
/// no member answers (members restart one at a time; the cluster must not stop). With
/// `service` addresses, the same tick also asks a Service (`GET /` on its NodePort at each
/// worker), which must answer with the web page from one of them.
pub struct Probe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl Probe {
    pub fn start(m: &Machines, c: &Cluster, members: &[&str]) -> Probe {
        Probe::start_with_service(m, c, members, &[])
    }

    pub fn start_with_service(
        m: &Machines,
        c: &Cluster,
        members: &[&str],
        service: &[String],
    ) -> Probe {
        let service = service.to_vec();
        let pki = c.ws.state().join("pki");
        let addresses: Vec<String> = members.iter().map(|h| m.address(h)).collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let scratch = tempfile::tempdir().unwrap();
            // Copies the credentials of the moment: `ca` plus the rotation's new CA if any.
            let snapshot = |ca: &str, cert: &str| {
                let read = |rel: &str| std::fs::read_to_string(pki.join(rel)).unwrap_or_default();
                let bundle = read(&format!("{ca}.crt")) + &read(&format!("rotation/{ca}.crt"));
                let p = |ext: &str| {
                    scratch
                        .path()
                        .join(format!("{}.{ext}", cert.replace('/', "-")))
                };
                std::fs::write(p("ca"), bundle).unwrap();
                std::fs::write(p("crt"), read(&format!("{cert}.crt"))).unwrap();
                std::fs::write(p("key"), read(&format!("{cert}.key"))).unwrap();
                (p("ca"), p("crt"), p("key"))
            };
            let answered = |port: u16, path: &str, ca: &str, cert: &str, want: &str| {
                // A certificate and its key are replaced one after the other: a pair read in
                // between does not match, so a failed round is retried once with a fresh read.
                (0..2).any(|_| {
                    let (ca, crt, key) = snapshot(ca, cert);
                    addresses.iter().any(|ip| {
                        Command::new("curl")
                            .args(["-sS", "--max-time", "2", "--cacert"])
                            .arg(&ca)
                            .arg("--cert")
                            .arg(&crt)
                            .arg("--key")
                            .arg(&key)
                            .arg(format!("https://{ip}:{port}{path}"))
                            .output()
                            .is_ok_and(|o| o.status.success() && text(&o.stdout).contains(want))
                    })
                })
            };
            let (mut ticks, mut failures) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                ticks += 1;
                let etcd = answered(
                    2379,
                    "/health",
                    "etcd/ca",
                    "etcd/healthcheck-client",
                    "true",
                );
                let api = answered(6443, "/readyz", "ca", "admin", "ok");
                let web = service.is_empty()
                    || service.iter().any(|addr| {
                        Command::new("curl")
                            .args(["-sS", "--max-time", "2"])
                            .arg(format!("http://{addr}/"))
                            .output()
                            .is_ok_and(|o| {
                                o.status.success() && text(&o.stdout).contains(crate::smoke::INDEX)
                            })
                    });
                for (ok, what) in [(etcd, "etcd"), (api, "kube-apiserver"), (web, "Service")] {
                    if !ok {
                        // The time, to find the moment in the hosts' journals.
                        let t = time::OffsetDateTime::now_utc();
                        failures.push(format!(
                            "tick {ticks} at {:02}:{:02}:{:02}.{:03}: no {what} answered",
                            t.hour(),
                            t.minute(),
                            t.second(),
                            t.millisecond()
                        ));
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            (ticks, failures)
        });
        Probe {
            stop,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// A finished probe ran at least `min_ticks` ticks, and none failed.
pub fn assert_clean((ticks, failures): (usize, Vec<String>), min_ticks: usize) {
    assert!(ticks >= min_ticks, "the probe ran only {ticks} ticks");
    assert!(
        failures.is_empty(),
        "{} of {ticks} ticks failed: {failures:#?}",
        failures.len()
    );
}
