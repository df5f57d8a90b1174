//! What the machine running the tests is: root or not, which cgroup hierarchy.

use std::process::Command;

use super::text;

pub fn is_root() -> bool {
    text(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

/// Whether `/sys/fs/cgroup` is the legacy (v1) hierarchy rather than the unified one.
pub fn cgroup_v1() -> bool {
    text(
        &Command::new("stat")
            .args(["-fc", "%T", "/sys/fs/cgroup"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
        != "cgroup2fs"
}
