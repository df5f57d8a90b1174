//! `etcd restore`: every member restored from the same snapshot, with the control plane stopped
//! meanwhile, then started again behind the usual gates.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::execute;
use super::gates::Gates;
use super::snapshot::Metadata;
use super::stage::Stage;
use super::{Inputs, Outcome, Remote, Reporter};
use crate::component::{Phase, Unit};
use crate::layout::{BACKUPS, ETCD_DATA_DIR};
use crate::plan::installed;
use crate::plan::{HostPlan, Plan, UnitAction, UnitChange};
use crate::shell;
use crate::transport;

/// The phases started again after the restore, in order.
const RESTART: [Phase; 3] = [Phase::Etcd, Phase::ApiServer, Phase::Controllers];

/// `etcd restore` under the cluster's lease: the PKI as it is, the files rendered from it, then
/// [`restore`].
pub fn run(
    c: &crate::inventory::Cluster,
    bundle: &crate::bundle::Bundle,
    snapshot: &Path,
    meta: &Metadata,
    deadline: Duration,
    session: &super::Session,
) -> Result<Outcome> {
    let rep = &session.rep;
    Stage::Pki.start(rep);
    let (_, pki) = crate::pki::existing(c)?;
    let rendered = super::render(c, &pki, rep)?;
    let inputs = Inputs {
        cluster: c,
        rendered: &rendered,
        pki: &pki,
        bundle,
    };
    session.block_on(async {
        let conns = super::open(c, rep).await?;
        let held = super::lease::take(c, &conns, "etcd restore", false, rep).await?;
        let work = restore(&inputs, &conns, snapshot, meta, deadline, rep);
        super::under_lease(Some(held), work).await
    })
}

