//! In-memory hosts for the runner's unit tests: a [`Remote`] that answers the commands a test
//! gives it (each built by the same function the runner builds it with, and compared whole),
//! holds files to read and download, and records what it is asked; and a [`Health`] whose gates
//! pass or fail as a test says. Both write to one shared log, so a test reads the order of
//! everything that happened.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};

use super::execute::Health;
use super::remote::{Files, Remote};
use crate::component::{Phase, Unit};
use crate::plan::{ImageImport, UnitChange};
use crate::shell::{self, UnitVerb};
use crate::transport::{self, Downloaded, Forward, Output, Progress, Source};

/// What happened, in order: `cp-1: restart kube-apiserver`, `gate kube-apiserver cp-1`, ...
pub type Log = Arc<Mutex<Vec<String>>>;

/// One host.
#[derive(Clone)]
pub struct FakeRemote {
    pub host: String,
    /// What a command prints (on stdout, exit 0), by the whole command.
    pub answers: BTreeMap<String, String>,
    /// The host's files, for [`Remote::read`] and [`Remote::download`].
    pub files: BTreeMap<String, Vec<u8>>,
    pub log: Log,
}

impl FakeRemote {
    /// A host that answers nothing and holds no files.
    pub fn new(host: &str, log: &Log) -> FakeRemote {
        FakeRemote {
            host: host.to_string(),
            answers: BTreeMap::new(),
            files: BTreeMap::new(),
            log: log.clone(),
        }
    }

    /// Answers `command` with `stdout`.
    pub fn answer(mut self, command: String, stdout: &str) -> FakeRemote {
        self.answers.insert(command, stdout.to_string());
        self
    }

    fn record(&self, event: String) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}: {event}", self.host));
    }
}

/// The unit action `command` is, as `restart etcd`, if it is one.
fn unit_action(command: &str) -> Option<String> {
    for u in Unit::ALL {
        for (verb, name) in [
            (UnitVerb::Start, "start"),
            (UnitVerb::Restart, "restart"),
            (UnitVerb::ReloadOrRestart, "reload"),
        ] {
            for enable in [false, true] {
                let no_block = u == Unit::Etcd;
                if command == shell::systemctl(&u.file_name(), enable, Some(verb), no_block) {
                    return Some(format!("{name} {u}"));
                }
            }
        }
    }
    None
}

fn ok(stdout: &str) -> Output {
    Output {
        status: 0,
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    }
}

impl Remote for FakeRemote {
    fn host_name(&self) -> &str {
        &self.host
    }

    async fn run(&self, command: &str) -> transport::Result<Output> {
        if let Some(stdout) = self.answers.get(command) {
            return Ok(ok(stdout));
        }
        match unit_action(command) {
            Some(action) => self.record(action),
            None => self.record(format!("run {}", first_line(command))),
        }
        Ok(ok(""))
    }

    async fn run_checked(&self, command: &str) -> transport::Result<Output> {
        self.run(command).await
    }

    async fn upload(
        &self,
        _source: Source<'_>,
        path: &str,
        _mode: u32,
        _expected: Option<&str>,
        _progress: Progress<'_>,
    ) -> transport::Result<()> {
        self.record(format!("upload {path}"));
        Ok(())
    }

    async fn forward(&self, target: &str, port: u16) -> transport::Result<Forward> {
        Err(transport::Error::Session {
            host: self.host.clone(),
            step: format!("forwarding to {target}:{port}"),
            reason: "the fake has no network".into(),
        })
    }

    async fn read(&self, paths: &[String], _what: &str) -> Result<Files> {
        self.record(format!("read {}", paths.join(" ")));
        Ok(paths
            .iter()
            .map(|p| (p.clone(), self.files.get(p).cloned()))
            .collect())
    }

    async fn switch_links(&self, links: &[(&str, &str)]) -> transport::Result<()> {
        for (path, target) in links {
            let version = crate::component::parse_release_path(target).map_or("?", |r| r.1);
            self.record(format!("link {path} {version}"));
        }
        Ok(())
    }

