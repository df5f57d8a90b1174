//! The SSH transport against real OpenSSH: each test starts its own `sshd` on 127.0.0.1 with a
//! random port, a temporary host key and an authorized temporary client key, and kills it at
//! the end. Needs root (sshd runs commands as the logged-in user) and openssh-server,
//! openssh-client installed; the sudo test also needs sudo and runs only when CI or
//! PROVISIONER_TEST_SUDO is set (it creates and removes a system user).

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener as StdListener, TcpStream as StdStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provisioner::inventory::{Bastion, Host, HostKeyPolicy, Roles, SshSettings, SshTarget};
use provisioner::transport::{Agent, ConnectOptions, Connection, Error, Source, Uploaded};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::host::is_root;
use common::ssh::keygen;
use common::{sha256_hex, text};

// ---------------------------------------------------------------------------------------------
// Harness

fn require_root() {
    assert!(
        is_root(),
        "the SSH transport tests need root: sshd must run as root and log in as root \
         (run `sudo -E cargo test --test transport_ssh`, or in the CI container)"
    );
    for tool in [
        "/usr/sbin/sshd",
        "/usr/bin/ssh-keygen",
        "/usr/bin/ssh-keyscan",
    ] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: apt-get install -y openssh-server openssh-client"
        );
    }
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pub_line(key: &Path) -> String {
    std::fs::read_to_string(format!("{}.pub", key.display()))
        .unwrap()
        .trim()
        .to_string()
}

/// The fingerprint as `ssh-keygen -lf` prints it (second field).
fn keygen_fingerprint(pub_path: &Path) -> String {
    sh(&format!("ssh-keygen -lf {}", pub_path.display()))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Sshd {
    dir: TempDir,
    port: u16,
    child: Child,
    /// The ed25519 host key (private; `.pub` beside it).
    host_key: PathBuf,
    /// An authorized ed25519 client key.
    client_key: PathBuf,
}

#[derive(Default)]
struct SshdConfig {
    /// Extra sshd_config lines.
    extra: Vec<String>,
    /// Host key type (default ed25519).
    host_key_type: Option<&'static str>,
    /// Sign the host key with this CA private key for these principals.
    certificate: Option<(PathBuf, String)>,
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with(SshdConfig::default())
    }

    fn start_with(config: SshdConfig) -> Sshd {
        require_root();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        // sshd reads authorized_keys as the user logging in: the sudo test logs in as another.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let kt = config.host_key_type.unwrap_or("ed25519");
        let host_key = keygen(dir.path(), &format!("host_{kt}"), kt, "");
        let client_key = keygen(dir.path(), "id_ed25519", "ed25519", "");
        let authorized = dir.path().join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n", pub_line(&client_key))).unwrap();
        std::fs::set_permissions(&authorized, std::fs::Permissions::from_mode(0o644)).unwrap();
        // sshd keeps the first value of a keyword: the test's own lines come first.
        let mut lines = config.extra.clone();
        lines.extend([
            format!("HostKey {}", host_key.display()),
            format!("AuthorizedKeysFile {}", authorized.display()),
            "ListenAddress 127.0.0.1".into(),
            "PermitRootLogin prohibit-password".into(),
            "StrictModes no".into(),
            "UsePAM no".into(),
            "PidFile none".into(),
            "PasswordAuthentication no".into(),
            "KbdInteractiveAuthentication no".into(),
            "AllowTcpForwarding yes".into(),
            "LogLevel DEBUG1".into(),
        ]);
        if let Some((ca, principals)) = &config.certificate {
            sh(&format!(
                "ssh-keygen -q -s {} -I test-host -h -n {principals} {}.pub",
                ca.display(),
                host_key.display()
            ));
            lines.push(format!("HostCertificate {}-cert.pub", host_key.display()));
        }

        // A port picked free may be taken before sshd binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.path().join("sshd_config");
            let text = format!("Port {port}\n{}\n", lines.join("\n"));
            std::fs::write(&conf, text).unwrap();
            let log = std::fs::File::create(dir.path().join("sshd.stderr")).unwrap();
            let mut child = Command::new("/usr/sbin/sshd")
                // -E: the log goes to a file (with -e, debug lines would reach the client's stderr).
                .arg("-D")
                .arg("-E")
                .arg(dir.path().join("sshd.log"))
                .arg("-f")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("sshd starts");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(dir.path().join("sshd.log"))
                        .unwrap_or_default()
                        + &std::fs::read_to_string(dir.path().join("sshd.stderr"))
                            .unwrap_or_default();
                    if log.contains("Address already in use") {
                        break;
                    }
                    panic!("sshd exited with {status}:\n{log}");
                }
                if let Ok(mut s) = StdStream::connect(("127.0.0.1", port)) {
                    let mut banner = [0u8; 4];
                    if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                        return Sshd {
                            dir,
                            port,
                            child,
                            host_key,
                            client_key,
                        };
                    }
                }
                assert!(Instant::now() < deadline, "sshd did not start listening");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for sshd");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn host_pub(&self) -> PathBuf {
        PathBuf::from(format!("{}.pub", self.host_key.display()))
    }

    fn fingerprint(&self) -> String {
        keygen_fingerprint(&self.host_pub())
    }

    /// A known_hosts line for this server as `ssh-keyscan` would write it.
    fn known_line(&self) -> String {
        let pub_key = pub_line(&self.host_key);
        let mut f = pub_key.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}",
            self.port,
            f.next().unwrap(),
            f.next().unwrap()
        )
    }

    fn authorize(&self, key: &Path) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.path("authorized_keys"))
            .unwrap();
        writeln!(f, "{}", pub_line(key)).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// A host "node1" at this server, known_hosts in the client directory listing the server.
    fn host(&self, client: &Path) -> Host {
        let known = client.join("known_hosts");
        if !known.exists() {
            std::fs::write(&known, format!("{}\n", self.known_line())).unwrap();
        }
        Host {
            name: "node1".into(),
            address: "127.0.0.1".into(),
            internal_ip: Ipv4Addr::LOCALHOST,
            internal_ipv6: None,
            roles: Roles::default(),
            pod_cidr: None,
            pod_cidr_explicit: false,
            etcd_joins: false,
            ssh: SshTarget {
                user: "root".into(),
                port: self.port,
                identity_file: self.client_key.clone(),
                known_hosts: known,
                host_key_policy: HostKeyPolicy::Strict,
                sudo: false,
                host_key: None,
            },
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn settings() -> SshSettings {
    SshSettings {
        parallelism: 4,
        bastion: None,
        command_timeout: Duration::from_secs(600),
    }
}

/// Test options: no system known_hosts, no agent unless a test asks, short backoff.
fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(5),
        attempts: 3,
        backoff: Duration::from_millis(200),
        global_known_hosts: None,
        agent: Agent::None,
        ..ConnectOptions::default()
    }
}

