//! `status`: whether a cluster is healthy, read from its hosts without changing anything. An
//! unreachable host or a failing check is a finding, never an error that hides the others.

mod clusters;
mod show;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures::future::join_all;
use serde::Serialize;

use super::api::{Api, Target};
use super::health::{self, Request, Tls};
use super::remote::Remote;
use super::Inputs;
use crate::component::Unit;
use crate::inventory::Host;
use crate::pki::identity::host_path;
use crate::pki::{self, Ca, Cert};
use crate::plan::{self, DesiredHost};
use crate::shell;
use crate::transport::Connection;

pub use clusters::clusters;
pub use show::text;

#[derive(Debug, Clone, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub reachable: bool,
    /// Each unit of the host and its state (`active`, `inactive`, `failed`, ...).
    pub units: BTreeMap<Unit, String>,
    /// The version of each unit's program as installed (the version directory its link
    /// points into), or "missing".
    pub versions: BTreeMap<Unit, String>,
    /// The host's own copy that expires first: what its services present, even where it
    /// differs from the state directory.
    pub soonest_expiry: Option<Expiry>,
}

#[derive(Debug, Serialize)]
pub struct EtcdStatus {
    /// Members that answered, out of the members etcd lists.
    pub answering: usize,
    pub members: usize,
    pub leader: Option<String>,
    /// The largest member's database.
    pub db_size_bytes: u64,
    pub version: String,
    /// Members added as learners and not promoted: a join that stopped half way.
    pub learners: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Expiry {
    pub certificate: String,
    pub days_left: i64,
}

#[derive(Debug, Serialize)]
pub struct ClusterStatus {
    pub cluster: String,
    pub inventory: PathBuf,
    pub hosts: Vec<HostStatus>,
    pub etcd: Option<EtcdStatus>,
    pub api_ready: bool,
    /// Workers whose Node is Ready, and the workers the inventory has.
    pub nodes_ready: Option<(usize, usize)>,
    pub soonest_expiry: Option<Expiry>,
    /// Files, directories, units and images `apply` would change; None when unknown.
    pub plan_changes: Option<usize>,
    /// Everything unhealthy, one line each; empty when the cluster is healthy.
    pub problems: Vec<String>,
}

impl ClusterStatus {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Collects the status of the cluster `inp` describes; `warn_days` is when a certificate's
/// coming expiry becomes a problem.
pub async fn collect(inp: &Inputs<'_>, inventory: PathBuf, warn_days: i64) -> ClusterStatus {
    let c = inp.cluster;
    let mut problems = Vec::new();
    let desired = match plan::desired(inp.rendered, inp.bundle) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{e:#}"));
            Vec::new()
        }
    };
    let conns: Vec<Option<Connection>> = join_all(c.hosts.iter().map(|h| async {
        Connection::connect(h, &c.ssh)
            .await
            .map_err(|e| e.to_string())
    }))
    .await
    .into_iter()
    .map(|r| r.map_err(|e| problems.push(e)).ok())
    .collect();
    read_hosts(inp, inventory, warn_days, desired, &conns, problems).await
}

/// [`collect`] once the hosts are connected (`conns`, None where a host is unreachable, in the
/// inventory's order of hosts), `problems` holding what was found so far.
async fn read_hosts<R: Remote>(
    inp: &Inputs<'_>,
    inventory: PathBuf,
    warn_days: i64,
    desired: Vec<plan::DesiredHost>,
    conns: &[Option<R>],
    mut problems: Vec<String>,
) -> ClusterStatus {
    let c = inp.cluster;
    let reachable: BTreeMap<&str, &R> = c
        .hosts
        .iter()
        .zip(conns)
        .filter_map(|(h, conn)| Some((h.name.as_str(), conn.as_ref()?)))
        .collect();

    // The hosts and the cluster-wide checks are all asked at once.
    let certs = crate::certs::check::expected(inp.rendered, inp.pki);
    let hosts_read = join_all(desired.iter().map(|d| async {
        let conn = reachable.get(d.host.as_str())?;
        let certs = certs.get(&d.host).map_or(&[][..], Vec::as_slice);
        Some(host_state(*conn, d, certs).await)
    }));
    let etcd_host = c
        .etcd_hosts()
        .find(|h| reachable.contains_key(h.name.as_str()));
    let etcd_read = async {
        let h = etcd_host?;
        Some(etcd_status(reachable[h.name.as_str()], h, c).await)
    };
    let api_host = c
        .control_plane_hosts()
        .find(|h| reachable.contains_key(h.name.as_str()));
    let api_read = async {
        let h = api_host?;
        let conn = reachable[h.name.as_str()];
        let (ready, nodes) = futures::join!(api_ready(conn, h, inp), nodes_ready(conn, h, inp));
        Some((h, ready, nodes))
    };
    let (per_host, etcd_result, api_result) = futures::join!(hosts_read, etcd_read, api_read);
    let mut hosts = Vec::new();
    let mut plan_changes = Some(0);
    for (h, d) in c.hosts.iter().zip(&desired) {
        let found = per_host.iter().flatten().find(|(s, _)| s.host == h.name);
        match found {
            Some((s, Ok(changes))) => {
                for (u, state) in &s.units {
                    if state != "active" {
                        problems.push(format!("{}: {u} is {state}", h.name));
                    }
                }
                if let Some(e) = s
                    .soonest_expiry
                    .as_ref()
                    .filter(|e| e.days_left < warn_days)
                {
                    problems.push(format!(
                        "{}: certificate {} expires in {} day(s): `provisioner certs regenerate`",
                        h.name, e.certificate, e.days_left
                    ));
                }
                plan_changes = plan_changes.map(|n| n + changes);
            }
            Some((_, Err(e))) => {
                problems.push(format!("{}: {e:#}", h.name));
                plan_changes = None;
            }
            None => plan_changes = None,
        }
        hosts.push(match found {
            Some((s, _)) => s.clone(),
            None => HostStatus {
                host: h.name.clone(),
                reachable: reachable.contains_key(h.name.as_str()),
                units: d.units.iter().map(|u| (*u, "unknown".into())).collect(),
                versions: BTreeMap::new(),
                soonest_expiry: None,
            },
        });
    }
    problems.extend(mixed_versions(&hosts));
    if let Some(n) = plan_changes.filter(|n| *n > 0) {
        problems.push(format!(
            "`provisioner plan` shows {n} change(s): the hosts differ from the inventory"
        ));
    }

    let etcd = match etcd_result {
        Some(r) => match r {
            Ok(s) => {
                if s.answering < s.members || s.leader.is_none() {
                    problems.push(format!(
                        "etcd: {} of {} member(s) answer, leader {}",
                        s.answering,
                        s.members,
                        s.leader.as_deref().unwrap_or("none")
                    ));
                }
                if !s.learners.is_empty() {
                    problems.push(format!(
                        "etcd: {} joined as a learner and has no vote yet; apply again to \
                         promote it",
                        s.learners.join(", ")
                    ));
                }
                Some(s)
            }
            Err(e) => {
                problems.push(format!("etcd: {e:#}"));
                None
            }
        },
        None => {
            problems.push("etcd: no member is reachable".into());
            None
        }
    };

    let (api_ready, nodes_ready) = match api_result {
        Some((h, ready, nodes)) => {
            let ready = match ready {
                Ok(()) => true,
                Err(e) => {
                    problems.push(format!("API server on {}: {e:#}", h.name));
                    false
                }
            };
            let nodes = match nodes {
                Ok(n) => Some(n),
                Err(e) => {
                    problems.push(format!("Nodes: {e:#}"));
                    None
                }
            };
            (ready, nodes)
        }
        None => {
            problems.push("API server: no control-plane host is reachable".into());
            (false, None)
        }
    };
    let workers = c.worker_hosts().count();
    if let Some(ready) = nodes_ready.filter(|r| *r < workers) {
        problems.push(format!("Nodes: {ready} of {workers} worker(s) Ready"));
    }

    let soonest_expiry = match soonest_expiry(inp) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("certificates: {e:#}"));
            None
        }
    };
    if let Some(e) = soonest_expiry.as_ref().filter(|e| e.days_left < warn_days) {
        problems.push(format!(
            "certificate {} expires in {} day(s): `provisioner certs regenerate`",
            e.certificate, e.days_left
        ));
    }

    ClusterStatus {
        cluster: c.name.clone(),
        inventory,
        hosts,
        etcd,
        api_ready,
        nodes_ready: nodes_ready.map(|r| (r, workers)),
        soonest_expiry,
        plan_changes,
        problems,
    }
}