    async fn download(&self, path: &str, to: &Path) -> transport::Result<Downloaded> {
        self.record(format!("download {path}"));
        let Some(content) = self.files.get(path) else {
            panic!("{}: the fake holds no {path}", self.host);
        };
        std::fs::write(to, content).unwrap();
        Ok(Downloaded {
            sha256: crate::digest::sha256_hex(content),
            size: content.len() as u64,
        })
    }
}

fn first_line(command: &str) -> &str {
    command.lines().next().unwrap_or("")
}

/// Gates that pass, except the first of each of `failing` (phase, host); etcd has a quorum
/// unless told.
pub struct FakeHealth {
    pub log: Log,
    pub failing: BTreeSet<(Phase, String)>,
    pub etcd_quorum: bool,
}

impl FakeHealth {
    fn push(&self, event: String) {
        self.log.lock().unwrap().push(event);
    }
}

impl Health for FakeHealth {
    async fn gate(&self, phase: Phase, actions: &[(&str, &UnitChange)]) -> Result<()> {
        let mut hosts: Vec<&str> = actions.iter().map(|(h, _)| *h).collect();
        hosts.dedup();
        self.log.lock().unwrap().push(
            format!("gate {phase} {}", hosts.join(" "))
                .trim_end()
                .into(),
        );
        for h in hosts {
            let failed_before = self
                .log
                .lock()
                .unwrap()
                .contains(&format!("{h}: gate {phase} failed"));
            if self.failing.contains(&(phase, h.to_string())) && !failed_before {
                self.push(format!("{h}: gate {phase} failed"));
                bail!("{h}: gate {phase} failed");
            }
        }
        Ok(())
    }

    async fn drain(&self, hosts: &[&str]) -> Result<()> {
        self.push(format!("drain {}", hosts.join(" ")));
        Ok(())
    }

    async fn uncordon(&self, hosts: &[&str]) -> Result<()> {
        self.push(format!("uncordon {}", hosts.join(" ")));
        Ok(())
    }

    async fn etcd_quorum(&self) -> Result<()> {
        if !self.etcd_quorum {
            bail!("etcd has no quorum");
        }
        Ok(())
    }

    async fn before_etcd_restart(&self, host: &str) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("every etcd member healthy before {host}"));
        self.etcd_quorum().await
    }

    async fn before_etcd_start(&self, _hosts: &[&str]) -> Result<()> {
        Ok(())
    }

    async fn import_images(&self, imports: &[(&str, &ImageImport)]) -> Result<()> {
        for (host, i) in imports {
            self.log
                .lock()
                .unwrap()
                .push(format!("{host}: import {}", i.image.reference));
        }
        Ok(())
    }
}

/// A cluster to run against fake hosts: the bundled inventory (3 control-plane + 2 workers),
/// its PKI, its files and a bundle that carries nothing.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub cluster: crate::inventory::Cluster,
    pub pki: crate::pki::Pki,
    pub rendered: crate::render::Rendered,
    pub bundle: crate::bundle::Bundle,
}

impl Fixture {
    /// The bundled inventory as `change` leaves it.
    pub fn new(change: impl FnOnce(&mut crate::inventory::Cluster)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = crate::inventory::bundled_for_test(dir.path());
        change(&mut cluster);
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let rendered = crate::render::render(&cluster, &pki).unwrap();
        let bundle = crate::bundle::Bundle::empty(dir.path());
        Fixture {
            _dir: dir,
            cluster,
            pki,
            rendered,
            bundle,
        }
    }

    pub fn inputs(&self) -> super::Inputs<'_> {
        super::Inputs {
            cluster: &self.cluster,
            rendered: &self.rendered,
            pki: &self.pki,
            bundle: &self.bundle,
        }
    }

    /// A fake of every host, writing to `log`.
    pub fn hosts(&self, log: &Log) -> BTreeMap<String, FakeRemote> {
        self.cluster
            .hosts
            .iter()
            .map(|h| (h.name.clone(), FakeRemote::new(&h.name, log)))
            .collect()
    }
}
