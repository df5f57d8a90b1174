//! Every command sent to a host is built here. Values reach the shell only through [`quote`]
//! (or as positional parameters set with it); scripts are real files beside this module, so
//! shellcheck reads them as they run.

/// Quotes a string as one word for a POSIX shell. NUL cannot be passed to a command at all, so
/// callers validate their values first; here it is refused rather than truncated.
pub fn quote(s: &str) -> String {
    assert!(
        !s.contains('\0'),
        "a value with a NUL byte cannot reach a shell; values are validated before this"
    );
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `set -- 'a' 'b' ...`: the script that follows sees the values as `$1`, `$2`, ...
fn set_args<S: AsRef<str>>(args: &[S]) -> String {
    let mut s = String::from("set --");
    for a in args {
        s.push(' ');
        s.push_str(&quote(a.as_ref()));
    }
    s.push('\n');
    s
}

/// A script with its positional parameters set first.
fn script<S: AsRef<str>>(args: &[S], body: &str) -> String {
    format!("{}{body}", set_args(args))
}

/// A command line: the program and its arguments, each quoted.
fn command<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wraps a command to run as root: `sudo -n sh -c '...'` when the login user needs sudo.
pub fn as_root(command: &str, sudo: bool) -> String {
    if sudo {
        format!("sudo -n sh -c {}", quote(command))
    } else {
        command.to_string()
    }
}

/// A POSIX sh script run as root, whatever the login shell: `sh -c '...'`, through `sudo -n`
/// when the login user needs it.
pub fn script_as_root(script: &str, sudo: bool) -> String {
    let sudo = if sudo { "sudo -n " } else { "" };
    format!("{sudo}sh -c {}", quote(script))
}

/// What the facts script looks at on a host (by default, nothing).
#[derive(Default)]
pub struct FactSections<'a> {
    pub files: &'a [&'a str],
    pub dirs: &'a [&'a str],
    pub links: &'a [&'a str],
    pub units: &'a [String],
    /// Directories whose every file is listed.
    pub owned: &'a [&'a str],
    /// containerd's images.
    pub images: bool,
}

/// The facts script: see `facts.sh` for its parameters and output. An empty `record` hashes
/// every file again.
pub fn facts(record: &str, follow_up: &str, s: &FactSections<'_>) -> String {
    let mut args: Vec<&str> = vec![record, follow_up, "--files"];
    args.extend(s.files);
    args.push("--dirs");
    args.extend(s.dirs);
    args.push("--links");
    args.extend(s.links);
    args.push("--units");
    args.extend(s.units.iter().map(String::as_str));
    args.push("--owned");
    args.extend(s.owned);
    if s.images {
        args.extend(["--images", "yes"]);
    }
    script(&args, include_str!("facts.sh"))
}

/// Records the size and mtime of each `(sha256, path)` in `record`.
pub fn record_files(record: &str, files: &[(&str, &str)]) -> String {
    let mut args = vec![record];
    for (sha, path) in files {
        args.extend([*sha, *path]);
    }
    script(&args, include_str!("record.sh"))
}

/// Adds `(kind, path)` pairs (`file` or `dir`) to the record of what provisioner installed,
/// with each directory missing above them; see `track.sh`.
pub fn track(record: &str, paths: &[(&str, &str)]) -> String {
    let mut args = vec![record];
    for (kind, path) in paths {
        args.extend([*kind, *path]);
    }
    script(&args, include_str!("track.sh"))
}

/// Returns a host to what it was before provisioner installed anything; see `reset.sh`.
/// `units` (unit file names) stop in the order given; `runtime`'s pods are killed before it
/// stops; `kube_proxy`'s `--cleanup` removes its rules; `remove` goes last, in its order.
pub fn reset(
    kube_proxy: Option<&str>,
    runtime: Option<&str>,
    keep_images: bool,
    units: &[String],
    remove: &[String],
) -> String {
    let table = crate::layout::POD_OVERLAY_TABLE.to_string();
    let mut args: Vec<&str> = vec![
        kube_proxy.unwrap_or(""),
        runtime.unwrap_or(""),
        if keep_images { "yes" } else { "no" },
        crate::layout::CNI_BRIDGE,
        crate::layout::POD_OVERLAY_DEVICE,
        &table,
    ];
    args.extend(units.iter().map(String::as_str));
    args.push("--");
    args.extend(remove.iter().map(String::as_str));
    script(&args, include_str!("reset.sh"))
}

