//! The etcd phase's gates: each member healthy, and every member healthy before one restarts;
//! a member joining the running cluster is added as a learner before it starts and promoted
//! once it has caught up.
use anyhow::{anyhow, bail, Context, Result};

use super::super::etcd_members::{self, Member};
use super::super::health::{self, retry_until, Request, Tls, HALF_SECOND};
use super::super::remote::Remote;
use super::Gates;
use crate::component::Unit;
use crate::pki::identity::host_path::ETCD_PKI;
use crate::pki::{Ca, Cert};
use crate::shell;

impl<R: Remote> Gates<'_, R> {
    /// Each member answers healthy over mTLS; one that joins is then promoted.
    pub(super) async fn etcd(&self, hosts: &[&str]) -> Result<()> {
        for h in hosts {
            self.wait_for(
                h,
                Some(Unit::Etcd),
                "etcd member healthy (mTLS /health)",
                self.etcd_health(h),
            )
            .await?;
            if self.joins(h) {
                self.wait_for(
                    h,
                    Some(Unit::Etcd),
                    "etcd learner caught up and promoted to a voting member",
                    retry_until(self.deadline, HALF_SECOND, || self.promote(h)),
                )
                .await?;
            }
        }
        Ok(())
    }

    fn joins(&self, host: &str) -> bool {
        self.inp.cluster.host(host).is_some_and(|h| h.etcd_joins)
    }

    fn client_url(&self, host: &str) -> String {
        self.host(host).etcd_client_url()
    }

    fn peer_url(&self, host: &str) -> String {
        self.host(host).etcd_peer_url()
    }

    /// A member of the running cluster to ask about membership: an etcd host not joining now.
    fn established_member(&self, joining: &[&str]) -> Result<&str> {
        self.inp
            .cluster
            .etcd_hosts()
            .map(|h| h.name.as_str())
            .find(|h| !joining.contains(h) && self.conns.contains_key(*h))
            .ok_or_else(|| {
                anyhow!(
                    "no etcd member that stays in the cluster to change its member list through"
                )
            })
    }

    /// `etcdctl` on `via` against its own member.
    async fn etcdctl(&self, via: &str, command: &str) -> Result<Vec<u8>> {
        let o = self.conns[via]
            .run_checked(command)
            .await
            .with_context(|| format!("{via}: etcdctl"))?;
        Ok(o.stdout)
    }

    async fn members(&self, via: &str) -> Result<Vec<Member>> {
        let endpoint = self.client_url(via);
        let out = self
            .etcdctl(via, &shell::etcd_members(&endpoint, ETCD_PKI))
            .await?;
        etcd_members::parse(&out)
    }

    /// Adds each joining host of `hosts` that the cluster does not list yet, as a learner: the
    /// member it starts as must be in the member list, and a learner has no vote, so the
    /// quorum is the same while it catches up.
    pub(super) async fn add_learners(&self, hosts: &[&str]) -> Result<()> {
        let joining: Vec<&str> = hosts.iter().copied().filter(|h| self.joins(h)).collect();
        if joining.is_empty() {
            return Ok(());
        }
        let via = self.established_member(&joining)?;
        let endpoint = self.client_url(via);
        for h in joining {
            let url = self.peer_url(h);
            let add = retry_until(self.deadline, HALF_SECOND, || async {
                let listed = self.members(via).await?;
                if listed.iter().any(|m| m.peer_urls.contains(&url)) {
                    return Ok(());
                }
                let command = shell::etcd_add_learner(&endpoint, ETCD_PKI, h, &url);
                self.etcdctl(via, &command).await.map(drop)
            });
            self.wait_for(
                h,
                None,
                "etcd member added to the cluster as a learner",
                add,
            )
            .await?;
        }
        Ok(())
    }

    /// Refuses unless the members that stay (every etcd host of the inventory) keep a quorum
    /// of their own without the leaving ones: as many healthy as a majority of them. Nothing is
    /// changed either way.
    pub async fn etcd_quorum_without(&self, leaving: &[&str]) -> Result<()> {
        let staying: Vec<&str> = self
            .inp
            .cluster
            .etcd_hosts()
            .map(|h| h.name.as_str())
            .collect();
        let mut down = Vec::new();
        for h in &staying {
            if let Err(e) = self.etcd_health_once(h).await {
                down.push(format!("{h} ({e:#})"));
            }
        }
        keeps_quorum(leaving, staying.len(), &down)
    }

    /// Removes the member at `peer_url` (the leaving host `host`'s) from the cluster, through a
    /// member that stays; nothing when the cluster does not list it. etcd itself refuses while
    /// a member that stays has been connected to the leader for less than a few seconds (its
    /// "unhealthy cluster"), so this is retried until the gate's deadline.
    pub async fn remove_etcd_member(&self, host: &str, peer_url: &str) -> Result<()> {
        let via = self.established_member(&[host])?;
        let endpoint = self.client_url(via);
        let remove = retry_until(self.deadline, HALF_SECOND, || async {
            let listed = self.members(via).await?;
            let Some(m) = listed
                .iter()
                .find(|m| m.peer_urls.iter().any(|u| u == peer_url))
            else {
                return Ok(());
            };
            let command = shell::etcd_remove_member(&endpoint, ETCD_PKI, &m.id);
            self.etcdctl(via, &command).await.map(drop)
        });
        self.wait_for(host, None, "etcd member removed from the cluster", remove)
            .await
    }

    /// Promotes `host`'s member if it is still a learner; etcd refuses until it has caught up.
    async fn promote(&self, host: &str) -> Result<()> {
        let via = self.established_member(&[host])?;
        let url = self.peer_url(host);
        let listed = self.members(via).await?;
        let Some(m) = listed.iter().find(|m| m.peer_urls.contains(&url)) else {
            bail!("the cluster does not list a member at {url}");
        };
        if m.is_learner {
            let endpoint = self.client_url(via);
            self.etcdctl(via, &shell::etcd_promote(&endpoint, ETCD_PKI, &m.id))
                .await?;
        }
        Ok(())
    }

    /// Every etcd member answers healthy right now (no waiting).
    pub(super) async fn etcd_all_healthy(&self) -> Result<()> {
        for h in self.inp.cluster.etcd_hosts() {
            self.etcd_health_once(&h.name)
                .await
                .with_context(|| format!("etcd member {}", h.name))?;
        }
        Ok(())
    }

    /// The gate before an etcd member goes down for a restart: every member is healthy, so the
    /// others keep a quorum while it is away.
    pub(super) async fn gate_etcd_quorum(&self, host: &str) -> Result<()> {
        let check = retry_until(self.deadline, HALF_SECOND, || self.etcd_all_healthy());
        self.wait_for(
            host,
            Some(Unit::Etcd),
            "every etcd member healthy before this one restarts",
            check,
        )
        .await
    }

    async fn etcd_health(&self, host: &str) -> Result<()> {
        retry_until(self.deadline, HALF_SECOND, || self.etcd_health_once(host)).await
    }

    /// One `/health` request to the member over mTLS with the healthcheck client certificate.
    async fn etcd_health_once(&self, host: &str) -> Result<()> {
        let tls = Tls {
            ca: self.inp.pki.ca(Ca::Etcd).cert.clone(),
            client: Some(self.inp.pki.leaf(Cert::EtcdHealthcheckClient, None).clone()),
        };
        let ip = self.ip(host);
        let r = Request {
            conn: &self.conns[host],
            target: &ip,
            port: crate::layout::ETCD_CLIENT_PORT,
            tls: Some(&tls),
            server_name: host,
            path: "/health",
        };
        let resp = health::send(&r).await?;
        if resp.status == 200 && resp.body.contains("\"true\"") {
            Ok(())
        } else {
            bail!("HTTP {}: {}", resp.status, resp.body.trim())
        }
    }
}

