//! The state directory's record of the cluster's hosts, written before `apply` touches them:
//! which hosts provisioner installed (so one that leaves the inventory is a removal to confirm,
//! not something silently forgotten), and the pod range each worker was given (so a worker
//! keeps its range when another is added or removed before it in the inventory).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::inventory::{Cluster, Host, Roles};
use crate::pki::store;

/// One host as it was last applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    pub address: String,
    pub internal_ip: Ipv4Addr,
    pub etcd: bool,
    pub control_plane: bool,
    pub worker: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Ipv4Net>,
    /// Its etcd member joined the running cluster (it did not bootstrap it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub etcd_joins: bool,
    /// SSH login and port, to reach it once the inventory no longer names it.
    pub user: String,
    pub port: u16,
    pub sudo: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Members {
    #[serde(default)]
    pub hosts: Vec<Member>,
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("hosts.toml")
}

pub fn load(state_dir: &Path) -> Result<Members> {
    let p = path(state_dir);
    match store::read(&p)? {
        None => Ok(Members::default()),
        Some(text) => toml::from_str(&text).with_context(|| {
            format!(
                "{} is not provisioner's record of the cluster's hosts",
                p.display()
            )
        }),
    }
}

pub fn save(state_dir: &Path, m: &Members) -> Result<()> {
    let text = format!(
        "# Every host apply installed, with each worker's pod range; a host that leaves the \
         inventory stays here until `apply --remove NAME` has removed it.\n{}",
        toml::to_string(m)?
    );
    store::replace(&path(state_dir), text.as_bytes(), 0o600)
}

impl Members {
    /// The recorded hosts the inventory no longer names.
    pub fn removed<'a>(&'a self, c: &Cluster) -> Vec<&'a Member> {
        self.hosts
            .iter()
            .filter(|m| c.host(&m.name).is_none())
            .collect()
    }

    /// The record once `c`'s hosts are applied: each inventory host as it is now, then the
    /// removed ones still to be removed.
    pub fn with(&self, c: &Cluster) -> Members {
        let mut hosts: Vec<Member> = c.hosts.iter().map(member).collect();
        hosts.extend(self.removed(c).into_iter().cloned());
        Members { hosts }
    }

    /// The record without `names` (removed).
    pub fn without(&self, names: &[String]) -> Members {
        let mut m = self.clone();
        m.hosts.retain(|h| !names.contains(&h.name));
        m
    }
}

fn member(h: &Host) -> Member {
    Member {
        name: h.name.clone(),
        address: h.address.clone(),
        internal_ip: h.internal_ip,
        etcd: h.roles.etcd,
        control_plane: h.roles.control_plane,
        worker: h.roles.worker,
        pod_cidr: h.pod_cidr,
        etcd_joins: h.etcd_joins,
        user: h.ssh.user.clone(),
        port: h.ssh.port,
        sudo: h.ssh.sudo,
    }
}

/// A removed host, to connect to with the cluster's SSH settings.
pub fn as_host(m: &Member, c: &Cluster) -> Host {
    let mut ssh = c.hosts[0].ssh.clone();
    ssh.user = m.user.clone();
    ssh.port = m.port;
    ssh.sudo = m.sudo;
    ssh.host_key = None;
    Host {
        name: m.name.clone(),
        address: m.address.clone(),
        internal_ip: m.internal_ip,
        // Only reset reaches a removed host, over IPv4.
        internal_ipv6: None,
        roles: Roles {
            etcd: m.etcd,
            control_plane: m.control_plane,
            worker: m.worker,
        },
        pod_cidr: m.pod_cidr,
        pod_cidr_explicit: true,
        etcd_joins: m.etcd_joins,
        ssh,
    }
}

/// Marks the etcd hosts that join the running cluster rather than bootstrap it: once the record
/// names etcd members, a host it does not record as one is new to the cluster, and a host that
/// joined stays marked (it keeps `ETCD_INITIAL_CLUSTER_STATE=existing`).
pub fn mark_etcd_joins(c: &mut Cluster, m: &Members) {
    if !m.hosts.iter().any(|r| r.etcd) {
        return;
    }
    for h in c.hosts.iter_mut().filter(|h| h.roles.etcd) {
        h.etcd_joins = !m
            .hosts
            .iter()
            .any(|r| r.name == h.name && r.etcd && !r.etcd_joins);
    }
}

impl Members {
    /// The etcd hosts of `c` that this apply adds to the cluster: new to the record's members.
    pub fn new_etcd_members<'a>(&self, c: &'a Cluster) -> Vec<&'a Host> {
        c.etcd_hosts()
            .filter(|h| h.etcd_joins)
            .filter(|h| !self.hosts.iter().any(|r| r.name == h.name && r.etcd))
            .collect()
    }
}

