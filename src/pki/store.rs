//! Files in the state directory. Directories are 0700 and secrets 0600 from the moment they
//! exist (never written first and tightened after), and every write is atomic.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

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
    // hard_link fails if the target exists: a concurrent run cannot overwrite what another created.
    let linked = fs::hard_link(&tmp, path).with_context(|| format!("creating {}", path.display()));
    fs::remove_file(&tmp).ok();
    linked
}

/// Writes a file atomically with the given mode, replacing what was there; for records that are
/// rebuilt from other state, never for keys.
pub fn replace(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    let tmp = write_temp(path, content, mode)?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
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
}
