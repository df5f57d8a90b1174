//! `provisioner bundle ...`: make, sign and check the one file an air-gapped site carries in.

use std::path::Path;

use anyhow::{Context, Result};

use crate::bundle::archive::{refuse_existing, scratch_beside};
use crate::bundle::verify::{self, Signature};
use crate::bundle::{archive, create, fetch, signature, Manifest};
use crate::cli::bundle::{Arch, BundleCommand, CreateArgs, FetchArgs};
use crate::inventory::version::KubeVersion;

pub fn run(cmd: BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Fetch(a) => fetch_cmd(a),
        BundleCommand::Create(a) => create_cmd(a),
        BundleCommand::Sign { file, key } => {
            let k = signature::load_key(&key)?;
            let out = signature::sign(&signature::signed_file(&file), &k)?;
            let fp = k.public_key().fingerprint(russh::keys::HashAlg::Sha256);
            println!("wrote {} (key {fp})", out.display());
            Ok(())
        }
        BundleCommand::Verify { file, public_key } => {
            let v = verify::verify(&file, public_key.as_deref())?;
            match v.signature {
                Signature::Valid(fp) => println!("signature: valid, made by {fp}"),
                Signature::NotChecked => {
                    println!("signature: present but not checked (pass --public-key KEY)")
                }
                Signature::Absent => {}
            }
            let m = &v.manifest;
            println!(
                "{}: {} file(s) and {} image(s) match the manifest (Kubernetes {}, {})",
                file.display(),
                m.files.len(),
                m.images.len(),
                m.bundle.kubernetes_version,
                m.bundle.arch,
            );
            Ok(())
        }
    }
}

fn fetch_cmd(a: FetchArgs) -> Result<()> {
    let k = KubeVersion::parse(&a.kubernetes).map_err(anyhow::Error::msg)?;
    refuse_existing(&a.out)?;
    let arch = match a.arch {
        Arch::Amd64 => "amd64",
        Arch::Arm64 => "arm64",
    };
    let defaults = fetch::Request::defaults_for(k, arch);
    let v = a.versions;
    let r = fetch::Request {
        etcd: v.etcd.unwrap_or(defaults.etcd),
        containerd: v.containerd.unwrap_or(defaults.containerd),
        runc: v.runc.unwrap_or(defaults.runc),
        cni: v.cni.unwrap_or(defaults.cni),
        kube_router: v.kube_router.unwrap_or(defaults.kube_router),
        mirror: a.mirror.filter(|m| !m.is_empty()),
        ca_cert: a.mirror_ca,
        images: a.images,
        ..defaults
    };
    let stage = scratch_beside(&a.out)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let m = runtime.block_on(fetch::fetch(&r, stage.path()))?;
    for w in fetch::missing_images(&m, k) {
        eprintln!("warning: {w}");
    }
    let size = fetch::write_archive(stage.path(), &m, &a.out)?;
    report_written(&a.out, &m, size);
    Ok(())
}

fn create_cmd(a: CreateArgs) -> Result<()> {
    let v = create::Versions {
        kubernetes: a.kubernetes,
        etcd: a.versions.etcd,
        containerd: a.versions.containerd,
        runc: a.versions.runc,
        cni: a.versions.cni,
        caddy: a.caddy,
        kube_router: a.versions.kube_router,
    };
    refuse_existing(&a.out)?;
    let scratch = scratch_beside(&a.out)?;
    let (root, m) = create::prepare(&a.from, &v, scratch.path())?;
    let size = archive::pack(&root, &m, &a.out)?;
    report_written(&a.out, &m, size);
    Ok(())
}

fn report_written(out: &Path, m: &Manifest, size: u64) {
    println!(
        "wrote {} ({} MB): Kubernetes {} for {}, {} file(s), {} image(s)",
        out.display(),
        size >> 20,
        m.bundle.kubernetes_version,
        m.bundle.arch,
        m.files.len(),
        m.images.len()
    );
}
