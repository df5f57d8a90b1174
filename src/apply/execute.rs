//! The rollout engine: writes every host's files, then runs the phases of [`super::workflow`]
//! in order, each unit action followed by its phase's health gate. Which restarts roll and
//! which go together, and where a failed gate stops the run, are decided here alone.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};

use super::remote::Remote;
use super::{files, Outcome, Reporter};
use crate::component::{Phase, Unit};
use crate::plan::{DesiredHost, HostPlan, ImageImport, Plan, UnitAction, UnitChange};
use crate::shell;

/// What the engine asks about the cluster's health; the real gates implement it by asking the
/// services, the unit tests by a script.
#[allow(async_fn_in_trait)]
pub trait Health {
    /// Waits for `phase`'s gate after `actions` (or, for a phase acting on the API, once).
    async fn gate(&self, phase: Phase, actions: &[(&str, &UnitChange)]) -> Result<()>;
    /// Every etcd member answers healthy right now (no waiting).
    async fn etcd_quorum(&self) -> Result<()>;
    /// Waits until every etcd member is healthy, before `host`'s member goes down.
    async fn before_etcd_restart(&self, host: &str) -> Result<()>;
    /// Adds the members of `hosts` that join a running cluster as learners, before they start.
    async fn before_etcd_start(&self, hosts: &[&str]) -> Result<()>;
    /// Imports images into containerd, then checks that it lists each one.
    async fn import_images(&self, imports: &[(&str, &ImageImport)]) -> Result<()>;
    /// Cordons the Nodes of `hosts` and evicts their pods (DaemonSets' stay), before their
    /// kubelets change version.
    async fn drain(&self, hosts: &[&str]) -> Result<()>;
    /// Makes the Nodes of `hosts` schedulable again.
    async fn uncordon(&self, hosts: &[&str]) -> Result<()>;
}

/// How the phases are walked.
pub struct Walk {
    /// Hosts written to at once.
    pub parallel: usize,
    /// Workers changing version at once, drained together.
    pub max_unavailable: usize,
}

