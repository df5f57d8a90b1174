//! A CA rotation in progress, recorded in `pki/rotation.toml` so that an interrupted rotation
//! continues where it stopped. The new CAs wait in `pki/rotation/` until the last stage.
//!
//! Stage 1: every trust bundle carries the old CA and the new one; the old one still signs.
//! Stage 2: the new CA signs (first in the bundles) and every leaf is reissued from it.
//! Stage 3: the old CA leaves every bundle; the new one replaces it in the state directory.
//!
//! The service-account key pair rotates the same way: the API server accepts tokens signed by
//! either key (stage 1), the new key signs (stage 2), and the old public key is dropped (stage 3)
//! only once the tokens it signed have expired.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{load_pair, save_pair, save_service_account, store, Ca, Pem};
use crate::inventory::PkiSettings;

/// What a rotation replaces: a CA, or the service-account key pair. Recorded by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Rotated {
    Ca(Ca),
    ServiceAccount,
}

impl Rotated {
    /// What `cas` and `service_account` ask for, in the record's order.
    pub fn list(cas: &[Ca], service_account: bool) -> Vec<Rotated> {
        let mut list: Vec<Rotated> = cas.iter().map(|c| Rotated::Ca(*c)).collect();
        if service_account {
            list.push(Rotated::ServiceAccount);
        }
        list
    }

    /// The name in the record and in messages: the CA's (`ca`, `etcd-ca`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Rotated::Ca(ca) => ca.name(),
            Rotated::ServiceAccount => "service-account",
        }
    }

    /// The `certs rotate-ca --ca` value that names it alone.
    pub fn option(self) -> &'static str {
        match self {
            Rotated::Ca(Ca::Cluster) => "cluster",
            Rotated::Ca(Ca::Etcd) => "etcd",
            Rotated::Ca(Ca::FrontProxy) => "front-proxy",
            Rotated::ServiceAccount => "service-account",
        }
    }
}

impl TryFrom<String> for Rotated {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        Ca::ALL
            .into_iter()
            .map(Rotated::Ca)
            .chain([Rotated::ServiceAccount])
            .find(|r| r.name() == name)
            .ok_or_else(|| format!("unknown CA or key pair {name:?}"))
    }
}

impl From<Rotated> for String {
    fn from(r: Rotated) -> String {
        r.name().to_string()
    }
}

/// A stage of a rotation, recorded by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Stage {
    /// Every trust bundle carries the old CA and the new one; the old one still signs.
    TrustBoth = 1,
    /// The new CA signs and every leaf is reissued from it.
    NewSigns = 2,
    /// The old CA leaves every bundle.
    DropOld = 3,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::TrustBoth, Stage::NewSigns, Stage::DropOld];

    pub fn number(self) -> u8 {
        self as u8
    }

    /// What the stage does, as the operator reads it.
    pub fn description(self) -> &'static str {
        match self {
            Stage::TrustBoth => "trust the new CA beside the old one",
            Stage::NewSigns => "reissue every certificate from the new CA",
            Stage::DropOld => "stop trusting the old CA",
        }
    }

    /// The stage after this one, None after the last.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::TrustBoth => Some(Stage::NewSigns),
            Stage::NewSigns => Some(Stage::DropOld),
            Stage::DropOld => None,
        }
    }
}

impl From<Stage> for u8 {
    fn from(s: Stage) -> u8 {
        s.number()
    }
}

impl TryFrom<u8> for Stage {
    type Error = String;

    fn try_from(n: u8) -> Result<Stage, String> {
        Stage::ALL
            .into_iter()
            .find(|s| s.number() == n)
            .ok_or_else(|| format!("stage {n} does not exist"))
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// What is being rotated, by name (`ca`, `etcd-ca`, `front-proxy-ca`, `service-account`).
    pub cas: Vec<Rotated>,
    /// The stage to roll out next.
    pub stage: Stage,
    /// When stage 2 of a service-account rotation was done (Unix time): tokens signed by the old
    /// key may live on for their lifetime after that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_key_signing_since: Option<i64>,
    /// The `--token-lifetime` in force when the new key started signing: stage 3 waits for it,
    /// whatever a resumed run's command line says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_secs: Option<u64>,
}

impl Rotation {
    pub fn includes(&self, ca: Ca) -> bool {
        self.cas.contains(&Rotated::Ca(ca))
    }

