//! Shared helpers of the stand-in integration tests: prerequisites, a rendered all-in-one host
//! at 127.0.0.1, unit command lines, processes with logs, small HTTP(S) clients.
#![allow(dead_code)] // each test file uses a different part

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The node name in the test inventory.
pub const NODE: &str = "solo";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test bundle (etcd, containerd, CNI plugins). Missing: fail, saying how to make it.
pub fn bundle() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("STANDIN_TEST_BUNDLE").unwrap_or_else(|_| "/tmp/test-bundle".into()),
    );
    for f in [
        "bin/etcd",
        "bin/containerd",
        "bin/containerd-shim-runc-v2",
        "cni/bridge",
        "cni/host-local",
    ] {
        assert!(
            dir.join(f).is_file(),
            "prerequisite missing: {} (build the test bundle once with \
             `SKIP_STANDINS=1 bash tests/testbed/make-test-bundle.sh /tmp/test-bundle` in the workspace, \
             or point STANDIN_TEST_BUNDLE at one)",
            dir.join(f).display()
        );
    }
    dir
}

/// kubectl on PATH. Missing: fail, saying how to get it.
pub fn kubectl_available() {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "prerequisite missing: kubectl on PATH (install the Debian/Kubernetes kubectl package; any 1.2x+ client works)"
    );
}

/// The workspace's `provisioner` binary, built once into this test's target directory
/// (or taken from PROVISIONER_BIN).
pub fn provisioner() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("PROVISIONER_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let target = profile_dir.parent().unwrap();
        // Without the CARGO_* variables cargo set for this test: inherited, they change the
        // build scripts' environment and make the next outer build recompile ring & co.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "provisioner", "--bin", "provisioner"])
            .current_dir(workspace())
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| !k.starts_with("CARGO_") || k == "CARGO_HOME"))
            .env("CARGO_TARGET_DIR", target)
            .status()
            .expect("running cargo to build the provisioner binary");
        assert!(status.success(), "building the provisioner binary failed");
        target.join("debug").join("provisioner")
    })
    .clone()
}

/// A rendered single-host cluster (all roles on 127.0.0.1) in a temporary directory.
pub struct Rendered {
    pub tmp: tempfile::TempDir,
}

impl Rendered {
    pub fn new() -> Rendered {
        Rendered::with("")
    }

    /// Rendered from the test inventory plus `extra` TOML (e.g. a `[kubelet]` table).
    pub fn with(extra: &str) -> Rendered {
        let tmp = tempfile::Builder::new()
            .prefix("standins-")
            .tempdir()
            .unwrap();
        let inv = tmp.path().join("inventory.toml");
        std::fs::write(
            &inv,
            format!(
                "[cluster]\nname = \"t\"\nkubernetes_version = \"1.35.0\"\n\n\
                 [[hosts]]\nname = \"{NODE}\"\naddress = \"127.0.0.1\"\nroles = [\"etcd\", \"control-plane\", \"worker\"]\n\n{extra}"
            ),
        )
        .unwrap();
        let out = Command::new(provisioner())
            .arg("render")
            .arg(&inv)
            .arg("--out")
            .arg(tmp.path().join("render"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "provisioner render failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Rendered { tmp }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }

    /// The host's tree: STANDIN_ROOT for the stand-ins.
    pub fn root(&self) -> PathBuf {
        self.tmp.path().join("render").join(NODE)
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.tmp.path().join("render/admin.kubeconfig")
    }

    /// PKI kept in the state directory beside the inventory (super-admin lives only there).
    pub fn state_pki(&self, file: &str) -> PathBuf {
        self.tmp.path().join(".provisioner/pki").join(file)
    }

    /// A file of the host tree by its absolute path on the host.
    pub fn host(&self, abs: &str) -> PathBuf {
        self.root().join(abs.trim_start_matches('/'))
    }

    pub fn unit(&self, name: &str) -> String {
        std::fs::read_to_string(self.host(&format!("/etc/systemd/system/{name}.service"))).unwrap()
    }

    /// The flags of a unit's ExecStart, as systemd would pass them.
    pub fn unit_args(&self, name: &str) -> Vec<String> {
        exec_args(&self.unit(name))
    }

    /// A kubeconfig like admin.kubeconfig but with the super-admin (system:masters) credential.
    pub fn super_admin_kubeconfig(&self) -> PathBuf {
        use base64::Engine;
        let b64 = |p: PathBuf| {
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap())
        };
        let admin = std::fs::read_to_string(self.admin_kubeconfig()).unwrap();
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
        let user = &mut doc["users"][0]["user"];
        user["client-certificate-data"] = b64(self.state_pki("super-admin.crt")).into();
        user["client-key-data"] = b64(self.state_pki("super-admin.key")).into();
        let path = self.tmp.path().join("super-admin.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

/// Flags of the ExecStart= line of a unit file (continuation lines joined).
pub fn exec_args(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let exec = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("unit has ExecStart");
    exec.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// A started process: killed when dropped, its output in a log file.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn start(name: &str, mut cmd: Command, log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdout(f.try_clone().unwrap()).stderr(f);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().unwrap() {
            panic!("{} exited early ({st}):\n{}", self.name, self.output());
        }
    }

    /// SIGTERM, then the exit status (SIGKILL after 10 s).
    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.output()
            );
        }
    }
}

