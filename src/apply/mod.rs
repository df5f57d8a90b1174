//! The runner: the only part of provisioner that touches hosts. It connects, gathers facts,
//! checks preflight conditions on every host before writing anything, then executes the plan in
//! dependency order, each step behind a health gate with a deadline.

mod api;
mod dns;
mod gates;
pub mod health;
pub mod lease;
pub mod report;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::bundle::Bundle;
use crate::inventory::Cluster;
use crate::pki::Pki;
use crate::plan::{self, DesiredHost, Facts, FileAction, HostPlan, Plan, Source, UnitAction};
use crate::render::Rendered;
use crate::shell;
use crate::transport::{self, Connection};
pub use report::{Format, Reporter};

pub struct Inputs<'a> {
    pub cluster: &'a Cluster,
    pub rendered: &'a Rendered,
    pub pki: &'a Pki,
    pub bundle: &'a Bundle,
}

/// What a run did, for the summary and the tests.
#[derive(Debug, Default, serde::Serialize)]
pub struct Outcome {
    pub files_written: usize,
    pub units_started: usize,
    pub units_restarted: usize,
    pub images_imported: usize,
    pub seconds: f64,
    pub transfer_seconds: f64,
    pub wait_seconds: f64,
}

/// The hosts' connections and current state, ready to plan from.
pub struct Survey {
    pub conns: BTreeMap<String, Connection>,
    pub desired: Vec<DesiredHost>,
    pub facts: Vec<Facts>,
}

/// Connects to every host and checks that each belongs to the cluster the state directory
/// describes (see [`plan::identity`]), before anything is planned or written. Fails with a
/// [`plan::identity::Mismatch`] naming each host and identity that differs.
pub async fn open(cluster: &Cluster, rep: &Reporter) -> Result<BTreeMap<String, Connection>> {
    let conns = connect(cluster, rep).await?;
    let known = crate::pki::identity::known(&cluster.state_dir)?;
    let probe = plan::identity::probe();
    let hosts: Vec<(String, plan::identity::HostIdentity)> = stream::iter(&conns)
        .map(|(host, conn)| {
            let probe = &probe;
            async move {
                let out = conn
                    .run_script(probe, "read the cluster identity")
                    .await
                    .with_context(|| format!("{host}: reading its cluster identity"))?;
                let out = conn.check("read the cluster identity", out)?;
                anyhow::Ok((host.clone(), plan::identity::parse(&out.stdout_text())))
            }
        })
        .buffered(cluster.ssh.parallelism as usize)
        .try_collect()
        .await?;
    let problems = plan::identity::check(&known, &hosts);
    if !problems.is_empty() {
        return Err(plan::identity::Mismatch {
            state_dir: cluster.state_dir.clone(),
            problems,
        }
        .into());
    }
    Ok(conns)
}

/// Gathers facts over connections made by [`open`], and checks preflight conditions.
/// With `rehash`, every file is hashed again on the hosts instead of trusting the record of
/// files unchanged since they were last checked.
pub async fn survey(
    inp: &Inputs<'_>,
    conns: BTreeMap<String, Connection>,
    rehash: bool,
    rep: &Reporter,
) -> Result<Survey> {
    let desired = plan::desired(inp.rendered, inp.bundle)?;
    let parallel = inp.cluster.ssh.parallelism as usize;

    rep.phase("gather facts");
    let facts: Vec<Facts> = stream::iter(&desired)
        .map(|d| {
            let conn = conns[&d.host].clone();
            async move {
                rep.start(Some(&d.host), "gather");
                let t = Instant::now();
                let out = conn.run_checked(&plan::facts::script(d, rehash)).await?;
                rep.step("facts", Some(&d.host), "gather", t.elapsed(), "ok", None);
                anyhow::Ok(plan::facts::parse(&out.stdout_text()))
            }
        })
        .buffered(parallel)
        .try_collect()
        .await?;

    let pairs: Vec<(&DesiredHost, &Facts)> = desired.iter().zip(&facts).collect();
    let k = &inp.cluster.kubelet;
    let require_cgroup2 = inp.cluster.kubernetes.minor() >= 35 && !k.allow_cgroup_v1;
    let problems = plan::facts::preflight(&pairs, &inp.bundle.arch, require_cgroup2, k.allow_swap);
    if !problems.is_empty() {
        bail!(
            "preflight failed on {} point(s); nothing was changed:\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(Survey {
        conns,
        desired,
        facts,
    })
}

pub fn make_plan(s: &Survey) -> Plan {
    Plan {
        hosts: s
            .desired
            .iter()
            .zip(&s.facts)
            .map(|(d, f)| plan::diff(d, f))
            .collect(),
    }
}

