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
        let result = converge_on(&l, path, &bundle, conns, output, apply, rehash, &rep).await;
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
    let plan = crate::apply::make_plan(&survey);
    let Some(apply) = apply else {
        emit(output, &plan, crate::plan::text)?;
        return Ok(SUCCESS);
    };
    let outcome = if plan.is_empty() {
        rep.note("Nothing to do: every host matches the inventory.");
        crate::apply::Outcome::default()
    } else {
        if format == crate::apply::Format::Text {
            eprint!("{}", crate::plan::text(&plan));
        }
        if !plan.refused.is_empty() {
            bail!(
                "{}\nNothing was changed: these version changes break upstream's version-skew \
                 policy. Use a bundle one minor up from what the hosts run.",
                plan.refused.join("\n")
            );
        }
        if !plan.versions.is_empty() {
            prepare_upgrade(&inputs, &survey, &plan).await?;
        }
        crate::apply::execute(&inputs, &survey, &plan, rep, &apply.walk).await?
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
    let history = crate::history::record(crate::history::load(dir)?, &plan.versions);
    crate::history::save(dir, &history)?;
    if plan.versions.iter().any(|m| m.release == "etcd") {
        let said = crate::apply::rollout::snapshot_etcd(inputs, survey)
            .await
            .context("taking an etcd snapshot before etcd changes version; nothing was changed")?;
        eprintln!("{said}");
    }
    Ok(())
}
