//! In-memory hosts for the runner's unit tests: a [`Remote`] that serves canned facts and
//! records what it is asked, and a [`Health`] whose gates pass or fail as a test says. Both
//! write to one shared log, so a test reads the order of everything that happened.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};

use super::execute::Health;
use super::remote::Remote;
use crate::component::{Phase, Unit};
use crate::plan::{ImageImport, UnitChange};
use crate::shell::{self, UnitVerb};
use crate::transport::{self, Forward, Output, Progress, Source};

/// What happened, in order: `cp-1: restart kube-apiserver`, `gate kube-apiserver cp-1`, ...
pub type Log = Arc<Mutex<Vec<String>>>;

/// One host. `facts` is what the facts script prints there, `installed` its record of what
/// provisioner installed.
pub struct FakeRemote {
    pub host: String,
    pub facts: String,
    pub installed: String,
    pub log: Log,
}

impl FakeRemote {
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
        // Only the facts script passes `--units`: it is answered with the canned facts.
        if command.contains("--units") {
            return Ok(ok(&self.facts));
        }
        if command == shell::read_if_present(crate::layout::INSTALLED) {
            return Ok(ok(&self.installed));
        }
        if command.starts_with("ln -sfn -- ") {
            // `ln -sfn -- TARGET PATH.provisioner-new && mv ...`, per link.
            for part in command.split("ln -sfn -- ").skip(1) {
                let words: Vec<&str> = part.split_whitespace().collect();
                let path = words[1].trim_end_matches(".provisioner-new");
                let version = crate::component::parse_release_path(words[0]).map_or("?", |r| r.1);
                self.record(format!("link {path} {version}"));
            }
            return Ok(ok(""));
        }
        match unit_action(command) {
            Some(action) => self.record(action),
            None => self.record(format!("run {}", command.lines().next().unwrap_or(""))),
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
        panic!("{}: the fake has no network ({target}:{port})", self.host)
    }
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
