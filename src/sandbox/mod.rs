//! Test machines on this one Linux box, for running the provisioner against real systemd hosts:
//! `provisioner sandbox up|down|status`.
//!
//! Each machine is a `systemd-nspawn` container booting systemd from a Debian 12 root, in a
//! network namespace of its own. The roots are overlays over one shared base root, built once by
//! debootstrap and cached, so a machine costs seconds and a few megabytes. The machines share a
//! bridge on a private /24 that exists only inside namespaces the sandbox makes; the host gets
//! one address on it and nothing is routed beyond it (see `net.rs` for the picture). Every
//! machine has its own SSH host key, accepts root (and optionally a sudo user) with a key the
//! sandbox generates, and is listed in a known_hosts file the sandbox writes.
//!
//! Everything `up` creates is recorded in `state.json` in the state directory before it is
//! created, so `down` can remove it after any failure, and sweeps for what a crash left
//! unrecorded. The base root lives elsewhere and survives `down`.
//!
//! Layout of this module: `base` (debootstrap and the template), `net` (namespaces, bridge,
//! veths), `machine` (overlay, identity, nspawn, readiness), `cgroup` (a cgroup per machine),
//! `state` (the record), `sys` (running tools, `/proc`), `cli` (the subcommand).

mod base;
mod cgroup;
mod machine;
mod net;
mod state;
mod sys;

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use machine::Dirs;
use state::{MachineState, State};

/// Where the sandbox keeps its cached base root and, by default, its state.
pub const DEFAULT_ROOT: &str = "/var/lib/provisioner-sandbox";

/// The name of the non-root user when the caller asks for one without naming it.
pub const DEFAULT_SUDO_USER: &str = "kube";

/// Prefix of the sandbox's namespaces, interfaces and cgroups.
pub const DEFAULT_PREFIX: &str = "psbx";

/// Host-wide kernel settings a machine can change once /proc/sys is writable (kubelet sets the
/// first six at start, kube-proxy the last); saved by `up` and restored by `down`.
const HOST_SYSCTLS: &[&str] = &[
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max",
];

/// Per-user inotify limits of the host kernel, which every machine's root shares: each kubelet
/// and containerd takes dozens of inotify instances, and with the default 128 the seventh machine's
/// kubelet fails with "too many open files". Raised to these floors by `up`, restored by `down`.
const INOTIFY_FLOORS: &[(&str, u64)] = &[
    ("fs/inotify/max_user_instances", 8192),
    ("fs/inotify/max_user_watches", 524288),
];

/// How machines stop: time for their systemd to shut down before they are killed.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// What `up` builds.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// One machine per name, in order; also their hostnames. Lowercase letters, digits and `-`.
    pub names: Vec<String>,
    /// The /24 the machines live on, given by its network address.
    pub subnet: Ipv4Addr,
    /// Last octet of the first machine's address; the others follow (.11, .12, ...).
    pub first_host: u8,
    /// Machines (of `names`) on a second /24, the one after `subnet`, reached through the hub,
    /// which routes between the two; their last octets follow the same count.
    pub routed: Vec<String>,
    /// Give every machine an IPv6 address too (see `net.rs`), for dual-stack clusters.
    pub ipv6: bool,
    /// A non-root user with the same key and passwordless sudo, on every machine.
    pub sudo_user: Option<String>,
    /// Keys, known_hosts, the state record, and each machine's overlay and console log.
    pub state_dir: PathBuf,
    /// The cached base root; built on first use and kept by `down`.
    pub base_dir: PathBuf,
    /// Prefix of namespace, interface and cgroup names; two sandboxes up at once need two.
    pub prefix: String,
    /// The Debian archive URL; by default `PROVISIONER_DEBIAN_MIRROR`, else the host's apt
    /// sources.
    pub mirror: Option<String>,
    /// How long every machine together may take to boot to a working SSH login.
    pub boot_timeout: Duration,
    /// Give the machines writable /proc/sys and /sys, as kubelet needs. Host-wide settings
    /// they change are restored by `down`.
    pub writable_kernel_settings: bool,
    /// Leave a failed sandbox in place for inspection instead of removing it.
    pub keep_on_failure: bool,
}

