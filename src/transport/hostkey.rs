//! Host key verification: the policy (strict, accept-new, pinned fingerprint) on top of the
//! known_hosts files, and host certificates signed by a `@cert-authority`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::client::Handler;
use russh::keys::ssh_encoding::Encode;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Algorithm, Certificate, Fingerprint, HashAlg, PublicKey};
use russh::keys::PublicKeyOrCertificate;

use super::known_hosts::{self, KnownHosts, Location, Status};
use crate::inventory::HostKeyPolicy;

/// Why a host key was refused. The `Display` text says what was presented and how to accept
/// it once it has been checked out of band.
#[derive(Debug, Clone)]
pub enum HostKeyProblem {
    /// No known_hosts line for the host (or a certificate that no trusted CA vouches for).
    Unknown {
        key: Box<Presented>,
        /// Why a presented certificate was not accepted, when one was presented.
        certificate: Option<String>,
        /// `accept-new` was in force but a certificate failed: nothing was recorded.
        accept_new: bool,
    },
    /// known_hosts lists other keys for this host.
    Changed {
        key: Box<Presented>,
        known: Vec<(String, Location)>,
        same_type: bool,
    },
    /// A `@revoked` line lists the key (or the CA that signed the presented certificate).
    Revoked { key: Box<Presented>, at: Location },
    /// The inventory pins another fingerprint.
    PinMismatch { key: Box<Presented>, pinned: String },
    /// accept-new could not write the known_hosts file.
    RecordFailed { key: Box<Presented>, error: String },
    /// A known_hosts file could not be read.
    Unreadable { error: String },
}

/// The key a host presented, as shown in messages (never the key itself).
#[derive(Debug, Clone)]
pub struct Presented {
    /// `[address]:port`, or `address` for port 22.
    pub name: String,
    pub address: String,
    pub port: u16,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...
    pub key_type: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The known_hosts file accept-new writes to and the hints name.
    pub known_hosts: PathBuf,
    /// Whether pinning `host_key` in the inventory applies (not for a bastion).
    pub can_pin: bool,
}

impl Presented {
    fn keyscan(&self) -> String {
        let t = match self.key_type.as_str() {
            "ssh-ed25519" => "ed25519",
            "ssh-rsa" => "rsa",
            t if t.starts_with("ecdsa-") => "ecdsa",
            t => t,
        };
        let port = if self.port == 22 {
            String::new()
        } else {
            format!("-p {} ", self.port)
        };
        format!(
            "ssh-keyscan {port}-t {t} {} >> {}",
            self.address,
            self.known_hosts.display()
        )
    }

    fn host_file_hint(&self) -> String {
        let short = match self.key_type.as_str() {
            "ssh-ed25519" => "ed25519",
            "ssh-rsa" => "rsa",
            t if t.starts_with("ecdsa-") => "ecdsa",
            _ => "*",
        };
        format!("ssh-keygen -lf /etc/ssh/ssh_host_{short}_key.pub")
    }
}

