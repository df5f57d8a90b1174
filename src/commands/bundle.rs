//! `provisioner bundle ...`: make, sign and check the one file an air-gapped site carries in.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bundle::{archive, check, create, fetch, signature, Manifest};
use crate::cli::bundle::{Arch, BundleCommand, FetchArgs};
use crate::inventory::version::KubeVersion;

pub fn run(cmd: BundleCommand) -> Result<()> {
    match cmd {
        BundleCommand::Fetch(a) => fetch_cmd(a),
        BundleCommand::Create(a) => {
            let v = create::Versions {
                kubernetes: a.kubernetes,
                etcd: a.versions.etcd,
                containerd: a.versions.containerd,
                runc: a.versions.runc,
                cni: a.versions.cni,
                caddy: a.caddy,
            };
            refuse_existing(&a.out)?;
            let scratch = scratch_dir(&a.out)?;
            let (root, m) = create::prepare(&a.from, &v, scratch.path())?;
            let size = archive::pack(&root, &m, &a.out)?;
            report_written(&a.out, &m, size);
            Ok(())
        }
        BundleCommand::Sign { file, key } => {
            let signed = signature::signed_file(&file);
            let k = load_private_key(&key)?;
            let out = signature::sign(&signed, &k)?;
            let fp = k.public_key().fingerprint(russh::keys::HashAlg::Sha256);
            println!("wrote {} (key {fp})", out.display());
            Ok(())
        }
        BundleCommand::Verify { file, public_key } => verify_cmd(&file, public_key.as_deref()),
    }
}

fn fetch_cmd(a: FetchArgs) -> Result<()> {
    let k = KubeVersion::parse(&a.kubernetes).map_err(anyhow::Error::msg)?;
    refuse_existing(&a.out)?;
    let r = fetch::Request {
        kubernetes: k.to_string(),
        etcd: a.versions.etcd.unwrap_or_else(|| k.default_etcd().into()),
        containerd: a
            .versions
            .containerd
            .unwrap_or_else(|| k.default_containerd().into()),
        runc: a.versions.runc.unwrap_or_else(|| k.default_runc().into()),
        cni: a.versions.cni.unwrap_or_else(|| k.default_cni().into()),
        arch: match a.arch {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
        .into(),
        mirror: a.mirror.filter(|m| !m.is_empty()),
        ca_cert: a.mirror_ca,
        images: a.images,
    };
    let stage = scratch_dir(&a.out)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let m = runtime.block_on(fetch::fetch(&r, stage.path()))?;
    for (name, default) in [
        ("pause", k.default_pause_image()),
        ("coredns", k.default_coredns_image()),
    ] {
        if m.images.iter().all(|i| i.name != name) {
            eprintln!(
                "warning: the bundle carries no {name} image (--image {name}.tar); air-gapped \
                 nodes cannot pull {default} themselves"
            );
        }
    }
    let size = fetch::write_archive(stage.path(), &m, &a.out)?;
    report_written(&a.out, &m, size);
    Ok(())
}

fn verify_cmd(file: &Path, public_key: Option<&Path>) -> Result<()> {
    let signed = signature::signed_file(file);
    // The bytes whose signature is checked are the bytes checked against their content: a
    // directory's manifest is read once; an archive is hashed again as it is read, and both
    // hashes must agree.
    let bytes = if file.is_dir() {
        Some(
            std::fs::read(&signed)
                .with_context(|| format!("reading the bundle manifest {}", signed.display()))?,
        )
    } else {
        None
    };
    let d = match &bytes {
        Some(b) => signature::digests_of(b),
        None => signature::digests(&signed)?,
    };
    if let Some(k) = public_key {
        let fp = signature::verify(&signed, &d, k)?;
        println!("signature: valid, made by {fp}");
    } else if signature::sig_path(&signed).exists() {
        println!("signature: present but not checked (pass --public-key KEY)");
    }
    let m: Manifest = match &bytes {
        Some(b) => {
            let m = crate::bundle::manifest_from(b, &signed)?;
            check::check_dir(file, &m, None)?;
            m
        }
        None => {
            let (m, read_sha256) = archive::read(file, None)?;
            if read_sha256 != hex::encode(d.sha256) {
                anyhow::bail!(
                    "{} changed while it was being checked; verify it again",
                    file.display()
                );
            }
            m
        }
    };
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

/// A work directory beside the output, so the finished archive is renamed, never copied.
fn scratch_dir(out: &Path) -> Result<tempfile::TempDir> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    tempfile::Builder::new()
        .prefix(".bundle-work-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a work directory in {}", parent.display()))
}

fn refuse_existing(out: &Path) -> Result<()> {
    if out.exists() {
        bail!(
            "{} exists; remove it or choose another --out",
            out.display()
        );
    }
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

fn load_private_key(path: &Path) -> Result<russh::keys::PrivateKey> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(crate::transport::auth::load_identity(path))
        .map(|k| (*k).clone())
        .map_err(|e| anyhow::anyhow!("the signing key {}: {e}", path.display()))
}