/// Restores `snapshot` (checked against `meta` first) on every etcd member, each member's old
/// data kept beside the new one.
pub async fn restore<R: Remote>(
    inp: &Inputs<'_>,
    conns: &BTreeMap<String, R>,
    snapshot: &Path,
    meta: &Metadata,
    deadline: Duration,
    rep: &Reporter,
) -> Result<Outcome> {
    let c = inp.cluster;
    let (sha, _) = crate::bundle::sha256_file(snapshot)?;
    if sha != meta.sha256 {
        bail!(
            "{} has SHA-256 {sha}, but its metadata says {}: it is damaged or not the snapshot \
             the metadata describes; nothing was changed",
            snapshot.display(),
            meta.sha256
        );
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let on_host = format!("{BACKUPS}/restore-{stamp}.db");
    let members: Vec<&crate::inventory::Host> = c.etcd_hosts().collect();

    Stage::CopySnapshot.start(rep);
    for h in &members {
        conns[&h.name]
            .upload(
                transport::Source::File(snapshot),
                &on_host,
                0o600,
                Some(&sha),
                &|_| {},
            )
            .await
            .with_context(|| format!("{}: copying the snapshot", h.name))?;
    }

    Stage::StopControlPlane.start(rep);
    let control_plane = [
        Unit::KubeApiserver,
        Unit::KubeControllerManager,
        Unit::KubeScheduler,
    ]
    .map(Unit::file_name);
    for h in c.control_plane_hosts() {
        conns[&h.name]
            .run_checked(&shell::stop_units(&control_plane))
            .await
            .with_context(|| format!("{}: stopping the control plane", h.name))?;
    }
    for h in &members {
        conns[&h.name]
            .run_checked(&shell::stop_units(&[Unit::Etcd.file_name()]))
            .await
            .with_context(|| format!("{}: stopping etcd", h.name))?;
    }

    let staging = format!("{ETCD_DATA_DIR}.restore-{stamp}");
    let aside = format!("{ETCD_DATA_DIR}.before-restore-{stamp}");
    let stopped = |e: anyhow::Error| {
        e.context(format!(
            "the restore did not finish and the control plane may be down; a member already \
             restored keeps its previous data in {aside}. Fix the cause \
             and run the same restore again"
        ))
    };
    Stage::RestoreMembers.start(rep);
    // A new cluster token: members of the old cluster cannot join the restored one by mistake.
    let token = format!("{}-etcd-restore-{stamp}", c.name);
    let initial_cluster = c.etcd_initial_cluster();
    for h in &members {
        let peer_url = h.etcd_peer_url();
        let conn = &conns[&h.name];
        conn.run_checked(&installed::track_dirs(&[&staging, &aside]))
            .await?;
        conn.run_checked(&shell::etcd_restore(&shell::EtcdRestore {
            snapshot: &on_host,
            name: &h.name,
            initial_cluster: &initial_cluster,
            token: &token,
            peer_url: &peer_url,
            data_dir: ETCD_DATA_DIR,
            staging: &staging,
            aside: &aside,
        }))
        .await
        .with_context(|| format!("{}: etcdutl snapshot restore", h.name))
        .map_err(stopped)?;
        conn.run_checked(&shell::remove_file(&on_host)).await?;
    }

    // Started again as a first start is: etcd members together, then the API servers, then
    // the controllers, each behind its gate.
    let plan = Plan {
        hosts: c
            .hosts
            .iter()
            .map(|h| HostPlan {
                host: h.name.clone(),
                dirs: Vec::new(),
                files: Vec::new(),
                links: Vec::new(),
                units: RESTART
                    .iter()
                    .flat_map(|p| p.units())
                    .filter(|u| match u.props().phase {
                        Phase::Etcd => h.roles.etcd,
                        _ => h.roles.control_plane,
                    })
                    .map(|unit| UnitChange {
                        unit,
                        action: UnitAction::Start,
                        reason: "etcd restored".into(),
                        enable: false,
                    })
                    .collect(),
                images: Vec::new(),
                removes: Vec::new(),
                follow_up: Default::default(),
            })
            .collect(),
        ..Plan::default()
    };
    let gates = Gates {
        inp,
        deadline,
        drain_deadline: deadline,
        conns,
        rep,
    };
    let walk = execute::Walk {
        parallel: c.ssh.parallelism as usize,
        max_unavailable: 1,
    };
    execute::execute(conns, &[], &plan, &RESTART, &gates, &walk, rep)
        .await
        .map_err(stopped)
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Fixture, Log};
    use super::super::Format;
    use super::*;

    fn metadata(c: &crate::inventory::Cluster, sha256: String) -> Metadata {
        Metadata {
            cluster: c.name.clone(),
            file: "s.db".into(),
            sha256,
            size: 8,
            revision: 7,
            total_keys: 3,
            etcd_version: "3.6.0".into(),
            kubernetes_version: c.kubernetes.to_string(),
            members: vec!["cp-1".into()],
            taken_on: "cp-1".into(),
            taken_at: "2026-12-07T00:00:00Z".into(),
        }
    }

    /// Restores a snapshot holding `content` whose metadata says `sha256`, on fake hosts
    /// (whose gates fail: the fake has no network); returns the outcome and what happened.
    async fn restore_fake(content: &[u8], sha256: String) -> (Result<Outcome>, Vec<String>) {
        let f = Fixture::new(|_| {});
        let log = Log::default();
        let conns = f.hosts(&log);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.db");
        std::fs::write(&file, content).unwrap();
        let meta = metadata(&f.cluster, sha256);
        let rep = Reporter::with_writer(Format::Json, Box::new(std::io::sink()));
        let deadline = Duration::from_millis(100);
        let r = restore(&f.inputs(), &conns, &file, &meta, deadline, &rep).await;
        let events = log.lock().unwrap().clone();
        (r, events)
    }

    #[tokio::test]
    async fn a_snapshot_that_does_not_match_its_metadata_changes_nothing() {
        let (r, events) = restore_fake(b"snapshot", crate::digest::sha256_hex(b"other")).await;
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("damaged") && e.contains("nothing was changed"),
            "{e}"
        );
        assert!(events.is_empty(), "{events:?}");
    }

    #[tokio::test]
    async fn every_member_stops_before_any_is_restored_and_etcd_starts_after_all() {
        let (r, events) = restore_fake(b"snapshot", crate::digest::sha256_hex(b"snapshot")).await;
        // The fake has no network: the first gate, etcd's, fails.
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("etcd member healthy"), "{e}");
        let position = |event: &str| {
            events
                .iter()
                .position(|e| e == event)
                .unwrap_or_else(|| panic!("no {event:?} in {events:#?}"))
        };
        let first_line = |command: String| command.lines().next().unwrap().to_string();
        let members = ["cp-1", "cp-2", "cp-3"];
        let stop_cp = first_line(shell::stop_units(
            &[
                Unit::KubeApiserver,
                Unit::KubeControllerManager,
                Unit::KubeScheduler,
            ]
            .map(Unit::file_name),
        ));
        let stop_etcd = first_line(shell::stop_units(&[Unit::Etcd.file_name()]));
        let copied = members.map(|h| {
            events
                .iter()
                .position(|e| e.starts_with(&format!("{h}: upload {BACKUPS}/restore-")))
                .unwrap()
        });
        let cp_stopped = members.map(|h| position(&format!("{h}: run {stop_cp}")));
        let etcd_stopped = members.map(|h| position(&format!("{h}: run {stop_etcd}")));
        let started = members.map(|h| position(&format!("{h}: start etcd")));
        let restored = members.map(|h| {
            events
                .iter()
                .position(|e| e.starts_with(&format!("{h}: run")) && e.contains("restore"))
                .unwrap()
        });
        let last = |p: [usize; 3]| *p.iter().max().unwrap();
        let first = |p: [usize; 3]| *p.iter().min().unwrap();
        assert!(last(copied) < first(cp_stopped), "{events:#?}");
        assert!(last(cp_stopped) < first(etcd_stopped), "{events:#?}");
        assert!(last(etcd_stopped) < first(restored), "{events:#?}");
        assert!(last(restored) < first(started), "{events:#?}");
        assert!(
            !events.iter().any(|e| e.contains("start kube-apiserver")),
            "the API servers wait for etcd's gate: {events:#?}"
        );
    }
}
