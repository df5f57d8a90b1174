//! `bundle verify`: an archive or bundle directory checked offline, every file against the
//! manifest and the signature when a public key is given.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::manifest::Manifest;
use super::{archive, check, signature};

/// What became of the signature.
pub enum Signature {
    /// Valid, made by the key with this fingerprint.
    Valid(String),
    /// There is one, but no public key was given to check it with.
    NotChecked,
    Absent,
}

pub struct Verified {
    pub signature: Signature,
    pub manifest: Manifest,
}

pub fn verify(file: &Path, public_key: Option<&Path>) -> Result<Verified> {
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
    let signature = if let Some(k) = public_key {
        Signature::Valid(signature::verify(&signed, &d, k)?)
    } else if signature::sig_path(&signed).exists() {
        Signature::NotChecked
    } else {
        Signature::Absent
    };
    let manifest = match &bytes {
        Some(b) => {
            let m = super::manifest_from(b, &signed)?;
            check::check_dir(file, &m, None)?;
            m
        }
        None => {
            let (m, read_sha256) = archive::read(file, None)?;
            if read_sha256 != hex::encode(d.sha256) {
                bail!(
                    "{} changed while it was being checked; verify it again",
                    file.display()
                );
            }
            m
        }
    };
    Ok(Verified {
        signature,
        manifest,
    })
}
