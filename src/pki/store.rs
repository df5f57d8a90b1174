//! Files in the state directory. Directories are 0700 and secrets 0600 from the moment they
//! exist (never written first and tightened after), and every write is atomic.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {} to its owner", dir.display()))
}

/// Writes a file atomically with the given mode; never replaces an existing file, so that no
/// key can be lost by accident.
pub fn create(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let tmp = write_temp(path, content, mode)?;
    crate::testhook::write_point("a new state file, before it is linked");
    // hard_link fails if the target exists: a concurrent run cannot overwrite what another created.
    let linked = fs::hard_link(&tmp, path).with_context(|| format!("creating {}", path.display()));
    fs::remove_file(&tmp).ok();
    sync_dir(path)?;
    linked
}

/// Writes a file atomically with the given mode, replacing what was there; for records that are
/// rebuilt from other state, never for keys.
pub fn replace(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let tmp = write_temp(path, content, mode)?;
    crate::testhook::write_point("a replaced state file, before the rename");
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    sync_dir(path)
}

/// Makes a rename or link in `path`'s directory durable.
fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

/// One change of a [`commit`]: a file to write (with its mode), or to remove.
pub enum Change {
    Write {
        path: PathBuf,
        content: Vec<u8>,
        mode: u32,
    },
    Remove(PathBuf),
}

/// Whether a commit may replace existing files (a reissued certificate) or only create new ones
/// (a new CA, a new key: nothing may be lost by accident).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Create,
    Replace,
}

const JOURNAL: &str = ".journal";

#[derive(Serialize, Deserialize)]
struct Plan {
    mode: Mode,
    /// (target, staged file in the journal, or None to remove the target)
    steps: Vec<(PathBuf, Option<String>)>,
}

/// Applies `changes` as one unit: a certificate with its key, a rotation's new CAs with the end of
/// its record. Every new content is first written and synced into `root/.journal/`, then a plan
/// naming each step is written and synced: that is the commit point. The steps then run, and
/// [`recover`] runs the rest of a committed plan after a crash (or drops an uncommitted journal,
/// which changed nothing). All targets are under `root`, on the same file system.
pub fn commit(root: &Path, mode: Mode, changes: &[Change]) -> Result<()> {
    recover(root)?;
    if changes.is_empty() {
        // A run that creates nothing (the usual `plan`) writes and syncs nothing.
        return Ok(());
    }
    let journal = root.join(JOURNAL);
    ensure_private_dir(&journal)?;
    let mut steps = Vec::new();
    for (i, c) in changes.iter().enumerate() {
        match c {
            Change::Write {
                path,
                content,
                mode: m,
            } => {
                if mode == Mode::Create && path.exists() {
                    fs::remove_dir_all(&journal).ok();
                    anyhow::bail!(
                        "{} already exists; it is never replaced by a new one",
                        path.display()
                    );
                }
                // Written and synced; the plan's directory sync makes its name durable.
                let staged = write_temp(&journal.join(i.to_string()), content, *m)?;
                let name = staged
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("a staged file has a name")?;
                steps.push((path.clone(), Some(name.to_string())));
            }
            Change::Remove(path) => steps.push((path.clone(), None)),
        }
        crate::testhook::write_point("a journal entry staged");
    }
    let plan = serde_json::to_vec(&Plan { mode, steps })?;
    let tmp = write_temp(&journal.join("plan"), &plan, 0o600)?;
    crate::testhook::write_point("the journal's plan written, not committed");
    fs::rename(&tmp, journal.join("plan")).context("committing the journal")?;
    sync_dir(&journal.join("plan"))?;
    crate::testhook::write_point("the journal committed");
    recover(root)
}

/// Finishes what a crash interrupted: runs the remaining steps of a committed journal, or drops
/// an uncommitted one. Called under the state lock before the state directory is read for writing.
pub fn recover(root: &Path) -> Result<()> {
    let journal = root.join(JOURNAL);
    if !journal.exists() {
        return Ok(());
    }
    let plan = match fs::read(journal.join("plan")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fs::remove_dir_all(&journal)
                .with_context(|| format!("removing the uncommitted {}", journal.display()));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", journal.display())),
    };
    let plan: Plan = serde_json::from_slice(&plan)
        .with_context(|| format!("{}/plan is damaged", journal.display()))?;
    for (target, staged) in &plan.steps {
        match staged {
            Some(name) => {
                let from = journal.join(name);
                if !from.exists() {
                    continue; // moved before the crash
                }
                if let Some(dir) = target.parent() {
                    ensure_private_dir(dir)?;
                }
                if plan.mode == Mode::Create {
                    match fs::hard_link(&from, target) {
                        Ok(()) => {}
                        // Linked before the crash, its staged copy not yet removed.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                            if fs::read(target)? != fs::read(&from)? {
                                anyhow::bail!(
                                    "{} appeared while {} waited to be applied; resolve it by hand",
                                    target.display(),
                                    journal.display()
                                );
                            }
                        }
                        Err(e) => {
                            return Err(e).with_context(|| format!("creating {}", target.display()))
                        }
                    }
                    fs::remove_file(&from)?;
                } else {
                    fs::rename(&from, target)
                        .with_context(|| format!("replacing {}", target.display()))?;
                }
                sync_dir(target)?;
            }
            None => match fs::remove_file(target) {
                Ok(()) => sync_dir(target)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", target.display())),
            },
        }
        crate::testhook::write_point("a journal step applied");
    }
    fs::remove_file(journal.join("plan"))?;
    fs::remove_dir_all(&journal).with_context(|| format!("removing {}", journal.display()))
}

