//! What a host looks like now, gathered in one SSH round trip, and the checks that must pass
//! before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use super::desired::DesiredHost;
use super::follow_up::FollowUp;
use crate::component::Unit;
use crate::layout::{FILE_HASHES, FOLLOW_UP};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Facts {
    pub os: String,
    pub arch: String,
    pub hostname: String,
    /// The host's clock, seconds since the epoch.
    pub time: i64,
    /// systemd's version, empty when systemd is absent.
    pub systemd: String,
    pub cgroup2: bool,
    pub swap_devices: usize,
    pub tools: BTreeSet<String>,
    pub listening_ports: BTreeSet<u16>,
    /// Managed files present on the host.
    pub files: BTreeMap<String, FileFact>,
    pub dirs: BTreeMap<String, u32>,
    /// Managed links present on the host: path → target.
    pub links: BTreeMap<String, String>,
    pub units: BTreeMap<Unit, UnitState>,
    /// Images in containerd's k8s.io namespace: reference → manifest digest.
    pub images: BTreeMap<String, String>,
    /// What an earlier apply wrote files for but did not finish.
    pub follow_up: FollowUp,
    /// The files in the directories provisioner owns.
    pub owned: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileFact {
    pub sha256: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    pub active: bool,
    /// Activating, reloading or deactivating: its process is there (and may hold its ports)
    /// but is not serving, e.g. an etcd member waiting for peers it cannot reach, or one that
    /// lost its quorum and takes its time to stop.
    pub starting: bool,
    pub enabled: bool,
}

/// A command that records the current size and mtime of every desired file with its desired
/// sha256; run after the files were written and verified.
pub fn record_command(d: &DesiredHost) -> String {
    let files: Vec<(&str, &str)> = d
        .items
        .iter()
        .map(|i| (i.sha256.as_str(), i.path.as_str()))
        .collect();
    crate::shell::record_files(FILE_HASHES, &files)
}

/// The facts script (`shell/facts.sh`), printing one `key=value` line per fact; parsed by
/// [`parse`].
pub fn script(d: &DesiredHost, rehash: bool) -> String {
    // A retired file's presence is a fact like a managed file's.
    let files: Vec<&str> = d
        .items
        .iter()
        .map(|i| i.path.as_str())
        .chain(d.retired.iter().map(String::as_str))
        .collect();
    let dirs: Vec<&str> = d.dirs.iter().map(|(p, _)| p.as_str()).collect();
    let links: Vec<&str> = d.links.iter().map(|l| l.path.as_str()).collect();
    let units: Vec<String> = d.units.iter().map(|u| u.file_name()).collect();
    let record = if rehash { "" } else { FILE_HASHES };
    let owned: Vec<&str> = d.owned.iter().map(String::as_str).collect();
    crate::shell::facts(
        record,
        FOLLOW_UP,
        &crate::shell::FactSections {
            files: &files,
            dirs: &dirs,
            links: &links,
            units: &units,
            owned: &owned,
            images: !d.images.is_empty(),
        },
    )
}

pub fn parse(output: &str) -> Facts {
    let mut f = Facts::default();
    for line in output.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "os" => f.os = value.trim().to_string(),
            "arch" => f.arch = value.to_string(),
            "hostname" => f.hostname = value.to_string(),
            "time" => f.time = value.parse().unwrap_or(0),
            "systemd" => f.systemd = value.to_string(),
            "cgroup" => f.cgroup2 = value == "cgroup2fs",
            "swap" => f.swap_devices = value.trim().parse().unwrap_or(0),
            "tool" => {
                f.tools.insert(value.to_string());
            }
            "listen" => {
                if let Ok(p) = value.parse() {
                    f.listening_ports.insert(p);
                }
            }
            "file" => {
                let mut parts = value.splitn(4, ' ');
                if let (Some(sha), Some(mode), Some(owner), Some(path)) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                {
                    let (uid, gid) = owner.split_once(':').unwrap_or(("", ""));
                    f.files.insert(
                        path.to_string(),
                        FileFact {
                            sha256: sha.to_string(),
                            mode: u32::from_str_radix(mode, 8).unwrap_or(0),
                            uid: uid.parse().unwrap_or(u32::MAX),
                            gid: gid.parse().unwrap_or(u32::MAX),
                        },
                    );
                }
            }
            "follow-up" => f.follow_up.read_line(value),
            "owned" => {
                f.owned.insert(value.to_string());
            }
            "image" => {
                if let Some((digest, reference)) = value.split_once(' ') {
                    f.images.insert(reference.to_string(), digest.to_string());
                }
            }
            "link" => {
                if let Some((target, path)) = value.split_once(' ') {
                    f.links.insert(path.to_string(), target.to_string());
                }
            }
            "dir" => {
                if let Some((mode, path)) = value.split_once(' ') {
                    f.dirs
                        .insert(path.to_string(), u32::from_str_radix(mode, 8).unwrap_or(0));
                }
            }
            "unit" => {
                let mut parts = value.split(' ');
                if let Some(unit) = parts.next().and_then(Unit::from_name) {
                    let state = parts.next();
                    let active = state == Some("active");
                    let starting =
                        matches!(state, Some("activating" | "reloading" | "deactivating"));
                    let enabled = parts.next() == Some("enabled");
                    f.units.insert(
                        unit,
                        UnitState {
                            active,
                            starting,
                            enabled,
                        },
                    );
                }
            }
            _ => {}
        }
    }
    f
}

