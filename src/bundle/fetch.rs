//! `bundle fetch`: downloads the release binaries from their upstream locations (or a mirror
//! laid out the same way), checks each against the checksum file its project publishes next to
//! it, and writes one bundle archive.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use super::check::Hashing;
use super::manifest::{Entry, Header, Image, Manifest, FORMAT};
use super::{archive, create, image};
use crate::component::Release;
use crate::inventory::version::KubeVersion;

/// Overrides the upstream locations: `$PROVISIONER_MIRROR/dl.k8s.io/release/...`.
pub const MIRROR_ENV: &str = "PROVISIONER_MIRROR";

/// The CNI plugins a cluster built by provisioner uses (and a few commonly added ones).
pub const CNI_PLUGINS: &[&str] = &[
    "bridge",
    "host-local",
    "loopback",
    "portmap",
    "bandwidth",
    "firewall",
    "tuning",
];

/// The kube-router release a bundle carries unless told otherwise: the one its network policy
/// controller is tested with here, whatever the Kubernetes minor (it uses only stable APIs).
pub const KUBE_ROUTER_VERSION: &str = "2.1.0";

pub struct Request {
    pub kubernetes: String,
    pub etcd: String,
    pub containerd: String,
    pub runc: String,
    pub cni: String,
    pub kube_router: String,
    pub arch: String,
    /// Base URL replacing `https://` of every upstream location.
    pub mirror: Option<String>,
    /// Extra CA certificates (PEM) to trust, for a mirror behind an internal CA.
    pub ca_cert: Option<PathBuf>,
    /// OCI image archives to carry (at least the pause image).
    pub images: Vec<PathBuf>,
}

impl Request {
    /// The versions kubeadm pins for Kubernetes `k` (each option of `bundle fetch` overrides
    /// one), the upstream locations, no images.
    pub fn defaults_for(k: KubeVersion, arch: &str) -> Request {
        Request {
            kubernetes: k.to_string(),
            etcd: k.default_etcd().into(),
            containerd: k.default_containerd().into(),
            runc: k.default_runc().into(),
            cni: k.default_cni().into(),
            kube_router: KUBE_ROUTER_VERSION.into(),
            arch: arch.into(),
            mirror: None,
            ca_cert: None,
            images: Vec::new(),
        }
    }
}

/// Warnings for the images every cluster runs that `m` does not carry: air-gapped nodes cannot
/// pull them themselves.
pub fn missing_images(m: &Manifest, k: KubeVersion) -> Vec<String> {
    [
        ("pause", k.default_pause_image()),
        ("coredns", k.default_coredns_image()),
    ]
    .into_iter()
    .filter(|(name, _)| m.images.iter().all(|i| i.name != *name))
    .map(|(name, default)| {
        format!(
            "the bundle carries no {name} image (--image {name}.tar); air-gapped nodes cannot \
             pull {default} themselves"
        )
    })
    .collect()
}

/// One download and the files taken from it.
struct Artifact {
    release: Release,
    version: String,
    url: String,
    checksum_url: String,
    /// (path inside the downloaded tarball, or "" for a plain binary; name in the bundle)
    take: Vec<(String, String)>,
}

