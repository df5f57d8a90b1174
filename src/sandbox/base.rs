//! The shared, read-only base root every machine's overlay sits on: built once with debootstrap,
//! then reused until the recipe below changes.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::sys::{self, remove_tree, tool, write_file};

/// The release the machines run: the provisioner targets Debian 12 hosts.
pub(super) const SUITE: &str = "bookworm";

/// What a node of the cluster needs beyond `minbase`: an init and a bus (systemd, dbus), a way in
/// (openssh-server, sudo for the non-root path), and the tools kubelet, kube-proxy and CNI
/// plugins call (iproute2, iptables, nftables, conntrack, socat, ipset, kmod).
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "sudo",
    "iproute2",
    "iptables",
    "nftables",
    "conntrack",
    "socat",
    "ipset",
    "kmod",
    "procps",
    "iputils-ping",
    "ca-certificates",
];

/// Bumped whenever [`customise`] changes, so cached bases built by an older recipe are rebuilt.
const RECIPE_VERSION: u32 = 2;

/// The file in the base that records which recipe built it.
const MARKER: &str = ".provisioner-sandbox-base";

/// Units a bare test machine has no use for: they only add boot time, timers that fire during
/// tests, and a login prompt on the console log.
const MASKED_UNITS: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "getty@tty1.service",
    "console-getty.service",
    "systemd-pstore.service",
];

/// nspawn mounts the cgroup v1 controller hierarchies read-only, so runc could not create a
/// container's cgroups. A real machine has them writable; this puts them back early in boot.
/// Bind-remounting flips only this mount's flag, not the hierarchy shared with the host. On a
/// host with a pure cgroup v2 tree none of these directories is a mount point and it is a no-op.
const CGROUP_RW_UNIT: &str = "\
[Unit]
Description=Make the cgroup hierarchies writable, as on a real machine (provisioner sandbox)
DefaultDependencies=no
ConditionVirtualization=container
Before=sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mountpoint -q \"$d\" && mount -o remount,bind,rw \"$d\"; done; exit 0'

[Install]
WantedBy=sysinit.target
";

const SSHD_CONFIG: &str = "\
# provisioner sandbox: each machine gets its own ed25519 host key, written before boot.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
";

/// Errors and failed units reach the console log, which is what a failed `up` shows.
const JOURNALD_CONFIG: &str = "\
[Journal]
ForwardToConsole=yes
MaxLevelConsole=warning
";

/// The base root is ready at `dir`; builds it when missing or built by another recipe.
pub(super) fn ensure(dir: &Path, mirror_override: Option<&str>) -> Result<()> {
    if fs::read_to_string(dir.join(MARKER)).ok().as_deref() == Some(&recipe()) {
        return Ok(());
    }
    let mirror = match mirror_override {
        Some(m) => m.to_string(),
        None => debian_mirror()?,
    };
    let partial = with_suffix(dir, ".partial");
    let log = with_suffix(dir, ".debootstrap.log");
    // A build interrupted earlier may have left proc/sys mounted inside; remove_tree unmounts.
    remove_tree(&partial).context("cannot clear an earlier, unfinished base root")?;
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    eprintln!(
        "sandbox: building the base root at {} from {mirror} with debootstrap (one to three minutes; \
         log: {})",
        dir.display(),
        log.display()
    );
    let started = Instant::now();
    debootstrap(&partial, &mirror, &log).with_context(|| {
        format!(
            "debootstrap of Debian {SUITE} from {mirror} failed; its log ends with:\n{}",
            sys::tail(&log, 15)
        )
    })?;
    customise(&partial).context("cannot prepare the base root for the sandbox")?;
    write_file(&partial.join(MARKER), &recipe(), 0o644)?;
    remove_tree(dir).context("cannot replace the outdated base root")?;
    fs::rename(&partial, dir)
        .with_context(|| format!("cannot move the new base root to {}", dir.display()))?;
    eprintln!("sandbox: base root ready in {:.0?}", started.elapsed());
    Ok(())
}

