//! Startup validation of the kube-apiserver command line and every file it names.

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use base64::Engine;
use rustls::{ClientConfig, ServerConfig};
use serde_json::Value as Json;
use serde_yaml::Value;

use super::audit::{validate_policy, Audit};
use super::kubelet_link::KubeletLink;
use super::{bind_addresses, str_of};
use crate::filecheck::{self, FileKind};
use crate::flags::Flags;
use crate::{config, files, say, tls};

/// Every file-valued flag of kube-apiserver and how the real one reads it.
pub const FILES: &[(&str, FileKind)] = &[
    ("client-ca-file", FileKind::Certs),
    ("tls-cert-file", FileKind::Certs),
    ("tls-private-key-file", FileKind::Key),
    ("etcd-cafile", FileKind::Certs),
    ("etcd-certfile", FileKind::Certs),
    ("etcd-keyfile", FileKind::Key),
    ("kubelet-client-certificate", FileKind::Certs),
    ("kubelet-client-key", FileKind::Key),
    ("kubelet-certificate-authority", FileKind::Certs),
    ("proxy-client-cert-file", FileKind::Certs),
    ("proxy-client-key-file", FileKind::Key),
    ("requestheader-client-ca-file", FileKind::Certs),
    ("service-account-key-file", FileKind::PublicKeys),
    ("service-account-signing-key-file", FileKind::Key),
    ("oidc-ca-file", FileKind::Certs),
    (
        "encryption-provider-config",
        FileKind::Config("EncryptionConfiguration"),
    ),
    ("audit-policy-file", FileKind::Config("Policy")),
    ("admission-control-config-file", FileKind::Exists),
    ("authentication-config", FileKind::Exists),
    ("authorization-config", FileKind::Exists),
    ("authentication-token-webhook-config-file", FileKind::Exists),
    ("authorization-webhook-config-file", FileKind::Exists),
    ("audit-webhook-config-file", FileKind::Exists),
    ("egress-selector-config-file", FileKind::Exists),
    ("tracing-config-file", FileKind::Exists),
    ("token-auth-file", FileKind::Exists),
];

pub const PAIRS: &[(&str, &str)] = &[
    ("tls-cert-file", "tls-private-key-file"),
    ("etcd-certfile", "etcd-keyfile"),
    ("kubelet-client-certificate", "kubelet-client-key"),
    ("proxy-client-cert-file", "proxy-client-key-file"),
];

/// Admission plugin names of kube-apiserver 1.35 (`--enable-admission-plugins` help text).
const ADMISSION_PLUGINS: &[&str] = &[
    "AlwaysAdmit",
    "AlwaysDeny",
    "AlwaysPullImages",
    "CertificateApproval",
    "CertificateSigning",
    "CertificateSubjectRestriction",
    "ClusterTrustBundleAttest",
    "DefaultIngressClass",
    "DefaultStorageClass",
    "DefaultTolerationSeconds",
    "DenyServiceExternalIPs",
    "EventRateLimit",
    "ExtendedResourceToleration",
    "ImagePolicyWebhook",
    "LimitPodHardAntiAffinityTopology",
    "LimitRanger",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionWebhook",
    "NamespaceAutoProvision",
    "NamespaceExists",
    "NamespaceLifecycle",
    "NodeRestriction",
    "OwnerReferencesPermissionEnforcement",
    "PersistentVolumeClaimResize",
    "PodNodeSelector",
    "PodSecurity",
    "PodTolerationRestriction",
    "PodTopologyLabels",
    "Priority",
    "ResourceQuota",
    "RuntimeClass",
    "ServiceAccount",
    "StorageObjectInUseProtection",
    "TaintNodesByCondition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
];

/// Added in 1.36.
const ADMISSION_PLUGINS_1_36: &[&str] = &["NodeDeclaredFeatureValidator"];

/// What startup validation yields.
pub struct Validated {
    pub bind: Vec<std::net::SocketAddr>,
    pub advertise: String,
    pub tls: Arc<ServerConfig>,
    pub etcd_servers: Vec<String>,
    pub etcd_tls: Arc<ClientConfig>,
    pub kubelet: KubeletLink,
    pub audit: Option<Audit>,
}

