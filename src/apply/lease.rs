//! One run at a time per cluster: a lease file on the first etcd host and the first
//! control-plane host, taken by every command that changes hosts. The state directory's lock only
//! stops two runs from one clone; two operators with two clones meet here.
//!
//! A lease names its holder (user, machine, process, command, since when). Another run is
//! refused with those details, unless the holder is gone: a process of this same machine that
//! no longer runs (a run killed with `kill -9`), or a lease older than [`EXPIRY`]; `--break-lease`
//! takes it whatever holds it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::Remote;
use crate::inventory::Cluster;
use crate::layout::LEASE;
use crate::shell;

/// A lease older than this is taken over: its holder is assumed gone.
pub const EXPIRY: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub machine: String,
    pub pid: u32,
    pub command: String,
    /// Unix time it was taken.
    pub since: i64,
    /// Tells this run's lease from another run's of the same process id.
    pub token: String,
}

impl Holder {
    fn line(&self) -> String {
        serde_json::to_string(self).expect("a holder serializes")
    }

    fn describe(&self) -> String {
        format!(
            "{}@{} (process {}) running `{}` since {}",
            self.user,
            self.machine,
            self.pid,
            self.command,
            crate::pki::inspect::rfc3339(self.since)
        )
    }
}

/// What to do with the lease a host holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Take,
    /// The holder is gone; the reason is said to the operator.
    TakeOver(String),
    Refuse(String),
}

/// Whether `me` may take a lease that `current` holds. `alive` tells whether a process of this
/// machine still runs.
pub fn decide(
    current: &str,
    me: &Holder,
    now: i64,
    break_lease: bool,
    alive: impl Fn(u32) -> bool,
) -> Decision {
    let current = current.trim();
    if current.is_empty() {
        return Decision::Take;
    }
    let Ok(h) = serde_json::from_str::<Holder>(current) else {
        return Decision::TakeOver("the lease file was not readable".into());
    };
    if break_lease {
        return Decision::TakeOver(format!("--break-lease: taken from {}", h.describe()));
    }
    if h.machine == me.machine && !alive(h.pid) {
        return Decision::TakeOver(format!("{} no longer runs on this machine", h.describe()));
    }
    if now.saturating_sub(h.since) > EXPIRY.as_secs() as i64 {
        return Decision::TakeOver(format!("{} expired", h.describe()));
    }
    Decision::Refuse(format!(
        "another provisioner run holds this cluster: {}. Wait for it to finish; if it is gone \
         (its machine is down), run again with --break-lease",
        h.describe()
    ))
}

/// A lease held on its hosts; [`release`](Lease::release) gives it back.
pub struct Lease<R> {
    held: BTreeMap<String, (R, String)>,
}

/// The hosts that hold the cluster's lease: the first etcd member and the first API server.
pub fn lease_hosts(c: &Cluster) -> Vec<&str> {
    let mut hosts: Vec<&str> = c
        .etcd_hosts()
        .next()
        .into_iter()
        .chain(c.control_plane_hosts().next())
        .map(|h| h.name.as_str())
        .collect();
    hosts.dedup();
    hosts
}

fn this_machine() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Takes the lease on the cluster's lease hosts for `command`.
pub async fn take<R: Remote + Clone>(
    c: &Cluster,
    conns: &BTreeMap<String, R>,
    command: &str,
    break_lease: bool,
    rep: &super::Reporter,
) -> Result<Lease<R>> {
    super::stage::Stage::Lease.start(rep);
    let mut token = [0u8; 8];
    getrandom::fill(&mut token).context("reading the system's random source")?;
    let me = Holder {
        user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        machine: this_machine(),
        pid: std::process::id(),
        command: command.to_string(),
        since: time::OffsetDateTime::now_utc().unix_timestamp(),
        token: hex::encode(token),
    };
    let mut lease: Lease<R> = Lease {
        held: BTreeMap::new(),
    };
    for host in lease_hosts(c) {
        let conn = &conns[host];
        let current = conn
            .run_checked(&shell::read_if_present(LEASE))
            .await
            .with_context(|| format!("{host}: reading the cluster's lease"))?
            .stdout_text();
        let decision = decide(&current, &me, me.since, break_lease, process_alive);
        let refused = match decision {
            Decision::Refuse(why) => Some(why),
            Decision::Take => None,
            Decision::TakeOver(why) => {
                rep.warn(&format!("{host}: taking over the lease: {why}"));
                None
            }
        };
        let outcome = match refused {
            Some(why) => Err(anyhow::anyhow!("{host}: {why}; nothing was changed")),
            None => {
                let out = conn
                    .run(&shell::swap_lease(LEASE, &me.line(), current.trim()))
                    .await?;
                match out.status {
                    0 => Ok(()),
                    3 => Err(anyhow::anyhow!(
                        "{host}: another run took the lease at the same moment ({}); nothing was changed",
                        out.stdout_text().trim()
                    )),
                    _ => Err(anyhow::anyhow!(
                        "{host}: taking the lease failed: {}",
                        out.stderr_text().trim()
                    )),
                }
            }
        };
        if let Err(e) = outcome {
            lease.release().await;
            return Err(e);
        }
        lease
            .held
            .insert(host.to_string(), (conn.clone(), me.line()));
    }
    Ok(lease)
}

