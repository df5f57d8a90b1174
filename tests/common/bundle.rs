//! The test bundle of real programs (tests/testbed/make-test-bundle.sh) and bundle manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{repo, text};

/// Cargo's target directory, where test bundles are built when no variable names one.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"))
}

/// The test bundle: `PROVISIONER_TEST_BUNDLE`, else built into the target directory on first
/// use (the programs themselves come from the build cache).
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROVISIONER_TEST_BUNDLE") {
        return PathBuf::from(dir);
    }
    let dir = target_dir().join("test-bundle");
    if !dir.join("manifest.toml").exists() {
        let o = Command::new("bash")
            .arg(repo().join("tests/testbed/make-test-bundle.sh"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "make-test-bundle.sh failed:\n{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
    }
    dir
}

/// The test bundle of the Kubernetes minor before the test bundle's, for upgrades:
/// `PROVISIONER_TEST_BUNDLE_PREVIOUS`, else `test-bundle-previous` in the target directory
/// (built by `KUBERNETES_VERSION=1.36.3 tests/testbed/make-test-bundle.sh DIR`).
pub fn previous_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROVISIONER_TEST_BUNDLE_PREVIOUS") {
        return PathBuf::from(dir);
    }
    let dir = target_dir().join("test-bundle-previous");
    assert!(
        dir.join("manifest.toml").exists(),
        "no previous test bundle in {}: build it with KUBERNETES_VERSION=1.36.3 \
         tests/testbed/make-test-bundle.sh {0}, or set PROVISIONER_TEST_BUNDLE_PREVIOUS",
        dir.display()
    );
    dir
}

/// A copy of the bundle `src` in `dst` (hard links) whose `program` is replaced by a script
/// that fails at once, its manifest entry updated to match.
pub fn with_broken_program(src: &Path, dst: &Path, program: &str) {
    let o = Command::new("cp")
        .arg("-al")
        .arg(src)
        .arg(dst)
        .output()
        .unwrap();
    assert!(o.status.success(), "cp -al: {}", text(&o.stderr));
    let path = dst.join("bin").join(program);
    std::fs::remove_file(&path).unwrap();
    let script =
        format!("#!/bin/sh\necho '{program}: broken on purpose by the test' >&2\nexit 1\n");
    std::fs::write(&path, &script).unwrap();
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&path, mode).unwrap();
    let manifest_path = dst.join("manifest.toml");
    let mut m: toml::Value = manifest(dst);
    let files = m["files"].as_array_mut().unwrap();
    let entry = files
        .iter_mut()
        .find(|f| f["name"].as_str() == Some(program))
        .unwrap();
    entry["sha256"] = toml::Value::String(super::sha256_hex(script.as_bytes()));
    entry["size"] = toml::Value::Integer(script.len() as i64);
    std::fs::remove_file(&manifest_path).unwrap();
    std::fs::write(&manifest_path, toml::to_string(&m).unwrap()).unwrap();
}

/// The `manifest.toml` of a bundle directory.
pub fn manifest(dir: &Path) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(dir.join("manifest.toml")).unwrap()).unwrap()
}

/// The Kubernetes version of a bundle directory, for the inventory.
pub fn kubernetes_version(dir: &Path) -> String {
    manifest(dir)["bundle"]["kubernetes_version"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An image the manifest lists, by name.
pub fn image(dir: &Path, name: &str) -> Option<toml::Value> {
    manifest(dir)["images"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["name"].as_str() == Some(name)))
        .cloned()
}