async fn connect(host: &Host) -> Result<Connection, Error> {
    Connection::connect_with(host, &settings(), options()).await
}

// ---------------------------------------------------------------------------------------------
// Commands

#[tokio::test(flavor = "multi_thread")]
async fn run_reports_stdout_stderr_and_status() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    assert_eq!(conn.host_name(), "node1");

    let out = conn
        .run("echo out; echo err >&2; printf 'a\\0b'; exit 3")
        .await
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"out\na\0b");
    assert_eq!(text(&out.stderr), "err\n");

    let out = conn.run_checked("id -u; cat").await.unwrap();
    assert_eq!(
        text(&out.stdout),
        "0\n",
        "stdin is closed, cat ends at once"
    );

    // A large output arrives whole.
    let out = conn
        .run("head -c 3000000 /dev/zero | tr '\\0' x")
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 3_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_checked_error_names_host_command_and_stderr() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let cmd = "for i in $(seq 1 20); do echo line$i >&2; done; echo boom >&2; exit 7";
    let err = conn.run_checked(cmd).await.unwrap_err();
    let Error::Command { status, .. } = &err else {
        panic!("expected a command error, got {err:?}")
    };
    assert_eq!(*status, 7);
    let msg = err.to_string();
    assert!(msg.contains("node1"), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{}", sshd.port)), "{msg}");
    assert!(msg.contains("for i in $(seq 1 20)"), "{msg}");
    assert!(msg.contains("exit status 7"), "{msg}");
    assert!(msg.contains("boom"), "{msg}");
    assert!(msg.contains("line20"), "{msg}");
    assert!(!msg.contains("line5\n"), "only the last lines: {msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_connection_is_reused_by_clones_and_set_up_again_when_closed() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let first = conn.run_checked("echo $SSH_CONNECTION").await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = conn.clone();
        tasks.push(tokio::spawn(async move {
            c.run_checked("echo $SSH_CONNECTION").await.unwrap().stdout
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            first.stdout,
            "every run uses one TCP connection"
        );
    }
    conn.close().await;
    let again = conn.run_checked("echo $SSH_CONNECTION").await.unwrap();
    assert_ne!(again.stdout, first.stdout, "a new connection after close");
}

// ---------------------------------------------------------------------------------------------
// Files

#[tokio::test(flavor = "multi_thread")]
async fn upload_writes_atomically_checks_mode_and_skips_same_content() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let remote = tempfile::tempdir().unwrap();
    let target = remote.path().join("etc/new/dir/app.conf");
    let target_s = target.to_str().unwrap();

    assert_eq!(
        conn.upload(Source::Bytes(b"hello\n"), target_s, 0o640)
            .await
            .unwrap(),
        Uploaded::Written
    );
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"hello\n");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    let parent = std::fs::metadata(target.parent().unwrap()).unwrap();
    assert_eq!(parent.mode() & 0o777, 0o755);

    // The same content again: nothing is written (same inode, same mtime).
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        conn.upload(Source::Bytes(b"hello\n"), target_s, 0o640)
            .await
            .unwrap(),
        Uploaded::Unchanged
    );
    let again = std::fs::metadata(&target).unwrap();
    assert_eq!(again.ino(), meta.ino());
    assert_eq!(again.mtime_nsec(), meta.mtime_nsec());
    assert_eq!(again.mtime(), meta.mtime());

    // A changed mode is fixed without rewriting.
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(
        conn.upload(Source::Bytes(b"hello\n"), target_s, 0o640)
            .await
            .unwrap(),
        Uploaded::PermissionsFixed
    );
    let fixed = std::fs::metadata(&target).unwrap();
    assert_eq!(fixed.mode() & 0o7777, 0o640);
    assert_eq!(fixed.ino(), meta.ino());

    // New content replaces the file (a rename: a new inode), no temporary file is left.
    assert_eq!(
        conn.upload(Source::Bytes(b"second\n"), target_s, 0o600)
            .await
            .unwrap(),
        Uploaded::Written
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"second\n");
    let replaced = std::fs::metadata(&target).unwrap();
    assert_ne!(replaced.ino(), meta.ino());
    assert_eq!(replaced.mode() & 0o7777, 0o600);
    let names: Vec<String> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["app.conf".to_string()]);

    // Errors name the host and the path.
    let err = conn
        .upload(Source::Bytes(b"x"), "relative/path", 0o644)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Upload { .. }), "{err:?}");
    let file_as_dir = format!("{target_s}/below");
    let err = conn
        .upload(Source::Bytes(b"x"), &file_as_dir, 0o644)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("node1") && msg.contains(&file_as_dir), "{msg}");
}

