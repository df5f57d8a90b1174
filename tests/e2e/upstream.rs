//! The test bed's own small programs around upstream Go modules (`tests/testbed/upstream/NAME`,
//! each a `main` of ours pinning its module in go.mod), built once per test run; Go's build
//! cache keeps them between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::common::{repo, text};

/// The program of `tests/testbed/upstream/NAME`, built if this run has not built it yet.
pub fn program(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let o = go(name)
        .args(["build", "-trimpath", "-o"])
        .arg(&out)
        .arg(".")
        .output()
        .expect("go runs");
    assert!(o.status.success(), "go build {name}: {}", text(&o.stderr));
    built.insert(name.to_string(), out.clone());
    out
}

/// Where Go keeps the source of `module`, at the version `tests/testbed/upstream/NAME` pins.
pub fn module_dir(name: &str, module: &str) -> PathBuf {
    let o = go(name)
        .args(["list", "-m", "-f", "{{.Dir}}", module])
        .output()
        .expect("go runs");
    assert!(o.status.success(), "go list {module}: {}", text(&o.stderr));
    let dir = PathBuf::from(text(&o.stdout).trim());
    assert!(dir.is_dir(), "{module} is not in Go's module cache");
    dir
}

fn go(name: &str) -> Command {
    let mut go = Command::new("go");
    go.current_dir(source(name))
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly")
        .env("GOTOOLCHAIN", "local");
    go
}

fn source(name: &str) -> PathBuf {
    let dir = repo().join("tests/testbed/upstream").join(name);
    assert!(
        Path::new(&dir).join("go.mod").is_file(),
        "{}",
        dir.display()
    );
    dir
}
