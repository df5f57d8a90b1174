//! The cluster's PKI, kept in the state directory.
//!
//! `ensure` creates what is missing and reuses everything else. It never replaces a CA, a key
//! or a certificate: when the inventory changes an identity (a new SAN, a renamed node), the
//! existing certificate is reported as stale and stays in use until the operator replaces it
//! explicitly with `provisioner certs regenerate`.

pub mod identity;
pub mod inspect;
mod issue;
mod report;
pub mod rotation;
pub mod spec;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine;

use crate::inventory::Cluster;
pub use report::{existing, Report};
pub use spec::{Ca, Cert, CertSpec, ADMIN_GROUP, KUBE_ROUTER_USER};

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// Everything secret the cluster is built from.
pub struct Pki {
    cas: BTreeMap<Ca, Pem>,
    leaves: Vec<(CertSpec, Pem)>,
    /// Service-account token signing key pair (PKCS#8 private key, SPKI public key).
    pub sa_key: String,
    pub sa_pub: String,
    /// 32 random bytes, base64: the secretbox key for encryption at rest.
    pub encryption_key: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material never reaches logs or error messages.
        f.debug_struct("Pki")
            .field("leaves", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

impl Pki {
    pub fn ca(&self, ca: Ca) -> &Pem {
        &self.cas[&ca]
    }

    /// The certificate `name` (for `host`, for per-host ones).
    pub fn leaf(&self, name: Cert, host: Option<&str>) -> &Pem {
        self.leaves
            .iter()
            .find(|(s, _)| s.name == name && s.host.as_deref() == host)
            .map(|(_, p)| p)
            .unwrap_or_else(|| {
                panic!("no certificate {name} for {host:?}: spec and render disagree")
            })
    }

    /// Every leaf certificate with its spec.
    pub fn leaves(&self) -> impl Iterator<Item = &(CertSpec, Pem)> {
        self.leaves.iter()
    }

    /// Issues new keys and certificates from the same CAs for the leaves `ids` (as
    /// [`CertSpec::id`] names them), in memory: [`save_leaves`] writes them to the state directory.
    pub fn reissue(&mut self, cluster: &Cluster, ids: &[String]) -> Result<()> {
        for (spec, pem) in self.leaves.iter_mut() {
            if ids.contains(&spec.id()) {
                *pem = issue::new_leaf(spec, &self.cas[&spec.ca], &cluster.pki)?;
            }
        }
        Ok(())
    }
}

/// Replaces the state directory's copies of the leaves `ids` with those of `pki`. The caller has
/// made a backup first: unlike everything else here, this overwrites keys.
pub fn save_leaves(cluster: &Cluster, pki: &Pki, ids: &[String]) -> Result<()> {
    let dir = pki_dir(&cluster.state_dir);
    let changes: Vec<store::Change> = pki
        .leaves()
        .filter(|(spec, _)| ids.contains(&spec.id()))
        .flat_map(|(spec, pem)| pair_changes(&dir, &spec.state_file(), pem))
        .collect();
    store::commit(&dir, store::Mode::Replace, &changes)
}

/// Copies the state directory's PKI and secrets to `state_dir/backups/<timestamp>/`, with their
/// modes, and removes all but the newest `keep` backups. Returns the backup's path.
pub fn backup(state_dir: &Path, keep: usize) -> Result<PathBuf> {
    let t = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    );
    let root = state_dir.join("backups");
    let dest = root.join(stamp);
    for sub in ["pki", "secrets"] {
        copy_tree(&state_dir.join(sub), &dest.join(sub))?;
    }
    // Fixed-width timestamps sort as names: the one just made is the newest.
    let mut all: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("reading {}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    all.sort();
    let old = all.len().saturating_sub(keep.max(1));
    for p in &all[..old] {
        std::fs::remove_dir_all(p)
            .with_context(|| format!("removing the old backup {}", p.display()))?;
    }
    Ok(dest)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    store::ensure_private_dir(to)?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in entries {
        let e = e.with_context(|| format!("reading {}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            let mode = e.metadata()?.permissions().mode() & 0o777;
            let data = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            store::create(&dst, &data, mode)?;
        }
    }
    Ok(())
}

pub fn pki_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pki")
}

pub(crate) fn crt(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.crt"))
}

pub(crate) fn key(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.key"))
}

/// Loads the PKI, creating whatever is missing.
pub fn ensure(cluster: &Cluster) -> Result<(Pki, Report)> {
    store::ensure_private_dir(&cluster.state_dir)?;
    let dir = pki_dir(&cluster.state_dir);
    store::recover(&dir)?;
    store::recover(&dir.join("rotation"))?;
    let mut report = Report::default();
    let first_run = !crt(&dir, Ca::Cluster.file()).exists();

    let mut cas = BTreeMap::new();
    for ca in Ca::ALL {
        let pem = match load_pair(&dir, ca.file())? {
            Some(pem) => pem,
            None if first_run || !any_leaf_signed_by(&dir, ca) => {
                let pem = issue::new_ca(ca, &cluster.pki)?;
                save_pair(&dir, ca.file(), &pem)?;
                report.created.push(ca.name().to_string());
                pem
            }
            None => bail!(
                "the {} certificate authority is missing from {} but certificates it signed are still there; \
                 restore {}.crt and {}.key from a backup of the state directory (a new CA would not be trusted by the running cluster)",
                ca.name(),
                dir.display(),
                ca.file(),
                ca.file()
            ),
        };
        cas.insert(ca, pem);
    }
    rotation::overlay(&dir, &mut cas)?;

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let alg = cluster.pki.algorithm.as_str();
    let mut leaves = Vec::new();
    let mut new_leaves = Vec::new();
    let mut reissued = Vec::new();
    for spec in spec::leaf_certs(cluster) {
        let stem = spec.state_file();
        let pem = match load_pair(&dir, &stem)? {
            Some(pem) => {
                let (_, why) = check_leaf(&spec, &pem.cert, Some(&cas[&spec.ca].cert), alg, now)
                    .with_context(|| format!("reading {}", crt(&dir, &stem).display()))?;
                if why.is_empty() {
                    pem
                } else if names_only_new_control_planes(&spec, &why, cluster) {
                    let pem = issue::new_leaf(&spec, &cas[&spec.ca], &cluster.pki)?;
                    reissued.extend(pair_changes(&dir, &stem, &pem));
                    report.reissued.push((spec.id(), why));
                    pem
                } else {
                    report.stale.push((spec.id(), why));
                    pem
                }
            }
            None => {
                let pem = issue::new_leaf(&spec, &cas[&spec.ca], &cluster.pki)?;
                new_leaves.extend(pair_changes(&dir, &stem, &pem));
                report.issued.push(spec.id());
                pem
            }
        };
        leaves.push((spec, pem));
    }
    // The new leaves are written together: many certificates, one journal, a few syncs.
    store::commit(&dir, store::Mode::Create, &new_leaves)?;
    store::commit(&dir, store::Mode::Replace, &reissued)?;

    let (mut sa_key, mut sa_pub) = match (store::read(&dir.join("sa.key"))?, store::read(&dir.join("sa.pub"))?) {
        (Some(k), Some(p)) => (k, p),
        (None, None) => {
            let kp = issue::new_key(cluster.pki.algorithm)?;
            let (k, p) = (kp.serialize_pem(), kp.public_key_pem());
            save_service_account(&dir, &k, &p)?;
            report.created.push("service-account key pair".into());
            (k, p)
        }
        _ => bail!(
            "only one half of the service-account key pair (sa.key, sa.pub) is in {}; restore the other from a backup",
            dir.display()
        ),
    };
    rotation::overlay_service_account(&dir, &mut sa_key, &mut sa_pub)?;

    let enc_path = cluster.state_dir.join("secrets").join("encryption-key");
    let encryption_key = match store::read(&enc_path)? {
        Some(k) => k.trim().to_string(),
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).context("reading the system's random source")?;
            let k = base64::engine::general_purpose::STANDARD.encode(bytes);
            store::create(&enc_path, format!("{k}\n").as_bytes(), 0o600)?;
            report.created.push("encryption-at-rest key".into());
            k
        }
    };

