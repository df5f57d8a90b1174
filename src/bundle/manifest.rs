//! `manifest.toml`: what a bundle holds, with the sha256 and size of every file and image.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The only manifest format this provisioner reads and writes.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub bundle: Header,
    #[serde(default)]
    pub files: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Image>,
    /// Provenance of the downloaded artifacts; informational.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<toml::Table>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    pub arch: String,
    pub kubernetes_version: String,
    #[serde(default)]
    pub components: Vec<String>,
}

/// A binary (or any file) installed on hosts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub component: String,
    pub version: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Where the file was downloaded from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A container image archive (OCI layout in a tar) imported into containerd on every node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// `pause` marks the sandbox image containerd is pointed at.
    pub name: String,
    pub reference: String,
    /// Digest of the image manifest (what `ctr images ls` shows after the import).
    pub digest: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// One file of the bundle, whether binary or image, as the verifiers see it.
pub struct Listed<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub sha256: &'a str,
    pub size: u64,
}

impl Manifest {
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest> {
        let m: Manifest =
            toml::from_str(text).with_context(|| format!("parsing {}", origin.display()))?;
        m.validate(origin)?;
        Ok(m)
    }

    /// Everything a manifest says must hold before any of it is used: names, references and
    /// digests reach host commands and containerd's config.
    fn validate(&self, origin: &Path) -> Result<()> {
        use crate::inventory::reference;
        let m = self;
        for i in &m.images {
            reference::image_reference(&i.reference)
                .map_err(|e| anyhow::anyhow!("{}: image {:?}: {e}", origin.display(), i.name))?;
            reference::sha256_digest(&i.digest)
                .map_err(|e| anyhow::anyhow!("{}: image {:?}: {e}", origin.display(), i.name))?;
        }
        for l in m.listed() {
            reference::file_name(l.name)
                .map_err(|e| anyhow::anyhow!("{}: a bundle name: {e}", origin.display()))?;
        }
        if m.bundle.format != FORMAT {
            bail!(
                "{}: manifest format {} is not supported (this provisioner reads format {FORMAT})",
                origin.display(),
                m.bundle.format
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for l in m.listed() {
            if !safe_path(l.path) {
                bail!(
                    "{}: {} has the path {:?}, which is not a plain relative path inside the bundle",
                    origin.display(),
                    l.name,
                    l.path
                );
            }
            if !seen.insert(l.path) {
                bail!("{}: the path {} appears twice", origin.display(), l.path);
            }
            if l.sha256.len() != 64 || !l.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{}: {} has no valid sha256", origin.display(), l.name);
            }
        }
        let mut names = std::collections::BTreeSet::new();
        if let Some(e) = m.files.iter().find(|e| !names.insert(e.name.as_str())) {
            bail!(
                "{}: the file name {} appears twice",
                origin.display(),
                e.name
            );
        }
        for e in &m.files {
            if let Some(arch) = e.arch.as_ref().filter(|a| **a != m.bundle.arch) {
                bail!(
                    "{}: {} is for {arch} but the bundle is for {}",
                    origin.display(),
                    e.name,
                    m.bundle.arch
                );
            }
            if u32::from_str_radix(&e.mode, 8).map_or(true, |m| m > 0o7777) {
                bail!(
                    "{}: {} has the mode {:?}, not an octal mode",
                    origin.display(),
                    e.name,
                    e.mode
                );
            }
        }
        Ok(())
    }

    /// The manifest as written into a bundle; refused when it would not [`parse`](Self::parse).
    pub fn to_toml(&self) -> Result<String> {
        self.validate(Path::new(crate::bundle::MANIFEST))?;
        Ok(format!(
            "# provisioner bundle manifest: every file's sha256 is checked before anything is installed.\n{}",
            toml::to_string(self).context("serialising the bundle manifest")?
        ))
    }

    /// The mode a listed file is installed (and packed) with: its own for binaries, 0644 for
    /// image archives.
    pub fn mode_of(&self, path: &str) -> u32 {
        self.files
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| u32::from_str_radix(&e.mode, 8).ok())
            .unwrap_or(0o644)
    }

    /// Every file the manifest lists: binaries and image archives.
    pub fn listed(&self) -> impl Iterator<Item = Listed<'_>> {
        let files = self.files.iter().map(|e| Listed {
            name: &e.name,
            path: &e.path,
            sha256: &e.sha256,
            size: e.size,
        });
        let images = self.images.iter().map(|i| Listed {
            name: &i.name,
            path: &i.path,
            sha256: &i.sha256,
            size: i.size,
        });
        files.chain(images)
    }
}

/// A relative path of normal components only: nothing absolute, no `..`, no `.`, no empty parts.
pub fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p != crate::bundle::MANIFEST
        && p.split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[bundle]
format = 1
arch = "amd64"
kubernetes_version = "1.35.0"

[[files]]
name = "etcd"
component = "etcd"
version = "3.5.24"
path = "bin/etcd"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
size = 1
mode = "0755"

[[images]]
name = "pause"
reference = "registry.k8s.io/pause:3.10.1"
digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
path = "images/pause.tar"
sha256 = "2222222222222222222222222222222222222222222222222222222222222222"
size = 2
"#;

    #[test]
    fn round_trips() {
        let m = Manifest::parse(GOOD, Path::new("m.toml")).unwrap();
        let again = Manifest::parse(&m.to_toml().unwrap(), Path::new("m.toml")).unwrap();
        assert_eq!(again.files[0].path, "bin/etcd");
        assert_eq!(again.images[0].reference, "registry.k8s.io/pause:3.10.1");
        assert_eq!(again.listed().count(), 2);
    }

    #[test]
    fn refuses_paths_outside_the_bundle() {
        for bad in [
            "/etc/passwd",
            "../x",
            "bin/../../x",
            "bin//x",
            "./x",
            "manifest.toml",
        ] {
            let text = GOOD.replace("bin/etcd", bad);
            let err = Manifest::parse(&text, Path::new("m.toml")).unwrap_err();
            assert!(
                format!("{err:#}").contains("not a plain relative path"),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn refuses_unknown_keys_formats_and_duplicates() {
        let unknown = GOOD.replace("size = 1", "size = 1\nsizee = 2");
        assert!(Manifest::parse(&unknown, Path::new("m")).is_err());
        let format = GOOD.replace("format = 1", "format = 7");
        let err = Manifest::parse(&format, Path::new("m")).unwrap_err();
        assert!(err.to_string().contains("format 7"), "{err}");
        let dup = GOOD.replace("images/pause.tar", "bin/etcd");
        let err = Manifest::parse(&dup, Path::new("m")).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
        let mode = GOOD.replace("\"0755\"", "\"rwx\"");
        assert!(Manifest::parse(&mode, Path::new("m")).is_err());
    }
}