pub fn validate(flags: &Flags) -> Result<Validated> {
    // The real API server refuses to start without these.
    for f in [
        "etcd-servers",
        "service-account-issuer",
        "service-account-key-file",
        "service-account-signing-key-file",
    ] {
        if flags.path(f).is_none() {
            bail!("--{f} is required");
        }
    }
    filecheck::require(
        flags,
        &["client-ca-file", "tls-cert-file", "tls-private-key-file"],
        "the stand-in serves only with the provisioner's certificate and authenticates only by client certificate",
    )?;
    check_modes(flags)?;
    check_service_cidr(flags)?;
    filecheck::check(flags, FILES)?;
    filecheck::check_pairs(flags, PAIRS)?;
    check_service_account_keys(flags)?;
    check_front_proxy(flags)?;
    if let Some(p) = flags.path("encryption-provider-config") {
        let doc = config::load("--encryption-provider-config", p, "EncryptionConfiguration")?;
        check_encryption(&format!("--encryption-provider-config {p}"), &doc)?;
    }
    let audit = match (
        flags.path("audit-policy-file"),
        flags.path("audit-log-path"),
    ) {
        (Some(policy), Some(log)) => {
            let doc = config::load("--audit-policy-file", policy, "Policy")?;
            let doc: Json = serde_json::to_value(&doc)?;
            validate_policy(&format!("--audit-policy-file {policy}"), &doc)?;
            let a = Audit::open(&doc, log)?;
            say!("audit: policy {policy}, log {log}");
            Some(a)
        }
        (Some(policy), None) => {
            say!("audit: policy {policy} but no --audit-log-path: nothing is logged (as the real one)");
            None
        }
        _ => None,
    };

    let port: u16 = flags
        .get("secure-port")
        .unwrap_or("6443")
        .parse()
        .context("--secure-port is not a port number")?;
    if port == 0 {
        bail!("--secure-port=0 turns off serving; the stand-in has nothing else to do");
    }
    let bind = bind_addresses(flags, port)?;
    let advertise = format!(
        "{}:{port}",
        flags
            .path("advertise-address")
            .map(str::to_string)
            .unwrap_or_else(|| bind[0].ip().to_string())
    );

    let (chain, key) = files::load_pair(
        "--tls-cert-file",
        flags.path("tls-cert-file").unwrap_or_default(),
        "--tls-private-key-file",
        flags.path("tls-private-key-file").unwrap_or_default(),
    )?;
    let client_ca = files::load_certs(
        "--client-ca-file",
        flags.path("client-ca-file").unwrap_or_default(),
    )?;
    let tls = tls::server_config(
        chain,
        key,
        tls::ClientAuth::Required("--client-ca-file", &client_ca),
        flags.get("tls-min-version"),
    )?;

    let etcd_servers = flags.list("etcd-servers");
    let etcd_ca = flags
        .path("etcd-cafile")
        .context("--etcd-cafile is required for https etcd servers (the stand-in does not use the system roots)")?;
    let etcd_ca = files::load_certs("--etcd-cafile", etcd_ca)?;
    let etcd_client = client_pair(flags, "etcd-certfile", "etcd-keyfile")?;
    if etcd_client.is_none() {
        say!("no --etcd-certfile/--etcd-keyfile: etcd with client-cert-auth will refuse us");
    }
    let etcd_tls = tls::client_config("--etcd-cafile", &etcd_ca, etcd_client)?;

    let kubelet_tls = match flags.path("kubelet-certificate-authority") {
        Some(ca) => {
            let ca = files::load_certs("--kubelet-certificate-authority", ca)?;
            let client = client_pair(flags, "kubelet-client-certificate", "kubelet-client-key")?;
            Some(tls::client_config(
                "--kubelet-certificate-authority",
                &ca,
                client,
            )?)
        }
        None => None,
    };
    let address_types = match flags.list("kubelet-preferred-address-types") {
        l if l.is_empty() => [
            "Hostname",
            "InternalDNS",
            "InternalIP",
            "ExternalDNS",
            "ExternalIP",
        ]
        .map(String::from)
        .to_vec(),
        l => l,
    };
    Ok(Validated {
        bind,
        advertise,
        tls,
        etcd_servers,
        etcd_tls,
        kubelet: KubeletLink {
            tls: kubelet_tls,
            address_types,
        },
        audit,
    })
}

type Pair = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn client_pair(flags: &Flags, cert: &str, key: &str) -> Result<Option<Pair>> {
    match (flags.path(cert), flags.path(key)) {
        (Some(c), Some(k)) => Ok(Some(files::load_pair(
            &format!("--{cert}"),
            c,
            &format!("--{key}"),
            k,
        )?)),
        _ => Ok(None),
    }
}

