//! Helpers shared by the integration tests: running the binary, rendering an inventory into a
//! temporary directory, reading the rendered tree back, running the real tools, hashing. The
//! test bundle, the test machine and SSH keys have their own modules.
//!
//! Every test crate uses only part of this module, hence the `dead_code` allowance.

#![allow(dead_code)]

pub mod bundle;
pub mod host;
pub mod ssh;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures").join(rel)
}

/// The provisioner binary, to be given its arguments.
pub fn provisioner_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_provisioner"));
    // A RUST_LOG of the developer's shell would add log lines to the output the tests read.
    command.env_remove("RUST_LOG");
    command
}

pub fn provisioner(args: &[&str]) -> Output {
    provisioner_command()
        .args(args)
        .output()
        .expect("the provisioner binary runs")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A temporary directory holding one inventory, so each test has its own state directory.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A copy of the inventory `source`, with the `.pem` files beside it that it names
    /// relative to itself.
    pub fn with_inventory(source: &Path) -> Self {
        let text =
            std::fs::read_to_string(source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let ws = Self::with_text(&text);
        for entry in std::fs::read_dir(source.parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "pem") {
                std::fs::copy(&path, ws.dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        ws
    }

    pub fn with_text(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inventory.toml"), text).unwrap();
        Workspace { dir }
    }

    pub fn inventory(&self) -> String {
        self.dir.path().join("inventory.toml").display().to_string()
    }

    pub fn read_inventory(&self) -> String {
        std::fs::read_to_string(self.inventory()).unwrap()
    }

    pub fn write_inventory(&self, text: &str) {
        std::fs::write(self.inventory(), text).unwrap();
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join(".provisioner")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// [`run`](Self::run) with extra environment variables (the test hooks).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args)
            .envs(env.iter().copied())
            .output()
            .expect("the provisioner binary runs")
    }

    /// The binary with `args` and this inventory, to be run or spawned by the caller.
    pub fn command(&self, args: &[&str]) -> Command {
        // The inventory goes after the command words, before the options.
        let mut full: Vec<&str> = args.to_vec();
        let inv = self.inventory();
        let at = full
            .iter()
            .position(|a| a.starts_with("--"))
            .unwrap_or(full.len());
        full.insert(at, &inv);
        let mut command = provisioner_command();
        command.args(&full);
        command
    }

    /// Renders into `out/` and panics with the tool's output if it fails.
    pub fn render(&self) -> Tree {
        let out = self.out();
        let o = self.run(&["render", "--out", out.to_str().unwrap()]);
        assert!(
            o.status.success(),
            "render failed:\n{}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        Tree::read(&out)
    }
}

/// A rendered tree: relative path → (mode, content).
pub struct Tree {
    pub root: PathBuf,
    pub files: BTreeMap<String, (u32, Vec<u8>)>,
}

impl Tree {
    pub fn read(root: &Path) -> Tree {
        let mut files = BTreeMap::new();
        fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<String, (u32, Vec<u8>)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, files);
                } else {
                    let rel = p.strip_prefix(root).unwrap().display().to_string();
                    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
                    files.insert(rel, (mode, std::fs::read(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut files);
        Tree {
            root: root.to_path_buf(),
            files,
        }
    }

    pub fn text(&self, rel: &str) -> String {
        let (_, c) = self
            .files
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} was not rendered"));
        String::from_utf8(c.clone()).unwrap()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Files of one host whose path (on the host) ends with `suffix`.
    pub fn matching<'a>(&'a self, suffix: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.files.keys().filter(move |k| k.ends_with(suffix))
    }

    pub fn hosts(&self) -> Vec<String> {
        let mut h: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.split_once('/').map(|(h, _)| h.to_string()))
            .collect();
        h.dedup();
        h
    }
}

/// Runs a tool that must exist on the test machine (the CI script installs it).
pub fn tool(name: &str, args: &[&str]) -> Output {
    Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("`{name}` could not run ({e}); install it (see .ci/run)"))
}

/// [`tool`] that must succeed; its stdout.
pub fn tool_ok(name: &str, args: &[&str]) -> String {
    let o = tool(name, args);
    assert!(
        o.status.success(),
        "{name} {args:?}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// SHA-256 in lowercase hex, as `sha256sum` and the bundle manifests write it. Computed here
/// with `sha2`, not with the code under test.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// [`sha256_hex`] of a file's content.
pub fn sha256_file(path: &Path) -> String {
    sha256_hex(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