/// Prints the sha256 of each path, "-" for a missing one.
pub fn sha256_files(paths: &[&str]) -> String {
    script(paths, include_str!("sha256.sh"))
}

/// Prints "SHA256 MODE UID GID" of `path`, or "-".
pub fn file_state(path: &str) -> String {
    script(&[path], include_str!("file_state.sh"))
}

/// Receives stdin into `tmp` (in `dir`), checks its sha256, then moves it to `path` with `mode`.
pub fn receive(dir: &str, tmp: &str, path: &str, sha256: &str, mode: u32) -> String {
    let mode = format!("{mode:o}");
    script(&[dir, tmp, path, sha256, &mode], include_str!("receive.sh"))
}

/// Root-owned with `mode`.
pub fn own_and_chmod(path: &str, mode: u32) -> String {
    let mode = format!("{mode:o}");
    format!(
        "{} && {}",
        command(&["chown", "0:0", path]),
        command(&["chmod", &mode, path])
    )
}

/// Creates the system users the `sysusers.d` files declare (those that exist stay as they are).
pub fn create_system_users(files: &std::collections::BTreeSet<String>) -> String {
    let mut words = vec!["systemd-sysusers", "--"];
    words.extend(files.iter().map(String::as_str));
    command(&words)
}

/// Creates each directory with its mode (and fixes the mode of an existing one).
pub fn install_dirs(dirs: &[(String, u32)]) -> String {
    dirs.iter()
        .map(|(d, m)| command(&["install", "-d", "-m", &format!("{m:o}"), d]))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The certificates of `paths` (kubeconfigs: their client certificate only), after "==> PATH".
pub fn read_certs(paths: &[&str]) -> String {
    script(paths, include_str!("read_certs.sh"))
}

/// What `systemctl` does to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitVerb {
    Start,
    Restart,
    /// Reload if it runs, start it otherwise.
    ReloadOrRestart,
}

/// Optionally enables `unit` (its file name, `etcd.service`), then starts or restarts it.
/// `no_block` returns before the unit reports started (etcd members, which wait for each other).
pub fn systemctl(unit: &str, enable: bool, verb: Option<UnitVerb>, no_block: bool) -> String {
    let service = unit;
    let mut parts = Vec::new();
    if enable {
        parts.push(command(&["systemctl", "enable", "--quiet", service]));
    }
    if let Some(v) = verb {
        let v = match v {
            UnitVerb::Start => "start",
            UnitVerb::Restart => "restart",
            UnitVerb::ReloadOrRestart => "reload-or-restart",
        };
        let mut words = vec!["systemctl", v];
        if no_block {
            words.push("--no-block");
        }
        words.push(service);
        parts.push(command(&words));
    }
    if parts.is_empty() {
        "true".to_string()
    } else {
        parts.join(" && ")
    }
}

/// Succeeds when the unit (its file name) is active.
pub fn is_active(unit: &str) -> String {
    command(&["systemctl", "is-active", "--quiet", unit])
}

/// The file's bytes on stdout.
pub fn cat(path: &str) -> String {
    command(&["cat", "--", path])
}

pub fn daemon_reload() -> String {
    command(&["systemctl", "daemon-reload"])
}

/// The last `lines` lines a unit (its file name) logged.
pub fn journal_tail(unit: &str, lines: u32) -> String {
    command(&[
        "journalctl",
        "-u",
        unit,
        "-n",
        &lines.to_string(),
        "--no-pager",
        "-o",
        "cat",
    ])
}

/// Waits up to `seconds` for systemd to finish booting and prints its state.
pub fn wait_system_running(seconds: u64) -> String {
    format!(
        "{}; true",
        command(&[
            "timeout",
            &seconds.to_string(),
            "systemctl",
            "is-system-running",
            "--wait"
        ])
    )
}

