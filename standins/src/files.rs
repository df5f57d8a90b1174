//! Every file a flag or config field points at: opened under `STANDIN_ROOT` (test hook), checked
//! to exist, parse, and, for secrets, to be readable by the owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

/// Where the stand-in really opens `path`. Test-only: with `STANDIN_ROOT` set, absolute paths are
/// taken under it so the tests can use a rendered tree in place of `/`.
pub fn host_path(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    match std::env::var_os("STANDIN_ROOT") {
        Some(root) if path.is_absolute() && !root.is_empty() => {
            Path::new(&root).join(path.strip_prefix("/").unwrap_or(path))
        }
        _ => path.to_path_buf(),
    }
}

/// Reads a file named by a flag or field (`what`, e.g. "--tls-cert-file").
pub fn read(what: &str, path: &str) -> Result<Vec<u8>> {
    if path.is_empty() {
        bail!("{what} is empty");
    }
    std::fs::read(host_path(path)).with_context(|| format!("{what} {path}: cannot read it"))
}

/// Secrets must not be readable by group or others; the tool installs them 0600.
pub fn require_private(what: &str, path: &str) -> Result<()> {
    let meta = std::fs::metadata(host_path(path))
        .with_context(|| format!("{what} {path}: cannot read it"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        bail!(
            "{what} {path} has mode {mode:04o}: it holds a private key and must be 0600 \
             (not readable by group or others)"
        );
    }
    Ok(())
}

/// Parsed certificate fields the stand-ins use.
pub fn parse_cert<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| anyhow::anyhow!("not a valid X.509 certificate: {e}"))?;
    Ok(cert)
}

/// Parses PEM certificates (one or more, e.g. a CA bundle).
pub fn parse_certs(what: &str, path: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{what} {path}: bad PEM: {e:?}"))?;
    if certs.is_empty() {
        bail!("{what} {path}: no PEM CERTIFICATE block in it");
    }
    for c in &certs {
        parse_cert(c).with_context(|| format!("{what} {path}"))?;
    }
    Ok(certs)
}

/// Loads a certificate file or CA bundle.
pub fn load_certs(what: &str, path: &str) -> Result<Vec<CertificateDer<'static>>> {
    parse_certs(what, path, &read(what, path)?)
}

/// Parses a PEM private key and checks that it is a key this TLS stack can sign with.
pub fn parse_key(what: &str, path: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>> {
    let key = PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| anyhow::anyhow!("{what} {path}: no usable PEM private key in it ({e:?})"))?;
    rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| anyhow::anyhow!("{what} {path}: unsupported private key: {e}"))?;
    Ok(key)
}

/// Loads a private key file, refusing it unless it is private to its owner.
pub fn load_key(what: &str, path: &str) -> Result<PrivateKeyDer<'static>> {
    require_private(what, path)?;
    parse_key(what, path, &read(what, path)?)
}

/// The SubjectPublicKeyInfo (DER) of a private key.
pub fn key_spki(key: &PrivateKeyDer<'_>) -> Result<Vec<u8>> {
    let signer = rustls::crypto::ring::sign::any_supported_type(key)?;
    let spki = signer
        .public_key()
        .context("cannot derive the public key of this private key")?;
    Ok(spki.as_ref().to_vec())
}

/// The SubjectPublicKeyInfo (DER) of a certificate.
pub fn cert_spki(cert: &CertificateDer<'_>) -> Result<Vec<u8>> {
    Ok(parse_cert(cert)?.public_key().raw.to_vec())
}

/// A certificate and the key given with it must belong together (the real components fail at
/// startup in tls.LoadX509KeyPair otherwise).
pub fn check_pair(
    cert_what: &str,
    cert_path: &str,
    cert: &CertificateDer<'_>,
    key_what: &str,
    key_path: &str,
    key: &PrivateKeyDer<'_>,
) -> Result<()> {
    if cert_spki(cert)? != key_spki(key)? {
        bail!(
            "{cert_what} {cert_path} and {key_what} {key_path} do not match: \
             the private key is not the certificate's key"
        );
    }
    Ok(())
}

/// Loads a certificate chain and its key, checking modes and that they match.
pub fn load_pair(
    cert_what: &str,
    cert_path: &str,
    key_what: &str,
    key_path: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs = load_certs(cert_what, cert_path)?;
    let key = load_key(key_what, key_path)?;
    check_pair(cert_what, cert_path, &certs[0], key_what, key_path, &key)?;
    Ok((certs, key))
}

