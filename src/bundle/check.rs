//! Checking a bundle directory's files against the manifest, with a record of what was checked.
//!
//! Hashing every binary on every run costs seconds, so the state directory keeps, per file, the
//! identity it had when it was last hashed: device, inode, size, mtime and ctime. A file whose
//! identity is unchanged is not hashed again. Any write to a file changes its ctime, which user
//! space cannot set back, so an edited file is always hashed again.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::manifest::{Listed, Manifest};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    sha256: String,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata, sha256: String) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            sha256,
        }
    }

    fn same_file(&self, other: &Stamp) -> bool {
        (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns)
            == (
                other.dev,
                other.ino,
                other.size,
                other.mtime_ns,
                other.ctime_ns,
            )
    }
}

/// Checks every listed file of the bundle in `dir`. `record` is the file remembering what was
/// already hashed (in the state directory); without it every file is hashed.
pub fn check_dir(dir: &Path, m: &Manifest, record: Option<&Path>) -> Result<()> {
    let mut known: BTreeMap<PathBuf, Stamp> = record
        .and_then(|r| std::fs::read(r).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut changed = false;
    for l in m.listed() {
        let path = dir.join(l.path);
        match check_file(&path, &l, known.get(&path)) {
            Ok(Some(stamp)) => {
                known.insert(path, stamp);
                changed = true;
            }
            Ok(None) => {}
            Err(e) => {
                known.remove(&path);
                problems.push(format!("{e:#}"));
            }
        }
    }
    if let (Some(r), true) = (record, changed) {
        // Losing the record only costs a re-hash next time, so a failed write is not an error.
        let _ = crate::pki::store::replace(r, &serde_json::to_vec(&known)?, 0o600);
    }
    if !problems.is_empty() {
        bail!(
            "the bundle {} does not match its manifest; refusing to install anything from it:\n  {}",
            dir.display(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Returns a new stamp when the file had to be hashed.
fn check_file(path: &Path, l: &Listed<'_>, known: Option<&Stamp>) -> Result<Option<Stamp>> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{} is listed in the manifest but cannot be read", l.path))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", l.path);
    }
    let probe = Stamp::of(&meta, String::new());
    if let Some(k) = known {
        if k.same_file(&probe) && k.sha256 == l.sha256 {
            return Ok(None);
        }
    }
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", l.path))?;
    let (sha256, size) = hash_reader(&mut f).with_context(|| format!("reading {}", l.path))?;
    mismatch(l, &sha256, size)?;
    Ok(Some(Stamp::of(&meta, sha256)))
}

/// Fails when a file's content is not what the manifest lists.
pub fn mismatch(l: &Listed<'_>, sha256: &str, size: u64) -> Result<()> {
    if sha256 != l.sha256 || size != l.size {
        bail!(
            "{} does not match the manifest (sha256 {sha256}, {size} bytes; the manifest says {}, {} bytes): \
             the bundle is damaged or was tampered with",
            l.path,
            l.sha256,
            l.size
        );
    }
    Ok(())
}

pub fn hash_reader(r: &mut impl Read) -> std::io::Result<(String, u64)> {
    let mut h = Hashing::new(r);
    std::io::copy(&mut h, &mut std::io::sink())?;
    Ok(h.finish())
}

/// Hashes what passes through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    pub fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.size)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}