    Ok((
        Pki {
            cas,
            leaves,
            sa_key,
            sa_pub,
            encryption_key,
        },
        report,
    ))
}

/// Reads a leaf certificate and says why it no longer matches its spec (empty when it does).
fn check_leaf(
    spec: &CertSpec,
    cert: &str,
    ca: Option<&str>,
    alg: &str,
    now: i64,
) -> Result<(inspect::CertInfo, Vec<String>)> {
    let info = inspect::parse(cert)?;
    let mut why = inspect::differences(spec, &info, alg, now);
    if let Some(ca) = ca {
        if !inspect::signed_by(cert, ca)? {
            why.push(format!("not signed by the current {}", spec.ca.name()));
        }
    }
    Ok((info, why))
}

pub(crate) fn load_pair(dir: &Path, stem: &str) -> Result<Option<Pem>> {
    match (store::read(&crt(dir, stem))?, store::read(&key(dir, stem))?) {
        (Some(cert), Some(key)) => Ok(Some(Pem { cert, key })),
        (None, None) => Ok(None),
        (Some(_), None) => bail!(
            "{} exists without its key {}; restore the key from a backup, or move the certificate away to have both issued anew",
            crt(dir, stem).display(),
            key(dir, stem).display()
        ),
        (None, Some(_)) => bail!(
            "{} exists without its certificate {}; restore it from a backup, or move the key away to have both issued anew",
            key(dir, stem).display(),
            crt(dir, stem).display()
        ),
    }
}

/// A certificate and its key, written together (never one without the other), never replacing.
pub(crate) fn save_pair(dir: &Path, stem: &str, pem: &Pem) -> Result<()> {
    store::commit(dir, store::Mode::Create, &pair_changes(dir, stem, pem))
}