impl<R: Remote> Lease<R> {
    /// Gives the lease back on every host where this run holds it; a failure is only logged (the
    /// next run from this machine takes a dead process's lease over).
    pub async fn release(self) {
        for (host, (conn, line)) in self.held {
            match conn.run(&shell::swap_lease(LEASE, "", &line)).await {
                Ok(o) if o.success() => {}
                Ok(o) => tracing::debug!(host, status = o.status, "the lease was not released"),
                Err(e) => tracing::debug!(host, "the lease was not released: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(machine: &str, pid: u32, since: i64) -> Holder {
        Holder {
            user: "ops".into(),
            machine: machine.into(),
            pid,
            command: "apply".into(),
            since,
            token: "t".into(),
        }
    }

    #[test]
    fn a_live_holder_is_refused_with_its_details_a_gone_one_taken_over() {
        let me = holder("laptop", 42, 1000);
        assert_eq!(decide("", &me, 1000, false, |_| true), Decision::Take);
        let other = holder("desk", 7, 900).line();
        let Decision::Refuse(why) = decide(&other, &me, 1000, false, |_| true) else {
            panic!("a live lease of another machine must refuse");
        };
        assert!(
            why.contains("ops@desk (process 7) running `apply`"),
            "{why}"
        );
        assert!(matches!(
            decide(&other, &me, 1000, true, |_| true),
            Decision::TakeOver(_)
        ));
        let old = EXPIRY.as_secs() as i64 + 1000;
        assert!(matches!(
            decide(&other, &me, old, false, |_| true),
            Decision::TakeOver(w) if w.contains("expired")
        ));
        // Same machine: taken over only when its process is gone.
        let mine = holder("laptop", 7, 900).line();
        assert!(matches!(
            decide(&mine, &me, 1000, false, |_| true),
            Decision::Refuse(_)
        ));
        assert!(matches!(
            decide(&mine, &me, 1000, false, |_| false),
            Decision::TakeOver(w) if w.contains("no longer runs")
        ));
    }

    /// The swap script against a real file: it writes only over what the taker read.
    #[test]
    fn the_lease_file_is_swapped_only_from_what_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lease").display().to_string();
        let run = |script: String| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap()
        };
        assert!(run(shell::swap_lease(&path, "A", "")).status.success());
        let o = run(shell::swap_lease(&path, "B", ""));
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "A");
        assert!(run(shell::swap_lease(&path, "B", "A")).status.success());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "B\n");
        assert!(run(shell::swap_lease(&path, "", "B")).status.success());
        assert!(!std::path::Path::new(&path).exists());
        let read = run(shell::read_if_present(&path));
        assert!(read.status.success() && read.stdout.is_empty());
    }

    /// `take` and `release` on fake hosts whose lease file holds `current`: the result and
    /// what was run (the lease file is read from the answers, so only swaps are logged).
    async fn take_fake(current: &str) -> (Result<()>, Vec<String>) {
        let f = super::super::fake::Fixture::new(|_| {});
        let log = super::super::fake::Log::default();
        let conns: BTreeMap<String, super::super::fake::FakeRemote> = f
            .hosts(&log)
            .into_iter()
            .map(|(h, fake)| (h, fake.answer(shell::read_if_present(LEASE), current)))
            .collect();
        let rep = super::super::Reporter::with_writer(
            super::super::Format::Json,
            Box::new(std::io::sink()),
        );
        let r = match take(&f.cluster, &conns, "apply", false, &rep).await {
            Ok(lease) => {
                lease.release().await;
                Ok(())
            }
            Err(e) => Err(e),
        };
        let ran = log.lock().unwrap().clone();
        (r, ran)
    }

    #[tokio::test]
    async fn a_free_lease_is_taken_on_the_lease_host_and_given_back() {
        let (r, ran) = take_fake("").await;
        r.unwrap();
        // The bundled inventory's first etcd member is its first API server too: one host.
        assert_eq!(ran.len(), 2, "{ran:?}");
        assert!(ran.iter().all(|e| e.starts_with("cp-1: run ")), "{ran:?}");
    }

    #[tokio::test]
    async fn a_lease_another_live_run_holds_is_refused_and_left_alone() {
        let other = holder(
            "elsewhere",
            7,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
        let (r, ran) = take_fake(&other.line()).await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("cp-1: another provisioner run holds this cluster"),
            "{e}"
        );
        assert!(e.contains("ops@elsewhere"), "{e}");
        assert!(ran.is_empty(), "{ran:?}");
    }
}