fn bundle_arch(uname: &str) -> &str {
    match uname {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Everything that must hold before any write, for all hosts at once. `hosts` pairs each
/// desired host with its facts.
pub fn preflight(
    hosts: &[(&DesiredHost, &Facts)],
    arch: &str,
    require_cgroup2: bool,
    tolerate_swap: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (d, f) in hosts {
        let h = d.host.as_str();
        if f.systemd.is_empty() {
            problems.push(format!("{h}: systemd is not running (systemctl --version failed); provisioner manages services with systemd"));
        }
        if bundle_arch(&f.arch) != arch {
            problems.push(format!(
                "{h}: architecture {} does not match the bundle's {arch}",
                f.arch
            ));
        }
        let worker = d.units.contains(&Unit::Kubelet);
        if worker && f.swap_devices > 0 && !tolerate_swap {
            problems.push(format!("{h}: swap is on ({} device(s)); the kubelet refuses to start with swap: run `swapoff -a` and remove swap from /etc/fstab, or set [kubelet] allow_swap = true", f.swap_devices));
        }
        if worker && require_cgroup2 && !f.cgroup2 {
            problems.push(format!("{h}: cgroup v1 host; Kubernetes 1.35+ needs cgroup v2 (the unified hierarchy), or [kubelet] allow_cgroup_v1 = true as a temporary escape hatch"));
        }
        if worker {
            // iptables: the CNI portmap plugin (hostPort) programs it, whatever kube-proxy's mode.
            let missing: Vec<&str> = ["conntrack", "socat", "ipset", "iptables"]
                .into_iter()
                .filter(|t| !f.tools.contains(*t))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "{h}: missing tools {} (install the packages of the same names)",
                    missing.join(", ")
                ));
            }
        }
        for u in &d.units {
            if f.units.get(u).is_some_and(|s| s.active || s.starting) {
                continue;
            }
            for p in u.props().ports {
                if f.listening_ports.contains(p) {
                    problems.push(format!(
                        "{h}: port {p} is already in use, but {u} is not running yet and needs it"
                    ));
                }
            }
        }
        if let Some(other) = names.insert(f.hostname.as_str(), h) {
            problems.push(format!(
                "{h} and {other} both report the hostname {}; hostnames must be unique",
                f.hostname
            ));
        }
    }
    let times: Vec<i64> = hosts.iter().map(|(_, f)| f.time).collect();
    if let (Some(min), Some(max)) = (times.iter().min(), times.iter().max()) {
        if max - min >= 30 {
            problems.push(format!("clocks differ by {} s between hosts; certificates and etcd need them within 30 s (run NTP)", max - min));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_script_output() {
        let out = "os=debian 12\narch=x86_64\nhostname=cp-1\ntime=1700000000\nsystemd=252\ncgroup=cgroup2fs\nswap=0\n\
                   tool=conntrack\nlisten=22\nlisten=2379\nfile=abc 600 0:0 /etc/kubernetes/pki/ca.key\n\
                   file=def 644 1000:5 /etc/a b.conf\ndir=755 /etc/kubernetes\nunit=etcd active enabled\nunit=kubelet inactive disabled\n\
                   unit=kube-apiserver deactivating enabled\n";
        let f = parse(out);
        assert_eq!(f.os, "debian 12");
        assert!(f.cgroup2 && f.tools.contains("conntrack") && f.listening_ports.contains(&2379));
        assert_eq!(
            f.files["/etc/kubernetes/pki/ca.key"],
            FileFact {
                sha256: "abc".into(),
                mode: 0o600,
                uid: 0,
                gid: 0
            }
        );
        assert_eq!(
            (f.files["/etc/a b.conf"].mode, f.files["/etc/a b.conf"].uid),
            (0o644, 1000)
        );
        assert_eq!(
            f.units[&Unit::Etcd],
            UnitState {
                active: true,
                starting: false,
                enabled: true
            }
        );
        assert!(!f.units[&Unit::Kubelet].active);
        let stopping = &f.units[&Unit::KubeApiserver];
        assert!(!stopping.active && stopping.starting);
    }

    #[test]
    fn a_port_held_by_its_own_unit_while_it_stops_is_no_conflict() {
        let d = crate::plan::DesiredHost {
            host: "cp-1".into(),
            dirs: vec![],
            items: vec![],
            links: vec![],
            units: vec![Unit::Etcd],
            images: vec![],
            retired: vec![],
            owned: vec![],
        };
        let facts = |state: &str| {
            parse(&format!(
                "arch=x86_64\nhostname=cp-1\nsystemd=252\ncgroup=cgroup2fs\nlisten=2380\nunit=etcd {state} enabled\n"
            ))
        };
        for state in ["active", "activating", "deactivating"] {
            assert!(
                preflight(&[(&d, &facts(state))], "amd64", false, false).is_empty(),
                "{state}"
            );
        }
        let p = preflight(&[(&d, &facts("failed"))], "amd64", false, false);
        assert!(
            p.iter().any(|m| m.contains("port 2380 is already in use")),
            "{p:?}"
        );
    }
}

#[cfg(test)]
mod script_tests {
    use super::*;
    use crate::plan::{DesiredHost, Item, Source};
    use crate::shell::run_locally as sh;

    #[test]
    fn the_survey_reads_the_follow_up_record_and_lists_owned_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let pending = format!("{d}/follow-up");
        let lines = ["daemon-reload".to_string(), "restart kubelet".to_string()];
        sh(&crate::shell::write_lines(&pending, &lines));
        let owned = format!("{d}/certs.d");
        let stale = format!("{owned}/old.example/hosts.toml");
        std::fs::create_dir_all(format!("{owned}/old.example")).unwrap();
        std::fs::write(&stale, "").unwrap();
        let absent = format!("{d}/absent");
        let f = parse(&sh(&crate::shell::facts(
            "",
            &pending,
            &crate::shell::FactSections {
                owned: &[&owned, &absent],
                ..Default::default()
            },
        )));
        assert!(f.follow_up.daemon_reload && !f.follow_up.load_modules);
        assert_eq!(f.follow_up.restarts, [Unit::Kubelet].into());
        assert_eq!(f.owned, [stale].into());
        // Without a record there is nothing to follow up.
        std::fs::remove_file(&pending).unwrap();
        let f = parse(&sh(&crate::shell::facts("", &pending, &Default::default())));
        assert!(f.follow_up.is_empty());
    }

    #[test]
    fn the_facts_script_runs_and_hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.conf");
        std::fs::write(&path, "hello\n").unwrap();
        let item = |p: &std::path::Path| Item {
            path: p.display().to_string(),
            mode: 0o644,
            sha256: String::new(),
            secret: false,
            source: Source::Rendered(Vec::new()),
            restarts: Vec::new(),
        };
        let d = DesiredHost {
            host: "local".into(),
            dirs: vec![(dir.path().display().to_string(), 0o755)],
            items: vec![item(&path), item(&dir.path().join("missing"))],
            links: vec![],
            units: vec![],
            images: vec![],
            retired: vec![],
            owned: vec![],
        };
        let f = parse(&sh(&script(&d, false)));
        let want = crate::digest::sha256_hex(b"hello\n");
        assert_eq!(f.files[&path.display().to_string()].sha256, want);
        assert_eq!(f.files.len(), 1, "a missing file is not reported");
        assert!(f.dirs.contains_key(&dir.path().display().to_string()));
    }

    /// The record lets a survey skip hashing, but never for a file rewritten in place with its
    /// size and mtime restored: the ctime still tells.
    #[test]
    fn a_file_rewritten_with_its_old_mtime_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("files.sha256").display().to_string();
        let path = dir.path().join("kubelet");
        let p = path.display().to_string();
        std::fs::write(&path, "signed!\n").unwrap();
        let signed = crate::digest::sha256_hex(b"signed!\n");
        sh(&crate::shell::record_files(&record, &[(&signed, &p)]));
        let survey = |record: &str| {
            parse(&sh(&crate::shell::facts(
                record,
                "",
                &crate::shell::FactSections {
                    files: &[&p],
                    ..Default::default()
                },
            )))
            .files[&p]
                .sha256
                .clone()
        };
        assert_eq!(survey(&record), signed);
        // A stale record entry is trusted only while the stamp matches: prove the record is used.
        let fake = "f".repeat(64);
        sh(&crate::shell::record_files(&record, &[(&fake, &p)]));
        assert_eq!(survey(&record), fake, "the record was not used");
        assert_eq!(survey(""), signed, "--rehash must ignore the record");
        // Same size, mtime put back: ctime changed, so the file is hashed again.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "swapped\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(survey(&record), crate::digest::sha256_hex(b"swapped\n"));
    }
}
