//! `plan` and `apply`.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{emit, ensure_pki, load, SUCCESS};
use crate::cli::Output;
use crate::inventory::Loaded;
use crate::{pki, render};

/// What `apply` adds to `plan`.
pub(super) struct ApplyOptions {
    pub(super) walk: crate::apply::workflow::Options,
    pub(super) break_lease: bool,
    /// Hosts the inventory no longer names that the operator confirms are to be removed.
    pub(super) remove: Vec<String>,
}

/// `plan` and `apply`: survey the hosts, plan, and (for apply) execute under the cluster's lease.
pub(super) fn converge(
    path: &Path,
    output: Output,
    apply: Option<ApplyOptions>,
    rehash: bool,
) -> Result<u8> {
    let mut l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let c = &l.cluster;
    let members = crate::members::load(&c.state_dir)?;
    let leaving = leaving(c, &members, apply.as_ref().map(|a| a.remove.as_slice()))?;
    // JSON events are apply's output; plan prints its JSON plan alone on stdout.
    let format = if output == Output::Json && apply.is_some() {
        crate::apply::Format::Json
    } else {
        crate::apply::Format::Text
    };
    let rep = crate::apply::Reporter::new(format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        // The hosts' identity is checked before the PKI is created: a missing state directory
        // must not gain a new cluster's CAs while the hosts run another's.
        let conns = crate::apply::open(c, &rep).await?;
        let lease = match &apply {
            Some(a) => {
                Some(crate::apply::lease::take(c, &conns, "apply", a.break_lease, &rep).await?)
            }
            None => None,
        };
        let result = converge_on(
            &l, path, &bundle, conns, output, apply, rehash, &members, &leaving, &rep,
        )
        .await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    })
}

#[allow(clippy::too_many_arguments)]
async fn converge_on(
    l: &Loaded,
    path: &Path,
    bundle: &crate::bundle::Bundle,
    conns: std::collections::BTreeMap<String, crate::transport::Connection>,
    output: Output,
    apply: Option<ApplyOptions>,
    rehash: bool,
    members: &crate::members::Members,
    leaving: &crate::inventory::Cluster,
    rep: &crate::apply::Reporter,
) -> Result<u8> {
    let c = &l.cluster;
    let format = rep.format();
    let pki = ensure_pki(l, path)?;
    let rendered = render::render(c, &pki)?;
    let inputs = crate::apply::Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle,
    };
    let survey = crate::apply::survey(&inputs, conns, rehash, rep).await?;
    let mut plan = crate::apply::make_plan(&survey);
    plan.removals = leaving.hosts.iter().map(|h| h.name.clone()).collect();
    plan.etcd_leaves = leaving
        .hosts
        .iter()
        .filter(|h| h.roles.etcd)
        .map(|h| h.name.clone())
        .collect();
    plan.etcd_joins = members
        .new_etcd_members(c)
        .iter()
        .map(|h| h.name.clone())
        .collect();
    let Some(apply) = apply else {
        emit(output, &plan, crate::plan::text)?;
        return Ok(SUCCESS);
    };
    if !plan.refused.is_empty() {
        if format == crate::apply::Format::Text {
            eprint!("{}", crate::plan::text(&plan));
        }
        bail!(
            "{}\nNothing was changed: these version changes break upstream's version-skew \
             policy. Use a bundle one minor up from what the hosts run.",
            plan.refused.join("\n")
        );
    }
    // Every host is recorded before anything touches it.
    let record = members.with(c);
    if record != *members {
        crate::members::save(&c.state_dir, &record)?;
    }
    let outcome = if plan.is_empty() && plan.removals.is_empty() {
        rep.note("Nothing to do: every host matches the inventory.");
        crate::apply::Outcome::default()
    } else {
        if format == crate::apply::Format::Text {
            eprint!("{}", crate::plan::text(&plan));
        }
        if !plan.versions.is_empty() {
            prepare_upgrade(&inputs, &survey, &plan).await?;
        }
        let dir = &c.state_dir;
        if !plan.removals.is_empty() {
            crate::apply::workflow::remove_hosts(&inputs, &survey, leaving, rep, &apply.walk)
                .await
                .context("removing hosts; the plan's other changes were not made")?;
            crate::members::save(dir, &record.without(&plan.removals))?;
        }
        let outcome = crate::apply::execute(&inputs, &survey, &plan, rep, &apply.walk).await?;
        if !plan.versions.is_empty() {
            let history = crate::history::load(&c.state_dir)?;
            crate::apply::files::prune_versions(&survey.conns, &survey.desired, &history, rep)
                .await?;
        }
        outcome
    };
    match output {
        Output::Json => println!("{}", serde_json::json!({ "summary": outcome })),
        Output::Text => eprintln!(
            "done in {:.1}s: {} file(s) written, {} service(s) started, {} restarted ({:.1}s transfer, {:.1}s starting and waiting)",
            outcome.seconds, outcome.files_written, outcome.units_started, outcome.units_restarted, outcome.transfer_seconds, outcome.wait_seconds
        ),
    }
    Ok(SUCCESS)
}

