//! Plan: what `apply` would change on each host, computed purely from the desired state and the
//! facts gathered from the hosts. `apply` executes exactly this plan.

pub mod desired;
pub mod facts;
pub mod follow_up;
pub mod identity;
pub mod installed;
pub mod rollback;
mod show;
pub mod upgrade;

use std::collections::BTreeSet;

use serde::Serialize;

use crate::component::Unit;
use crate::inventory::{Cluster, Host};

pub use desired::{desired, DesiredHost, DesiredImage, Item, Link, Source};
pub use facts::Facts;
pub use follow_up::FollowUp;
pub use show::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileAction {
    Create,
    Update,
    /// Same content, wrong mode or owner (every managed file is root's).
    Permissions,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileChange {
    pub path: String,
    pub action: FileAction,
    pub mode: u32,
    /// Holds key material; only its path is ever shown.
    pub secret: bool,
    #[serde(skip)]
    pub item: Item,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitAction {
    Start,
    Restart,
    /// Running and unchanged, but not started at boot.
    Enable,
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitChange {
    pub unit: Unit,
    pub action: UnitAction,
    pub reason: String,
    /// Also `systemctl enable` it.
    pub enable: bool,
}

/// A link to point at another version of a program.
#[derive(Debug, Clone, Serialize)]
pub struct LinkChange {
    pub path: String,
    pub target: String,
    /// What it points at now, when it is a link.
    pub from: Option<String>,
    /// The units a change restarts: the link is switched just before they are.
    #[serde(skip)]
    pub restarts: Vec<Unit>,
}

/// An image to import into containerd from its archive on the host.
#[derive(Debug, Clone, Serialize)]
pub struct ImageImport {
    #[serde(flatten)]
    pub image: DesiredImage,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub host: String,
    pub dirs: Vec<(String, u32)>,
    pub files: Vec<FileChange>,
    pub links: Vec<LinkChange>,
    pub units: Vec<UnitChange>,
    pub images: Vec<ImageImport>,
    /// Retired files still there, removed after the files are written.
    pub removes: Vec<String>,
    /// What the written files ask for, with what an earlier apply left undone.
    pub follow_up: FollowUp,
}

impl HostPlan {
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
            && self.files.is_empty()
            && self.links.is_empty()
            && self.units.is_empty()
            && self.images.is_empty()
            && self.removes.is_empty()
            && self.follow_up.is_empty()
    }

    pub fn unit(&self, unit: Unit) -> Option<&UnitChange> {
        self.units.iter().find(|u| u.unit == unit)
    }

    /// Whether a start or restart of `unit` is planned: its links switch with it.
    fn starts(&self, unit: Unit) -> bool {
        self.unit(unit)
            .is_some_and(|c| c.action != UnitAction::Enable)
    }

    /// The links switched with `unit`'s start or restart.
    pub fn links_of(&self, unit: Unit) -> impl Iterator<Item = &LinkChange> {
        self.links
            .iter()
            .filter(move |l| l.restarts.contains(&unit))
    }

    /// The links no planned start or restart switches (tools such as etcdctl): the files
    /// phase switches them.
    pub fn links_alone(&self) -> impl Iterator<Item = &LinkChange> {
        self.links
            .iter()
            .filter(|l| !l.restarts.iter().any(|u| self.starts(*u)))
    }

    /// Whether `unit` restarts into another version of its program: an upgrade or a rollback,
    /// which a worker is drained for.
    pub fn switches_version(&self, unit: Unit) -> bool {
        self.unit(unit)
            .is_some_and(|c| c.action == UnitAction::Restart)
            && self.links_of(unit).next().is_some()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub hosts: Vec<HostPlan>,
    /// Releases moving to another version: an upgrade (or a rollback).
    pub versions: Vec<upgrade::Move>,
    /// Why `apply` must not make this plan (version-skew violations); empty when it may.
    pub refused: Vec<String>,
    /// Hosts provisioner installed that the inventory no longer names: `apply --remove`
    /// drains them, deletes their Nodes and resets them.
    pub removals: Vec<String>,
    /// Hosts whose etcd member joins the running cluster in this run.
    pub etcd_joins: Vec<String>,
    /// The removals that are etcd members, removed from the member list first.
    pub etcd_leaves: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.hosts.iter().all(HostPlan::is_empty)
    }

    /// The plan with the membership changes of this run: the hosts `leaving` (the recorded
    /// hosts the inventory no longer names) and the etcd members `joining`.
    pub fn with_members(mut self, leaving: &Cluster, joining: &[&Host]) -> Plan {
        self.removals = leaving.hosts.iter().map(|h| h.name.clone()).collect();
        self.etcd_leaves = leaving
            .hosts
            .iter()
            .filter(|h| h.roles.etcd)
            .map(|h| h.name.clone())
            .collect();
        self.etcd_joins = joining.iter().map(|h| h.name.clone()).collect();
        self
    }
}

/// Compares one host's desired state with its facts.
pub fn diff(d: &DesiredHost, f: &Facts) -> HostPlan {
    let dirs = d
        .dirs
        .iter()
        .filter(|(p, mode)| f.dirs.get(p) != Some(mode))
        .cloned()
        .collect();
    let mut files = Vec::new();
    for item in &d.items {
        let action = match f.files.get(&item.path) {
            None => FileAction::Create,
            Some(x) if x.sha256 != item.sha256 => FileAction::Update,
            Some(x) if x.mode != item.mode || (x.uid, x.gid) != (0, 0) => FileAction::Permissions,
            Some(_) => continue,
        };
        tracing::trace!(host = %d.host, path = %item.path, ?action, "file planned");
        files.push(FileChange {
            path: item.path.clone(),
            action,
            mode: item.mode,
            secret: item.secret,
            item: item.clone(),
        });
    }
    let links: Vec<(LinkChange, &Link)> = d
        .links
        .iter()
        .filter(|l| f.links.get(&l.path) != Some(&l.target))
        .map(|l| {
            let change = LinkChange {
                path: l.path.clone(),
                target: l.target.clone(),
                from: f.links.get(&l.path).cloned(),
                restarts: l.restarts.clone(),
            };
            (change, l)
        })
        .collect();
    let mut units = Vec::new();
    for u in &d.units {
        let state = f.units.get(u).cloned().unwrap_or_default();
        let changed: BTreeSet<&str> = files
            .iter()
            .filter(|c| c.action != FileAction::Permissions && c.item.restarts.contains(u))
            .map(|c| c.path.as_str())
            .chain(
                links
                    .iter()
                    .filter(|(_, l)| l.restarts.contains(u))
                    .map(|(c, _)| c.path.as_str()),
            )
            .collect();
        let unit_file_present = f.files.contains_key(&u.unit_file());
        // A unit stuck starting with changed inputs is restarted with them; unchanged, it is
        // left to finish starting.
        let (action, reason) = if !state.active && (!state.starting || changed.is_empty()) {
            let why = if state.starting {
                "still starting or stopping"
            } else if unit_file_present {
                "not running"
            } else {
                "new"
            };
            (UnitAction::Start, why.to_string())
        } else if !changed.is_empty() {
            let list: Vec<&str> = changed.into_iter().collect();
            (UnitAction::Restart, format!("changed: {}", list.join(", ")))
        } else if f.follow_up.restarts.contains(u) {
            let why = "its inputs changed in an apply that stopped before restarting it";
            (UnitAction::Restart, why.to_string())
        } else if !state.enabled {
            (UnitAction::Enable, "not enabled at boot".to_string())
        } else {
            continue;
        };
        tracing::debug!(host = %d.host, unit = %u, ?action, %reason, "unit planned");
        units.push(UnitChange {
            unit: *u,
            action,
            reason,
            enable: !state.enabled,
        });
    }
    let images = d
        .images
        .iter()
        .filter_map(|i| {
            let reason = match f.images.get(&i.reference) {
                Some(digest) if *digest == i.digest => return None,
                Some(digest) => format!("containerd has {digest}"),
                None => "not in containerd".to_string(),
            };
            Some(ImageImport {
                image: i.clone(),
                reason,
            })
        })
        .collect();
    let mut follow_up = FollowUp::of(&files, &units);
    follow_up.merge(&f.follow_up);
    HostPlan {
        host: d.host.clone(),
        dirs,
        follow_up,
        files,
        links: links.into_iter().map(|(c, _)| c).collect(),
        units,
        images,
        removes: d
            .retired
            .iter()
            .filter(|p| f.files.contains_key(*p))
            .chain(
                f.owned
                    .iter()
                    .filter(|p| !d.items.iter().any(|i| &i.path == *p)),
            )
            .cloned()
            .collect(),
    }
}

pub fn plan(hosts: &[(&DesiredHost, &Facts)]) -> Plan {
    Plan {
        hosts: hosts.iter().map(|(d, f)| diff(d, f)).collect(),
        versions: upgrade::moves(hosts),
        refused: upgrade::refusals(hosts),
        ..Plan::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use facts::UnitState;

    fn item(path: &str, content: &str, mode: u32, readers: &[Unit]) -> Item {
        Item {
            path: path.into(),
            mode,
            sha256: crate::digest::sha256_hex(content.as_bytes()),
            secret: mode == 0o600,
            source: Source::Rendered(content.as_bytes().to_vec()),
            restarts: readers.to_vec(),
        }
    }

    fn desired_host() -> DesiredHost {
        DesiredHost {
            host: "w-1".into(),
            dirs: vec![("/var/lib/kubelet".into(), 0o700)],
            items: vec![
                item(
                    "/etc/systemd/system/kubelet.service",
                    "unit",
                    0o644,
                    &[Unit::Kubelet],
                ),
                item(
                    "/var/lib/kubelet/config.yaml",
                    "config",
                    0o644,
                    &[Unit::Kubelet],
                ),
                item(
                    "/etc/kubernetes/kube-proxy.conf",
                    "kubeconfig",
                    0o600,
                    &[Unit::KubeProxy],
                ),
                item(
                    "/etc/systemd/system/kube-proxy.service",
                    "unit2",
                    0o644,
                    &[Unit::KubeProxy],
                ),
            ],
            links: vec![Link {
                path: "/usr/local/bin/kubelet".into(),
                target: "/usr/local/lib/provisioner/kubernetes/1.37.2/kubelet".into(),
                restarts: vec![Unit::Kubelet],
            }],
            units: vec![Unit::Kubelet, Unit::KubeProxy],
            images: vec![DesiredImage {
                reference: "registry.k8s.io/pause:3.10.1".into(),
                digest: "sha256:aa".into(),
                archive: "/var/lib/provisioner/images/pause.tar".into(),
            }],
            retired: Vec::new(),
            owned: Vec::new(),
        }
    }

    /// Facts of a host that already has exactly the desired state, running.
    fn converged(d: &DesiredHost) -> Facts {
        let mut f = Facts::default();
        for i in &d.items {
            f.files.insert(
                i.path.clone(),
                facts::FileFact {
                    sha256: i.sha256.clone(),
                    mode: i.mode,
                    uid: 0,
                    gid: 0,
                },
            );
        }
        for (p, m) in &d.dirs {
            f.dirs.insert(p.clone(), *m);
        }
        for l in &d.links {
            f.links.insert(l.path.clone(), l.target.clone());
        }
        for i in &d.images {
            f.images.insert(i.reference.clone(), i.digest.clone());
        }
        for u in &d.units {
            f.units.insert(
                *u,
                UnitState {
                    active: true,
                    starting: false,
                    enabled: true,
                },
            );
        }
        f
    }

    #[test]
    fn a_converged_host_has_an_empty_plan() {
        let d = desired_host();
        assert!(diff(&d, &converged(&d)).is_empty());
    }

    #[test]
    fn a_changed_config_restarts_only_its_unit() {
        let d = desired_host();
        let mut f = converged(&d);
        f.files
            .get_mut("/var/lib/kubelet/config.yaml")
            .unwrap()
            .sha256 = "old".into();
        let p = diff(&d, &f);
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].action, FileAction::Update);
        assert_eq!(p.units.len(), 1);
        assert_eq!(p.units[0].unit, Unit::Kubelet);
        assert_eq!(p.units[0].action, UnitAction::Restart);
        assert!(p.units[0].reason.contains("/var/lib/kubelet/config.yaml"));
        assert!(!p.follow_up.daemon_reload);
    }

    #[test]
    fn a_link_to_another_version_is_switched_and_restarts_its_unit() {
        let d = desired_host();
        let mut f = converged(&d);
        let old = "/usr/local/lib/provisioner/kubernetes/1.36.3/kubelet";
        f.links.insert("/usr/local/bin/kubelet".into(), old.into());
        let p = diff(&d, &f);
        assert!(p.files.is_empty());
        assert_eq!(p.links.len(), 1);
        assert_eq!(p.links[0].from.as_deref(), Some(old));
        assert_eq!(p.links[0].target, d.links[0].target);
        let units: Vec<_> = p.units.iter().map(|u| (u.unit, u.action)).collect();
        assert_eq!(units, [(Unit::Kubelet, UnitAction::Restart)]);
        assert!(p.units[0].reason.contains("/usr/local/bin/kubelet"));
        // A regular file in its place (the unversioned layout) is replaced by the link.
        f.links.clear();
        assert_eq!(diff(&d, &f).links[0].from, None);
    }

    #[test]
    fn a_mode_drift_is_fixed_without_a_restart() {
        let d = desired_host();
        let mut f = converged(&d);
        f.files
            .get_mut("/etc/kubernetes/kube-proxy.conf")
            .unwrap()
            .mode = 0o644;
        let p = diff(&d, &f);
        assert_eq!(p.files[0].action, FileAction::Permissions);
        assert!(p.units.is_empty());
    }

    #[test]
    fn an_owner_drift_is_fixed_like_a_mode_drift() {
        let d = desired_host();
        let mut f = converged(&d);
        f.files
            .get_mut("/etc/kubernetes/kube-proxy.conf")
            .unwrap()
            .uid = 1000;
        let p = diff(&d, &f);
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].action, FileAction::Permissions);
        assert!(p.units.is_empty());
    }

    #[test]
    fn a_retired_file_is_removed_only_where_it_is_still_there() {
        let mut d = desired_host();
        let old = "/etc/cni/net.d/10-bridge.conf";
        d.retired = vec![old.into()];
        let mut f = converged(&d);
        assert!(diff(&d, &f).is_empty());
        f.files.insert(
            old.into(),
            facts::FileFact {
                sha256: "old".into(),
                mode: 0o644,
                uid: 0,
                gid: 0,
            },
        );
        let p = diff(&d, &f);
        assert_eq!(p.removes, [old]);
        assert!(!p.is_empty());
        assert!(p.units.is_empty(), "a removal restarts nothing");
        assert!(text(&Plan {
            hosts: vec![p],
            ..Plan::default()
        })
        .contains("- /etc/cni/net.d/10-bridge.conf"));
    }

    #[test]
    fn work_an_interrupted_apply_left_undone_is_planned_again() {
        let d = desired_host();
        let mut f = converged(&d);
        assert!(diff(&d, &f).is_empty());
        f.follow_up.read_line("sysusers /etc/sysusers.d/etcd.conf");
        f.follow_up.read_line("daemon-reload");
        f.follow_up.read_line("restart kubelet");
        let p = diff(&d, &f);
        assert!(p.files.is_empty() && !p.is_empty());
        assert!(p.follow_up.daemon_reload);
        assert_eq!(p.follow_up.sysusers.len(), 1);
        let units: Vec<_> = p.units.iter().map(|u| (u.unit, u.action)).collect();
        assert_eq!(units, [(Unit::Kubelet, UnitAction::Restart)]);
        assert!(p.units[0].reason.contains("stopped before restarting"));
        assert!(text(&Plan {
            hosts: vec![p],
            ..Plan::default()
        })
        .contains("  then reload systemd, create the users of /etc/sysusers.d/etcd.conf\n"));
    }

    #[test]
    fn a_fresh_host_gets_everything_and_starts_every_unit() {
        let d = desired_host();
        let p = diff(&d, &Facts::default());
        assert_eq!(p.files.len(), 4);
        assert!(p.files.iter().all(|c| c.action == FileAction::Create));
        assert_eq!(p.dirs.len(), 1);
        assert!(p.follow_up.daemon_reload);
        let units: Vec<_> = p
            .units
            .iter()
            .map(|u| (u.unit, u.action, u.enable, u.reason.as_str()))
            .collect();
        assert_eq!(
            units,
            vec![
                (Unit::Kubelet, UnitAction::Start, true, "new"),
                (Unit::KubeProxy, UnitAction::Start, true, "new")
            ]
        );
    }

    #[test]
    fn a_stopped_unit_is_started_and_a_disabled_one_enabled() {
        let d = desired_host();
        let mut f = converged(&d);
        f.units.insert(
            Unit::Kubelet,
            UnitState {
                active: false,
                starting: false,
                enabled: true,
            },
        );
        f.units.insert(
            Unit::KubeProxy,
            UnitState {
                active: true,
                starting: false,
                enabled: false,
            },
        );
        let p = diff(&d, &f);
        assert_eq!(p.unit(Unit::Kubelet).unwrap().action, UnitAction::Start);
        assert_eq!(p.unit(Unit::Kubelet).unwrap().reason, "not running");
        assert_eq!(p.unit(Unit::KubeProxy).unwrap().action, UnitAction::Enable);
        assert!(p.files.is_empty());
    }

    #[test]
    fn a_missing_or_different_image_is_imported() {
        let d = desired_host();
        let mut f = converged(&d);
        f.images.clear();
        let p = diff(&d, &f);
        assert_eq!(p.images.len(), 1);
        assert_eq!(p.images[0].reason, "not in containerd");
        assert!(p.units.is_empty(), "an import restarts nothing");
        f.images
            .insert("registry.k8s.io/pause:3.10.1".into(), "sha256:bb".into());
        assert_eq!(diff(&d, &f).images[0].reason, "containerd has sha256:bb");
    }

    #[test]
    fn a_unit_stuck_starting_is_restarted_when_its_inputs_changed() {
        let d = desired_host();
        let mut f = converged(&d);
        f.units.insert(
            Unit::Kubelet,
            UnitState {
                active: false,
                starting: true,
                enabled: true,
            },
        );
        assert_eq!(
            diff(&d, &f).unit(Unit::Kubelet).unwrap().reason,
            "still starting or stopping"
        );
        f.files
            .get_mut("/var/lib/kubelet/config.yaml")
            .unwrap()
            .sha256 = "old".into();
        assert_eq!(
            diff(&d, &f).unit(Unit::Kubelet).unwrap().action,
            UnitAction::Restart
        );
    }
}
