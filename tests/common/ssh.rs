//! SSH keys made with OpenSSH's `ssh-keygen`.

use std::path::{Path, PathBuf};

use super::tool_ok;

/// `ssh-keygen -t TYPE` (RSA with 3072 bits) into `dir/name`, encrypted with `passphrase`
/// unless it is empty; returns the private key's path (the public key is beside it, `.pub`).
pub fn keygen(dir: &Path, name: &str, key_type: &str, passphrase: &str) -> PathBuf {
    let key = dir.join(name);
    let mut args = vec!["-q", "-t", key_type];
    if key_type == "rsa" {
        args.extend(["-b", "3072"]);
    }
    let comment = format!("test-{name}");
    args.extend([
        "-N",
        passphrase,
        "-C",
        &comment,
        "-f",
        key.to_str().unwrap(),
    ]);
    tool_ok("ssh-keygen", &args);
    key
}
