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

/// Prints each of `paths` framed for [`parse_files`]: the whole content, keys included. Only for
/// `state recover`, which keeps what it reads in memory and in the state directory.
pub fn read_files(paths: &[String]) -> String {
    format!("{}{}", set_args(paths), include_str!("read_files.sh"))
}

/// Parses [`read_files`]' output: path → content, None for a missing file.
pub fn parse_files(
    mut out: &[u8],
) -> Result<std::collections::BTreeMap<String, Option<Vec<u8>>>, String> {
    let mut files = std::collections::BTreeMap::new();
    while !out.is_empty() {
        let end = out
            .iter()
            .position(|b| *b == b'\n')
            .ok_or("output ends inside a header")?;
        let header = String::from_utf8_lossy(&out[..end]).into_owned();
        out = &out[end + 1..];
        let (size, path) = header
            .split_once(' ')
            .ok_or_else(|| format!("bad header {header:?}"))?;
        if size == "-" {
            files.insert(path.to_string(), None);
            continue;
        }
        let size: usize = size
            .parse()
            .map_err(|_| format!("bad size in {header:?}"))?;
        if size > out.len() {
            return Err(format!("{path}: output ends before its {size} bytes"));
        }
        files.insert(path.to_string(), Some(out[..size].to_vec()));
        out = &out[size..];
    }
    Ok(files)
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
    fn files_are_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a b");
        let content = "line\n- fake header\n12 /x\nno newline at the end";
        std::fs::write(&a, content).unwrap();
        let missing = dir.path().join("missing");
        let paths = [a.display().to_string(), missing.display().to_string()];
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(read_files(&paths))
            .output()
            .unwrap();
        let files = parse_files(&out.stdout).unwrap();
        assert_eq!(files[&paths[0]].as_deref(), Some(content.as_bytes()));
        assert_eq!(files[&paths[1]], None);
        assert!(parse_files(b"99 /x\nshort").is_err());
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
