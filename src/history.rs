//! The state directory's record of version changes: for each release, the version the hosts
//! ran before the last upgrade, which `provisioner rollback` returns them to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::pki::store;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_through_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let step = Step {
            previous: "3.6.8".into(),
            to: "3.7.0".into(),
        };
        let h = History::from([("etcd".to_string(), step)]);
        save(dir.path(), &h).unwrap();
        assert_eq!(load(dir.path()).unwrap(), h);
        std::fs::write(path(dir.path()), "[etcd]\nprevious = 1\n").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