/// Gives each worker whose range the inventory does not set the range recorded for it, and a
/// new worker the first block no other host has or had: ranges never move between workers.
pub fn keep_pod_ranges(c: &mut Cluster, m: &Members) {
    let recorded = |name: &str| {
        m.hosts
            .iter()
            .find(|r| r.name == name && r.worker)
            .and_then(|r| r.pod_cidr)
    };
    // Validation's pick (the next free block in inventory order) is the fallback.
    let mut fallback = Vec::new();
    for (i, h) in c.hosts.iter_mut().enumerate() {
        if h.roles.worker && !h.pod_cidr_explicit {
            fallback.push((i, h.pod_cidr));
            h.pod_cidr = recorded(&h.name);
        }
    }
    let mut taken: BTreeSet<Ipv4Net> = c.hosts.iter().filter_map(|h| h.pod_cidr).collect();
    taken.extend(m.hosts.iter().filter_map(|r| r.pod_cidr));
    let net = c.network.pod_cidr;
    let mut free = net
        .subnets(c.network.node_cidr_prefix)
        .into_iter()
        .flatten()
        .filter(|s| {
            !taken
                .iter()
                .any(|t| t.contains(&s.network()) || s.contains(&t.network()))
        });
    for (i, validated) in fallback {
        let h = &mut c.hosts[i];
        if h.pod_cidr.is_none() {
            h.pod_cidr = free.next().or(validated);
        }
    }
}