fn artifacts(r: &Request) -> Vec<Artifact> {
    let (k, e, c, rc, n, kr, a) = (
        &r.kubernetes,
        &r.etcd,
        &r.containerd,
        &r.runc,
        &r.cni,
        &r.kube_router,
        &r.arch,
    );
    let mut out: Vec<Artifact> = Release::Kubernetes
        .programs()
        .map(|b| {
            let url = format!("https://dl.k8s.io/release/v{k}/bin/linux/{a}/{b}");
            Artifact {
                release: Release::Kubernetes,
                version: k.clone(),
                checksum_url: format!("{url}.sha256"),
                url,
                take: vec![(String::new(), b.to_string())],
            }
        })
        .collect();
    let gh = "https://github.com";
    let etcd_dir = format!("etcd-v{e}-linux-{a}");
    out.push(Artifact {
        release: Release::Etcd,
        version: e.clone(),
        url: format!("{gh}/etcd-io/etcd/releases/download/v{e}/{etcd_dir}.tar.gz"),
        checksum_url: format!("{gh}/etcd-io/etcd/releases/download/v{e}/SHA256SUMS"),
        take: Release::Etcd
            .programs()
            .map(|b| (format!("{etcd_dir}/{b}"), b.to_string()))
            .collect(),
    });
    let ctd = format!(
        "{gh}/containerd/containerd/releases/download/v{c}/containerd-{c}-linux-{a}.tar.gz"
    );
    out.push(Artifact {
        release: Release::Containerd,
        version: c.clone(),
        checksum_url: format!("{ctd}.sha256sum"),
        url: ctd,
        take: Release::Containerd
            .programs()
            .map(|b| (format!("bin/{b}"), b.to_string()))
            .collect(),
    });
    out.push(Artifact {
        release: Release::Runc,
        version: rc.clone(),
        url: format!("{gh}/opencontainers/runc/releases/download/v{rc}/runc.{a}"),
        checksum_url: format!("{gh}/opencontainers/runc/releases/download/v{rc}/runc.sha256sum"),
        take: vec![(String::new(), "runc".into())],
    });
    let cni = format!(
        "{gh}/containernetworking/plugins/releases/download/v{n}/cni-plugins-linux-{a}-v{n}.tgz"
    );
    out.push(Artifact {
        release: Release::CniPlugins,
        version: n.clone(),
        checksum_url: format!("{cni}.sha256"),
        url: cni,
        take: CNI_PLUGINS
            .iter()
            .map(|p| (p.to_string(), p.to_string()))
            .collect(),
    });
    let kube_router = format!("{gh}/cloudnativelabs/kube-router/releases/download/v{kr}");
    out.push(Artifact {
        release: Release::KubeRouter,
        version: kr.clone(),
        url: format!("{kube_router}/kube-router_{kr}_linux_{a}.tar.gz"),
        checksum_url: format!("{kube_router}/kube-router_{kr}_checksums.txt"),
        take: vec![("kube-router".into(), "kube-router".into())],
    });
    out
}

/// `https://host/path` through the mirror: `MIRROR/host/path`.
fn located(url: &str, mirror: Option<&str>) -> String {
    match mirror {
        Some(m) => format!(
            "{}/{}",
            m.trim_end_matches('/'),
            url.trim_start_matches("https://")
        ),
        None => url.to_string(),
    }
}

/// Downloads everything into `stage` (an empty directory) and returns the manifest.
pub async fn fetch(r: &Request, stage: &Path) -> Result<Manifest> {
    if let Some(m) = &r.mirror {
        if !m.starts_with("https://") {
            bail!(
                "the mirror {m} is not an https:// URL: checksums come from the same server, so \
                 only an authenticated connection protects them (use --mirror-ca FILE for an \
                 internal CA)"
            );
        }
    }
    let client = client(r.ca_cert.as_deref())?;
    std::fs::create_dir_all(stage.join("bin"))?;
    std::fs::create_dir_all(stage.join("cni"))?;
    let list = artifacts(r);
    let entries: Vec<Vec<Entry>> = stream::iter(&list)
        .map(|a| fetch_one(&client, a, r, stage))
        .buffered(4)
        .try_collect()
        .await?;
    let mut images = Vec::new();
    for path in &r.images {
        std::fs::create_dir_all(stage.join("images"))?;
        let incoming = stage.join("images/.incoming.tar");
        let info = image::to_oci(path, &incoming)?;
        let name = create::image_name(&info.reference);
        let rel = format!("images/{name}.tar");
        std::fs::rename(&incoming, stage.join(&rel))?;
        let mut f = std::fs::File::open(stage.join(&rel))?;
        let (sha256, size) = super::check::hash_reader(&mut f)?;
        images.push(Image {
            name,
            reference: info.reference,
            digest: info.digest,
            path: rel,
            sha256,
            size,
        });
    }
    Ok(Manifest {
        bundle: Header {
            format: FORMAT,
            arch: r.arch.clone(),
            kubernetes_version: r.kubernetes.clone(),
            components: list.iter().fold(Vec::new(), |mut v, a| {
                if !v.contains(&a.release.name().to_string()) {
                    v.push(a.release.name().to_string());
                }
                v
            }),
        },
        files: entries.into_iter().flatten().collect(),
        images,
        sources: Vec::new(),
    })
}

