//! Rebuilding a lost state directory from the hosts (`provisioner state recover`).
//!
//! Where each secret lives on the hosts is not listed here a second time: the inventory is
//! rendered once with a throw-away PKI, and each of its values is looked up in the rendered files
//! (a whole `.crt`/`.key` file, a kubeconfig's embedded client certificate or key, the encryption
//! config's secret). The same files read from the hosts then give the real values. Every copy
//! must agree, every key must match its certificate and every certificate must chain to its CA,
//! or nothing is written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine;

use crate::pki::{crt, inspect, key, pki_dir, store, Ca, Pki};
use crate::render::Rendered;

/// One value of the state directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot {
    CaCert(Ca),
    CaKey(Ca),
    LeafCert(String),
    LeafKey(String),
    ServiceAccountKey,
    ServiceAccountPub,
    EncryptionKey,
}

impl Slot {
    fn describe(&self) -> String {
        match self {
            Slot::CaCert(ca) => format!("{} certificate", ca.name()),
            Slot::CaKey(ca) => format!("{} key", ca.name()),
            Slot::LeafCert(id) => format!("{id} certificate"),
            Slot::LeafKey(id) => format!("{id} key"),
            Slot::ServiceAccountKey => "service-account private key".into(),
            Slot::ServiceAccountPub => "service-account public key".into(),
            Slot::EncryptionKey => "encryption-at-rest key".into(),
        }
    }
}

/// How a value sits in a host file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extract {
    Whole,
    KubeconfigCert,
    KubeconfigKey,
    EncryptionSecret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub host: String,
    pub path: String,
    pub how: Extract,
}

/// Every value of `pki`, by slot.
fn values(pki: &Pki) -> Vec<(Slot, String)> {
    let mut v = Vec::new();
    for ca in Ca::ALL {
        v.push((Slot::CaCert(ca), pki.ca(ca).cert.clone()));
        v.push((Slot::CaKey(ca), pki.ca(ca).key.clone()));
    }
    for (spec, pem) in pki.leaves() {
        v.push((Slot::LeafCert(spec.id()), pem.cert.clone()));
        v.push((Slot::LeafKey(spec.id()), pem.key.clone()));
    }
    v.push((Slot::ServiceAccountKey, pki.sa_key.clone()));
    v.push((Slot::ServiceAccountPub, pki.sa_pub.clone()));
    v.push((Slot::EncryptionKey, pki.encryption_key.clone()));
    v
}

/// Where each value of a throw-away `pki` ended up in `rendered` (rendered from it).
pub fn locate(rendered: &Rendered, pki: &Pki) -> BTreeMap<Slot, Vec<Location>> {
    let values = values(pki);
    let mut out: BTreeMap<Slot, Vec<Location>> = BTreeMap::new();
    for h in &rendered.hosts {
        for f in &h.files {
            let text = String::from_utf8_lossy(&f.content);
            let held: Vec<(Extract, String)> = [
                Extract::Whole,
                Extract::KubeconfigCert,
                Extract::KubeconfigKey,
                Extract::EncryptionSecret,
            ]
            .into_iter()
            .filter_map(|how| Some((how, extract(&text, how)?)))
            .collect();
            for (slot, value) in &values {
                let value = value.trim();
                let how = held
                    .iter()
                    .find(|(how, v)| {
                        v == value
                            && (*how != Extract::EncryptionSecret || *slot == Slot::EncryptionKey)
                    })
                    .map(|(how, _)| *how);
                if let Some(how) = how {
                    out.entry(slot.clone()).or_default().push(Location {
                        host: h.host.clone(),
                        path: f.path.clone(),
                        how,
                    });
                }
            }
        }
    }
    out
}

/// The value a file holds in the way `how` says, trimmed.
pub fn extract(text: &str, how: Extract) -> Option<String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(str::trim)
    };
    match how {
        Extract::Whole => Some(text.trim().to_string()),
        Extract::KubeconfigCert | Extract::KubeconfigKey => {
            let name = if how == Extract::KubeconfigCert {
                "client-certificate-data:"
            } else {
                "client-key-data:"
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(field(name)?)
                .ok()?;
            Some(String::from_utf8(bytes).ok()?.trim().to_string())
        }
        Extract::EncryptionSecret => field("secret:").map(str::to_string),
    }
}

/// What the hosts gave: host → path → content (None when the file is missing).
pub type HostFiles = BTreeMap<String, BTreeMap<String, Option<Vec<u8>>>>;

