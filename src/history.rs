//! The state directory's record of version changes: for each release, the version the hosts
//! ran before the last upgrade, which `provisioner rollback` returns them to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::pki::store;
use crate::plan::upgrade::Move;

/// One release's last version change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub previous: String,
    pub to: String,
}

/// Release name → its last version change.
pub type History = BTreeMap<String, Step>;

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("versions.toml")
}

pub fn load(state_dir: &Path) -> Result<History> {
    let p = path(state_dir);
    match store::read(&p)? {
        None => Ok(History::new()),
        Some(text) => toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a version record; it is written by apply (see `provisioner rollback \
                 --help`)",
                p.display()
            )
        }),
    }
}

pub fn save(state_dir: &Path, h: &History) -> Result<()> {
    let text = format!(
        "# The versions each release ran before the last apply that changed it; \
         `provisioner rollback` returns the hosts to them.\n{}",
        toml::to_string(h)?
    );
    store::replace(&path(state_dir), text.as_bytes(), 0o600)
}

/// The record after an apply starts the version changes `moves`. A run that resumes an
/// interrupted upgrade (hosts on both versions, or the same target again) keeps the version
/// recorded when that upgrade began.
pub fn record(mut h: History, moves: &[Move]) -> History {
    for m in moves {
        let resumed = h.get(&m.release).is_some_and(|s| s.to == m.to);
        let mut from = m.from.iter().filter(|v| **v != m.to);
        if let (false, Some(previous), None) = (resumed, from.next(), from.next()) {
            let step = Step {
                previous: previous.clone(),
                to: m.to.clone(),
            };
            h.insert(m.release.clone(), step);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(release: &str, from: &[&str], to: &str) -> Move {
        Move {
            release: release.into(),
            from: from.iter().map(|s| s.to_string()).collect(),
            to: to.into(),
            hosts: Default::default(),
        }
    }

    #[test]
    fn an_upgrade_records_where_it_started_and_a_resumed_one_keeps_it() {
        let h = record(History::new(), &[mv("kubernetes", &["1.36.3"], "1.37.2")]);
        let want = Step {
            previous: "1.36.3".into(),
            to: "1.37.2".into(),
        };
        assert_eq!(h["kubernetes"], want);
        // Interrupted: half the hosts already run 1.37.2, the rest 1.36.3.
        let again = record(h.clone(), &[mv("kubernetes", &["1.36.3"], "1.37.2")]);
        assert_eq!(again, h);
        // The next upgrade starts from 1.37.2.
        let next = record(h, &[mv("kubernetes", &["1.37.2"], "1.38.0")]);
        assert_eq!(next["kubernetes"].previous, "1.37.2");
    }

    #[test]
    fn the_record_round_trips_through_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let h = record(History::new(), &[mv("etcd", &["3.6.8"], "3.7.0")]);
        save(dir.path(), &h).unwrap();
        assert_eq!(load(dir.path()).unwrap(), h);
        std::fs::write(path(dir.path()), "[etcd]\nprevious = 1\n").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
