//! Every command sent to a host is built here. Values reach the shell only through [`quote`]
//! (or as positional parameters set with it); scripts are real files beside this module, so
//! shellcheck reads them as they run.

/// Quotes a string as one word for a POSIX shell. NUL cannot be passed to a command at all, so
/// callers validate their values first; here it is refused rather than truncated.
pub fn quote(s: &str) -> String {
    assert!(
        !s.contains('\0'),
        "a value with a NUL byte cannot reach a shell; values are validated before this"
    );
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `set -- 'a' 'b' ...`: the script that follows sees the values as `$1`, `$2`, ...
fn set_args<S: AsRef<str>>(args: &[S]) -> String {
    let mut s = String::from("set --");
    for a in args {
        s.push(' ');
        s.push_str(&quote(a.as_ref()));
    }
    s.push('\n');
    s
}

/// Prints the identity files of a host (public parts whole, encryption keys as hashes):
/// `pem PATH LINE` and `enc SHA256` lines.
pub fn identity_probe(public_files: &[String], encryption_config: &str) -> String {
    let mut args = vec![encryption_config];
    args.extend(public_files.iter().map(String::as_str));
    format!("{}{}", set_args(&args), include_str!("identity.sh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with the local sh and returns its stdout.
    fn sh(script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoted_values_come_back_unchanged() {
        for hostile in [
            "plain",
            "",
            "a b",
            "it's",
            "';touch /tmp/pwned;'",
            "$(reboot)",
            "`id`",
            "line\nbreak",
            "\"double\"",
            "back\\slash",
            "*?[glob]",
            "-n",
            "tab\there",
            "~root",
            "a;b|c&d>e<f",
        ] {
            assert_eq!(sh(&format!("printf %s {}", quote(hostile))), hostile);
            assert_eq!(
                sh(&format!("{}printf '%s|' \"$@\"", set_args(&[hostile, "x"]))),
                format!("{hostile}|x|")
            );
        }
    }

    #[test]
    #[should_panic(expected = "NUL")]
    fn nul_is_refused() {
        quote("a\0b");
    }

    #[test]
    fn the_identity_probe_prints_public_files_and_hashes_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "-----BEGIN X-----\nQUJD\n-----END X-----").unwrap();
        let enc = dir.path().join("enc.yaml");
        std::fs::write(&enc, "keys:\n- name: key1\n  secret: c2VjcmV0+/=\n").unwrap();
        let out = sh(&identity_probe(
            &[
                ca.display().to_string(),
                dir.path().join("missing").display().to_string(),
            ],
            &enc.display().to_string(),
        ));
        let ca = ca.display();
        assert_eq!(
            out,
            format!(
                "pem {ca} -----BEGIN X-----\npem {ca} QUJD\npem {ca} -----END X-----\nenc {}\n",
                crate::bundle::sha256_hex(b"c2VjcmV0+/=")
            )
        );
        assert!(!out.contains("c2VjcmV0+/="), "no key leaves the host");
    }
}