/// Writes the archive for a staged download.
pub fn write_archive(stage: &Path, m: &Manifest, out: &Path) -> Result<u64> {
    super::check::check_dir(stage, m, None)?;
    archive::pack(stage, m, out)
}

fn client(ca_cert: Option<&Path>) -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(20))
        .read_timeout(Duration::from_secs(60));
    if let Some(p) = ca_cert {
        let pem = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificates", p.display()))?;
        b = b.tls_certs_merge(certs);
    }
    b.build().context("building the HTTP client")
}

async fn fetch_one(
    client: &reqwest::Client,
    a: &Artifact,
    r: &Request,
    stage: &Path,
) -> Result<Vec<Entry>> {
    let (mirror, arch) = (r.mirror.as_deref(), r.arch.as_str());
    let url = located(&a.url, mirror);
    let file_name = a.url.rsplit('/').next().unwrap_or_default();
    let sums = get_text(client, &located(&a.checksum_url, mirror)).await?;
    let want = expected_sha256(&sums, file_name).with_context(|| {
        format!(
            "{} does not list a sha256 for {file_name}",
            located(&a.checksum_url, mirror)
        )
    })?;
    eprintln!("downloading {url}");
    // Downloads go to disk, not memory: release binaries are up to a few hundred MB.
    let download = stage.join(format!(".download-{file_name}"));
    let (got, size) = download_to(client, &url, &download).await?;
    if got != want {
        let _ = std::fs::remove_file(&download);
        bail!(
            "{file_name} from {url} has sha256 {got}, but its checksum file says {want}: \
             refusing it (damaged download or tampered mirror)"
        );
    }
    let mut entries = Vec::new();
    let file = || {
        std::fs::File::open(&download).with_context(|| format!("reading {}", download.display()))
    };
    if a.take.len() == 1 && a.take[0].0.is_empty() {
        let name = &a.take[0].1;
        entries.push(put(stage, a, arch, name, &mut file()?, &url)?);
    } else {
        let mut wanted: Vec<&(String, String)> = a.take.iter().collect();
        let gz = flate2::read::GzDecoder::new(std::io::BufReader::new(file()?));
        let mut tar = tar::Archive::new(gz);
        for e in tar
            .entries()
            .with_context(|| format!("reading {file_name}"))?
        {
            let mut e = e.with_context(|| format!("reading {file_name}"))?;
            let path = super::archive::entry_path(&e)?;
            let Some(i) = wanted.iter().position(|(member, _)| *member == path) else {
                continue;
            };
            let (_, name) = wanted.remove(i);
            entries.push(put(stage, a, arch, name, &mut e, &format!("{url}#{path}"))?);
        }
        if !wanted.is_empty() {
            let missing: Vec<&str> = wanted.iter().map(|(m, _)| m.as_str()).collect();
            bail!("{file_name} from {url} lacks {}", missing.join(", "));
        }
    }
    std::fs::remove_file(&download).ok();
    eprintln!("verified {file_name} ({} MB)", size >> 20);
    Ok(entries)
}

fn put(
    stage: &Path,
    a: &Artifact,
    arch: &str,
    name: &str,
    data: &mut impl Read,
    source: &str,
) -> Result<Entry> {
    let dir = if a.release == Release::CniPlugins {
        "cni"
    } else {
        "bin"
    };
    let rel = format!("{dir}/{name}");
    let mut out =
        std::fs::File::create(stage.join(&rel)).with_context(|| format!("writing {rel}"))?;
    let mut hashing = Hashing::new(data);
    std::io::copy(&mut hashing, &mut out).with_context(|| format!("writing {rel}"))?;
    let (sha256, size) = hashing.finish();
    Ok(Entry {
        name: name.to_string(),
        component: a.release.name().to_string(),
        version: a.version.clone(),
        path: rel,
        sha256,
        size,
        mode: "0755".into(),
        arch: Some(arch.to_string()),
        source: Some(source.to_string()),
    })
}

