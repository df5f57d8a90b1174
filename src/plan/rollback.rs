//! What `rollback` changes, decided from the state directory's version record: which
//! releases go back (etcd stays after a change of minor: its data cannot go back), the
//! cluster as it was at those versions, and every link pointed at them.

use anyhow::Result;

use super::DesiredHost;
use crate::component::{parse_release_path, release_path, Release};
use crate::history::History;
use crate::inventory::version::{KubeVersion, Semver};
use crate::inventory::Cluster;

/// The recorded steps rollback undoes, and those it cannot: etcd after a change of minor.
pub fn split(h: &History) -> (History, History) {
    h.clone().into_iter().partition(|(release, step)| {
        let minor = |v: &str| v.parse::<Semver>().ok().map(|s| (s.major, s.minor));
        release != Release::Etcd.name() || minor(&step.previous) == minor(&step.to)
    })
}

/// Sets the cluster's versions of the rolled-back releases to their previous ones.
pub fn at_versions(c: &mut Cluster, back: &History) -> Result<()> {
    for (release, step) in back {
        let bad = |e: String| anyhow::anyhow!("the version record's {release}: {e}");
        if release == Release::Kubernetes.name() {
            c.kubernetes = KubeVersion::parse(&step.previous).map_err(bad)?;
        } else if release == Release::Etcd.name() {
            c.versions.etcd = step.previous.parse().map_err(bad)?;
        } else if release == Release::Containerd.name() {
            c.versions.containerd = step.previous.parse().map_err(bad)?;
        }
    }
    Ok(())
}

/// Points every link of a rolled-back release at its previous version.
pub fn retarget(mut desired: Vec<DesiredHost>, back: &History) -> Vec<DesiredHost> {
    for d in &mut desired {
        for l in &mut d.links {
            let Some((release, _)) = parse_release_path(&l.target) else {
                continue;
            };
            if let Some(step) = back.get(release) {
                let program = l.path.rsplit('/').next().unwrap_or_default();
                l.target = release_path(release, &step.previous, program);
            }
        }
    }
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Step;

    #[test]
    fn etcd_stays_after_a_minor_change_and_kubernetes_goes_back() {
        let step = |p: &str, t: &str| Step {
            previous: p.into(),
            to: t.into(),
        };
        let h: History = [
            ("kubernetes".to_string(), step("1.36.3", "1.37.2")),
            ("etcd".to_string(), step("3.6.8", "3.7.0")),
            ("containerd".to_string(), step("2.3.7", "2.4.2")),
        ]
        .into();
        let (back, kept) = split(&h);
        assert_eq!(
            back.keys().collect::<Vec<_>>(),
            ["containerd", "kubernetes"]
        );
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["etcd"]);
        let patch: History = [("etcd".to_string(), step("3.6.7", "3.6.8"))].into();
        assert_eq!(split(&patch).0.len(), 1);

        let d = DesiredHost {
            host: "w-1".into(),
            dirs: vec![],
            items: vec![],
            links: vec![crate::plan::Link {
                path: "/usr/local/bin/kubelet".into(),
                target: release_path("kubernetes", "1.37.2", "kubelet"),
                restarts: vec![],
            }],
            units: vec![],
            owned: vec![],
            images: vec![],
            retired: vec![],
        };
        let d = retarget(vec![d], &back);
        assert_eq!(
            d[0].links[0].target,
            "/usr/local/lib/provisioner/kubernetes/1.36.3/kubelet"
        );
    }
}
