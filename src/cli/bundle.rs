//! `provisioner bundle ...`: its arguments.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::bundle::fetch;

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
        it. Otherwise the tree is bin/<name> (Kubernetes, etcd, containerd, runc and kube-router \
        binaries, and caddy with its layer4 app for `api.load_balancer = \"node-local\"`), \
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
    /// kube-router version, the network policy engine (default: the one provisioner is tested
    /// with)
    #[arg(long, value_name = "VERSION")]
    pub kube_router: Option<String>,
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