/// Executes `p`: files on every host (in parallel), then the phases of `phases` in order.
pub async fn execute<R: Remote, H: Health>(
    conns: &BTreeMap<String, R>,
    desired: &[DesiredHost],
    p: &Plan,
    phases: &[Phase],
    health: &H,
    walk: &Walk,
    rep: &Reporter,
) -> Result<Outcome> {
    let start = Instant::now();
    let mut outcome = Outcome::default();

    let t = Instant::now();
    outcome.files_written = files::write(conns, desired, p, walk.parallel, rep).await?;
    outcome.transfer_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    for &phase in phases {
        let actions: Vec<(&str, &UnitChange)> = p
            .hosts
            .iter()
            .flat_map(|h| {
                h.units
                    .iter()
                    .filter(|u| u.unit.props().phase == phase)
                    .map(move |u| (h.host.as_str(), u))
            })
            .collect();
        // Images are imported once containerd answers, also when containerd itself is unchanged.
        let imports: Vec<(&str, &ImageImport)> = if phase == Phase::Containerd {
            p.hosts
                .iter()
                .flat_map(|h| h.images.iter().map(move |i| (h.host.as_str(), i)))
                .collect()
        } else {
            Vec::new()
        };
        if actions.is_empty() && imports.is_empty() && !phase.always_after_change() {
            continue;
        }
        rep.header(phase.name());
        // First starts go together (etcd members need each other for a quorum). Restarts roll:
        // one host at a time behind the phase's gate, so the rest of the cluster keeps serving;
        // etcd also checks that every member is healthy before each member goes down. When the
        // cluster is already unhealthy there is nothing to keep serving, and they go together.
        let (rolling, together): (Vec<_>, Vec<_>) = actions
            .iter()
            .partition(|(_, u)| u.action == UnitAction::Restart);
        let roll =
            !rolling.is_empty() && (phase != Phase::Etcd || health.etcd_quorum().await.is_ok());
        let (rolling, together) = if roll {
            (rolling, together)
        } else {
            (Vec::new(), actions.clone())
        };
        if phase == Phase::Etcd && !together.is_empty() {
            let hosts: Vec<&str> = together.iter().map(|(h, _)| *h).collect();
            health.before_etcd_start(&hosts).await?;
        }
        for (host, u) in &together {
            unit_action(
                &conns[*host],
                host_plan(p, host),
                phase,
                u,
                rep,
                &mut outcome,
            )
            .await?;
        }
        if !together.is_empty() || rolling.is_empty() {
            health.gate(phase, &together).await?;
        }
        for batch in batches(p, phase, &rolling, walk.max_unavailable) {
            if phase == Phase::Etcd {
                health.before_etcd_restart(batch[0]).await?;
            }
            let mine: Vec<(&str, &UnitChange)> = rolling
                .iter()
                .filter(|(h, _)| batch.contains(h))
                .copied()
                .collect();
            // A worker whose kubelet changes version has its pods moved first.
            let drain = phase == Phase::Workers
                && batch
                    .iter()
                    .all(|h| host_plan(p, h).switches_version(Unit::Kubelet));
            if drain {
                if let Err(e) = health.drain(&batch).await {
                    health.uncordon(&batch).await?;
                    return Err(
                        e.context("nothing was changed on these workers; they are uncordoned")
                    );
                }
            }
            let acted = async {
                for (host, u) in &mine {
                    unit_action(
                        &conns[*host],
                        host_plan(p, host),
                        phase,
                        u,
                        rep,
                        &mut outcome,
                    )
                    .await?;
                }
                health.gate(phase, &mine).await
            }
            .await;
            if let Err(e) = acted {
                return Err(switch_back(conns, p, phase, &mine, drain, health, rep, e).await);
            }
            if drain {
                health.uncordon(&batch).await?;
            }
        }
        health.import_images(&imports).await?;
        outcome.images_imported += imports.len();
    }
    // Every restart these phases hold has run: no later apply needs to repeat them.
    for h in &p.hosts {
        let restarts = &h.follow_up.restarts;
        if !restarts.is_empty() && restarts.iter().all(|u| phases.contains(&u.props().phase)) {
            conns[&h.host]
                .run_checked(&shell::remove_file(crate::layout::FOLLOW_UP))
                .await
                .with_context(|| format!("{}: clearing the record of restarts to do", h.host))?;
        }
    }
    outcome.wait_seconds = t.elapsed().as_secs_f64();
    outcome.seconds = start.elapsed().as_secs_f64();
    Ok(outcome)
}

fn host_plan<'a>(p: &'a Plan, host: &str) -> &'a HostPlan {
    p.hosts
        .iter()
        .find(|h| h.host == host)
        .expect("actions come from the plan's hosts")
}

/// The hosts of a phase's rolling restarts, in groups restarted together: one host at a time,
/// except workers changing their kubelet's version, `max_unavailable` at a time.
fn batches<'a>(
    p: &Plan,
    phase: Phase,
    rolling: &[(&'a str, &UnitChange)],
    max_unavailable: usize,
) -> Vec<Vec<&'a str>> {
    let mut hosts: Vec<&str> = rolling.iter().map(|(h, _)| *h).collect();
    hosts.dedup();
    let (upgraded, others): (Vec<&str>, Vec<&str>) = hosts
        .into_iter()
        .partition(|h| phase == Phase::Workers && host_plan(p, h).switches_version(Unit::Kubelet));
    let mut out: Vec<Vec<&str>> = others.into_iter().map(|h| vec![h]).collect();
    out.extend(
        upgraded
            .chunks(max_unavailable.max(1))
            .map(<[&str]>::to_vec),
    );
    out
}