/// The recovered values, checked: every copy agrees, keys match certificates, leaves chain to
/// their CA, each CA is one certificate (not a rotation's bundle).
pub fn assemble(
    locations: &BTreeMap<Slot, Vec<Location>>,
    files: &HostFiles,
) -> Result<BTreeMap<Slot, String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut found: BTreeMap<Slot, String> = BTreeMap::new();
    // Slots already reported, so a missing one is not reported twice.
    let mut reported = std::collections::BTreeSet::new();
    for (slot, locs) in locations {
        let mut copies: Vec<(String, &Location)> = Vec::new();
        for loc in locs {
            let Some(Some(bytes)) = files.get(&loc.host).and_then(|f| f.get(&loc.path)) else {
                continue;
            };
            match extract(&String::from_utf8_lossy(bytes), loc.how) {
                Some(v) if !v.is_empty() => copies.push((v, loc)),
                _ => {
                    reported.insert(slot);
                    problems.push(format!(
                        "{}: {} does not hold the {} where it should",
                        loc.host,
                        loc.path,
                        slot.describe()
                    ));
                }
            }
        }
        let Some((first, at)) = copies.first() else {
            continue;
        };
        let differ: Vec<String> = copies
            .iter()
            .filter(|(v, _)| v != first)
            .map(|(_, l)| format!("{}:{}", l.host, l.path))
            .collect();
        if differ.is_empty() {
            found.insert(slot.clone(), first.clone());
        } else {
            reported.insert(slot);
            problems.push(format!(
                "the hosts disagree on the {}: {}:{} differs from {}",
                slot.describe(),
                at.host,
                at.path,
                differ.join(", ")
            ));
        }
    }
    for required in Ca::ALL
        .into_iter()
        .flat_map(|ca| [Slot::CaCert(ca), Slot::CaKey(ca)])
        .chain([
            Slot::ServiceAccountKey,
            Slot::ServiceAccountPub,
            Slot::EncryptionKey,
        ])
    {
        if !found.contains_key(&required) && !reported.contains(&required) {
            problems.push(format!(
                "no control-plane host holds the {}; it cannot be recovered from these hosts",
                required.describe()
            ));
        }
    }
    if problems.is_empty() {
        problems.extend(consistency(&found));
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// Keys match their certificates, leaves are signed by their CA, CAs are single certificates.
fn consistency(found: &BTreeMap<Slot, String>) -> Vec<String> {
    let mut problems = Vec::new();
    for ca in Ca::ALL {
        let (Some(cert), Some(k)) = (found.get(&Slot::CaCert(ca)), found.get(&Slot::CaKey(ca)))
        else {
            continue;
        };
        if cert.matches("BEGIN CERTIFICATE").count() != 1 {
            problems.push(format!(
                "the hosts' {} file holds several certificates: a CA rotation was in progress. \
                 Finish it from the state directory that started it, or restore that directory \
                 from a backup",
                ca.name()
            ));
        } else if !key_matches(cert, k) {
            problems.push(format!(
                "the {} key does not belong to its certificate",
                ca.name()
            ));
        }
    }
    for (slot, cert) in found {
        let Slot::LeafCert(id) = slot else { continue };
        if let Some(k) = found.get(&Slot::LeafKey(id.clone())) {
            if !key_matches(cert, k) {
                problems.push(format!("the {id} key does not belong to its certificate"));
            }
        }
        let signed = Ca::ALL.into_iter().any(|ca| {
            found
                .get(&Slot::CaCert(ca))
                .is_some_and(|c| inspect::signed_by(cert, c).unwrap_or(false))
        });
        if !signed {
            problems.push(format!(
                "the {id} certificate on the hosts is not signed by any of the hosts' CAs"
            ));
        }
    }
    if let (Some(k), Some(p)) = (
        found.get(&Slot::ServiceAccountKey),
        found.get(&Slot::ServiceAccountPub),
    ) {
        let public = rcgen::KeyPair::from_pem(k).map(|kp| kp.public_key_pem());
        if public.as_ref().map(|s| s.trim()) != Ok(p.trim()) {
            problems.push(
                "sa.pub is not the public half of sa.key (or holds two keys: a service-account \
                 rotation was in progress)"
                    .into(),
            );
        }
    }
    problems
}

/// Whether the private key `key_pem` is the one of the certificate `cert_pem`.
fn key_matches(cert_pem: &str, key_pem: &str) -> bool {
    let Ok(kp) = rcgen::KeyPair::from_pem(key_pem) else {
        return false;
    };
    let Some(Ok(pem)) = x509_parser::pem::Pem::iter_from_buffer(cert_pem.as_bytes()).next() else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    use rcgen::PublicKeyData;
    cert.tbs_certificate.subject_pki.raw == kp.subject_public_key_info().as_slice()
}

/// Writes the recovered values as a new state directory's `pki/` and `secrets/`: first into a
/// private temporary directory, then renamed into place, so a crash leaves no half directory.
/// Leaf slots are mapped to their state files by `leaf_files` (id → file stem).
pub fn write(
    state_dir: &Path,
    found: &BTreeMap<Slot, String>,
    leaf_files: &BTreeMap<String, String>,
) -> Result<()> {
    let tmp = state_dir.join(".recover.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)
            .with_context(|| format!("removing an earlier attempt's {}", tmp.display()))?;
    }
    let pki = pki_dir(&tmp);
    let with_newline = |s: &str| format!("{}\n", s.trim_end());
    for (slot, value) in found {
        let (path, mode) = match slot {
            Slot::CaCert(ca) => (crt(&pki, ca.file()), 0o644),
            Slot::CaKey(ca) => (key(&pki, ca.file()), 0o600),
            Slot::LeafCert(id) | Slot::LeafKey(id) => {
                let Some(stem) = leaf_files.get(id) else {
                    continue;
                };
                match slot {
                    Slot::LeafCert(_) => (crt(&pki, stem), 0o644),
                    _ => (key(&pki, stem), 0o600),
                }
            }
            Slot::ServiceAccountKey => (pki.join("sa.key"), 0o600),
            Slot::ServiceAccountPub => (pki.join("sa.pub"), 0o644),
            Slot::EncryptionKey => (tmp.join("secrets").join("encryption-key"), 0o600),
        };
        store::create(&path, with_newline(value).as_bytes(), mode)?;
    }
    for sub in ["pki", "secrets"] {
        let (from, to) = (tmp.join(sub), state_dir.join(sub));
        if to.exists() {
            bail!(
                "{} appeared while recovering; nothing was replaced",
                to.display()
            );
        }
        std::fs::rename(&from, &to)
            .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    }
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}

/// Each leaf certificate's file stem in the state directory, by id.
pub fn leaf_files(c: &crate::inventory::Cluster) -> BTreeMap<String, String> {
    crate::pki::spec::leaf_certs(c)
        .into_iter()
        .map(|s| (s.id(), s.state_file()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::bundled_for_test;

    struct Built {
        _dir: tempfile::TempDir,
        cluster: crate::inventory::Cluster,
        pki: Pki,
        rendered: Rendered,
    }

    fn built() -> Built {
        let dir = tempfile::tempdir().unwrap();
        let cluster = bundled_for_test(dir.path());
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let rendered = crate::render::render(&cluster, &pki).unwrap();
        Built {
            _dir: dir,
            cluster,
            pki,
            rendered,
        }
    }

    /// The hosts' files as apply would have written them.
    fn host_files(r: &Rendered) -> HostFiles {
        r.hosts
            .iter()
            .map(|h| {
                let files = h
                    .files
                    .iter()
                    .map(|f| (f.path.clone(), Some(f.content.clone())))
                    .collect();
                (h.host.clone(), files)
            })
            .collect()
    }

    fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        for sub in ["pki", "secrets"] {
            walk(root, &root.join(sub), &mut out);
        }
        out
    }

    #[test]
    fn the_hosts_give_back_the_state_directory_byte_for_byte() {
        let (real, template) = (built(), built());
        let locations = locate(&template.rendered, &template.pki);
        let found = assemble(&locations, &host_files(&real.rendered)).unwrap();
        let out = tempfile::tempdir().unwrap();
        write(out.path(), &found, &leaf_files(&real.cluster)).unwrap();
        let (want, got) = (tree(&real.cluster.state_dir), tree(out.path()));
        let missing: Vec<&String> = want.keys().filter(|k| !got.contains_key(*k)).collect();
        // The break-glass credential never goes to a host; `ensure` issues a new one.
        assert_eq!(
            missing,
            vec!["pki/super-admin.crt", "pki/super-admin.key"],
            "only what no host holds is missing"
        );
        for (k, v) in &got {
            assert_eq!(Some(v), want.get(k), "{k} differs");
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| {
            std::fs::metadata(out.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("pki/etcd/ca.key"), 0o600);
        assert_eq!(mode("secrets/encryption-key"), 0o600);
        assert_eq!(mode("pki"), 0o700);
    }

    #[test]
    fn disagreeing_hosts_are_named_and_nothing_is_assembled() {
        let (real, template) = (built(), built());
        let other = built();
        let locations = locate(&template.rendered, &template.pki);
        let mut files = host_files(&real.rendered);
        // cp-2 carries another cluster's CA.
        let ca = crate::pki::identity::host_path::ca_cert(Ca::Cluster);
        files.get_mut("cp-2").unwrap().insert(
            ca.clone(),
            Some(other.pki.ca(Ca::Cluster).cert.clone().into_bytes()),
        );
        let problems = assemble(&locations, &files).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("disagree on the ca certificate") && p.contains("cp-2")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_rotation_bundle_or_a_missing_key_is_refused() {
        let (real, template) = (built(), built());
        let locations = locate(&template.rendered, &template.pki);
        let mut files = host_files(&real.rendered);
        let ca = crate::pki::identity::host_path::ca_cert(Ca::FrontProxy);
        let key = crate::pki::identity::host_path::ca_key(Ca::Etcd);
        for h in files.values_mut() {
            if let Some(Some(c)) = h.get_mut(&ca) {
                let again = c.clone();
                c.extend_from_slice(&again);
            }
            if h.contains_key(&key) {
                h.insert(key.clone(), None);
            }
        }
        let problems = assemble(&locations, &files).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("no control-plane host holds the etcd-ca key")),
            "{problems:?}"
        );
        // With the key back, the rotation bundle is what stops it.
        for (h, f) in host_files(&real.rendered) {
            if let Some(k) = f.get(&key) {
                files.get_mut(&h).unwrap().insert(key.clone(), k.clone());
            }
        }
        let problems = assemble(&locations, &files).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("rotation was in progress")),
            "{problems:?}"
        );
    }
}
