//! What a host looks like now, gathered in one SSH round trip, and the checks that must pass
//! before anything is written.

use std::collections::{BTreeMap, BTreeSet};

use super::desired::DesiredHost;

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
    /// Managed files present on the host: path → (sha256, mode).
    pub files: BTreeMap<String, (String, u32)>,
    pub dirs: BTreeMap<String, u32>,
    pub units: BTreeMap<String, UnitState>,
    /// Images in containerd's k8s.io namespace: reference → manifest digest.
    pub images: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    pub active: bool,
    /// Activating or reloading: its process is there (and may hold its ports) but not ready,
    /// e.g. an etcd member waiting for peers it cannot reach.
    pub starting: bool,
    pub enabled: bool,
}

/// Where each host keeps `sha256 size mtime path` of the files provisioner last wrote or checked.
/// A file whose size and mtime still match is not hashed again, which keeps a no-op run fast
/// (binaries are most of the bytes); any edit changes the mtime and brings the hash back.
pub const RECORD: &str = "/var/lib/provisioner/files.sha256";

/// A command that records the current size and mtime of every desired file with its desired
/// sha256; run after the files were written and verified.
pub fn record_command(d: &DesiredHost) -> String {
    let files: Vec<(&str, &str)> = d
        .items
        .iter()
        .map(|i| (i.sha256.as_str(), i.path.as_str()))
        .collect();
    crate::shell::record_files(RECORD, &files)
}

/// The facts script (`shell/facts.sh`), printing one `key=value` line per fact; parsed by
/// [`parse`].
pub fn script(d: &DesiredHost) -> String {
    let files: Vec<&str> = d.items.iter().map(|i| i.path.as_str()).collect();
    let dirs: Vec<&str> = d.dirs.iter().map(|(p, _)| p.as_str()).collect();
    let units: Vec<String> = d.units.iter().map(|u| format!("{u}.service")).collect();
    crate::shell::facts(RECORD, &files, &dirs, &units, !d.images.is_empty())
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
                let mut parts = value.splitn(3, ' ');
                if let (Some(sha), Some(mode), Some(path)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    f.files.insert(
                        path.to_string(),
                        (sha.to_string(), u32::from_str_radix(mode, 8).unwrap_or(0)),
                    );
                }
            }
            "image" => {
                if let Some((digest, reference)) = value.split_once(' ') {
                    f.images.insert(reference.to_string(), digest.to_string());
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
                if let Some(name) = parts.next() {
                    let state = parts.next();
                    let active = state == Some("active");
                    let starting = matches!(state, Some("activating" | "reloading"));
                    let enabled = parts.next() == Some("enabled");
                    f.units.insert(
                        name.to_string(),
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

/// Ports each unit listens on, checked free before its first start.
fn ports(unit: &str) -> &'static [u16] {
    match unit {
        "etcd" => &[2379, 2380, 2381],
        "kube-apiserver" => &[6443],
        "kube-controller-manager" => &[10257],
        "kube-scheduler" => &[10259],
        "kubelet" => &[10248, 10250],
        "kube-proxy" => &[10249, 10256],
        _ => &[],
    }
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
        let worker = d.units.iter().any(|u| u == "kubelet");
        if worker && f.swap_devices > 0 && !tolerate_swap {
            problems.push(format!("{h}: swap is on ({} device(s)); the kubelet refuses to start with swap: run `swapoff -a` and remove swap from /etc/fstab, or set [kubelet] allow_swap = true", f.swap_devices));
        }
        if worker && require_cgroup2 && !f.cgroup2 {
            problems.push(format!("{h}: cgroup v1 host; Kubernetes 1.35+ needs cgroup v2 (the unified hierarchy), or [kubelet] allow_cgroup_v1 = true as a temporary escape hatch"));
        }
        if worker {
            let missing: Vec<&str> = ["conntrack", "socat", "ipset"]
                .into_iter()
                .filter(|t| !f.tools.contains(*t))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "{h}: missing tools {} (install the packages of the same names)",
                    missing.join(", ")
                ));
            }
            if !f.tools.contains("iptables") && !f.tools.contains("nft") {
                problems.push(format!(
                    "{h}: neither iptables nor nft is installed; kube-proxy needs one"
                ));
            }
        }
        for u in &d.units {
            if f.units.get(u).is_some_and(|s| s.active || s.starting) {
                continue;
            }
            for p in ports(u) {
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
                   tool=conntrack\nlisten=22\nlisten=2379\nfile=abc 600 /etc/kubernetes/pki/ca.key\n\
                   file=def 644 /etc/a b.conf\ndir=755 /etc/kubernetes\nunit=etcd active enabled\nunit=kubelet inactive disabled\n";
        let f = parse(out);
        assert_eq!(f.os, "debian 12");
        assert!(f.cgroup2 && f.tools.contains("conntrack") && f.listening_ports.contains(&2379));
        assert_eq!(
            f.files["/etc/kubernetes/pki/ca.key"],
            ("abc".to_string(), 0o600)
        );
        assert_eq!(f.files["/etc/a b.conf"].1, 0o644);
        assert_eq!(
            f.units["etcd"],
            UnitState {
                active: true,
                starting: false,
                enabled: true
            }
        );
        assert!(!f.units["kubelet"].active);
    }
}

#[cfg(test)]
mod script_tests {
    use super::*;
    use crate::plan::{DesiredHost, Item, Source};

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
            restarts: &[],
        };
        let d = DesiredHost {
            host: "local".into(),
            dirs: vec![(dir.path().display().to_string(), 0o755)],
            items: vec![item(&path), item(&dir.path().join("missing"))],
            units: vec![],
            images: vec![],
        };
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script(&d))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let f = parse(&String::from_utf8_lossy(&out.stdout));
        let want = crate::bundle::sha256_hex(b"hello\n");
        let (sha, _) = &f.files[&path.display().to_string()];
        assert_eq!(sha, &want);
        assert_eq!(f.files.len(), 1, "a missing file is not reported");
        assert!(f.dirs.contains_key(&dir.path().display().to_string()));
    }
}
