//! `provisioner bundle ...`: make, sign and check the one file an air-gapped site carries in.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::bundle::{archive, check, create, fetch, signature, Manifest};
use crate::inventory::version::KubeVersion;

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Download the release binaries (on a connected machine) into one verified archive
    #[command(
        after_help = "Examples:\n  provisioner bundle fetch --kubernetes 1.37.2 --image pause.tar --image coredns.tar --out k8s-1.37.2.tar.zst\n  \
        provisioner bundle fetch --kubernetes 1.37.2 --mirror https://mirror.corp/releases --mirror-ca corp-ca.pem --out b.tar.zst\n\n\
        Downloads kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy and \
        kubectl from dl.k8s.io, and etcd, containerd, runc and the CNI plugins from their GitHub \
        releases; each is checked against the checksum file published next to it and refused on a \
        mismatch. A mirror keeps the upstream layout under its base URL \
        (MIRROR/dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet) and must be https. \
        Container images are not pulled from registries: pass OCI archives with --image \
        (for example `skopeo copy docker://registry.k8s.io/pause:3.10.2 oci-archive:pause.tar` and \
        `skopeo copy docker://registry.k8s.io/coredns/coredns:v1.14.6 oci-archive:coredns.tar`, \
        the versions kubeadm pins for the release); the pause image is what containerd's sandbox \
        image setting then points at, and the CoreDNS image is what the cluster DNS runs."
    )]
    Fetch(FetchArgs),

    /// Make the archive from a directory of binaries obtained another way
    #[command(
        after_help = "Examples:\n  provisioner bundle create --from bundle-dir/ --out bundle.tar.zst\n  \
        provisioner bundle create --from tree/ --kubernetes 1.35.0 --etcd 3.5.24 --containerd 2.2.0 --runc 1.3.0 --cni 1.7.1 --out b.tar.zst\n\n\
        A directory with a manifest.toml is packed as it is, after every file is checked against \
        it. Otherwise the tree is bin/<name> (Kubernetes, etcd, containerd, runc binaries, and \
        caddy with its layer4 app for `api.load_balancer = \"node-local\"`), \
        cni/<plugin> and images/<name>.tar (OCI archives), and each component's version comes \
        from its option."
    )]
    Create(CreateArgs),

    /// Sign an archive (or a bundle directory's manifest) with an OpenSSH ed25519 key
    #[command(
        after_help = "Example:\n  ssh-keygen -t ed25519 -f bundle-signing -C 'bundle signing'\n  \
        provisioner bundle sign k8s-1.35.0.tar.zst --key bundle-signing\n\n\
        Writes k8s-1.35.0.tar.zst.sig in the SSHSIG format with the namespace provisioner-bundle, so \
        ssh-keygen checks it too:\n  \
        ssh-keygen -Y verify -f allowed_signers -I bundle -n provisioner-bundle -s FILE.sig < FILE\n\
        An encrypted key's passphrase comes from PROVISIONER_SSH_PASSPHRASE or a prompt."
    )]
    Sign {
        /// The archive, or a bundle directory (its manifest.toml is signed)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The private key (OpenSSH format)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },

    /// Check an archive or bundle directory offline: every file against the manifest, and the
    /// signature when a public key is given
    #[command(
        after_help = "Example:\n  provisioner bundle verify k8s-1.35.0.tar.zst --public-key bundle-signing.pub\n\n\
        Exits 0 when everything matches, 1 otherwise (naming what does not). Set \
        [cluster] bundle_public_key in the inventory to make apply require the same signature."
    )]
    Verify {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// The signer's OpenSSH public key; without it the signature is not checked
        #[arg(long, value_name = "KEY")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct VersionArgs {
    /// etcd version (default: the one matching the Kubernetes version)
    #[arg(long, value_name = "VERSION")]
    pub etcd: Option<String>,
    /// containerd version (default: the one matching the Kubernetes version)
    #[arg(long, value_name = "VERSION")]
    pub containerd: Option<String>,
    /// runc version
    #[arg(long, value_name = "VERSION")]
    pub runc: Option<String>,
    /// CNI plugins version
    #[arg(long, value_name = "VERSION")]
    pub cni: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Arch {
    Amd64,
    Arm64,
}

#[derive(Args)]
pub struct FetchArgs {
    /// Kubernetes version (1.35.x to 1.37.x)
    #[arg(long, value_name = "VERSION")]
    pub kubernetes: String,
    #[command(flatten)]
    pub versions: VersionArgs,
    #[arg(long, value_enum, default_value = "amd64")]
    pub arch: Arch,
    /// Base URL of a mirror laid out like upstream (also from PROVISIONER_MIRROR)
    #[arg(long, value_name = "URL", env = fetch::MIRROR_ENV)]
    pub mirror: Option<String>,
    /// Extra CA certificates (PEM) to trust for the mirror
    #[arg(long, value_name = "FILE")]
    pub mirror_ca: Option<PathBuf>,
    /// An OCI image archive to carry (repeatable): the pause and CoreDNS images at least
    #[arg(long = "image", value_name = "FILE")]
    pub images: Vec<PathBuf>,
    /// The archive to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Args)]
pub struct CreateArgs {
    /// A bundle directory (with manifest.toml) or a tree of bin/, cni/ and images/
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Kubernetes version of the binaries (needed without a manifest.toml)
    #[arg(long, value_name = "VERSION")]
    pub kubernetes: Option<String>,
    #[command(flatten)]
    pub versions: VersionArgs,
    /// Version of bin/caddy, the node-local API load balancer (caddy built with its layer4 app,
    /// e.g. by `xcaddy build --with github.com/mholt/caddy-l4`), when the tree has one
    #[arg(long, value_name = "VERSION")]
    pub caddy: Option<String>,
    /// The archive to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

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
            if read_sha256 != crate::bundle::hex(&d.sha256) {
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
