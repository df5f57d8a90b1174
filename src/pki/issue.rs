//! Creates keys and certificates with rcgen.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::spec::{Ca, CertSpec};
use super::Pem;
use crate::inventory::{KeyAlgorithm, PkiSettings};

/// Certificates start a little in the past so that hosts whose clocks lag slightly accept them
/// (kubeadm uses the same five minutes).
const BACKDATE: Duration = Duration::minutes(5);

pub fn new_key(alg: KeyAlgorithm) -> Result<KeyPair> {
    let sig = match alg {
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
    };
    KeyPair::generate_for(sig).context("generating a key pair")
}

fn base_params(cn: &str, orgs: &[String], days: u32) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(i64::from(days));
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).context("reading the system's random source")?;
    serial[0] &= 0x7f; // a positive INTEGER
    p.serial_number = Some(SerialNumber::from_slice(&serial));
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

pub fn new_ca(ca: Ca, settings: &PkiSettings) -> Result<Pem> {
    let key = new_key(settings.algorithm)?;
    let mut p = base_params(ca.common_name(), &[], settings.ca_validity_days)?;
    p.use_authority_key_identifier_extension = false;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let cert = p
        .self_signed(&key)
        .with_context(|| format!("creating CA {}", ca.name()))?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

pub fn new_leaf(spec: &CertSpec, ca: &Pem, settings: &PkiSettings) -> Result<Pem> {
    let ca_key = KeyPair::from_pem(&ca.key)
        .with_context(|| format!("reading the {} key", spec.ca.name()))?;
    // During a CA rotation the CA "certificate" is a trust bundle whose first member signs.
    let issuer = x509_parser::pem::Pem::iter_from_buffer(ca.cert.as_bytes())
        .next()
        .ok_or_else(|| anyhow::anyhow!("no PEM block"))
        .and_then(|pem| Ok(Issuer::from_ca_cert_der(&pem?.contents.into(), ca_key)?))
        .with_context(|| format!("reading the {} certificate", spec.ca.name()))?;
    let key = new_key(settings.algorithm)?;
    let mut p = base_params(
        &spec.common_name,
        &spec.organizations,
        settings.cert_validity_days,
    )?;
    // ECDSA keys cannot encipher keys, so keyEncipherment is never set.
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.usage.server {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.usage.client {
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for d in &spec.dns_names {
        p.subject_alt_names.push(SanType::DnsName(
            d.clone().try_into().with_context(|| format!("SAN {d}"))?,
        ));
    }
    for ip in &spec.ip_addresses {
        p.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    if crate::testhook::issue_expired() {
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(2);
        p.not_after = now - Duration::days(1);
    }
    let cert = p
        .signed_by(&key, &issuer)
        .with_context(|| format!("signing {}", spec.id()))?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}