/// After `failed`, a restart or gate of hosts whose units had just switched to another
/// version: switches their links back, restarts those units on the version they ran before,
/// waits for the gate again and, once it passes, uncordons drained workers. Returns the error
/// to stop the run with.
#[allow(clippy::too_many_arguments)]
async fn switch_back<R: Remote, H: Health>(
    conns: &BTreeMap<String, R>,
    p: &Plan,
    phase: Phase,
    actions: &[(&str, &UnitChange)],
    drained: bool,
    health: &H,
    rep: &Reporter,
    failed: anyhow::Error,
) -> anyhow::Error {
    let mut back: Vec<(&str, &UnitChange)> = Vec::new();
    let mut said = Vec::new();
    for (host, u) in actions {
        let links: Vec<(&str, &str)> = host_plan(p, host)
            .links_of(u.unit)
            .filter_map(|l| Some((l.path.as_str(), l.from.as_deref()?)))
            .collect();
        if links.is_empty() {
            continue;
        }
        let what = format!("switch {} back", u.unit);
        rep.start(Some(host), &what);
        let t = Instant::now();
        let conn = &conns[*host];
        let restart = shell::systemctl(
            &u.unit.file_name(),
            false,
            Some(shell::UnitVerb::Restart),
            false,
        );
        let done = async {
            conn.switch_links(&links).await?;
            conn.run_checked(&restart).await
        }
        .await;
        if let Err(e) = done {
            return failed.context(format!(
                "{host}: switching {} back failed too: {e:#}",
                u.unit
            ));
        }
        rep.step(phase.name(), Some(host), &what, t.elapsed(), "ok", None);
        said.push(format!("{host}: {} → {}", u.unit, links[0].1));
        back.push((host, u));
    }
    if back.is_empty() {
        return failed;
    }
    let (passes, again) = match health.gate(phase, &back).await {
        Ok(()) => (true, "and passes its gate again".to_string()),
        Err(e) => (
            false,
            format!("but still fails its gate (left cordoned): {e:#}"),
        ),
    };
    if drained && passes {
        let mut hosts: Vec<&str> = back.iter().map(|(h, _)| *h).collect();
        hosts.dedup();
        if let Err(e) = health.uncordon(&hosts).await {
            return failed.context(format!(
                "switched back ({}) but not uncordoned: {e:#}",
                said.join("; ")
            ));
        }
    }
    failed.context(format!(
        "the new version failed its gate, so it was switched back at once ({}) {again}. The run \
         stopped there: the hosts after it were not touched, those before it run the new \
         version. `provisioner rollback` returns them all to the previous version; `apply` \
         tries the new one again",
        said.join("; ")
    ))
}

/// Runs every gate of `phases` against the cluster as it is (each unit of each host, as if it
/// had just been started), without changing anything.
pub async fn check<H: Health>(desired: &[DesiredHost], phases: &[Phase], health: &H) -> Result<()> {
    let all: Vec<(&str, UnitChange)> = desired
        .iter()
        .flat_map(|d| {
            d.units.iter().map(|u| {
                let check = UnitChange {
                    unit: *u,
                    action: UnitAction::Restart,
                    reason: "health check".into(),
                    enable: false,
                };
                (d.host.as_str(), check)
            })
        })
        .collect();
    for &phase in phases.iter().filter(|p| !p.always_after_change()) {
        let actions: Vec<(&str, &UnitChange)> = all
            .iter()
            .filter(|(_, u)| u.unit.props().phase == phase)
            .map(|(h, u)| (*h, u))
            .collect();
        if !actions.is_empty() {
            health.gate(phase, &actions).await?;
        }
    }
    Ok(())
}