/// Before a version change: the versions it starts from go to the state directory (for
/// `rollback`), and etcd is snapshotted when its version changes.
async fn prepare_upgrade(
    inputs: &crate::apply::Inputs<'_>,
    survey: &crate::apply::Survey,
    plan: &crate::plan::Plan,
) -> Result<()> {
    let dir = &inputs.cluster.state_dir;
    let history = crate::plan::upgrade::record_history(crate::history::load(dir)?, &plan.versions);
    crate::history::save(dir, &history)?;
    if plan
        .versions
        .iter()
        .any(|m| m.release == crate::component::Release::Etcd.name())
    {
        let said = crate::apply::rollout::snapshot_etcd(inputs, survey)
            .await
            .context("taking an etcd snapshot before etcd changes version; nothing was changed")?;
        eprintln!("{said}");
    }
    Ok(())
}

/// The hosts to remove, as a cluster of their own to connect to: the recorded hosts the
/// inventory no longer names. `plan` lists them all (`remove` is None); `apply` needs each
/// named with `--remove` (a typo in the inventory must not drain a node) and refuses a name
/// that is not such a host, and, for now, an etcd member or API server host.
fn leaving(
    c: &crate::inventory::Cluster,
    members: &crate::members::Members,
    remove: Option<&[String]>,
) -> Result<crate::inventory::Cluster> {
    let removed = members.removed(c);
    let mut problems = Vec::new();
    if let Some(named) = remove {
        for n in named {
            if !removed.iter().any(|m| &m.name == n) {
                let why = if c.host(n).is_some() {
                    "is still in the inventory; take it out first"
                } else {
                    "was never applied by this state directory"
                };
                problems.push(format!("--remove {n}: {n} {why}"));
            }
        }
        for m in &removed {
            if !named.contains(&m.name) {
                problems.push(format!(
                    "{} is no longer in the inventory but was installed by apply; pass \
                     --remove {0} to drain it, delete its Node and reset it, or put it back",
                    m.name
                ));
            }
        }
        let members: Vec<&str> = removed
            .iter()
            .filter(|m| m.etcd && named.contains(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        if members.len() > 1 {
            problems.push(format!(
                "{}: etcd members leave a running cluster one at a time (each change of the \
                 member list needs a quorum of the members before it); put all but {} back in \
                 the inventory, apply --remove {1}, then the next",
                members.join(", "),
                members[0]
            ));
        }
    }
    let joining = members.new_etcd_members(c);
    if remove.is_some() && joining.len() > 1 {
        let names: Vec<&str> = joining.iter().map(|h| h.name.as_str()).collect();
        problems.push(format!(
            "{}: etcd members join a running cluster one at a time (each is added as a learner \
             and promoted once caught up, before the next); leave all but {} out of the \
             inventory, apply, then add the next",
            names.join(", "),
            names[0]
        ));
    }
    if !problems.is_empty() {
        bail!("{}\nNothing was changed.", problems.join("\n"));
    }
    let mut scope = c.clone();
    scope.hosts = removed
        .iter()
        .map(|m| crate::members::as_host(m, c))
        .collect();
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::Members;

    #[test]
    fn a_host_leaves_only_when_named_and_etcd_members_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let full = crate::inventory::bundled_for_test(dir.path());
        let record = Members::default().with(&full);
        let mut c = full.clone();
        c.hosts.retain(|h| h.name != "worker-1" && h.name != "cp-3");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        // plan: both listed, nothing refused.
        let all = leaving(&c, &record, None).unwrap();
        let listed: Vec<&str> = all.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(listed, ["cp-3", "worker-1"]);

        let err = leaving(&c, &record, Some(&names(&["worker-1"])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cp-3 is no longer in the inventory"), "{err}");
        let err = leaving(
            &c,
            &record,
            Some(&names(&["worker-1", "cp-3", "cp-1", "typo"])),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--remove cp-1: cp-1 is still in the inventory"),
            "{err}"
        );
        assert!(
            err.contains("--remove typo: typo was never applied"),
            "{err}"
        );

        let ok = leaving(&c, &record, Some(&names(&["worker-1", "cp-3"]))).unwrap();
        let listed: Vec<&str> = ok.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(listed, ["cp-3", "worker-1"]);
        assert!(ok.host("cp-3").unwrap().roles.etcd);

        let mut two = full.clone();
        two.hosts.retain(|h| h.name != "cp-2" && h.name != "cp-3");
        let err = leaving(&two, &record, Some(&names(&["cp-2", "cp-3"])))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cp-2, cp-3: etcd members leave a running cluster one at a time"),
            "{err}"
        );

        let mut c = full.clone();
        c.hosts.retain(|h| h.name != "worker-1");
        let ok = leaving(&c, &record, Some(&names(&["worker-1"]))).unwrap();
        assert_eq!(ok.hosts.len(), 1);
        assert_eq!(ok.hosts[0].address, full.host("worker-1").unwrap().address);
        assert!(leaving(&full, &record, Some(&[])).unwrap().hosts.is_empty());
    }
}
