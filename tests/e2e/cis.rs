//! The CIS Kubernetes Benchmark, checked by kube-bench (built from its Go module with a `main` of
//! ours, `tests/testbed/upstream/kube-bench`) on every host of a cluster: the benchmark's checks
//! are kube-bench's own, unchanged; only where this layout keeps things is ours
//! (`tests/testbed/kube-bench/config.yaml`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::common::{repo, text};
use crate::machines::Machines;

/// The newest CIS Kubernetes Benchmark kube-bench v0.16.0 carries (its version mapping stops
/// at 1.34, hence named rather than detected).
const BENCHMARK: &str = "cis-1.12";

/// The checks of static pod manifest files: every component here is a systemd unit with its
/// flags on its command line, so they do not apply. kube-bench reports them as INFO, never
/// as passed.
const NOT_APPLICABLE: [&str; 8] = [
    "1.1.1", "1.1.2", "1.1.3", "1.1.4", "1.1.5", "1.1.6", "1.1.7", "1.1.8",
];

/// One host's results: check → status (PASS, FAIL, WARN, INFO).
pub type Results = BTreeMap<String, String>;

/// Runs the benchmark on each host: the control-plane targets (control plane, etcd, policies)
/// on `control_planes`, the node target on `workers`.
pub fn run(m: &Machines, control_planes: &[&str], workers: &[&str]) -> BTreeMap<String, Results> {
    let staged = stage();
    let mut out = BTreeMap::new();
    for (hosts, targets) in [
        (control_planes, "master,controlplane,etcd,policies"),
        (workers, "node"),
    ] {
        for host in hosts {
            out.insert(host.to_string(), run_on(m, host, &staged, targets));
        }
    }
    out
}

/// No check fails on any host, the manifest checks are reported as not applicable, and every
/// check left to a person's judgement (WARN) is one the README explains.
pub fn no_check_fails(m: &Machines, control_planes: &[&str], workers: &[&str]) {
    let results = run(m, control_planes, workers);
    let explained = readme_warnings();
    let mut unexplained = BTreeSet::new();
    for (host, r) in &results {
        let count = |s: &str| r.values().filter(|v| *v == s).count();
        eprintln!(
            "    {host}: {} passed, {} failed, {} to judge (WARN), {} not applicable",
            count("PASS"),
            count("FAIL"),
            count("WARN"),
            count("INFO")
        );
        let failed: Vec<&String> = r.keys().filter(|k| r[*k] == "FAIL").collect();
        assert!(failed.is_empty(), "{host}: CIS checks failed: {failed:?}");
        assert!(count("PASS") >= 20, "{host}: too few checks ran: {r:?}");
        if control_planes.contains(&host.as_str()) {
            for id in NOT_APPLICABLE {
                assert_eq!(r.get(id).map(String::as_str), Some("INFO"), "{host}: {id}");
            }
        }
        unexplained.extend(
            r.iter()
                .filter(|(id, s)| *s == "WARN" && !explained.contains(*id))
                .map(|(id, _)| id.clone()),
        );
    }
    assert!(
        unexplained.is_empty(),
        "WARN checks the README's CIS section does not explain: {unexplained:?}"
    );
}

/// A directory holding kube-bench and its configuration: ours, with the benchmark's checks
/// from the module at the version the build pins.
fn stage() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kube-bench-staged");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cfg")).unwrap();
    std::fs::copy(
        crate::upstream::program("kube-bench"),
        dir.join("kube-bench"),
    )
    .unwrap();
    std::fs::copy(
        repo().join("tests/testbed/kube-bench/config.yaml"),
        dir.join("cfg/config.yaml"),
    )
    .unwrap();
    let module = crate::upstream::module_dir("kube-bench", "github.com/aquasecurity/kube-bench");
    let o = Command::new("cp")
        .arg("-r")
        .arg(module.join("cfg").join(BENCHMARK))
        .arg(dir.join("cfg"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    dir
}

/// Sends the staged directory to `host`, runs kube-bench there and removes it again.
fn run_on(m: &Machines, host: &str, staged: &PathBuf, targets: &str) -> Results {
    let tar = Command::new("tar")
        .arg("-C")
        .arg(staged)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success(), "{}", text(&tar.stderr));
    let skip = NOT_APPLICABLE.join(",");
    let script = format!(
        "set -e; d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; tar -C \"$d\" -xf -; \
         cd \"$d\"; chmod -R u+w cfg; \
         ./kube-bench run --targets {targets} --benchmark {BENCHMARK} --config-dir cfg \
         --config cfg/config.yaml --skip {skip} --json"
    );
    let mut child = m
        .ssh_command(host)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "kube-bench on {host}: {}",
        text(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("kube-bench on {host}: {e}:\n{}", text(&o.stdout)));
    let mut results = Results::new();
    for control in report["Controls"].as_array().expect("Controls") {
        for section in control["tests"].as_array().expect("tests") {
            for r in section["results"].as_array().expect("results") {
                results.insert(
                    r["test_number"].as_str().unwrap().to_string(),
                    r["status"].as_str().unwrap().to_string(),
                );
            }
        }
    }
    results
}

/// The check numbers the README's CIS section explains, one table row each (`| 1.2.1 ...`, or a
/// range in one section, `| 5.1.1-5.1.13 ...`).
fn readme_warnings() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("CIS Kubernetes Benchmark"))
        .expect("a README section \"CIS Kubernetes Benchmark\"");
    let mut ids = BTreeSet::new();
    for first in section
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next())
        .filter(|id| id.starts_with(|c: char| c.is_ascii_digit()))
    {
        match first.split_once('-') {
            None => {
                ids.insert(first.to_string());
            }
            Some((from, to)) => {
                let (section, start) = from.rsplit_once('.').expect("a check number");
                let end = to.rsplit_once('.').expect("a check number").1;
                let (start, end): (u32, u32) = (start.parse().unwrap(), end.parse().unwrap());
                ids.extend((start..=end).map(|n| format!("{section}.{n}")));
            }
        }
    }
    ids
}
