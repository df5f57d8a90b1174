//! The cluster's identity: what a host must share with the state directory for the two to be the
//! same cluster. It is the three CA certificates, the service-account public key and the
//! encryption-at-rest key. A state directory that did not build the cluster (a fresh clone, another
//! machine, a deleted `.provisioner/`) differs in all of them, and pushing it would make every
//! certificate untrusted and every Secret in etcd unreadable.
//!
//! Identities are compared by fingerprint (sha256 of the DER, or of the encryption key's text), so
//! no secret needs to leave a host for the comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result};

use super::{crt, pki_dir, rotation, store, Ca};
use crate::digest::sha256_hex;

/// Where each identity lives on a host. Render writes these paths; the identity check reads them.
pub mod host_path {
    /// `ca`'s files without their `.crt`/`.key` extension.
    pub fn ca_stem(ca: super::Ca) -> String {
        format!("{}/{}", PKI, ca.file())
    }

    /// The trust bundle of `ca` (its certificate, and during a rotation the other one too).
    pub fn ca_cert(ca: super::Ca) -> String {
        format!("{}.crt", ca_stem(ca))
    }

    pub fn ca_key(ca: super::Ca) -> String {
        format!("{}.key", ca_stem(ca))
    }

    pub use crate::layout::{
        ENCRYPTION_CONFIG, ETCD_PKI_DIR as ETCD_PKI, PKI_DIR as PKI, SA_KEY, SA_PUB,
    };
}

/// One identity a cluster carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Identity {
    Ca(Ca),
    ServiceAccountKey,
    EncryptionKey,
}

impl Identity {
    pub const ALL: [Identity; 5] = [
        Identity::Ca(Ca::Cluster),
        Identity::Ca(Ca::Etcd),
        Identity::Ca(Ca::FrontProxy),
        Identity::ServiceAccountKey,
        Identity::EncryptionKey,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Identity::Ca(Ca::Cluster) => "cluster CA",
            Identity::Ca(Ca::Etcd) => "etcd CA",
            Identity::Ca(Ca::FrontProxy) => "front-proxy CA",
            Identity::ServiceAccountKey => "service-account public key",
            Identity::EncryptionKey => "encryption-at-rest key",
        }
    }

    /// The host file that carries it.
    pub fn host_path(self) -> String {
        match self {
            Identity::Ca(ca) => host_path::ca_cert(ca),
            Identity::ServiceAccountKey => host_path::SA_PUB.to_string(),
            Identity::EncryptionKey => host_path::ENCRYPTION_CONFIG.to_string(),
        }
    }
}

/// Fingerprints of every identity a state directory knows, including both sides of a recorded
/// rotation (hosts may hold either while it rolls out).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Known {
    pub fingerprints: BTreeMap<Identity, BTreeSet<String>>,
}

impl Known {
    /// Whether the state directory holds any identity at all (it built a cluster, or is about to).
    pub fn is_empty(&self) -> bool {
        self.fingerprints.values().all(BTreeSet::is_empty)
    }

    pub fn knows(&self, id: Identity, fingerprint: &str) -> bool {
        self.fingerprints
            .get(&id)
            .is_some_and(|s| s.contains(fingerprint))
    }
}

/// Reads the identities of the state directory without creating anything.
pub fn known(state_dir: &Path) -> Result<Known> {
    let dir = pki_dir(state_dir);
    let mut sources = vec![dir.clone()];
    if rotation::read(&dir)?.is_some() {
        sources.push(dir.join("rotation"));
    }
    let mut k = Known::default();
    for src in &sources {
        for ca in Ca::ALL {
            let path = crt(src, ca.file());
            if let Some(text) = store::read(&path)? {
                let fps = pem_fingerprints(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                k.fingerprints
                    .entry(Identity::Ca(ca))
                    .or_default()
                    .extend(fps);
            }
        }
        let path = src.join("sa.pub");
        if let Some(text) = store::read(&path)? {
            let fps =
                pem_fingerprints(&text).with_context(|| format!("reading {}", path.display()))?;
            k.fingerprints
                .entry(Identity::ServiceAccountKey)
                .or_default()
                .extend(fps);
        }
    }
    if let Some(key) = store::read(&state_dir.join("secrets").join("encryption-key"))? {
        k.fingerprints
            .entry(Identity::EncryptionKey)
            .or_default()
            .insert(encryption_key_fingerprint(key.trim()));
    }
    Ok(k)
}

/// sha256 of the DER of every PEM block in `text` (certificates, public keys), in order.
pub fn pem_fingerprints(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| anyhow::anyhow!("not PEM: {e}"))?;
        out.push(sha256_hex(&pem.contents));
    }
    Ok(out)
}

/// The fingerprint of an encryption key: sha256 of its base64 text, as a host computes it from
/// the `secret:` line of its encryption config (so the key itself never leaves the host).
pub fn encryption_key_fingerprint(key: &str) -> String {
    sha256_hex(key.as_bytes())
}

/// A fingerprint shortened for messages.
pub fn short(fp: &str) -> &str {
    &fp[..fp.len().min(16)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_directory_knows_its_identities_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        assert!(known(&cluster.state_dir).unwrap().is_empty());
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let k = known(&cluster.state_dir).unwrap();
        for id in Identity::ALL {
            assert_eq!(k.fingerprints[&id].len(), 1, "{id:?}");
        }
        let ca = &pem_fingerprints(&pki.ca(Ca::Cluster).cert).unwrap()[0];
        assert!(k.knows(Identity::Ca(Ca::Cluster), ca));
        assert!(!k.knows(Identity::Ca(Ca::Etcd), ca));
        assert!(k.knows(
            Identity::EncryptionKey,
            &encryption_key_fingerprint(&pki.encryption_key)
        ));
    }

    #[test]
    fn a_recorded_rotation_adds_the_new_identities() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        crate::pki::ensure(&cluster).unwrap();
        rotation::start(
            &pki_dir(&cluster.state_dir),
            &[Ca::Etcd],
            true,
            &cluster.pki,
        )
        .unwrap();
        let k = known(&cluster.state_dir).unwrap();
        assert_eq!(k.fingerprints[&Identity::Ca(Ca::Etcd)].len(), 2);
        assert_eq!(k.fingerprints[&Identity::Ca(Ca::Cluster)].len(), 1);
        assert_eq!(k.fingerprints[&Identity::ServiceAccountKey].len(), 2);
    }
}
