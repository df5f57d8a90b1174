//! The files phase: directories, files and the reloads they need, every host in parallel.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use super::remote::Remote;
use super::stage::Stage;
use super::Reporter;
use crate::layout::{FOLLOW_UP, RELEASES_DIR, SYSCTL_FILE};
use crate::plan::{self, DesiredHost, FileAction, FileChange, HostPlan, Plan, Source};
use crate::{shell, transport};

/// Writes every host's planned files; returns how many were written.
pub async fn write<R: Remote>(
    conns: &BTreeMap<String, R>,
    desired: &[DesiredHost],
    p: &Plan,
    parallel: usize,
    rep: &Reporter,
) -> Result<usize> {
    Stage::Files.start(rep);
    let written: Vec<usize> = stream::iter(&p.hosts)
        .filter(|h| {
            std::future::ready(
                !h.dirs.is_empty()
                    || !h.files.is_empty()
                    || !h.links.is_empty()
                    || !h.removes.is_empty()
                    || !h.follow_up.is_empty(),
            )
        })
        .map(|h| {
            let d = desired
                .iter()
                .find(|d| d.host == h.host)
                .expect("plans are made from the desired hosts");
            write_host(&conns[&h.host], h, d, rep)
        })
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    Ok(written.iter().sum())
}

/// Directories, files, then the reloads they need, on one host.
async fn write_host<R: Remote>(
    conn: &R,
    h: &HostPlan,
    d: &DesiredHost,
    rep: &Reporter,
) -> Result<usize> {
    let host = Some(h.host.as_str());
    let mut what = format!(
        "{} file(s), {} link(s), {} dir(s)",
        h.files.len(),
        h.links.len(),
        h.dirs.len()
    );
    if !h.removes.is_empty() {
        what += &format!(", {} file(s) removed", h.removes.len());
    }
    rep.start(host, &what);
    let t = Instant::now();
    conn.run_checked(&plan::installed::track_command(d))
        .await
        .context("recording what provisioner installs, for reset")?;
    if !h.follow_up.is_empty() {
        conn.run_checked(&shell::write_lines(FOLLOW_UP, &h.follow_up.lines()))
            .await
            .context("recording the work these files ask for, until it is done")?;
    }
    if !h.dirs.is_empty() {
        conn.run_checked(&shell::install_dirs(&h.dirs)).await?;
    }
    let mut written = 0;
    let total: u64 = h.files.iter().map(upload_size).sum();
    let mut sent = 0;
    for (i, c) in h.files.iter().enumerate() {
        match c.action {
            FileAction::Permissions => {
                conn.run_checked(&shell::own_and_chmod(&c.path, c.mode))
                    .await?;
            }
            FileAction::Create | FileAction::Update => {
                let source = match &c.item.source {
                    Source::Rendered(bytes) => transport::Source::Bytes(bytes),
                    Source::Bundle(path) => transport::Source::File(path),
                };
                let item = format!("{} ({}/{})", c.path, i + 1, h.files.len());
                let before = sent;
                let progress = |n: u64| rep.progress(host, &item, before + n, total);
                conn.upload(source, &c.path, c.mode, Some(&c.item.sha256), &progress)
                    .await?;
                written += 1;
            }
        }
        sent += upload_size(c);
    }
    // Every desired file now has its desired content (uploads are verified on the host).
    conn.run_checked(&plan::facts::record_command(d))
        .await
        .context("recording file hashes")?;
    // Only now that their replacements are in place.
    for path in &h.removes {
        conn.run_checked(&shell::remove_file(path))
            .await
            .with_context(|| format!("removing {path}, which a new file replaces"))?;
    }
    // A program's link switches with its unit's restart (see the engine); the others now.
    let alone: Vec<(&str, &str)> = h
        .links_alone()
        .map(|l| (l.path.as_str(), l.target.as_str()))
        .collect();
    if !alone.is_empty() {
        conn.switch_links(&alone)
            .await
            .context("pointing the tools' links at their versions")?;
    }
    let follow_up = h.follow_up.files_part();
    if follow_up.daemon_reload {
        conn.run_checked(&shell::daemon_reload()).await?;
    }
    if !follow_up.sysusers.is_empty() {
        conn.run_checked(&shell::create_system_users(&follow_up.sysusers))
            .await
            .context("creating the system users that units run as")?;
    }
    if follow_up.load_modules {
        // Kernels with these built in have nothing to load (and may not support modules at all).
        conn.run_checked(&shell::load_modules())
            .await
            .context("loading kernel modules")?;
    }
    if follow_up.reload_sysctl {
        conn.run_checked(&shell::apply_sysctl(SYSCTL_FILE))
            .await
            .context("applying sysctls")?;
    }
    if follow_up.forget_renewed_kubelet_client {
        // The running kubelet keeps its certificate in memory; its restart loads the new one.
        conn.run_checked(&shell::forget_renewed_kubelet_client())
            .await
            .context("removing the client certificates the kubelet renewed itself")?;
    }
    if !follow_up.is_empty() && h.follow_up.restarts.is_empty() {
        conn.run_checked(&shell::remove_file(FOLLOW_UP)).await?;
    }
    rep.step("files", host, &what, t.elapsed(), "ok", None);
    Ok(written)
}

/// The bytes a file change sends, for the progress bar; a file that cannot be read counts as
/// empty here and fails in the upload, which names it.
fn upload_size(c: &FileChange) -> u64 {
    match (&c.action, &c.item.source) {
        (FileAction::Permissions, _) => 0,
        (_, Source::Rendered(bytes)) => bytes.len() as u64,
        (_, Source::Bundle(path)) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    }
}

/// Removes, on every host, the program versions no link points at and no rollback returns to
/// (see [`plan::upgrade::kept_versions`]); each removal is noted.
pub async fn prune_versions<R: Remote>(
    conns: &BTreeMap<String, R>,
    desired: &[DesiredHost],
    history: &crate::history::History,
    rep: &Reporter,
) -> Result<()> {
    for d in desired {
        let keep = plan::upgrade::kept_versions(d, history);
        let out = conns[&d.host]
            .run_checked(&shell::prune_versions(RELEASES_DIR, &keep))
            .await
            .with_context(|| format!("{}: removing old program versions", d.host))?;
        for line in out.stdout_text().lines() {
            rep.note(&format!("{}: {line}", d.host));
        }
    }
    Ok(())
}