/// Writes `content` to a temporary file beside `path`, synced and with its final mode.
fn write_temp(path: &Path, content: &[u8], mode: u32) -> Result<std::path::PathBuf> {
    let dir = path
        .parent()
        .context("a state file has a parent directory")?;
    ensure_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("new")
    ));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(content)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    crate::testhook::write_point("a temporary state file written");
    Ok(tmp)
}

pub fn read(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// An exclusive lock on the state directory, held while a command may change it or the hosts,
/// so two runs never interleave. Released when dropped (also when the process dies).
pub struct StateLock {
    _file: fs::File,
}

pub fn lock(state_dir: &Path) -> Result<StateLock> {
    ensure_private_dir(state_dir)?;
    let path = state_dir.join(".lock");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(StateLock { _file: file }),
        Err(fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another provisioner run is using the state directory {} (it holds {}); wait for it to finish",
            state_dir.display(),
            path.display()
        ),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_second_lock_on_the_same_state_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = super::lock(dir.path()).unwrap();
        let err = super::lock(dir.path())
            .err()
            .expect("must be refused")
            .to_string();
        assert!(err.contains("another provisioner run"), "{err}");
        drop(held);
        super::lock(dir.path()).unwrap();
    }

    use super::*;

    fn write(path: PathBuf, text: &str) -> Change {
        Change::Write {
            path,
            content: text.as_bytes().to_vec(),
            mode: 0o600,
        }
    }

    #[test]
    fn a_commit_writes_and_removes_together_and_leaves_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("old"), "x").unwrap();
        commit(
            root,
            Mode::Replace,
            &[
                write(root.join("a.key"), "key"),
                write(root.join("sub/a.crt"), "cert"),
                Change::Remove(root.join("old")),
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a.key")).unwrap(), "key");
        assert_eq!(
            std::fs::read_to_string(root.join("sub/a.crt")).unwrap(),
            "cert"
        );
        assert!(!root.join("old").exists() && !root.join(JOURNAL).exists());
        let mode = std::fs::metadata(root.join("a.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Create mode never replaces, and leaves nothing behind when it refuses.
        let err = commit(root, Mode::Create, &[write(root.join("a.key"), "new")]).unwrap_err();
        assert!(err.to_string().contains("never replaced"), "{err}");
        assert_eq!(std::fs::read_to_string(root.join("a.key")).unwrap(), "key");
        assert!(!root.join(JOURNAL).exists());
    }

    /// The states a crash can leave, made by hand: staged files without a plan (dropped), and a
    /// committed plan half applied (finished).
    #[test]
    fn recovery_drops_an_uncommitted_journal_and_finishes_a_committed_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let journal = root.join(JOURNAL);
        ensure_private_dir(&journal).unwrap();
        std::fs::write(journal.join("0"), "staged").unwrap();
        recover(root).unwrap();
        assert!(!journal.exists() && !root.join("a.key").exists());

        // Committed: the key was linked before the crash (its staged copy still there), the
        // certificate not yet.
        ensure_private_dir(&journal).unwrap();
        std::fs::write(journal.join("0"), "key").unwrap();
        std::fs::write(journal.join("1"), "cert").unwrap();
        std::fs::write(root.join("a.key"), "key").unwrap();
        let plan = Plan {
            mode: Mode::Create,
            steps: vec![
                (root.join("a.key"), Some("0".into())),
                (root.join("a.crt"), Some("1".into())),
            ],
        };
        std::fs::write(journal.join("plan"), serde_json::to_vec(&plan).unwrap()).unwrap();
        recover(root).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a.crt")).unwrap(), "cert");
        assert_eq!(std::fs::read_to_string(root.join("a.key")).unwrap(), "key");
        assert!(!journal.exists());
    }
}
