//! rustls configurations (ring provider) for the links the real components use.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Protocol versions for a `--tls-min-version` / `tlsMinVersion` value. TLS 1.0 and 1.1 are
/// accepted by the real components; rustls cannot speak them, so they start at 1.2 here.
pub fn versions(min: Option<&str>) -> Result<&'static [&'static SupportedProtocolVersion]> {
    static ALL: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match min.unwrap_or("") {
        "" | "VersionTLS10" | "VersionTLS11" | "VersionTLS12" => Ok(ALL),
        "VersionTLS13" => Ok(TLS13),
        other => bail!(
            "unknown TLS version {other:?} (VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13)"
        ),
    }
}

fn roots(what: &str, cas: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store
            .add(ca.clone())
            .with_context(|| format!("{what}: certificate cannot be a trust anchor"))?;
    }
    Ok(Arc::new(store))
}

/// Who may connect to a server.
pub enum ClientAuth<'a> {
    /// No client certificates asked for.
    None,
    /// Asked for and verified if presented (the real health endpoints' behaviour).
    Optional(&'a str, &'a [CertificateDer<'static>]),
    /// Required, signed by one of these CAs.
    Required(&'a str, &'a [CertificateDer<'static>]),
}

/// A TLS server config serving `chain`/`key`. HTTP/1.1 only: every client here speaks it.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    auth: ClientAuth<'_>,
    min_version: Option<&str>,
) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(min_version)?)?;
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(what, cas) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(what, cas)?, provider)
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::Required(what, cas) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(roots(what, cas)?, provider).build()?,
        ),
    };
    let mut cfg = builder.with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A TLS client config trusting only `cas`, optionally presenting a client certificate.
pub fn client_config(
    what: &str,
    cas: &[CertificateDer<'static>],
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(what, cas)?);
    let mut cfg = match client {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The name a server certificate must carry: an IP address SAN for addresses, a DNS SAN else.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    ServerName::try_from(host.to_string())
        .with_context(|| format!("{host:?} is not a valid server name"))
}

/// Whether `leaf` would be accepted as a client certificate by a server trusting `cas`: the
/// same webpki check the TLS handshake makes.
pub fn verify_client_cert(
    cas: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
) -> Result<()> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots("CA", cas)?, provider()).build()?;
    verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now())?;
    Ok(())
}

/// Whether `chain` would be accepted as the server certificate for `name` by a client trusting
/// `cas`.
pub fn verify_server_cert(
    cas: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    name: &str,
) -> Result<()> {
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots("CA", cas)?, provider()).build()?;
    verifier.verify_server_cert(
        &chain[0],
        &chain[1..],
        &server_name(name)?,
        &[],
        UnixTime::now(),
    )?;
    Ok(())
}