/// Loads the kernel modules containerd and kube-proxy need, unless built in.
pub fn load_modules() -> String {
    "grep -qw overlay /proc/filesystems || modprobe overlay; \
     [ -d /proc/sys/net/bridge ] || modprobe br_netfilter"
        .to_string()
}

pub fn apply_sysctl(file: &str) -> String {
    command(&["sysctl", "-q", "-p", file])
}

/// The routes to exactly `cidr`, of its address family (`ip route` alone lists IPv4 only).
pub fn route_show(cidr: &str) -> String {
    let family = if cidr.contains(':') { "-6" } else { "-4" };
    command(&["ip", family, "route", "show", cidr])
}

/// The rules of one chain of an IPv4 table, as `iptables -S` prints them (waiting for the
/// table's lock rather than failing while another program writes it).
pub fn iptables_rules(table: &str, chain: &str) -> String {
    command(&["iptables", "-w", "5", "-t", table, "-S", chain])
}

const CTR: [&str; 5] = [
    "ctr",
    "--address",
    "/run/containerd/containerd.sock",
    "-n",
    "k8s.io",
];

/// Succeeds once containerd answers on its socket.
pub fn containerd_version() -> String {
    command(&CTR[..3].iter().chain(&["version"]).collect::<Vec<_>>())
}

pub fn import_image(archive: &str) -> String {
    command(
        &CTR.iter()
            .chain(&["images", "import", archive])
            .collect::<Vec<_>>(),
    )
}

/// Marks an imported image pinned, as containerd marks the sandbox image, so the kubelet's
/// image garbage collection never removes it: an air-gapped node could not pull it back.
pub fn pin_image(reference: &str) -> String {
    command(
        &CTR.iter()
            .chain(&[
                "images",
                "label",
                reference,
                "io.cri-containerd.pinned=pinned",
            ])
            .collect::<Vec<_>>(),
    )
}

/// Lists the image `reference` (header line, then one line if present).
pub fn list_image(reference: &str) -> String {
    let filter = format!("name=={reference}");
    command(
        &CTR.iter()
            .chain(&["images", "ls", filter.as_str()])
            .collect::<Vec<_>>(),
    )
}

/// Keeps the newest `keep` files of `dir` named `prefix...` (names that sort by time).
pub fn prune(dir: &str, prefix: &str, keep: usize) -> String {
    script(&[dir, prefix, &keep.to_string()], include_str!("prune.sh"))
}

/// Removes the version directories under `root` that `keep` (`RELEASE/VERSION`) does not
/// keep, of the releases it names; see `prune_versions.sh`.
pub fn prune_versions(root: &str, keep: &[String]) -> String {
    let mut args = vec![root];
    args.extend(keep.iter().map(String::as_str));
    script(&args, include_str!("prune_versions.sh"))
}

/// Saves an etcd snapshot to `file` (in a 0700 directory), with the healthcheck client.
pub fn etcd_snapshot(endpoint: &str, pki: &str, file: &str) -> String {
    let dir = file.rsplit_once('/').map_or("/", |(d, _)| d);
    format!(
        "{} && ETCDCTL_API=3 {} >/dev/null",
        command(&["install", "-d", "-m", "700", dir]),
        command(&etcdctl(
            endpoint,
            pki,
            &["--command-timeout", "60s", "snapshot", "save", file]
        ))
    )
}

/// Every member's status (`etcdctl endpoint status --cluster -w json`), asked through
/// `endpoint`.
pub fn etcd_status(endpoint: &str, pki: &str) -> String {
    command(&etcdctl(
        endpoint,
        pki,
        &[
            "--command-timeout",
            "10s",
            "endpoint",
            "status",
            "--cluster",
            "-w",
            "json",
        ],
    ))
}

/// The members etcd lists (`etcdctl member list -w json`, IDs in hex as `member promote` takes
/// them), asked through `endpoint`.
pub fn etcd_members(endpoint: &str, pki: &str) -> String {
    command(&etcdctl(
        endpoint,
        pki,
        &[
            "--command-timeout",
            "10s",
            "member",
            "list",
            "-w",
            "json",
            "--hex",
        ],
    ))
}