/// Whether `members` that stay, of which `down` are not healthy, keep a quorum of their own
/// without `leaving`: as many healthy as a majority of them.
fn keeps_quorum(leaving: &[&str], members: usize, down: &[String]) -> Result<()> {
    let healthy = members - down.len();
    let quorum = members / 2 + 1;
    if healthy < quorum {
        bail!(
            "removing {} would leave etcd {healthy} healthy member(s) of {members}, fewer than \
             the {quorum} a quorum needs; down: {}. Bring them back first.",
            leaving.join(", "),
            down.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::super::fake::{FakeRemote, Fixture, Log};
    use super::super::super::{Format, Reporter};
    use super::*;
    use crate::inventory::Cluster;

    #[test]
    fn a_removal_needs_a_majority_of_the_members_that_stay_healthy() {
        assert!(keeps_quorum(&["cp-4"], 3, &[]).is_ok());
        assert!(keeps_quorum(&["cp-4"], 3, &["cp-2 (down)".into()]).is_ok());
        let e = keeps_quorum(&["cp-4"], 3, &["cp-2 (down)".into(), "cp-3 (down)".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1 healthy member(s) of 3, fewer than the 2"),
            "{e}"
        );
        assert!(e.contains("cp-2 (down), cp-3 (down)"), "{e}");
        assert!(keeps_quorum(&["cp-3"], 2, &["cp-2 (down)".into()]).is_err());
    }

    /// The bundled inventory with cp-3 joining the running etcd cluster.
    fn fixture() -> Fixture {
        Fixture::new(|c| {
            for h in &mut c.hosts {
                h.etcd_joins = h.name == "cp-3";
            }
        })
    }

    /// `etcdctl member list -w json` listing cp-1 and cp-2, and cp-3 as `cp3` says (None: not
    /// listed, Some(true): a learner).
    fn member_list(c: &Cluster, cp3: Option<bool>) -> String {
        let url = |h: &str| c.host(h).unwrap().etcd_peer_url();
        let mut members = vec![
            serde_json::json!({"ID": "a1", "name": "cp-1", "peerURLs": [url("cp-1")]}),
            serde_json::json!({"ID": "b2", "name": "cp-2", "peerURLs": [url("cp-2")]}),
        ];
        if let Some(learner) = cp3 {
            members.push(
                serde_json::json!({"ID": "c3", "peerURLs": [url("cp-3")], "isLearner": learner}),
            );
        }
        serde_json::json!({ "members": members }).to_string()
    }

    /// Runs `step` on gates over fake hosts where cp-1 lists the members as `cp3` says;
    /// returns the commands that were run (every one not answered from the member list).
    async fn with_members(
        cp3: Option<bool>,
        step: impl AsyncFnOnce(&Gates<'_, FakeRemote>) -> Result<()>,
    ) -> (Result<()>, Vec<String>) {
        let f = fixture();
        let c = &f.cluster;
        let log = Log::default();
        let list = shell::etcd_members(&c.host("cp-1").unwrap().etcd_client_url(), ETCD_PKI);
        let conns: BTreeMap<String, FakeRemote> = c
            .hosts
            .iter()
            .map(|h| {
                let fake =
                    FakeRemote::new(&h.name, &log).answer(list.clone(), &member_list(c, cp3));
                (h.name.clone(), fake)
            })
            .collect();
        let inp = f.inputs();
        let gates = Gates {
            inp: &inp,
            deadline: Duration::from_millis(200),
            drain_deadline: Duration::from_millis(200),
            conns: &conns,
            rep: &Reporter::with_writer(Format::Json, Box::new(std::io::sink())),
        };
        let result = step(&gates).await;
        let ran = log.lock().unwrap().clone();
        (result, ran)
    }

    #[tokio::test]
    async fn a_joining_member_is_added_as_a_learner_through_one_that_stays_once() {
        let (r, ran) = with_members(None, async |g| g.add_learners(&["cp-2", "cp-3"]).await).await;
        r.unwrap();
        let c = fixture().cluster;
        let add = shell::etcd_add_learner(
            &c.host("cp-1").unwrap().etcd_client_url(),
            ETCD_PKI,
            "cp-3",
            &c.host("cp-3").unwrap().etcd_peer_url(),
        );
        assert_eq!(ran, [format!("cp-1: run {}", add.lines().next().unwrap())]);

        // Listed already (an apply that stopped after adding it): nothing is added twice.
        let (r, ran) = with_members(Some(true), async |g| g.add_learners(&["cp-3"]).await).await;
        r.unwrap();
        assert!(ran.is_empty(), "{ran:?}");
    }

    #[tokio::test]
    async fn a_learner_is_promoted_and_a_voting_member_left_alone() {
        let (r, ran) = with_members(Some(true), async |g| g.promote("cp-3").await).await;
        r.unwrap();
        let c = fixture().cluster;
        let promote =
            shell::etcd_promote(&c.host("cp-1").unwrap().etcd_client_url(), ETCD_PKI, "c3");
        assert_eq!(
            ran,
            [format!("cp-1: run {}", promote.lines().next().unwrap())]
        );

        let (r, ran) = with_members(Some(false), async |g| g.promote("cp-3").await).await;
        r.unwrap();
        assert!(ran.is_empty(), "{ran:?}");

        let (r, _) = with_members(None, async |g| g.promote("cp-3").await).await;
        assert!(r
            .unwrap_err()
            .to_string()
            .contains("does not list a member at"));
    }
}