/// A host's units and versions, and how many changes the plan has for it.
async fn host_state<R: Remote>(
    conn: &R,
    d: &DesiredHost,
    certs: &[crate::certs::check::Expected],
) -> (HostStatus, Result<usize>) {
    let mut status = HostStatus {
        host: d.host.clone(),
        reachable: true,
        units: BTreeMap::new(),
        versions: BTreeMap::new(),
        soonest_expiry: None,
    };
    let (facts_script, read_script) = (
        plan::facts::script(d, false),
        crate::certs::check::read_script(certs),
    );
    let (facts, read) = futures::join!(
        conn.run_checked(&facts_script),
        conn.run_checked(&read_script)
    );
    let facts = match facts {
        Ok(out) => plan::facts::parse(&out.stdout_text()),
        Err(e) => return (status, Err(e.into())),
    };
    match read {
        Ok(out) => status.soonest_expiry = host_expiry(&out.stdout_text(), certs),
        Err(e) => return (status, Err(e.into())),
    }
    for u in &d.units {
        let state = match facts.units.get(u) {
            Some(s) if s.active => "active",
            Some(s) if s.starting => "starting or stopping",
            Some(_) => "inactive",
            None => "not installed",
        };
        status.units.insert(*u, state.to_string());
        // The link names the version, without running anything on the host.
        let Some(program) = u.props().binaries.first() else {
            continue;
        };
        let link = d
            .links
            .iter()
            .find(|l| l.path.ends_with(&format!("/{}", program.name())));
        let now = link.and_then(|l| facts.links.get(&l.path));
        let version = match now.and_then(|t| crate::component::parse_release_path(t)) {
            Some((_, v)) => v.to_string(),
            None => "missing".to_string(),
        };
        status.versions.insert(*u, version);
    }
    let p = plan::diff(d, &facts);
    let changes = p.dirs.len() + p.files.len() + p.links.len() + p.units.len() + p.images.len();
    (status, Ok(changes))
}

