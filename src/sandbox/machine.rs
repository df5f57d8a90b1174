//! One machine: its overlay root, what makes it distinct from its siblings, its nspawn process,
//! and the checks that it is up.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;

use super::net;
use super::state::MachineState;
use super::sys::{self, run, tool, write_file};

/// containerd's overlayfs snapshotter cannot put its upper directories on an overlay (the
/// machine's root), so this directory is a plain host directory bound into the machine.
pub(super) const CONTAINERD_DIR: &str = "/var/lib/containerd";

/// Per-machine paths under the state directory.
pub(super) struct Dirs {
    pub dir: PathBuf,
}

impl Dirs {
    pub fn new(machines_dir: &Path, name: &str) -> Self {
        Dirs {
            dir: machines_dir.join(name),
        }
    }
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn containerd(&self) -> PathBuf {
        self.dir.join("containerd")
    }
    pub fn console_log(&self) -> PathBuf {
        self.dir.join("console.log")
    }
}

/// Mounts the machine's overlay over the base root.
pub(super) fn mount_root(base: &Path, dirs: &Dirs) -> Result<()> {
    for d in [dirs.root(), dirs.upper(), dirs.work(), dirs.containerd()] {
        fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let paths = [base.to_path_buf(), dirs.upper(), dirs.work()];
    if let Some(bad) = paths
        .iter()
        .find(|p| p.to_string_lossy().contains([',', ':']))
    {
        bail!(
            "{} contains ',' or ':', which overlayfs cannot take in its options; choose another \
             directory",
            bad.display()
        );
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        paths[0].display(),
        paths[1].display(),
        paths[2].display()
    );
    run(tool("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(dirs.root()))
    .map(drop)
    .context("cannot mount the machine's overlay root (is the `overlay` filesystem available? `modprobe overlay`)")
}

/// Everything that must differ between machines sharing one base: name, machine id, host key,
/// and the login keys. Written into the overlay before boot.
pub(super) struct Identity<'a> {
    pub name: &'a str,
    pub hosts_file: &'a str,
    pub authorized_key: &'a str,
    pub sudo_user: Option<&'a str>,
}

pub(super) fn write_identity(root: &Path, id: &Identity) -> Result<()> {
    write_file(&root.join("etc/hostname"), &format!("{}\n", id.name), 0o644)?;
    write_file(&root.join("etc/hosts"), id.hosts_file, 0o644)?;
    write_file(
        &root.join("etc/machine-id"),
        &format!("{}\n", sys::random_hex(16)?),
        0o444,
    )?;

    let host_key = root.join("etc/ssh/ssh_host_ed25519_key");
    let _ = fs::remove_file(&host_key);
    let _ = fs::remove_file(host_key.with_extension("pub"));
    run(tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C"])
        .arg(format!("root@{}", id.name))
        .arg("-f")
        .arg(&host_key))
    .context("cannot generate the machine's SSH host key")?;

    let root_ssh = root.join("root/.ssh");
    fs::create_dir_all(&root_ssh)?;
    set_mode(&root_ssh, 0o700)?;
    write_file(&root_ssh.join("authorized_keys"), id.authorized_key, 0o600)?;

    if let Some(user) = id.sudo_user {
        add_sudo_user(root, user, id.authorized_key)
            .with_context(|| format!("cannot add the sudo user {user}"))?;
    }
    Ok(())
}

/// A user who logs in with the sandbox key and may run anything through `sudo` without a
/// password, the way cloud images set up their default user.
fn add_sudo_user(root: &Path, user: &str, authorized_key: &str) -> Result<()> {
    // The machine's own useradd, so its login.defs and skeleton apply. `*` is "no password"
    // without the `!` of a locked account.
    run(tool("chroot").arg(root).args([
        "useradd",
        "--create-home",
        "--shell",
        "/bin/bash",
        "--groups",
        "sudo",
        "--password",
        "*",
        user,
    ]))?;
    let passwd = fs::read_to_string(root.join("etc/passwd"))?;
    let (uid, gid) = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user))
                .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
        })
        .with_context(|| format!("{user} is missing from /etc/passwd after useradd"))?;
    let home = root.join("home").join(user);
    let ssh = home.join(".ssh");
    fs::create_dir_all(&ssh)?;
    set_mode(&ssh, 0o700)?;
    write_file(&ssh.join("authorized_keys"), authorized_key, 0o600)?;
    for p in [&ssh, &ssh.join("authorized_keys")] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", p.display()))?;
    }
    write_file(
        &root
            .join("etc/sudoers.d")
            .join(format!("provisioner-sandbox-{user}")),
        &format!("{user} ALL=(ALL:ALL) NOPASSWD: ALL\n"),
        0o440,
    )
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// Joins the machine's cgroups (each `cgroup.procs` before the `--`), then becomes nspawn: the
/// same pid, so the pid we record is nspawn's.
const JOIN_AND_EXEC: &str = r#"while [ "$1" != -- ]; do echo $$ > "$1" || { echo "sandbox: cannot join cgroup $1" >&2; exit 125; }; shift; done; shift; exec "$@""#;