impl UpOptions {
    /// `nodes` machines named cp-1, cp-2, ... at 10.88.0.11, .12, ..., matching the project's
    /// default inventory.
    pub fn new(nodes: usize) -> Self {
        let root = Path::new(DEFAULT_ROOT);
        UpOptions {
            names: (1..=nodes).map(|i| format!("cp-{i}")).collect(),
            subnet: Ipv4Addr::new(10, 88, 0, 0),
            first_host: 11,
            routed: Vec::new(),
            ipv6: false,
            sudo_user: None,
            state_dir: root.join("run"),
            base_dir: root.join(format!("base-{}", base::SUITE)),
            prefix: DEFAULT_PREFIX.to_string(),
            mirror: None,
            boot_timeout: Duration::from_secs(120),
            writable_kernel_settings: true,
            keep_on_failure: false,
        }
    }
}

/// A sandbox as `up` and `status` report it; serialises to the JSON the CLI prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub state_dir: PathBuf,
    /// The test subnet, e.g. `10.88.0.0/24`.
    pub subnet: String,
    /// The routed machines' subnet, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_subnet: Option<String>,
    /// The host's own address on the subnet, the source of all test traffic.
    pub host_address: Ipv4Addr,
    /// Private key accepted by root (and the sudo user) on every machine.
    pub key_path: PathBuf,
    /// Host keys of every machine, under both its name and its address.
    pub known_hosts_path: PathBuf,
    pub machines: Vec<Machine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub name: String,
    pub address: Ipv4Addr,
    /// Its IPv6 address, in a sandbox up with `--ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    pub ssh_port: u16,
    /// Always `root`.
    pub ssh_user: String,
    /// The non-root user with passwordless sudo, when the sandbox has one.
    pub sudo_user: Option<String>,
    /// Its nspawn process is alive.
    pub running: bool,
    /// sshd answers on its address.
    pub reachable: bool,
    /// The machine's console: systemd's boot messages, failed units, errors.
    pub console_log: PathBuf,
}

impl Sandbox {
    pub fn machine(&self, name: &str) -> Option<&Machine> {
        self.machines.iter().find(|m| m.name == name)
    }

    /// An `ssh` command logging into `machine` as `user` with the sandbox's key and known_hosts;
    /// append the remote command with `.arg(...)`.
    pub fn ssh_command(&self, machine: &Machine, user: &str) -> Command {
        machine::ssh_command(
            machine.address,
            user,
            &self.key_path,
            &self.known_hosts_path,
        )
    }
}

/// Checks the host can run a sandbox and says what to install when not.
pub fn check_prerequisites() -> Result<()> {
    if !cfg!(target_os = "linux") {
        bail!("the sandbox needs Linux (systemd-nspawn, network namespaces, overlayfs)");
    }
    if !sys::is_root() {
        bail!("the sandbox needs root: it creates network namespaces, mounts and containers");
    }
    let mut missing: Vec<&str> = sys::TOOLS
        .iter()
        .filter(|(tool, _)| sys::find_tool(tool).is_none())
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        bail!(
            "missing tools for the sandbox; install them with: apt-get install {}",
            missing.join(" ")
        );
    }
    let filesystems = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !filesystems.lines().any(|l| l.ends_with("\toverlay")) {
        bail!("the kernel has no overlay filesystem; load it with `modprobe overlay` (machines cannot load modules themselves)");
    }
    if cgroup::planned_dirs("probe").is_empty() {
        bail!("found no mounted cgroup hierarchy for the machines (is /sys/fs/cgroup mounted?)");
    }
    if !Path::new("/proc/sys/net/bridge").exists() {
        // Not needed to boot, but pod traffic across a bridge bypasses kube-proxy without it.
        eprintln!(
            "sandbox: warning: br_netfilter is not loaded; Kubernetes networking in the machines \
             needs it (`modprobe br_netfilter` on the host)"
        );
    }
    Ok(())
}