/// A unit whose program runs at different versions on different hosts: an upgrade that did
/// not finish (or a rollback that did not).
fn mixed_versions(hosts: &[HostStatus]) -> Vec<String> {
    let mut by_unit: BTreeMap<Unit, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for h in hosts {
        // A missing program is a plan change, reported as such.
        for (u, v) in h.versions.iter().filter(|(_, v)| *v != "missing") {
            by_unit
                .entry(*u)
                .or_default()
                .entry(v.as_str())
                .or_default()
                .push(&h.host);
        }
    }
    by_unit
        .into_iter()
        .filter(|(_, versions)| versions.len() > 1)
        .map(|(u, versions)| {
            let list: Vec<String> = versions
                .iter()
                .map(|(v, hosts)| format!("{v} on {}", hosts.join(", ")))
                .collect();
            format!(
                "{u} runs {}: an upgrade or rollback did not finish; `provisioner plan` shows \
                 the rest",
                list.join(" and ")
            )
        })
        .collect()
}

#[derive(serde::Deserialize)]
struct EndpointStatus {
    #[serde(rename = "Endpoint")]
    endpoint: String,
    #[serde(rename = "Status")]
    status: MemberStatus,
}

// etcdctl leaves out zero values (omitempty): no leader is a missing `leader`.
#[derive(serde::Deserialize)]
struct MemberStatus {
    header: Header,
    #[serde(default)]
    version: String,
    #[serde(rename = "dbSize", default)]
    db_size: u64,
    #[serde(default)]
    leader: u64,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

#[derive(serde::Deserialize)]
struct Header {
    #[serde(default)]
    member_id: u64,
}

async fn etcd_status<R: Remote>(
    conn: &R,
    h: &Host,
    c: &crate::inventory::Cluster,
) -> Result<EtcdStatus> {
    let endpoint = h.etcd_client_url();
    let out = conn
        .run(&shell::etcd_status(&endpoint, host_path::ETCD_PKI))
        .await?;
    let members: Vec<EndpointStatus> = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "etcdctl endpoint status on {}: {}",
            h.name,
            out.stderr_text().trim()
        )
    })?;
    let hosts: Vec<(&str, String)> = c
        .etcd_hosts()
        .map(|e| (e.name.as_str(), e.internal_ip.to_string()))
        .collect();
    summarize(&members, &hosts)
}

