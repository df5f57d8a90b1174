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
    if !members.contains_key("manifest.json") {
        bail!(
            "{} is neither an OCI image archive (index.json) nor a docker-archive (manifest.json)",
            src.display()
        );
    }
    let manifest = small(&members, "manifest.json", src)?;
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
    let member = |name: &str| {
        blobs
            .get(name)
            .with_context(|| format!("{}: {name} is missing", src.display()))
    };
    let descriptor = |media: &str, sha256: &str, size: u64| {
        serde_json::json!({
            "mediaType": media,
            "digest": format!("sha256:{sha256}"),
            "size": size,
        })
    };
    let config = small(&blobs, &image.config, src)?;
    let mut layers = Vec::new();
    for l in &image.layers {
        let m = member(l)?;
        layers.push(descriptor(
            "application/vnd.oci.image.layer.v1.tar",
            &m.sha256(),
            m.size(),
        ));
    }
    let config_sha = crate::digest::sha256_hex(config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config_sha, config.len() as u64),
        "layers": layers,
    }))?;
    let manifest_sha = crate::digest::sha256_hex(&manifest);
    let reference = docker_reference(tag);
    let mut index_entry = descriptor(
        "application/vnd.oci.image.manifest.v1+json",
        &manifest_sha,
        manifest.len() as u64,
    );
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
    let header = |size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(0);
        h
    };
    for (name, data) in [
        (
            "oci-layout".to_string(),
            &br#"{"imageLayoutVersion":"1.0.0"}"#[..],
        ),
        ("index.json".to_string(), &index[..]),
        (format!("blobs/sha256/{config_sha}"), config),
        (format!("blobs/sha256/{manifest_sha}"), &manifest[..]),
    ] {
        tar.append_data(&mut header(data.len() as u64), name, data)?;
    }
    // Layers are copied from the source as streams, each once even when listed twice.
    let mut source = tar::Archive::new(File::open(src).with_context(|| src.display().to_string())?);
    let mut done = std::collections::BTreeSet::new();
    for entry in source.entries()? {
        let entry = entry?;
        let name = super::archive::entry_path(&entry)?;
        if !image.layers.contains(&name) || image.config == name {
            continue;
        }
        let m = member(&name)?;
        if !done.insert(m.sha256()) {
            continue;
        }
        let size = m.size();
        tar.append_data(
            &mut header(size),
            format!("blobs/sha256/{}", m.sha256()),
            entry.take(size),
        )?;
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

/// The most a metadata member (index, manifest, config) may hold: anything larger is not one.
const MAX_METADATA: u64 = 4 << 20;

/// A member of an image archive: small ones with their content, layers as digest and size only
/// (read as a stream, never whole into memory).
enum Member {
    Small(Vec<u8>),
    Large { sha256: String, size: u64 },
}

impl Member {
    fn sha256(&self) -> String {
        match self {
            Member::Small(d) => crate::digest::sha256_hex(d),
            Member::Large { sha256, .. } => sha256.clone(),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Member::Small(d) => d.len() as u64,
            Member::Large { size, .. } => *size,
        }
    }
}

/// The members of a tar whose names pass `want`.
fn read_members(path: &Path, want: impl Fn(&str) -> bool) -> Result<BTreeMap<String, Member>> {
    let ctx = || format!("image archive {}", path.display());
    let mut tar = tar::Archive::new(File::open(path).with_context(ctx)?);
    let mut out = BTreeMap::new();
    for entry in tar.entries().with_context(ctx)? {
        let mut entry = entry.with_context(ctx)?;
        let name = super::archive::entry_path(&entry)?;
        if !want(&name) {
            continue;
        }
        let member = if entry.size() <= MAX_METADATA {
            let mut data = Vec::with_capacity(entry.size() as usize);
            (&mut entry)
                .take(MAX_METADATA + 1)
                .read_to_end(&mut data)
                .with_context(ctx)?;
            Member::Small(data)
        } else {
            let mut h = super::check::Hashing::new(&mut entry);
            std::io::copy(&mut h, &mut std::io::sink()).with_context(ctx)?;
            let (sha256, size) = h.finish();
            Member::Large { sha256, size }
        };
        out.insert(name, member);
    }
    Ok(out)
}

/// The content of a metadata member, refusing one too large to be metadata.
fn small<'a>(members: &'a BTreeMap<String, Member>, name: &str, path: &Path) -> Result<&'a [u8]> {
    match members.get(name) {
        Some(Member::Small(d)) => Ok(d),
        Some(Member::Large { .. }) => bail!(
            "{}: {name} is larger than {} MiB; it is not image metadata",
            path.display(),
            MAX_METADATA >> 20
        ),
        None => bail!("{}: {name} is missing", path.display()),
    }
}

/// Reads `index.json` and checks that the manifest it points at is in the archive.
pub fn inspect(path: &Path) -> Result<ImageInfo> {
    let members = read_members(path, |n| {
        n == "index.json" || n.starts_with("blobs/sha256/")
    })?;
    let index: Option<Index> = match members.get("index.json") {
        Some(_) => Some(
            serde_json::from_slice(small(&members, "index.json", path)?)
                .with_context(|| format!("{}: index.json is not an OCI index", path.display()))?,
        ),
        None => None,
    };
    let blobs: BTreeMap<&str, String> = members
        .iter()
        .filter_map(|(n, m)| Some((n.strip_prefix("blobs/sha256/")?, m.sha256())))
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
        let hex = |b: &[u8]| hex::encode(Sha256::digest(b));
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
        converts_with_a_layer_of(b"pretend layer tar".to_vec());
    }

    /// A layer larger than any metadata is hashed and copied as a stream.
    #[test]
    fn converts_a_docker_archive_with_a_large_layer() {
        let layer: Vec<u8> = (0..(MAX_METADATA as usize + 4096))
            .map(|i| (i % 251) as u8)
            .collect();
        converts_with_a_layer_of(layer);
    }

    fn converts_with_a_layer_of(layer: Vec<u8>) {
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("docker.tar");
        let layer_id = hex::encode(Sha256::digest(&layer));
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
        let copied = &blobs[&format!("blobs/sha256/{layer_id}")];
        assert_eq!(
            (copied.sha256(), copied.size()),
            (layer_id.clone(), layer.len() as u64)
        );
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
