//! The bundle: a directory of binaries with a `manifest.toml` naming each file's component,
//! version and sha256. Every file is verified before anything is sent to a host.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    bundle: Header,
    files: Vec<Entry>,
    /// Provenance of the downloaded artifacts; informational.
    #[serde(default)]
    #[allow(dead_code)]
    sources: Vec<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: u32,
    arch: String,
    kubernetes_version: String,
    #[serde(default)]
    standins: bool,
    #[serde(default)]
    #[allow(dead_code)]
    components: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub component: String,
    pub version: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub mode: String,
}

/// A verified bundle.
#[derive(Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub arch: String,
    pub kubernetes_version: String,
    /// The Kubernetes binaries are the project's test stand-ins, not upstream Kubernetes.
    pub standins: bool,
    files: BTreeMap<String, Entry>,
}

impl Bundle {
    /// Reads the manifest and checks every file's size and sha256.
    pub fn open(dir: &Path) -> Result<Bundle> {
        let manifest_path = dir.join("manifest.toml");
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading the bundle manifest {}", manifest_path.display()))?;
        let m: Manifest = toml::from_str(&text)
            .with_context(|| format!("parsing {}", manifest_path.display()))?;
        if m.bundle.format != 1 {
            bail!(
                "{}: manifest format {} is not supported (this provisioner reads format 1)",
                manifest_path.display(),
                m.bundle.format
            );
        }
        let mut files = BTreeMap::new();
        for e in m.files {
            if e.path.starts_with('/') || e.path.split('/').any(|p| p == "..") {
                bail!(
                    "{}: file {} has path {} outside the bundle",
                    manifest_path.display(),
                    e.name,
                    e.path
                );
            }
            verify_file(&dir.join(&e.path), &e)
                .with_context(|| format!("bundle {}", dir.display()))?;
            if files.insert(e.name.clone(), e).is_some() {
                bail!("{}: a file name appears twice", manifest_path.display());
            }
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            arch: m.bundle.arch,
            kubernetes_version: m.bundle.kubernetes_version,
            standins: m.bundle.standins,
            files,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.files.get(name)
    }

    pub fn path_of(&self, e: &Entry) -> PathBuf {
        self.dir.join(&e.path)
    }
}

fn verify_file(path: &Path, e: &Entry) -> Result<()> {
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("{} is listed in the manifest but cannot be read", e.path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", e.path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let got = hex(&hasher.finalize());
    if got != e.sha256 || size != e.size {
        bail!(
            "{} does not match the manifest (sha256 {got}, {size} bytes; manifest says {}, {} bytes): \
             the bundle is damaged or was tampered with; refusing to install anything from it",
            e.path,
            e.sha256,
            e.size
        );
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