/// Starts, restarts or enables one unit on one host; a start or restart first points the
/// links of its programs at their new version.
async fn unit_action<R: Remote>(
    conn: &R,
    h: &HostPlan,
    phase: Phase,
    u: &UnitChange,
    rep: &Reporter,
    outcome: &mut Outcome,
) -> Result<()> {
    let (verb, shell_verb) = match u.action {
        UnitAction::Start => {
            outcome.units_started += 1;
            ("start", Some(shell::UnitVerb::Start))
        }
        UnitAction::Restart if u.unit.props().reloads => {
            outcome.units_restarted += 1;
            ("reload", Some(shell::UnitVerb::ReloadOrRestart))
        }
        UnitAction::Restart => {
            outcome.units_restarted += 1;
            ("restart", Some(shell::UnitVerb::Restart))
        }
        UnitAction::Enable => ("", None),
    };
    let host = h.host.as_str();
    let what = format!("{verb} {}", u.unit);
    rep.start(Some(host), &what);
    let step = Instant::now();
    let links: Vec<(&str, &str)> = h
        .links_of(u.unit)
        .map(|l| (l.path.as_str(), l.target.as_str()))
        .collect();
    if shell_verb.is_some() && !links.is_empty() {
        conn.switch_links(&links)
            .await
            .with_context(|| format!("{host}: pointing {}'s programs at their version", u.unit))?;
    }
    // etcd members report started only once a quorum exists, so all of them are asked to start
    // before any is waited for (--no-block); the gates do the waiting. Other units start
    // synchronously, so a gate never sees the process being replaced.
    let no_block = u.unit == Unit::Etcd;
    let done = conn
        .run_checked(&shell::systemctl(
            &u.unit.file_name(),
            u.enable,
            shell_verb,
            no_block,
        ))
        .await;
    if let Err(e) = done {
        let journal = conn.journal_excerpt(u.unit).await;
        return Err(anyhow::anyhow!(
            "{host}: {verb} {}: {e:#}\n{journal}",
            u.unit
        ));
    }
    rep.step(
        phase.name(),
        Some(host),
        &what,
        step.elapsed(),
        "ok",
        Some(&u.reason),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use super::super::fake::{FakeHealth, FakeRemote, Log};
    use super::super::report::Format;
    use super::super::workflow::PHASES;
    use super::*;
    use crate::component::{release_path, Release};
    use crate::plan::{self, Item, Link, Source};

    /// The bundled inventory's hosts (3 control-plane/etcd hosts, 2 workers) as rendered, with
    /// their files only (the bundle's binaries and images need a bundle).
    fn desired() -> Vec<DesiredHost> {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        let (pki, _) = crate::pki::ensure(&cluster).unwrap();
        let rendered = crate::render::render(&cluster, &pki).unwrap();
        rendered
            .hosts
            .into_iter()
            .map(|h| DesiredHost {
                host: h.host,
                dirs: h.dirs,
                items: h
                    .files
                    .into_iter()
                    .map(|f| Item {
                        sha256: crate::digest::sha256_hex(&f.content),
                        path: f.path,
                        mode: f.mode,
                        secret: f.secret,
                        source: Source::Rendered(f.content),
                        restarts: f.readers,
                    })
                    .collect(),
                links: h
                    .binaries
                    .iter()
                    .map(|b| {
                        let release =
                            Release::of_program(b.name).map_or("cni-plugins", Release::name);
                        Link {
                            path: b.path.clone(),
                            target: release_path(release, NEW, b.name),
                            restarts: b.readers.clone(),
                        }
                    })
                    .collect(),
                units: h.units,
                images: Vec::new(),
                retired: h.retired,
                owned: h.owned,
            })
            .collect()
    }

    const OLD: &str = "1.36.3";
    const NEW: &str = "1.37.2";

    /// What the facts script prints on a host that has `d` exactly, every unit running, except
    /// that the files of `stale` have other content and its programs are at `version`.
    fn facts_text(d: &DesiredHost, stale: &[&str], version: &str) -> String {
        let mut out = String::from("arch=x86_64\nsystemd=252\ncgroup=cgroup2fs\n");
        out.push_str(&format!("hostname={}\n", d.host));
        for i in &d.items {
            let sha = if stale.contains(&i.path.as_str()) {
                "0".repeat(64)
            } else {
                i.sha256.clone()
            };
            out.push_str(&format!("file={sha} {:o} 0:0 {}\n", i.mode, i.path));
        }
        for (p, m) in &d.dirs {
            out.push_str(&format!("dir={m:o} {p}\n"));
        }
        for u in &d.units {
            out.push_str(&format!("unit={u} active enabled\n"));
        }
        for l in &d.links {
            let target = l.target.replace(NEW, version);
            out.push_str(&format!("link={target} {}\n", l.path));
        }
        out
    }

    struct Run {
        log: Log,
        plan: Plan,
        result: Result<Outcome>,
    }

    /// Surveys fake hosts (with `stale` files on `stale_hosts`), plans, and executes the plan.
    async fn run(stale: &[&str], stale_hosts: &[&str], health: impl Fn(Log) -> FakeHealth) -> Run {
        run_with(stale, stale_hosts, &[], 1, health).await
    }

    /// [`run`], with the hosts of `older` running the previous version of every program, and
    /// `max_unavailable` workers upgraded at once.
    async fn run_with(
        stale: &[&str],
        stale_hosts: &[&str],
        older: &[&str],
        max_unavailable: usize,
        health: impl Fn(Log) -> FakeHealth,
    ) -> Run {
        let desired = desired();
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let conns: BTreeMap<String, FakeRemote> = desired
            .iter()
            .map(|d| {
                let here: &[&str] = if stale_hosts.contains(&d.host.as_str()) {
                    stale
                } else {
                    &[]
                };
                let version = if older.contains(&d.host.as_str()) {
                    OLD
                } else {
                    NEW
                };
                let remote = FakeRemote::new(&d.host, &log)
                    .answer(plan::facts::script(d, false), &facts_text(d, here, version));
                (d.host.clone(), remote)
            })
            .collect();
        let mut hosts = Vec::new();
        for d in &desired {
            let out = conns[&d.host]
                .run_checked(&plan::facts::script(d, false))
                .await
                .unwrap();
            hosts.push(plan::diff(d, &plan::facts::parse(&out.stdout_text())));
        }
        let plan = Plan {
            hosts,
            ..Plan::default()
        };
        let rep = Reporter::new(Format::Json);
        let walk = Walk {
            parallel: 2,
            max_unavailable,
        };
        let result = execute(
            &conns,
            &desired,
            &plan,
            &PHASES,
            &health(log.clone()),
            &walk,
            &rep,
        )
        .await;
        Run { log, plan, result }
    }

    fn healthy(log: Log) -> FakeHealth {
        FakeHealth {
            log,
            failing: BTreeSet::new(),
            etcd_quorum: true,
        }
    }

    /// Gates that pass, except the first of `phase` on `host`.
    fn failing_at(phase: Phase, host: &str) -> impl Fn(Log) -> FakeHealth + '_ {
        move |log| FakeHealth {
            failing: [(phase, host.to_string())].into(),
            ..healthy(log)
        }
    }

    /// The log without the bookkeeping commands (directories, hash records, reloads).
    fn events(log: &Log) -> Vec<String> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|e| !e.contains(": run "))
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn a_converged_cluster_plans_nothing() {
        let r = run(&[], &[], healthy).await;
        assert!(r.plan.is_empty(), "{:?}", r.plan);
        r.result.unwrap();
        // Nothing written or restarted; only the phases acting on the API look at the cluster.
        assert_eq!(events(&r.log), ["gate rbac", "gate addons"]);
    }

    #[tokio::test]
    async fn one_changed_file_restarts_only_its_reader() {
        let r = run(&["/etc/kubernetes/scheduler.conf"], &["cp-2"], healthy).await;
        let outcome = r.result.unwrap();
        assert_eq!(
            events(&r.log),
            [
                "cp-2: upload /etc/kubernetes/scheduler.conf",
                "cp-2: restart kube-scheduler",
                "gate controllers cp-2",
                "gate rbac",
                "gate addons",
            ]
        );
        assert_eq!((outcome.files_written, outcome.units_restarted), (1, 1));
    }

    #[tokio::test]
    async fn the_record_of_restarts_to_do_outlives_a_failed_run_only() {
        let conf = "/etc/kubernetes/scheduler.conf";
        let on_cp2 = |log: &Log| -> Vec<String> {
            log.lock()
                .unwrap()
                .iter()
                .filter(|e| e.starts_with("cp-2: ") || e.starts_with("gate controllers"))
                .map(|e| {
                    let recorded = e.contains(crate::layout::FOLLOW_UP);
                    match () {
                        _ if recorded && e.contains("printf") => "record".to_string(),
                        _ if recorded && e.contains("rm -f") => "clear".to_string(),
                        _ if e.contains(": run ") => "other".to_string(),
                        _ => e.clone(),
                    }
                })
                .filter(|e| e != "other")
                .collect()
        };
        let r = run(&[conf], &["cp-2"], healthy).await;
        r.result.unwrap();
        assert_eq!(
            on_cp2(&r.log),
            [
                "record",
                "cp-2: upload /etc/kubernetes/scheduler.conf",
                "cp-2: restart kube-scheduler",
                "gate controllers cp-2",
                "clear",
            ]
        );
        let failing = failing_at(Phase::Controllers, "cp-2");
        let r = run(&[conf], &["cp-2"], failing).await;
        r.result.unwrap_err();
        assert!(!on_cp2(&r.log).contains(&"clear".to_string()));
    }

    #[tokio::test]
    async fn a_failed_gate_stops_the_rollout_with_the_rest_serving() {
        let ca = "/etc/kubernetes/pki/front-proxy-ca.crt";
        let failing = failing_at(Phase::ApiServer, "cp-2");
        let r = run(&[ca], &["cp-1", "cp-2", "cp-3"], failing).await;
        let err = r.result.unwrap_err();
        assert!(
            err.to_string().contains("cp-2: gate kube-apiserver failed"),
            "{err:#}"
        );
        let events = events(&r.log);
        let restarts: Vec<&String> = events.iter().filter(|e| e.contains("restart")).collect();
        // One host at a time: cp-1 passed its gate, cp-2 failed its own, cp-3 still serves
        // untouched, and the controllers (the next phase) were never restarted.
        assert_eq!(
            restarts,
            [
                "cp-1: restart kube-apiserver",
                "cp-2: restart kube-apiserver"
            ]
        );
        let gates: Vec<&String> = events.iter().filter(|e| e.starts_with("gate")).collect();
        assert_eq!(
            gates,
            ["gate kube-apiserver cp-1", "gate kube-apiserver cp-2"]
        );
    }

    #[tokio::test]
    async fn etcd_members_restart_one_at_a_time_only_while_etcd_has_a_quorum() {
        let peer = "/etc/kubernetes/pki/etcd/peer.crt";
        let all = ["cp-1", "cp-2", "cp-3"];
        let etcd_events = |log: &Log| -> Vec<String> {
            events(log)
                .into_iter()
                .filter(|e| e.contains("etcd") && !e.contains("upload"))
                .collect()
        };
        let r = run(&[peer], &all, healthy).await;
        r.result.unwrap();
        let mut rolling = Vec::new();
        for h in all {
            rolling.push(format!("every etcd member healthy before {h}"));
            rolling.push(format!("{h}: restart etcd"));
            rolling.push(format!("gate etcd {h}"));
        }
        assert_eq!(etcd_events(&r.log), rolling);

        // Without a quorum there is nothing to keep serving: all members restart together.
        let no_quorum = |log| FakeHealth {
            etcd_quorum: false,
            ..healthy(log)
        };
        let r = run(&[peer], &all, no_quorum).await;
        r.result.unwrap();
        assert_eq!(
            etcd_events(&r.log),
            [
                "cp-1: restart etcd",
                "cp-2: restart etcd",
                "cp-3: restart etcd",
                "gate etcd cp-1 cp-2 cp-3"
            ]
        );
    }

    /// The events of one host's programs and of the workers phase.
    fn upgrade_events(log: &Log, filter: &[&str]) -> Vec<String> {
        events(log)
            .into_iter()
            .filter(|e| filter.iter().any(|f| e.contains(f)))
            .collect()
    }

    #[tokio::test]
    async fn an_upgrade_switches_each_link_with_its_restart_and_drains_workers_in_batches() {
        let all = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"];
        let r = run_with(&[], &[], &all, 2, healthy).await;
        r.result.unwrap();
        // The API servers one host at a time, each link switched just before its restart.
        let api = upgrade_events(&r.log, &["kube-apiserver"]);
        let mut want = Vec::new();
        for h in ["cp-1", "cp-2", "cp-3"] {
            want.push(format!("{h}: link /usr/local/bin/kube-apiserver {NEW}"));
            want.push(format!("{h}: restart kube-apiserver"));
            want.push(format!("gate kube-apiserver {h}"));
        }
        assert_eq!(api, want);
        // Both workers at once (--max-unavailable 2): drained, switched, gated, uncordoned.
        let workers = upgrade_events(&r.log, &["drain", "uncordon", "kubelet", "gate workers"]);
        assert_eq!(
            workers,
            [
                "drain worker-1 worker-2",
                &format!("worker-1: link /usr/local/bin/kubelet {NEW}"),
                "worker-1: restart kubelet",
                &format!("worker-2: link /usr/local/bin/kubelet {NEW}"),
                "worker-2: restart kubelet",
                "gate workers worker-1 worker-2",
                "uncordon worker-1 worker-2",
            ]
        );
        // The tools' links (no unit runs them) switch with the files.
        let files_done = events(&r.log)
            .iter()
            .position(|e| e.contains("restart"))
            .unwrap();
        assert!(events(&r.log)[..files_done]
            .contains(&format!("cp-1: link /usr/local/bin/etcdctl {NEW}")));

        let one_at_a_time = run_with(&[], &[], &["worker-1", "worker-2"], 1, healthy).await;
        one_at_a_time.result.unwrap();
        let drains = upgrade_events(&one_at_a_time.log, &["drain", "uncordon"]);
        assert_eq!(
            drains,
            [
                "drain worker-1",
                "uncordon worker-1",
                "drain worker-2",
                "uncordon worker-2"
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_gate_on_a_new_version_switches_that_host_back_and_stops() {
        let failing = failing_at(Phase::Workers, "worker-1");
        let r = run_with(&[], &[], &["worker-1", "worker-2"], 1, failing).await;
        let err = format!("{:#}", r.result.unwrap_err());
        assert!(
            err.contains("switched back at once (worker-1: kubelet"),
            "{err}"
        );
        assert!(err.contains("and passes its gate again"), "{err}");
        let workers = upgrade_events(&r.log, &["drain", "uncordon", "kubelet", "gate workers"]);
        assert_eq!(
            workers,
            [
                "drain worker-1",
                &format!("worker-1: link /usr/local/bin/kubelet {NEW}"),
                "worker-1: restart kubelet",
                "gate workers worker-1",
                "worker-1: gate workers failed",
                &format!("worker-1: link /usr/local/bin/kubelet {OLD}"),
                "worker-1: restart kubelet",
                "gate workers worker-1",
                "uncordon worker-1",
            ]
        );
        // worker-2's kubelet was not touched (its containerd was, in the phase before).
        assert!(!events(&r.log).contains(&"worker-2: restart kubelet".to_string()));
    }
}
