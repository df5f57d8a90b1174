//! Copying a file from a host: streamed into a temporary file beside the target (never held in
//! memory), checked against the SHA-256 the host computes, then renamed into place. Downloads
//! are backups (etcd snapshots), so the file is 0600.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Connection, Result};
use crate::shell;

/// Hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What was downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub sha256: String,
    pub size: u64,
}

impl Connection {
    /// Copies `path` from the host to the local `to` (0600), verified against the file's
    /// SHA-256 on the host. `to` is replaced only once the copy is complete and verified.
    pub async fn download(&self, path: &str, to: &Path) -> Result<Downloaded> {
        let step = format!("downloading {path} to {}", to.display());
        let fail = |reason: String| self.session_error(step.clone(), reason);
        let expected = self
            .sha256_of(path)
            .await?
            .ok_or_else(|| fail("the file does not exist on the host".into()))?;
        let dir = to.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let mut tmp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(dir)
            .map_err(|e| fail(format!("creating a file in {}: {e}", dir.display())))?;
        let got = {
            let mut sink = Hashing {
                inner: std::io::BufWriter::new(tmp.as_file_mut()),
                hasher: Sha256::new(),
                size: 0,
            };
            // The copy may take as long as the bytes need; the command timeout covers starting it.
            let command = self.as_root(&shell::cat(path));
            let out = self
                .exec_into(
                    &command,
                    None::<&[u8]>,
                    Some(&mut sink),
                    &format!("cat {path}"),
                    Duration::from_secs(24 * 3600),
                )
                .await?;
            self.check(&format!("cat {path}"), out)?;
            sink.flush()
                .map_err(|e| fail(format!("writing locally: {e}")))?;
            Downloaded {
                sha256: hex::encode(sink.hasher.finalize()),
                size: sink.size,
            }
        };
        if got.sha256 != expected {
            return Err(fail(format!(
                "the copy has SHA-256 {} but the host's file has {expected} (it changed during the copy?)",
                got.sha256
            )));
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| fail(format!("syncing: {e}")))?;
        tmp.persist(to)
            .map_err(|e| fail(format!("renaming into place: {e}")))?;
        Ok(got)
    }
}
