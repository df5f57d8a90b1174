//! One cgroup per machine in every hierarchy, made before nspawn starts.
//!
//! With `--keep-unit` (needed because the host has no systemd bus to ask for a scope) nspawn
//! puts itself and the container under whatever cgroup it was started in, as `supervisor` and
//! `payload`. Started straight from our own cgroup, every machine would land in the same
//! `payload`, and each machine's systemd would see and manage the others' units. So the launcher
//! first moves itself into a cgroup of its own, a child of ours in each hierarchy (a child, not a
//! sibling, so any limits the caller runs under still apply to the machines).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::Signal;

use super::sys::{self, signal};

/// A cgroup hierarchy as mounted on the host.
struct Hierarchy {
    mount_point: PathBuf,
    /// The path inside the hierarchy that is mounted there (not `/` inside a cgroup namespace).
    root: String,
    /// `cgroup2`, or the v1 controllers bound to it (`cpu,cpuacct`, `name=systemd`).
    controllers: Option<Vec<String>>,
}

fn hierarchies() -> Vec<Hierarchy> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut after = after.split(' ');
            let fstype = after.next()?;
            let _source = after.next();
            let super_options = after.next().unwrap_or("");
            let controllers = match fstype {
                "cgroup2" => None,
                "cgroup" => Some(
                    super_options
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro"))
                        .map(str::to_string)
                        .collect(),
                ),
                _ => return None,
            };
            Some(Hierarchy {
                mount_point: PathBuf::from(sys::unescape_mount_field(fields.get(4)?)),
                root: sys::unescape_mount_field(fields.get(3)?),
                controllers,
            })
        })
        .collect()
}

/// The directories `leaf` would have under our own cgroup, one per mounted hierarchy.
pub(super) fn planned_dirs(leaf: &str) -> Vec<PathBuf> {
    let mounted = hierarchies();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let hierarchy = mounted.iter().find(|h| match &h.controllers {
            None => wanted.is_empty(),
            Some(have) => !wanted.is_empty() && wanted.iter().all(|w| have.iter().any(|h| h == w)),
        });
        let Some(h) = hierarchy else { continue };
        let Some(relative) = path.strip_prefix(h.root.trim_end_matches('/')) else {
            continue;
        };
        let dir = h
            .mount_point
            .join(relative.trim_start_matches('/'))
            .join(leaf);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Creates the machine's cgroups and returns their directories; the launcher writes its pid to
/// each `cgroup.procs`.
pub(super) fn create(leaf: &str) -> Result<Vec<PathBuf>> {
    let dirs = planned_dirs(leaf);
    for dir in &dirs {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create cgroup {}", dir.display()))?;
        // A new v1 cpuset cgroup has no CPUs or memory nodes, and nothing can join it until it
        // has; copy the parent's, as `cgroup.clone_children` would.
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            if fs::read_to_string(&own).is_ok_and(|v| v.trim().is_empty()) {
                let parent = dir.parent().map(|p| p.join(file));
                let value = parent
                    .and_then(|p| fs::read_to_string(p).ok())
                    .unwrap_or_default();
                fs::write(&own, value.trim())
                    .with_context(|| format!("cannot set {}", own.display()))?;
            }
        }
    }
    Ok(dirs)
}

/// Every process in a cgroup and its descendants.
pub(super) fn pids_in(dir: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in child_dirs(dir) {
        pids.extend(pids_in(&child));
    }
    pids
}

fn child_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills whatever is still in the machine's cgroups and removes them. A cgroup directory can
/// only be removed once empty, deepest first.
pub(super) fn remove(dirs: &[PathBuf]) -> Result<()> {
    let present: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    let stragglers: Vec<u32> = present.iter().flat_map(|d| pids_in(d)).collect();
    signal(&stragglers, Signal::SIGKILL);
    sys::wait_until(Duration::from_secs(5), || {
        present.iter().all(|d| pids_in(d).is_empty())
    });
    for dir in present {
        remove_dir_tree(dir).with_context(|| format!("cannot remove cgroup {}", dir.display()))?;
    }
    Ok(())
}

fn remove_dir_tree(dir: &Path) -> Result<()> {
    for child in child_dirs(dir) {
        remove_dir_tree(&child)?;
    }
    // rmdir, not remove_dir_all: a cgroup's control files cannot be unlinked, only the directory.
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}
