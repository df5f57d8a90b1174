//! Uploads: content streamed to a temporary file beside the target, its SHA-256 checked on the
//! host, mode and owner (root:root) set, then renamed over the target. Skipped when the host
//! already has the same content.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::exec::tail;
use super::{Connection, Error, Result};
use crate::shell;

/// What to upload.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    /// Read from disk in chunks, never whole into memory.
    File(&'a Path),
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// The content was written.
    Written,
    /// The host had the same content, mode and owner: nothing was done.
    Unchanged,
    /// The host had the same content; only its mode or owner was corrected.
    PermissionsFixed,
}

/// The state of a file on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteFile {
    sha256: String,
    mode: u32,
    uid: u32,
    gid: u32,
}

const CHUNK: usize = 256 * 1024;

/// Told how many bytes of the content have been sent so far, as an upload goes.
pub type Progress<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// The content's SHA-256 and size.
async fn local_sha256(source: Source<'_>) -> std::io::Result<(String, u64)> {
    match source {
        Source::Bytes(b) => Ok((crate::digest::sha256_hex(b), b.len() as u64)),
        Source::File(p) => {
            let mut file = tokio::fs::File::open(p).await?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            let mut size = 0u64;
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                size += n as u64;
                hasher.update(&buf[..n]);
            }
            Ok((hex::encode(hasher.finalize()), size))
        }
    }
}

/// A reader that tells `seen` how much has been read from it: what the channel has taken to send.
struct Counted<'a, R> {
    inner: R,
    read: u64,
    seen: Progress<'a>,
}

impl<'a, R> Counted<'a, R> {
    fn new(inner: R, seen: Progress<'a>) -> Self {
        Counted {
            inner,
            read: 0,
            seen,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read += n as u64;
            (self.seen)(self.read);
        }
        polled
    }
}

/// The time an upload of `size` bytes may take on top of the command timeout: one second per
/// MiB, a link slower than 1 MiB/s being a problem to report rather than wait for.
fn transfer_time(size: u64) -> std::time::Duration {
    std::time::Duration::from_secs(size >> 20)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())
}