    pub fn includes_service_account(&self) -> bool {
        self.cas.contains(&Rotated::ServiceAccount)
    }

    /// The `certs rotate-ca --ca` value that continues it.
    pub fn option(&self) -> &'static str {
        if self.cas == Rotated::list(&Ca::ALL, false) {
            return "all";
        }
        self.cas.first().map_or("all", |r| r.option())
    }
}

fn record(pki_dir: &Path) -> PathBuf {
    pki_dir.join("rotation.toml")
}

fn next_dir(pki_dir: &Path) -> PathBuf {
    pki_dir.join("rotation")
}

pub fn read(pki_dir: &Path) -> Result<Option<Rotation>> {
    let path = record(pki_dir);
    match store::read(&path)? {
        None => Ok(None),
        Some(text) => {
            let r: Rotation =
                toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
            Ok(Some(r))
        }
    }
}

pub fn write(pki_dir: &Path, r: &Rotation) -> Result<()> {
    store::replace(&record(pki_dir), toml::to_string(r)?.as_bytes(), 0o600)
}

/// Creates the new CAs and service-account key pair (keeping any a previous, interrupted start
/// already made) and records stage 1.
pub fn start(
    pki_dir: &Path,
    cas: &[Ca],
    service_account: bool,
    settings: &PkiSettings,
) -> Result<Rotation> {
    let next = next_dir(pki_dir);
    store::recover(&next)?;
    // What a rotation finished by a run that crashed before it removed `rotation/` left there is
    // the current CA or key: it is removed, never taken as the next one.
    for ca in cas {
        if let (Some(n), Some(cur)) = (load_pair(&next, ca.file())?, load_pair(pki_dir, ca.file())?)
        {
            if n.cert == cur.cert {
                remove_pair(&next, ca.file())?;
            }
        }
        if load_pair(&next, ca.file())?.is_none() {
            save_pair(&next, ca.file(), &super::issue::new_ca(*ca, settings)?)?;
        }
    }
    if service_account {
        if let (Some(n), Some(cur)) = (
            store::read(&next.join("sa.pub"))?,
            store::read(&pki_dir.join("sa.pub"))?,
        ) {
            if n == cur {
                remove_service_account(&next)?;
            }
        }
        if store::read(&next.join("sa.key"))?.is_none() {
            let kp = super::issue::new_key(settings.algorithm)?;
            save_service_account(&next, &kp.serialize_pem(), &kp.public_key_pem())?;
        }
    }
    let r = Rotation {
        cas: Rotated::list(cas, service_account),
        stage: Stage::TrustBoth,
        new_key_signing_since: None,
        token_lifetime_secs: None,
    };
    write(pki_dir, &r)?;
    Ok(r)
}

/// Replaces each rotated CA with its successor in the state directory and ends the rotation.
pub fn finish(pki_dir: &Path, r: &Rotation) -> Result<()> {
    let next = next_dir(pki_dir);
    // The new CAs take the old ones' place and the record goes, in one journal: a crash leaves
    // either the rotation at stage 3 or the rotation done, never a half.
    let mut changes = Vec::new();
    for ca in Ca::ALL.into_iter().filter(|c| r.includes(*c)) {
        let new = load_pair(&next, ca.file())?
            .with_context(|| format!("the new {} is missing from {}", ca.name(), next.display()))?;
        changes.extend(super::pair_changes(pki_dir, ca.file(), &new));
    }
    if r.includes_service_account() {
        let (key, public) = new_service_account(&next)?;
        changes.extend(super::service_account_changes(pki_dir, &key, &public));
    }
    changes.push(store::Change::Remove(record(pki_dir)));
    store::commit(pki_dir, store::Mode::Replace, &changes)?;
    std::fs::remove_dir_all(&next).with_context(|| format!("removing {}", next.display()))
}

fn remove_pair(dir: &Path, stem: &str) -> Result<()> {
    store::commit(
        dir,
        store::Mode::Replace,
        &[
            store::Change::Remove(super::crt(dir, stem)),
            store::Change::Remove(super::key(dir, stem)),
        ],
    )
}

