//! What a host must do once its files are written: reload systemd, create system users, load
//! kernel modules, apply sysctls, restart the running units whose inputs changed. The work is
//! recorded on the host before the first write and the record removed once it is done, because
//! an apply cut off between the two leaves files that already match: without the record the
//! next apply would see nothing to do and, say, start etcd as a user that was never created, or
//! leave kube-proxy running with its old configuration.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{FileAction, FileChange, UnitAction, UnitChange};
use crate::component::Unit;
use crate::layout::{KUBELET_KUBECONFIG, MODULES_FILE, SYSCTL_FILE, SYSUSERS_DIR};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FollowUp {
    pub daemon_reload: bool,
    /// `sysusers.d` files whose users `systemd-sysusers` creates, before any unit that runs
    /// as one of them starts.
    pub sysusers: BTreeSet<String>,
    pub reload_sysctl: bool,
    pub load_modules: bool,
    /// The kubelet's kubeconfig has a new client certificate: the ones the kubelet renewed
    /// itself go, or it would keep preferring them (signed by a CA being rotated out, say).
    pub forget_renewed_kubelet_client: bool,
    /// Running units to restart with their new inputs: done only once the apply's phases
    /// have all run.
    pub restarts: BTreeSet<Unit>,
}

impl FollowUp {
    /// The work that these file changes and unit actions ask for (a mode fix asks for none).
    pub fn of(files: &[FileChange], units: &[UnitChange]) -> Self {
        let written = || {
            files
                .iter()
                .filter(|c| c.action != FileAction::Permissions)
                .map(|c| c.path.as_str())
        };
        FollowUp {
            daemon_reload: written().any(|p| {
                p.strip_prefix(crate::layout::UNIT_DIR)
                    .is_some_and(|rest| rest.starts_with('/'))
            }),
            sysusers: written()
                .filter(|p| p.starts_with(SYSUSERS_DIR))
                .map(str::to_string)
                .collect(),
            reload_sysctl: written().any(|p| p == SYSCTL_FILE),
            load_modules: written().any(|p| p == MODULES_FILE),
            forget_renewed_kubelet_client: written().any(|p| p == KUBELET_KUBECONFIG),
            restarts: units
                .iter()
                .filter(|u| u.action == UnitAction::Restart)
                .map(|u| u.unit)
                .collect(),
        }
    }

    /// This record without the restarts: what the files phase does itself.
    pub fn files_part(&self) -> FollowUp {
        FollowUp {
            restarts: BTreeSet::new(),
            ..self.clone()
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == FollowUp::default()
    }

    /// Adds the work another record asks for.
    pub fn merge(&mut self, other: &FollowUp) {
        self.daemon_reload |= other.daemon_reload;
        self.sysusers.extend(other.sysusers.iter().cloned());
        self.reload_sysctl |= other.reload_sysctl;
        self.load_modules |= other.load_modules;
        self.forget_renewed_kubelet_client |= other.forget_renewed_kubelet_client;
        self.restarts.extend(other.restarts.iter().copied());
    }

    /// The record's lines, read back by [`FollowUp::read_line`].
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.daemon_reload {
            lines.push("daemon-reload".to_string());
        }
        lines.extend(self.sysusers.iter().map(|p| format!("sysusers {p}")));
        if self.reload_sysctl {
            lines.push("sysctl".to_string());
        }
        if self.load_modules {
            lines.push("modules".to_string());
        }
        if self.forget_renewed_kubelet_client {
            lines.push("kubelet-client".to_string());
        }
        lines.extend(
            self.restarts
                .iter()
                .map(|u| format!("restart {}", u.name())),
        );
        lines
    }

    /// Adds one line of the record; a line this version does not know is ignored (a newer
    /// provisioner's record then costs at most a reload that did not run).
    pub fn read_line(&mut self, line: &str) {
        match line.split_once(' ') {
            Some(("sysusers", path)) if path.starts_with(SYSUSERS_DIR) => {
                self.sysusers.insert(path.to_string());
            }
            Some(("restart", name)) => {
                self.restarts.extend(Unit::from_name(name));
            }
            _ => match line {
                "daemon-reload" => self.daemon_reload = true,
                "sysctl" => self.reload_sysctl = true,
                "modules" => self.load_modules = true,
                "kubelet-client" => self.forget_renewed_kubelet_client = true,
                _ => {}
            },
        }
    }

    /// What the plan shows of the files phase's part (restarts are shown as unit actions).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.daemon_reload {
            parts.push("reload systemd".to_string());
        }
        for p in &self.sysusers {
            parts.push(format!("create the users of {p}"));
        }
        if self.load_modules {
            parts.push("load kernel modules".to_string());
        }
        if self.reload_sysctl {
            parts.push("apply sysctls".to_string());
        }
        if self.forget_renewed_kubelet_client {
            parts.push("drop the client certificates the kubelet renewed".to_string());
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_back_as_written() {
        let f = FollowUp {
            daemon_reload: true,
            sysusers: ["/etc/sysusers.d/etcd.conf".to_string()].into(),
            reload_sysctl: true,
            load_modules: false,
            forget_renewed_kubelet_client: true,
            restarts: [Unit::KubeProxy, Unit::Etcd].into(),
        };
        let mut back = FollowUp::default();
        for l in f.lines() {
            back.read_line(&l);
        }
        assert_eq!(back, f);
        // A path outside sysusers.d is not handed to systemd-sysusers.
        back.read_line("sysusers /etc/passwd");
        back.read_line("something newer");
        back.read_line("restart no-such-unit");
        assert_eq!(back, f);
    }

    #[test]
    fn merging_keeps_both_records_work() {
        let mut a = FollowUp {
            daemon_reload: true,
            ..FollowUp::default()
        };
        let b = FollowUp {
            sysusers: ["/etc/sysusers.d/etcd.conf".to_string()].into(),
            load_modules: true,
            ..FollowUp::default()
        };
        a.merge(&b);
        assert!(a.daemon_reload && a.load_modules && a.sysusers.len() == 1);
        assert!(!a.reload_sysctl);
        assert!(FollowUp::default().is_empty() && !a.is_empty());
    }

    #[test]
    fn a_new_kubelet_kubeconfig_drops_the_renewed_client_certificates() {
        let change = |path: &str, action| FileChange {
            path: path.to_string(),
            action,
            mode: 0o600,
            secret: true,
            item: crate::plan::desired::Item {
                path: path.to_string(),
                mode: 0o600,
                sha256: String::new(),
                secret: true,
                source: crate::plan::desired::Source::Rendered(Vec::new()),
                restarts: vec![Unit::Kubelet],
            },
        };
        let written = FollowUp::of(&[change(KUBELET_KUBECONFIG, FileAction::Update)], &[]);
        assert!(written.forget_renewed_kubelet_client);
        assert!(written.describe().contains("kubelet renewed"));
        // A mode fix leaves the certificate as it was; another kubeconfig is not the kubelet's.
        let chmod = FollowUp::of(&[change(KUBELET_KUBECONFIG, FileAction::Permissions)], &[]);
        let other = FollowUp::of(
            &[change(
                "/etc/kubernetes/kube-proxy.conf",
                FileAction::Update,
            )],
            &[],
        );
        assert!(chmod.is_empty() && other.is_empty());
    }
}
