//! The test bundle of real programs (tests/testbed/make-test-bundle.sh) and bundle manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{repo, text};

/// The test bundle: `PROVISIONER_TEST_BUNDLE`, else built into the target directory on first
/// use (the programs themselves come from the build cache).
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROVISIONER_TEST_BUNDLE") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("test-bundle");
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
