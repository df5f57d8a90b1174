//! Version changes: which releases a plan moves to another version, and whether upstream's
//! version-skew policy allows the move. Each host's current version of a program is the
//! version directory its link points into (see [`crate::layout::RELEASES_DIR`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{DesiredHost, Facts};
use crate::component::{parse_release_path, Program, Release};
use crate::history::History;
use crate::inventory::version::Semver;

/// One release going from the versions the hosts run to the bundle's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub release: String,
    /// The versions hosts run now (more than one after an interrupted upgrade).
    pub from: BTreeSet<String>,
    pub to: String,
    pub hosts: BTreeSet<String>,
}

impl Move {
    /// "kubernetes 1.36.3 → 1.37.2".
    pub fn describe(&self) -> String {
        let from: Vec<&str> = self.from.iter().map(String::as_str).collect();
        format!("{} {} → {}", self.release, from.join(", "), self.to)
    }

    /// A move between minors (or majors): what cannot be undone for etcd.
    pub fn changes_minor(&self) -> bool {
        let to = self.to.parse::<Semver>().ok();
        self.from.iter().any(|f| {
            let from = f.parse::<Semver>().ok();
            match (from, to) {
                (Some(a), Some(b)) => (a.major, a.minor) != (b.major, b.minor),
                _ => true,
            }
        })
    }
}

/// A host's program at one version now and another after the plan.
struct Change<'a> {
    host: &'a str,
    program: &'a str,
    release: &'a str,
    from: &'a str,
    to: &'a str,
}

fn changes<'a>(hosts: &[(&'a DesiredHost, &'a Facts)]) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    for (d, f) in hosts {
        for l in &d.links {
            let Some((release, to)) = parse_release_path(&l.target) else {
                continue;
            };
            let from = f.links.get(&l.path).and_then(|t| parse_release_path(t));
            let Some((_, from)) = from.filter(|(r, v)| *r == release && *v != to) else {
                continue;
            };
            out.push(Change {
                host: &d.host,
                program: l.path.rsplit('/').next().unwrap_or(&l.path),
                release,
                from,
                to,
            });
        }
    }
    out
}

/// The releases the plan moves, in the order of [`Release::ALL`].
pub fn moves(hosts: &[(&DesiredHost, &Facts)]) -> Vec<Move> {
    let mut by_release: BTreeMap<&str, Move> = BTreeMap::new();
    for c in changes(hosts) {
        let m = by_release.entry(c.release).or_insert_with(|| Move {
            release: c.release.to_string(),
            from: BTreeSet::new(),
            to: c.to.to_string(),
            hosts: BTreeSet::new(),
        });
        m.from.insert(c.from.to_string());
        m.hosts.insert(c.host.to_string());
    }
    let order = |r: &str| Release::ALL.iter().position(|x| x.name() == r);
    let mut list: Vec<Move> = by_release.into_values().collect();
    list.sort_by_key(|m| order(&m.release));
    list
}

/// Why the plan's version changes must not be made, each naming the host and program; empty
/// when upstream's version-skew policy allows them. Kubernetes and etcd move one minor at a
/// time and never down a minor; a kubelet (or kube-proxy) is never newer than the API servers.
/// Going back to the version before an upgrade is `rollback`'s, which does not ask this.
pub fn refusals(hosts: &[(&DesiredHost, &Facts)]) -> Vec<String> {
    let mut out = newer_than_api_servers(hosts);
    for c in changes(hosts) {
        let (Ok(from), Ok(to)) = (c.from.parse::<Semver>(), c.to.parse::<Semver>()) else {
            continue;
        };
        let kubernetes = c.release == Release::Kubernetes.name();
        if !kubernetes && c.release != Release::Etcd.name() {
            continue;
        }
        let what = format!("{}: {} {} → {}", c.host, c.program, c.from, c.to);
        if (to.major, to.minor) < (from.major, from.minor) {
            let why = if kubernetes && on_nodes(c.program) {
                "it would run newer than the API servers, which the version-skew policy forbids"
            } else if kubernetes {
                "apply does not take a cluster down a minor; `provisioner rollback` returns \
                 every host to the version it ran before the last upgrade"
            } else {
                "etcd cannot go down a minor once its data is at the new one; restore a snapshot \
                 taken before the upgrade (`provisioner etcd restore`)"
            };
            out.push(format!("{what}: {why}"));
        } else if to.major != from.major || to.minor > from.minor + 1 {
            out.push(format!(
                "{what}: skips a minor; upgrade one minor at a time ({}.{} first)",
                from.major,
                from.minor + 1
            ));
        }
    }
    out
}

