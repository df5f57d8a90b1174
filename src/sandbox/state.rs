//! What `up` made, written as it goes, so `down` can remove it after any failure.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

const FILE: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct State {
    pub version: u32,
    /// Prefix of every namespace, interface and cgroup name.
    pub prefix: String,
    pub subnet: Ipv4Addr,
    /// The routed machines' subnet, if any.
    #[serde(default)]
    pub routed_subnet: Option<Ipv4Addr>,
    /// The machines have IPv6 addresses too.
    #[serde(default)]
    pub ipv6: bool,
    pub base_dir: PathBuf,
    pub key_path: PathBuf,
    pub known_hosts_path: PathBuf,
    pub sudo_user: Option<String>,
    pub machines: Vec<MachineState>,
    /// Host-wide kernel settings as they were before `up`: with writable /proc/sys, kubelet
    /// inside a machine changes the host's values, and `down` puts them back.
    #[serde(default)]
    pub saved_sysctls: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MachineState {
    pub name: String,
    pub index: usize,
    pub address: Ipv4Addr,
    pub netns: String,
    pub dir: PathBuf,
    pub pid: Option<u32>,
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

pub(super) fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

pub(super) fn load(state_dir: &Path) -> Result<Option<State>> {
    let file = path(state_dir);
    let text = match fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let state: State = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a sandbox state file", file.display()))?;
    if state.version != VERSION {
        bail!(
            "{} was written by another version of the sandbox (state version {}, expected {VERSION})",
            file.display(),
            state.version
        );
    }
    Ok(Some(state))
}

impl State {
    pub fn new(
        prefix: String,
        subnet: Ipv4Addr,
        routed_subnet: Option<Ipv4Addr>,
        ipv6: bool,
        base_dir: PathBuf,
        state_dir: &Path,
        sudo_user: Option<String>,
    ) -> Self {
        State {
            version: VERSION,
            prefix,
            subnet,
            routed_subnet,
            ipv6,
            base_dir,
            key_path: state_dir.join("id_ed25519"),
            known_hosts_path: state_dir.join("known_hosts"),
            sudo_user,
            machines: Vec::new(),
            saved_sysctls: Vec::new(),
        }
    }

    pub fn save(&self, state_dir: &Path) -> Result<()> {
        let file = path(state_dir);
        let text = serde_json::to_string_pretty(self).expect("state serializes");
        fs::create_dir_all(state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        // Renamed into place so a crash never leaves `down` with half a file; 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(state_dir)
            .and_then(|mut f| f.write_all(text.as_bytes()).map(|()| f))
            .with_context(|| format!("cannot write {}", file.display()))?;
        tmp.as_file_mut().sync_all()?;
        tmp.persist(&file)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(())
    }
}