/// A stand-in binary of this package.
pub fn standin(name: &str) -> PathBuf {
    let p = match name {
        "kube-apiserver" => env!("CARGO_BIN_EXE_kube-apiserver"),
        "kube-controller-manager" => env!("CARGO_BIN_EXE_kube-controller-manager"),
        "kube-scheduler" => env!("CARGO_BIN_EXE_kube-scheduler"),
        "kubelet" => env!("CARGO_BIN_EXE_kubelet"),
        "kube-proxy" => env!("CARGO_BIN_EXE_kube-proxy"),
        other => panic!("no stand-in {other}"),
    };
    PathBuf::from(p)
}

/// Runs a stand-in to completion (it must stop by itself: a validation failure) within 20 s.
pub fn run_to_exit(name: &str, root: &Path, args: &[String]) -> (i32, String) {
    let mut child = Command::new(standin(name))
        .args(args)
        .env("STANDIN_ROOT", root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{name} {args:?} did not exit: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Polls `f` until it returns Some, or fails after `secs` with the last error.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {secs}s waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Fails unless every port is free on 127.0.0.1 (another test run or a real service).
pub fn ports_free(ports: &[u16]) {
    for p in ports {
        assert!(
            TcpStream::connect_timeout(&([127, 0, 0, 1], *p).into(), Duration::from_millis(200))
                .is_err(),
            "port {p} on 127.0.0.1 is in use; the cluster test needs the real components' ports \
             (is another run of it, or a real cluster, active?)"
        );
    }
}

/// Runs kubectl; Ok(stdout) on success, Err(stderr) else.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Plain HTTP GET on 127.0.0.1: (status, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status line")?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// HTTPS GET to 127.0.0.1:`port`, verifying the server against `ca` (for the name `server`),
/// optionally with a client certificate. Uses rustls through the stand-ins' own client type.
pub fn https_get(
    ca: &Path,
    server: &str,
    port: u16,
    path: &str,
    client: Option<(&Path, &Path)>,
) -> Result<(u16, String), String> {
    use provisioner_standins::{files, net::HttpsClient, tls};
    let ca = files::load_certs("test CA", ca.to_str().unwrap()).map_err(|e| format!("{e:#}"))?;
    let pair = client.map(|(c, k)| {
        files::load_pair("cert", c.to_str().unwrap(), "key", k.to_str().unwrap())
            .expect("client pair")
    });
    let cfg = tls::client_config("test CA", &ca, pair).map_err(|e| format!("{e:#}"))?;
    let client = HttpsClient::new(cfg, "127.0.0.1", port, server).map_err(|e| format!("{e:#}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(client.get(path))
        .map_err(|e| format!("{e:#}"))?;
    Ok((r.status, r.text()))
}

/// Whether this host has a cgroup v2 unified hierarchy (what kubelet 1.35's failCgroupV1 needs).
pub fn host_is_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}
