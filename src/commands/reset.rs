//! `reset`.

use std::path::Path;

use anyhow::{bail, Result};

use super::{confirm, load, SUCCESS};
use crate::apply::reset::{self, HostReset};
use crate::apply::workflow::Stage;
use crate::apply::{lease, under_lease, Format, Session};
use crate::inventory::Cluster;

pub(super) fn reset(path: &Path, hosts: &[String], keep_images: bool, yes: bool) -> Result<u8> {
    let l = load(path)?;
    let c = &l.cluster;
    let chosen = chosen(c, hosts)?;
    let session = Session::start(&c.state_dir, Format::Text)?;
    // The lease hosts are reached too (the lease keeps other runs out), reset or not.
    let leased = lease::lease_hosts(c);
    let mut scope = c.clone();
    scope
        .hosts
        .retain(|h| chosen.contains(&h.name) || leased.contains(&h.name.as_str()));

    let rep = &session.rep;
    let parallel = c.ssh.parallelism as usize;
    let acted = session.block_on(async {
        let conns = crate::apply::open(&scope, rep).await?;
        let mut chosen_conns = conns.clone();
        chosen_conns.retain(|h, _| chosen.contains(h));
        Stage::ReadRecords.start(rep);
        let plans = reset::survey(&chosen_conns, keep_images, parallel).await?;
        let summary = summary(&plans, keep_images);
        if plans.iter().all(|p| p.reset.is_none()) {
            println!("{summary}nothing to reset");
            return anyhow::Ok(false);
        }
        eprint!("{summary}");
        if !yes {
            confirm(
                &format!("Type the cluster's name ({}) to go on: ", c.name),
                &c.name,
            )?;
        }
        let held = lease::take(c, &conns, "reset", false, rep).await?;
        let work = reset::reset(&conns, &plans, &leased, parallel, rep);
        under_lease(Some(held), work).await.map(|()| true)
    })?;
    if !acted {
        return Ok(SUCCESS);
    }

    if chosen.len() < c.hosts.len() {
        println!(
            "reset {}; their Node objects stay registered until deleted: kubectl delete node {}",
            chosen.join(", "),
            chosen.join(" ")
        );
    } else {
        println!(
            "reset every host of cluster {}. The state directory {} still holds its CAs and keys: \
             the next apply builds the same cluster again; remove it to build a new one",
            c.name,
            c.state_dir.display()
        );
    }
    Ok(SUCCESS)
}

/// The hosts to reset: all, or the named ones, which must be workers only: an etcd member or
/// API server leaving a running cluster is a membership change, not a reset.
fn chosen(c: &Cluster, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(c.hosts.iter().map(|h| h.name.clone()).collect());
    }
    let mut problems = Vec::new();
    for n in names {
        match c.hosts.iter().find(|h| &h.name == n) {
            None => problems.push(format!(
                "--host {n}: no such host in the inventory (hosts: {})",
                c.hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(h) if h.roles.etcd || h.roles.control_plane => problems.push(format!(
                "--host {n}: an etcd member or API server cannot be reset alone while the rest \
                 of the cluster runs; take it out of the inventory and `apply --remove {n}` \
                 (its member leaves etcd first), or reset the whole cluster (no --host)"
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        bail!("{}; nothing was changed", problems.join("\n"));
    }
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    Ok(names)
}

/// What reset will do, one line per host, before it asks.
fn summary(plans: &[HostReset], keep_images: bool) -> String {
    let mut s = String::from("reset:\n");
    for p in plans {
        match &p.reset {
            None => s.push_str(&format!(
                "  {}: records nothing provisioner installed; left alone\n",
                p.host
            )),
            Some(r) => {
                let units: Vec<&str> = r.units.iter().map(|u| u.name()).collect();
                s.push_str(&format!(
                    "  {}: stop and disable {}; remove {} recorded file(s) and director(ies)\n",
                    p.host,
                    if units.is_empty() {
                        "nothing".to_string()
                    } else {
                        units.join(", ")
                    },
                    r.remove.len()
                ));
            }
        }
    }
    if plans
        .iter()
        .any(|p| p.reset.as_ref().is_some_and(|r| r.runtime.is_some()))
    {
        s.push_str(if keep_images {
            "containerd's images are kept (--keep-images)\n"
        } else {
            "containerd's images go too (--keep-images keeps them)\n"
        });
    }
    s
}
