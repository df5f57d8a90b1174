//! `bundle create`: the archive from binaries obtained another way. The directory is either an
//! existing bundle (with its `manifest.toml`) or a plain tree of binaries laid out as
//! `bin/<name>`, `cni/<plugin>` and `images/<name>.tar`, whose versions come from the command
//! line.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::manifest::{Entry, Header, Image, Manifest, FORMAT};
use super::{check, image, read_manifest, MANIFEST};
use crate::component::Release;

/// Versions of the components in a plain tree; a component present needs its version.
#[derive(Debug, Default, Clone)]
pub struct Versions {
    pub kubernetes: Option<String>,
    pub etcd: Option<String>,
    pub containerd: Option<String>,
    pub runc: Option<String>,
    pub cni: Option<String>,
    pub caddy: Option<String>,
    pub kube_router: Option<String>,
}

/// The directory to pack and its manifest, every file checked against it. A bundle directory is
/// packed as it is; a plain tree is first staged in `scratch` (binaries linked, images converted
/// to OCI archives) and described.
pub fn prepare(from: &Path, versions: &Versions, scratch: &Path) -> Result<(PathBuf, Manifest)> {
    if from.join(MANIFEST).is_file() {
        return Ok((from.to_path_buf(), manifest_for(from, versions)?));
    }
    for sub in ["bin", "cni"] {
        for path in list(&from.join(sub))? {
            let to = scratch.join(sub).join(file_name(&path));
            std::fs::create_dir_all(to.parent().expect("has a parent"))?;
            if std::fs::hard_link(&path, &to).is_err() {
                std::fs::copy(&path, &to).with_context(|| format!("copying {}", path.display()))?;
            }
        }
    }
    for path in list(&from.join("images"))? {
        std::fs::create_dir_all(scratch.join("images"))?;
        let incoming = scratch.join("images/.incoming.tar");
        let info = image::to_oci(&path, &incoming)?;
        let to = scratch.join(format!("images/{}.tar", image_name(&info.reference)));
        if to.exists() {
            bail!(
                "two archives in {} hold {}",
                from.join("images").display(),
                info.reference
            );
        }
        std::fs::rename(&incoming, &to)?;
    }
    Ok((scratch.to_path_buf(), manifest_for(scratch, versions)?))
}

/// Builds the manifest for `dir` (reading an existing one, or describing a plain tree) and
/// checks every file against it.
fn manifest_for(dir: &Path, versions: &Versions) -> Result<Manifest> {
    let m = if dir.join(MANIFEST).is_file() {
        read_manifest(dir)?
    } else {
        describe(dir, versions)?
    };
    check::check_dir(dir, &m, None)?;
    for e in &m.files {
        if let Some(arch) = elf_arch(&dir.join(&e.path))? {
            if arch != m.bundle.arch {
                bail!(
                    "{} is built for {arch} but the bundle is for {}",
                    e.path,
                    m.bundle.arch
                );
            }
        }
    }
    Ok(m)
}