/// The record after an apply starts the version changes `moves`. A run that resumes an
/// interrupted upgrade (hosts on both versions, or the same target again) keeps the version
/// recorded when that upgrade began.
pub fn record_history(mut h: History, moves: &[Move]) -> History {
    for m in moves {
        let resumed = h.get(&m.release).is_some_and(|s| s.to == m.to);
        let mut from = m.from.iter().filter(|v| **v != m.to);
        if let (false, Some(previous), None) = (resumed, from.next(), from.next()) {
            let step = crate::history::Step {
                previous: previous.clone(),
                to: m.to.clone(),
            };
            h.insert(m.release.clone(), step);
        }
    }
    h
}

/// The version directories (`RELEASE/VERSION`) a host keeps once an apply is done: those its
/// links point at, and for each recorded version change both of its versions (where a rollback
/// returns, and where it leaves).
pub fn kept_versions(d: &DesiredHost, history: &History) -> Vec<String> {
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for l in &d.links {
        if let Some((release, version)) = parse_release_path(&l.target) {
            kept.insert(format!("{release}/{version}"));
            if let Some(step) = history.get(release) {
                kept.insert(format!("{release}/{}", step.previous));
                kept.insert(format!("{release}/{}", step.to));
            }
        }
    }
    kept.into_iter().collect()
}

/// The Kubernetes programs of the nodes, which may never be newer than the API servers.
const NODE_PROGRAMS: &[Program] = &[Program::Kubelet, Program::KubeProxy];

fn on_nodes(program: &str) -> bool {
    Program::from_name(program).is_some_and(|p| NODE_PROGRAMS.contains(&p))
}

