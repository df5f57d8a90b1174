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
use super::{Inputs, Outcome, Reporter};
use crate::component::{Phase, Unit};
use crate::layout::{BACKUPS, ETCD_DATA_DIR};
use crate::plan::installed;
use crate::plan::{HostPlan, Plan, UnitAction, UnitChange};
use crate::shell;
use crate::transport::{self, Connection};

/// The phases started again after the restore, in order.
const RESTART: [Phase; 3] = [Phase::Etcd, Phase::ApiServer, Phase::Controllers];

/// Restores `snapshot` (checked against `meta` first) on every etcd member, each member's old
/// data kept beside the new one.
pub async fn restore(
    inp: &Inputs<'_>,
    conns: &BTreeMap<String, Connection>,
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
            .upload_with_progress(
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
