//! Reads certificates back (x509-parser), to tell what an existing file says and whether it
//! still matches what the inventory asks for.

use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

use super::spec::CertSpec;

#[derive(Debug, Clone, serde::Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub common_name: String,
    pub organizations: Vec<String>,
    pub issuer: String,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub server_auth: bool,
    pub client_auth: bool,
    pub key_encipherment: bool,
    /// "ecdsa-p256", "ecdsa-p384", "rsa" or the algorithm's OID.
    pub key_algorithm: String,
}

impl CertInfo {
    /// Subject alternative names as `DNS:x` and `IP:y`, the way openssl prints them.
    pub fn sans(&self) -> Vec<String> {
        self.dns_names
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(self.ip_addresses.iter().map(|i| format!("IP:{i}")))
            .collect()
    }
}

/// A Unix time as RFC 3339 (UTC), the way certificates' validity is shown.
pub fn rfc3339(unix: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

fn der_of(pem_text: &str) -> Result<Vec<u8>> {
    let (_, pem) =
        parse_x509_pem(pem_text.as_bytes()).map_err(|e| anyhow!("not a PEM certificate: {e}"))?;
    Ok(pem.contents)
}

pub fn parse(pem_text: &str) -> Result<CertInfo> {
    let der = der_of(pem_text)?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| anyhow!("not an X.509 certificate: {e}"))?;
    let name_attrs = |name: &X509Name, oid| -> Vec<String> {
        name.iter_by_oid(oid)
            .filter_map(|a| a.as_str().ok().map(String::from))
            .collect()
    };
    let mut info = CertInfo {
        subject: cert.subject().to_string(),
        common_name: name_attrs(
            cert.subject(),
            &x509_parser::oid_registry::OID_X509_COMMON_NAME,
        )
        .into_iter()
        .next()
        .unwrap_or_default(),
        organizations: name_attrs(
            cert.subject(),
            &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME,
        ),
        issuer: cert.issuer().to_string(),
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
        server_auth: false,
        client_auth: false,
        key_encipherment: false,
        key_algorithm: key_algorithm(&cert),
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => info.dns_names.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Some(ip) = ip_from_bytes(b) {
                        info.ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        info.server_auth = eku.value.server_auth;
        info.client_auth = eku.value.client_auth;
    }
    if let Ok(Some(ku)) = cert.key_usage() {
        info.key_encipherment = ku.value.key_encipherment();
    }
    Ok(info)
}

fn key_algorithm(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::EC(p)) => match p.key_size() {
            256 => "ecdsa-p256".into(),
            384 => "ecdsa-p384".into(),
            n => format!("ecdsa-{n}"),
        },
        Ok(x509_parser::public_key::PublicKey::RSA(_)) => "rsa".into(),
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// Whether `cert_pem` carries a valid signature by the CA in `ca_pem`.
pub fn signed_by(cert_pem: &str, ca_pem: &str) -> Result<bool> {
    verifies(&der_of(cert_pem)?, &der_of(ca_pem)?)
}

fn verifies(cert_der: &[u8], ca_der: &[u8]) -> Result<bool> {
    let (_, cert) = X509Certificate::from_der(cert_der).context("certificate")?;
    let (_, ca) = X509Certificate::from_der(ca_der).context("CA certificate")?;
    Ok(cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok())
}

/// Whether one of the certificates of the PEM bundle `cas` signed `cert_pem` (a CA being rotated
/// is a bundle of the old certificate and the new one).
pub fn signed_by_one_of(cert_pem: &str, cas: &str) -> Result<bool> {
    for ca in x509_parser::pem::Pem::iter_from_buffer(cas.as_bytes()) {
        let ca = ca.map_err(|e| anyhow!("not a PEM bundle: {e}"))?;
        if verifies(&der_of(cert_pem)?, &ca.contents)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why an existing certificate no longer matches its spec; empty when it does.
pub fn differences(spec: &CertSpec, info: &CertInfo, key_algorithm: &str, now: i64) -> Vec<String> {
    let mut why = Vec::new();
    if info.common_name != spec.common_name {
        why.push(format!(
            "subject CN is {}, want {}",
            info.common_name, spec.common_name
        ));
    }
    if sorted(&info.organizations) != sorted(&spec.organizations) {
        why.push(format!(
            "organizations are [{}], want [{}]",
            info.organizations.join(", "),
            spec.organizations.join(", ")
        ));
    }
    let want_dns = sorted(&spec.dns_names);
    let have_dns = sorted(&info.dns_names);
    let want_ips = sorted(&spec.ip_addresses);
    let have_ips = sorted(&info.ip_addresses);
    for d in want_dns.iter().filter(|d| !have_dns.contains(d)) {
        why.push(format!("missing SAN DNS:{d}"));
    }
    for i in want_ips.iter().filter(|i| !have_ips.contains(i)) {
        why.push(format!("missing SAN IP:{i}"));
    }
    for d in have_dns.iter().filter(|d| !want_dns.contains(d)) {
        why.push(format!("SAN DNS:{d} no longer wanted"));
    }
    for i in have_ips.iter().filter(|i| !want_ips.contains(i)) {
        why.push(format!("SAN IP:{i} no longer wanted"));
    }
    if info.server_auth != spec.usage.server || info.client_auth != spec.usage.client {
        why.push("extended key usage differs".to_string());
    }
    if info.key_algorithm != key_algorithm {
        why.push(format!(
            "key is {}, pki.key_algorithm is {key_algorithm}",
            info.key_algorithm
        ));
    }
    if info.not_after <= now {
        why.push("expired".to_string());
    }
    why
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}