/// Adds `name` at `peer_url` to the cluster as a learner (a member without a vote until it is
/// promoted), asked through `endpoint`.
pub fn etcd_add_learner(endpoint: &str, pki: &str, name: &str, peer_url: &str) -> String {
    let peer = format!("--peer-urls={peer_url}");
    command(&etcdctl(
        endpoint,
        pki,
        &[
            "--command-timeout",
            "10s",
            "member",
            "add",
            name,
            &peer,
            "--learner",
        ],
    ))
}

/// Removes the member `id` (hex) from the cluster; it stops itself once it learns it.
pub fn etcd_remove_member(endpoint: &str, pki: &str, id: &str) -> String {
    command(&etcdctl(
        endpoint,
        pki,
        &["--command-timeout", "10s", "member", "remove", id],
    ))
}

/// Gives the learner `id` (hex) its vote; etcd refuses until it has caught up with the leader.
pub fn etcd_promote(endpoint: &str, pki: &str, id: &str) -> String {
    command(&etcdctl(
        endpoint,
        pki,
        &["--command-timeout", "10s", "member", "promote", id],
    ))
}

/// A snapshot file's revision, keys, size and hash (`etcdutl snapshot status -w json`).
pub fn etcd_snapshot_status(file: &str) -> String {
    command(&["etcdutl", "snapshot", "status", file, "-w", "json"])
}

/// Stops units, by file name (a unit already stopped stays so).
pub fn stop_units(units: &[String]) -> String {
    let mut words = vec!["systemctl".to_string(), "stop".to_string()];
    words.extend(units.iter().cloned());
    command(&words)
}

/// Restores `snapshot` into a new data directory and swaps it in for etcd's, the old one kept
/// beside it (`aside`). The revision is bumped and compacted, so
/// that watchers holding newer revisions start over instead of missing changes.
pub fn etcd_restore(r: &EtcdRestore<'_>) -> String {
    [
        command(&["rm", "-rf", "--", r.staging]),
        command(&[
            "etcdutl",
            "snapshot",
            "restore",
            r.snapshot,
            "--name",
            r.name,
            "--initial-cluster",
            r.initial_cluster,
            "--initial-cluster-token",
            r.token,
            "--initial-advertise-peer-urls",
            r.peer_url,
            "--bump-revision",
            "1000000000",
            "--mark-compacted",
            "--data-dir",
            r.staging,
        ]),
        command(&["mv", "--", r.data_dir, r.aside]),
        command(&["mv", "--", r.staging, r.data_dir]),
        command(&["chmod", "700", r.data_dir]),
    ]
    .join(" && ")
}

/// One member's part of an etcd restore.
pub struct EtcdRestore<'a> {
    pub snapshot: &'a str,
    pub name: &'a str,
    pub initial_cluster: &'a str,
    pub token: &'a str,
    pub peer_url: &'a str,
    pub data_dir: &'a str,
    /// Where the snapshot is restored to, before it takes the data directory's place.
    pub staging: &'a str,
    /// Where the data directory's previous content is kept.
    pub aside: &'a str,
}