/// Streams `url` into `dest`; returns its sha256 and size.
async fn download_to(client: &reqwest::Client, url: &str, dest: &Path) -> Result<(String, u64)> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("downloading {url}"))?;
    if !resp.status().is_success() {
        bail!("downloading {url}: HTTP {}", resp.status());
    }
    let mut out =
        std::fs::File::create(dest).with_context(|| format!("writing {}", dest.display()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = resp
        .chunk()
        .await
        .with_context(|| format!("downloading {url}"))?
    {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        std::io::Write::write_all(&mut out, &chunk)
            .with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

async fn get_bytes(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("downloading {url}"))?;
    if !resp.status().is_success() {
        bail!("downloading {url}: HTTP {}", resp.status());
    }
    // Checksum files are small; the server's Content-Length is a hint, never an allocation size.
    const MAX: usize = 16 << 20;
    let hint = resp.content_length().unwrap_or(0).min(1 << 20) as usize;
    let mut out = Vec::with_capacity(hint);
    while let Some(chunk) = resp
        .chunk()
        .await
        .with_context(|| format!("downloading {url}"))?
    {
        if out.len() + chunk.len() > MAX {
            bail!(
                "{url} is larger than {} MiB: not a checksum file",
                MAX >> 20
            );
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn get_text(client: &reqwest::Client, url: &str) -> Result<String> {
    String::from_utf8(get_bytes(client, url).await?).with_context(|| format!("{url} is not text"))
}

/// Finds the sha256 for `file` in a checksum file: `HASH  NAME` lines (sha256sum's format, also
/// with `*NAME`), or a lone hash when the file covers one artifact (dl.k8s.io's `.sha256`).
fn expected_sha256(sums: &str, file: &str) -> Option<String> {
    let is_hash = |h: &str| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
    let lines: Vec<&str> = sums
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let [only] = lines.as_slice() {
        if is_hash(only) {
            return Some(only.to_ascii_lowercase());
        }
    }
    lines.iter().find_map(|l| {
        let mut parts = l.split_whitespace();
        let (h, name) = (parts.next()?, parts.next()?);
        let name = name.trim_start_matches('*');
        let base = name.rsplit('/').next().unwrap_or(name);
        (is_hash(h) && base == file).then(|| h.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "9e1d2f2a2bb1a3c04e0ce7a9f1b1b2e1f4d5c6a7b8c9d0e1f2a3b4c5d6e7f8a9";

    #[test]
    fn reads_the_checksum_formats_upstream_publishes() {
        assert_eq!(
            expected_sha256(&format!("{H}\n"), "kubelet").as_deref(),
            Some(H)
        );
        let sums = format!("0000000000000000000000000000000000000000000000000000000000000000  runc.arm64\n{H}  runc.amd64\n");
        assert_eq!(expected_sha256(&sums, "runc.amd64").as_deref(), Some(H));
        assert_eq!(
            expected_sha256(&format!("{H} *x.tgz"), "x.tgz").as_deref(),
            Some(H)
        );
        assert_eq!(expected_sha256(&sums, "runc.s390x"), None);
        assert_eq!(expected_sha256("not a hash\n", "x"), None);
    }

    #[test]
    fn mirrors_keep_the_upstream_layout() {
        assert_eq!(
            located(
                "https://dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet",
                Some("https://m.example/up/")
            ),
            "https://m.example/up/dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet"
        );
        let r = Request {
            kubernetes: "1.35.0".into(),
            etcd: "3.5.24".into(),
            containerd: "2.2.0".into(),
            runc: "1.3.0".into(),
            cni: "1.7.1".into(),
            kube_router: "2.1.0".into(),
            arch: "amd64".into(),
            mirror: None,
            ca_cert: None,
            images: vec![],
        };
        let urls: Vec<String> = artifacts(&r).into_iter().map(|a| a.url).collect();
        assert!(urls.contains(&"https://github.com/etcd-io/etcd/releases/download/v3.5.24/etcd-v3.5.24-linux-amd64.tar.gz".to_string()));
        assert!(urls.contains(&"https://github.com/containerd/containerd/releases/download/v2.2.0/containerd-2.2.0-linux-amd64.tar.gz".to_string()));
        assert!(urls.contains(&"https://github.com/containernetworking/plugins/releases/download/v1.7.1/cni-plugins-linux-amd64-v1.7.1.tgz".to_string()));
        assert!(urls.contains(&"https://github.com/cloudnativelabs/kube-router/releases/download/v2.1.0/kube-router_2.1.0_linux_amd64.tar.gz".to_string()));
    }
}
