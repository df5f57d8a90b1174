//! `validate`, `render` and `kubeconfig`: the inventory, and what it renders to.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use super::{load, SUCCESS};
use crate::apply::ensure_pki;
use crate::cli::RenderArgs;
use crate::{pki, render};

pub(super) fn validate(path: &Path) -> Result<u8> {
    let l = load(path)?;
    let c = &l.cluster;
    println!(
        "{} is valid: cluster {}, Kubernetes {}, {} hosts ({} etcd, {} control-plane, {} worker)",
        path.display(),
        c.name,
        c.kubernetes,
        c.hosts.len(),
        c.etcd_hosts().count(),
        c.control_plane_hosts().count(),
        c.worker_hosts().count()
    );
    Ok(SUCCESS)
}

pub(super) fn render_cmd(a: &RenderArgs) -> Result<u8> {
    let (path, out) = (&a.inventory.inventory, &a.out);
    let l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let pki = ensure_pki(&l.cluster, path)?;
    let rendered = render::render(&l.cluster, &pki)?;
    render::write_tree(&rendered, out)?;
    for h in &rendered.hosts {
        let bins: Vec<&str> = h.binaries.iter().map(|b| b.name).collect();
        let units: Vec<String> = h.units.iter().map(|u| u.file_name()).collect();
        println!(
            "{}: {} files, units {}, binaries from the bundle: {}",
            h.host,
            h.files.len(),
            units.join(" "),
            bins.join(" ")
        );
    }
    println!(
        "wrote {} (admin kubeconfig: {})",
        out.display(),
        out.join("admin.kubeconfig").display()
    );
    Ok(SUCCESS)
}

pub(super) fn kubeconfig(path: &Path) -> Result<u8> {
    let l = load(path)?;
    // It may create the PKI (and finish an interrupted write): the same lock as every writer.
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let pki = ensure_pki(&l.cluster, path)?;
    let rendered = render::render(&l.cluster, &pki)?;
    std::io::stdout().write_all(rendered.admin_kubeconfig.as_bytes())?;
    Ok(SUCCESS)
}
