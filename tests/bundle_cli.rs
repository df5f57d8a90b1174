//! `provisioner bundle fetch|create|sign|verify` with real tools: a real HTTPS server (Python's,
//! with an openssl-made CA) serving a release tree laid out like upstream, GNU tar reading the
//! archives, and `ssh-keygen -Y` checking and making the signatures. Also: `apply` refuses a bad
//! bundle before opening any connection.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::ssh::keygen;
use common::{provisioner, sha256_file, sha256_hex, text, tool_ok};

/// Writes `rel` under `root` (creating directories) and returns its path.
fn put(root: &Path, rel: &str, data: &[u8]) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    p
}

/// A release tree laid out like dl.k8s.io and the GitHub releases, with the checksum files each
/// project publishes (each in its own format). The binaries are small scripts.
fn release_tree(root: &Path) {
    let k8s = "dl.k8s.io/release/v1.35.0/bin/linux/amd64";
    for b in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubelet",
        "kube-proxy",
        "kubectl",
    ] {
        let p = put(
            root,
            &format!("{k8s}/{b}"),
            format!("#!/bin/sh\necho {b}\n").as_bytes(),
        );
        put(
            root,
            &format!("{k8s}/{b}.sha256"),
            sha256_file(&p).as_bytes(),
        );
    }
    let scratch = root.join("scratch");
    // etcd: a tarball with a top directory, and a SHA256SUMS for the whole release.
    let etcd = "github.com/etcd-io/etcd/releases/download/v3.6.6";
    for b in ["etcd", "etcdctl", "etcdutl"] {
        put(
            &scratch,
            &format!("etcd-v3.6.6-linux-amd64/{b}"),
            b"#!/bin/sh\n",
        );
    }
    std::fs::create_dir_all(root.join(etcd)).unwrap();
    let tgz = root.join(etcd).join("etcd-v3.6.6-linux-amd64.tar.gz");
    tool_ok(
        "tar",
        &[
            "-czf",
            tgz.to_str().unwrap(),
            "-C",
            scratch.to_str().unwrap(),
            "etcd-v3.6.6-linux-amd64",
        ],
    );
    put(
        root,
        &format!("{etcd}/SHA256SUMS"),
        format!(
            "{}  etcd-v3.6.6-linux-arm64.tar.gz\n{}  etcd-v3.6.6-linux-amd64.tar.gz\n",
            "0".repeat(64),
            sha256_file(&tgz)
        )
        .as_bytes(),
    );
    // containerd: bin/ inside the tarball, `HASH  NAME` in a .sha256sum beside it.
    let ctd = "github.com/containerd/containerd/releases/download/v2.2.9";
    for b in [
        "containerd",
        "containerd-shim-runc-v2",
        "ctr",
        "containerd-stress",
    ] {
        put(&scratch, &format!("ctd/bin/{b}"), b"#!/bin/sh\n");
    }
    std::fs::create_dir_all(root.join(ctd)).unwrap();
    let tgz = root.join(ctd).join("containerd-2.2.9-linux-amd64.tar.gz");
    tool_ok(
        "tar",
        &[
            "-czf",
            tgz.to_str().unwrap(),
            "-C",
            scratch.join("ctd").to_str().unwrap(),
            "bin",
        ],
    );
    put(
        root,
        &format!("{ctd}/containerd-2.2.9-linux-amd64.tar.gz.sha256sum"),
        format!(
            "{}  containerd-2.2.9-linux-amd64.tar.gz\n",
            sha256_file(&tgz)
        )
        .as_bytes(),
    );
    // runc: a plain binary per architecture, one runc.sha256sum for all.
    let runc = "github.com/opencontainers/runc/releases/download/v1.3.6";
    let p = put(
        root,
        &format!("{runc}/runc.amd64"),
        b"#!/bin/sh\necho runc\n",
    );
    put(
        root,
        &format!("{runc}/runc.sha256sum"),
        format!(
            "{}  runc.arm64\n{}  runc.amd64\n",
            "1".repeat(64),
            sha256_file(&p)
        )
        .as_bytes(),
    );
    // CNI plugins: files at the top of the tarball (./bridge).
    let cni = "github.com/containernetworking/plugins/releases/download/v1.8.0";
    for b in provisioner::bundle::fetch::CNI_PLUGINS
        .iter()
        .chain(&["vlan"])
    {
        put(&scratch, &format!("cni/{b}"), b"#!/bin/sh\n");
    }
    std::fs::create_dir_all(root.join(cni)).unwrap();
    let tgz = root.join(cni).join("cni-plugins-linux-amd64-v1.8.0.tgz");
    tool_ok(
        "tar",
        &[
            "-czf",
            tgz.to_str().unwrap(),
            "-C",
            scratch.join("cni").to_str().unwrap(),
            ".",
        ],
    );
    put(
        root,
        &format!("{cni}/cni-plugins-linux-amd64-v1.8.0.tgz.sha256"),
        format!(
            "{}  cni-plugins-linux-amd64-v1.8.0.tgz\n",
            sha256_file(&tgz)
        )
        .as_bytes(),
    );
    // kube-router: goreleaser's archive (the binary beside LICENSE and README.md at its top)
    // and one checksums.txt for every archive of the release.
    let kr = "github.com/cloudnativelabs/kube-router/releases/download/v2.1.0";
    for f in ["kube-router", "LICENSE", "README.md"] {
        put(&scratch, &format!("kr/{f}"), b"#!/bin/sh\n");
    }
    std::fs::create_dir_all(root.join(kr)).unwrap();
    let tgz = root.join(kr).join("kube-router_2.1.0_linux_amd64.tar.gz");
    tool_ok(
        "tar",
        &[
            "-czf",
            tgz.to_str().unwrap(),
            "-C",
            scratch.join("kr").to_str().unwrap(),
            "kube-router",
            "LICENSE",
            "README.md",
        ],
    );
    put(
        root,
        &format!("{kr}/kube-router_2.1.0_checksums.txt"),
        format!(
            "{}  kube-router_2.1.0_linux_arm64.tar.gz\n{}  kube-router_2.1.0_linux_amd64.tar.gz\n",
            "2".repeat(64),
            sha256_file(&tgz)
        )
        .as_bytes(),
    );
    std::fs::remove_dir_all(scratch).unwrap();
}

