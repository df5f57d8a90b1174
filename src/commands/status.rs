//! `status`: one or several clusters at once, each read from its hosts in parallel.

use std::path::Path;

use anyhow::{Context, Result};
use futures::future::join_all;

use super::output::emit;
use super::{load, SUCCESS};
use crate::apply::status::{self, ClusterStatus};
use crate::apply::Inputs;
use crate::cli::StatusArgs;
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
    let (_, pki) = pki::existing(&loaded.cluster)?;
    let rendered = render::render(&loaded.cluster, &pki)?;
    Ok(Prepared {
        loaded,
        pki,
        rendered,
        bundle,
    })
}

pub(super) fn status(a: &StatusArgs) -> Result<u8> {
    let (paths, warn_days) = (&a.inventories, a.warn_days);
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
    emit(a.output, &reports, |r| r.iter().map(status::text).collect())?;
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
