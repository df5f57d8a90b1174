//! `rollback`: every host back to the versions recorded before the last upgrade.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{ensure_pki, load, SUCCESS};
use crate::apply::{Format, Inputs, Reporter};
use crate::cli::Output;
use crate::component::{parse_release_path, release_path, Release};
use crate::history::{self, History};
use crate::inventory::version::{KubeVersion, Semver};
use crate::plan::DesiredHost;
use crate::{pki, render};

/// How `rollback` runs.
pub(super) struct Options {
    pub(super) walk: crate::apply::workflow::Options,
    pub(super) break_lease: bool,
    /// Show the plan and change nothing.
    pub(super) dry_run: bool,
}

pub(super) fn rollback(path: &Path, output: Output, opts: &Options) -> Result<u8> {
    let mut l = load(path)?;
    let _lock = pki::store::lock(&l.cluster.state_dir)?;
    let bundle = crate::bundle::cluster::open_for(&mut l.cluster, path)?;
    let recorded = history::load(&l.cluster.state_dir)?;
    let (back, kept) = split(&recorded);
    // Rendered as at the previous versions: their files too (containerd's configuration format
    // depends on its minor).
    at_versions(&mut l.cluster, &back)?;
    let c = &l.cluster;
    for (release, step) in &kept {
        eprintln!(
            "{release} stays at {}: its data cannot go back to {} (restore an etcd snapshot \
             taken before the upgrade for that)",
            step.to, step.previous
        );
    }
    if back.is_empty() {
        println!(
            "nothing to roll back: no upgrade is recorded in {}",
            c.state_dir.display()
        );
        return Ok(SUCCESS);
    }
    let format = match output {
        Output::Json => Format::Json,
        Output::Text => Format::Text,
    };
    let rep = Reporter::new(format);
    let pki = ensure_pki(&l, path)?;
    let rendered = render::render(c, &pki)?;
    let inputs = Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle: &bundle,
    };
    let desired = retarget(crate::plan::desired(&rendered, &bundle)?, &back);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let rolled_back = runtime.block_on(async {
        let conns = crate::apply::open(c, &rep).await?;
        let lease = match opts.dry_run {
            true => None,
            false => Some(
                crate::apply::lease::take(c, &conns, "rollback", opts.break_lease, &rep).await?,
            ),
        };
        let result = async {
            let survey = crate::apply::survey_for(&inputs, desired, conns, false, &rep).await?;
            let mut plan = crate::apply::make_plan(&survey);
            missing_versions(&survey).await?;
            // The versions come from the record of an upgrade that passed the skew checks the
            // other way; going back one minor to them is what rollback is for.
            plan.refused.clear();
            if plan.is_empty() {
                println!("nothing to roll back: every host runs the recorded previous versions");
                return Ok(false);
            }
            if format == Format::Text || opts.dry_run {
                eprint!("{}", crate::plan::text(&plan));
            }
            if opts.dry_run {
                println!("dry run: rollback would make the changes above; nothing was changed");
                return Ok(false);
            }
            crate::apply::workflow::roll_back(&inputs, &survey, &plan, &rep, &opts.walk).await?;
            anyhow::Ok(true)
        }
        .await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    })?;
    if !rolled_back {
        return Ok(SUCCESS);
    }
    let mut left = recorded.clone();
    left.retain(|release, _| !back.contains_key(release));
    history::save(&c.state_dir, &left)?;
    let list: Vec<String> = back
        .iter()
        .map(|(r, s)| format!("{r} {} → {}", s.to, s.previous))
        .collect();
    println!(
        "rolled back {}. The inventory still names its bundle ({}): point it at the previous \
         bundle, or the next apply upgrades again",
        list.join(", "),
        bundle.dir.display()
    );
    Ok(SUCCESS)
}

/// The recorded steps rollback undoes, and those it cannot: etcd after a change of minor.
fn split(h: &History) -> (History, History) {
    h.clone().into_iter().partition(|(release, step)| {
        let minor = |v: &str| v.parse::<Semver>().ok().map(|s| (s.major, s.minor));
        release != Release::Etcd.name() || minor(&step.previous) == minor(&step.to)
    })
}

/// Sets the cluster's versions of the rolled-back releases to their previous ones.
fn at_versions(c: &mut crate::inventory::Cluster, back: &History) -> Result<()> {
    for (release, step) in back {
        let bad = |e: String| anyhow::anyhow!("the version record's {release}: {e}");
        if release == Release::Kubernetes.name() {
            c.kubernetes = KubeVersion::parse(&step.previous).map_err(bad)?;
        } else if release == Release::Etcd.name() {
            c.versions.etcd = step.previous.parse().map_err(bad)?;
        } else if release == Release::Containerd.name() {
            c.versions.containerd = step.previous.parse().map_err(bad)?;
        }
    }
    Ok(())
}

/// Points every link of a rolled-back release at its previous version.
fn retarget(mut desired: Vec<DesiredHost>, back: &History) -> Vec<DesiredHost> {
    for d in &mut desired {
        for l in &mut d.links {
            let Some((release, _)) = parse_release_path(&l.target) else {
                continue;
            };
            if let Some(step) = back.get(release) {
                let program = l.path.rsplit('/').next().unwrap_or_default();
                l.target = release_path(release, &step.previous, program);
            }
        }
    }
    desired
}

/// Refuses before any change when a host no longer has a previous version's program.
async fn missing_versions(s: &crate::apply::Survey) -> Result<()> {
    let mut missing = Vec::new();
    for d in &s.desired {
        let targets: Vec<&str> = d.links.iter().map(|l| l.target.as_str()).collect();
        let out = s.conns[&d.host]
            .run_checked(&crate::shell::sha256_files(&targets))
            .await?;
        for (line, target) in out.stdout_text().lines().zip(&targets) {
            if line.trim() == "-" {
                missing.push(format!("{}: {target}", d.host));
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "the previous version is not on every host; nothing was changed:\n  {}\nApply the \
             previous bundle instead (the inventory pointed at it): that installs it again",
            missing.join("\n  ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Step;

    #[test]
    fn etcd_stays_after_a_minor_change_and_kubernetes_goes_back() {
        let step = |p: &str, t: &str| Step {
            previous: p.into(),
            to: t.into(),
        };
        let h: History = [
            ("kubernetes".to_string(), step("1.36.3", "1.37.2")),
            ("etcd".to_string(), step("3.6.8", "3.7.0")),
            ("containerd".to_string(), step("2.3.7", "2.4.2")),
        ]
        .into();
        let (back, kept) = split(&h);
        assert_eq!(
            back.keys().collect::<Vec<_>>(),
            ["containerd", "kubernetes"]
        );
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["etcd"]);
        let patch: History = [("etcd".to_string(), step("3.6.7", "3.6.8"))].into();
        assert_eq!(split(&patch).0.len(), 1);

        let d = DesiredHost {
            host: "w-1".into(),
            dirs: vec![],
            items: vec![],
            links: vec![crate::plan::Link {
                path: "/usr/local/bin/kubelet".into(),
                target: release_path("kubernetes", "1.37.2", "kubelet"),
                restarts: vec![],
            }],
            units: vec![],
            owned: vec![],
            images: vec![],
            retired: vec![],
        };
        let d = retarget(vec![d], &back);
        assert_eq!(
            d[0].links[0].target,
            "/usr/local/lib/provisioner/kubernetes/1.36.3/kubelet"
        );
    }
}