fn recipe() -> String {
    format!(
        "recipe {RECIPE_VERSION}\nsuite {SUITE}\npackages {}\n",
        PACKAGES.join(",")
    )
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn debootstrap(target: &Path, mirror: &str, log: &Path) -> Result<()> {
    let mut log_file =
        fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut cmd = tool("debootstrap");
    cmd.arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(target)
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file.try_clone()?);
    let line = sys::describe(&cmd);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for text in BufReader::new(stdout).lines() {
        let text = text.context("cannot read debootstrap's output")?;
        writeln!(log_file, "{text}")?;
        // Only the phase lines: one per package would be hundreds.
        if is_phase_line(&text) {
            eprintln!("sandbox: debootstrap: {}", text.trim_start_matches("I: "));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

fn is_phase_line(line: &str) -> bool {
    !line.starts_with("I: ")
        || [
            "Release",
            "Resolving",
            "packages...",
            "base system",
            "successfully",
        ]
        .iter()
        .any(|key| line.contains(key))
}

/// Turns a freshly bootstrapped tree into a machine template: everything that must differ per
/// machine (host keys, machine id, hostname) is removed here and written into each overlay.
fn customise(root: &Path) -> Result<()> {
    for entry in fs::read_dir(root.join("etc/ssh"))? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ssh_host_"))
        {
            fs::remove_file(&path)?;
        }
    }
    // An empty machine-id means "not set"; each machine gets its own in its overlay. dbus keeps a
    // copy that would otherwise be shared by all of them.
    write_file(&root.join("etc/machine-id"), "", 0o444)?;
    let dbus_id = root.join("var/lib/dbus/machine-id");
    if dbus_id.symlink_metadata().is_ok() {
        fs::remove_file(&dbus_id)?;
    }
    let _ = fs::remove_file(root.join("etc/hostname"));
    // debootstrap copied the host's resolver; no DNS server exists on the test subnet, and
    // queries must not leave it.
    write_file(
        &root.join("etc/resolv.conf"),
        "# provisioner sandbox: no DNS server on the test subnet; names are in /etc/hosts\n",
        0o644,
    )?;

    // pam_env warns on every login without it, and those warnings would fill the console log.
    write_file(&root.join("etc/default/locale"), "LANG=C.UTF-8\n", 0o644)?;

    let units = root.join("etc/systemd/system");
    for unit in MASKED_UNITS {
        let link = units.join(unit);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/null", &link)
            .with_context(|| format!("cannot mask {unit}"))?;
    }
    write_file(
        &units.join("provisioner-sandbox-cgroup-rw.service"),
        CGROUP_RW_UNIT,
        0o644,
    )?;
    let wants = units.join("sysinit.target.wants");
    fs::create_dir_all(&wants)?;
    let link = wants.join("provisioner-sandbox-cgroup-rw.service");
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink("../provisioner-sandbox-cgroup-rw.service", &link)?;

    write_file(
        &root.join("etc/ssh/sshd_config.d/provisioner-sandbox.conf"),
        SSHD_CONFIG,
        0o644,
    )?;
    write_file(
        &root.join("etc/systemd/journald.conf.d/provisioner-sandbox.conf"),
        JOURNALD_CONFIG,
        0o644,
    )?;
    Ok(())
}

/// The Debian archive this machine's apt uses, so the sandbox fetches from wherever the host is
/// allowed to (`PROVISIONER_DEBIAN_MIRROR` wins).
pub(super) fn debian_mirror() -> Result<String> {
    if let Ok(m) = std::env::var("PROVISIONER_DEBIAN_MIRROR") {
        if !m.trim().is_empty() {
            return Ok(m.trim().to_string());
        }
    }
    let mut sources = Vec::new();
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => sources.extend(parse_deb822(&text)),
            Some("list") => sources.extend(parse_one_line(&text)),
            _ => {}
        }
    }
    pick_mirror(&sources).with_context(|| {
        format!(
            "found no Debian archive for {SUITE} in /etc/apt/sources.list or \
             /etc/apt/sources.list.d; set PROVISIONER_DEBIAN_MIRROR to the archive URL \
             (the one that serves dists/{SUITE})"
        )
    })
}

/// One `deb` source: its URI and suites.
#[derive(Debug, PartialEq)]
struct Source {
    uri: String,
    suites: Vec<String>,
}

fn parse_one_line(text: &str) -> Vec<Source> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let rest = line
                .strip_prefix("deb ")
                .or_else(|| line.strip_prefix("deb\t"))?;
            let mut words = rest.split_whitespace().peekable();
            // Skip the `[arch=amd64 signed-by=...]` options, which may span several words.
            if words.peek()?.starts_with('[') {
                for w in words.by_ref() {
                    if w.ends_with(']') {
                        break;
                    }
                }
            }
            Some(Source {
                uri: words.next()?.to_string(),
                suites: vec![words.next()?.to_string()],
            })
        })
        .collect()
}

fn parse_deb822(text: &str) -> Vec<Source> {
    text.split("\n\n")
        .filter_map(|stanza| {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.trim().to_string())
                })
            };
            let types = field("Types")?;
            let enabled = field("Enabled").is_none_or(|v| !v.eq_ignore_ascii_case("no"));
            if !enabled || !types.split_whitespace().any(|t| t == "deb") {
                return None;
            }
            Some(Source {
                uri: field("URIs")?.split_whitespace().next()?.to_string(),
                suites: field("Suites")?
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// The archive serving the bare suite name (not `-updates` or `-security`); failing that, any
/// archive serving a bare suite, since a host on a newer release still reaches the same mirror.
fn pick_mirror(sources: &[Source]) -> Option<String> {
    let serves = |s: &&Source, pred: &dyn Fn(&str) -> bool| s.suites.iter().any(|x| pred(x));
    sources
        .iter()
        .find(|s| serves(s, &|x| x == SUITE))
        .or_else(|| {
            sources
                .iter()
                .find(|s| serves(s, &|x| !x.contains('-') && x != "stable"))
        })
        .map(|s| s.uri.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_line_sources() {
        let text =
            "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n\
                    deb-src http://m.example/debian bookworm main\n\
                    deb http://s.example/debian-security bookworm-security main\n";
        let got = parse_one_line(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].uri, "http://m.example/debian");
        assert_eq!(
            pick_mirror(&got).as_deref(),
            Some("http://m.example/debian")
        );
    }

    #[test]
    fn reads_deb822_sources() {
        let text = "Types: deb\nURIs: http://m.example/debian/\nSuites: bookworm bookworm-updates\n\
                    Components: main\n\nTypes: deb\nURIs: http://s.example/debian-security\n\
                    Suites: bookworm-security\n\nTypes: deb\nEnabled: no\nURIs: http://x\nSuites: bookworm\n";
        let got = parse_deb822(text);
        assert_eq!(got.len(), 2);
        assert_eq!(
            pick_mirror(&got).as_deref(),
            Some("http://m.example/debian")
        );
    }

    #[test]
    fn security_archive_alone_is_no_mirror() {
        let got = parse_deb822("Types: deb\nURIs: http://s/\nSuites: bookworm-security\n");
        assert_eq!(pick_mirror(&got), None);
    }
}