/// Starts the machines and returns once each accepts an SSH login checked against the sandbox's
/// known_hosts. On failure it removes what it made, unless `keep_on_failure`.
pub fn up(opts: &UpOptions) -> Result<Sandbox> {
    check_prerequisites()?;
    validate(opts)?;
    if let Some(old) = state::load(&opts.state_dir)? {
        let running: Vec<&str> = old
            .machines
            .iter()
            .filter(|m| is_running(m))
            .map(|m| m.name.as_str())
            .collect();
        if !running.is_empty() {
            bail!(
                "a sandbox is already up in {} ({}); run `provisioner sandbox down` first",
                opts.state_dir.display(),
                running.join(", ")
            );
        }
        eprintln!("sandbox: removing the remains of an earlier sandbox first");
        down(&opts.state_dir).context("cannot remove the earlier sandbox")?;
    }
    let subnet = net::Subnet {
        network: opts.subnet,
    };
    net::check_subnet_free(subnet, &opts.prefix)?;
    if !opts.routed.is_empty() {
        net::check_subnet_free(subnet.next(), &opts.prefix)?;
    }
    base::ensure(&opts.base_dir, opts.mirror.as_deref())?;

    let started = Instant::now();
    match create(opts, subnet) {
        Ok(sandbox) => {
            eprintln!(
                "sandbox: {} machine(s) up in {:.1?}",
                sandbox.machines.len(),
                started.elapsed()
            );
            Ok(sandbox)
        }
        Err(e) if opts.keep_on_failure => Err(e.context(format!(
            "the failed sandbox is left in {} for inspection; `provisioner sandbox down` removes it",
            opts.state_dir.display()
        ))),
        Err(e) => {
            if let Err(cleanup) = down(&opts.state_dir) {
                eprintln!("sandbox: cleaning up after the failed start also failed: {cleanup:#}");
            }
            Err(e)
        }
    }
}

fn validate(opts: &UpOptions) -> Result<()> {
    if opts.names.is_empty() {
        bail!("the sandbox needs at least one machine");
    }
    for (i, name) in opts.names.iter().enumerate() {
        let ok = name.len() <= 40
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            bail!("machine name {name:?} must start with a lowercase letter and hold only lowercase letters, digits and '-' (at most 40)");
        }
        if opts.names[..i].contains(name) {
            bail!("machine name {name:?} is given twice");
        }
    }
    if let Some(r) = opts.routed.iter().find(|r| !opts.names.contains(r)) {
        bail!("routed machine {r:?} is not one of the machines' names");
    }
    if !opts.routed.is_empty() && opts.subnet.octets()[2] == 255 {
        bail!(
            "routed machines live on the /24 after --subnet {}, and there is none",
            opts.subnet
        );
    }
    let last = opts.first_host as usize + opts.names.len() - 1;
    if opts.first_host < 2 || last > 253 {
        bail!(
            "machine addresses .{}-.{last} must lie within .2-.253 (.1 is the host, .254 the hub)",
            opts.first_host
        );
    }
    if opts.subnet.octets()[3] != 0 {
        bail!(
            "the subnet is given by its /24 network address, e.g. 10.88.0.0, not {}",
            opts.subnet
        );
    }
    let prefix_ok = !opts.prefix.is_empty()
        && opts.prefix.len() <= 6
        && opts
            .prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !prefix_ok {
        bail!("prefix {:?} must be 1-6 lowercase letters or digits (interface names are limited to 15 bytes)", opts.prefix);
    }
    if let Some(user) = &opts.sudo_user {
        let ok = user.len() <= 32
            && user.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && user
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !ok || user == "root" {
            bail!("sudo user {user:?} is not a valid new user name");
        }
    }
    Ok(())
}

