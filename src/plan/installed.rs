//! The record each host keeps of what provisioner installed on it, and what `reset` does with
//! it. Every file is recorded before it is first written, with every directory created for it,
//! so a reset removes exactly what provisioner put there and nothing it did not.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use super::DesiredHost;
use crate::component::Unit;
use crate::inventory::Cluster;
use crate::layout::{BIN_DIR, HOME, IMAGE_STORE, INSTALLED};

/// Directories a corrupt record must never make `reset` remove, whatever it says.
const NEVER_REMOVED: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/etc/systemd",
    "/etc/systemd/system",
    "/home",
    "/lib",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/local",
    "/usr/local/bin",
    "/var",
    "/var/lib",
    "/var/log",
];

/// Records every file and directory of `d` before they are written (only the directories
/// that are missing then: one that was there stays after a reset).
pub fn track_command(d: &DesiredHost) -> String {
    let paths: Vec<(&str, &str)> = d
        .dirs
        .iter()
        .map(|(p, _)| ("dir", p.as_str()))
        .chain(d.items.iter().map(|i| ("file", i.path.as_str())))
        .chain(d.links.iter().map(|l| ("file", l.path.as_str())))
        .collect();
    crate::shell::track(INSTALLED, &paths)
}

/// Records directories about to be created outside the rendered files (an etcd restore's).
pub fn track_dirs(paths: &[&str]) -> String {
    let pairs: Vec<(&str, &str)> = paths.iter().map(|p| ("dir", *p)).collect();
    crate::shell::track(INSTALLED, &pairs)
}

/// A host's record, as read back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Installed {
    pub files: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
}

impl Installed {
    /// Parses the record; a line that is not an absolute, plain path, or names a system
    /// directory, makes the whole record refused: reset removes what it lists.
    pub fn parse(text: &str) -> Result<Installed> {
        let mut r = Installed::default();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
            let (kind, path) = line.split_once(' ').unwrap_or((line, ""));
            let plain = path.starts_with('/')
                && !path.ends_with('/')
                && path[1..].split('/').all(|c| !matches!(c, "" | "." | ".."));
            if !plain || NEVER_REMOVED.contains(&path) {
                bail!("line {}: {line:?} is not a path reset may remove", n + 1);
            }
            match kind {
                "file" => r.files.insert(path.to_string()),
                "dir" => r.dirs.insert(path.to_string()),
                _ => bail!(
                    "line {}: {line:?} is neither `file PATH` nor `dir PATH`",
                    n + 1
                ),
            };
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.dirs.is_empty()
    }
}

/// What `reset` does on one host.
#[derive(Debug, PartialEq, Eq)]
pub struct Reset {
    /// Installed units, in stop order (the reverse of their start order).
    pub units: Vec<Unit>,
    /// The container runtime, when it is installed: its pods are killed before it stops.
    pub runtime: Option<Unit>,
    /// kube-proxy's binary, when installed: its `--cleanup` removes its rules.
    pub kube_proxy: Option<String>,
    pub keep_images: bool,
    /// Files, then directories deepest first (each with what is below it), then [`HOME`].
    pub remove: Vec<String>,
}

impl Reset {
    pub fn new(installed: &Installed, keep_images: bool) -> Reset {
        let units: Vec<Unit> = Unit::ALL
            .into_iter()
            .rev()
            .filter(|u| installed.files.contains(&u.unit_file()))
            .collect();
        let kube_proxy = format!("{BIN_DIR}/{}", Unit::KubeProxy.name());
        let mut dirs: Vec<&str> = installed
            .dirs
            .iter()
            .map(String::as_str)
            .chain(units.iter().flat_map(|u| u.props().state.iter().copied()))
            .filter(|d| !(keep_images && *d == IMAGE_STORE))
            .collect();
        dirs.sort_by(|a, b| {
            b.matches('/')
                .count()
                .cmp(&a.matches('/').count())
                .then(b.cmp(a))
        });
        dirs.dedup();
        let remove = installed
            .files
            .iter()
            .map(String::as_str)
            .chain(dirs)
            .chain([HOME])
            .map(str::to_string)
            .collect();
        Reset {
            runtime: units.iter().copied().find(|u| *u == Unit::Containerd),
            kube_proxy: installed.files.contains(&kube_proxy).then_some(kube_proxy),
            units,
            keep_images,
            remove,
        }
    }

