//! `state recover`.

use std::path::Path;

use anyhow::{Context, Result};

use super::{load, SUCCESS};
use crate::apply::workflow::Stage;
use crate::apply::{Format, Session};
use crate::{pki, render};

/// `state recover`: rebuilds a missing state directory from the hosts.
pub(super) fn state_recover(path: &Path) -> Result<u8> {
    use crate::certs::recover;
    let l = load(path)?;
    let c = &l.cluster;
    for sub in ["pki", "secrets"] {
        let dir = c.state_dir.join(sub);
        if std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
            anyhow::bail!(
                "{} already holds a state directory ({sub}/ is there); recover only rebuilds a \
                 missing one and never overwrites: move {} away first",
                c.state_dir.display(),
                c.state_dir.display()
            );
        }
    }
    let session = Session::start(&c.state_dir, Format::Text)?;
    // Where every secret sits on the hosts: a render of the same inventory with a throw-away PKI.
    let scratch = tempfile::tempdir().context("creating a temporary directory")?;
    let mut template = c.clone();
    template.state_dir = scratch.path().to_path_buf();
    let (template_pki, _) = pki::ensure(&template)?;
    let locations = recover::locate(&render::render(&template, &template_pki)?, &template_pki);
    let mut wanted: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for loc in locations.values().flatten() {
        let paths = wanted.entry(loc.host.clone()).or_default();
        if !paths.contains(&loc.path) {
            paths.push(loc.path.clone());
        }
    }

    let rep = &session.rep;
    let files = session.block_on(async {
        let conns = crate::apply::connect(c, rep).await?;
        Stage::ReadKeys.start(rep);
        let mut files = recover::HostFiles::new();
        for (host, paths) in &wanted {
            let conn = &conns[host];
            let what = "read the cluster's keys and certificates";
            let out = conn
                .run_script(&crate::shell::read_files(paths), what)
                .await?;
            let out = conn.check(what, out)?;
            let parsed = crate::shell::parse_files(&out.stdout)
                .map_err(|e| anyhow::anyhow!("{host}: reading its files: {e}"))?;
            files.insert(host.clone(), parsed);
        }
        anyhow::Ok(files)
    })?;
    let found = recover::assemble(&locations, &files).map_err(|problems| {
        anyhow::anyhow!(
            "cannot recover the state directory from these hosts; nothing was written:\n  {}",
            problems.join("\n  ")
        )
    })?;
    recover::write(&c.state_dir, &found, &recover::leaf_files(c))?;
    let (_, report) = pki::ensure(c)?;
    let certs = found
        .keys()
        .filter(|s| matches!(s, recover::Slot::LeafCert(_)))
        .count();
    println!(
        "recovered {} from {} host(s): the 3 CAs with their keys, {certs} certificate(s) with their keys, \
         the service-account key pair and the encryption-at-rest key",
        c.state_dir.display(),
        files.len()
    );
    if !report.issued.is_empty() {
        println!(
            "issued anew (no host holds them): {}",
            report.issued.join(", ")
        );
    }
    println!(
        "next: `provisioner plan {}` should show no change",
        path.display()
    );
    Ok(SUCCESS)
}