/// Public keys for verifying service-account tokens: PEM PUBLIC KEY blocks or certificates, as the
/// real --service-account-key-file accepts. Returns each key's SubjectPublicKeyInfo DER.
pub fn load_public_keys(what: &str, path: &str) -> Result<Vec<Vec<u8>>> {
    let pem = read(what, path)?;
    let mut keys = Vec::new();
    for spki in SubjectPublicKeyInfoDer::pem_slice_iter(&pem) {
        let spki = spki.map_err(|e| anyhow::anyhow!("{what} {path}: bad PEM: {e:?}"))?;
        SubjectPublicKeyInfo::from_der(spki.as_ref())
            .map_err(|e| anyhow::anyhow!("{what} {path}: bad public key: {e}"))?;
        keys.push(spki.as_ref().to_vec());
    }
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| anyhow::anyhow!("{what} {path}: bad PEM: {e:?}"))?;
        keys.push(cert_spki(&cert).with_context(|| format!("{what} {path}"))?);
    }
    if keys.is_empty() {
        // A private key also yields its public key for the real apiserver.
        if let Ok(key) = parse_key(what, path, &pem) {
            require_private(what, path)?;
            keys.push(key_spki(&key)?);
        }
    }
    if keys.is_empty() {
        bail!("{what} {path}: no PEM public key or certificate in it");
    }
    Ok(keys)
}

/// Subject common name and organizations of a certificate.
pub fn subject(cert: &CertificateDer<'_>) -> Result<(String, Vec<String>)> {
    let c = parse_cert(cert)?;
    let cn = c
        .subject()
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or_default()
        .to_string();
    let orgs = c
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Ok((cn, orgs))
}

/// Whether the certificate says it is a CA (basicConstraints CA:TRUE).
pub fn is_ca(cert: &CertificateDer<'_>) -> Result<bool> {
    Ok(parse_cert(cert)?.is_ca())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    // A P-256 key and a self-signed certificate for it, and a second unrelated key.
    pub(crate) const CERT: &str = include_str!("../tests/data/a.crt");
    pub(crate) const KEY: &str = include_str!("../tests/data/a.key");
    pub(crate) const OTHER_KEY: &str = include_str!("../tests/data/b.key");

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> String {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn key_modes() {
        let d = tempfile::tempdir().unwrap();
        let ok = write(d.path(), "ok.key", KEY, 0o600);
        load_key("--k", &ok).unwrap();
        let ro = write(d.path(), "ro.key", KEY, 0o400);
        load_key("--k", &ro).unwrap();
        let open = write(d.path(), "open.key", KEY, 0o644);
        let e = load_key("--tls-private-key-file", &open)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has mode 0644"), "{e}");
        assert!(
            e.contains("open.key") && e.contains("--tls-private-key-file"),
            "{e}"
        );
        let group = write(d.path(), "group.key", KEY, 0o640);
        assert!(load_key("--k", &group).is_err());
    }

    #[test]
    fn missing_and_garbage_files() {
        let d = tempfile::tempdir().unwrap();
        let e = load_certs("--client-ca-file", "/nonexistent/ca.crt").unwrap_err();
        assert!(
            format!("{e:#}").contains("--client-ca-file /nonexistent/ca.crt"),
            "{e:#}"
        );
        let junk = write(d.path(), "junk.crt", "hello\n", 0o644);
        assert!(load_certs("--c", &junk).is_err());
        let junk_key = write(d.path(), "junk.key", "hello\n", 0o600);
        assert!(load_key("--k", &junk_key).is_err());
        // A key where a certificate belongs.
        let key_as_cert = write(d.path(), "k.crt", KEY, 0o644);
        assert!(load_certs("--c", &key_as_cert).is_err());
    }

    #[test]
    fn pairs_must_match() {
        let d = tempfile::tempdir().unwrap();
        let c = write(d.path(), "a.crt", CERT, 0o644);
        let k = write(d.path(), "a.key", KEY, 0o600);
        let other = write(d.path(), "b.key", OTHER_KEY, 0o600);
        load_pair("--cert", &c, "--key", &k).unwrap();
        let e = load_pair("--cert", &c, "--key", &other)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not match"), "{e}");
    }

    #[test]
    fn public_keys_from_certificates_and_keys() {
        let d = tempfile::tempdir().unwrap();
        let c = write(d.path(), "a.crt", CERT, 0o644);
        let k = write(d.path(), "a.key", KEY, 0o600);
        let from_cert = load_public_keys("--service-account-key-file", &c).unwrap();
        let from_key = load_public_keys("--service-account-key-file", &k).unwrap();
        assert_eq!(from_cert, from_key);
    }

    #[test]
    fn standin_root_prefixes_absolute_paths_only() {
        // Read the variable's effect without setting it process-wide (tests run in parallel).
        assert_eq!(host_path("relative/x"), PathBuf::from("relative/x"));
    }
}