    /// The command that does it (see [`crate::shell::reset`]).
    pub fn command(&self) -> String {
        let units: Vec<String> = self.units.iter().map(|u| u.file_name()).collect();
        let runtime = self.runtime.map(|u| u.file_name());
        crate::shell::reset(
            self.kube_proxy.as_deref(),
            runtime.as_deref(),
            self.keep_images,
            &units,
            &self.remove,
        )
    }
}

/// One host's reset, decided from its record before anything changes.
pub struct HostReset {
    pub host: String,
    /// `None`: the host records nothing (never applied, or already reset).
    pub reset: Option<Reset>,
}

/// The hosts to reset: all, or the named ones, which must be workers only: an etcd member or
/// API server leaving a running cluster is a membership change, not a reset.
pub fn chosen(c: &Cluster, names: &[String]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(c.hosts.iter().map(|h| h.name.clone()).collect());
    }
    let mut problems = Vec::new();
    for n in names {
        match c.hosts.iter().find(|h| &h.name == n) {
            None => problems.push(format!(
                "--host {n}: no such host in the inventory (hosts: {})",
                c.hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(h) if h.roles.etcd || h.roles.control_plane => problems.push(format!(
                "--host {n}: an etcd member or API server cannot be reset alone while the rest \
                 of the cluster runs; take it out of the inventory and `apply --remove {n}` \
                 (its member leaves etcd first), or reset the whole cluster (no --host)"
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        bail!("{}; nothing was changed", problems.join("\n"));
    }
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    Ok(names)
}

/// What reset will do, one line per host, before it asks.
pub fn summary(plans: &[HostReset], keep_images: bool) -> String {
    let mut s = String::from("reset:\n");
    for p in plans {
        match &p.reset {
            None => s.push_str(&format!(
                "  {}: records nothing provisioner installed; left alone\n",
                p.host
            )),
            Some(r) => {
                let units: Vec<&str> = r.units.iter().map(|u| u.name()).collect();
                s.push_str(&format!(
                    "  {}: stop and disable {}; remove {} recorded file(s) and director(ies)\n",
                    p.host,
                    if units.is_empty() {
                        "nothing".to_string()
                    } else {
                        units.join(", ")
                    },
                    r.remove.len()
                ));
            }
        }
    }
    if plans
        .iter()
        .any(|p| p.reset.as_ref().is_some_and(|r| r.runtime.is_some()))
    {
        s.push_str(if keep_images {
            "containerd's images are kept (--keep-images)\n"
        } else {
            "containerd's images go too (--keep-images keeps them)\n"
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER: &str = "\
dir /etc/kubernetes
dir /opt/cni
dir /opt/cni/bin
dir /var/lib/kubelet
file /etc/kubernetes/kubelet.conf
file /etc/systemd/system/containerd.service
file /etc/systemd/system/kube-proxy.service
file /etc/systemd/system/kubelet.service
file /opt/cni/bin/bridge
file /usr/local/bin/kube-proxy
";

    #[test]
    fn a_worker_stops_in_reverse_order_and_loses_its_runtime_state_unless_images_are_kept() {
        let r = Reset::new(&Installed::parse(WORKER).unwrap(), false);
        assert_eq!(
            r.units,
            [Unit::KubeProxy, Unit::Kubelet, Unit::Containerd],
            "kube-proxy and the kubelet stop before the runtime their pods run in"
        );
        assert_eq!(r.runtime, Some(Unit::Containerd));
        assert_eq!(r.kube_proxy.as_deref(), Some("/usr/local/bin/kube-proxy"));
        let pos = |p: &str| r.remove.iter().position(|x| x == p).unwrap();
        assert!(pos("/opt/cni/bin/bridge") < pos("/opt/cni/bin"));
        assert!(pos("/opt/cni/bin") < pos("/opt/cni"));
        assert!(r.remove.contains(&IMAGE_STORE.to_string()));
        assert!(r.remove.contains(&"/var/log/pods".to_string()));
        assert_eq!(r.remove.last().map(String::as_str), Some(HOME));

        let kept = Reset::new(&Installed::parse(WORKER).unwrap(), true);
        assert!(!kept.remove.contains(&IMAGE_STORE.to_string()));
        assert!(kept.remove.contains(&"/run/containerd".to_string()));
    }

    #[test]
    fn only_what_is_recorded_is_stopped_or_removed() {
        let r = Reset::new(
            &Installed::parse("file /etc/systemd/system/etcd.service\n").unwrap(),
            false,
        );
        assert_eq!(r.units, [Unit::Etcd]);
        assert_eq!((r.runtime, r.kube_proxy), (None, None));
        assert_eq!(r.remove, ["/etc/systemd/system/etcd.service", HOME]);
        assert!(Installed::parse("").unwrap().is_empty());
    }

    #[test]
    fn a_record_naming_a_system_directory_or_an_odd_path_is_refused() {
        for bad in [
            "dir /usr/local/bin",
            "dir /",
            "file relative/path",
            "dir /var/lib/../..",
            "dir /etc/kubernetes/",
            "dir //etc",
            "link /etc/kubernetes",
        ] {
            let e = Installed::parse(&format!("file /etc/a\n{bad}\n")).unwrap_err();
            assert!(e.to_string().starts_with("line 2:"), "{bad}: {e}");
        }
    }

    /// The tracking script against a real directory tree: missing parents are recorded, a
    /// directory that was there is not, and later runs add to the record.
    #[test]
    fn the_record_keeps_every_path_and_only_the_directories_it_created() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().display().to_string();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let record = format!("{r}/home/installed");
        let run = |paths: &[(&str, &str)]| {
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(crate::shell::track(&record, paths))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        let f1 = format!("{r}/etc/k8s/pki/ca.crt");
        let d1 = format!("{r}/var/lib/etcd");
        run(&[("file", &f1), ("dir", &d1)]);
        std::fs::create_dir_all(format!("{r}/var/lib/etcd")).unwrap();
        std::fs::create_dir_all(format!("{r}/etc/k8s/pki")).unwrap();
        run(&[
            ("file", &f1),
            ("file", &format!("{r}/etc/k8s/kubelet.conf")),
        ]);
        let got = Installed::parse(&std::fs::read_to_string(&record).unwrap()).unwrap();
        let set = |v: &[&str]| v.iter().map(|p| format!("{r}{p}")).collect::<BTreeSet<_>>();
        assert_eq!(
            got.files,
            set(&["/etc/k8s/pki/ca.crt", "/etc/k8s/kubelet.conf"])
        );
        assert_eq!(
            got.dirs,
            set(&[
                "/etc/k8s",
                "/etc/k8s/pki",
                "/var",
                "/var/lib",
                "/var/lib/etcd"
            ]),
            "{r}/etc was there before and is not recorded"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&record).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn reset_alone_takes_workers_only_and_names_every_wrong_host() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::inventory::bundled_for_test(dir.path());
        let all: Vec<String> = c.hosts.iter().map(|h| h.name.clone()).collect();
        assert_eq!(chosen(&c, &[]).unwrap(), all);
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            chosen(&c, &names(&["worker-2", "worker-1", "worker-2"])).unwrap(),
            ["worker-1", "worker-2"]
        );
        let err = chosen(&c, &names(&["cp-1", "nope"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--host cp-1: an etcd member or API server"),
            "{err}"
        );
        assert!(err.contains("--host nope: no such host"), "{err}");
        assert!(err.ends_with("nothing was changed"), "{err}");
    }
}