/// The service-account key pair, written together, never replacing.
pub(crate) fn save_service_account(dir: &Path, key: &str, public: &str) -> Result<()> {
    store::commit(
        dir,
        store::Mode::Create,
        &service_account_changes(dir, key, public),
    )
}

/// The two files of the service-account key pair.
pub(crate) fn service_account_changes(dir: &Path, key: &str, public: &str) -> [store::Change; 2] {
    [
        store::Change::Write {
            path: dir.join("sa.key"),
            content: key.as_bytes().to_vec(),
            mode: 0o600,
        },
        store::Change::Write {
            path: dir.join("sa.pub"),
            content: public.as_bytes().to_vec(),
            mode: 0o644,
        },
    ]
}

/// The two files of a certificate and its key.
/// Whether all `spec` lacks is SANs of control-plane hosts: the API server certificate of a
/// cluster that gained a control-plane host, which that host's API server needs, and which
/// is reissued rather than left stale (the old one stays valid until its servers restart).
fn names_only_new_control_planes(spec: &CertSpec, why: &[String], c: &Cluster) -> bool {
    spec.name == Cert::Apiserver
        && why.iter().all(|w| {
            c.control_plane_hosts().any(|h| {
                *w == format!("missing SAN DNS:{}", h.name)
                    || *w == format!("missing SAN IP:{}", h.internal_ip)
            })
        })
}

pub(crate) fn pair_changes(dir: &Path, stem: &str, pem: &Pem) -> [store::Change; 2] {
    [
        store::Change::Write {
            path: key(dir, stem),
            content: pem.key.as_bytes().to_vec(),
            mode: 0o600,
        },
        store::Change::Write {
            path: crt(dir, stem),
            content: pem.cert.as_bytes().to_vec(),
            mode: 0o644,
        },
    ]
}

/// Whether any certificate file in the state directory names this CA as issuer: if so, the CA
/// went missing rather than never existing.
fn any_leaf_signed_by(dir: &Path, ca: Ca) -> bool {
    fn walk(dir: &Path, cn: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p, cn)
            } else {
                p.extension().is_some_and(|x| x == "crt")
                    && std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|t| inspect::parse(&t).ok())
                        .is_some_and(|i| !i.is_ca && i.issuer.contains(cn))
            }
        })
    }
    walk(dir, &format!("CN={}", ca.common_name()))
}

/// One row of `certs list`: what the state directory holds for each certificate the cluster needs.
#[derive(Debug, serde::Serialize)]
pub struct Listed {
    pub name: String,
    pub host: Option<String>,
    pub file: String,
    /// None when the certificate has not been issued yet.
    pub info: Option<inspect::CertInfo>,
    pub stale: Vec<String>,
}

impl Listed {
    /// `apiserver`, or `etcd-server@cp-1` for a per-host certificate, as [`CertSpec::id`].
    pub fn id(&self) -> String {
        match &self.host {
            Some(h) => format!("{}@{h}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Lists the CAs and leaf certificates without creating anything.
pub fn list(cluster: &Cluster) -> Result<Vec<Listed>> {
    let dir = pki_dir(&cluster.state_dir);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut rows = Vec::new();
    let mut pairs = BTreeMap::new();
    for ca in Ca::ALL {
        if let Some(pem) = load_pair(&dir, ca.file())? {
            pairs.insert(ca, pem);
        }
    }
    rotation::overlay(&dir, &mut pairs)?;
    let ca_pems: BTreeMap<Ca, String> = pairs.into_iter().map(|(ca, p)| (ca, p.cert)).collect();
    for ca in Ca::ALL {
        let path = crt(&dir, ca.file());
        let info = match ca_pems.get(&ca) {
            Some(pem) => {
                Some(inspect::parse(pem).with_context(|| format!("reading {}", path.display()))?)
            }
            None => None,
        };
        rows.push(Listed {
            name: ca.name().to_string(),
            host: None,
            file: path.display().to_string(),
            info,
            stale: Vec::new(),
        });
    }
    for spec in spec::leaf_certs(cluster) {
        let path = crt(&dir, &spec.state_file());
        let (info, stale) = match store::read(&path)? {
            Some(pem) => {
                let (info, why) = check_leaf(
                    &spec,
                    &pem,
                    ca_pems.get(&spec.ca).map(String::as_str),
                    cluster.pki.algorithm.as_str(),
                    now,
                )
                .with_context(|| format!("reading {}", path.display()))?;
                (Some(info), why)
            }
            None => (None, Vec::new()),
        };
        rows.push(Listed {
            name: spec.name.to_string(),
            host: spec.host.clone(),
            file: path.display().to_string(),
            info,
            stale,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod backup_tests {
    #[test]
    fn backups_are_pruned_to_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::inventory::bundled_for_test(dir.path());
        super::ensure(&c).unwrap();
        let made: Vec<_> = (0..4)
            .map(|_| super::backup(&c.state_dir, 2).unwrap())
            .collect();
        let mut left: Vec<_> = std::fs::read_dir(c.state_dir.join("backups"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        assert_eq!(left, made[2..].to_vec());
        assert!(made[3].join("pki/ca.key").is_file());
    }
}
