//! Grammars of the names that travel from a bundle or the inventory into host commands and
//! configs: image references (the distribution reference grammar that containerd and registries
//! use), image digests and bundle file names. Anything outside them is refused where it enters.

/// Checks an image reference: `[domain[:port]/]path[:tag][@digest]`.
pub fn image_reference(s: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "`{}` is not an image reference: {why}",
            s.escape_debug()
        ))
    };
    if s.is_empty() || s.len() > 512 {
        return bad("it must have 1 to 512 characters");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        if let Err(e) = any_digest(d) {
            return bad(&e);
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return bad("the tag must be letters, digits, '_', '.' or '-' (at most 128)");
        }
    }
    if name.len() > 255 {
        return bad("the name is longer than 255 characters");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        if let Err(e) = domain(parts[0]) {
            return bad(&e);
        }
        parts.remove(0);
    }
    if !parts.iter().all(|p| path_component(p)) {
        return bad(
            "each path part must be lowercase letters and digits, joined by '.', '_', '__' or '-'",
        );
    }
    Ok(())
}

/// `sha256:` and 64 lowercase hex digits: the only digest provisioner records.
pub fn sha256_digest(s: &str) -> Result<(), String> {
    match s.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(())
        }
        _ => Err(format!(
            "`{}` is not a digest of the form sha256:<64 lowercase hex digits>",
            s.escape_debug()
        )),
    }
}

/// A bundle file or image name: a plain file name of letters, digits, '.', '_', '+' and '-',
/// not starting with '.' or '-'.
pub fn file_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a plain file name (letters, digits, '.', '_', '+', '-'; at most 128)",
            s.escape_debug()
        ))
    }
}

/// Any algorithm the grammar allows, with at least 32 hex digits.
fn any_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err("the digest has no algorithm".into());
    };
    let alg_ok = alg.split(['+', '.', '_', '-']).all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !alg_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the digest must be algorithm:hex".into());
    }
    Ok(())
}

fn domain(d: &str) -> Result<(), String> {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || d.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err("the registry port must be digits".into());
        }
    }
    let ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.split('.').all(|c| {
            !c.is_empty()
                && !c.starts_with('-')
                && !c.ends_with('-')
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    };
    if ok {
        Ok(())
    } else {
        Err("the registry host is not a host name or address".into())
    }
}

/// `[a-z0-9]+` parts joined by one of `.`, `_`, `__` or `-`+.
fn path_component(p: &str) -> bool {
    let b = p.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &p[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_references() {
        for ok in [
            "registry.k8s.io/pause:3.10.1",
            "localhost/provisioner-test/pause:busybox-1.35.0",
            "docker.io/library/busybox:1.36",
            "busybox",
            "my-registry.local:5000/team/app_name:v1.2.3-rc.1",
            "registry.k8s.io/coredns/coredns:v1.12.1",
            "quay.io/a/b@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "[::1]:5000/x:y",
            "a__b/c---d",
        ] {
            assert_eq!(image_reference(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_anything_a_shell_or_config_could_read_twice() {
        for bad in [
            "';touch /pwned;'",
            "registry.k8s.io/pause:3.10.1';touch /pwned;'",
            "pause:3.10.1\nx",
            "a b",
            "$(id)",
            "`id`",
            "UPPER/case",
            "x:",
            "x@sha256:short",
            "",
            "a//b",
            "-a",
            "\"quoted\"",
            "a\0b",
        ] {
            assert!(image_reference(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn digests_and_names() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(sha256_digest(&good).is_ok());
        for bad in [
            "sha256:abc",
            "sha512:00",
            &good.to_uppercase(),
            &format!("{good};x"),
        ] {
            assert!(sha256_digest(bad).is_err(), "{bad}");
        }
        for ok in [
            "etcd",
            "containerd-shim-runc-v2",
            "pause",
            "host-local",
            "a.b_c+d",
        ] {
            assert!(file_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "-rf", "a b", "x';y", "a\nb"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
    }
}
