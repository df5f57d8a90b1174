//! `[[registries]]`: each registry's name, its mirrors' URLs and the CA their certificates are
//! checked against.

use std::collections::HashMap;
use std::path::Path;

use super::{address, at, expand_home, Validator};
use crate::inventory::model::{Mirror, Registry};
use crate::inventory::raw;

impl Validator {
    pub(super) fn registries(&mut self, list: &[raw::Registry], base_dir: &Path) -> Vec<Registry> {
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let p = at("registries").index(i);
            let name = self.check(p.key("name"), registry_name(&r.name));
            if let Some(j) = names.insert(&r.name, i) {
                self.error(
                    p.key("name"),
                    format!("`{}` is also the name of registries[{j}]", r.name),
                );
            }
            if r.mirrors.is_empty() {
                self.error(
                    p.key("mirrors"),
                    "is empty: name at least one mirror, e.g. \"https://registry.internal:5000\"",
                );
            }
            let mirrors: Vec<Option<Mirror>> = r
                .mirrors
                .iter()
                .enumerate()
                .map(|(k, m)| self.check(p.key("mirrors").index(k), mirror(m)))
                .collect();
            let ca_pem = r.ca_file.as_deref().and_then(|f| {
                let path = base_dir.join(expand_home(f));
                self.check(p.key("ca_file"), ca_certificates(&path))
            });
            if let (Some(name), Some(mirrors)) = (name, mirrors.into_iter().collect()) {
                out.push(Registry {
                    server: server(&name),
                    name,
                    mirrors,
                    ca_pem,
                });
            }
        }
        out
    }
}

/// A registry host as image names carry it: a DNS name or IPv4 address, with an optional port.
fn registry_name(s: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "`{s}` is not a registry name: a host as image names carry it, such as \
             registry.k8s.io or registry.internal:5000"
        )
    };
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err(bad());
    }
    address(host).map_err(|_| bad())?;
    Ok(s.to_string())
}

/// The registry's own endpoint, which containerd falls back to after the mirrors.
fn server(name: &str) -> String {
    // Image names say docker.io; its registry API answers at registry-1.docker.io.
    let host = if name == "docker.io" {
        "registry-1.docker.io"
    } else {
        name
    };
    format!("https://{host}")
}

/// A mirror URL: HTTPS, a host with an optional port, an optional path; nothing else.
fn mirror(s: &str) -> Result<Mirror, String> {
    let Some(rest) = s.strip_prefix("https://") else {
        return Err(if s.starts_with("http://") {
            format!(
                "`{s}`: plain HTTP lets anyone on the way swap the images; serve the mirror over \
                 HTTPS (ca_file names a private CA)"
            )
        } else {
            format!("`{s}` is not an https:// URL")
        });
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p.trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!(
            "`{s}` carries credentials: the inventory holds no secrets, and a mirror for an \
             air-gapped site serves its pulls without them"
        ));
    }
    if path.contains(['?', '#', ' ']) {
        return Err(format!(
            "`{s}`: a query, fragment or space has no place in a mirror URL"
        ));
    }
    registry_name(authority).map_err(|_| format!("`{s}`: `{authority}` is not host[:port]"))?;
    let url = if path.is_empty() {
        format!("https://{authority}")
    } else {
        format!("https://{authority}/{path}")
    };
    Ok(Mirror {
        url,
        override_path: !path.is_empty(),
    })
}

/// The PEM certificates of a CA file, each of which must parse.
fn ca_certificates(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut count = 0;
    for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
        let pem = pem.map_err(|e| format!("{}: not PEM: {e}", path.display()))?;
        if pem.label != "CERTIFICATE" {
            return Err(format!(
                "{} holds a {} block: only CA certificates belong there (never a key)",
                path.display(),
                pem.label
            ));
        }
        pem.parse_x509()
            .map_err(|e| format!("{}: a certificate does not parse: {e}", path.display()))?;
        count += 1;
    }
    if count == 0 {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_hosts_with_an_optional_port() {
        assert!(registry_name("registry.k8s.io").is_ok());
        assert!(registry_name("10.88.0.1:5000").is_ok());
        for bad in [
            "",
            "Registry.K8s.io",
            "host:0",
            "host:x",
            "https://x",
            "a/b",
        ] {
            assert!(registry_name(bad).is_err(), "{bad}");
        }
        assert_eq!(server("docker.io"), "https://registry-1.docker.io");
        assert_eq!(server("quay.io"), "https://quay.io");
    }

    #[test]
    fn mirrors_are_https_urls_without_secrets() {
        let m = mirror("https://registry.internal:5000/").unwrap();
        assert_eq!(m.url, "https://registry.internal:5000");
        assert!(!m.override_path);
        let m = mirror("https://harbor.internal/v2/k8s").unwrap();
        assert_eq!(m.url, "https://harbor.internal/v2/k8s");
        assert!(m.override_path);
        assert!(mirror("http://registry.internal")
            .unwrap_err()
            .contains("plain HTTP"));
        assert!(mirror("https://user:pw@registry.internal")
            .unwrap_err()
            .contains("credentials"));
        for bad in [
            "registry.internal",
            "https://",
            "https://a b",
            "https://x/?q",
        ] {
            assert!(mirror(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_holds_certificates_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["ca".to_string()]).unwrap();
        let cert = dir.path().join("ca.pem");
        std::fs::write(&cert, ca.cert.pem()).unwrap();
        assert_eq!(ca_certificates(&cert).unwrap(), ca.cert.pem());
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            format!("{}{}", ca.cert.pem(), ca.signing_key.serialize_pem()),
        )
        .unwrap();
        assert!(ca_certificates(&key).unwrap_err().contains("never a key"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing\n").unwrap();
        assert!(ca_certificates(&empty).unwrap_err().contains("no PEM"));
        assert!(ca_certificates(&dir.path().join("missing")).is_err());
    }
}