impl fmt::Display for HostKeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostKeyProblem::Unknown {
                key,
                certificate,
                accept_new,
            } => {
                write!(
                    f,
                    "{} presented an unknown host key: {} {}",
                    key.name, key.key_type, key.fingerprint
                )?;
                if let Some(c) = certificate {
                    write!(f, " (its host certificate was not accepted: {c})")?;
                }
                if *accept_new {
                    write!(
                        f,
                        "; accept-new does not record a key whose certificate failed"
                    )?;
                }
                write!(
                    f,
                    ".\n  Check this fingerprint out of band (on the host: `{}`), then either\n  \
                     - add the key to known_hosts: `{}`",
                    key.host_file_hint(),
                    key.keyscan()
                )?;
                if key.can_pin {
                    write!(
                        f,
                        ",\n  - or pin it for this host in the inventory: host_key = \"{}\"",
                        key.fingerprint
                    )?;
                }
                write!(
                    f,
                    ",\n  - or set host_key_policy = \"accept-new\" to record the key of a host seen for the first time"
                )
            }
            HostKeyProblem::Changed {
                key,
                known,
                same_type,
            } => {
                let lines: Vec<String> =
                    known.iter().map(|(t, at)| format!("{t} at {at}")).collect();
                write!(
                    f,
                    "HOST KEY CHANGED: {} presented {} {}, but known_hosts has {} for it ({}). \
                     Someone may be intercepting the connection (man in the middle), or the host \
                     was reinstalled.\n  If you have checked the new key out of band (on the host: `{}`), \
                     remove the old entry with `ssh-keygen -R '{}' -f {}` and add the new one \
                     (`{}`); host_key_policy = \"accept-new\" never replaces a known key",
                    key.name,
                    key.key_type,
                    key.fingerprint,
                    if *same_type {
                        "another key"
                    } else {
                        "only keys of other types"
                    },
                    lines.join(", "),
                    key.host_file_hint(),
                    key.name,
                    known
                        .first()
                        .map(|(_, at)| at.file.display().to_string())
                        .unwrap_or_else(|| key.known_hosts.display().to_string()),
                    key.keyscan()
                )
            }
            HostKeyProblem::Revoked { key, at } => write!(
                f,
                "{} presented {} {}, which is marked @revoked at {at}; refusing to connect",
                key.name, key.key_type, key.fingerprint
            ),
            HostKeyProblem::PinMismatch { key, pinned } => write!(
                f,
                "{} presented {} {}, but the inventory pins host_key = \"{pinned}\". If the host \
                 was reinstalled, check the new fingerprint out of band (on the host: `{}`) and \
                 update host_key",
                key.name,
                key.key_type,
                key.fingerprint,
                key.host_file_hint()
            ),
            HostKeyProblem::RecordFailed { key, error } => write!(
                f,
                "could not record the new host key of {} ({} {}) in {}: {error}",
                key.name,
                key.key_type,
                key.fingerprint,
                key.known_hosts.display()
            ),
            HostKeyProblem::Unreadable { error } => write!(f, "{error}"),
        }
    }
}

/// What a verification accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Known,
    Pinned,
    Certificate,
    /// accept-new recorded the key.
    Recorded,
}

impl Accepted {
    fn reason(&self) -> &'static str {
        match self {
            Accepted::Known => "listed in known_hosts",
            Accepted::Pinned => "matches the inventory's host_key",
            Accepted::Certificate => "host certificate signed by a trusted @cert-authority",
            Accepted::Recorded => "new, recorded in known_hosts (accept-new)",
        }
    }
}

impl HostKeyProblem {
    /// The problem in a few words, for the debug log (the error carries the rest).
    fn kind(&self) -> &'static str {
        match self {
            HostKeyProblem::Unknown { .. } => "unknown host key",
            HostKeyProblem::Changed { .. } => "the key CHANGED",
            HostKeyProblem::Revoked { .. } => "the key is @revoked",
            HostKeyProblem::PinMismatch { .. } => "not the inventory's host_key",
            HostKeyProblem::RecordFailed { .. } => "could not record it in known_hosts",
            HostKeyProblem::Unreadable { .. } => "known_hosts unreadable",
        }
    }
}

/// Checks the key one endpoint presents.
#[derive(Debug)]
pub struct Verifier {
    address: String,
    port: u16,
    name: String,
    known: KnownHosts,
    write_to: PathBuf,
    policy: HostKeyPolicy,
    pin: Option<String>,
    can_pin: bool,
}

/// Host key algorithms in russh's preference order, without certificates and without `ssh-rsa`
/// signatures (SHA-1, which OpenSSH itself disabled in 8.8): an RSA host key still works through
/// rsa-sha2-256 and rsa-sha2-512.
fn key_order() -> Vec<Algorithm> {
    russh::Preferred::DEFAULT
        .key
        .iter()
        .filter(|a| !matches!(a, Algorithm::Rsa { hash: None }))
        .cloned()
        .collect()
}

