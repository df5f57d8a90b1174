//! Versions: which Kubernetes minors are supported and what goes with each.

use std::fmt;
use std::str::FromStr;

/// Oldest and newest supported Kubernetes minor (1.x): the releases upstream supports today. The
/// flag and field lists the templates are checked against cover exactly this range.
pub const MIN_MINOR: u32 = 35;
pub const MAX_MINOR: u32 = 37;
pub const DEFAULT_KUBERNETES: &str = "1.37.2";

/// Minors below the range, with the month their upstream support ended.
const ENDED: &[(u32, &str)] = &[
    (34, "October 2026"),
    (33, "June 2026"),
    (32, "February 2026"),
];

/// What goes with each supported minor, as upstream pins it. Sources, all in the
/// `k8s.io/kubernetes` module of the release named:
/// - etcd, CoreDNS, pause: kubeadm's `cmd/kubeadm/app/constants/constants.go`
///   (`DefaultEtcdVersion`, `CoreDNSVersion`, `PauseVersion`), matching `build/dependencies.yaml`
///   (v1.37.2, v1.36.3, v1.35.4);
/// - CNI plugins: `build/dependencies.yaml` (`cni`); kubeadm pins none;
/// - containerd: not pinned by Kubernetes; the newest patch of the newest line containerd's own
///   `RELEASES.md` (v2.4.2) lists for the minor;
/// - runc: the one that containerd release tests and ships with (`script/setup/runc-version`).
struct Pins {
    minor: u32,
    etcd: &'static str,
    containerd: &'static str,
    runc: &'static str,
    cni: &'static str,
    coredns: &'static str,
    pause: &'static str,
}

const PINS: &[Pins] = &[
    Pins {
        minor: 35,
        etcd: "3.6.6",
        containerd: "2.2.9",
        runc: "1.3.6",
        cni: "1.8.0",
        coredns: "1.13.1",
        pause: "3.10.1",
    },
    Pins {
        minor: 36,
        etcd: "3.6.8",
        containerd: "2.3.7",
        runc: "1.5.2",
        cni: "1.9.1",
        coredns: "1.14.2",
        pause: "3.10.2",
    },
    Pins {
        minor: 37,
        etcd: "3.7.0",
        containerd: "2.4.2",
        runc: "1.5.2",
        cni: "1.9.1",
        coredns: "1.14.6",
        pause: "3.10.2",
    },
];

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
        let range = format!("supported versions are 1.{MIN_MINOR}.x to 1.{MAX_MINOR}.x");
        if let Some((_, ended)) = ENDED.iter().find(|(m, _)| v.major == 1 && v.minor == *m) {
            return Err(format!(
                "Kubernetes {v} is no longer supported: upstream support for 1.{} ended in \
                 {ended}; {range} (upgrade the cluster first, one minor at a time)",
                v.minor
            ));
        }
        if v.major != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&v.minor) {
            return Err(format!("Kubernetes {v} is not supported; {range}"));
        }
        Ok(KubeVersion(v))
    }

    pub fn minor(self) -> u32 {
        self.0.minor
    }

    fn pins(self) -> &'static Pins {
        PINS.iter()
            .find(|p| p.minor == self.minor())
            .expect("every supported minor has its pins")
    }

    pub fn default_etcd(self) -> &'static str {
        self.pins().etcd
    }

    pub fn default_containerd(self) -> &'static str {
        self.pins().containerd
    }

    pub fn default_runc(self) -> &'static str {
        self.pins().runc
    }

    pub fn default_cni(self) -> &'static str {
        self.pins().cni
    }

    /// The upstream CoreDNS image kubeadm deploys with this minor.
    pub fn default_coredns_image(self) -> String {
        format!("registry.k8s.io/coredns/coredns:v{}", self.pins().coredns)
    }

    /// The upstream pause image kubeadm uses with this minor.
    pub fn default_pause_image(self) -> String {
        format!("registry.k8s.io/pause:{}", self.pins().pause)
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

/// The etcd versions the rendered flags and the API server accept: 3.5 (kubeadm's oldest external
/// etcd) to 3.7.
pub fn etcd_support(e: Semver, k: KubeVersion) -> Support {
    if e.major != 3 || !(5..=7).contains(&e.minor) {
        Support::No(format!(
            "etcd {e} is not supported; Kubernetes 1.{} runs on etcd 3.5.x to 3.7.x (default {})",
            k.minor(),
            k.default_etcd()
        ))
    } else if e.minor == 5 && e.patch < 24 {
        Support::Warn(format!("etcd {e} is older than 3.5.24, the oldest external etcd kubeadm accepts; it misses data-consistency fixes"))
    } else {
        Support::Yes
    }
}

/// The containerd versions whose config this renders and the kubelet of `k` supports: 2.x (1.7
/// reached its end of life in March 2026, and the kubelet of 1.36 refuses it).
pub fn containerd_support(c: Semver, k: KubeVersion) -> Support {
    if c.major != 2 {
        Support::No(format!(
            "containerd {c} is not supported; Kubernetes {k} needs containerd 2.x (default {})",
            k.default_containerd()
        ))
    } else if c.minor < 1 {
        Support::Warn(format!(
            "containerd {c} is not in Kubernetes {k}'s tested set; prefer {}",
            k.default_containerd()
        ))
    } else {
        Support::Yes
    }
}

/// containerd's config file format for a containerd release: 2.3 introduced format 4.
pub fn containerd_config_version(c: Semver) -> u32 {
    if c.minor >= 3 {
        4
    } else {
        3
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
        for ok in ["1.35.0", "1.36.3", "1.37.2"] {
            assert!(KubeVersion::parse(ok).is_ok(), "{ok}");
        }
        let e = KubeVersion::parse("1.34.4").unwrap_err();
        assert!(e.contains("ended in October 2026"), "{e}");
        assert!(KubeVersion::parse("1.38.0").is_err());
        assert!(KubeVersion::parse("2.35.0").is_err());
    }

    #[test]
    fn every_supported_minor_has_pins_that_it_supports() {
        for minor in MIN_MINOR..=MAX_MINOR {
            let k = KubeVersion::parse(&format!("1.{minor}.0")).unwrap();
            let etcd = k.default_etcd().parse().unwrap();
            let containerd = k.default_containerd().parse().unwrap();
            assert_eq!(etcd_support(etcd, k), Support::Yes, "1.{minor}");
            assert_eq!(containerd_support(containerd, k), Support::Yes, "1.{minor}");
            assert!(k
                .default_pause_image()
                .starts_with("registry.k8s.io/pause:3."));
        }
        assert!(KubeVersion::parse(DEFAULT_KUBERNETES).is_ok());
    }

    #[test]
    fn the_test_bed_builds_the_pinned_versions() {
        // tests/testbed/upstream/versions.tsv drives the build of the test bundle's programs.
        let tsv = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/testbed/upstream/versions.tsv"),
        )
        .unwrap();
        let mut seen = 0;
        for line in tsv.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            let k = KubeVersion::parse(&format!("{}.0", cols[0])).unwrap();
            let p = k.pins();
            let pinned = match cols[1] {
                "etcd" => p.etcd,
                "containerd" => p.containerd,
                "runc" => p.runc,
                "cni" => p.cni,
                "coredns" => p.coredns,
                "pause" => p.pause,
                other => panic!("unknown component {other}"),
            };
            assert_eq!(cols[2], pinned, "{line}");
            seen += 1;
        }
        assert_eq!(seen, PINS.len() * 6);
    }
}
