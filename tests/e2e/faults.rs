//! Faults while apply runs, on 1 control plane and 2 workers: `kill -9` during uploads and
//! during rolling restarts, the SSH session killed during a large upload, a host's link cut. No
//! partial file ever sits at a target path, the next apply converges, and a cut host is named
//! within the documented time while the rest of the cluster serves.

use std::process::Command;

use serde_json::Value;

use crate::cluster::{no_op, unit_hosts, verify_cluster, Cluster, Kubectl};
use crate::common::text;
use crate::machines::{lock_sandbox, state_dir, Machines};
use crate::step::step;

/// Runs a command in a machine's network namespace from the test host (works with its link
/// down, when SSH does not).
fn in_netns(machine: &str, args: &[&str]) {
    let ns = format!("psbx-{machine}");
    let o = Command::new("ip")
        .args(["netns", "exec", &ns])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{ns}: {args:?}: {}", text(&o.stderr));
}

/// Slows the traffic to a machine to 8 Mbit/s (on its link's hub end, where uploads leave for
/// it), so an upload takes seconds and can be interrupted: the 8 MB containerd shim takes about
/// 8 s, and the steps below interrupt it 2 s in.
fn throttle(machine: &str, on: bool) {
    let state: Value = serde_json::from_slice(
        &std::fs::read(state_dir().join("state.json")).expect("the sandbox's state.json"),
    )
    .unwrap();
    let index = state["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == machine)
        .and_then(|m| m["index"].as_u64())
        .unwrap_or_else(|| panic!("no machine {machine} in state.json"));
    let dev = format!("psbx-m{index}");
    let mut args = vec!["netns", "exec", "psbx-hub", "tc", "qdisc"];
    if on {
        args.extend([
            "replace", "dev", &dev, "root", "tbf", "rate", "8mbit", "burst", "64kb", "latency",
            "2s",
        ]);
    } else {
        args.extend(["del", "dev", &dev, "root"]);
    }
    let o = Command::new("ip").args(&args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
}

/// An apply running in the background, its stderr lines arriving on a channel.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(c: &Cluster) -> Running {
        use std::io::BufRead;
        let mut child =
            c.ws.command(&["apply", "--gate-timeout", "30"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while std::time::Instant::now() < deadline {
            match self.lines.recv_timeout(std::time::Duration::from_secs(1)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.seen.push(l);
                    if hit {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(_) => break,
            }
        }
        panic!("no line with {needle:?} in:\n{}", self.seen.join("\n"));
    }

    /// `kill -9`, as an operator's crashed laptop or a killed CI job would stop it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for it to end; returns whether it succeeded, its stderr and how long it took.
    fn finish(mut self) -> (bool, String, std::time::Duration) {
        let t = std::time::Instant::now();
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status.success(), self.seen.join("\n"), t.elapsed())
    }
}

/// The files `plan` would rewrite although they exist: a partial file at a target path shows
/// here (nothing but complete files, written by a rename, may ever be there).
fn rewritten(c: &Cluster) -> Vec<String> {
    let plan = c.plan();
    plan["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| {
            h["files"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["action"] != "create")
                .map(move |f| format!("{}:{} ({})", h["host"], f["path"], f["action"]))
        })
        .collect()
}

pub fn run() {
    let _guard = lock_sandbox();
    let names = ["cp-1", "worker-1", "worker-2"];
    let m = step("start the machines", || Machines::up(&names, false));
    let c = step("write the inventory", || {
        Cluster::new(
            &m,
            &[
                ("cp-1", "\"etcd\", \"control-plane\""),
                ("worker-1", "\"worker\""),
                ("worker-2", "\"worker\""),
            ],
            "",
            "",
        )
    });
    let hosts = unit_hosts(&names);

    step("kill -9 during the first uploads", || {
        // kill -9 in the middle of the first uploads (worker-1's slowed down).
        throttle("worker-1", true);
        let mut run = Running::start(&c);
        run.wait_for("==> files");
        std::thread::sleep(std::time::Duration::from_secs(3));
        run.kill();
        throttle("worker-1", false);
        assert_eq!(
            rewritten(&c),
            Vec::<String>::new(),
            "a partial file sits at a target path"
        );
        c.apply_ok();
        no_op(&c);
        verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1", "worker-2"], 1);
    });

    step("kill -9 during rolling restarts", || {
        // kill -9 during rolling restarts: the next run takes the dead run's lease over and
        // finishes the restarts, also on the hosts whose new configuration was written before
        // the kill (their files match now; the host's record of restarts to do says so).
        c.switch_kube_proxy_to_nftables();
        let mut run = Running::start(&c);
        run.wait_for("restart kube-proxy");
        run.kill();
        let (ok, out, err) = c.apply();
        assert!(ok, "{err}");
        assert!(
            format!("{out}{err}").contains("no longer runs on this machine"),
            "{out}{err}"
        );
        no_op(&c);
        for w in ["worker-1", "worker-2"] {
            let mode = m.ssh(
                w,
                "journalctl -u kube-proxy -o cat | grep -E 'Using [a-z]+ Proxier' | tail -n 1",
            );
            assert!(mode.contains("nftables"), "{w}: kube-proxy says {mode:?}");
        }
    });

    step("the SSH session killed during an upload", || {
        // The SSH session killed during a large upload: the target is absent or whole.
        m.ssh(
            "worker-1",
            "rm -f /usr/local/lib/provisioner/containerd/*/containerd-shim-runc-v2",
        );
        throttle("worker-1", true);
        let mut run = Running::start(&c);
        run.wait_for("==> files");
        std::thread::sleep(std::time::Duration::from_secs(2));
        // Also ends the session running this command; its own failure is expected.
        let _ = m
            .ssh_command("worker-1")
            .arg("pkill -KILL -f '^sshd: root@notty'")
            .output();
        let (ok, err, _) = run.finish();
        throttle("worker-1", false);
        assert!(
            !ok && err.contains("worker-1"),
            "the upload must fail naming the host:\n{err}"
        );
        assert_eq!(
            rewritten(&c),
            Vec::<String>::new(),
            "a partial file sits at a target path"
        );
        c.apply_ok();
        no_op(&c);
    });

    step("a host's link cut during a run", || {
        // worker-2's link cut mid-run: the run fails naming it within the documented time (three
        // missed keepalives of 15 s, then the reconnection attempts), the control plane serves
        // throughout, and once the link is back the next apply converges.
        m.ssh(
            "worker-2",
            "rm -f /usr/local/lib/provisioner/containerd/*/containerd-shim-runc-v2",
        );
        throttle("worker-2", true);
        let mut run = Running::start(&c);
        run.wait_for("==> files");
        std::thread::sleep(std::time::Duration::from_secs(2));
        in_netns("worker-2", &["ip", "link", "set", "eth0", "down"]);
        let (ok, err, took) = run.finish();
        assert!(!ok && err.contains("worker-2"), "{err}");
        assert!(
            took < std::time::Duration::from_secs(180),
            "a cut host took {took:?} to be noticed"
        );
        let ready = Kubectl::new(&c)
            .command(&["get", "--raw", "/readyz"])
            .output()
            .unwrap();
        assert_eq!(text(&ready.stdout).trim(), "ok", "{}", text(&ready.stderr));
        in_netns("worker-2", &["ip", "link", "set", "eth0", "up"]);
        throttle("worker-2", false);
        c.apply_ok();
        no_op(&c);
        verify_cluster(&m, &c, "cp-1", &hosts, &["worker-1", "worker-2"], 1);
    });
}