/// The members' answers summed up, the leader named by its host in `hosts` (name, address).
fn summarize(members: &[EndpointStatus], hosts: &[(&str, String)]) -> Result<EtcdStatus> {
    let Some(first) = members.first() else {
        bail!("no member answers")
    };
    let host_of = |m: &EndpointStatus| {
        hosts
            .iter()
            .find(|(_, ip)| m.endpoint.contains(&format!("//{ip}:")))
            .map_or(m.endpoint.clone(), |(name, _)| name.to_string())
    };
    let leader = members
        .iter()
        .find(|m| first.status.leader != 0 && m.status.header.member_id == first.status.leader)
        .map(host_of);
    Ok(EtcdStatus {
        answering: members.len(),
        members: hosts.len().max(members.len()),
        leader,
        db_size_bytes: members.iter().map(|m| m.status.db_size).max().unwrap_or(0),
        version: first.status.version.clone(),
        learners: members
            .iter()
            .filter(|m| m.status.is_learner)
            .map(host_of)
            .collect(),
    })
}

async fn api_ready<R: Remote>(conn: &R, h: &Host, inp: &Inputs<'_>) -> Result<()> {
    let tls = Tls {
        ca: inp.pki.ca(Ca::Cluster).cert.clone(),
        client: Some(inp.pki.leaf(Cert::Admin, None).clone()),
    };
    let ip = h.internal_ip.to_string();
    let r = Request {
        conn,
        target: &ip,
        port: 6443,
        tls: Some(&tls),
        server_name: &h.name,
        path: "/readyz",
    };
    let resp = tokio::time::timeout(Duration::from_secs(15), health::send(&r))
        .await
        .context("no answer within 15 s")??;
    if resp.status != 200 {
        bail!("/readyz answers HTTP {}: {}", resp.status, resp.body.trim());
    }
    Ok(())
}

/// The workers whose Node reports Ready.
async fn nodes_ready<R: Remote>(conn: &R, h: &Host, inp: &Inputs<'_>) -> Result<usize> {
    let address = h.internal_ip.to_string();
    let api = Api::connect(&Target {
        conn,
        address: &address,
        server_name: &h.name,
        ca: &inp.pki.ca(Ca::Cluster).cert,
        client: inp.pki.leaf(Cert::Admin, None),
    })
    .await?;
    let ready = api.ready_nodes().await?;
    Ok(inp
        .cluster
        .worker_hosts()
        .filter(|w| ready.contains(&w.name))
        .count())
}

