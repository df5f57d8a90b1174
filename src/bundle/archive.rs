//! The bundle archive: one tar + zstd file, `manifest.toml` first, then every listed file.
//! Reading streams it once, checking each entry against the manifest as it goes, so a
//! tampered or truncated archive is refused without unpacking it anywhere first.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;

use anyhow::{bail, Context, Result};

use super::check::{mismatch, Hashing};
use super::manifest::{Listed, Manifest};
use super::MANIFEST;

/// zstd level: close to the best ratio for binaries while packing a few hundred MB in seconds.
const LEVEL: i32 = 9;
const MAX_MANIFEST: u64 = 16 << 20;
/// Decompressed bytes allowed for what comes between two entries' contents: headers, padding,
/// GNU long names and pax records. The tar reader holds long names and pax records in memory
/// whole, so without this a small archive of compressed zeros could claim gigabytes of them.
const MAX_METADATA: u64 = 1 << 20;

/// The decompressed stream, refusing to give more than its allowance: [`MAX_METADATA`] before
/// each entry, plus the size the manifest lists for the entry being read.
struct Allowance<R> {
    inner: R,
    left: Rc<Cell<u64>>,
}

impl<R: Read> Allowance<R> {
    fn new(inner: R, first: u64) -> (Self, Rc<Cell<u64>>) {
        let left = Rc::new(Cell::new(first));
        let this = Allowance {
            inner,
            left: left.clone(),
        };
        (this, left)
    }
}

impl<R: Read> Read for Allowance<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.left.get();
        if left == 0 && !buf.is_empty() {
            return Err(std::io::Error::other(format!(
                "more tar metadata than a bundle has (over {MAX_METADATA} bytes between two \
                 files): not a provisioner bundle"
            )));
        }
        let max = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left.set(left - n as u64);
        Ok(n)
    }
}

/// Writes the archive for the bundle directory `dir` (already checked against `m`) to `out`,
/// atomically. Each file is hashed again as it is packed.
pub fn pack(dir: &Path, m: &Manifest, out: &Path) -> Result<u64> {
    let partial = super::temp_beside(out)?;
    pack_to(dir, m, partial.reopen()?)?;
    partial
        .as_file()
        .set_permissions(fs::Permissions::from_mode(0o644))?;
    partial
        .persist(out)
        .with_context(|| format!("moving the archive to {}", out.display()))?;
    Ok(fs::metadata(out)?.len())
}

fn pack_to(dir: &Path, m: &Manifest, file: File) -> Result<()> {
    let enc = zstd::Encoder::new(BufWriter::new(file), LEVEL)?;
    let mut tar = tar::Builder::new(enc);
    let manifest = m.to_toml()?;
    append(
        &mut tar,
        MANIFEST,
        0o644,
        manifest.len() as u64,
        manifest.as_bytes(),
    )?;
    for l in m.listed() {
        let f = File::open(dir.join(l.path)).with_context(|| format!("opening {}", l.path))?;
        let mut hashing = Hashing::new(BufReader::new(f));
        let mode = m.mode_of(l.path);
        append(&mut tar, l.path, mode, l.size, &mut hashing)
            .with_context(|| format!("packing {}", l.path))?;
        let (sha, size) = hashing.finish();
        mismatch(&l, &sha, size)?;
    }
    let enc = tar.into_inner()?;
    let mut w = enc.finish()?;
    w.flush()?;
    w.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .context("syncing the archive")?;
    Ok(())
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    path: &str,
    mode: u32,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    // A fixed time keeps archives of the same files byte-identical.
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, data)?;
    Ok(())
}

/// The manifest of an archive (its first entry), without reading the rest.
pub fn peek(archive: &Path) -> Result<Manifest> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let dec = zstd::Decoder::new(file).context("not a zstd stream")?;
    let (dec, _) = Allowance::new(dec, MAX_MANIFEST + MAX_METADATA);
    let mut tar = tar::Archive::new(dec);
    let mut entries = tar.entries().context("not a tar archive")?;
    let (m, _) = first_manifest(&mut entries, archive)?;
    Ok(m)
}

