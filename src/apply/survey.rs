//! Facts from every host and the preflight checks, before anything is written; the plan is
//! computed from them.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::remote::Remote;
use super::stage::Stage;
use super::{Inputs, Reporter};
use crate::plan::{self, DesiredHost, Facts, Plan};

/// The hosts' connections and current state, ready to plan from.
pub struct Survey<R = crate::transport::Connection> {
    pub conns: BTreeMap<String, R>,
    pub desired: Vec<DesiredHost>,
    pub facts: Vec<Facts>,
}

/// Gathers facts over connections made by [`open`], and checks preflight conditions.
/// With `rehash`, every file is hashed again on the hosts instead of trusting the record of
/// files unchanged since they were last checked.
pub async fn survey<R: Remote>(
    inp: &Inputs<'_>,
    conns: BTreeMap<String, R>,
    rehash: bool,
    rep: &Reporter,
) -> Result<Survey<R>> {
    let desired = plan::desired(inp.rendered, inp.bundle)?;
    survey_for(inp, desired, conns, rehash, rep).await
}

/// [`survey`] towards `desired` instead of what the inventory and bundle make (a rollback's).
pub async fn survey_for<R: Remote>(
    inp: &Inputs<'_>,
    desired: Vec<DesiredHost>,
    conns: BTreeMap<String, R>,
    rehash: bool,
    rep: &Reporter,
) -> Result<Survey<R>> {
    let parallel = inp.cluster.ssh.parallelism as usize;

    Stage::Survey.start(rep);
    let facts: Vec<Facts> = stream::iter(&desired)
        .map(|d| {
            let conn = &conns[&d.host];
            async move {
                rep.start(Some(&d.host), "gather");
                let t = Instant::now();
                let out = conn.run_checked(&plan::facts::script(d, rehash)).await?;
                rep.step("facts", Some(&d.host), "gather", t.elapsed(), "ok", None);
                anyhow::Ok(plan::facts::parse(&out.stdout_text()))
            }
        })
        .buffered(parallel)
        .try_collect()
        .await?;

    let pairs: Vec<(&DesiredHost, &Facts)> = desired.iter().zip(&facts).collect();
    let k = &inp.cluster.kubelet;
    let require_cgroup2 = inp.cluster.kubernetes.minor() >= 35 && !k.allow_cgroup_v1;
    let problems = plan::facts::preflight(&pairs, &inp.bundle.arch, require_cgroup2, k.allow_swap);
    if !problems.is_empty() {
        bail!(
            "preflight failed on {} point(s); nothing was changed:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(Survey {
        conns,
        desired,
        facts,
    })
}

pub fn make_plan<R>(s: &Survey<R>) -> Plan {
    let pairs: Vec<(&DesiredHost, &Facts)> = s.desired.iter().zip(&s.facts).collect();
    plan::plan(&pairs)
}

/// Refuses before any change when a host no longer has a previous version's program.
pub async fn missing_versions<R: Remote>(s: &Survey<R>) -> Result<()> {
    let mut missing = Vec::new();
    for d in &s.desired {
        let targets: Vec<&str> = d.links.iter().map(|l| l.target.as_str()).collect();
        let out = s.conns[&d.host]
            .run_checked(&crate::shell::sha256_files(&targets))
            .await?;
        for (line, target) in out.stdout_text().lines().zip(&targets) {
            if line.trim() == "-" {
                missing.push(format!("{}: {target}", d.host));
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "the previous version is not on every host; nothing was changed:\n  {}\nApply the \
             previous bundle instead (the inventory pointed at it): that installs it again",
            missing.join("\n  ")
        );
    }
    Ok(())
}
