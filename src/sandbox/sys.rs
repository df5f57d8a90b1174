//! Thin helpers over the system tools and `/proc`, so the rest of the sandbox reads as steps.

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

/// Where a tool is looked for besides `$PATH`: root's tools live in the sbin directories, which
/// a non-login shell (CI runners, sudo with a reset environment) often leaves out of `$PATH`.
const EXTRA_TOOL_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// The tools the sandbox drives, each with the Debian package that ships it.
pub(super) const TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
    ("mount", "mount"),
    ("chroot", "coreutils"),
];

/// The absolute path of `name`, from `$PATH` or the sbin directories.
pub(super) fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_TOOL_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A `Command` for one of [`TOOLS`]; falls back to the bare name so a missing tool still gives
/// a readable "not found" error from [`run`].
pub(super) fn tool(name: &str) -> Command {
    Command::new(find_tool(name).unwrap_or_else(|| PathBuf::from(name)))
}

/// The command line as the user would type it, for error messages.
pub(super) fn describe(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    cmd.get_args()
        .map(OsStr::to_string_lossy)
        .fold(program, |line, arg| line + " " + &arg)
}

/// Runs a command to completion and returns its stdout; a failure carries the command line and
/// its stderr, since that is usually the whole diagnosis.
pub(super) fn run(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let detail = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        bail!("`{line}` failed ({}): {}", output.status, detail.trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether we run as root (the effective user).
pub(super) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Sends `signal` to each process.
pub(super) fn signal(pids: &[u32], signal: Signal) {
    for &pid in pids {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        // A process that is already gone is exactly what we want, so the outcome does not matter.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// A live (not zombie) process with this pid.
pub(super) fn process_alive(pid: u32) -> bool {
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// The argument vector of a process, empty when it is gone or a zombie.
pub(super) fn process_args(pid: u32) -> Vec<String> {
    let mut raw = Vec::new();
    if let Ok(mut f) = fs::File::open(format!("/proc/{pid}/cmdline")) {
        let _ = f.read_to_end(&mut raw);
    }
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Every pid on the system, for sweeping up processes whose pid was never recorded.
pub(super) fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Mount points at or below `dir`, deepest first so they can be unmounted in that order.
pub(super) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mount_field(field)))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash as three-digit octal escapes.
pub(super) fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        match octal.and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok()) {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything at or below `dir`, then checks nothing is left: the callers delete the
/// directory next, and deleting through a leftover bind mount would delete the source instead.
pub(super) fn unmount_all_under(dir: &Path) -> Result<()> {
    for mount_point in mounts_under(dir) {
        if nix::mount::umount(&mount_point).is_err() {
            // Busy usually means a process is still dying; a lazy unmount detaches it now and
            // frees it when the last user goes, which is all a teardown needs.
            nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("cannot unmount {}", mount_point.display()))?;
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        bail!(
            "still mounted under {}: {}",
            dir.display(),
            left.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Deletes a directory tree we created, after making sure no mount hides below it.
pub(super) fn remove_tree(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    unmount_all_under(dir)?;
    fs::remove_dir_all(dir).with_context(|| format!("cannot delete {}", dir.display()))
}

/// Polls `done` until it holds or `timeout` passes; returns whether it held.
pub(super) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The last `lines` lines of a log, with terminal colour codes removed so they read in an
/// error message.
pub(super) fn tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = strip_ansi(&String::from_utf8_lossy(&bytes));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter; that is all systemd's status output uses.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Random hex from the kernel, for machine ids.
pub(super) fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).context("reading the system's random source")?;
    Ok(hex::encode(buf))
}

/// Writes a file with the given mode, replacing what was there.
pub(super) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    // `mode` only applies to new files; an existing one keeps its bits unless set again.
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_octal() {
        assert_eq!(unescape_mount_field(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(unescape_mount_field(r"/plain\0"), r"/plain\0");
    }

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi("[\u{1b}[0;32m  OK  \u{1b}[0m] x\r"),
            "[  OK  ] x"
        );
    }
}