fn first_manifest<R: std::io::Read>(
    entries: &mut tar::Entries<'_, R>,
    archive: &Path,
) -> Result<(Manifest, String)> {
    let not_bundle = || {
        format!(
            "{} is not a provisioner bundle: its first entry must be {MANIFEST}",
            archive.display()
        )
    };
    let mut first = entries.next().with_context(not_bundle)??;
    if entry_path(&first)? != MANIFEST || first.size() > MAX_MANIFEST {
        bail!(not_bundle());
    }
    let mut text = String::new();
    first
        .read_to_string(&mut text)
        .with_context(|| format!("reading {MANIFEST} in {}", archive.display()))?;
    let m = Manifest::parse(&text, &archive.join(MANIFEST))?;
    Ok((m, text))
}

/// Reads the archive, checking every entry against the manifest; with `dest`, the files are
/// also written there (a new, empty directory). Returns the manifest and the sha256 of the
/// archive's bytes as read, so a caller that checked a signature over an earlier read can tell
/// that the file did not change in between.
pub fn read(archive: &Path, dest: Option<&Path>) -> Result<(Manifest, String)> {
    let file = File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    let dec = zstd::Decoder::new(Hashing::new(file)).context("not a zstd stream")?;
    let (dec, allowance) = Allowance::new(dec, MAX_MANIFEST + MAX_METADATA);
    let mut tar = tar::Archive::new(dec);
    let mut entries = tar.entries().context("not a tar archive")?;

    let (m, text) = first_manifest(&mut entries, archive)?;
    if let Some(d) = dest {
        fs::write(d.join(MANIFEST), &text)?;
    }

    let mut pending: BTreeMap<&str, Listed<'_>> = m.listed().map(|l| (l.path, l)).collect();
    loop {
        allowance.set(MAX_METADATA);
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.with_context(|| format!("reading {}", archive.display()))?;
        let path = entry_path(&entry)?;
        match entry.header().entry_type() {
            tar::EntryType::Regular => {}
            tar::EntryType::Directory => continue,
            other => bail!(
                "{}: {path} is a {other:?} entry; a bundle holds regular files only",
                archive.display()
            ),
        }
        let Some(l) = pending.remove(path.as_str()) else {
            bail!(
                "{}: {path} is not listed in the manifest (or appears twice)",
                archive.display()
            );
        };
        if entry.size() != l.size {
            bail!(
                "{}: {path} does not match the manifest ({} bytes; the manifest says {} bytes): \
                 the bundle is damaged or was tampered with",
                archive.display(),
                entry.size(),
                l.size
            );
        }
        allowance.set(allowance.get().saturating_add(l.size));
        // Never more than the manifest's size plus one byte, whatever the tar header claims:
        // the extra byte shows a mismatch without writing a disk full.
        let mut hashing = Hashing::new((&mut entry).take(l.size + 1));
        match dest {
            Some(d) => {
                let target = d.join(l.path);
                fs::create_dir_all(target.parent().expect("listed paths are relative"))?;
                let mut out = File::create(&target)
                    .with_context(|| format!("writing {}", target.display()))?;
                std::io::copy(&mut hashing, &mut out)
                    .with_context(|| format!("unpacking {path}"))?;
                let mode = m.mode_of(l.path);
                out.set_permissions(fs::Permissions::from_mode(mode))?;
            }
            None => {
                std::io::copy(&mut hashing, &mut std::io::sink())
                    .with_context(|| format!("reading {path}"))?;
            }
        }
        let (sha, size) = hashing.finish();
        mismatch(&l, &sha, size).with_context(|| archive.display().to_string())?;
    }
    if !pending.is_empty() {
        let missing: Vec<&str> = pending.keys().copied().collect();
        bail!(
            "{}: the manifest lists files the archive lacks: {}",
            archive.display(),
            missing.join(", ")
        );
    }
    drop(pending);
    // Whatever follows the tar stream is part of the file too.
    let mut rest = tar.into_inner().inner.finish();
    std::io::copy(&mut rest, &mut std::io::sink())
        .with_context(|| format!("reading {}", archive.display()))?;
    let (sha256, _) = rest.into_inner().finish();
    Ok((m, sha256))
}

