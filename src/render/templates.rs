//! The templates, compiled into the binary so that one file is all an operator installs.

use anyhow::{Context, Result};
use serde::Serialize;
use tera::Tera;

macro_rules! template {
    ($dir:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!("../../", $dir, "/", $name, ".tera")),
        )
    };
}

const TEMPLATES: &[(&str, &str)] = &[
    template!("templates", "kubeconfig.yaml"),
    template!("templates", "kubelet-config.yaml"),
    template!("templates", "kube-proxy-config.yaml"),
    template!("templates", "kube-scheduler.yaml"),
    template!("templates", "encryption-config.yaml"),
    template!("templates", "audit-policy.yaml"),
    template!("templates", "containerd-config.toml"),
    template!("templates", "cni-bridge.conflist"),
    template!("templates", "cni-loopback.conf"),
    template!("templates", "sysctl.conf"),
    template!("templates", "modules-load.conf"),
    template!("templates", "coredns-corefile"),
    template!("templates", "coredns.yaml"),
    template!("templates", "etcd-snapshot.sh"),
    template!("templates", "etcd-bootstrap.env"),
    template!("templates", "etcd-sysusers.conf"),
    template!("templates", "pod-routes.sh"),
    template!("templates", "kube-api-lb.json"),
    template!("templates", "containerd-hosts.toml"),
    template!("systemd-units", "etcd.service"),
    template!("systemd-units", "kube-apiserver.service"),
    template!("systemd-units", "kube-controller-manager.service"),
    template!("systemd-units", "kube-scheduler.service"),
    template!("systemd-units", "kube-api-lb.service"),
    template!("systemd-units", "containerd.service"),
    template!("systemd-units", "kubelet.service"),
    template!("systemd-units", "kube-proxy.service"),
    template!("systemd-units", "kube-router.service"),
    template!("systemd-units", "pod-routes.service"),
    template!("systemd-units", "etcd-snapshot.timer"),
    template!("systemd-units", "etcd-snapshot.service"),
];

pub struct Templates(Tera);

impl Templates {
    pub fn load() -> Result<Self> {
        let mut tera = Tera::default();
        // Nothing rendered here is HTML; escaping would corrupt keys and URLs.
        tera.autoescape_on(vec![]);
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .context("compiling the built-in templates")?;
        Ok(Templates(tera))
    }

    pub fn render(&self, name: &str, ctx: &impl Serialize) -> Result<String> {
        let mut ctx = tera::Context::from_serialize(ctx).context("building a template context")?;
        let paths: std::collections::BTreeMap<&str, &str> =
            crate::layout::FOR_TEMPLATES.iter().copied().collect();
        ctx.insert("paths", &paths);
        self.0
            .render(name, &ctx)
            .with_context(|| format!("rendering template {name}"))
    }
}
