//! What `apply` deploys into the cluster once the nodes are Ready: the manifests, rendered like
//! every other file (and kept on the control-plane hosts, so a changed one shows in `plan`).

use anyhow::Result;
use serde::Serialize;

use super::templates::Templates;
use crate::component::Addon;
use crate::inventory::Cluster;

/// One addon's multi-document YAML manifest.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub addon: Addon,
    pub manifest: String,
}

impl Rendered {
    pub fn path(&self) -> String {
        format!("{}/{}.yaml", crate::layout::ADDONS_DIR, self.addon.name())
    }
}

/// The manifests of the addons the inventory turns on, in the table's order.
pub fn addons(t: &Templates, c: &Cluster) -> Result<Vec<Rendered>> {
    let mut out = Vec::new();
    for addon in Addon::ALL {
        let props = addon.props();
        if !(props.enabled)(c) {
            continue;
        }
        let mut inputs = Inputs {
            cluster_domain: &c.network.cluster_domain,
            cluster_dns: c.network.cluster_dns.to_string(),
            forward: match &c.addons.dns_upstreams {
                None => "/etc/resolv.conf".into(),
                Some(list) => list
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            },
            image: (props.image)(c),
            config: Vec::new(),
            config_sha256: String::new(),
        };
        if let Some(config) = props.config {
            let text = t.render(config, &inputs)?;
            inputs.config_sha256 = crate::digest::sha256_hex(text.as_bytes());
            inputs.config = text.lines().map(String::from).collect();
        }
        let manifest = t.render(props.template, &inputs)?;
        out.push(Rendered { addon, manifest });
    }
    Ok(out)
}

/// What an addon's templates are rendered with: the cluster's values addons use.
#[derive(Serialize)]
struct Inputs<'a> {
    cluster_domain: &'a str,
    cluster_dns: String,
    /// Where names outside the cluster go (`forward . <this>`): the upstream resolvers, or the
    /// hosts' resolv.conf; empty: nowhere.
    forward: String,
    image: &'a str,
    /// The addon's configuration, by line, when its row names one.
    config: Vec<String>,
    config_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};

    fn docs(c: &Cluster) -> Vec<serde_json::Value> {
        let t = Templates::load().unwrap();
        let a = addons(&t, c).unwrap();
        serde_saphyr::from_multiple(&a[0].manifest).unwrap()
    }

    fn of<T: serde::de::DeserializeOwned>(docs: &[serde_json::Value], kind: &str) -> T {
        let d = docs.iter().find(|d| d["kind"] == kind).unwrap();
        serde_json::from_value(d.clone()).unwrap()
    }

    #[test]
    fn coredns_serves_the_cluster_domain_at_cluster_dns_from_the_configured_image() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        c.network.cluster_domain = "k8s.example".into();
        let d = docs(&c);
        assert_eq!(
            d.len(),
            6,
            "ServiceAccount, ClusterRole, binding, ConfigMap, Deployment, Service"
        );
        let svc: Service = of(&d, "Service");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.unwrap(), c.network.cluster_dns.to_string());
        let cm: ConfigMap = of(&d, "ConfigMap");
        let corefile = &cm.data.unwrap()["Corefile"];
        assert!(
            corefile.contains("kubernetes k8s.example in-addr.arpa"),
            "{corefile}"
        );
        let dep: Deployment = of(&d, "Deployment");
        let spec = dep.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(
            pod.containers[0].image.as_deref(),
            Some(c.versions.coredns_image.as_str())
        );
        let hash = &spec.template.metadata.unwrap().annotations.unwrap()
            ["provisioner.k8s.io/corefile-sha256"];
        assert_eq!(hash, &crate::digest::sha256_hex(corefile.as_bytes()));
    }

    #[test]
    fn a_changed_corefile_changes_the_pod_template() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        let hash = |c: &Cluster| {
            let dep: Deployment = of(&docs(c), "Deployment");
            dep.spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()["provisioner.k8s.io/corefile-sha256"]
                .clone()
        };
        let before = hash(&c);
        c.network.cluster_domain = "other.local".into();
        assert_ne!(hash(&c), before);
    }

    #[test]
    fn other_names_go_to_the_hosts_resolver_the_given_servers_or_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        let corefile = |c: &Cluster| {
            let cm: ConfigMap = of(&docs(c), "ConfigMap");
            cm.data.unwrap()["Corefile"].clone()
        };
        assert!(corefile(&c).contains("forward . /etc/resolv.conf {"));
        c.addons.dns_upstreams = Some(vec![
            "10.0.0.53".parse().unwrap(),
            "10.0.1.53".parse().unwrap(),
        ]);
        assert!(corefile(&c).contains("forward . 10.0.0.53 10.0.1.53 {"));
        c.addons.dns_upstreams = Some(vec![]);
        let cf = corefile(&c);
        assert!(!cf.contains("forward"), "{cf}");
        assert!(cf.contains("kubernetes cluster.local"), "{cf}");
    }

    #[test]
    fn every_addon_of_the_table_is_rendered_when_turned_on_and_gated() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::inventory::bundled_for_test(dir.path());
        let rendered = addons(&Templates::load().unwrap(), &c).unwrap();
        let names: Vec<&str> = rendered.iter().map(|r| r.addon.name()).collect();
        let all: Vec<&str> = Addon::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names, all);
        for r in &rendered {
            assert!(
                !r.addon.props().checks.is_empty(),
                "{} has no gate",
                r.addon.name()
            );
            let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&r.manifest).unwrap();
            assert!(!docs.is_empty(), "{} renders nothing", r.path());
        }
    }

    #[test]
    fn turned_off_it_is_not_rendered() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::inventory::bundled_for_test(dir.path());
        c.addons.coredns = false;
        assert!(addons(&Templates::load().unwrap(), &c).unwrap().is_empty());
    }
}