/// A test CA and a server certificate for 127.0.0.1, made with openssl.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509", "-days", "1", "-subj", "/CN=mirror test CA"];
    args.extend(ec);
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    args.extend(["-keyout", &ca_key, "-out", &ca_crt]);
    tool_ok("openssl", &args);
    let (key, csr, crt, ext) = (p("srv.key"), p("srv.csr"), p("srv.crt"), p("srv.ext"));
    let mut args = vec!["req", "-subj", "/CN=127.0.0.1"];
    args.extend(ec);
    args.extend(["-keyout", &key, "-out", &csr]);
    tool_ok("openssl", &args);
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    tool_ok(
        "openssl",
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    );
    (
        PathBuf::from(ca_crt),
        PathBuf::from(crt),
        PathBuf::from(key),
    )
}

/// Python's HTTP server over TLS, serving `root`; stopped on drop.
struct Mirror {
    child: Child,
    url: String,
}

impl Mirror {
    fn start(root: &Path, cert: &Path, key: &Path) -> Mirror {
        let script = r#"
import functools, http.server, ssl, sys
root, cert, key = sys.argv[1:4]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory=root)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
# A refused fetch drops its other downloads midway; that is expected, not worth a traceback.
srv.handle_error = lambda *args: None
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(root)
            .arg(cert)
            .arg(key)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the server prints its port");
        Mirror {
            child,
            url: format!("https://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal OCI image archive, as the image-handling code expects one.
fn oci_archive(dir: &Path, reference: &str) -> (PathBuf, String) {
    let layout = dir.join("oci");
    let blob = |data: &[u8]| {
        let h = sha256_hex(data);
        put(&layout, &format!("blobs/sha256/{h}"), data);
        (format!("sha256:{h}"), data.len())
    };
    let (config, config_size) =
        blob(br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[]}}"#
    );
    let (digest, size) = blob(manifest.as_bytes());
    put(&layout, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    put(
        &layout,
        "index.json",
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{digest}","size":{size},"annotations":{{"io.containerd.image.name":"{reference}"}}}}]}}"#
        )
        .as_bytes(),
    );
    let tar = dir.join("pause.tar");
    tool_ok(
        "tar",
        &[
            "-cf",
            tar.to_str().unwrap(),
            "-C",
            layout.to_str().unwrap(),
            ".",
        ],
    );
    (tar, digest)
}

fn flip_last_byte(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let last = b.len() - 2;
    b[last] ^= 0x01;
    std::fs::write(p, b).unwrap();
}

#[test]
fn fetch_from_a_mirror_checks_every_download_against_its_checksum_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    release_tree(&root);
    let (ca, cert, key) = tls_files(dir.path());
    let mirror = Mirror::start(&root, &cert, &key);
    let (image, digest) = oci_archive(dir.path(), "registry.k8s.io/pause:3.10.1");
    let out = dir.path().join("k8s.tar.zst");
    let fetch = |out: &Path, mirror: &str| {
        provisioner(&[
            "bundle",
            "fetch",
            "--kubernetes",
            "1.35.0",
            "--mirror",
            mirror,
            "--mirror-ca",
            ca.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = fetch(&out, &mirror.url);
    assert!(o.status.success(), "fetch failed:\n{}", text(&o.stderr));

    // GNU tar reads it; the manifest comes first, then every file.
    let listing = tool_ok("tar", &["--zstd", "-tf", out.to_str().unwrap()]);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names[0], "manifest.toml", "{listing}");
    for want in [
        "bin/kubelet",
        "bin/etcdutl",
        "bin/ctr",
        "bin/runc",
        "cni/bridge",
        "bin/kube-router",
        "images/pause.tar",
    ] {
        assert!(names.contains(&want), "{want} missing from:\n{listing}");
    }
    assert!(!names.contains(&"bin/containerd-stress") && !names.contains(&"cni/vlan"));
    let manifest = tool_ok(
        "tar",
        &["--zstd", "-xOf", out.to_str().unwrap(), "manifest.toml"],
    );
    let m: toml::Value = toml::from_str(&manifest).unwrap();
    let kubelet = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str() == Some("kubelet"))
        .unwrap();
    assert_eq!(kubelet["version"].as_str(), Some("1.35.0"));
    assert_eq!(
        kubelet["source"].as_str().unwrap(),
        format!(
            "{}/dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet",
            mirror.url
        )
    );
    assert_eq!(
        kubelet["sha256"].as_str().unwrap(),
        sha256_file(&root.join("dl.k8s.io/release/v1.35.0/bin/linux/amd64/kubelet"))
    );
    assert_eq!(m["images"][0]["digest"].as_str(), Some(digest.as_str()));
    assert_eq!(m["bundle"]["kubernetes_version"].as_str(), Some("1.35.0"));
    let o = provisioner(&["bundle", "verify", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("21 file(s) and 1 image(s) match"),
        "{}",
        text(&o.stdout)
    );

    // One flipped byte in one binary on the mirror: fetch refuses, naming the file.
    flip_last_byte(&root.join("dl.k8s.io/release/v1.35.0/bin/linux/amd64/kube-scheduler"));
    let bad = dir.path().join("bad.tar.zst");
    let o = fetch(&bad, &mirror.url);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "a corrupted download must be refused");
    assert!(
        err.contains("kube-scheduler") && err.contains("checksum file says"),
        "{err}"
    );
    assert!(!bad.exists(), "nothing is written after a refused download");

    // A mirror without TLS is refused: its checksums would be as forgeable as its binaries.
    let o = fetch(&bad, &mirror.url.replace("https", "http"));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("not an https:// URL"),
        "{}",
        text(&o.stderr)
    );
}

