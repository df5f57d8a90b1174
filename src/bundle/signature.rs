//! Bundle signatures: SSHSIG (the format of `ssh-keygen -Y sign`) with an ordinary OpenSSH key,
//! written beside the signed file as `FILE.sig`. `ssh-keygen -Y verify -n provisioner-bundle`
//! checks the same signatures, and `ssh-keygen -Y sign -n provisioner-bundle` makes ones this
//! code accepts.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use russh::keys::ssh_key::{LineEnding, SshSig};
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use sha2::{Digest, Sha256, Sha512};

/// The SSHSIG namespace: a signature made for anything else (a git commit, a file signed with
/// `-n file`) is not a bundle signature.
pub const NAMESPACE: &str = "provisioner-bundle";

/// The signing key at `path` (OpenSSH format; an encrypted one's passphrase as for SSH keys).
pub fn load_key(path: &Path) -> Result<PrivateKey> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(crate::transport::auth::load_identity(path))
        .map(|k| (*k).clone())
        .map_err(|e| anyhow::anyhow!("the signing key {}: {e}", path.display()))
}

/// The file a signature covers: an archive itself, or a bundle directory's manifest (which
/// holds the sha256 of every other file).
pub fn signed_file(bundle: &Path) -> PathBuf {
    if bundle.is_dir() {
        bundle.join(super::MANIFEST)
    } else {
        bundle.to_path_buf()
    }
}

pub fn sig_path(signed: &Path) -> PathBuf {
    let mut s = signed.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// SHA-256 and SHA-512 of a file, read once: the first identifies an archive, the second is
/// what SSHSIG signs.
pub struct Digests {
    pub sha256: Vec<u8>,
    pub sha512: Vec<u8>,
}

/// The digests of bytes already in memory (a directory bundle's manifest, read once).
pub fn digests_of(bytes: &[u8]) -> Digests {
    Digests {
        sha256: Sha256::digest(bytes).to_vec(),
        sha512: Sha512::digest(bytes).to_vec(),
    }
}

pub fn digests(path: &Path) -> Result<Digests> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut a, mut b) = (Sha256::new(), Sha512::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        a.update(&buf[..n]);
        b.update(&buf[..n]);
    }
    Ok(Digests {
        sha256: a.finalize().to_vec(),
        sha512: b.finalize().to_vec(),
    })
}

/// Signs `signed` with the private key, writing `signed.sig`. Returns the signature's path.
pub fn sign(signed: &Path, key: &PrivateKey) -> Result<PathBuf> {
    let d = digests(signed)?;
    let sig = key
        .sign_prehash(NAMESPACE, HashAlg::Sha512, &d.sha512)
        .context("signing")?;
    let pem = sig
        .to_pem(LineEnding::LF)
        .context("encoding the signature")?;
    let out = sig_path(signed);
    let mut tmp = super::temp_beside(&out)?;
    tmp.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

/// Checks `signed.sig` against the public key file (one OpenSSH public key line, as
/// `ssh-keygen` writes it). Returns the key's fingerprint.
pub fn verify(signed: &Path, d: &Digests, public_key: &Path) -> Result<String> {
    let key = read_public_key(public_key)?;
    let sig_file = sig_path(signed);
    let pem = std::fs::read_to_string(&sig_file).with_context(|| {
        format!(
            "{} has no signature ({} is missing) but the bundle must be signed: sign it with \
             `provisioner bundle sign {} --key KEY`",
            signed.display(),
            sig_file.display(),
            signed.display()
        )
    })?;
    let sig = SshSig::from_pem(pem.trim())
        .with_context(|| format!("{} is not an SSH signature", sig_file.display()))?;
    let prehash = match sig.hash_alg() {
        HashAlg::Sha256 => &d.sha256,
        HashAlg::Sha512 => &d.sha512,
        other => bail!("{}: unsupported hash {other:?}", sig_file.display()),
    };
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    key.verify_prehash(NAMESPACE, prehash, &sig).map_err(|e| {
        let why = match e {
            russh::keys::ssh_key::Error::PublicKey => "it was made with another key".to_string(),
            russh::keys::ssh_key::Error::Namespace => format!(
                "it was made for the namespace {:?}, not {NAMESPACE:?}",
                sig.namespace()
            ),
            _ => "the file does not match it (changed after signing?)".to_string(),
        };
        anyhow::anyhow!(
            "the signature {} is not valid for {} with the key {fingerprint}: {why}; refusing the bundle",
            sig_file.display(),
            signed.display()
        )
    })?;
    Ok(fingerprint)
}

pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    PublicKey::from_openssh(text.trim()).with_context(|| {
        format!(
            "{} is not an OpenSSH public key (expected one line like `ssh-ed25519 AAAA... comment`)",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key() -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[7; 32]))
    }

    #[test]
    fn a_signature_verifies_and_a_failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let signed = dir.path().join("bundle.tar.zst");
        std::fs::write(&signed, b"bundle").unwrap();
        let public = dir.path().join("key.pub");
        std::fs::write(&public, key().public_key().to_openssh().unwrap()).unwrap();
        let sig = sign(&signed, &key()).unwrap();
        assert_eq!(sig, sig_path(&signed));
        verify(&signed, &digests(&signed).unwrap(), &public).unwrap();

        // The signature's place taken by a directory: signing fails and writes nothing else.
        std::fs::remove_file(&sig).unwrap();
        std::fs::create_dir(&sig).unwrap();
        std::fs::write(sig.join("occupied"), b"").unwrap();
        assert!(sign(&signed, &key()).is_err());
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["bundle.tar.zst", "bundle.tar.zst.sig", "key.pub"]);
    }
}