pub(super) struct Launch<'a> {
    pub name: &'a str,
    pub netns: &'a str,
    pub dirs: &'a Dirs,
    pub cgroups: &'a [PathBuf],
    pub writable_kernel_settings: bool,
}

/// Starts the machine in the background; its console goes to `console.log`.
pub(super) fn launch(l: &Launch) -> Result<Child> {
    let log = fs::File::create(l.dirs.console_log())
        .with_context(|| format!("cannot create {}", l.dirs.console_log().display()))?;
    let nspawn = sys::find_tool("systemd-nspawn").context("systemd-nspawn is not installed")?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(JOIN_AND_EXEC).arg("sandbox-launch");
    cmd.args(l.cgroups.iter().map(|d| d.join("cgroup.procs")));
    cmd.arg("--").arg(nspawn);
    cmd.arg("--directory").arg(l.dirs.root());
    cmd.args([
        "--boot",
        "--machine",
        l.name,
        // No systemd bus on the host to register with or to get a scope from.
        "--register=no",
        "--keep-unit",
        "--capability=all",
        "--resolv-conf=off",
        "--timezone=off",
        "--link-journal=no",
        // A pty whose output is copied to our log, with nothing reading input from us.
        "--console=read-only",
        "--setenv=SYSTEMD_COLORS=0",
    ]);
    cmd.arg(format!("--network-namespace-path=/run/netns/{}", l.netns));
    cmd.arg(format!(
        "--bind={}:{CONTAINERD_DIR}",
        l.dirs.containerd().display()
    ));
    // kubelet's OOM watcher reads the kernel log and refuses to start without /dev/kmsg.
    if Path::new("/dev/kmsg").exists() {
        cmd.arg("--bind-ro=/dev/kmsg");
    }
    // runc joins a fresh session keyring for every container and cannot run under nspawn's
    // default syscall filter, which denies keyctl; a real machine has no such filter either.
    cmd.env("SYSTEMD_SECCOMP", "0");
    if l.writable_kernel_settings {
        // kubelet sets vm.overcommit_memory, kernel.panic and friends at start and fails if it
        // cannot; nspawn otherwise mounts /proc/sys and /sys read-only (but /proc/sys/net).
        cmd.env("SYSTEMD_NSPAWN_API_VFS_WRITABLE", "1");
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Out of the caller's process group, so a Ctrl-C aimed at `sandbox up` does not take
        // the machines down with it; `sandbox down` does that.
        .process_group(0);
    let line = sys::describe(&cmd);
    cmd.spawn()
        .with_context(|| format!("cannot start `{line}`"))
}

/// Whether `pid` is still the nspawn of this machine (and not a reused pid).
pub(super) fn nspawn_running(pid: u32, root: &Path) -> bool {
    sys::process_alive(pid) && is_nspawn_of(&sys::process_args(pid), root)
}

fn is_nspawn_of(args: &[String], root: &Path) -> bool {
    let root = root.to_string_lossy();
    args.iter().any(|a| a.ends_with("systemd-nspawn")) && args.iter().any(|a| *a == root)
}

/// nspawn processes booting any root under `machines_dir`, recorded or not.
pub(super) fn nspawn_pids_under(machines_dir: &Path) -> Vec<u32> {
    // With the separator, so /x/machines does not also match /x/machines-old.
    let prefix = format!("{}/", machines_dir.to_string_lossy().trim_end_matches('/'));
    sys::all_pids()
        .into_iter()
        .filter(|pid| {
            let args = sys::process_args(*pid);
            args.iter().any(|a| a.ends_with("systemd-nspawn"))
                && args.iter().any(|a| a.starts_with(&prefix))
                && sys::process_alive(*pid)
        })
        .collect()
}

/// Stops machines: SIGTERM asks nspawn to shut the machine's systemd down cleanly (a second
/// would cut it short), SIGKILL after `grace`. Whatever survives in the cgroups is killed later.
pub(super) fn stop_all(pids: &[u32], grace: Duration) {
    let alive = |pid: &u32| sys::process_alive(*pid);
    let running: Vec<u32> = pids.iter().copied().filter(alive).collect();
    sys::signal(&running, Signal::SIGTERM);
    if !sys::wait_until(grace, || !running.iter().any(alive)) {
        let stuck: Vec<u32> = running.iter().copied().filter(alive).collect();
        sys::signal(&stuck, Signal::SIGKILL);
        sys::wait_until(Duration::from_secs(5), || !stuck.iter().any(alive));
    }
}

/// The machine answers with an SSH banner, within `timeout`.
pub(super) fn ssh_banner(address: Ipv4Addr, timeout: Duration) -> Result<String> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from((address, 22)), timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 256];
    let n = stream.read(&mut buf)?;
    let banner = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    if !banner.starts_with("SSH-") {
        bail!("port 22 answered {banner:?}, not an SSH banner");
    }
    Ok(banner)
}