fn describe(dir: &Path, v: &Versions) -> Result<Manifest> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    let mut arch = None;
    for (sub, cni) in [("bin", false), ("cni", true)] {
        for path in list(&dir.join(sub))? {
            let name = file_name(&path);
            let release = if cni {
                Some(Release::CniPlugins)
            } else {
                Release::of_program(&name)
            };
            let Some(release) = release else {
                problems.push(format!(
                    "bin/{name} is not a file provisioner installs (it knows the Kubernetes, etcd, \
                     containerd, runc, caddy and kube-router binaries; CNI plugins go in cni/)"
                ));
                continue;
            };
            let version = match release {
                Release::Kubernetes => &v.kubernetes,
                Release::Etcd => &v.etcd,
                Release::Containerd => &v.containerd,
                Release::Runc => &v.runc,
                Release::CniPlugins => &v.cni,
                Release::Caddy => &v.caddy,
                Release::KubeRouter => &v.kube_router,
            };
            let component = release.name();
            // The command-line flag is the release's name, shortened for the CNI plugins.
            let flag = match release {
                Release::CniPlugins => "cni",
                r => r.name(),
            };
            let Some(version) = version else {
                let p =
                    format!("{sub}/{name} needs the {component} version: pass --{flag} VERSION");
                if !problems.contains(&p) {
                    problems.push(p);
                }
                continue;
            };
            if arch.is_none() {
                arch = elf_arch(&path)?;
            }
            let (sha256, size) = super::sha256_file(&path)?;
            files.push(Entry {
                name,
                component: component.to_string(),
                version: version.trim_start_matches('v').to_string(),
                path: format!("{sub}/{}", file_name(&path)),
                sha256,
                size,
                mode: "0755".into(),
                arch: None,
                source: None,
            });
        }
    }
    let mut images = Vec::new();
    for path in list(&dir.join("images"))? {
        let info = image::inspect(&path)?;
        let (sha256, size) = super::sha256_file(&path)?;
        let file = file_name(&path);
        images.push(Image {
            name: image_name(&info.reference),
            reference: info.reference,
            digest: info.digest,
            path: format!("images/{file}"),
            sha256,
            size,
        });
    }
    let Some(kubernetes) = &v.kubernetes else {
        problems.push("the bundle needs its Kubernetes version: pass --kubernetes VERSION".into());
        bail!(
            "cannot describe {}:\n  {}",
            dir.display(),
            problems.join("\n  ")
        );
    };
    if !problems.is_empty() {
        bail!(
            "cannot describe {}:\n  {}",
            dir.display(),
            problems.join("\n  ")
        );
    }
    if files.is_empty() {
        bail!(
            "{} holds no binaries: expected bin/<name> and cni/<plugin> (or a manifest.toml)",
            dir.display()
        );
    }
    let mut components: Vec<String> = Vec::new();
    for e in &files {
        if !components.contains(&e.component) {
            components.push(e.component.clone());
        }
    }
    Ok(Manifest {
        bundle: Header {
            format: FORMAT,
            arch: arch.unwrap_or("amd64").to_string(),
            kubernetes_version: kubernetes.trim_start_matches('v').to_string(),
            components,
        },
        files,
        images,
        sources: Vec::new(),
    })
}

/// `registry.k8s.io/pause:3.10.1` → `pause`: the last path part without tag or digest.
pub fn image_name(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.split([':', '@']).next().unwrap_or(last).to_string()
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        if e.file_type()?.is_file() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The architecture of an ELF executable, `None` for other files (scripts).
pub fn elf_arch(p: &Path) -> Result<Option<&'static str>> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    if f.read_exact(&mut head).is_err() || &head[..4] != b"\x7fELF" {
        return Ok(None);
    }
    Ok(match u16::from_le_bytes([head[18], head[19]]) {
        0x3e => Some("amd64"),
        0xb7 => Some("arm64"),
        _ => Some("other"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_images_and_components() {
        assert_eq!(image_name("registry.k8s.io/pause:3.10.1"), "pause");
        // The name `apply` looks the cluster DNS image up by.
        assert_eq!(
            image_name("registry.k8s.io/coredns/coredns:v1.14.6"),
            "coredns"
        );
        assert_eq!(image_name("localhost/a/b@sha256:00"), "b");
        assert_eq!(Release::of_program("kubelet"), Some(Release::Kubernetes));
        assert_eq!(Release::of_program("bash"), None);
    }

    #[test]
    fn describes_a_plain_tree_and_asks_for_missing_versions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("cni")).unwrap();
        std::fs::write(dir.path().join("bin/etcd"), b"#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("cni/bridge"), b"#!/bin/sh\n").unwrap();
        let err = manifest_for(dir.path(), &Versions::default())
            .unwrap_err()
            .to_string();
        for want in ["--etcd VERSION", "--cni VERSION", "--kubernetes VERSION"] {
            assert!(err.contains(want), "{want} in {err}");
        }
        let v = Versions {
            kubernetes: Some("v1.35.0".into()),
            etcd: Some("3.5.24".into()),
            cni: Some("1.7.1".into()),
            ..Versions::default()
        };
        let m = manifest_for(dir.path(), &v).unwrap();
        assert_eq!(m.bundle.kubernetes_version, "1.35.0");
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.bundle.components, ["etcd", "cni-plugins"]);
    }

    #[test]
    fn refuses_unknown_binaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/sshd"), b"x").unwrap();
        let err = manifest_for(dir.path(), &Versions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bin/sshd is not a file provisioner installs"),
            "{err}"
        );
    }
}