/// One SSH connection per host, all of them or an error naming each host that failed.
pub async fn connect(cluster: &Cluster, rep: &Reporter) -> Result<BTreeMap<String, Connection>> {
    rep.phase("connect");
    let results: Vec<(String, Result<Connection, transport::Error>, Duration)> =
        stream::iter(&cluster.hosts)
            .map(|h| async move {
                rep.start(Some(&h.name), "ssh");
                let t = Instant::now();
                let r = Connection::connect(h, &cluster.ssh).await;
                (h.name.clone(), r, t.elapsed())
            })
            .buffer_unordered(cluster.ssh.parallelism as usize)
            .collect()
            .await;
    let mut conns = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, r, took) in results {
        match r {
            Ok(c) => {
                rep.step("connect", Some(&name), "ssh", took, "ok", None);
                conns.insert(name, c);
            }
            Err(e) => {
                let e = e.to_string();
                rep.step("connect", Some(&name), "ssh", took, "failed", Some(&e));
                failures.push(e);
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "cannot reach {} host(s); nothing was changed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(conns)
}

/// Runs every health gate against the cluster as it is (each unit of each host, as if it had
/// just been started), without changing anything. `certs regenerate` refuses to start on a
/// cluster that fails one.
pub async fn check_health(
    inp: &Inputs<'_>,
    s: &Survey,
    rep: &Reporter,
    deadline: Duration,
) -> Result<()> {
    let g = gates::Gates {
        inp,
        deadline,
        conns: &s.conns,
        rep,
    };
    let all: Vec<(String, crate::plan::UnitChange)> = s
        .desired
        .iter()
        .flat_map(|d| {
            d.units.iter().map(|u| {
                let check = crate::plan::UnitChange {
                    unit: u.clone(),
                    action: UnitAction::Restart,
                    reason: "health check".into(),
                    enable: false,
                };
                (d.host.clone(), check)
            })
        })
        .collect();
    rep.phase("health check");
    for phase in gates::PHASES.iter().filter(|p| !p.always_after_change) {
        let actions: Vec<(&str, &crate::plan::UnitChange)> = all
            .iter()
            .filter(|(_, u)| phase.units.contains(&u.unit.as_str()))
            .map(|(h, u)| (h.as_str(), u))
            .collect();
        if !actions.is_empty() {
            g.run(phase, &actions).await?;
        }
    }
    Ok(())
}

/// Executes a plan made from `survey` by [`make_plan`].
pub async fn execute(
    inp: &Inputs<'_>,
    s: &Survey,
    p: &Plan,
    rep: &Reporter,
    gate_deadline: Duration,
) -> Result<Outcome> {
    let start = Instant::now();
    let mut outcome = Outcome::default();
    let parallel = inp.cluster.ssh.parallelism as usize;

    rep.phase("files");
    let t = Instant::now();
    let written: Vec<usize> = stream::iter(&p.hosts)
        .filter(|h| std::future::ready(!h.dirs.is_empty() || !h.files.is_empty()))
        .map(|h| {
            let d = s
                .desired
                .iter()
                .find(|d| d.host == h.host)
                .expect("plans are made from the desired hosts");
            write_host(&s.conns[&h.host], h, d, rep)
        })
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    outcome.files_written = written.iter().sum();
    outcome.transfer_seconds = t.elapsed().as_secs_f64();

    let g = gates::Gates {
        inp,
        deadline: gate_deadline,
        conns: &s.conns,
        rep,
    };
    let t = Instant::now();
    for phase in &gates::PHASES {
        let actions: Vec<(&str, &crate::plan::UnitChange)> = p
            .hosts
            .iter()
            .flat_map(|h| {
                h.units
                    .iter()
                    .filter(|u| phase.units.contains(&u.unit.as_str()))
                    .map(move |u| (h.host.as_str(), u))
            })
            .collect();
        // Images are imported once containerd answers, also when containerd itself is unchanged.
        let imports: Vec<(&str, &crate::plan::ImageImport)> = if phase.name == "containerd" {
            p.hosts
                .iter()
                .flat_map(|h| h.images.iter().map(move |i| (h.host.as_str(), i)))
                .collect()
        } else {
            Vec::new()
        };
        if actions.is_empty() && imports.is_empty() && !phase.always_after_change {
            continue;
        }
        rep.phase(phase.name);
        // First starts go together (etcd members need each other for a quorum). Restarts roll:
        // one host at a time behind the phase's gate, so the rest of the cluster keeps serving;
        // etcd also checks that every member is healthy before each member goes down. When the
        // cluster is already unhealthy there is nothing to keep serving, and they go together.
        let (rolling, together): (Vec<_>, Vec<_>) = actions
            .iter()
            .partition(|(_, u)| u.action == UnitAction::Restart);
        let roll = !rolling.is_empty() && (phase.name != "etcd" || g.etcd_quorum().await.is_ok());
        let (rolling, together) = if roll {
            (rolling, together)
        } else {
            (Vec::new(), actions.clone())
        };
        for (host, u) in &together {
            unit_action(&s.conns[*host], host, phase.name, u, rep, &mut outcome).await?;
        }
        if !together.is_empty() || rolling.is_empty() {
            g.run(phase, &together).await?;
        }
        let mut hosts: Vec<&str> = rolling.iter().map(|(h, _)| *h).collect();
        hosts.dedup();
        for host in hosts {
            if phase.name == "etcd" {
                g.gate_etcd_quorum(host).await?;
            }
            let mine: Vec<(&str, &crate::plan::UnitChange)> = rolling
                .iter()
                .filter(|(h, _)| *h == host)
                .copied()
                .collect();
            for (host, u) in &mine {
                unit_action(&s.conns[*host], host, phase.name, u, rep, &mut outcome).await?;
            }
            g.run(phase, &mine).await?;
        }
        g.import_images(&imports).await?;
        outcome.images_imported += imports.len();
    }
    outcome.wait_seconds = t.elapsed().as_secs_f64();
    outcome.seconds = start.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Starts, restarts or enables one unit on one host.
async fn unit_action(
    conn: &Connection,
    host: &str,
    phase: &str,
    u: &crate::plan::UnitChange,
    rep: &Reporter,
    outcome: &mut Outcome,
) -> Result<()> {
    let verb = match u.action {
        UnitAction::Start => {
            outcome.units_started += 1;
            "start"
        }
        UnitAction::Restart => {
            outcome.units_restarted += 1;
            "restart"
        }
        UnitAction::Enable => "",
    };
    let what = format!("{verb} {}", u.unit);
    rep.start(Some(host), &what);
    let step = Instant::now();
    let shell_verb = match u.action {
        UnitAction::Start => Some(shell::UnitVerb::Start),
        UnitAction::Restart => Some(shell::UnitVerb::Restart),
        UnitAction::Enable => None,
    };
    // etcd members report started only once a quorum exists, so all of them are asked to start
    // before any is waited for (--no-block); the gates do the waiting. Other units start
    // synchronously, so a gate never sees the process being replaced.
    let no_block = u.unit == "etcd";
    conn.run_checked(&shell::systemctl(&u.unit, u.enable, shell_verb, no_block))
        .await
        .with_context(|| format!("{host}: {verb} {}", u.unit))?;
    rep.step(
        phase,
        Some(host),
        &what,
        step.elapsed(),
        "ok",
        Some(&u.reason),
    );
    Ok(())
}

/// Directories, files, then the reloads they need, on one host.
async fn write_host(
    conn: &Connection,
    h: &HostPlan,
    d: &DesiredHost,
    rep: &Reporter,
) -> Result<usize> {
    let host = Some(h.host.as_str());
    let what = format!("{} file(s), {} dir(s)", h.files.len(), h.dirs.len());
    rep.start(host, &what);
    let t = Instant::now();
    if !h.dirs.is_empty() {
        conn.run_checked(&shell::install_dirs(&h.dirs)).await?;
    }
    let mut written = 0;
    let total: u64 = h.files.iter().map(upload_size).sum();
    let mut sent = 0;
    for (i, c) in h.files.iter().enumerate() {
        match c.action {
            FileAction::Permissions => {
                conn.run_checked(&shell::own_and_chmod(&c.path, c.mode))
                    .await?;
            }
            FileAction::Create | FileAction::Update => {
                let source = match &c.item.source {
                    Source::Rendered(bytes) => transport::Source::Bytes(bytes),
                    Source::Bundle(path) => transport::Source::File(path),
                };
                let item = format!("{} ({}/{})", c.path, i + 1, h.files.len());
                let before = sent;
                let progress = |n: u64| rep.progress(host, &item, before + n, total);
                conn.upload_with_progress(source, &c.path, c.mode, Some(&c.item.sha256), &progress)
                    .await?;
                written += 1;
            }
        }
        sent += upload_size(c);
    }
    // Every desired file now has its desired content (uploads are verified on the host).
    conn.run_checked(&plan::facts::record_command(d))
        .await
        .context("recording file hashes")?;
    if h.daemon_reload {
        conn.run_checked(&shell::daemon_reload()).await?;
    }
    if h.load_modules {
        // Kernels with these built in have nothing to load (and may not support modules at all).
        conn.run_checked(&shell::load_modules())
            .await
            .context("loading kernel modules")?;
    }
    if h.reload_sysctl {
        conn.run_checked(&shell::apply_sysctl("/etc/sysctl.d/99-kubernetes.conf"))
            .await
            .context("applying sysctls")?;
    }
    rep.step("files", host, &what, t.elapsed(), "ok", None);
    Ok(written)
}

/// The bytes a file change sends, for the progress bar; a file that cannot be read counts as
/// empty here and fails in the upload, which names it.
fn upload_size(c: &crate::plan::FileChange) -> u64 {
    match (&c.action, &c.item.source) {
        (FileAction::Permissions, _) => 0,
        (_, Source::Rendered(bytes)) => bytes.len() as u64,
        (_, Source::Bundle(path)) => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
    }
}