/// The authorization modes and admission plugins the stand-in implements, which are the ones
/// the provisioner promises.
fn check_modes(flags: &Flags) -> Result<()> {
    if flags.path("authorization-config").is_some() {
        bail!("--authorization-config is not implemented by the stand-in; use --authorization-mode=Node,RBAC");
    }
    let modes = flags.list("authorization-mode");
    const KNOWN: [&str; 6] = [
        "AlwaysAllow",
        "AlwaysDeny",
        "ABAC",
        "Webhook",
        "RBAC",
        "Node",
    ];
    for m in &modes {
        if !KNOWN.contains(&m.as_str()) {
            bail!("--authorization-mode: authorization mode {m:?} is not a valid mode");
        }
    }
    if !(modes.iter().any(|m| m == "Node") && modes.iter().any(|m| m == "RBAC")) {
        bail!("--authorization-mode must include Node and RBAC (got {modes:?}; the real default is AlwaysAllow)");
    }
    if let Some(other) = modes.iter().find(|m| *m != "Node" && *m != "RBAC") {
        bail!(
            "--authorization-mode {other} is not implemented by the stand-in (only Node and RBAC)"
        );
    }
    let minor = crate::version::minor();
    let known = |p: &str| {
        ADMISSION_PLUGINS.contains(&p) || (minor >= 36 && ADMISSION_PLUGINS_1_36.contains(&p))
    };
    let enabled = flags.list("enable-admission-plugins");
    let disabled = flags.list("disable-admission-plugins");
    for p in enabled.iter().chain(&disabled) {
        if !known(p) {
            bail!("admission plugin {p:?} is unknown");
        }
    }
    if !enabled.iter().any(|p| p == "NodeRestriction")
        || disabled.iter().any(|p| p == "NodeRestriction")
    {
        bail!("--enable-admission-plugins must include NodeRestriction (and --disable-admission-plugins must not)");
    }
    if flags.is_set("admission-control") {
        bail!("--admission-control is deprecated and not implemented by the stand-in; use --enable-admission-plugins");
    }
    Ok(())
}

/// `--service-cluster-ip-range`: one CIDR per IP family, IPv4 masks of /12 or longer.
fn check_service_cidr(flags: &Flags) -> Result<()> {
    let cidrs = flags.list("service-cluster-ip-range");
    if cidrs.len() > 2 {
        bail!("--service-cluster-ip-range: at most two CIDRs (one per IP family)");
    }
    for c in cidrs {
        let (ip, prefix) = c
            .split_once('/')
            .with_context(|| format!("--service-cluster-ip-range {c:?} is not a CIDR"))?;
        let ip: IpAddr = ip
            .parse()
            .with_context(|| format!("--service-cluster-ip-range {c:?} is not a CIDR"))?;
        let prefix: u32 = prefix
            .parse()
            .with_context(|| format!("--service-cluster-ip-range {c:?} is not a CIDR"))?;
        let (max, min) = if ip.is_ipv4() { (32, 12) } else { (128, 108) };
        if prefix > max || prefix < min {
            bail!("--service-cluster-ip-range {c} is too large or invalid (prefix must be /{min}../{max})");
        }
    }
    Ok(())
}

/// The signing key's public half must be among the verification keys, or tokens the API server
/// issues would not verify.
fn check_service_account_keys(flags: &Flags) -> Result<()> {
    let signing = flags
        .path("service-account-signing-key-file")
        .unwrap_or_default();
    let key = files::load_key("--service-account-signing-key-file", signing)?;
    let public = files::key_spki(&key)?;
    let mut verify = Vec::new();
    for p in flags.all("service-account-key-file") {
        verify.extend(files::load_public_keys("--service-account-key-file", &p)?);
    }
    if !verify.contains(&public) {
        bail!(
            "--service-account-signing-key-file {signing}: its public key is in no \
             --service-account-key-file, so tokens it signs would not verify"
        );
    }
    Ok(())
}

/// The front proxy client must be trusted by --requestheader-client-ca-file and be one of
/// --requestheader-allowed-names, or aggregated APIs would reject every proxied request.
fn check_front_proxy(flags: &Flags) -> Result<()> {
    let (Some(cert), Some(ca)) = (
        flags.path("proxy-client-cert-file"),
        flags.path("requestheader-client-ca-file"),
    ) else {
        return Ok(());
    };
    let chain = files::load_certs("--proxy-client-cert-file", cert)?;
    let cas = files::load_certs("--requestheader-client-ca-file", ca)?;
    tls::verify_client_cert(&cas, &chain).with_context(|| {
        format!("--proxy-client-cert-file {cert} is not a client certificate of --requestheader-client-ca-file {ca}")
    })?;
    let allowed = flags.list("requestheader-allowed-names");
    let (cn, _) = files::subject(&chain[0])?;
    if !allowed.is_empty() && !allowed.contains(&cn) {
        bail!("--proxy-client-cert-file {cert}: CN {cn:?} is not in --requestheader-allowed-names {allowed:?}");
    }
    Ok(())
}

