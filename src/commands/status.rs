//! `status`: one or several clusters at once, each read from its hosts in parallel.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use futures::future::join_all;

use super::{emit, existing_pki, load, SUCCESS};
use crate::apply::status::{self, ClusterStatus};
use crate::apply::Inputs;
use crate::cli::Output;
use crate::{pki, render};

/// Exit status when any cluster is unhealthy.
pub const EXIT_UNHEALTHY: u8 = 6;

/// What a cluster is checked from: its inventory, PKI, rendered files and bundle.
struct Prepared {
    loaded: crate::inventory::Loaded,
    pki: pki::Pki,
    rendered: render::Rendered,
    bundle: crate::bundle::Bundle,
}

/// The cluster's name once its inventory is read, and what it is checked from.
fn prepare(path: &Path) -> (Option<String>, Result<Prepared>) {
    let loaded = match load(path) {
        Ok(l) => l,
        Err(e) => return (None, Err(e)),
    };
    (
        Some(loaded.cluster.name.clone()),
        prepare_loaded(loaded, path),
    )
}

fn prepare_loaded(mut loaded: crate::inventory::Loaded, path: &Path) -> Result<Prepared> {
    let state = &loaded.cluster.state_dir;
    if !state.is_dir() {
        anyhow::bail!(
            "there is no state directory at {}: status checks a cluster built by `provisioner \
             apply` from here (or recovered with `provisioner state recover`)",
            state.display()
        );
    }
    // Held only while the state directory is read, never while the hosts are asked.
    let _lock = pki::store::lock(state)?;
    let bundle = crate::bundle::cluster::open_for(&mut loaded.cluster, path)?;
    let (_, pki) = existing_pki(&loaded)?;
    let rendered = render::render(&loaded.cluster, &pki)?;
    Ok(Prepared {
        loaded,
        pki,
        rendered,
        bundle,
    })
}

pub(super) fn status(paths: &[PathBuf], output: Output, warn_days: i64) -> Result<u8> {
    let prepared: Vec<_> = paths.iter().map(|p| (p, prepare(p))).collect();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let reports: Vec<ClusterStatus> = runtime.block_on(join_all(prepared.iter().map(
        |(path, (name, p))| async move {
            match p {
                Ok(p) => {
                    let inp = Inputs {
                        cluster: &p.loaded.cluster,
                        rendered: &p.rendered,
                        pki: &p.pki,
                        bundle: &p.bundle,
                    };
                    status::collect(&inp, path.to_path_buf(), warn_days).await
                }
                Err(e) => unreadable(path, name.as_deref(), e),
            }
        },
    )));
    emit(output, &reports, |r| r.iter().map(text).collect())?;
    Ok(if reports.iter().all(ClusterStatus::healthy) {
        SUCCESS
    } else {
        EXIT_UNHEALTHY
    })
}

/// A cluster whose inventory, state directory or bundle cannot be read.
fn unreadable(path: &Path, name: Option<&str>, e: &anyhow::Error) -> ClusterStatus {
    let stem = || path.file_stem().map(|s| s.to_string_lossy().into_owned());
    ClusterStatus {
        cluster: name.map(String::from).or_else(stem).unwrap_or_default(),
        inventory: path.to_path_buf(),
        hosts: Vec::new(),
        etcd: None,
        api_ready: false,
        nodes_ready: None,
        soonest_expiry: None,
        plan_changes: None,
        problems: vec![format!("{e:#}")],
    }
}

/// One cluster as people read it: a line per host, then the cluster-wide checks and findings.
fn text(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let verdict = if s.healthy() { "healthy" } else { "UNHEALTHY" };
    let _ = writeln!(out, "{} ({}): {verdict}", s.cluster, s.inventory.display());
    if s.hosts.is_empty() {
        // Nothing was asked: the inventory, state directory or bundle could not be read.
        for p in &s.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
        return out;
    }
    let rows: Vec<[String; 5]> = s
        .hosts
        .iter()
        .map(|h| {
            let active = h.units.values().filter(|v| *v == "active").count();
            let mut by_version: Vec<(String, Vec<String>)> = Vec::new();
            for (u, v) in &h.versions {
                match by_version.iter_mut().find(|(x, _)| x == v) {
                    Some((_, units)) => units.push(u.to_string()),
                    None => by_version.push((v.clone(), vec![u.to_string()])),
                }
            }
            let versions: Vec<String> = by_version
                .iter()
                .map(|(v, units)| format!("{} {v}", units.join(" ")))
                .collect();
            [
                h.host.clone(),
                if h.reachable { "ok" } else { "UNREACHABLE" }.to_string(),
                format!("{active}/{} active", h.units.len()),
                h.soonest_expiry.as_ref().map_or("-".into(), |e| {
                    format!("{}d {}", e.days_left, e.certificate)
                }),
                versions.join(", "),
            ]
        })
        .collect();
    let header = ["HOST", "SSH", "UNITS", "CERTS EXPIRE", "VERSIONS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    if let Some(e) = &s.etcd {
        let _ = writeln!(
            out,
            "  etcd {}: {}/{} member(s) answer, leader {}, database {:.1} MiB",
            e.version,
            e.answering,
            e.members,
            e.leader.as_deref().unwrap_or("none"),
            e.db_size_bytes as f64 / (1 << 20) as f64
        );
    }
    let mut cluster = vec![format!(
        "API server {}",
        if s.api_ready { "ready" } else { "NOT ready" }
    )];
    if let Some((ready, total)) = s.nodes_ready {
        cluster.push(format!("{ready}/{total} worker Node(s) Ready"));
    }
    if let Some(e) = &s.soonest_expiry {
        cluster.push(format!(
            "soonest certificate expiry: {} in {} day(s)",
            e.certificate, e.days_left
        ));
    }
    cluster.push(match s.plan_changes {
        Some(0) => "plan: no change".into(),
        Some(n) => format!("plan: {n} change(s)"),
        None => "plan: unknown".into(),
    });
    let _ = writeln!(out, "  {}", cluster.join("; "));
    for p in &s.problems {
        let _ = writeln!(out, "  problem: {p}");
    }
    out
}