/// The hosts to remove, as a cluster of their own to connect to: the recorded hosts the
/// inventory no longer names. `plan` lists them all (`remove` is None); `apply` needs each
/// named with `--remove` (a typo in the inventory must not drain a node) and refuses a name
/// that is not such a host, and, for now, an etcd member or API server host.
pub fn leaving(c: &Cluster, members: &Members, remove: Option<&[String]>) -> Result<Cluster> {
    let removed = members.removed(c);
    let mut problems = Vec::new();
    if let Some(named) = remove {
        for n in named {
            if !removed.iter().any(|m| &m.name == n) {
                let why = if c.host(n).is_some() {
                    "is still in the inventory; take it out first"
                } else {
                    "was never applied by this state directory"
                };
                problems.push(format!("--remove {n}: {n} {why}"));
            }
        }
        for m in &removed {
            if !named.contains(&m.name) {
                problems.push(format!(
                    "{} is no longer in the inventory but was installed by apply; pass \
                     --remove {0} to drain it, delete its Node and reset it, or put it back",
                    m.name
                ));
            }
        }
        let members: Vec<&str> = removed
            .iter()
            .filter(|m| m.etcd && named.contains(&m.name))
            .map(|m| m.name.as_str())
            .collect();
        if members.len() > 1 {
            problems.push(format!(
                "{}: etcd members leave a running cluster one at a time (each change of the \
                 member list needs a quorum of the members before it); put all but {} back in \
                 the inventory, apply --remove {1}, then the next",
                members.join(", "),
                members[0]
            ));
        }
    }
    let joining = members.new_etcd_members(c);
    if remove.is_some() && joining.len() > 1 {
        let names: Vec<&str> = joining.iter().map(|h| h.name.as_str()).collect();
        problems.push(format!(
            "{}: etcd members join a running cluster one at a time (each is added as a learner \
             and promoted once caught up, before the next); leave all but {} out of the \
             inventory, apply, then add the next",
            names.join(", "),
            names[0]
        ));
    }
    if !problems.is_empty() {
        bail!("{}\nNothing was changed.", problems.join("\n"));
    }
    let mut scope = c.clone();
    scope.hosts = removed.iter().map(|m| as_host(m, c)).collect();
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(workers: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        let template = c.worker_hosts().next().unwrap().clone();
        c.hosts.retain(|h| !h.roles.worker);
        for (i, w) in workers.iter().enumerate() {
            let mut h = template.clone();
            h.name = w.to_string();
            h.internal_ip = Ipv4Addr::new(10, 0, 9, i as u8 + 1);
            h.pod_cidr = None;
            c.hosts.push(h);
        }
        // What validation does: blocks in inventory order.
        let mut blocks = c
            .network
            .pod_cidr
            .subnets(c.network.node_cidr_prefix)
            .unwrap();
        for h in c.hosts.iter_mut().filter(|h| h.roles.worker) {
            h.pod_cidr = blocks.next();
        }
        c
    }

    fn ranges(c: &Cluster) -> Vec<(String, String)> {
        c.worker_hosts()
            .map(|h| (h.name.clone(), h.pod_cidr.unwrap().to_string()))
            .collect()
    }

    #[test]
    fn a_worker_keeps_its_range_when_another_leaves_or_joins_before_it() {
        let first = cluster(&["w-1", "w-2"]);
        let record = Members::default().with(&first);
        assert_eq!(
            ranges(&first),
            [
                ("w-1".into(), "10.200.0.0/24".into()),
                ("w-2".into(), "10.200.1.0/24".into())
            ]
        );

        // w-1 leaves and w-0 joins at the top: validation alone would move w-2 to 10.200.1.0
        // (unchanged by luck) and give w-0 w-1's old range; the record keeps both apart.
        let mut next = cluster(&["w-0", "w-2"]);
        keep_pod_ranges(&mut next, &record);
        assert_eq!(
            ranges(&next),
            [
                ("w-0".into(), "10.200.2.0/24".into()),
                ("w-2".into(), "10.200.1.0/24".into())
            ]
        );
        assert_eq!(record.removed(&next).len(), 1);
        assert_eq!(record.removed(&next)[0].name, "w-1");

        // Once w-1 is removed from the record, its range is free again.
        let after = record.with(&next).without(&["w-1".to_string()]);
        let mut third = cluster(&["w-0", "w-2", "w-3"]);
        keep_pod_ranges(&mut third, &after);
        assert_eq!(ranges(&third)[2], ("w-3".into(), "10.200.0.0/24".into()));
    }

    #[test]
    fn an_etcd_member_added_to_a_running_cluster_joins_it_and_stays_marked() {
        // The bundled inventory: cp-1 to cp-3 run etcd.
        let mut first = cluster(&["w-1"]);
        mark_etcd_joins(&mut first, &Members::default());
        assert!(
            first.etcd_hosts().all(|h| !h.etcd_joins),
            "a new cluster bootstraps"
        );
        let record = Members::default().with(&first);
        assert!(record.new_etcd_members(&first).is_empty());

        // w-1 becomes an etcd member too.
        let mut grown = cluster(&["w-1"]);
        grown.hosts.last_mut().unwrap().roles.etcd = true;
        mark_etcd_joins(&mut grown, &record);
        let joins: Vec<&str> = grown
            .etcd_hosts()
            .filter(|h| h.etcd_joins)
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(joins, ["w-1"]);
        let new: Vec<&str> = record
            .new_etcd_members(&grown)
            .iter()
            .map(|h| h.name.as_str())
            .collect();
        assert_eq!(new, ["w-1"]);

        // Recorded, it is no longer new, and still joins (its unit keeps "existing").
        let after = record.with(&grown);
        let mut again = cluster(&["w-1"]);
        again.hosts.last_mut().unwrap().roles.etcd = true;
        mark_etcd_joins(&mut again, &after);
        assert!(after.new_etcd_members(&again).is_empty());
        assert!(again.host("w-1").unwrap().etcd_joins);
        assert!(!again.host("cp-1").unwrap().etcd_joins);
    }

    #[test]
    fn the_record_round_trips_and_names_removed_hosts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), Members::default());
        let c = cluster(&["w-1"]);
        let m = Members::default().with(&c);
        save(dir.path(), &m).unwrap();
        assert_eq!(load(dir.path()).unwrap(), m);
        assert!(m.removed(&c).is_empty());
        let host = as_host(&m.hosts[m.hosts.len() - 1], &c);
        assert_eq!(host.name, "w-1");
        assert!(host.roles.worker);
    }

    #[test]
    fn a_host_leaves_only_when_named_and_etcd_members_one_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let full = crate::inventory::bundled_for_test(dir.path());
        let record = Members::default().with(&full);
        let mut c = full.clone();
        c.hosts.retain(|h| h.name != "worker-1" && h.name != "cp-3");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        // plan: both listed, nothing refused.
        let all = leaving(&c, &record, None).unwrap();
        let listed: Vec<&str> = all.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(listed, ["cp-3", "worker-1"]);

        let err = leaving(&c, &record, Some(&names(&["worker-1"])))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cp-3 is no longer in the inventory"), "{err}");
        let err = leaving(
            &c,
            &record,
            Some(&names(&["worker-1", "cp-3", "cp-1", "typo"])),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("--remove cp-1: cp-1 is still in the inventory"),
            "{err}"
        );
        assert!(
            err.contains("--remove typo: typo was never applied"),
            "{err}"
        );

        let ok = leaving(&c, &record, Some(&names(&["worker-1", "cp-3"]))).unwrap();
        let listed: Vec<&str> = ok.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(listed, ["cp-3", "worker-1"]);
        assert!(ok.host("cp-3").unwrap().roles.etcd);

        let mut two = full.clone();
        two.hosts.retain(|h| h.name != "cp-2" && h.name != "cp-3");
        let err = leaving(&two, &record, Some(&names(&["cp-2", "cp-3"])))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cp-2, cp-3: etcd members leave a running cluster one at a time"),
            "{err}"
        );

        let mut c = full.clone();
        c.hosts.retain(|h| h.name != "worker-1");
        let ok = leaving(&c, &record, Some(&names(&["worker-1"]))).unwrap();
        assert_eq!(ok.hosts.len(), 1);
        assert_eq!(ok.hosts[0].address, full.host("worker-1").unwrap().address);
        assert!(leaving(&full, &record, Some(&[])).unwrap().hosts.is_empty());
    }
}