/// Waits until sshd answers or the deadline passes; fails early when nspawn exits.
pub(super) fn wait_for_sshd(m: &MachineState, child: &mut Child, deadline: Instant) -> Result<()> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            bail!("the machine stopped during boot (systemd-nspawn exited: {status})");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match ssh_banner(
            m.address,
            Duration::from_secs(1).min(left.max(Duration::from_millis(100))),
        ) {
            Ok(_) => return Ok(()),
            Err(e) if left.is_zero() => {
                return Err(e).context("sshd did not answer on port 22 before the deadline")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Runs a command on the machine with the host's ssh client, checking the host key against the
/// sandbox's known_hosts: proves the key, the user and the recorded host key all work.
pub(super) fn ssh(
    address: Ipv4Addr,
    user: &str,
    key: &Path,
    known_hosts: &Path,
    command: &str,
) -> Result<String> {
    run(ssh_command(address, user, key, known_hosts).arg(command))
}

pub(super) fn ssh_command(
    address: Ipv4Addr,
    user: &str,
    key: &Path,
    known_hosts: &Path,
) -> Command {
    let mut cmd = tool("ssh");
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o"])
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .arg(format!("{user}@{address}"))
        .arg("--");
    cmd
}

/// The known_hosts line for a machine, from the host key written into its overlay: no need to
/// trust whatever answers on the network first.
pub(super) fn known_hosts_line(root: &Path, name: &str, address: Ipv4Addr) -> Result<String> {
    let path = root.join("etc/ssh/ssh_host_ed25519_key.pub");
    let public =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut words = public.split_whitespace();
    let (Some(kind), Some(key)) = (words.next(), words.next()) else {
        bail!("{} is not an SSH public key", path.display());
    };
    Ok(format!("{name},{address} {kind} {key}\n"))
}

/// Name of the per-machine cgroup, unique per sandbox prefix.
pub(super) fn cgroup_leaf(prefix: &str, name: &str) -> String {
    format!("{prefix}.{name}")
}

/// The machine's network namespace name.
pub(super) fn netns(prefix: &str, name: &str) -> String {
    net::machine_netns(prefix, name)
}
