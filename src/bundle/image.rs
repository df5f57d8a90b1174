//! Container image archives: an OCI image layout in a tar (what `skopeo copy ... oci-archive:`,
//! `ctr images export`, `docker save` since Docker 25 and `podman save --format oci-archive`
//! write). containerd's `ctr images import` reads them on the nodes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Deserialize)]
struct Index {
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// What an image archive holds: its name and the digest containerd will list it with.
#[derive(Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub reference: String,
    pub digest: String,
}

/// Reads `index.json` and checks that the manifest it points at is in the archive.
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let ctx = || format!("image archive {}", path.display());
    let mut index = None;
    let mut blobs = BTreeMap::new();
    let file = File::open(path).with_context(ctx)?;
    let mut tar = tar::Archive::new(file);
    for entry in tar.entries().with_context(ctx)? {
        let mut entry = entry.with_context(ctx)?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if name == "index.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).with_context(ctx)?;
            let i: Index = serde_json::from_str(&text)
                .with_context(|| format!("{}: index.json is not an OCI index", path.display()))?;
            index = Some(i);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let (sha, _) = super::check::hash_reader(&mut entry).with_context(ctx)?;
            blobs.insert(hex.to_string(), sha);
        }
    }
    let Some(index) = index else {
        bail!(
            "{} has no index.json: it is not an OCI image archive (convert it with \
             `skopeo copy docker-archive:IN oci-archive:OUT`)",
            path.display()
        );
    };
    let [m] = index.manifests.as_slice() else {
        bail!(
            "{} holds {} images; put each image in its own archive",
            path.display(),
            index.manifests.len()
        );
    };
    let Some(hex) = m.digest.strip_prefix("sha256:") else {
        bail!("{}: unsupported digest {}", path.display(), m.digest);
    };
    match blobs.get(hex) {
        Some(sha) if sha == hex => {}
        Some(_) => bail!("{}: the blob {} is damaged", path.display(), m.digest),
        None => bail!("{}: the manifest {} is missing", path.display(), m.digest),
    }
    let reference = m
        .annotations
        .get("io.containerd.image.name")
        .or_else(|| {
            m.annotations
                .get("org.opencontainers.image.ref.name")
                .filter(|r| r.contains(['/', ':']))
        })
        .with_context(|| {
            format!(
                "{} does not name its image (annotation io.containerd.image.name)",
                path.display()
            )
        })?;
    Ok(ImageInfo {
        reference: reference.clone(),
        digest: m.digest.clone(),
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Writes a minimal OCI archive (an empty layer) named `reference`; returns its digest.
    pub fn write_archive(path: &Path, reference: &str) -> String {
        use sha2::{Digest, Sha256};
        let hex = |b: &[u8]| super::super::hex(&Sha256::digest(b));
        let layer = b"layer".to_vec();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[]}}"#,
            hex(&config),
            config.len()
        )
        .into_bytes();
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{}","size":{},"annotations":{{"io.containerd.image.name":"{reference}"}}}}]}}"#,
            hex(&manifest),
            manifest.len()
        );
        let mut b = tar::Builder::new(File::create(path).unwrap());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add("index.json", index.as_bytes());
        for blob in [&layer, &config, &manifest] {
            add(&format!("blobs/sha256/{}", hex(blob)), blob);
        }
        b.finish().unwrap();
        format!("sha256:{}", hex(&manifest))
    }

    #[test]
    fn reads_name_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pause.tar");
        let digest = write_archive(&p, "registry.k8s.io/pause:3.10.1");
        let info = inspect(&p).unwrap();
        assert_eq!(info.reference, "registry.k8s.io/pause:3.10.1");
        assert_eq!(info.digest, digest);
    }

    #[test]
    fn refuses_what_is_not_an_oci_archive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tar");
        let mut b = tar::Builder::new(File::create(&p).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        b.append_data(&mut h, "manifest.json", &b"[]"[..]).unwrap();
        b.finish().unwrap();
        drop(b);
        let err = inspect(&p).unwrap_err().to_string();
        assert!(err.contains("no index.json"), "{err}");
    }
}
