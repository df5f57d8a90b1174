//! `state recover`: a lost state directory rebuilt from the keys and certificates on the
//! hosts, each found where a render of the same inventory puts it (see
//! [`crate::certs::recover`]).

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};

use super::stage::Stage;
use super::{Remote, Session};
use crate::certs::recover::{self, Slot};
use crate::inventory::Cluster;
use crate::{pki, render};

/// What was recovered.
pub struct Recovered {
    pub hosts: usize,
    pub certificates: usize,
    /// What no host holds and was issued anew.
    pub issued: Vec<String>,
}

pub fn run(c: &Cluster, session: &Session) -> Result<Recovered> {
    for sub in ["pki", "secrets"] {
        let dir = c.state_dir.join(sub);
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            bail!(
                "{} already holds a state directory ({sub}/ is there); recover only rebuilds a \
                 missing one and never overwrites: move {} away first",
                c.state_dir.display(),
                c.state_dir.display()
            );
        }
    }
    // Where every secret sits on the hosts: a render of the same inventory with a throw-away PKI.
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let mut template = c.clone();
    template.state_dir = scratch.path().to_path_buf();
    let (template_pki, _) = pki::ensure(&template)?;
    let locations = recover::locate(&render::render(&template, &template_pki)?, &template_pki);
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for loc in locations.values().flatten() {
        let paths = wanted.entry(loc.host.clone()).or_default();
        if !paths.contains(&loc.path) {
            paths.push(loc.path.clone());
        }
    }

    let rep = &session.rep;
    let files = session.block_on(async {
        let conns = super::connect(c, rep).await?;
        Stage::ReadKeys.start(rep);
        let mut files = recover::HostFiles::new();
        for (host, paths) in &wanted {
            let what = "read the cluster's keys and certificates";
            files.insert(host.clone(), conns[host].read(paths, what).await?);
        }
        anyhow::Ok(files)
    })?;
    let found = recover::assemble(&locations, &files).map_err(|problems| {
        anyhow!(
            "cannot recover the state directory from these hosts; nothing was written:\n  {}",
            problems.join("\n  ")
        )
    })?;
    recover::write(&c.state_dir, &found, &recover::leaf_files(c))?;
    let (_, report) = pki::ensure(c)?;
    Ok(Recovered {
        hosts: files.len(),
        certificates: found
            .keys()
            .filter(|s| matches!(s, Slot::LeafCert(_)))
            .count(),
        issued: report.issued,
    })
}