/// An entry's path as tar tools write it, without a leading `./`.
pub(crate) fn entry_path(e: &tar::Entry<'_, impl Read>) -> Result<String> {
    let raw = e.path_bytes();
    let s = std::str::from_utf8(&raw).context("an entry's path is not UTF-8")?;
    Ok(s.trim_start_matches("./").trim_end_matches('/').to_string())
}

/// Refuses to write over `out`.
pub fn refuse_existing(out: &Path) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists; remove it or choose another --out",
            out.display()
        );
    }
    Ok(())
}

/// A work directory beside `out`, so the finished archive is renamed, never copied.
pub fn scratch_beside(out: &Path) -> Result<tempfile::TempDir> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".bundle-work-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::{Entry, Header, FORMAT};

    #[test]
    fn reading_returns_the_hash_of_every_byte_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let data = b"#!/bin/sh\necho etcd\n";
        std::fs::write(dir.path().join("bin/etcd"), data).unwrap();
        let m = Manifest {
            bundle: Header {
                format: FORMAT,
                arch: "amd64".into(),
                kubernetes_version: "1.35.0".into(),
                components: vec!["etcd".into()],
            },
            files: vec![Entry {
                name: "etcd".into(),
                component: "etcd".into(),
                version: "3.5.24".into(),
                path: "bin/etcd".into(),
                sha256: crate::digest::sha256_hex(data),
                size: data.len() as u64,
                mode: "0755".into(),
                arch: None,
                source: None,
            }],
            images: vec![],
            sources: vec![],
        };
        let out = dir.path().join("b.tar.zst");
        pack(dir.path(), &m, &out).unwrap();
        // Trailing bytes after the zstd frame are read (and hashed) too.
        let mut bytes = std::fs::read(&out).unwrap();
        bytes.extend_from_slice(b"trailing");
        std::fs::write(&out, &bytes).unwrap();
        let (read_back, sha) = read(&out, None).unwrap();
        assert_eq!(read_back.files[0].path, "bin/etcd");
        assert_eq!(sha, crate::digest::sha256_hex(&bytes));
    }

    /// A GNU long-name record is read whole into memory by the tar reader; compressed zeros
    /// make a tiny archive claim gigabytes of it. Found while writing the `archive` fuzz
    /// target: such a record after the manifest must be refused without reading it.
    #[test]
    fn refuses_oversized_tar_metadata_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"etcd";
        let manifest = format!(
            "[bundle]\nformat = 1\narch = \"amd64\"\nkubernetes_version = \"1.35.0\"\n\n\
             [[files]]\nname = \"etcd\"\ncomponent = \"etcd\"\nversion = \"3.5.24\"\n\
             path = \"bin/etcd\"\nsha256 = \"{}\"\nsize = {}\nmode = \"0755\"\n",
            crate::digest::sha256_hex(data),
            data.len()
        );
        let mut tar = tar::Builder::new(Vec::new());
        append(
            &mut tar,
            MANIFEST,
            0o644,
            manifest.len() as u64,
            manifest.as_bytes(),
        )
        .unwrap();
        // 64 MiB of long name (compressing to a few KiB), then the listed file.
        let long = 64u64 << 20;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(long);
        h.set_mode(0o644);
        tar.append_data(&mut h, "././@LongLink", std::io::repeat(b'a').take(long))
            .unwrap();
        append(&mut tar, "bin/etcd", 0o755, data.len() as u64, &data[..]).unwrap();
        let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
        assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
        let out = dir.path().join("bomb.tar.zst");
        std::fs::write(&out, &bytes).unwrap();
        let err = read(&out, None).unwrap_err();
        assert!(format!("{err:#}").contains("more tar metadata"), "{err:#}");
    }
}
