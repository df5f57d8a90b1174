//! The kubelet's effective settings: KubeletConfiguration (strict), overridden by the
//! deprecated flags as in the real kubelet, checked against what the provisioner promises.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_yaml::Value;

use crate::config::{self, value_at};
use crate::filecheck::FileKind;
use crate::flags::{parse_bool, Flags};
use crate::identity::{Identity, NODES, NODE_PREFIX};
use crate::kubeconfig::Kubeconfig;
use crate::{files, say};

pub const FILES: &[(&str, FileKind)] = &[
    ("config", FileKind::Config("KubeletConfiguration")),
    ("kubeconfig", FileKind::Kubeconfig),
    ("bootstrap-kubeconfig", FileKind::Exists),
    ("client-ca-file", FileKind::Certs),
    ("tls-cert-file", FileKind::Certs),
    ("tls-private-key-file", FileKind::Key),
];

pub const PAIRS: &[(&str, &str)] = &[("tls-cert-file", "tls-private-key-file")];

pub struct Settings {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub kubeconfig: Kubeconfig,
    pub tls_cert: String,
    pub tls_key: String,
    pub client_ca: String,
    pub tls_min_version: Option<String>,
    pub runtime_socket: PathBuf,
    pub serve: SocketAddr,
    pub healthz: Option<SocketAddr>,
    pub register: bool,
    pub status_every: Duration,
    pub lease_seconds: u64,
}

/// A setting: the flag if given (the real kubelet lets flags win), else the config field.
struct Source<'a> {
    flags: &'a Flags,
    doc: &'a Value,
}