impl Verifier {
    /// `files`: the known_hosts files to read, the first being the one accept-new writes to.
    /// `pin`: the inventory's `host_key`; `None` for a bastion (`can_pin` false).
    pub fn new(
        address: &str,
        port: u16,
        files: &[PathBuf],
        policy: HostKeyPolicy,
        pin: Option<String>,
        can_pin: bool,
    ) -> Result<Verifier, HostKeyProblem> {
        let known = KnownHosts::load(files).map_err(|e| HostKeyProblem::Unreadable {
            error: format!("cannot read known_hosts: {e}"),
        })?;
        Ok(Verifier {
            address: address.to_string(),
            port,
            name: known_hosts::lookup_name(address, port),
            known,
            write_to: files[0].clone(),
            policy,
            pin,
            can_pin,
        })
    }

    /// Host key algorithms to offer, those known_hosts lists for this host first (as OpenSSH
    /// orders them, so a host with several keys presents the one that is known), and the
    /// algorithms whose certificates to ask for: all of them when a `@cert-authority` line
    /// matches the host and no fingerprint is pinned, none otherwise.
    pub fn algorithms(&self) -> (Vec<Algorithm>, Vec<Algorithm>) {
        let known: Vec<&str> = self
            .known
            .host_keys(&self.name)
            .filter_map(|e| known_hosts::blob_key_type(&e.blob))
            .collect();
        let family = |a: &Algorithm| -> String {
            if matches!(a, Algorithm::Rsa { .. }) {
                "ssh-rsa".to_string()
            } else {
                a.as_str().to_string()
            }
        };
        let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = key_order()
            .into_iter()
            .partition(|a| known.contains(&family(a).as_str()));
        first.extend(rest);
        let certs = if self.pin.is_none() && self.known.authorities(&self.name).next().is_some() {
            key_order()
        } else {
            Vec::new()
        };
        (first, certs)
    }

    fn presented(&self, key: &KeyData) -> (Vec<u8>, Box<Presented>) {
        let blob = key.encode_vec().unwrap_or_default();
        let p = Box::new(Presented {
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port,
            key_type: known_hosts::blob_key_type(&blob)
                .unwrap_or("unknown")
                .to_string(),
            fingerprint: known_hosts::fingerprint(&blob),
            known_hosts: self.write_to.clone(),
            can_pin: self.can_pin,
        });
        (blob, p)
    }

