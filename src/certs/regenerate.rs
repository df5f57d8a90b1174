//! `certs regenerate`: new leaf certificates from the same CAs, pushed and rolled out with the
//! cluster serving throughout (apply restarts one host at a time behind its gate).

use anyhow::{bail, Result};

use crate::inventory::Cluster;
use crate::pki::{self, spec};

/// Which certificates to regenerate.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Certificate names (`apiserver`, every `kubelet-server`) or ids (`kubelet-server@worker-1`).
    pub certs: Vec<String>,
    /// Hosts whose own certificates are selected.
    pub hosts: Vec<String>,
    pub all: bool,
}

/// Leaf ids to regenerate. Without any selector: those that no longer match the inventory and
/// those expiring within `warn_days`.
pub fn select(
    cluster: &Cluster,
    listed: &[pki::Listed],
    sel: &Selection,
    warn_days: i64,
    now: i64,
) -> Result<Vec<String>> {
    let leaves = spec::leaf_certs(cluster);
    let mut unknown = Vec::new();
    for c in &sel.certs {
        if !leaves.iter().any(|s| s.name.name() == c || s.id() == *c) {
            unknown.push(format!("certificate {c}"));
        }
    }
    for h in &sel.hosts {
        if cluster.host(h).is_none() {
            unknown.push(format!("host {h}"));
        }
    }
    if !unknown.is_empty() {
        let mut names: Vec<&str> = leaves.iter().map(|s| s.name.name()).collect();
        names.dedup();
        bail!(
            "unknown {}; certificates are {} (add @HOST for one host's)",
            unknown.join(", "),
            names.join(", ")
        );
    }
    let by_default = !sel.all && sel.certs.is_empty() && sel.hosts.is_empty();
    let mut ids = Vec::new();
    for s in &leaves {
        let id = s.id();
        let chosen = if sel.all {
            true
        } else if by_default {
            listed.iter().any(|l| {
                l.name == s.name.name()
                    && l.host == s.host
                    && (!l.stale.is_empty()
                        || l.info
                            .as_ref()
                            .is_some_and(|i| i.not_after - now < warn_days * 86_400))
            })
        } else {
            let cert_ok =
                sel.certs.is_empty() || sel.certs.iter().any(|c| c == s.name.name() || *c == id);
            let host_ok =
                sel.hosts.is_empty() || s.host.as_ref().is_some_and(|h| sel.hosts.contains(h));
            cert_ok && host_ok
        };
        if chosen {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Whether any of the selected certificates has already expired in the state directory: then
/// the gates fail because of what this command is about to fix.
pub fn any_expired(listed: &[pki::Listed], ids: &[String], now: i64) -> bool {
    listed
        .iter()
        .any(|l| ids.contains(&l.id()) && l.info.as_ref().is_some_and(|i| i.not_after <= now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::Cert;

    /// The bundled inventory (3 control-plane + 2 workers) with a fresh PKI.
    fn cluster() -> (tempfile::TempDir, Cluster) {
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::inventory::bundled_for_test(dir.path());
        crate::pki::ensure(&cluster).unwrap();
        (dir, cluster)
    }

    fn pick(c: &Cluster, sel: Selection) -> Result<Vec<String>> {
        let listed = pki::list(c).unwrap();
        select(
            c,
            &listed,
            &sel,
            30,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        )
    }

    #[test]
    fn selects_by_name_host_or_all() {
        let (_d, c) = cluster();
        let by_name = pick(
            &c,
            Selection {
                certs: vec!["kubelet-server".into(), "apiserver".into()],
                ..Selection::default()
            },
        )
        .unwrap();
        assert_eq!(
            by_name,
            [
                "apiserver",
                "kubelet-server@worker-1",
                "kubelet-server@worker-2"
            ]
        );
        let one = Selection {
            certs: vec!["kubelet-server@worker-2".into()],
            ..Selection::default()
        };
        assert_eq!(pick(&c, one).unwrap(), ["kubelet-server@worker-2"]);
        let host = Selection {
            hosts: vec!["cp-2".into()],
            ..Selection::default()
        };
        assert_eq!(
            pick(&c, host).unwrap(),
            [
                "etcd-server@cp-2",
                "etcd-peer@cp-2",
                "controller-manager-server@cp-2",
                "scheduler-server@cp-2"
            ]
        );
        let all = pick(
            &c,
            Selection {
                all: true,
                ..Selection::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), spec::leaf_certs(&c).len());
    }

    #[test]
    fn by_default_only_stale_or_expiring_ones_and_unknown_names_are_refused() {
        let (_d, c) = cluster();
        assert!(pick(&c, Selection::default()).unwrap().is_empty());
        // A control-plane host's new address makes the API server certificate stale.
        let mut moved = c.clone();
        moved.hosts[0].internal_ip = "10.88.0.99".parse().unwrap();
        let stale = pick(&moved, Selection::default()).unwrap();
        assert!(stale.contains(&"apiserver".to_string()), "{stale:?}");
        let err = pick(
            &c,
            Selection {
                certs: vec!["apiserverr".into()],
                hosts: vec!["cp-9".into()],
                ..Selection::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("certificate apiserverr") && err.contains("host cp-9"),
            "{err}"
        );
    }

    #[test]
    fn reissued_certificates_replace_the_state_copies_after_a_backup() {
        let (_d, c) = cluster();
        let (mut p, _) = pki::ensure(&c).unwrap();
        let before = p.leaf(Cert::Apiserver, None).cert.clone();
        let ids = vec!["apiserver".to_string()];
        p.reissue(&c, &ids).unwrap();
        assert_ne!(p.leaf(Cert::Apiserver, None).cert, before);
        let backup = pki::backup(&c.state_dir, c.keep_backups).unwrap();
        pki::save_leaves(&c, &p, &ids).unwrap();
        let dir = pki::pki_dir(&c.state_dir);
        assert_eq!(
            std::fs::read_to_string(dir.join("apiserver.crt")).unwrap(),
            p.leaf(Cert::Apiserver, None).cert
        );
        assert_eq!(
            std::fs::read_to_string(backup.join("pki/apiserver.crt")).unwrap(),
            before
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("apiserver.key")), 0o600);
        assert_eq!(mode(&backup.join("pki/apiserver.key")), 0o600);
        assert_eq!(mode(&backup), 0o700);
        // The others are untouched and the reloaded PKI has no stale entry.
        let (again, report) = pki::ensure(&c).unwrap();
        assert!(report.stale.is_empty() && report.issued.is_empty());
        assert_eq!(
            again.leaf(Cert::Apiserver, None).cert,
            p.leaf(Cert::Apiserver, None).cert
        );
    }
}