/// Points each `(path, target)` link at its target, each replaced in one rename (a program
/// about to start finds the old link or the new one, never none); a regular file there (an
/// install of the unversioned layout) is replaced the same way.
pub fn switch_links(links: &[(&str, &str)]) -> String {
    links
        .iter()
        .map(|(path, target)| {
            let tmp = format!("{path}.provisioner-new");
            format!(
                "{} && {}",
                command(&["ln", "-sfn", "--", target, &tmp]),
                command(&["mv", "-Tf", "--", &tmp, path])
            )
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// Where the link at `path` points; nothing when it is not a link.
pub fn read_link(path: &str) -> String {
    format!("{} 2>/dev/null; true", command(&["readlink", "--", path]))
}

/// Replaces `path` whole with `lines` (0600, its directory created 0700 when missing).
pub fn write_lines(path: &str, lines: &[String]) -> String {
    let dir = path.rsplit_once('/').map_or(".", |(d, _)| d);
    let tmp = format!("{path}.tmp");
    let mut printf = vec!["printf", "%s\\n"];
    printf.extend(lines.iter().map(String::as_str));
    format!(
        "{} && (umask 077 && {} >{}) && {}",
        command(&["install", "-d", "-m", "700", dir]),
        command(&printf),
        quote(&tmp),
        command(&["mv", "-f", "--", &tmp, path])
    )
}

/// Removes one file (nothing when it is missing).
pub fn remove_file(path: &str) -> String {
    command(&["rm", "-f", "--", path])
}

/// Removes the client certificates the kubelet renewed itself (the current link and the dated
/// pairs), so that its next start begins from its kubeconfig's.
pub fn forget_renewed_kubelet_client() -> String {
    let dir = crate::layout::KUBELET_PKI;
    let find = command(&[
        "find",
        dir,
        "-maxdepth",
        "1",
        "-name",
        "kubelet-client-*.pem",
        "-delete",
    ]);
    format!("[ ! -d {} ] || {find}", quote(dir))
}

/// `etcdctl` against `endpoint` with the healthcheck client certificate under `pki`.
fn etcdctl(endpoint: &str, pki: &str, args: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = [
        "etcdctl".to_string(),
        "--endpoints".into(),
        endpoint.into(),
        "--cacert".into(),
        format!("{pki}/ca.crt"),
        "--cert".into(),
        format!("{pki}/healthcheck-client.crt"),
        "--key".into(),
        format!("{pki}/healthcheck-client.key"),
    ]
    .to_vec();
    words.extend(args.iter().map(|a| a.to_string()));
    words
}

/// Compare-and-swap of the lease file: writes `new` (or removes the lease when empty) only if
/// the file holds `expected`; otherwise prints what it holds and exits 3.
pub fn swap_lease(path: &str, new: &str, expected: &str) -> String {
    script(&[path, new, expected], include_str!("lease.sh"))
}

/// The file's content; nothing when there is no such file.
pub fn read_if_present(path: &str) -> String {
    format!("{} 2>/dev/null; true", command(&["cat", path]))
}

/// Prints the identity files of a host (public parts whole, encryption keys as hashes):
/// `pem PATH LINE` and `enc SHA256` lines.
pub fn identity_probe(public_files: &[String], encryption_config: &str) -> String {
    let mut args = vec![encryption_config];
    args.extend(public_files.iter().map(String::as_str));
    script(&args, include_str!("identity.sh"))
}

/// Prints each of `paths` framed for [`parse_files`]: the whole content, keys included. Only for
/// `state recover`, which keeps what it reads in memory and in the state directory.
pub fn read_files(paths: &[String]) -> String {
    script(paths, include_str!("read_files.sh"))
}

/// Parses [`read_files`]' output: path → content, None for a missing file.
pub fn parse_files(
    mut out: &[u8],
) -> Result<std::collections::BTreeMap<String, Option<Vec<u8>>>, String> {
    let mut files = std::collections::BTreeMap::new();
    while !out.is_empty() {
        let end = out
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("output ends inside a header")?;
        let header = String::from_utf8_lossy(&out[..end]).into_owned();
        out = &out[end + 1..];
        let (size, path) = header
            .split_once(' ')
            .ok_or_else(|| format!("bad header {header:?}"))?;
        if size == "-" {
            files.insert(path.to_string(), None);
            continue;
        }
        let size: usize = size
            .parse()
            .map_err(|_| format!("bad size in {header:?}"))?;
        if size > out.len() {
            return Err(format!("{path}: output ends before its {size} bytes"));
        }
        files.insert(path.to_string(), Some(out[..size].to_vec()));
        out = &out[size..];
    }
    Ok(files)
}

/// Runs a script with the local `sh` and returns its stdout, for the tests of what the scripts
/// here print; it panics with their stderr when they fail.
#[cfg(test)]
pub(crate) fn run_locally(script: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::run_locally as sh;

    #[test]
    fn quoted_values_come_back_unchanged() {
        for hostile in [
            "plain",
            "",
            "a b",
            "it's",
            "';touch /tmp/pwned;'",
            "$(reboot)",
            "`id`",
            "line\nbreak",
            "\"double\"",
            "back\\slash",
            "*?[glob]",
            "-n",
            "tab\there",
            "~root",
            "a;b|c&d>e<f",
        ] {
            assert_eq!(sh(&format!("printf %s {}", quote(hostile))), hostile);
            assert_eq!(
                sh(&format!("{}printf '%s|' \"$@\"", set_args(&[hostile, "x"]))),
                format!("{hostile}|x|")
            );
        }
    }

    #[test]
    fn lines_are_written_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new dir/follow-up").display().to_string();
        let lines = ["daemon-reload".to_string(), "sysusers /a b/'c'".to_string()];
        sh(&write_lines(&path, &lines));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "daemon-reload\nsysusers /a b/'c'\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!std::path::Path::new(&format!("{path}.tmp")).exists());
    }

    #[test]
    fn files_are_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a b");
        let content = "line\n- fake header\n12 /x\nno newline at the end";
        std::fs::write(&a, content).unwrap();
        let missing = dir.path().join("missing");
        let paths = [a.display().to_string(), missing.display().to_string()];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(read_files(&paths))
            .output()
            .unwrap();
        let files = parse_files(&out.stdout).unwrap();
        assert_eq!(files[&paths[0]].as_deref(), Some(content.as_bytes()));
        assert_eq!(files[&paths[1]], None);
        assert!(parse_files(b"99 /x\nshort").is_err());
    }

    /// The arguments each program of `command` receives, with every program replaced by a
    /// shell function that prints them.
    fn argv(command: &str) -> String {
        let fake =
            "for p in ctr systemctl journalctl etcdctl install chmod chown ip sysctl timeout; do \
                    eval \"$p() { printf '%s' $p; printf ' <%s>' \\\"\\$@\\\"; echo; }\"; done\n";
        sh(&format!("{fake}{command}"))
    }

    #[test]
    fn hostile_values_reach_each_program_as_one_argument() {
        let evil = "x';touch /tmp/pwned;'$(id)`id`\ny";
        assert_eq!(
            argv(&import_image(evil)),
            format!("ctr <--address> </run/containerd/containerd.sock> <-n> <k8s.io> <images> <import> <{evil}>\n")
        );
        assert_eq!(
            argv(&list_image(evil)),
            format!("ctr <--address> </run/containerd/containerd.sock> <-n> <k8s.io> <images> <ls> <name=={evil}>\n")
        );
        assert_eq!(
            argv(&install_dirs(&[
                (evil.to_string(), 0o700),
                ("/b".into(), 0o755)
            ])),
            format!("install <-d> <-m> <700> <{evil}>\ninstall <-d> <-m> <755> </b>\n")
        );
        assert_eq!(
            argv(&systemctl("etcd.service", true, Some(UnitVerb::Restart), true)),
            "systemctl <enable> <--quiet> <etcd.service>\nsystemctl <restart> <--no-block> <etcd.service>\n"
        );
        assert_eq!(argv(&systemctl("kubelet.service", false, None, false)), "");
        assert_eq!(
            argv(&journal_tail(evil, 30)),
            format!("journalctl <-u> <{evil}> <-n> <30> <--no-pager> <-o> <cat>\n")
        );
        assert_eq!(
            argv(&own_and_chmod(evil, 0o600)),
            format!("chown <0:0> <{evil}>\nchmod <600> <{evil}>\n")
        );
        // Its output goes to /dev/null on the host; here it is what the test reads.
        let snap = etcd_snapshot("https://10.0.0.1:2379", "/p", "/b/etcd 1.db");
        let snap = argv(&snap.replace(" >/dev/null", ""));
        assert!(snap.starts_with("install <-d> <-m> <700> </b>\netcdctl <--endpoints> <https://10.0.0.1:2379> <--cacert> </p/ca.crt>"), "{snap}");
        assert!(
            snap.ends_with("<snapshot> <save> </b/etcd 1.db>\n"),
            "{snap}"
        );
        let tail = |command: &str| {
            let out = argv(command);
            out.split_once("healthcheck-client.key> ")
                .map(|(_, t)| t.to_string())
                .unwrap_or(out)
        };
        assert_eq!(
            tail(&etcd_add_learner("https://10.0.0.1:2379", "/p", evil, "https://10.0.0.4:2380")),
            format!("<--command-timeout> <10s> <member> <add> <{evil}> <--peer-urls=https://10.0.0.4:2380> <--learner>\n")
        );
        assert_eq!(
            tail(&etcd_promote("https://10.0.0.1:2379", "/p", evil)),
            format!("<--command-timeout> <10s> <member> <promote> <{evil}>\n")
        );
        assert_eq!(
            tail(&etcd_remove_member(
                "https://10.0.0.1:2379",
                "/p",
                "7e1cb902d5c86c6c"
            )),
            "<--command-timeout> <10s> <member> <remove> <7e1cb902d5c86c6c>\n"
        );
        assert!(!std::path::Path::new("/tmp/pwned").exists());
    }

    #[test]
    fn links_switch_in_place_and_the_facts_read_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (v1, v2) = (format!("{d}/v1/prog"), format!("{d}/v2/prog"));
        let (link, plain) = (format!("{d}/prog"), format!("{d}/plain"));
        std::fs::write(&plain, "an unversioned install").unwrap();
        sh(&switch_links(&[(&link, &v1), (&plain, &v1)]));
        sh(&switch_links(&[(&link, &v2)]));
        assert_eq!(std::fs::read_link(&link).unwrap().display().to_string(), v2);
        assert_eq!(
            std::fs::read_link(&plain).unwrap().display().to_string(),
            v1
        );
        let missing = format!("{d}/missing");
        let facts = sh(&facts(
            "",
            "",
            &FactSections {
                links: &[&link, &plain, &missing],
                ..FactSections::default()
            },
        ));
        let links: Vec<&str> = facts.lines().filter(|l| l.starts_with("link=")).collect();
        assert_eq!(
            links,
            [format!("link={v2} {link}"), format!("link={v1} {plain}")]
        );
    }

    #[test]
    fn old_versions_are_pruned_and_kept_ones_and_other_releases_stay() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rv in [
            "kubernetes/1.35.4",
            "kubernetes/1.36.3",
            "kubernetes/1.37.2",
            "etcd/3.6.8",
            "cni-plugins/1.9.1",
        ] {
            std::fs::create_dir_all(root.join(rv)).unwrap();
            std::fs::write(root.join(rv).join("prog"), "x").unwrap();
        }
        let keep = [
            "kubernetes/1.37.2".to_string(),
            "kubernetes/1.36.3".into(),
            "etcd/3.7.0".into(),
        ];
        let out = sh(&prune_versions(&root.display().to_string(), &keep));
        assert_eq!(out, "removed etcd/3.6.8\nremoved kubernetes/1.35.4\n");
        for (rv, stays) in [
            ("kubernetes/1.35.4", false),
            ("kubernetes/1.36.3", true),
            ("kubernetes/1.37.2", true),
            ("etcd/3.6.8", false),
            ("cni-plugins/1.9.1", true),
        ] {
            assert_eq!(root.join(rv).exists(), stays, "{rv}");
        }
        sh(&prune_versions(
            &root.join("none").display().to_string(),
            &keep,
        ));
    }

    #[test]
    fn prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["etcd-100.db", "etcd-200.db", "etcd-300.db", "other"] {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        let d = dir.path().display().to_string();
        sh(&prune(&d, "etcd-", 2));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["etcd-200.db", "etcd-300.db", "other"]);
        sh(&prune(&format!("{d}/none"), "etcd-", 1));
    }

    #[test]
    #[should_panic(expected = "NUL")]
    fn nul_is_refused() {
        quote("a\0b");
    }

    #[test]
    fn the_identity_probe_prints_public_files_and_hashes_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "-----BEGIN X-----\nQUJD\n-----END X-----").unwrap();
        let enc = dir.path().join("enc.yaml");
        std::fs::write(&enc, "keys:\n- name: key1\n  secret: c2VjcmV0+/=\n").unwrap();
        let out = sh(&identity_probe(
            &[
                ca.display().to_string(),
                dir.path().join("missing").display().to_string(),
            ],
            &enc.display().to_string(),
        ));
        let ca = ca.display();
        assert_eq!(
            out,
            format!(
                "pem {ca} -----BEGIN X-----\npem {ca} QUJD\npem {ca} -----END X-----\nenc {}\n",
                crate::digest::sha256_hex(b"c2VjcmV0+/=")
            )
        );
        assert!(!out.contains("c2VjcmV0+/="), "no key leaves the host");
    }
}