/// What the real EncryptionConfiguration loader checks beyond strict decoding.
pub fn check_encryption(shown: &str, doc: &Value) -> Result<()> {
    let doc: Json = serde_json::to_value(doc)?;
    let resources = doc["resources"].as_array().filter(|r| !r.is_empty());
    let Some(resources) = resources else {
        bail!("{shown}: resources: Required value: EncryptionConfiguration.Resources must contain at least one resource");
    };
    for (i, r) in resources.iter().enumerate() {
        if r["resources"].as_array().is_none_or(|l| l.is_empty()) {
            bail!("{shown}: resources[{i}].resources: Required value");
        }
        let providers = r["providers"].as_array().filter(|p| !p.is_empty());
        let Some(providers) = providers else {
            bail!("{shown}: resources[{i}].providers: Required value");
        };
        for (j, p) in providers.iter().enumerate() {
            let at = format!("{shown}: resources[{i}].providers[{j}]");
            let kinds: Vec<&String> = p
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            if kinds.len() != 1 {
                bail!("{at}: exactly one provider must be configured, got {kinds:?}");
            }
            let kind = kinds[0].as_str();
            let lengths: &[usize] = match kind {
                "aescbc" | "aesgcm" => &[16, 24, 32],
                "secretbox" => &[32],
                _ => continue,
            };
            let keys = p[kind]["keys"].as_array().filter(|k| !k.is_empty());
            let Some(keys) = keys else {
                bail!("{at}.{kind}.keys: Required value");
            };
            for (k, key) in keys.iter().enumerate() {
                if str_of(key, "name").is_empty() {
                    bail!("{at}.{kind}.keys[{k}].name: Required value");
                }
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(str_of(key, "secret"))
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "{at}.{kind}.keys[{k}].secret: secrets must be base64 encoded"
                        )
                    })?;
                if !lengths.contains(&secret.len()) {
                    bail!(
                        "{at}.{kind}.keys[{k}].secret: secret is not of the expected length, got {}, expected one of {lengths:?}",
                        secret.len()
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_name_real_flags() {
        filecheck::assert_table_flags_exist("kube-apiserver", FILES, PAIRS);
    }

    fn enc(text: &str) -> Result<()> {
        let doc = config::decode_strict(text, "enc.yaml", "EncryptionConfiguration", 35)?;
        check_encryption("enc.yaml", &doc)
    }

    const HEAD: &str = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n";

    #[test]
    fn encryption_keys_are_checked() {
        let key32 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let good = format!(
            "{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      - name: key1\n        secret: {key32}\n  - identity: {{}}\n"
        );
        enc(&good).unwrap();
        let short = good.replace(&key32, "c2hvcnQ=");
        assert!(enc(&short)
            .unwrap_err()
            .to_string()
            .contains("expected length"));
        let two = format!("{HEAD}resources:\n- resources: [secrets]\n  providers:\n  - identity: {{}}\n    aescbc: {{keys: []}}\n");
        assert!(enc(&two)
            .unwrap_err()
            .to_string()
            .contains("exactly one provider"));
        assert!(enc(&format!("{HEAD}resources: []\n")).is_err());
    }

    #[test]
    fn modes_and_plugins() {
        let parse = |a: &[&str]| match crate::flags::parse(
            "kube-apiserver",
            35,
            &a.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
        {
            crate::flags::Parsed::Run(f) => f,
            _ => unreachable!(),
        };
        let ok = parse(&[
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
        ]);
        check_modes(&ok).unwrap();
        let rbac_only = parse(&[
            "--authorization-mode=RBAC",
            "--enable-admission-plugins=NodeRestriction",
        ]);
        assert!(check_modes(&rbac_only).is_err());
        let no_nr = parse(&["--authorization-mode=Node,RBAC"]);
        assert!(check_modes(&no_nr).is_err());
        let typo = parse(&[
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestrictoin",
        ]);
        assert!(check_modes(&typo)
            .unwrap_err()
            .to_string()
            .contains("unknown"));
    }
}
