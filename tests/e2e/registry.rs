//! An air-gapped site's registry mirror on the test host: go-containerregistry's registry
//! (`tests/testbed/upstream/registry`, built here with Go), read-only, over HTTPS with a
//! certificate from a CA of its own, serving the test bundle's web image under a name of its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::text;

/// Where the sandbox machines reach the test host: the first address of their subnet.
pub fn host_address(machine_address: &str) -> String {
    let (net, _) = machine_address
        .rsplit_once('.')
        .expect("sandbox addresses are IPv4");
    format!("{net}.1")
}

pub struct Registry {
    child: Child,
    /// `https://ADDRESS:PORT`.
    pub url: String,
    /// The CA that signed its certificate (PEM file).
    pub ca_file: PathBuf,
    log: PathBuf,
}

impl Registry {
    /// Starts it at `address`, serving each `(repository:tag, OCI archive)`.
    pub fn start(dir: &Path, address: &str, images: &[(&str, &Path)]) -> Registry {
        let bin = crate::upstream::program("registry");
        let ca_file = dir.join("registry-ca.pem");
        let (cert, key) = certificate(dir, address, &ca_file);
        let listen = format!("{address}:5443");
        let log = dir.join("registry.log");
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", &listen, "--cert"])
            .arg(&cert)
            .arg("--key")
            .arg(&key);
        for (reference, archive) in images {
            cmd.arg(format!("{reference}={}", archive.display()));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the registry starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(
            first.trim(),
            "ready",
            "the registry did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Registry {
            child,
            url: format!("https://{listen}"),
            ca_file,
            log,
        }
    }

    /// What it logged: one line per request.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA (written to `ca_file`) and a server certificate for `address` signed by it: the
/// certificate's and key's paths.
fn certificate(dir: &Path, address: &str, ca_file: &Path) -> (PathBuf, PathBuf) {
    let ca_key = dir.join("registry-ca.key");
    let key = dir.join("registry.key");
    let csr = dir.join("registry.csr");
    let cert = dir.join("registry.pem");
    let ext = dir.join("registry.ext");
    std::fs::write(&ext, format!("subjectAltName=IP:{address}\n")).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-days", "2", "-subj", "/CN=e2e registry CA"],
        ]
        .concat(),
        &[("-keyout", &ca_key), ("-out", ca_file)],
    );
    openssl(
        &[&["req"], &ec[..], &["-subj", "/CN=e2e registry"]].concat(),
        &[("-keyout", &key), ("-out", &csr)],
    );
    openssl(
        &["x509", "-req", "-days", "2"],
        &[
            ("-in", &csr),
            ("-CA", ca_file),
            ("-CAkey", &ca_key),
            ("-extfile", &ext),
            ("-out", &cert),
        ],
    );
    (cert, key)
}

fn openssl(args: &[&str], files: &[(&str, &Path)]) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    for (flag, path) in files {
        cmd.arg(flag).arg(path);
    }
    let o = cmd.output().expect("openssl runs");
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o.stderr));
}