/// `/a/b/c` → (`/a/b`, `c`); `None` unless absolute, without a trailing slash or a newline.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') || path.ends_with('/') || path.contains(['\n', '\0']) {
        return None;
    }
    let (dir, name) = path.rsplit_once('/')?;
    if name == "." || name == ".." {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

/// The temporary file an upload writes before renaming: `<dir>/.<name>.provisioner-tmp`.
pub fn temp_path(path: &str) -> Option<String> {
    let (dir, name) = split_path(path)?;
    Some(if dir == "/" {
        format!("/.{name}.provisioner-tmp")
    } else {
        format!("{dir}/.{name}.provisioner-tmp")
    })
}

impl Connection {
    fn upload_error(&self, path: &str, reason: impl Into<String>) -> Error {
        Error::Upload {
            host: self.inner.endpoint.label.clone(),
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// Uploads `source` to `path` (absolute) with `mode`, owned by root:root, creating missing
    /// parent directories (mode 0755). Asks the host for the file's current SHA-256, mode and
    /// owner first (one round trip): the same content is not sent again.
    pub async fn upload(&self, source: Source<'_>, path: &str, mode: u32) -> Result<Uploaded> {
        self.upload_with_progress(source, path, mode, None, &|_| {})
            .await
    }

    /// [`upload`](Self::upload), telling `progress` the bytes sent as they go. With `expected`
    /// (a bundle file: the sha256 its signed manifest names), the content is not hashed here:
    /// the host checks what it received against `expected`, so a local file swapped after the
    /// bundle was verified is refused rather than installed.
    pub async fn upload_with_progress(
        &self,
        source: Source<'_>,
        path: &str,
        mode: u32,
        expected: Option<&str>,
        progress: Progress<'_>,
    ) -> Result<Uploaded> {
        let t = Instant::now();
        let (local, size) = match expected {
            Some(sha) => (sha.to_ascii_lowercase(), self.size_of(source, path).await?),
            None => self.hash_source(source, path).await?,
        };
        let remote = self.remote_file(path).await?;
        let done = match remote.filter(|r| r.sha256 == local) {
            Some(r) if r.mode == mode && r.uid == 0 && r.gid == 0 => Uploaded::Unchanged,
            Some(_) => {
                let out = self.run(&shell::own_and_chmod(path, mode)).await?;
                if !out.success() {
                    return Err(self.upload_error(
                        path,
                        format!("setting mode and owner: {}", tail(&out.stderr)),
                    ));
                }
                Uploaded::PermissionsFixed
            }
            None => {
                self.write(source, size, path, mode, &local, progress)
                    .await?;
                Uploaded::Written
            }
        };
        self.log_upload(path, size, done, t);
        Ok(done)
    }

    fn log_upload(&self, path: &str, size: u64, done: Uploaded, t: Instant) {
        tracing::debug!(
            host = %self.host_name(),
            path,
            bytes = size,
            result = ?done,
            ms = t.elapsed().as_millis() as u64,
            "upload"
        );
    }

    /// Like [`upload`](Self::upload), but trusts `remote_sha256` (from
    /// [`sha256_many`](Self::sha256_many), `None` for a missing file) instead of asking: when
    /// it equals the content's hash nothing is done, not even a mode or owner check.
    pub async fn upload_known(
        &self,
        source: Source<'_>,
        path: &str,
        mode: u32,
        remote_sha256: Option<&str>,
    ) -> Result<Uploaded> {
        let t = Instant::now();
        let (local, size) = self.hash_source(source, path).await?;
        let done = if remote_sha256.is_some_and(|r| r.eq_ignore_ascii_case(&local)) {
            Uploaded::Unchanged
        } else {
            self.write(source, size, path, mode, &local, &|_| {})
                .await?;
            Uploaded::Written
        };
        self.log_upload(path, size, done, t);
        Ok(done)
    }

    /// Refuses a target that is not an absolute file path.
    fn check_target(&self, path: &str) -> Result<()> {
        if split_path(path).is_none() {
            return Err(self.upload_error(
                path,
                "the target must be an absolute file path without a newline",
            ));
        }
        Ok(())
    }

    /// The content's size, for the progress display and the transfer's deadline.
    async fn size_of(&self, source: Source<'_>, path: &str) -> Result<u64> {
        self.check_target(path)?;
        match source {
            Source::Bytes(b) => Ok(b.len() as u64),
            Source::File(p) => tokio::fs::metadata(p)
                .await
                .map(|m| m.len())
                .map_err(|e| self.upload_error(path, format!("reading {}: {e}", p.display()))),
        }
    }

    async fn hash_source(&self, source: Source<'_>, path: &str) -> Result<(String, u64)> {
        self.check_target(path)?;
        local_sha256(source).await.map_err(|e| {
            let from = match source {
                Source::File(p) => format!("reading {}: {e}", p.display()),
                Source::Bytes(_) => e.to_string(),
            };
            self.upload_error(path, from)
        })
    }

    /// SHA-256 (lowercase hex) of each file, `None` for a missing one, in one round trip.
    pub async fn sha256_many<S: AsRef<str>>(&self, paths: &[S]) -> Result<Vec<Option<String>>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<&str> = paths.iter().map(AsRef::as_ref).collect();
        if let Some(bad) = paths
            .iter()
            .find(|p| p.contains(['\n', '\0']) || p.is_empty())
        {
            return Err(self.session_error(
                "computing SHA-256 of files",
                format!("invalid path {bad:?}"),
            ));
        }
        let shown_as = "sha256sum of files";
        let out = self
            .run_script(&shell::sha256_files(&paths), shown_as)
            .await?;
        let out = self.check(shown_as, out)?;
        let text = out.stdout_text();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() != paths.len() {
            return Err(self.session_error(
                "computing SHA-256 of files",
                format!(
                    "expected {} lines of output, got {}",
                    paths.len(),
                    lines.len()
                ),
            ));
        }
        lines
            .into_iter()
            .zip(paths)
            .map(|(l, p)| match l {
                "-" => Ok(None),
                h if is_sha256(h) => Ok(Some(h.to_string())),
                other => Err(self.session_error(
                    format!("computing SHA-256 of {p}"),
                    format!("unexpected output {other:?}"),
                )),
            })
            .collect()
    }

    /// SHA-256 of one file, `None` when missing.
    pub async fn sha256_of(&self, path: &str) -> Result<Option<String>> {
        Ok(self.sha256_many(&[path]).await?.pop().flatten())
    }

    async fn remote_file(&self, path: &str) -> Result<Option<RemoteFile>> {
        let out = self
            .run_script(&shell::file_state(path), &format!("sha256sum {path}"))
            .await
            .map_err(|e| self.upload_error(path, format!("checking the current file: {e}")))?;
        if !out.success() {
            return Err(self.upload_error(
                path,
                format!(
                    "checking the current file failed (exit status {}): {}",
                    out.status,
                    tail(&out.stderr)
                ),
            ));
        }
        let text = out.stdout_text();
        let line = text.trim();
        if line == "-" {
            return Ok(None);
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let parsed = match f.as_slice() {
            [h, m, u, g] if is_sha256(h) => (|| {
                Some(RemoteFile {
                    sha256: h.to_string(),
                    mode: u32::from_str_radix(m, 8).ok()?,
                    uid: u.parse().ok()?,
                    gid: g.parse().ok()?,
                })
            })(),
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.upload_error(path, format!("unexpected output {line:?}")))
    }

    /// Streams the content to the temporary file, checks it, sets mode and owner, renames.
    /// `size` is the content's, for the transfer's deadline.
    async fn write(
        &self,
        source: Source<'_>,
        size: u64,
        path: &str,
        mode: u32,
        sha256: &str,
        progress: Progress<'_>,
    ) -> Result<()> {
        let (dir, _) = split_path(path).expect("checked by check_target");
        let tmp = temp_path(path).expect("checked by check_target");
        let script = shell::receive(dir, &tmp, path, sha256, mode);
        let command = self.as_root_script(&script);
        let shown_as = format!("upload of {path}");
        let out = match source {
            Source::Bytes(b) => {
                self.exec(
                    &command,
                    Some(Counted::new(b, progress)),
                    &shown_as,
                    transfer_time(size),
                )
                .await
            }
            Source::File(p) => {
                let file = tokio::fs::File::open(p).await.map_err(|e| {
                    self.upload_error(path, format!("reading {}: {e}", p.display()))
                })?;
                let reader = tokio::io::BufReader::with_capacity(CHUNK, file);
                self.exec(
                    &command,
                    Some(Counted::new(reader, progress)),
                    &shown_as,
                    transfer_time(size),
                )
                .await
            }
        }
        .map_err(|e| self.upload_error(path, e.to_string()))?;
        if !out.success() {
            let stderr = tail(&out.stderr);
            let reason = match out.status {
                3 => format!("{stderr} (the content changed while it was sent, or the transfer was corrupted)"),
                _ => format!("exit status {}: {stderr}", out.status),
            };
            return Err(self.upload_error(path, reason));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_paths_sit_beside_the_target() {
        assert_eq!(
            temp_path("/etc/kubernetes/admin.conf").as_deref(),
            Some("/etc/kubernetes/.admin.conf.provisioner-tmp")
        );
        assert_eq!(temp_path("/x").as_deref(), Some("/.x.provisioner-tmp"));
        assert_eq!(temp_path("relative/x"), None);
        assert_eq!(temp_path("/etc/"), None);
        assert_eq!(temp_path("/etc/.."), None);
        assert_eq!(temp_path("/a\nb"), None);
    }

    #[tokio::test]
    async fn file_hash_is_streamed_and_matches_bytes_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..(CHUNK * 3 + 17)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let a = local_sha256(Source::File(&p)).await.unwrap();
        let b = local_sha256(Source::Bytes(&data)).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(a.1, data.len() as u64);
        assert_eq!(
            local_sha256(Source::Bytes(b"")).await.unwrap().0,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