fn create(opts: &UpOptions, subnet: net::Subnet) -> Result<Sandbox> {
    let state_dir = &opts.state_dir;
    fs::create_dir_all(state_dir)
        .with_context(|| format!("cannot create {}", state_dir.display()))?;
    let machines_dir = state_dir.join("machines");
    let mut st = State::new(
        opts.prefix.clone(),
        opts.subnet,
        (!opts.routed.is_empty()).then(|| subnet.next().network),
        opts.ipv6,
        opts.base_dir.clone(),
        state_dir,
        opts.sudo_user.clone(),
    );
    // Record everything before making it, so `down` knows where to look if we fail midway.
    st.machines = opts
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| MachineState {
            name: name.clone(),
            index: i + 1,
            address: if opts.routed.contains(name) {
                subnet.next()
            } else {
                subnet
            }
            .host(opts.first_host + i as u8),
            netns: machine::netns(&opts.prefix, name),
            dir: Dirs::new(&machines_dir, name).dir,
            pid: None,
            cgroups: cgroup::planned_dirs(&machine::cgroup_leaf(&opts.prefix, name)),
        })
        .collect();
    if opts.writable_kernel_settings {
        st.saved_sysctls = HOST_SYSCTLS
            .iter()
            .filter_map(|key| {
                let value = fs::read_to_string(format!("/proc/sys/{key}")).ok()?;
                Some((key.to_string(), value.trim().to_string()))
            })
            .collect();
    }
    for (key, floor) in INOTIFY_FLOORS {
        let path = format!("/proc/sys/{key}");
        let Some(now) = fs::read_to_string(&path)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if now < *floor {
            fs::write(&path, floor.to_string())
                .with_context(|| format!("cannot raise {path} from {now} to {floor}"))?;
            st.saved_sysctls.push((key.to_string(), now.to_string()));
        }
    }
    st.save(state_dir)?;

    let _ = fs::remove_file(&st.key_path);
    let _ = fs::remove_file(st.key_path.with_extension("pub"));
    sys::run(
        sys::tool("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "provisioner-sandbox",
                "-f",
            ])
            .arg(&st.key_path),
    )
    .context("cannot generate the sandbox's SSH key")?;
    let authorized_key = fs::read_to_string(st.key_path.with_extension("pub"))?;

    let routed_subnet = (!opts.routed.is_empty()).then(|| subnet.next());
    net::create_hub(&opts.prefix, subnet, routed_subnet, opts.ipv6)
        .context("cannot create the sandbox network")?;

    let hosts_file = hosts_file(&st.machines);
    let mut children: Vec<Child> = Vec::new();
    let mut known_hosts = String::new();
    for i in 0..st.machines.len() {
        let m = st.machines[i].clone();
        let dirs = Dirs::new(&machines_dir, &m.name);
        let step = |what: &str| format!("machine {} ({}): {what}", m.name, m.address);
        net::create_machine(
            &opts.prefix,
            &m.name,
            m.index,
            m.address,
            opts.routed.contains(&m.name),
            opts.ipv6,
        )
        .with_context(|| step("creating its network namespace"))?;
        machine::mount_root(&opts.base_dir, &dirs).with_context(|| step("mounting its root"))?;
        let identity = machine::Identity {
            name: &m.name,
            hosts_file: &hosts_file,
            authorized_key: &authorized_key,
            sudo_user: opts.sudo_user.as_deref(),
        };
        machine::write_identity(&dirs.root(), &identity)
            .with_context(|| step("writing its hostname, keys and users"))?;
        let host_key = machine::known_hosts_line(&dirs.root(), &m.name, m.address)
            .with_context(|| step("reading its host key"))?;
        known_hosts.push_str(&host_key);
        let cgroups = cgroup::create(&machine::cgroup_leaf(&opts.prefix, &m.name))
            .with_context(|| step("creating its cgroups"))?;
        let child = machine::launch(&machine::Launch {
            name: &m.name,
            netns: &m.netns,
            dirs: &dirs,
            cgroups: &cgroups,
            writable_kernel_settings: opts.writable_kernel_settings,
        })
        .with_context(|| step("starting systemd-nspawn"))?;
        st.machines[i].pid = Some(child.id());
        st.machines[i].cgroups = cgroups;
        st.save(state_dir)?;
        children.push(child);
        eprintln!("sandbox: booting {} at {}", m.name, m.address);
    }
    sys::write_file(&st.known_hosts_path, &known_hosts, 0o644)?;

    for m in &st.machines {
        if !net::routes_into_sandbox(&opts.prefix, m.address) {
            bail!(
                "machine {} ({}): the host does not route its address into the sandbox network \
                 (through {}); not probing it",
                m.name,
                m.address,
                net::host_veth(&opts.prefix)
            );
        }
    }
    // One deadline for all: they boot in parallel, so waiting on each in turn costs nothing.
    let deadline = Instant::now() + opts.boot_timeout;
    for (m, child) in st.machines.iter().zip(children.iter_mut()) {
        let dirs = Dirs::new(&machines_dir, &m.name);
        let fail = |what: &str| {
            format!(
                "machine {} ({}): {what}; the end of its console log ({}):\n{}",
                m.name,
                m.address,
                dirs.console_log().display(),
                sys::tail(&dirs.console_log(), 25)
            )
        };
        machine::wait_for_sshd(m, child, deadline).with_context(|| fail("waiting for sshd"))?;
        // Bounded, since a unit stuck in activation would otherwise hold `--wait` for minutes.
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(5);
        let system = machine::ssh(
            m.address,
            "root",
            &st.key_path,
            &st.known_hosts_path,
            &crate::shell::wait_system_running(wait),
        )
        .with_context(|| fail("logging in as root with the sandbox key"))?;
        if system.trim() != "running" {
            let failed = machine::ssh(
                m.address,
                "root",
                &st.key_path,
                &st.known_hosts_path,
                "systemctl --failed --no-legend --plain",
            )
            .unwrap_or_default();
            eprintln!(
                "sandbox: warning: {} is {}; failed units:\n{}",
                m.name,
                system.trim(),
                failed.trim()
            );
        }
        if let Some(user) = &opts.sudo_user {
            machine::ssh(
                m.address,
                user,
                &st.key_path,
                &st.known_hosts_path,
                "sudo -n true",
            )
            .with_context(|| fail(&format!("logging in as {user} and running `sudo -n true`")))?;
        }
        eprintln!("sandbox: {} is up", m.name);
    }
    // The handles only served to notice an early exit; the machines outlive this process.
    drop(children);
    Ok(report(state_dir, &st))
}