fn remove_service_account(dir: &Path) -> Result<()> {
    store::commit(
        dir,
        store::Mode::Replace,
        &[
            store::Change::Remove(dir.join("sa.pub")),
            store::Change::Remove(dir.join("sa.key")),
        ],
    )
}

/// What each rotated CA is during the recorded stage: the trust bundle (signing CA first) and
/// the signing key.
pub fn overlay(pki_dir: &Path, cas: &mut BTreeMap<Ca, Pem>) -> Result<()> {
    let Some(r) = read(pki_dir)? else {
        return Ok(());
    };
    let next = next_dir(pki_dir);
    for ca in Ca::ALL.into_iter().filter(|c| r.includes(*c)) {
        let new = load_pair(&next, ca.file())?.with_context(|| {
            format!(
                "a rotation of {} is recorded but the new CA is missing from {}; restore it from \
                 the backup taken when the rotation started",
                ca.name(),
                next.display()
            )
        })?;
        let Some(old) = cas.get(&ca) else { continue };
        let both =
            |first: &Pem, second: &Pem| format!("{}\n{}\n", first.cert.trim(), second.cert.trim());
        let pem = match r.stage {
            Stage::TrustBoth => Pem {
                cert: both(old, &new),
                key: old.key.clone(),
            },
            Stage::NewSigns => Pem {
                cert: both(&new, old),
                key: new.key.clone(),
            },
            Stage::DropOld => new,
        };
        cas.insert(ca, pem);
    }
    Ok(())
}

fn new_service_account(next: &Path) -> Result<(String, String)> {
    match (
        store::read(&next.join("sa.key"))?,
        store::read(&next.join("sa.pub"))?,
    ) {
        (Some(k), Some(p)) => Ok((k, p)),
        _ => bail!(
            "a rotation of the service-account key is recorded but the new key pair is missing \
             from {}; restore it from the backup taken when the rotation started",
            next.display()
        ),
    }
}

