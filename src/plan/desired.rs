//! The desired state of each host: rendered files plus the bundle's binaries, each with its
//! sha256 and the units it restarts.

use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::bundle::Bundle;
use crate::component::{release_path, Program, Unit};
use crate::digest::sha256_hex;
use crate::layout::{BIN_DIR, CNI_BIN_DIR, IMAGE_DIR, RELEASES_DIR, UNIT_DIR};
use crate::render::{HostFiles, Rendered};

#[derive(Debug, Clone)]
pub enum Source {
    Rendered(Vec<u8>),
    Bundle(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Item {
    pub path: String,
    pub mode: u32,
    pub sha256: String,
    pub secret: bool,
    pub source: Source,
    /// The units a change restarts.
    pub restarts: Vec<Unit>,
}

/// A symbolic link: the path a unit runs, to the version of the program it runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Link {
    pub path: String,
    pub target: String,
    /// The units a change restarts.
    #[serde(skip)]
    pub restarts: Vec<Unit>,
}

/// A container image the host's containerd must hold, imported from an uploaded archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DesiredImage {
    pub reference: String,
    pub digest: String,
    /// The archive on the host.
    pub archive: String,
}

#[derive(Debug, Clone)]
pub struct DesiredHost {
    pub host: String,
    pub dirs: Vec<(String, u32)>,
    pub items: Vec<Item>,
    pub links: Vec<Link>,
    /// Units in start order.
    pub units: Vec<Unit>,
    pub images: Vec<DesiredImage>,
    /// Files to remove where present: an earlier layout's, which a desired file replaces.
    pub retired: Vec<String>,
    /// Directories where every file that is not one of `items` is removed.
    pub owned: Vec<String>,
}

pub fn desired(rendered: &Rendered, bundle: &Bundle) -> Result<Vec<DesiredHost>> {
    rendered.hosts.iter().map(|h| host(h, bundle)).collect()
}

fn host(h: &HostFiles, bundle: &Bundle) -> Result<DesiredHost> {
    let mut items: Vec<Item> = h
        .files
        .iter()
        .map(|f| Item {
            path: f.path.clone(),
            mode: f.mode,
            sha256: sha256_hex(&f.content),
            secret: f.secret,
            source: Source::Rendered(f.content.clone()),
            restarts: f.readers.clone(),
        })
        .collect();
    let mut missing = Vec::new();
    let mut links = Vec::new();
    let mut dirs = h.dirs.clone();
    for b in &h.binaries {
        let Some(e) = bundle.get(b.name) else {
            missing.push(b.name);
            continue;
        };
        let target = release_path(&e.component, &e.version, b.name);
        for d in [
            RELEASES_DIR.to_string(),
            format!("{RELEASES_DIR}/{}", e.component),
            format!("{RELEASES_DIR}/{}/{}", e.component, e.version),
        ] {
            if !dirs.iter().any(|(p, _)| *p == d) {
                dirs.push((d, 0o755));
            }
        }
        // The versioned file restarts its units too: the same version built again.
        items.push(Item {
            path: target.clone(),
            mode: u32::from_str_radix(&e.mode, 8).unwrap_or(0o755),
            sha256: e.sha256.clone(),
            secret: false,
            source: Source::Bundle(bundle.path_of(&e.path)),
            restarts: b.readers.clone(),
        });
        links.push(Link {
            path: b.path.clone(),
            target,
            restarts: b.readers.clone(),
        });
    }
    if !missing.is_empty() {
        // A bundle made before the policy engine was: say what else can be done.
        let policy = if missing.contains(&Program::KubeRouter.name()) {
            " (kube-router enforces NetworkPolicy: `bundle fetch` carries it, or set \
             [network] policy = \"none\" to run without)"
        } else {
            ""
        };
        bail!(
            "the bundle {} lacks {} needed by {}; add them to the bundle (see its manifest.toml){policy}",
            bundle.dir.display(),
            missing.join(", "),
            h.host
        );
    }
    // Every host running containerd gets the bundle's images: the pause image at least.
    let mut images = Vec::new();
    if h.units.contains(&Unit::Containerd) {
        for i in &bundle.images {
            let archive = format!("{IMAGE_DIR}/{}.tar", i.name);
            items.push(Item {
                path: archive.clone(),
                mode: 0o644,
                sha256: i.sha256.clone(),
                secret: false,
                source: Source::Bundle(bundle.path_of(&i.path)),
                restarts: Vec::new(),
            });
            images.push(DesiredImage {
                reference: i.reference.clone(),
                digest: i.digest.clone(),
                archive,
            });
        }
    }
    for d in [BIN_DIR, CNI_BIN_DIR, UNIT_DIR, IMAGE_DIR] {
        let mut used = items
            .iter()
            .map(|i| &i.path)
            .chain(links.iter().map(|l| &l.path));
        if used.any(|p| p.starts_with(d)) && !dirs.iter().any(|(p, _)| p == d) {
            dirs.push((d.to_string(), 0o755));
        }
    }
    dirs.sort();
    Ok(DesiredHost {
        host: h.host.clone(),
        dirs,
        items,
        links,
        units: h.units.clone(),
        images,
        retired: h.retired.clone(),
        owned: h.owned.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_without_a_program_is_refused_naming_it_and_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let rendered = crate::render::render(&cluster, &pki).unwrap();
        let worker = rendered
            .hosts
            .iter()
            .find(|h| h.host == "worker-1")
            .unwrap();
        let e = host(worker, &Bundle::empty(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lacks") && e.contains("kubelet") && e.contains("worker-1"),
            "{e}"
        );
        assert!(e.contains("policy = \"none\""), "{e}");
    }
}
