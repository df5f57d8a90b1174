//! Versions: which Kubernetes minors are supported and what goes with each.

use std::fmt;
use std::str::FromStr;

/// Oldest and newest supported Kubernetes minor (1.x). The flag and field lists the templates are
/// checked against cover exactly this range.
pub const MIN_MINOR: u32 = 34;
pub const MAX_MINOR: u32 = 36;
pub const DEFAULT_KUBERNETES: &str = "1.35.0";
pub const DEFAULT_PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Semver {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl FromStr for Semver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a version of the form MAJOR.MINOR.PATCH (e.g. 1.35.0)");
        let trimmed = s.strip_prefix('v').unwrap_or(s);
        let mut parts = trimmed.split('.');
        let mut next = || -> Result<u32, String> {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)
        };
        let v = Semver {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(v)
    }
}

impl fmt::Display for Semver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A Kubernetes release within the supported range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeVersion(pub Semver);

impl KubeVersion {
    pub fn parse(s: &str) -> Result<Self, String> {
        let v: Semver = s.parse()?;
        if v.major != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&v.minor) {
            return Err(format!(
                "Kubernetes {v} is not supported; supported versions are 1.{MIN_MINOR}.x to 1.{MAX_MINOR}.x"
            ));
        }
        Ok(KubeVersion(v))
    }

    pub fn minor(self) -> u32 {
        self.0.minor
    }

    /// containerd release recommended for this minor (containerd's own Kubernetes support table).
    pub fn default_containerd(self) -> &'static str {
        match self.minor() {
            34 => "2.1.4",
            _ => "2.2.0",
        }
    }

    /// etcd 3.5 is the line the flag checks cover and every supported minor accepts as external etcd.
    pub fn default_etcd(self) -> &'static str {
        "3.5.24"
    }

    /// runc release the default containerd ships with.
    pub fn default_runc(self) -> &'static str {
        "1.3.0"
    }

    /// CNI plugins release (bridge, host-local, loopback, portmap) current for these minors.
    pub fn default_cni(self) -> &'static str {
        "1.7.1"
    }
}

/// Whether a component version can run with a Kubernetes version, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    Yes,
    /// Works, with a warning.
    Warn(String),
    /// Cannot be rendered for or run.
    No(String),
}

/// The etcd versions the rendered flags and the API server accept.
pub fn etcd_support(e: Semver, k: KubeVersion) -> Support {
    if e.major != 3 || e.minor < 5 {
        Support::No(format!(
            "etcd {e} is not supported; Kubernetes 1.{} needs etcd 3.5.x or 3.6.x",
            k.minor()
        ))
    } else if e.minor == 5 && e.patch < 24 {
        Support::Warn(format!("etcd {e} is older than 3.5.24, the oldest external etcd kubeadm accepts; it misses data-consistency fixes"))
    } else {
        Support::Yes
    }
}

/// The containerd versions whose config this renders and the kubelet of `k` supports.
pub fn containerd_support(c: Semver, k: KubeVersion) -> Support {
    if c.major < 2 && k.minor() >= 36 {
        Support::No(format!("Kubernetes {k} needs containerd 2.x (the kubelet no longer supports containerd {c}); use 2.2.0 or newer"))
    } else if c.major < 1 || (c.major == 1 && c.minor < 6) || c.major > 2 {
        Support::No(format!("containerd {c} is not supported; use 1.7.x or 2.x"))
    } else if c.major == 1 && c.minor == 6 {
        Support::Warn(format!(
            "containerd {c} is end of life and not in Kubernetes {k}'s tested set; prefer 2.x"
        ))
    } else {
        Support::Yes
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            "1.35.2".parse::<Semver>().unwrap(),
            Semver {
                major: 1,
                minor: 35,
                patch: 2
            }
        );
        assert_eq!("v2.1.4".parse::<Semver>().unwrap().major, 2);
        for bad in ["1.35", "1.35.x", "1..0", "1.35.0.1", "", "1.35.0-rc.1"] {
            assert!(bad.parse::<Semver>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn enforces_supported_range() {
        assert!(KubeVersion::parse("1.34.0").is_ok());
        assert!(KubeVersion::parse("1.36.3").is_ok());
        assert!(KubeVersion::parse("1.33.9").is_err());
        assert!(KubeVersion::parse("1.37.0").is_err());
        assert!(KubeVersion::parse("2.35.0").is_err());
    }
}