/// The bundle's kubelet or kube-proxy of a newer minor than its API server (a bundle put
/// together by hand).
fn newer_than_api_servers(hosts: &[(&DesiredHost, &Facts)]) -> Vec<String> {
    let targets = || {
        hosts.iter().flat_map(|(d, _)| {
            d.links.iter().filter_map(|l| {
                let (_, version) = parse_release_path(&l.target)?;
                let program = l.path.rsplit('/').next()?;
                Some((program, version, version.parse::<Semver>().ok()?))
            })
        })
    };
    let Some((_, api, api_semver)) = targets()
        .filter(|(p, ..)| *p == Program::KubeApiserver.name())
        .min_by_key(|(.., s)| *s)
    else {
        return Vec::new();
    };
    let mut out: Vec<String> = targets()
        .filter(|(p, _, s)| {
            on_nodes(p) && (s.major, s.minor) > (api_semver.major, api_semver.minor)
        })
        .map(|(p, v, _)| {
            format!(
                "the bundle's {p} {v} is newer than its kube-apiserver {api}; the version-skew \
                 policy forbids a {p} newer than the API servers"
            )
        })
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::component::{release_path, Unit};
    use crate::plan::Link;

    fn mv(release: &str, from: &[&str], to: &str) -> Move {
        Move {
            release: release.into(),
            from: from.iter().map(|s| s.to_string()).collect(),
            to: to.into(),
            hosts: Default::default(),
        }
    }

    #[test]
    fn an_upgrade_records_where_it_started_and_a_resumed_one_keeps_it() {
        let h = record_history(History::new(), &[mv("kubernetes", &["1.36.3"], "1.37.2")]);
        let want = crate::history::Step {
            previous: "1.36.3".into(),
            to: "1.37.2".into(),
        };
        assert_eq!(h["kubernetes"], want);
        // Interrupted: half the hosts already run 1.37.2, the rest 1.36.3.
        let again = record_history(h.clone(), &[mv("kubernetes", &["1.36.3"], "1.37.2")]);
        assert_eq!(again, h);
        // The next upgrade starts from 1.37.2.
        let next = record_history(h, &[mv("kubernetes", &["1.37.2"], "1.38.0")]);
        assert_eq!(next["kubernetes"].previous, "1.37.2");
    }

    fn host(name: &str, links: &[(&str, &str, &str)]) -> (DesiredHost, Facts) {
        let mut d = DesiredHost {
            host: name.into(),
            dirs: vec![],
            items: vec![],
            links: vec![],
            units: vec![],
            images: vec![],
            retired: vec![],
            owned: vec![],
        };
        let mut f = Facts::default();
        for (program, from, to) in links {
            let release = Release::of_program(program).unwrap().name();
            let path = format!("/usr/local/bin/{program}");
            d.links.push(Link {
                path: path.clone(),
                target: release_path(release, to, program),
                restarts: vec![Unit::Kubelet],
            });
            if !from.is_empty() {
                f.links.insert(path, release_path(release, from, program));
            }
        }
        (d, f)
    }

    fn pairs(hosts: &[(DesiredHost, Facts)]) -> Vec<(&DesiredHost, &Facts)> {
        hosts.iter().map(|(d, f)| (d, f)).collect()
    }

    #[test]
    fn an_upgrade_by_one_minor_is_a_move_per_release() {
        let hosts = [
            host(
                "cp-1",
                &[
                    ("etcd", "3.6.8", "3.7.0"),
                    ("kube-apiserver", "1.36.3", "1.37.2"),
                ],
            ),
            host("w-1", &[("kubelet", "1.36.3", "1.37.2")]),
            // Done already by an interrupted run, or new: not part of the move.
            host(
                "w-2",
                &[
                    ("kubelet", "1.37.2", "1.37.2"),
                    ("kube-proxy", "", "1.37.2"),
                ],
            ),
        ];
        let p = pairs(&hosts);
        assert!(refusals(&p).is_empty(), "{:?}", refusals(&p));
        let m = moves(&p);
        let described: Vec<String> = m.iter().map(Move::describe).collect();
        assert_eq!(
            described,
            ["kubernetes 1.36.3 → 1.37.2", "etcd 3.6.8 → 3.7.0"]
        );
        assert_eq!(m[0].hosts.iter().collect::<Vec<_>>(), ["cp-1", "w-1"]);
        assert!(m[1].changes_minor());
    }

    #[test]
    fn skew_violations_are_refused_naming_host_and_program() {
        let hosts = [
            host("cp-1", &[("kube-apiserver", "1.35.4", "1.37.2")]),
            host("cp-2", &[("etcd", "3.7.0", "3.6.8")]),
            host("w-1", &[("kubelet", "1.38.0", "1.37.2")]),
            host("w-2", &[("kube-scheduler", "1.37.2", "1.36.3")]),
            // A patch downgrade and an upgrade of containerd's own minor are allowed.
            host(
                "w-3",
                &[
                    ("kubelet", "1.37.3", "1.37.2"),
                    ("containerd", "2.3.7", "2.5.0"),
                ],
            ),
        ];
        let r = refusals(&pairs(&hosts));
        assert_eq!(r.len(), 4, "{r:#?}");
        assert!(r[0].starts_with("cp-1: kube-apiserver 1.35.4 → 1.37.2: skips a minor"));
        assert!(r[0].contains("(1.36 first)"));
        assert!(r[1].starts_with("cp-2: etcd 3.7.0 → 3.6.8: etcd cannot go down a minor"));
        assert!(r[2].starts_with("w-1: kubelet 1.38.0 → 1.37.2: it would run newer than the API"));
        assert!(r[3].contains("`provisioner rollback` returns"));
    }

    #[test]
    fn a_host_keeps_its_versions_and_the_last_change_of_each() {
        let (d, _) = host(
            "w-1",
            &[("kubelet", "", "1.37.2"), ("containerd", "", "2.4.2")],
        );
        let step = |p: &str, t: &str| crate::history::Step {
            previous: p.into(),
            to: t.into(),
        };
        let history: crate::history::History = [
            ("kubernetes".to_string(), step("1.36.3", "1.37.2")),
            ("etcd".to_string(), step("3.6.8", "3.7.0")),
        ]
        .into();
        assert_eq!(
            kept_versions(&d, &history),
            ["containerd/2.4.2", "kubernetes/1.36.3", "kubernetes/1.37.2"]
        );
    }

    #[test]
    fn a_bundle_kubelet_newer_than_its_api_server_is_refused() {
        let hosts = [
            host("cp-1", &[("kube-apiserver", "", "1.36.3")]),
            host("w-1", &[("kubelet", "", "1.37.2")]),
            host(
                "w-2",
                &[("kubelet", "", "1.37.2"), ("kube-proxy", "", "1.36.3")],
            ),
        ];
        let r = refusals(&pairs(&hosts));
        assert_eq!(
            r,
            [
                "the bundle's kubelet 1.37.2 is newer than its kube-apiserver 1.36.3; the \
              version-skew policy forbids a kubelet newer than the API servers"
            ]
        );
    }
}
