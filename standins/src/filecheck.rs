//! The per-component tables of file-valued flags and the checks applied to each: every file a
//! flag names must exist and parse as what the real component reads it as.

use anyhow::{bail, Result};

use crate::flags::Flags;
use crate::{config, files, kubeconfig};

/// How the real component reads a file-valued flag.
#[derive(Debug, Clone, Copy)]
pub enum FileKind {
    /// PEM certificate(s): a certificate or a CA bundle.
    Certs,
    /// PEM private key; must be private to its owner.
    Key,
    /// PEM public keys or certificates (service-account verification keys); may repeat.
    PublicKeys,
    /// A kubeconfig with a client certificate.
    Kubeconfig,
    /// A config file of this kind, strictly decoded.
    Config(&'static str),
    /// A file the stand-in does not interpret: it must exist and be readable.
    Exists,
}

/// Checks every file-valued flag that was given (repeated flags: every occurrence).
pub fn check(flags: &Flags, table: &[(&str, FileKind)]) -> Result<()> {
    for (flag, kind) in table {
        for path in flags.all(flag).iter().filter(|p| !p.is_empty()) {
            check_one(&format!("--{flag}"), path, *kind)?;
        }
    }
    Ok(())
}

pub fn check_one(what: &str, path: &str, kind: FileKind) -> Result<()> {
    match kind {
        FileKind::Certs => files::load_certs(what, path).map(drop),
        FileKind::Key => files::load_key(what, path).map(drop),
        FileKind::PublicKeys => files::load_public_keys(what, path).map(drop),
        FileKind::Kubeconfig => kubeconfig::Kubeconfig::load(what, path).map(drop),
        FileKind::Config(k) => config::load(what, path, k).map(drop),
        FileKind::Exists => files::read(what, path).map(drop),
    }
}

/// Certificate/key flag pairs: both or neither, and the key must be the certificate's.
pub fn check_pairs(flags: &Flags, pairs: &[(&str, &str)]) -> Result<()> {
    for (cert, key) in pairs {
        match (flags.path(cert), flags.path(key)) {
            (Some(c), Some(k)) => {
                files::load_pair(&format!("--{cert}"), c, &format!("--{key}"), k)?;
            }
            (Some(_), None) | (None, Some(_)) => {
                bail!("--{cert} and --{key} must be given together")
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// Flags the stand-in needs although the real component could do without (it would generate
/// a self-signed certificate, say): refusing beats silently testing something else.
pub fn require(flags: &Flags, names: &[&str], why: &str) -> Result<()> {
    for n in names {
        if flags.path(n).is_none() {
            bail!("--{n} is required ({why})");
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) fn assert_table_flags_exist(
    component: &str,
    table: &[(&str, FileKind)],
    pairs: &[(&str, &str)],
) {
    for minor in [34, 35, 36] {
        let defs = crate::flags::defs(component, minor);
        let known = |n: &str| defs.iter().any(|d| d.name == n);
        for (f, _) in table {
            assert!(known(f), "{component} 1.{minor} has no --{f}");
        }
        for (c, k) in pairs {
            assert!(known(c) && known(k), "{component} 1.{minor}: --{c}/--{k}");
        }
    }
}