/// A command that hangs is abandoned at the deadline; one that prints without end is stopped
/// at the output cap: a host cannot hang a run or exhaust its memory.
#[tokio::test(flavor = "multi_thread")]
async fn commands_are_bounded_in_time_and_output() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let opts = ConnectOptions {
        command_timeout: Duration::from_secs(2),
        ..options()
    };
    let conn = Connection::connect_with(&sshd.host(client.path()), &settings(), opts)
        .await
        .unwrap();
    let t = Instant::now();
    let err = conn.run("sleep 30").await.unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(err.contains("did not finish within 2 s"), "{err}");
    let err = conn
        .run("head -c 80000000 /dev/zero")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("more than 64 MiB"), "{err}");
    // The connection is still usable.
    assert_eq!(
        conn.run_checked("echo ok").await.unwrap().stdout_text(),
        "ok\n"
    );
}

/// A bundle file swapped on the operator's machine after its manifest was checked: the host
/// checks what it receives against the manifest's sha256 and nothing is installed.
#[tokio::test(flavor = "multi_thread")]
async fn an_upload_with_an_expected_hash_refuses_other_content() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let local = client.path().join("etcd");
    std::fs::write(&local, b"signed content\n").unwrap();
    let signed = sha256_hex(b"signed content\n");
    let remote = tempfile::tempdir().unwrap();
    let target = remote.path().join("bin/etcd");
    let target_s = target.to_str().unwrap();
    assert_eq!(
        conn.upload_with_progress(
            Source::File(&local),
            target_s,
            0o755,
            Some(&signed),
            &|_| {}
        )
        .await
        .unwrap(),
        Uploaded::Written
    );
    std::fs::remove_file(&target).unwrap();

    std::fs::write(&local, b"swapped after the check\n").unwrap();
    let err = conn
        .upload_with_progress(
            Source::File(&local),
            target_s,
            0o755,
            Some(&signed),
            &|_| {},
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains(&signed),
        "{err}"
    );
    assert!(!target.exists(), "the swapped file was installed");
    let left: Vec<_> = std::fs::read_dir(target.parent().unwrap())
        .unwrap()
        .collect();
    assert!(left.is_empty(), "a temporary file was left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_streams_a_large_file_and_skips_it_when_the_host_has_it() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let local = client.path().join("big.bin");
    // 24 MiB of varied content.
    let mut data = Vec::with_capacity(24 << 20);
    let mut x: u32 = 12345;
    while data.len() < 24 << 20 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&local, &data).unwrap();
    let remote = tempfile::tempdir().unwrap();
    let target = remote.path().join("bin/tool");
    let target_s = target.to_str().unwrap().to_string();

    let started = Instant::now();
    assert_eq!(
        conn.upload(Source::File(&local), &target_s, 0o755)
            .await
            .unwrap(),
        Uploaded::Written
    );
    eprintln!("24 MiB upload: {:?}", started.elapsed());
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(meta.len(), data.len() as u64);
    assert_eq!(meta.mode() & 0o7777, 0o755);
    assert_eq!(
        sha256_hex(&std::fs::read(&target).unwrap()),
        sha256_hex(&data)
    );

    // Re-upload with the hash from a batch query: no round trip, no rewrite.
    let hashes = conn
        .sha256_many(std::slice::from_ref(&target_s))
        .await
        .unwrap();
    assert_eq!(hashes, vec![Some(sha256_hex(&data))]);
    assert_eq!(
        conn.upload_known(Source::File(&local), &target_s, 0o755, hashes[0].as_deref())
            .await
            .unwrap(),
        Uploaded::Unchanged
    );
    assert_eq!(
        conn.upload(Source::File(&local), &target_s, 0o755)
            .await
            .unwrap(),
        Uploaded::Unchanged
    );
    let again = std::fs::metadata(&target).unwrap();
    assert_eq!(
        (again.ino(), again.mtime_nsec()),
        (meta.ino(), meta.mtime_nsec())
    );

    // A stale hash from the caller means a write.
    assert_eq!(
        conn.upload_known(
            Source::File(&local),
            &target_s,
            0o755,
            Some(&"0".repeat(64))
        )
        .await
        .unwrap(),
        Uploaded::Written
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sha256_many_reports_missing_files_in_one_call() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let remote = tempfile::tempdir().unwrap();
    let a = remote.path().join("a");
    let b = remote.path().join("with space 'quoted'");
    std::fs::write(&a, b"alpha").unwrap();
    std::fs::write(&b, b"").unwrap();
    let paths = vec![
        a.to_str().unwrap().to_string(),
        remote.path().join("missing").to_str().unwrap().to_string(),
        b.to_str().unwrap().to_string(),
    ];
    let got = conn.sha256_many(&paths).await.unwrap();
    assert_eq!(
        got,
        vec![Some(sha256_hex(b"alpha")), None, Some(sha256_hex(b""))]
    );
    assert_eq!(
        conn.sha256_many::<&str>(&[]).await.unwrap(),
        Vec::<Option<String>>::new()
    );
    assert_eq!(
        conn.sha256_of(a.to_str().unwrap()).await.unwrap(),
        Some(sha256_hex(b"alpha"))
    );
    // A directory is an error, not "missing".
    let err = conn
        .sha256_many(&[remote.path().to_str().unwrap().to_string()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("node1"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn download_streams_a_large_file_verified_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();
    let remote = tempfile::tempdir().unwrap();
    // Larger than the most a command may print: a download is streamed, not collected.
    let big = remote.path().join("snapshot.db");
    let data: Vec<u8> = (0..70u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    let to = client.path().join("copy.db");
    std::fs::write(&to, b"old").unwrap();
    let got = conn.download(big.to_str().unwrap(), &to).await.unwrap();
    assert_eq!(got.size, data.len() as u64);
    assert_eq!(got.sha256, sha256_hex(&data));
    assert!(std::fs::read(&to).unwrap() == data);
    assert_eq!(
        std::fs::metadata(&to).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A missing file is an error naming it, and the local file is left as it was.
    let err = conn
        .download(remote.path().join("gone").to_str().unwrap(), &to)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(std::fs::read(&to).unwrap() == data);
    let leftovers: Vec<_> = std::fs::read_dir(client.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".download-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left behind");
}

// ---------------------------------------------------------------------------------------------
// Port forwarding

#[tokio::test(flavor = "multi_thread")]
async fn forward_reaches_a_loopback_service_and_stops_when_dropped() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let conn = connect(&sshd.host(client.path())).await.unwrap();

    // A tiny echo service on the "host" loopback.
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let service_port = service.local_addr().unwrap().port();
    let echo = tokio::spawn(async move {
        loop {
            let (mut s, _) = service.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });

    let fwd = conn.forward("127.0.0.1", service_port).await.unwrap();
    // Only the operator can reach it: a socket in a 0700 directory, no TCP port.
    let dir_mode = std::fs::metadata(fwd.socket().parent().unwrap())
        .unwrap()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let mut clients = Vec::new();
    for i in 0..3 {
        let path = fwd.socket().to_path_buf();
        clients.push(tokio::spawn(async move {
            let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
            let msg = format!("ping {i} ").repeat(10_000);
            let (mut r, mut w) = s.split();
            let write = async {
                w.write_all(msg.as_bytes()).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut back = Vec::new();
            let read = r.read_to_end(&mut back);
            let (_, n) = tokio::join!(write, read);
            n.unwrap();
            assert_eq!(back, msg.as_bytes());
        }));
    }
    for c in clients {
        c.await.unwrap();
    }

    // Nothing listens there: the local connection is closed and the reason kept.
    let closed = free_port();
    let dead = conn.forward("127.0.0.1", closed).await.unwrap();
    let mut s = tokio::net::UnixStream::connect(dead.socket())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    assert!(buf.is_empty());
    let reason = dead.last_error().expect("the refusal is recorded");
    assert!(reason.contains(&format!("127.0.0.1:{closed}")), "{reason}");

    let path = fwd.socket().to_path_buf();
    drop(fwd);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::UnixStream::connect(&path).await.is_err() && !path.exists(),
        "the listener and its socket are gone after drop"
    );
    echo.abort();
}

// ---------------------------------------------------------------------------------------------
// Host keys

#[tokio::test(flavor = "multi_thread")]
async fn strict_refuses_an_unknown_host_key_and_shows_its_fingerprint() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let mut host = sshd.host(client.path());
    host.ssh.known_hosts = client.path().join("empty_known_hosts");
    // With a 2 s backoff, a retry would show in the time taken.
    let opts = ConnectOptions {
        backoff: Duration::from_secs(2),
        ..options()
    };
    let started = Instant::now();
    let err = Connection::connect_with(&host, &settings(), opts)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "a refused key is not retried"
    );
    assert!(matches!(err, Error::HostKey { .. }), "{err:?}");
    let msg = err.to_string();
    let fp = sshd.fingerprint();
    assert!(fp.starts_with("SHA256:"));
    assert!(msg.contains(&fp), "message shows `{fp}`: {msg}");
    assert!(msg.contains("node1"), "{msg}");
    assert!(msg.contains("ssh-ed25519"), "{msg}");
    assert!(
        msg.contains(&format!(
            "ssh-keyscan -p {} -t ed25519 127.0.0.1 >> {}",
            sshd.port,
            host.ssh.known_hosts.display()
        )),
        "{msg}"
    );
    assert!(msg.contains(&format!("host_key = \"{fp}\"")), "{msg}");
    assert!(msg.contains("accept-new"), "{msg}");
    assert!(!host.ssh.known_hosts.exists(), "strict writes nothing");
    // The key's base64 never appears.
    let key_b64 = pub_line(&sshd.host_key)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(!msg.contains(&key_b64[20..60]));
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_new_records_the_key_then_strict_accepts_it() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let mut host = sshd.host(client.path());
    host.ssh.known_hosts = client.path().join("new/dir/known_hosts");
    host.ssh.host_key_policy = HostKeyPolicy::AcceptNew;
    let conn = connect(&host).await.unwrap();
    conn.run_checked("true").await.unwrap();
    let written = std::fs::read_to_string(&host.ssh.known_hosts).unwrap();
    assert_eq!(written.trim(), sshd.known_line());
    let mode = std::fs::metadata(&host.ssh.known_hosts).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // ssh-keygen finds the recorded entry under the [host]:port name.
    sh(&format!(
        "ssh-keygen -F '[127.0.0.1]:{}' -f {} | grep -q ssh-ed25519",
        sshd.port,
        host.ssh.known_hosts.display()
    ));

    host.ssh.host_key_policy = HostKeyPolicy::Strict;
    connect(&host)
        .await
        .unwrap()
        .run_checked("true")
        .await
        .unwrap();
    // Nothing appended the second time.
    assert_eq!(
        std::fs::read_to_string(&host.ssh.known_hosts).unwrap(),
        written
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_key_is_refused_even_with_accept_new() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let other = keygen(client.path(), "other_host_key", "ed25519", "");
    let other_b64 = pub_line(&other)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let known = client.path().join("known_hosts");
    let content = format!("[127.0.0.1]:{} ssh-ed25519 {other_b64}\n", sshd.port);
    std::fs::write(&known, &content).unwrap();
    let mut host = sshd.host(client.path());
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        host.ssh.host_key_policy = policy;
        let err = connect(&host).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::HostKey { .. }), "{err:?}");
        assert!(msg.contains("CHANGED"), "{msg}");
        assert!(msg.contains(&sshd.fingerprint()), "{msg}");
        assert!(
            msg.contains(&format!("{}:1", known.display())),
            "names the line: {msg}"
        );
        assert!(
            msg.contains(&format!("ssh-keygen -R '[127.0.0.1]:{}'", sshd.port)),
            "{msg}"
        );
        assert_eq!(std::fs::read_to_string(&known).unwrap(), content);
    }

    // A key of another type only: refused too (the host was asked for the known type first).
    let ecdsa = keygen(client.path(), "ecdsa_host_key", "ecdsa", "");
    let ecdsa_line = pub_line(&ecdsa);
    let mut f = ecdsa_line.split_whitespace();
    std::fs::write(
        &known,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            f.next().unwrap(),
            f.next().unwrap()
        ),
    )
    .unwrap();
    host.ssh.host_key_policy = HostKeyPolicy::AcceptNew;
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("only keys of other types"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn known_hosts_entries_hashed_bracketed_and_revoked() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let known = client.path().join("known_hosts");

    // As ssh-keyscan writes it: [127.0.0.1]:PORT.
    let scanned = sh(&format!(
        "ssh-keyscan -p {} 127.0.0.1 2>/dev/null",
        sshd.port
    ));
    assert!(scanned.contains(&format!("[127.0.0.1]:{} ", sshd.port)));
    std::fs::write(&known, &scanned).unwrap();
    let host = sshd.host(client.path());
    connect(&host)
        .await
        .unwrap()
        .run_checked("true")
        .await
        .unwrap();

    // Hashed by ssh-keygen -H.
    sh(&format!("ssh-keygen -q -H -f {}", known.display()));
    let hashed = std::fs::read_to_string(&known).unwrap();
    assert!(hashed.lines().all(|l| l.starts_with("|1|")), "{hashed}");
    connect(&host)
        .await
        .unwrap()
        .run_checked("true")
        .await
        .unwrap();

    // A plain entry without the port does not name this server.
    let key = pub_line(&sshd.host_key);
    let mut f = key.split_whitespace();
    let (kt, b64) = (f.next().unwrap(), f.next().unwrap());
    std::fs::write(&known, format!("127.0.0.1 {kt} {b64}\n")).unwrap();
    let err = connect(&host).await.unwrap_err();
    assert!(err.to_string().contains("unknown host key"), "{err}");

    // Patterns: a wildcard entry matches, a negation excludes.
    std::fs::write(&known, format!("[127.0.0.*]:{} {kt} {b64}\n", sshd.port)).unwrap();
    connect(&host).await.unwrap();
    std::fs::write(
        &known,
        format!(
            "[127.0.0.*]:{p},![127.0.0.1]:{p} {kt} {b64}\n",
            p = sshd.port
        ),
    )
    .unwrap();
    assert!(connect(&host).await.is_err());

    // @revoked wins over a matching line.
    std::fs::write(
        &known,
        format!("{}\n@revoked * {kt} {b64}\n", sshd.known_line()),
    )
    .unwrap();
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("@revoked"), "{msg}");

    // The system-wide file is read too.
    let global = client.path().join("ssh_known_hosts");
    std::fs::write(&global, format!("{}\n", sshd.known_line())).unwrap();
    std::fs::write(&known, "").unwrap();
    let opts = ConnectOptions {
        global_known_hosts: Some(global),
        ..options()
    };
    Connection::connect_with(&host, &settings(), opts)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pinned_fingerprint_is_accepted_and_a_wrong_one_refused() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let mut host = sshd.host(client.path());
    host.ssh.known_hosts = client.path().join("none");
    host.ssh.host_key = Some(sshd.fingerprint());
    connect(&host)
        .await
        .unwrap()
        .run_checked("true")
        .await
        .unwrap();
    assert!(!host.ssh.known_hosts.exists());

    let wrong = format!("SHA256:{}", "A".repeat(43));
    host.ssh.host_key = Some(wrong.clone());
    host.ssh.host_key_policy = HostKeyPolicy::AcceptNew;
    let err = connect(&host).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::HostKey { .. }), "{err:?}");
    assert!(
        msg.contains(&wrong) && msg.contains(&sshd.fingerprint()),
        "{msg}"
    );
    assert!(!host.ssh.known_hosts.exists(), "a pin is never recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_certificates_signed_by_a_listed_ca() {
    require_root();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = keygen(ca_dir.path(), "host_ca", "ed25519", "");
    let ca_pub = pub_line(&ca);
    let sshd = Sshd::start_with(SshdConfig {
        certificate: Some((ca.clone(), "127.0.0.1,node1.example".into())),
        ..SshdConfig::default()
    });
    let client = tempfile::tempdir().unwrap();
    let known = client.path().join("known_hosts");
    let host = sshd.host(client.path());

    // Only the CA is known: the certificate is accepted.
    std::fs::write(&known, format!("@cert-authority [127.0.0.1]:* {ca_pub}\n")).unwrap();
    connect(&host)
        .await
        .unwrap()
        .run_checked("true")
        .await
        .unwrap();
    assert!(
        sshd.log().contains("cert-v01@openssh.com"),
        "the host presented its certificate"
    );

    // The CA line must match the host.
    std::fs::write(&known, format!("@cert-authority *.example.org {ca_pub}\n")).unwrap();
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("unknown host key"), "{msg}");

    // A revoked CA is refused.
    std::fs::write(
        &known,
        format!("@cert-authority * {ca_pub}\n@revoked * {ca_pub}\n"),
    )
    .unwrap();
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("revoked"), "{msg}");

    // Another CA: the certificate is not accepted, nor recorded by accept-new.
    let other = keygen(ca_dir.path(), "other_ca", "ed25519", "");
    let other_ca_only = format!("@cert-authority * {}\n", pub_line(&other));
    std::fs::write(&known, &other_ca_only).unwrap();
    let mut accept_new = host.clone();
    accept_new.ssh.host_key_policy = HostKeyPolicy::AcceptNew;
    let msg = connect(&accept_new).await.unwrap_err().to_string();
    assert!(msg.contains("certificate was not accepted"), "{msg}");
    assert_eq!(std::fs::read_to_string(&known).unwrap(), other_ca_only);
    drop(sshd);

    // A certificate for other principals is not accepted.
    let sshd = Sshd::start_with(SshdConfig {
        certificate: Some((ca, "node9.example".into())),
        ..SshdConfig::default()
    });
    let host = sshd.host(client.path());
    std::fs::write(&known, format!("@cert-authority * {ca_pub}\n")).unwrap();
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("principals"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[tokio::test(flavor = "multi_thread")]
async fn identity_files_of_each_key_type() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let mut host = sshd.host(client.path());
    for kt in ["ed25519", "ecdsa", "rsa"] {
        let key = keygen(client.path(), &format!("id_{kt}"), kt, "");
        sshd.authorize(&key);
        host.ssh.identity_file = key;
        let out = connect(&host)
            .await
            .unwrap_or_else(|e| panic!("{kt}: {e}"))
            .run_checked("id -un")
            .await
            .unwrap();
        assert_eq!(text(&out.stdout), "root\n");
    }
    assert!(
        sshd.log().contains("RSA SHA256:"),
        "the RSA key was used: {}",
        sshd.log()
    );

    // A key the host does not accept: an authentication error, not retried.
    let stranger = keygen(client.path(), "id_stranger", "ed25519", "");
    host.ssh.identity_file = stranger.clone();
    let err = connect(&host).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert!(
        msg.contains("node1") && msg.contains("authentication as root failed"),
        "{msg}"
    );
    assert!(msg.contains(&stranger.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!(
            "ssh-copy-id -i {}.pub -p {}",
            stranger.display(),
            sshd.port
        )),
        "{msg}"
    );

    // No identity file and no agent.
    host.ssh.identity_file = client.path().join("missing_key");
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("does not exist"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_identity_file_uses_the_passphrase_from_the_environment() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let key = keygen(client.path(), "id_encrypted", "ed25519", "s3cret phrase");
    sshd.authorize(&key);
    let mut host = sshd.host(client.path());
    host.ssh.identity_file = key.clone();

    // This test alone sets the variable; the other tests' keys are not encrypted.
    std::env::set_var(provisioner::transport::PASSPHRASE_ENV, "wrong");
    let msg = connect(&host).await.unwrap_err().to_string();
    assert!(msg.contains("passphrase"), "{msg}");
    assert!(!msg.contains("wrong"), "the passphrase is not shown: {msg}");

    std::env::set_var(provisioner::transport::PASSPHRASE_ENV, "s3cret phrase");
    let out = connect(&host).await.unwrap().run_checked("echo ok").await;
    std::env::remove_var(provisioner::transport::PASSPHRASE_ENV);
    assert_eq!(text(&out.unwrap().stdout), "ok\n");
}

struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ssh_agent_keys_are_used_after_the_identity_file() {
    let sshd = Sshd::start();
    let client = tempfile::tempdir().unwrap();
    let sock = client.path().join("agent.sock");
    let _agent = AgentProcess(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "ssh-agent did not create its socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // An unauthorized key first, then an authorized RSA key (signed with rsa-sha2).
    let stranger = keygen(client.path(), "agent_stranger", "ed25519", "");
    let rsa = keygen(client.path(), "agent_rsa", "rsa", "");
    sshd.authorize(&rsa);
    for k in [&stranger, &rsa] {
        sh(&format!(
            "SSH_AUTH_SOCK={} ssh-add -q {} 2>&1",
            sock.display(),
            k.display()
        ));
    }
    std::fs::remove_file(&rsa).unwrap();

    let mut host = sshd.host(client.path());
    host.ssh.identity_file = client.path().join("no_such_key");
    let opts = ConnectOptions {
        agent: Agent::Socket(sock.clone()),
        ..options()
    };
    let out = Connection::connect_with(&host, &settings(), opts)
        .await
        .unwrap()
        .run_checked("echo via-agent")
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "via-agent\n");

    // The identity file (unauthorized here) is tried first, then SSH_AUTH_SOCK's keys. Only
    // this test sets SSH_AUTH_SOCK; the others use Agent::None.
    host.ssh.identity_file = stranger.clone();
    std::env::set_var("SSH_AUTH_SOCK", &sock);
    let opts = ConnectOptions {
        agent: Agent::FromEnv,
        ..options()
    };
    let conn = Connection::connect_with(&host, &settings(), opts).await;
    std::env::remove_var("SSH_AUTH_SOCK");
    conn.unwrap().run_checked("true").await.unwrap();

    // An agent without the authorized key: the error says what was tried.
    sh(&format!(
        "SSH_AUTH_SOCK={} ssh-add -q -D 2>&1",
        sock.display()
    ));
    let opts = ConnectOptions {
        agent: Agent::Socket(sock.clone()),
        ..options()
    };
    let msg = Connection::connect_with(&host, &settings(), opts)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("was refused") && msg.contains("holds no usable key"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Bastion

#[tokio::test(flavor = "multi_thread")]
async fn a_bastion_carries_the_session_to_the_target() {
    let target = Sshd::start();
    let bastion = Sshd::start();
    // The bastion accepts the same client key.
    bastion.authorize(&target.client_key);
    let client = tempfile::tempdir().unwrap();
    let host = target.host(client.path());
    let known = client.path().join("known_hosts");

    // The bastion's key is unknown: refused, naming the bastion.
    let s = SshSettings {
        parallelism: 1,
        bastion: Bastion::parse(&format!("root@127.0.0.1:{}", bastion.port)),
        command_timeout: Duration::from_secs(600),
    };
    let err = Connection::connect_with(&host, &s, options())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::HostKey { .. }), "{err:?}");
    assert!(
        msg.contains("bastion") && msg.contains(&bastion.fingerprint()),
        "{msg}"
    );

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&known)
        .unwrap();
    writeln!(f, "{}", bastion.known_line()).unwrap();
    drop(f);
    let conn = Connection::connect_with(&host, &s, options())
        .await
        .unwrap();
    let out = conn.run_checked("echo through").await.unwrap();
    assert_eq!(text(&out.stdout), "through\n");
    let log = bastion.log();
    assert!(
        log.contains(&format!("target 127.0.0.1 port {}", target.port)),
        "the bastion opened the connection to the target:\n{log}"
    );
    let target_log = target.log();
    assert!(
        target_log.contains("Accepted publickey for root"),
        "{target_log}"
    );

    // A bastion that forbids forwarding: a connection error naming the target and the bastion.
    let closed = Sshd::start_with(SshdConfig {
        extra: vec!["AllowTcpForwarding no".into()],
        ..SshdConfig::default()
    });
    closed.authorize(&target.client_key);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&known)
        .unwrap();
    writeln!(f, "{}", closed.known_line()).unwrap();
    drop(f);
    let s = SshSettings {
        parallelism: 1,
        bastion: Bastion::parse(&format!("127.0.0.1:{}", closed.port)),
        command_timeout: Duration::from_secs(600),
    };
    let err = Connection::connect_with(&host, &s, options())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Connect { attempts: 3, .. }), "{err:?}");
    assert!(
        msg.contains("node1") && msg.contains(&format!("via root@127.0.0.1:{}", closed.port)),
        "{msg}"
    );
    assert!(msg.contains("bastion could not open"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Connection failures

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_host_fails_after_the_retries() {
    require_root();
    let client = tempfile::tempdir().unwrap();
    let port = free_port();
    let host = Host {
        name: "node7".into(),
        address: "127.0.0.1".into(),
        internal_ip: Ipv4Addr::LOCALHOST,
        internal_ipv6: None,
        roles: Roles::default(),
        pod_cidr: None,
        pod_cidr_explicit: false,
        etcd_joins: false,
        ssh: SshTarget {
            user: "root".into(),
            port,
            identity_file: client.path().join("id"),
            known_hosts: client.path().join("known_hosts"),
            host_key_policy: HostKeyPolicy::Strict,
            sudo: false,
            host_key: None,
        },
    };
    let started = Instant::now();
    let err = connect(&host).await.unwrap_err();
    let elapsed = started.elapsed();
    let msg = err.to_string();
    assert!(matches!(err, Error::Connect { attempts: 3, .. }), "{err:?}");
    assert!(
        msg.contains("node7") && msg.contains(&format!("127.0.0.1:{port}")),
        "{msg}"
    );
    assert!(msg.contains("Connection refused"), "{msg}");
    assert!(msg.contains("hint:"), "{msg}");
    // Backoff 200 ms then 400 ms.
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");

    // A server that accepts TCP but never speaks SSH: the connect timeout applies per attempt.
    let silent = StdListener::bind("127.0.0.1:0").unwrap();
    let mut host = host;
    host.ssh.port = silent.local_addr().unwrap().port();
    let opts = ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        attempts: 2,
        backoff: Duration::from_millis(50),
        ..options()
    };
    let started = Instant::now();
    let err = Connection::connect_with(&host, &settings(), opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connect { attempts: 2, .. }), "{err:?}");
    assert!(err.to_string().contains("no SSH session within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
}

// ---------------------------------------------------------------------------------------------
// sudo

const SUDO_USER: &str = "provisioner-sshtest";

struct TestUser;

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/etc/sudoers.d/{SUDO_USER}"));
        // -f: its sshd session may not have ended yet.
        let _ = Command::new("userdel")
            .args(["-r", "-f", SUDO_USER])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_runs_commands_and_writes_files_as_root() {
    if std::env::var_os("CI").is_none() && std::env::var_os("PROVISIONER_TEST_SUDO").is_none() {
        eprintln!(
            "skipped: creates system user {SUDO_USER}; runs when CI or PROVISIONER_TEST_SUDO is set"
        );
        return;
    }
    require_root();
    assert!(
        Path::new("/usr/bin/sudo").exists(),
        "sudo is missing: apt-get install -y sudo"
    );
    let sshd = Sshd::start();
    let _ = Command::new("userdel")
        .args(["-r", "-f", SUDO_USER])
        .output();
    let _user = TestUser;
    sh(&format!("useradd -m -s /bin/sh {SUDO_USER}"));
    // sshd refuses a locked account (no password, `!` in shadow) without PAM.
    sh(&format!("usermod -p '*' {SUDO_USER}"));
    let rule = format!("/etc/sudoers.d/{SUDO_USER}");
    std::fs::write(&rule, format!("{SUDO_USER} ALL=(ALL) NOPASSWD: ALL\n")).unwrap();
    std::fs::set_permissions(&rule, std::fs::Permissions::from_mode(0o440)).unwrap();
    let client = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        sshd.client_key.clone(),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let mut host = sshd.host(client.path());
    host.ssh.user = SUDO_USER.into();
    host.ssh.sudo = true;
    let conn = connect(&host).await.unwrap();
    let out = conn.run_checked("id -u; echo $SUDO_USER").await.unwrap();
    assert_eq!(text(&out.stdout), format!("0\n{SUDO_USER}\n"));

    let remote = tempfile::tempdir().unwrap();
    let target = remote.path().join("root-only/secret.key");
    let target_s = target.to_str().unwrap();
    assert_eq!(
        conn.upload(Source::Bytes(b"key material"), target_s, 0o600)
            .await
            .unwrap(),
        Uploaded::Written
    );
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o777), (0, 0, 0o600));
    assert_eq!(
        conn.sha256_many(&[target_s.to_string()]).await.unwrap(),
        vec![Some(sha256_hex(b"key material"))]
    );
    assert_eq!(
        conn.upload(Source::Bytes(b"key material"), target_s, 0o600)
            .await
            .unwrap(),
        Uploaded::Unchanged
    );

    // Without the NOPASSWD rule: the error says what to fix.
    std::fs::remove_file(&rule).unwrap();
    let err = conn.run_checked("true").await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("passwordless sudo"), "{msg}");
    conn.close().await;
}
