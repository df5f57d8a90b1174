//! The first steps of every command that touches hosts: one SSH connection per host, and the
//! check that each host belongs to the cluster the state directory describes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::stage::Stage;
use super::Reporter;
use crate::inventory::Cluster;
use crate::plan;
use crate::transport::{self, Connection};

/// Connects to every host and checks that each belongs to the cluster the state directory
/// describes (see [`plan::identity`]), before anything is planned or written. Fails with a
/// [`plan::identity::Mismatch`] naming each host and identity that differs.
pub async fn open(cluster: &Cluster, rep: &Reporter) -> Result<BTreeMap<String, Connection>> {
    let conns = connect(cluster, rep).await?;
    Stage::Identity.start(rep);
    let known = crate::pki::identity::known(&cluster.state_dir)?;
    let probe = plan::identity::probe();
    let hosts: Vec<(String, plan::identity::HostIdentity)> = stream::iter(&conns)
        .map(|(host, conn)| {
            let probe = &probe;
            async move {
                let out = conn
                    .run_script(probe, "read the cluster identity")
                    .await
                    .with_context(|| format!("{host}: reading its cluster identity"))?;
                let out = conn.check("read the cluster identity", out)?;
                anyhow::Ok((host.clone(), plan::identity::parse(&out.stdout_text())))
            }
        })
        .buffered(cluster.ssh.parallelism as usize)
        .try_collect()
        .await?;
    let problems = plan::identity::check(&known, &hosts);
    if !problems.is_empty() {
        return Err(plan::identity::Mismatch {
            state_dir: cluster.state_dir.clone(),
            problems,
        }
        .into());
    }
    Ok(conns)
}

/// One SSH connection per host, all of them or an error naming each host that failed.
pub async fn connect(cluster: &Cluster, rep: &Reporter) -> Result<BTreeMap<String, Connection>> {
    Stage::Connect.start(rep);
    let results: Vec<(String, Result<Connection, transport::Error>, Duration)> =
        stream::iter(&cluster.hosts)
            .map(|h| async move {
                rep.start(Some(&h.name), "ssh");
                let t = Instant::now();
                let r = Connection::connect(h, &cluster.ssh).await;
                (h.name.clone(), r, t.elapsed())
            })
            .buffer_unordered(cluster.ssh.parallelism as usize)
            .collect()
            .await;
    let mut conns = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, r, took) in results {
        match r {
            Ok(c) => {
                rep.step("connect", Some(&name), "ssh", took, "ok", None);
                conns.insert(name, c);
            }
            Err(e) => {
                let e = e.to_string();
                rep.step("connect", Some(&name), "ssh", took, "failed", Some(&e));
                failures.push(e);
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "cannot reach {} host(s); nothing was changed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(conns)
}