/// What the service-account key pair is during the recorded stage: the signing key and the
/// public keys the API server accepts (the signing one first).
pub fn overlay_service_account(
    pki_dir: &Path,
    key: &mut String,
    public: &mut String,
) -> Result<()> {
    let Some(r) = read(pki_dir)?.filter(Rotation::includes_service_account) else {
        return Ok(());
    };
    let (new_key, new_pub) = new_service_account(&next_dir(pki_dir))?;
    let both = |a: &str, b: &str| format!("{}\n{}\n", a.trim(), b.trim());
    match r.stage {
        Stage::TrustBoth => *public = both(public, &new_pub),
        Stage::NewSigns => {
            *public = both(&new_pub, public);
            *key = new_key;
        }
        Stage::DropOld => {
            *public = new_pub;
            *key = new_key;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_record_names_what_it_rotates_and_the_option_that_continues_it() {
        let r = |cas: &[Ca], sa: bool| Rotation {
            cas: Rotated::list(cas, sa),
            stage: Stage::NewSigns,
            new_key_signing_since: None,
            token_lifetime_secs: None,
        };
        let all = r(&Ca::ALL, false);
        let text = toml::to_string(&all).unwrap();
        assert!(
            text.contains(r#"cas = ["ca", "etcd-ca", "front-proxy-ca"]"#),
            "{text}"
        );
        assert_eq!(toml::from_str::<Rotation>(&text).unwrap(), all);
        assert_eq!(all.option(), "all");
        assert_eq!(r(&[Ca::Etcd], false).option(), "etcd");
        assert_eq!(r(&[], true).option(), "service-account");
        assert!(r(&[], true).includes_service_account() && !all.includes_service_account());
        let unknown = text.replace("etcd-ca", "other-ca");
        assert!(toml::from_str::<Rotation>(&unknown).is_err());
    }

    use super::*;
    use crate::pki::{ensure, inspect, pki_dir, save_leaves};

    #[test]
    fn each_stage_trusts_and_signs_with_the_right_ca() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        let c = &cluster;
        let (before, _) = ensure(c).unwrap();
        let old = before.ca(Ca::Etcd).cert.clone();
        let pki = pki_dir(&c.state_dir);
        let mut r = start(&pki, &[Ca::Etcd], true, &c.pki).unwrap();
        let new = load_pair(&next_dir(&pki), Ca::Etcd.file())
            .unwrap()
            .unwrap()
            .cert;

        // Stage 1: both trusted, the old one first (it still signs); nothing is stale.
        let (p, report) = ensure(c).unwrap();
        assert_eq!(
            p.sa_key, before.sa_key,
            "the old service-account key still signs"
        );
        assert!(p.sa_pub.starts_with(before.sa_pub.trim()));
        assert_eq!(p.sa_pub.matches("BEGIN PUBLIC KEY").count(), 2);
        assert_eq!(p.ca(Ca::Etcd).cert.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(p.ca(Ca::Etcd).cert.starts_with(old.trim()));
        assert_eq!(
            p.ca(Ca::Cluster).cert,
            before.ca(Ca::Cluster).cert,
            "only etcd rotates"
        );
        assert!(report.stale.is_empty(), "{:?}", report.stale);

        // Stage 2: the new one signs; the old leaves are stale until reissued.
        r.stage = Stage::NewSigns;
        write(&pki, &r).unwrap();
        let (mut p, report) = ensure(c).unwrap();
        assert!(p.ca(Ca::Etcd).cert.starts_with(new.trim()));
        assert_ne!(p.sa_key, before.sa_key, "the new service-account key signs");
        assert!(p.sa_pub.ends_with(&format!("{}\n", before.sa_pub.trim())));
        let stale: Vec<&str> = report.stale.iter().map(|(id, _)| id.as_str()).collect();
        assert!(
            stale.contains(&"etcd-server@cp-1") && !stale.contains(&"apiserver"),
            "{stale:?}"
        );
        let ids: Vec<String> = stale.iter().map(|s| s.to_string()).collect();
        p.reissue(c, &ids).unwrap();
        save_leaves(c, &p, &ids).unwrap();
        let server = &p.leaf(crate::pki::Cert::EtcdServer, Some("cp-1")).cert;
        assert!(inspect::signed_by(server, &new).unwrap());
        assert!(!inspect::signed_by(server, &old).unwrap());
        assert!(ensure(c).unwrap().1.stale.is_empty());

        // Stage 3, then finished: the new CA alone, in the state directory's own files.
        r.stage = Stage::DropOld;
        write(&pki, &r).unwrap();
        assert_eq!(ensure(c).unwrap().0.ca(Ca::Etcd).cert.trim(), new.trim());
        finish(&pki, &r).unwrap();
        assert!(read(&pki).unwrap().is_none() && !next_dir(&pki).exists());
        let (after, report) = ensure(c).unwrap();
        assert_eq!(after.ca(Ca::Etcd).cert.trim(), new.trim());
        assert_eq!(after.sa_pub.matches("BEGIN PUBLIC KEY").count(), 1);
        assert_ne!(after.sa_pub, before.sa_pub);
        assert!(report.stale.is_empty() && report.created.is_empty());
    }

    /// A run that finished a rotation but crashed before removing `rotation/` leaves the current
    /// CA and key pair there: the next rotation must make new ones, not rotate to the same.
    #[test]
    fn a_leftover_of_a_finished_rotation_is_not_taken_as_the_next_ca() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::inventory::bundled_for_test(dir.path());
        let (before, _) = ensure(&c).unwrap();
        let pki = pki_dir(&c.state_dir);
        let next = next_dir(&pki);
        save_pair(&next, Ca::Cluster.file(), before.ca(Ca::Cluster)).unwrap();
        save_service_account(&next, &before.sa_key, &before.sa_pub).unwrap();
        start(&pki, &[Ca::Cluster], true, &c.pki).unwrap();
        let new = load_pair(&next, Ca::Cluster.file()).unwrap().unwrap();
        assert_ne!(new.cert, before.ca(Ca::Cluster).cert);
        assert_ne!(
            store::read(&next.join("sa.pub")).unwrap().unwrap(),
            before.sa_pub
        );
    }

    #[test]
    fn the_token_lifetime_is_recorded_with_the_stage() {
        let r = Rotation {
            cas: vec![Rotated::ServiceAccount],
            stage: Stage::DropOld,
            new_key_signing_since: Some(100),
            token_lifetime_secs: Some(4200),
        };
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &r).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(r));
    }
}
