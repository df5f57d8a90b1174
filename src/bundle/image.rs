//! Container image archives. Bundles carry OCI image layouts in a tar (what `skopeo copy ...
//! oci-archive:`, `ctr images export`, `docker save` since Docker 25 and `podman save --format
//! oci-archive` write), whose manifest digest is known before the import; an older docker-archive
//! (`manifest.json` only) is converted to one when the bundle is made. containerd's
//! `ctr images import` reads them on the nodes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

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

/// Writes `src` to `dest` as an OCI archive: copied when it is one, converted from a
/// docker-archive otherwise.
pub fn to_oci(src: &Path, dest: &Path) -> Result<ImageInfo> {
    let members = read_members(src, |name| name == "index.json" || name == "manifest.json")?;
    if members.contains_key("index.json") {
        std::fs::copy(src, dest).with_context(|| format!("copying {}", src.display()))?;
        return inspect(dest);
    }
    let Some(manifest) = members.get("manifest.json") else {
        bail!(
            "{} is neither an OCI image archive (index.json) nor a docker-archive (manifest.json)",
            src.display()
        );
    };
    let list: Vec<DockerManifest> = serde_json::from_slice(manifest).with_context(|| {
        format!(
            "{}: manifest.json is not a docker-archive manifest",
            src.display()
        )
    })?;
    let [image] = list.as_slice() else {
        bail!(
            "{} holds {} images; put each image in its own archive",
            src.display(),
            list.len()
        );
    };
    let tag = image.repo_tags.first().with_context(|| {
        format!(
            "{} does not name its image (RepoTags is empty)",
            src.display()
        )
    })?;
    let wanted: Vec<&str> = std::iter::once(image.config.as_str())
        .chain(image.layers.iter().map(String::as_str))
        .collect();
    let blobs = read_members(src, |name| wanted.contains(&name))?;
    let blob = |name: &str| {
        blobs
            .get(name)
            .with_context(|| format!("{}: {name} is missing", src.display()))
    };
    let descriptor = |media: &str, data: &[u8]| {
        serde_json::json!({
            "mediaType": media,
            "digest": format!("sha256:{}", super::sha256_hex(data)),
            "size": data.len(),
        })
    };
    let config = blob(&image.config)?;
    let mut layers = Vec::new();
    for l in &image.layers {
        layers.push(descriptor(
            "application/vnd.oci.image.layer.v1.tar",
            blob(l)?,
        ));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": layers,
    }))?;
    let reference = docker_reference(tag);
    let mut index_entry = descriptor("application/vnd.oci.image.manifest.v1+json", &manifest);
    index_entry["annotations"] = serde_json::json!({
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference.rsplit_once(':').map_or("latest", |(_, t)| t),
    });
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [index_entry],
    }))?;
    let mut tar = tar::Builder::new(
        File::create(dest).with_context(|| format!("writing {}", dest.display()))?,
    );
    let mut add = |name: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        tar.append_data(&mut h, name, data)?;
        Ok(())
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    for data in std::iter::once(config)
        .chain(image.layers.iter().filter_map(|l| blobs.get(l)))
        .chain(std::iter::once(&manifest))
    {
        add(&format!("blobs/sha256/{}", super::sha256_hex(data)), data)?;
    }
    tar.into_inner()?.sync_all()?;
    inspect(dest)
}

/// Docker's short names: `busybox:1.36` is `docker.io/library/busybox:1.36`.
fn docker_reference(tag: &str) -> String {
    let (name, tagged) = match tag.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, tag.to_string()),
        _ => (tag, format!("{tag}:latest")),
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_registry = name.contains('/') && (first.contains(['.', ':']) || first == "localhost");
    match (has_registry, name.contains('/')) {
        (true, _) => tagged,
        (false, true) => format!("docker.io/{tagged}"),
        (false, false) => format!("docker.io/library/{tagged}"),
    }
}

/// The contents of the members of a tar whose names pass `want`.
fn read_members(path: &Path, want: impl Fn(&str) -> bool) -> Result<BTreeMap<String, Vec<u8>>> {
    let ctx = || format!("image archive {}", path.display());
    let mut tar = tar::Archive::new(File::open(path).with_context(ctx)?);
    let mut out = BTreeMap::new();
    for entry in tar.entries().with_context(ctx)? {
        let mut entry = entry.with_context(ctx)?;
        let name = super::archive::entry_path(&entry)?;
        if want(&name) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).with_context(ctx)?;
            out.insert(name, data);
        }
    }
    Ok(out)
}

/// Reads `index.json` and checks that the manifest it points at is in the archive.
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let members = read_members(path, |n| {
        n == "index.json" || n.starts_with("blobs/sha256/")
    })?;
    let index: Option<Index> = match members.get("index.json") {
        Some(text) => Some(
            serde_json::from_slice(text)
                .with_context(|| format!("{}: index.json is not an OCI index", path.display()))?,
        ),
        None => None,
    };
    let blobs: BTreeMap<&str, String> = members
        .iter()
        .filter_map(|(n, data)| Some((n.strip_prefix("blobs/sha256/")?, super::sha256_hex(data))))
        .collect();
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
    fn converts_a_docker_archive() {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("docker.tar");
        let layer = b"pretend layer tar".to_vec();
        let layer_id = super::super::hex(&Sha256::digest(&layer));
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{layer_id}"]}}}}"#
        );
        let manifest =
            r#"[{"Config":"cfg.json","RepoTags":["busybox:1.36"],"Layers":["abc/layer.tar"]}]"#;
        let mut b = tar::Builder::new(File::create(&src).unwrap());
        for (name, data) in [
            ("manifest.json", manifest.as_bytes()),
            ("cfg.json", config.as_bytes()),
            ("abc/layer.tar", &layer[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, data).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let out = dir.path().join("oci.tar");
        let info = to_oci(&src, &out).unwrap();
        assert_eq!(info.reference, "docker.io/library/busybox:1.36");
        assert_eq!(inspect(&out).unwrap(), info);
        let blobs = read_members(&out, |n| n.starts_with("blobs/")).unwrap();
        assert!(blobs.contains_key(&format!("blobs/sha256/{layer_id}")));
        // Converting again gives the same digest: it can be written in the manifest beforehand.
        let again = dir.path().join("again.tar");
        assert_eq!(to_oci(&src, &again).unwrap().digest, info.digest);
    }

    #[test]
    fn names_docker_references_in_full() {
        assert_eq!(
            docker_reference("busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(docker_reference("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            docker_reference("registry.k8s.io/pause:3.10.1"),
            "registry.k8s.io/pause:3.10.1"
        );
        assert_eq!(
            docker_reference("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
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