    pub fn verify(&self, presented: &PublicKeyOrCertificate) -> Result<Accepted, HostKeyProblem> {
        let result = self.decide(presented);
        let (data, certificate) = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => (key.key_data(), false),
            PublicKeyOrCertificate::Certificate(cert) => (cert.public_key(), true),
        };
        let (_, key) = self.presented(data);
        let (host, key_type, fingerprint) = (&key.name, &key.key_type, &key.fingerprint);
        match &result {
            Ok(how) => tracing::debug!(
                host,
                key_type,
                fingerprint,
                certificate,
                "host key accepted: {}",
                how.reason()
            ),
            Err(problem) => tracing::debug!(
                host,
                key_type,
                fingerprint,
                certificate,
                "host key refused: {}",
                problem.kind()
            ),
        }
        result
    }

    fn decide(&self, presented: &PublicKeyOrCertificate) -> Result<Accepted, HostKeyProblem> {
        match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => self.verify_key(key.key_data(), None),
            PublicKeyOrCertificate::Certificate(cert) => {
                let (blob, key) = self.presented(cert.public_key());
                if let Some(at) = self.known.revoked(&blob) {
                    return Err(HostKeyProblem::Revoked { key, at });
                }
                if self.pin.is_some() {
                    return self.verify_key(cert.public_key(), None);
                }
                match self.check_certificate(cert) {
                    Ok(()) => Ok(Accepted::Certificate),
                    // As OpenSSH does, a certificate that fails is checked as its plain key.
                    Err(reason) => self.verify_key(cert.public_key(), Some(reason)),
                }
            }
        }
    }

    fn verify_key(
        &self,
        data: &KeyData,
        certificate: Option<String>,
    ) -> Result<Accepted, HostKeyProblem> {
        let (blob, key) = self.presented(data);
        if let Some(pinned) = &self.pin {
            if let Some(at) = self.known.revoked(&blob) {
                return Err(HostKeyProblem::Revoked { key, at });
            }
            return if *pinned == key.fingerprint {
                Ok(Accepted::Pinned)
            } else {
                Err(HostKeyProblem::PinMismatch {
                    key,
                    pinned: pinned.clone(),
                })
            };
        }
        match self.known.check(&self.name, &blob) {
            Status::Known(_) => Ok(Accepted::Known),
            Status::Revoked(at) => Err(HostKeyProblem::Revoked { key, at }),
            Status::Changed { known, same_type } => Err(HostKeyProblem::Changed {
                key,
                known,
                same_type,
            }),
            Status::Unknown => match (self.policy, certificate) {
                (HostKeyPolicy::AcceptNew, None) => {
                    known_hosts::append(&self.write_to, &self.name, &blob)
                        .map(|()| Accepted::Recorded)
                        .map_err(|e| HostKeyProblem::RecordFailed {
                            key,
                            error: e.to_string(),
                        })
                }
                (policy, certificate) => Err(HostKeyProblem::Unknown {
                    key,
                    accept_new: certificate.is_some() && policy == HostKeyPolicy::AcceptNew,
                    certificate,
                }),
            },
        }
    }

    /// Accepts a host certificate signed by a CA that a matching `@cert-authority` line lists,
    /// valid now, naming this host among its principals (or naming none), with no critical
    /// options, whose CA is not revoked.
    fn check_certificate(&self, cert: &Certificate) -> Result<(), String> {
        if cert.cert_type() != CertType::Host {
            return Err("it is not a host certificate".into());
        }
        let ca_blob = cert.signature_key().encode_vec().unwrap_or_default();
        if let Some(at) = self.known.revoked(&ca_blob) {
            return Err(format!("its CA key is marked @revoked at {at}"));
        }
        let cas: Vec<Fingerprint> = self
            .known
            .authorities(&self.name)
            .filter_map(|e| PublicKey::from_bytes(&e.blob).ok())
            .map(|k| k.fingerprint(HashAlg::Sha256))
            .collect();
        if cas.is_empty() {
            return Err(format!("no @cert-authority line matches {}", self.name));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        cert.validate_at(now, cas.iter()).map_err(|e| {
            format!(
                "signed by {} ({e}: not a listed CA, outside its validity period, or a bad signature)",
                known_hosts::fingerprint(&ca_blob)
            )
        })?;
        let host = self.address.to_ascii_lowercase();
        let principals = cert.valid_principals();
        if !principals.is_empty() && !principals.iter().any(|p| p.to_ascii_lowercase() == host) {
            return Err(format!(
                "its principals ({}) do not include {host}",
                principals.join(", ")
            ));
        }
        if !cert.critical_options().is_empty() {
            return Err("it has critical options, which host certificates do not use".into());
        }
        Ok(())
    }
}

/// The known_hosts files read for a target: the configured one (written by accept-new) and the
/// system-wide one.
pub fn files(configured: &Path, global: Option<&Path>) -> Vec<PathBuf> {
    let mut files = vec![configured.to_path_buf()];
    if let Some(g) = global {
        if g != configured {
            files.push(g.to_path_buf());
        }
    }
    files
}

/// The russh client handler: verifies the server's host key.
pub struct Client {
    verifier: Arc<Verifier>,
}

impl Client {
    pub fn new(verifier: Verifier) -> Client {
        Client {
            verifier: Arc::new(verifier),
        }
    }
}

#[derive(Debug)]
pub enum HandlerError {
    Ssh(russh::Error),
    HostKey(HostKeyProblem),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

impl Handler for Client {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        self.verifier
            .verify(key)
            .map(|_| true)
            .map_err(HandlerError::HostKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_rsa_signatures_are_never_offered() {
        let order = key_order();
        assert!(!order.contains(&Algorithm::Rsa { hash: None }));
        assert!(order
            .iter()
            .any(|a| matches!(a, Algorithm::Rsa { hash: Some(_) })));
        assert!(order.contains(&Algorithm::Ed25519));
    }
}