/// A legacy docker-archive (`docker save` before Docker 25: manifest.json, config, layer tars).
fn docker_archive(dir: &Path, out: &Path) {
    let src = dir.join("docker-src");
    let layer = put(&src, "layer-src/hello", b"hello\n");
    let layer_tar = src.join("0123/layer.tar");
    std::fs::create_dir_all(layer_tar.parent().unwrap()).unwrap();
    tool_ok(
        "tar",
        &[
            "-cf",
            layer_tar.to_str().unwrap(),
            "-C",
            layer.parent().unwrap().to_str().unwrap(),
            "hello",
        ],
    );
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
        sha256_file(&layer_tar)
    );
    put(&src, "cfg.json", config.as_bytes());
    put(
        &src,
        "manifest.json",
        br#"[{"Config":"cfg.json","RepoTags":["app:1.0"],"Layers":["0123/layer.tar"]}]"#,
    );
    tool_ok(
        "tar",
        &[
            "-cf",
            out.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            "manifest.json",
            "cfg.json",
            "0123",
        ],
    );
}

/// A small bundle tree (scripts in place of binaries, one docker-archive image) packed by
/// `bundle create`.
fn small_bundle(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    put(&tree, "bin/etcd", b"#!/bin/sh\necho etcd\n");
    put(&tree, "bin/kubelet", b"#!/bin/sh\necho kubelet\n");
    put(&tree, "cni/bridge", b"#!/bin/sh\n");
    std::fs::create_dir_all(tree.join("images")).unwrap();
    docker_archive(dir, &tree.join("images/app.tar"));
    let out = dir.join("small.tar.zst");
    let o = provisioner(&[
        "bundle",
        "create",
        "--from",
        tree.to_str().unwrap(),
        "--kubernetes",
        "1.35.0",
        "--etcd",
        "3.6.6",
        "--cni",
        "1.8.0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    out
}

/// Unpacks a bundle archive with GNU tar into `into` (new).
fn unpack(archive: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir(into).unwrap();
    tool_ok(
        "tar",
        &[
            "--zstd",
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            into.to_str().unwrap(),
        ],
    );
    into.to_path_buf()
}

#[test]
fn signatures_are_sshsig_and_interoperate_with_ssh_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_bundle(dir.path());
    let key = keygen(dir.path(), "signer", "ed25519", "");
    let other = keygen(dir.path(), "other", "ed25519", "");
    let pubkey = |k: &Path| k.with_extension("pub").to_str().unwrap().to_string();
    let a = archive.to_str().unwrap();

    let o = provisioner(&["bundle", "sign", a, "--key", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sig = dir.path().join("small.tar.zst.sig");
    assert!(std::fs::read_to_string(&sig)
        .unwrap()
        .starts_with("-----BEGIN SSH SIGNATURE-----"));

    // ssh-keygen accepts our signature...
    let signers = dir.path().join("allowed_signers");
    let pk = std::fs::read_to_string(pubkey(&key)).unwrap();
    std::fs::write(&signers, format!("bundle {pk}")).unwrap();
    let o = Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-f",
            signers.to_str().unwrap(),
            "-I",
            "bundle",
        ])
        .args(["-n", "provisioner-bundle", "-s", sig.to_str().unwrap()])
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ssh-keygen -Y verify: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    // ...and we accept ssh-keygen's.
    let o = provisioner(&["bundle", "verify", a, "--public-key", &pubkey(&key)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("signature: valid"));
    std::fs::remove_file(&sig).unwrap();
    let keygen_sign = |namespace: &str| {
        tool_ok(
            "ssh-keygen",
            &[
                "-Y",
                "sign",
                "-f",
                key.to_str().unwrap(),
                "-n",
                namespace,
                a,
            ],
        )
    };
    keygen_sign("provisioner-bundle");
    let o = provisioner(&["bundle", "verify", a, "--public-key", &pubkey(&key)]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    // Another key, another namespace, a missing signature: refused, saying why.
    let o = provisioner(&["bundle", "verify", a, "--public-key", &pubkey(&other)]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("made with another key"),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_file(&sig).unwrap();
    keygen_sign("file");
    let o = provisioner(&["bundle", "verify", a, "--public-key", &pubkey(&key)]);
    assert!(
        text(&o.stderr).contains("namespace \"file\""),
        "{}",
        text(&o.stderr)
    );
    std::fs::remove_file(&sig).unwrap();
    let o = provisioner(&["bundle", "verify", a, "--public-key", &pubkey(&key)]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("has no signature"),
        "{}",
        text(&o.stderr)
    );

    // A signed archive changed afterwards fails the signature check and the content check.
    keygen_sign("provisioner-bundle");
    flip_last_byte(&archive);
    let o = provisioner(&["bundle", "verify", a, "--public-key", &pubkey(&key)]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("does not match it"),
        "{}",
        text(&o.stderr)
    );
    let o = provisioner(&["bundle", "verify", a]);
    assert!(!o.status.success(), "a damaged archive must not verify");
}

/// An inventory whose only host is a local port that counts connections.
struct Guarded {
    ws: common::Workspace,
    listener: TcpListener,
}

impl Guarded {
    fn new(bundle: &Path, public_key: Option<&Path>) -> Guarded {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let key = public_key
            .map(|k| format!("bundle_public_key = \"{}\"\n", k.display()))
            .unwrap_or_default();
        let ws = common::Workspace::with_text(&format!(
            "[cluster]\nname = \"t\"\nkubernetes_version = \"1.35.0\"\nbundle = \"{}\"\n{key}\n\
             [ssh]\nport = {}\n\n\
             [[hosts]]\nname = \"node-1\"\naddress = \"127.0.0.1\"\nroles = [\"etcd\", \"control-plane\", \"worker\"]\n",
            bundle.display(),
            listener.local_addr().unwrap().port()
        ));
        Guarded { ws, listener }
    }

    /// Runs apply, expects it to fail with `want` and without a connection to the host.
    fn refused(&self, want: &str) {
        let o = self.ws.run(&["apply"]);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "apply must fail");
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
        assert!(
            self.listener.accept().is_err(),
            "apply connected to the host although the bundle is bad"
        );
    }
}

#[test]
fn apply_refuses_a_bad_bundle_before_connecting_to_any_host() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_bundle(dir.path());
    let key = keygen(dir.path(), "signer", "ed25519", "");
    let pubkey = key.with_extension("pub");

    // Required signature missing, then made with another key.
    Guarded::new(&archive, Some(&pubkey)).refused("has no signature");
    let other = keygen(dir.path(), "other", "ed25519", "");
    let o = provisioner(&[
        "bundle",
        "sign",
        archive.to_str().unwrap(),
        "--key",
        other.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    Guarded::new(&archive, Some(&pubkey)).refused("made with another key");

    // A tampered archive (no key configured): its content no longer matches the manifest.
    let tampered = dir.path().join("tampered.tar.zst");
    let tree = unpack(&archive, &dir.path().join("unpacked"));
    std::fs::write(tree.join("bin/kubelet"), b"#!/bin/sh\necho evil\n").unwrap();
    tool_ok(
        "tar",
        &[
            "--zstd",
            "-cf",
            tampered.to_str().unwrap(),
            "-C",
            tree.to_str().unwrap(),
            "manifest.toml",
            "bin",
            "cni",
            "images",
        ],
    );
    Guarded::new(&tampered, None).refused("bin/kubelet does not match the manifest");

    // A file the manifest lists is missing from the archive.
    let short = dir.path().join("short.tar.zst");
    tool_ok(
        "tar",
        &[
            "--zstd",
            "-cf",
            short.to_str().unwrap(),
            "-C",
            tree.to_str().unwrap(),
            "manifest.toml",
            "cni",
            "images",
        ],
    );
    Guarded::new(&short, None).refused("lacks: bin/etcd, bin/kubelet\n");

    // The same checks hold for a bundle directory.
    Guarded::new(&tree, None).refused("bin/kubelet does not match the manifest");
}

#[test]
fn create_packs_a_bundle_directory_and_checks_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let archive = small_bundle(dir.path());
    let tree = unpack(&archive, &dir.path().join("unpacked"));
    // The docker-archive became an OCI archive whose manifest digest the bundle manifest names.
    let m = common::bundle::manifest(&tree);
    let image = &m["images"][0];
    assert_eq!(
        image["reference"].as_str(),
        Some("docker.io/library/app:1.0")
    );
    assert_eq!(image["path"].as_str(), Some("images/app.tar"));
    let index = tool_ok(
        "tar",
        &[
            "-xOf",
            tree.join("images/app.tar").to_str().unwrap(),
            "index.json",
        ],
    );
    assert!(index.contains(image["digest"].as_str().unwrap()), "{index}");
    // A directory with its manifest is packed as it is, byte-identical (fixed times and order).
    let again = dir.path().join("again.tar.zst");
    let o = provisioner(&[
        "bundle",
        "create",
        "--from",
        tree.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        std::fs::read(&again).unwrap()
    );
    // A file that does not match its manifest is refused, and nothing is written.
    std::fs::write(tree.join("cni/bridge"), b"changed").unwrap();
    let third = dir.path().join("third.tar.zst");
    let o = provisioner(&[
        "bundle",
        "create",
        "--from",
        tree.to_str().unwrap(),
        "--out",
        third.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("cni/bridge does not match the manifest"),
        "{}",
        text(&o.stderr)
    );
    assert!(!third.exists());
}

/// An image reference that would be a shell command if it reached one unquoted.
const HOSTILE: &str = "registry.k8s.io/pause:3.10.1';touch /tmp/pwned;'";

#[test]
fn a_hostile_image_reference_is_refused_by_create_and_by_apply() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("evil-tree");
    put(&tree, "bin/etcd", b"#!/bin/sh\necho etcd\n");
    std::fs::create_dir_all(tree.join("images")).unwrap();
    let (tar, _) = oci_archive(dir.path(), HOSTILE);
    std::fs::rename(&tar, tree.join("images/pause.tar")).unwrap();
    let out = dir.path().join("evil.tar.zst");
    let o = provisioner(&[
        "bundle",
        "create",
        "--from",
        tree.to_str().unwrap(),
        "--kubernetes",
        "1.35.0",
        "--etcd",
        "3.6.6",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "bundle create accepted {HOSTILE}");
    assert!(err.contains("is not an image reference"), "{err}");
    assert!(!out.exists(), "nothing may be written");

    // A manifest edited by hand to carry it is refused by apply before any connection.
    let archive = small_bundle(dir.path());
    let unpacked = unpack(&archive, &dir.path().join("unpacked"));
    let manifest = unpacked.join("manifest.toml");
    let m = std::fs::read_to_string(&manifest).unwrap();
    let edited = m.replace("docker.io/library/app:1.0", HOSTILE);
    assert_ne!(m, edited);
    std::fs::write(&manifest, edited).unwrap();
    Guarded::new(&unpacked, None).refused("is not an image reference");
    assert!(!Path::new("/tmp/pwned").exists());
}
