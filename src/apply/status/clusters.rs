//! `status` of several clusters at once: each inventory read with its state directory and
//! bundle, then every cluster's hosts asked together. A cluster that cannot be read is reported
//! as unhealthy with the reason, beside the others.

use std::path::{Path, PathBuf};

use anyhow::Result;
use futures::future::join_all;

use super::{collect, ClusterStatus};
use crate::apply::Inputs;
use crate::inventory::Loaded;
use crate::{pki, render};

/// What a cluster is checked from: its inventory, PKI, rendered files and bundle.
struct Prepared {
    loaded: Loaded,
    pki: pki::Pki,
    rendered: render::Rendered,
    bundle: crate::bundle::Bundle,
}

/// The status of the cluster of each of `inventories`, in order, and the warnings their
/// inventories gave.
pub async fn clusters(
    inventories: &[PathBuf],
    warn_days: i64,
) -> (Vec<ClusterStatus>, Vec<String>) {
    let mut warnings = Vec::new();
    let prepared: Vec<_> = inventories
        .iter()
        .map(|p| (p, prepare(p, &mut warnings)))
        .collect();
    let reports = join_all(prepared.iter().map(|(path, (name, p))| async move {
        match p {
            Ok(p) => {
                let inp = Inputs {
                    cluster: &p.loaded.cluster,
                    rendered: &p.rendered,
                    pki: &p.pki,
                    bundle: &p.bundle,
                };
                collect(&inp, path.to_path_buf(), warn_days).await
            }
            Err(e) => unreadable(path, name.as_deref(), e),
        }
    }))
    .await;
    (reports, warnings)
}

/// The cluster's name once its inventory is read, and what it is checked from.
fn prepare(path: &Path, warnings: &mut Vec<String>) -> (Option<String>, Result<Prepared>) {
    let loaded = match crate::apply::load(path) {
        Ok((l, w)) => {
            warnings.extend(w);
            l
        }
        Err(e) => return (None, Err(e)),
    };
    (
        Some(loaded.cluster.name.clone()),
        prepare_loaded(loaded, path),
    )
}

fn prepare_loaded(mut loaded: Loaded, path: &Path) -> Result<Prepared> {
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
