//! The bundle: every binary and image the hosts need, with a `manifest.toml` naming each file's
//! component, version, sha256 and size. It is either a directory or one archive (tar + zstd)
//! made by `provisioner bundle fetch|create`, optionally signed. Everything is verified before
//! any host is contacted, and the hosts check each upload's sha256 again.

pub mod archive;
pub mod check;
pub mod cluster;
pub mod create;
pub mod fetch;
pub mod image;
pub mod manifest;
pub mod signature;
pub mod verify;
pub mod versions;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use manifest::{Entry, Image, Manifest};

pub const MANIFEST: &str = "manifest.toml";

/// A verified bundle, unpacked in a directory.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub arch: String,
    pub kubernetes_version: String,
    /// Fingerprint of the key whose signature was checked.
    pub signed_by: Option<String>,
    files: BTreeMap<String, Entry>,
    pub images: Vec<Image>,
}

impl Bundle {
    /// Opens and verifies the bundle at `path` (a directory or an archive). Archives are
    /// unpacked into `state_dir/bundles/`, and the state directory remembers which files were
    /// already hashed. With `public_key`, a valid signature is required first.
    pub fn open(path: &Path, state_dir: &Path, public_key: Option<&Path>) -> Result<Bundle> {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("the bundle {} cannot be read", path.display()))?;
        let signed = signature::signed_file(path);
        // What is signed is read once: a directory's manifest is hashed and parsed from the same
        // bytes, and an archive is unpacked only if it still hashes to what was checked.
        let (dir, m, signed_by) = if meta.is_dir() {
            let bytes = std::fs::read(&signed)
                .with_context(|| format!("reading the bundle manifest {}", signed.display()))?;
            let signed_by = match public_key {
                Some(k) => Some(signature::verify(
                    &signed,
                    &signature::digests_of(&bytes),
                    k,
                )?),
                None => None,
            };
            (
                path.to_path_buf(),
                manifest_from(&bytes, &signed)?,
                signed_by,
            )
        } else {
            let d = signature::digests(&signed)?;
            let signed_by = match public_key {
                Some(k) => Some(signature::verify(&signed, &d, k)?),
                None => None,
            };
            let dir = unpack(path, &hex::encode(d.sha256), state_dir)?;
            let m = read_manifest(&dir)?;
            (dir, m, signed_by)
        };
        let record = state_dir.join("bundle-checked.json");
        check::check_dir(&dir, &m, Some(&record))?;
        Ok(Bundle {
            dir,
            arch: m.bundle.arch,
            kubernetes_version: m.bundle.kubernetes_version,
            signed_by,
            files: m.files.into_iter().map(|e| (e.name.clone(), e)).collect(),
            images: m.images,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.files.get(name)
    }

    pub fn path_of(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// A bundle that carries nothing, for the runner's tests that never install from one.
    #[cfg(test)]
    pub fn empty(dir: &Path) -> Bundle {
        Bundle {
            dir: dir.to_path_buf(),
            arch: "amd64".into(),
            kubernetes_version: String::new(),
            signed_by: None,
            files: BTreeMap::new(),
            images: Vec::new(),
        }
    }

    /// The image carried under `name`: "pause" is the sandbox image containerd is pointed at,
    /// "coredns" the cluster DNS.
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name == name)
    }
}

pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading the bundle manifest {}", path.display()))?;
    manifest_from(&bytes, &path)
}

/// The manifest of a bundle directory or archive, read without checking the files: for the
/// version checks that run before the bundle is opened.
pub fn peek_manifest(path: &Path) -> Result<Manifest> {
    if path.is_dir() {
        read_manifest(path)
    } else {
        archive::peek(path)
    }
}

/// Parses manifest bytes already read (and, for a signed directory, already checked).
pub fn manifest_from(bytes: &[u8], origin: &Path) -> Result<Manifest> {
    let text = std::str::from_utf8(bytes)
        .with_context(|| format!("{} is not UTF-8 text", origin.display()))?;
    Manifest::parse(text, origin)
}

/// A temporary file in `path`'s directory, removed when dropped unless persisted onto `path`
/// once complete: an interrupted write never leaves a partial file or a stray name behind.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
        .with_context(|| format!("creating a file beside {}", path.display()))
}

/// Unpacks a verified archive once into `state_dir/bundles/<sha256>`; later runs reuse it.
fn unpack(archive: &Path, sha256: &str, state_dir: &Path) -> Result<PathBuf> {
    let root = state_dir.join("bundles");
    let dir = root.join(&sha256[..32]);
    if dir.join(MANIFEST).is_file() {
        return Ok(dir);
    }
    crate::pki::store::ensure_private_dir(&root)?;
    // Removed on every error path; renamed into place only once checked.
    let tmp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a directory in {}", root.display()))?;
    match archive::read(archive, Some(tmp.path())) {
        Ok((_, read_sha256)) if read_sha256 == sha256 => {}
        outcome => {
            let e = match outcome {
                Err(e) => e,
                Ok(_) => {
                    anyhow::anyhow!("{} changed while it was being checked", archive.display())
                }
            };
            return Err(e.context("refusing the bundle; nothing was installed"));
        }
    }
    std::fs::rename(tmp.keep(), &dir).with_context(|| format!("creating {}", dir.display()))?;
    // Only the bundle in use is kept: older unpacked bundles are hundreds of MB each.
    for old in std::fs::read_dir(&root)?.flatten() {
        if old.path() != dir {
            let _ = std::fs::remove_dir_all(old.path());
        }
    }
    Ok(dir)
}

/// SHA-256 (hex) and size of a file, read in chunks.
pub fn sha256_file(p: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    check::hash_reader(&mut f).with_context(|| format!("reading {}", p.display()))
}