impl Source<'_> {
    fn str(&self, flag: Option<&str>, field: &[&str]) -> Option<String> {
        flag.and_then(|f| self.flags.get(f))
            .map(str::to_string)
            .or_else(|| {
                value_at(self.doc, field)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    }

    fn int(&self, flag: Option<&str>, field: &[&str]) -> Option<i64> {
        flag.and_then(|f| self.flags.get(f))
            .and_then(|v| v.parse().ok())
            .or_else(|| value_at(self.doc, field).and_then(Value::as_i64))
    }

    fn bool(&self, flag: Option<&str>, field: &[&str]) -> Option<bool> {
        flag.and_then(|f| self.flags.get(f))
            .and_then(parse_bool)
            .or_else(|| value_at(self.doc, field).and_then(Value::as_bool))
    }
}

/// Active swap devices (read from the real host's /proc, never under STANDIN_ROOT: it is host
/// state, not a provisioned file).
fn swap_devices() -> Vec<String> {
    std::fs::read_to_string("/proc/swaps")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn cgroup_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

pub fn load(flags: &Flags) -> Result<Settings> {
    let Some(config_path) = flags.path("config") else {
        bail!("--config is required: without it the kubelet runs with anonymous access and no webhook authorization, which the provisioner never does");
    };
    let Some(kubeconfig_path) = flags.path("kubeconfig") else {
        bail!("--kubeconfig is required: the stand-in does not do TLS bootstrapping");
    };
    let doc = config::load("--config", config_path, "KubeletConfiguration")?;
    let shown = format!("--config {config_path}");
    let s = Source { flags, doc: &doc };

    // What the provisioner promises about every kubelet; refuse anything else.
    let cgroup_driver = s
        .str(Some("cgroup-driver"), &["cgroupDriver"])
        .unwrap_or_else(|| "cgroupfs".into());
    if cgroup_driver != "systemd" {
        bail!("{shown}: cgroupDriver is {cgroup_driver:?}; the provisioner's kubelets use \"systemd\" (as containerd does)");
    }
    if s.bool(
        Some("anonymous-auth"),
        &["authentication", "anonymous", "enabled"],
    ) == Some(true)
    {
        bail!("{shown}: authentication.anonymous.enabled is true; the provisioner's kubelets refuse anonymous requests");
    }
    let mode = s
        .str(Some("authorization-mode"), &["authorization", "mode"])
        .unwrap_or_else(|| "Webhook".into());
    if mode != "Webhook" {
        bail!("{shown}: authorization.mode is {mode:?}; the provisioner's kubelets use Webhook");
    }
    if s.int(Some("read-only-port"), &["readOnlyPort"])
        .unwrap_or(0)
        != 0
    {
        bail!("{shown}: readOnlyPort must be 0 (the unauthenticated read-only port stays closed)");
    }
    for (flag, field) in [
        ("rotate-certificates", "rotateCertificates"),
        ("rotate-server-certificates", "serverTLSBootstrap"),
    ] {
        if s.bool(Some(flag), &[field]) == Some(true) {
            bail!("{shown}: {field} is true; certificate rotation through CSRs is not done by the stand-in");
        }
    }
    // 1.35 made failCgroupV1 default to true.
    let fail_v1 = s
        .bool(Some("fail-cgroupv1"), &["failCgroupV1"])
        .unwrap_or(crate::version::minor() >= 35);
    if fail_v1 && !cgroup_v2() {
        bail!("kubelet is configured to not run on a host using cgroup v1 (failCgroupV1); this host has no cgroup v2 hierarchy at /sys/fs/cgroup");
    }

    if s.bool(Some("fail-swap-on"), &["failSwapOn"])
        .unwrap_or(true)
    {
        let swaps = swap_devices();
        if !swaps.is_empty() {
            bail!("running with swap on is not supported, please disable swap or set failSwapOn to false (swap: {swaps:?})");
        }
    }
    let swap_behavior = s
        .str(None, &["memorySwap", "swapBehavior"])
        .unwrap_or_default();
    if !["", "NoSwap", "LimitedSwap"].contains(&swap_behavior.as_str()) {
        bail!("{shown}: memorySwap.swapBehavior {swap_behavior:?} must be NoSwap or LimitedSwap");
    }

    let tls_cert = s
        .str(Some("tls-cert-file"), &["tlsCertFile"])
        .filter(|v| !v.is_empty());
    let tls_key = s
        .str(Some("tls-private-key-file"), &["tlsPrivateKeyFile"])
        .filter(|v| !v.is_empty());
    let (Some(tls_cert), Some(tls_key)) = (tls_cert, tls_key) else {
        bail!("{shown}: tlsCertFile and tlsPrivateKeyFile are required (the stand-in never serves a self-signed certificate)");
    };
    files::load_pair("tlsCertFile", &tls_cert, "tlsPrivateKeyFile", &tls_key)?;
    let Some(client_ca) = s
        .str(
            Some("client-ca-file"),
            &["authentication", "x509", "clientCAFile"],
        )
        .filter(|v| !v.is_empty())
    else {
        bail!("{shown}: authentication.x509.clientCAFile is required: the API server authenticates to the kubelet with a client certificate");
    };
    files::load_certs("authentication.x509.clientCAFile", &client_ca)?;

    let endpoint = s
        .str(
            Some("container-runtime-endpoint"),
            &["containerRuntimeEndpoint"],
        )
        .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into());
    let Some(socket) = endpoint.strip_prefix("unix://") else {
        bail!("{shown}: containerRuntimeEndpoint {endpoint:?} is not a unix:// socket");
    };

    let node_name = flags
        .path("hostname-override")
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_lowercase())
                .unwrap_or_default()
        });
    if node_name.is_empty() {
        bail!("cannot determine the node name: give --hostname-override");
    }
    let Some(node_ip) = flags.path("node-ip") else {
        bail!("--node-ip is required by the stand-in (it does not guess the node's address)");
    };
    let node_ip: IpAddr = node_ip
        .split(',')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("--node-ip {node_ip:?} is not an IP address"))?;

    let kubeconfig = Kubeconfig::load("--kubeconfig", kubeconfig_path)?;
    check_node_identity(&kubeconfig.identity, &node_name, kubeconfig_path)?;

    let address: IpAddr = s
        .str(Some("address"), &["address"])
        .unwrap_or_else(|| "0.0.0.0".into())
        .parse()
        .context("address is not an IP address")?;
    let port = s.int(Some("port"), &["port"]).unwrap_or(10250);
    let port = u16::try_from(port).context("port out of range")?;
    let healthz_port = s
        .int(Some("healthz-port"), &["healthzPort"])
        .unwrap_or(10248);
    let healthz_ip: IpAddr = s
        .str(Some("healthz-bind-address"), &["healthzBindAddress"])
        .unwrap_or_else(|| "127.0.0.1".into())
        .parse()
        .context("healthzBindAddress is not an IP address")?;
    let healthz = (healthz_port != 0)
        .then(|| u16::try_from(healthz_port).map(|p| SocketAddr::new(healthz_ip, p)))
        .transpose()
        .context("healthzPort out of range")?;
    let status_every = match value_at(&doc, &["nodeStatusUpdateFrequency"]).and_then(Value::as_str)
    {
        Some(d) => crate::timefmt::parse_go_duration(d).unwrap_or(Duration::from_secs(5)),
        None => Duration::from_secs(5),
    }
    .max(Duration::from_secs(1));
    say!("node {node_name:?} at {node_ip}, runtime {endpoint}, cgroup driver {cgroup_driver}");
    Ok(Settings {
        node_name,
        node_ip,
        kubeconfig,
        tls_cert,
        tls_key,
        client_ca,
        tls_min_version: s.str(Some("tls-min-version"), &["tlsMinVersion"]),
        runtime_socket: files::host_path(socket),
        serve: SocketAddr::new(address, port),
        healthz,
        register: s
            .bool(Some("register-node"), &["registerNode"])
            .unwrap_or(true),
        status_every,
        lease_seconds: s
            .int(None, &["nodeLeaseDurationSeconds"])
            .unwrap_or(40)
            .max(1) as u64,
    })
}

/// The kubeconfig must make us `system:node:<node name>` in `system:nodes`, or the Node
/// authorizer and NodeRestriction refuse everything the kubelet does.
pub fn check_node_identity(id: &Identity, node_name: &str, path: &str) -> Result<()> {
    let want = format!("{NODE_PREFIX}{node_name}");
    if id.user != want || !id.in_group(NODES) {
        bail!(
            "--kubeconfig {path}: the client certificate is {id}, but this kubelet is node {node_name:?} \
             and must authenticate as user {want:?} in group {NODES:?}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_name_real_flags() {
        crate::filecheck::assert_table_flags_exist("kubelet", FILES, PAIRS);
    }

    #[test]
    fn node_identity_must_match() {
        let id = |u: &str, g: &[&str]| Identity {
            user: u.into(),
            groups: g.iter().map(|s| s.to_string()).collect(),
        };
        assert!(check_node_identity(&id("system:node:n1", &[NODES]), "n1", "k").is_ok());
        assert!(check_node_identity(&id("system:node:n2", &[NODES]), "n1", "k").is_err());
        assert!(check_node_identity(&id("system:node:n1", &[]), "n1", "k").is_err());
    }
}