/// The certificate among a host's copies (as `read_script` printed them) that expires first;
/// a missing or unreadable copy is the plan's finding, not this one's.
fn host_expiry(read: &str, certs: &[crate::certs::check::Expected]) -> Option<Expiry> {
    soonest(
        crate::certs::check::parse_read(read, certs)
            .into_iter()
            .filter_map(|(path, pem)| {
                let info = pki::inspect::parse(&pem?).ok()?;
                let name = certs.iter().find(|e| e.path == path)?.name.clone();
                Some((name, info.not_after))
            }),
    )
}

/// The first to expire of `(certificate, not_after)` pairs, in days from now.
fn soonest(certs: impl Iterator<Item = (String, i64)>) -> Option<Expiry> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    certs
        .min_by_key(|(_, t)| *t)
        .map(|(certificate, t)| Expiry {
            certificate,
            days_left: (t - now).div_euclid(86_400),
        })
}

/// The certificate of the state directory that expires first (CAs included).
fn soonest_expiry(inp: &Inputs<'_>) -> Result<Option<Expiry>> {
    let listed = pki::list(inp.cluster)?;
    Ok(soonest(listed.iter().filter_map(|l| {
        Some((l.id(), l.info.as_ref()?.not_after))
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_at_two_versions_is_a_problem() {
        let host = |name: &str, kubelet: &str| HostStatus {
            host: name.into(),
            reachable: true,
            units: BTreeMap::new(),
            versions: [
                (Unit::Kubelet, kubelet.to_string()),
                (Unit::KubeProxy, "1.37.2".into()),
            ]
            .into(),
            soonest_expiry: None,
        };
        let hosts = [
            host("w-1", "1.37.2"),
            host("w-2", "1.36.3"),
            host("w-3", "1.36.3"),
        ];
        assert_eq!(
            mixed_versions(&hosts),
            [
                "kubelet runs 1.36.3 on w-2, w-3 and 1.37.2 on w-1: an upgrade or rollback did \
              not finish; `provisioner plan` shows the rest"
            ]
        );
        assert!(mixed_versions(&hosts[..1]).is_empty());
    }

    #[test]
    fn etcds_status_names_the_leader_by_its_host() {
        let json = r#"[{"Endpoint":"https://10.0.0.1:2379","Status":{"header":{"member_id":1},"version":"3.7.0","dbSize":100,"leader":2}},
                       {"Endpoint":"https://10.0.0.2:2379","Status":{"header":{"member_id":2},"version":"3.7.0","dbSize":300,"leader":2}}]"#;
        let members: Vec<EndpointStatus> = serde_json::from_str(json).unwrap();
        let hosts = [
            ("cp-1", "10.0.0.1".to_string()),
            ("cp-2", "10.0.0.2".to_string()),
            ("cp-3", "10.0.0.3".to_string()),
        ];
        let s = summarize(&members, &hosts).unwrap();
        assert_eq!(s.leader.as_deref(), Some("cp-2"));
        assert_eq!((s.answering, s.members, s.db_size_bytes), (2, 3, 300));
        assert!(s.learners.is_empty());
        let joining: Vec<EndpointStatus> = serde_json::from_str(
            r#"[{"Endpoint":"https://10.0.0.3:2379","Status":{"header":{"member_id":3},"version":"3.7.0","leader":2,"isLearner":true}}]"#,
        )
        .unwrap();
        assert_eq!(summarize(&joining, &hosts).unwrap().learners, ["cp-3"]);
        assert!(summarize(&[], &hosts).is_err());
        // Without a leader etcdctl leaves the field out.
        let leaderless: Vec<EndpointStatus> = serde_json::from_str(
            r#"[{"Endpoint":"https://10.0.0.1:2379","Status":{"header":{"member_id":1},"version":"3.7.0"}}]"#,
        )
        .unwrap();
        assert_eq!(summarize(&leaderless, &hosts).unwrap().leader, None);
    }
}