fn hosts_file(machines: &[MachineState]) -> String {
    let mut text = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n\n# provisioner sandbox machines\n",
    );
    for m in machines {
        text.push_str(&format!("{}\t{}\n", m.address, m.name));
    }
    text
}

fn is_running(m: &MachineState) -> bool {
    m.pid
        .is_some_and(|pid| machine::nspawn_running(pid, &m.dir.join("root")))
}

fn report(state_dir: &Path, st: &State) -> Sandbox {
    let subnet = net::Subnet { network: st.subnet };
    Sandbox {
        state_dir: state_dir.to_path_buf(),
        subnet: subnet.cidr(),
        routed_subnet: st
            .routed_subnet
            .map(|network| net::Subnet { network }.cidr()),
        host_address: subnet.host_address(),
        key_path: st.key_path.clone(),
        known_hosts_path: st.known_hosts_path.clone(),
        machines: st
            .machines
            .iter()
            .map(|m| {
                let running = is_running(m);
                let reachable = running
                    && net::routes_into_sandbox(&st.prefix, m.address)
                    && machine::ssh_banner(m.address, Duration::from_secs(2)).is_ok();
                Machine {
                    name: m.name.clone(),
                    address: m.address,
                    address6: st.ipv6.then(|| net::Subnet::ipv6_of(m.address)),
                    ssh_port: 22,
                    ssh_user: "root".to_string(),
                    sudo_user: st.sudo_user.clone(),
                    running,
                    reachable,
                    console_log: m.dir.join("console.log"),
                }
            })
            .collect(),
    }
}

/// The sandbox in `state_dir` with each machine's state: its process alive, its sshd answering.
pub fn status(state_dir: &Path) -> Result<Sandbox> {
    let st = state::load(state_dir)?.with_context(|| {
        format!(
            "no sandbox in {} (`provisioner sandbox up` starts one)",
            state_dir.display()
        )
    })?;
    Ok(report(state_dir, &st))
}

