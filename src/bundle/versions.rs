//! The bundle decides the versions of the components it carries: the files rendered for etcd and
//! containerd must match the binaries installed. An inventory that pins another version, or a
//! bundle whose version the target Kubernetes cannot use, is refused before anything is written.

use crate::component::Release;
use crate::inventory::version::{containerd_support, etcd_support, Semver, Support};
use crate::inventory::Cluster;

use super::Manifest;

/// Takes the bundle's etcd and containerd versions into `c`. Returns the warnings, or the
/// problems as (inventory key, message).
pub fn adopt(
    c: &mut Cluster,
    m: &Manifest,
    bundle: &str,
) -> Result<Vec<String>, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let k = c.kubernetes;
    let v = &mut c.versions;
    for (release, key, current, pinned, support) in [
        (
            Release::Etcd,
            "versions.etcd",
            &mut v.etcd,
            v.etcd_pinned,
            etcd_support as fn(_, _) -> Support,
        ),
        (
            Release::Containerd,
            "versions.containerd",
            &mut v.containerd,
            v.containerd_pinned,
            containerd_support,
        ),
    ] {
        let component = release.name();
        let Some(entry) = m.files.iter().find(|e| e.component == component) else {
            continue;
        };
        let carried = match entry.version.parse::<Semver>() {
            Ok(s) => s,
            Err(e) => {
                problems.push((
                    "cluster.bundle",
                    format!("the bundle {bundle} gives {component} the version {e}"),
                ));
                continue;
            }
        };
        if carried == *current {
            continue;
        }
        if pinned {
            problems.push((
                key,
                format!(
                    "{component} {current} is set here, but the bundle {bundle} carries {component} \
                     {carried}; remove the setting (the bundle decides) or use a bundle with \
                     {component} {current}"
                ),
            ));
            continue;
        }
        match support(carried, k) {
            Support::Yes => {}
            Support::Warn(w) => warnings.push(format!("the bundle's {w}")),
            Support::No(e) => {
                problems.push(("cluster.bundle", format!("the bundle {bundle}: {e}")));
                continue;
            }
        }
        *current = carried;
    }
    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(etcd: &str, containerd: &str) -> Manifest {
        let text = format!(
            "[bundle]\nformat = 1\narch = \"amd64\"\nkubernetes_version = \"1.35.0\"\n\n\
             [[files]]\nname = \"etcd\"\ncomponent = \"etcd\"\nversion = \"{etcd}\"\npath = \"bin/etcd\"\n\
             sha256 = \"{z}\"\nsize = 1\nmode = \"0755\"\n\n\
             [[files]]\nname = \"containerd\"\ncomponent = \"containerd\"\nversion = \"{containerd}\"\n\
             path = \"bin/containerd\"\nsha256 = \"{z}\"\nsize = 1\nmode = \"0755\"\n",
            z = "0".repeat(64)
        );
        Manifest::parse(&text, std::path::Path::new("m")).unwrap()
    }

    #[test]
    fn the_bundle_decides_unless_the_inventory_pins_another_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        let warnings = adopt(&mut c, &manifest("3.5.1", "2.2.1"), "b").unwrap();
        assert_eq!(c.versions.etcd.to_string(), "3.5.1");
        assert_eq!(c.versions.containerd.to_string(), "2.2.1");
        assert!(warnings[0].contains("older than 3.5.24"), "{warnings:?}");

        let mut c = crate::inventory::bundled_for_test(dir.path());
        c.versions.etcd_pinned = true;
        let pinned = c.versions.etcd;
        let problems = adopt(&mut c, &manifest("3.5.1", "2.2.1"), "b").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "versions.etcd");
        assert!(
            problems[0]
                .1
                .contains(&format!("etcd {pinned} is set here"))
                && problems[0].1.contains("carries etcd 3.5.1"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_bundle_version_the_cluster_cannot_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        let problems = adopt(&mut c, &manifest("3.4.27", "1.5.0"), "b").unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|(k, _)| *k == "cluster.bundle"));
    }
}
