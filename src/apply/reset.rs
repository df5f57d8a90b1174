//! `reset`: hosts returned to what they were before provisioner, each from the record it keeps
//! of what was installed there ([`installed`]); nothing is guessed.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::remote::Remote;
use super::stage::Stage;
use super::Reporter;
use crate::layout::INSTALLED;
use crate::plan::installed::{HostReset, Installed, Reset};
use crate::shell;

/// What `reset` did.
pub enum Outcome {
    /// No chosen host has a record: the summary says so; nothing was changed.
    Nothing(String),
    /// The chosen hosts were reset.
    Done,
}

/// `reset` of the `chosen` hosts of `c`: their records read, the summary given to `approve`
/// (which shows it and may refuse), then each reset under the cluster's lease, the lease hosts
/// last. The lease hosts are reached whether chosen or not: the lease keeps other runs out.
pub fn run(
    c: &crate::inventory::Cluster,
    chosen: &[String],
    keep_images: bool,
    session: &super::Session,
    approve: impl FnOnce(&str) -> Result<()>,
) -> Result<Outcome> {
    let leased = super::lease::lease_hosts(c);
    let mut scope = c.clone();
    scope
        .hosts
        .retain(|h| chosen.contains(&h.name) || leased.contains(&h.name.as_str()));
    let rep = &session.rep;
    let parallel = c.ssh.parallelism as usize;
    session.block_on(async {
        let conns = super::open(&scope, rep).await?;
        let mut chosen_conns = conns.clone();
        chosen_conns.retain(|h, _| chosen.contains(h));
        Stage::ReadRecords.start(rep);
        let plans = survey(&chosen_conns, keep_images, parallel).await?;
        let summary = crate::plan::installed::summary(&plans, keep_images);
        if plans.iter().all(|p| p.reset.is_none()) {
            return Ok(Outcome::Nothing(summary));
        }
        approve(&summary)?;
        let held = super::lease::take(c, &conns, "reset", false, rep).await?;
        let work = reset(&conns, &plans, &leased, parallel, rep);
        super::under_lease(Some(held), work).await?;
        Ok(Outcome::Done)
    })
}

/// Reads every host's record and decides what its reset does; changes nothing.
pub async fn survey<R: Remote>(
    conns: &BTreeMap<String, R>,
    keep_images: bool,
    parallel: usize,
) -> Result<Vec<HostReset>> {
    stream::iter(conns)
        .map(|(host, conn)| async move {
            let text = conn
                .run_checked(&shell::read_if_present(INSTALLED))
                .await
                .with_context(|| format!("{host}: reading {}", INSTALLED))?
                .stdout_text();
            let record = Installed::parse(&text).with_context(|| {
                format!(
                    "{host}: {} is damaged; nothing was changed on any host. Look at the line \
                     named, remove it if it is wrong, and run reset again",
                    INSTALLED
                )
            })?;
            anyhow::Ok(HostReset {
                host: host.clone(),
                reset: (!record.is_empty()).then(|| Reset::new(&record, keep_images)),
            })
        })
        .buffered(parallel)
        .try_collect()
        .await
}

/// Resets `plans`' hosts, all at once; `last` (the hosts that hold the cluster's lease) only
/// after the others, so no other run starts on a half-reset cluster. A failure on one host
/// does not stop the others; all are named.
pub async fn reset<R: Remote>(
    conns: &BTreeMap<String, R>,
    plans: &[HostReset],
    last: &[&str],
    parallel: usize,
    rep: &Reporter,
) -> Result<()> {
    Stage::Reset.start(rep);
    let mut failures = Vec::new();
    for round in [false, true] {
        let results: Vec<Result<()>> = stream::iter(plans)
            .filter(|p| std::future::ready(last.contains(&p.host.as_str()) == round))
            .filter_map(|p| std::future::ready(p.reset.as_ref().map(|r| (&p.host, r))))
            .map(|(host, r)| async move {
                let what = format!("{} unit(s), {} path(s)", r.units.len(), r.remove.len());
                rep.start(Some(host), &what);
                let t = Instant::now();
                let result = conns[host]
                    .run_checked(&r.command())
                    .await
                    .map(|_| ())
                    .with_context(|| format!("{host}: reset"));
                let status = if result.is_ok() { "ok" } else { "failed" };
                rep.step("reset", Some(host), &what, t.elapsed(), status, None);
                result
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        failures.extend(
            results
                .into_iter()
                .filter_map(|r| r.err().map(|e| format!("{e:#}"))),
        );
    }
    if !failures.is_empty() {
        bail!(
            "{} host(s) were not reset completely (running reset again retries them):\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeRemote, Log};
    use super::super::report::Format;
    use super::*;

    #[tokio::test]
    async fn hosts_without_a_record_are_left_alone_and_lease_hosts_go_last() {
        let log = Log::default();
        let record = "file /etc/systemd/system/etcd.service\n";
        let conns: BTreeMap<String, FakeRemote> = [("cp-1", record), ("w-1", record), ("new", "")]
            .into_iter()
            .map(|(h, r)| {
                let remote = FakeRemote::new(h, &log).answer(shell::read_if_present(INSTALLED), r);
                (h.to_string(), remote)
            })
            .collect();
        let plans = survey(&conns, false, 4).await.unwrap();
        assert!(plans
            .iter()
            .find(|p| p.host == "new")
            .unwrap()
            .reset
            .is_none());
        let rep = Reporter::with_writer(Format::Json, Box::new(std::io::sink()));
        reset(&conns, &plans, &["cp-1"], 4, &rep).await.unwrap();
        // The fake logs a command's first line: the reset script's positional parameters.
        let resets: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                e.ends_with(
                    " etcd.service -- /etc/systemd/system/etcd.service /var/lib/provisioner",
                )
            })
            .map(|e| e.split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(resets, ["w-1", "cp-1"]);
    }
}