/// Removes everything `up` made in `state_dir`: machines, mounts, cgroups, namespaces, keys and
/// the record, also after a failed or interrupted `up`. Keeps the cached base root. Goes on past
/// errors and reports them all at the end, so one stuck piece does not leave the rest behind.
pub fn down(state_dir: &Path) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    let st = state::load(state_dir).unwrap_or_else(|e| {
        eprintln!("sandbox: warning: {e:#}; removing what can be found without it");
        None
    });
    let prefix = st
        .as_ref()
        .map_or(DEFAULT_PREFIX.to_string(), |s| s.prefix.clone());
    let machines_dir = state_dir.join("machines");
    let recorded: Vec<MachineState> = st.as_ref().map(|s| s.machines.clone()).unwrap_or_default();

    // Machines first: nothing else can go while they hold mounts and namespaces.
    let mut pids: Vec<u32> = recorded
        .iter()
        .filter(|m| is_running(m))
        .filter_map(|m| m.pid)
        .collect();
    pids.extend(machine::nspawn_pids_under(&machines_dir));
    pids.sort_unstable();
    pids.dedup();
    if !pids.is_empty() {
        eprintln!("sandbox: stopping {} machine(s)", pids.len());
    }
    machine::stop_all(&pids, STOP_GRACE);

    let mut names: Vec<String> = recorded.iter().map(|m| m.name.clone()).collect();
    if let Ok(dir) = fs::read_dir(&machines_dir) {
        names.extend(dir.filter_map(|e| e.ok()?.file_name().into_string().ok()));
    }
    names.sort();
    names.dedup();
    let mut cgroups: Vec<PathBuf> = recorded.iter().flat_map(|m| m.cgroups.clone()).collect();
    for name in &names {
        cgroups.extend(cgroup::planned_dirs(&machine::cgroup_leaf(&prefix, name)));
    }
    cgroups.sort();
    cgroups.dedup();
    if let Err(e) = cgroup::remove(&cgroups) {
        problems.push(format!("{e:#}"));
    }

    if let Err(e) = sys::unmount_all_under(&machines_dir) {
        problems.push(format!("{e:#}"));
    }

    let hub = net::hub_netns(&prefix);
    let mut namespaces: Vec<String> = recorded.iter().map(|m| m.netns.clone()).collect();
    namespaces.extend(
        net::leftover_netns(&prefix)
            .into_iter()
            .filter(|n| *n != hub),
    );
    namespaces.sort();
    namespaces.dedup();
    for ns in &namespaces {
        if let Err(e) = net::delete_netns(ns) {
            problems.push(format!("network namespace {ns}: {e:#}"));
        }
    }
    if let Err(e) = net::delete_host_veth(&prefix) {
        problems.push(format!("{e:#}"));
    }
    if let Err(e) = net::delete_netns(&hub) {
        problems.push(format!("network namespace {hub}: {e:#}"));
    }

    for (key, value) in st.iter().flat_map(|s| &s.saved_sysctls) {
        let path = format!("/proc/sys/{key}");
        let now = fs::read_to_string(&path).unwrap_or_default();
        if now.trim() != value && fs::write(&path, value).is_err() {
            problems.push(format!("cannot restore {path} to {value}"));
        }
    }

    // Only after the unmount check: remove_tree refuses to descend into anything still mounted.
    if let Err(e) = sys::remove_tree(&machines_dir) {
        problems.push(format!("{e:#}"));
    }
    for name in &names {
        // nspawn's own runtime directory; on a host whose /run is not a tmpfs it refuses to
        // delete it itself.
        let _ = fs::remove_dir_all(Path::new("/run/systemd/nspawn/propagate").join(name));
    }
    let key = st
        .as_ref()
        .map_or(state_dir.join("id_ed25519"), |s| s.key_path.clone());
    let known_hosts = st.as_ref().map_or(state_dir.join("known_hosts"), |s| {
        s.known_hosts_path.clone()
    });
    for file in [key.with_extension("pub"), key, known_hosts] {
        let _ = fs::remove_file(file);
    }
    if problems.is_empty() {
        let _ = fs::remove_file(state::path(state_dir));
        // Only if empty: the directory may be the caller's and hold other things.
        let _ = fs::remove_dir(state_dir);
        Ok(())
    } else {
        bail!(
            "the sandbox in {} was not removed completely (run `provisioner sandbox down` again):\n  {}",
            state_dir.display(),
            problems.join("\n  ")
        )
    }
}
