//! Whether the hosts belong to the cluster the state directory describes. Checked before anything
//! is planned or written: outside a recorded rotation, a host carrying a CA, service-account key
//! or encryption key that the state directory does not know refuses the whole run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::pki::identity::{self, Identity, Known};

/// Exit code of `plan`, `apply` and the rollouts when the hosts' identity differs from the
/// state directory's.
pub const EXIT_IDENTITY: u8 = 5;

/// The script that reads a host's identity: [`parse`] reads its output.
pub fn probe() -> String {
    let public: Vec<String> = Identity::ALL
        .into_iter()
        .filter(|i| *i != Identity::EncryptionKey)
        .map(Identity::host_path)
        .collect();
    crate::shell::identity_probe(&public, &Identity::EncryptionKey.host_path())
}

/// What one host carries: each identity present, with its fingerprints (a CA file holds two
/// during a rotation), or the reason it could not be read.
pub type HostIdentity = BTreeMap<Identity, Result<Vec<String>, String>>;

pub fn parse(output: &str) -> HostIdentity {
    let by_path: BTreeMap<String, Identity> = Identity::ALL
        .into_iter()
        .map(|i| (i.host_path(), i))
        .collect();
    let mut pem: BTreeMap<Identity, String> = BTreeMap::new();
    let mut out = HostIdentity::new();
    for line in output.lines() {
        if let Some(hash) = line.strip_prefix("enc ") {
            if let Ok(v) = out
                .entry(Identity::EncryptionKey)
                .or_insert_with(|| Ok(Vec::new()))
            {
                v.push(hash.trim().to_string());
            }
        } else if let Some(rest) = line.strip_prefix("pem ") {
            let Some((path, text)) = rest.split_once(' ') else {
                continue;
            };
            if let Some(id) = by_path.get(path) {
                let body = pem.entry(*id).or_default();
                body.push_str(text);
                body.push('\n');
            }
        }
    }
    for (id, text) in pem {
        let fps = identity::pem_fingerprints(&text)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                if f.is_empty() {
                    Err("no PEM block in it".to_string())
                } else {
                    Ok(f)
                }
            });
        out.insert(id, fps);
    }
    out
}

/// The hosts' identities compared with the state directory's: one line per difference.
pub fn check(known: &Known, hosts: &[(String, HostIdentity)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (host, ids) in hosts {
        for (id, fps) in ids {
            let path = id.host_path();
            let fps = match fps {
                Ok(f) => f,
                Err(e) => {
                    problems.push(format!(
                        "{host}: {path} cannot be read as a {} ({e})",
                        id.describe()
                    ));
                    continue;
                }
            };
            for fp in fps.iter().filter(|fp| !known.knows(*id, fp)) {
                let state = if known.fingerprints.get(id).is_none_or(|s| s.is_empty()) {
                    "the state directory has none"
                } else {
                    "the state directory's differs"
                };
                problems.push(format!(
                    "{host}: {path} holds a {} (sha256 {}...) that is not this state directory's ({state})",
                    id.describe(),
                    identity::short(fp)
                ));
            }
        }
    }
    problems
}

/// The hosts carry another cluster's identity than the state directory: nothing may be written.
#[derive(Debug)]
pub struct Mismatch {
    pub state_dir: PathBuf,
    pub problems: Vec<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the hosts belong to a cluster that the state directory {} did not build; nothing was changed:",
            self.state_dir.display()
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        write!(
            f,
            "Going on would replace the running cluster's CAs and keys: every certificate would stop \
             being trusted and every Secret in etcd would become unreadable.\n\
             Fix: use the state directory that built this cluster (state_dir in the inventory), or move \
             this one away and rebuild it from the hosts with `provisioner state recover INVENTORY`."
        )
    }
}

impl std::error::Error for Mismatch {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Ca;

    fn known_with(id: Identity, fps: &[&str]) -> Known {
        let mut k = Known::default();
        k.fingerprints
            .insert(id, fps.iter().map(|s| s.to_string()).collect());
        k
    }

    fn pem_lines(path: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("pem {path} -----BEGIN CERTIFICATE-----\npem {path} {b64}\npem {path} -----END CERTIFICATE-----\n")
    }

    #[test]
    fn parses_pem_blocks_and_hashes_per_identity() {
        let ca = Identity::Ca(Ca::Cluster).host_path();
        let out = format!(
            "{}{}enc abc\n",
            pem_lines(&ca, b"one"),
            pem_lines(&ca, b"two")
        );
        let h = parse(&out);
        let sha = crate::digest::sha256_hex;
        assert_eq!(
            h[&Identity::Ca(Ca::Cluster)],
            Ok(vec![sha(b"one"), sha(b"two")])
        );
        assert_eq!(h[&Identity::EncryptionKey], Ok(vec!["abc".to_string()]));
        assert!(!h.contains_key(&Identity::ServiceAccountKey));
    }

    #[test]
    fn a_fresh_host_and_a_matching_host_pass_a_foreign_one_is_named() {
        let sha = crate::digest::sha256_hex;
        let ca = Identity::Ca(Ca::Cluster);
        let known = known_with(ca, &[&sha(b"ours")]);
        let ours = parse(&pem_lines(&ca.host_path(), b"ours"));
        let theirs = parse(&format!(
            "{}enc {}\n",
            pem_lines(&ca.host_path(), b"theirs"),
            sha(b"k")
        ));
        let hosts = vec![
            ("fresh".to_string(), HostIdentity::new()),
            ("good".to_string(), ours),
            ("other".to_string(), theirs),
        ];
        let p = check(&known, &hosts);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("other: /etc/kubernetes/pki/ca.crt holds a cluster CA"));
        assert!(p[0].contains("the state directory's differs"), "{}", p[0]);
        assert!(p[1].contains("encryption-at-rest key") && p[1].contains("has none"));
    }

    #[test]
    fn an_empty_state_directory_refuses_a_host_that_has_a_cluster() {
        let sha = crate::digest::sha256_hex;
        let id = Identity::Ca(Ca::Etcd);
        let hosts = vec![("cp-1".to_string(), parse(&pem_lines(&id.host_path(), b"x")))];
        let p = check(&Known::default(), &hosts);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains(&sha(b"x")[..16]), "{}", p[0]);
    }

    #[test]
    fn a_damaged_file_is_reported_not_ignored() {
        let path = Identity::ServiceAccountKey.host_path();
        let h = parse(&format!("pem {path} garbage\n"));
        let p = check(&Known::default(), &[("cp-1".into(), h)]);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("cannot be read"), "{}", p[0]);
    }
}
