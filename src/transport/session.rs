//! Establishing an authenticated SSH session: TCP (or a `direct-tcpip` channel through a
//! bastion), host key verification, authentication, with a timeout and retries with
//! exponential backoff for the connection setup only.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};

use super::auth::{self, Agent};
use super::hostkey::{self, Client, HandlerError, Verifier};
use super::Error;
use crate::inventory::SshTarget;

/// How connections are set up. [`Default`] is what the CLI uses.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Limit for one attempt: TCP connect and SSH handshake.
    pub connect_timeout: Duration,
    /// Attempts at connection setup (at least 1). Refused host keys and failed
    /// authentication are never retried.
    pub attempts: u32,
    /// Pause before the second attempt, doubled before each further one.
    pub backoff: Duration,
    /// The system-wide known_hosts file, read after the configured one.
    pub global_known_hosts: Option<PathBuf>,
    /// Where ssh-agent is.
    pub agent: Agent,
    /// Keepalive interval on established connections (a dead host is noticed after three).
    pub keepalive: Duration,
    /// How long a remote command may run (an upload: plus one second per MiB it sends).
    pub command_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_secs(1),
            global_known_hosts: Some(PathBuf::from("/etc/ssh/ssh_known_hosts")),
            agent: Agent::FromEnv,
            keepalive: Duration::from_secs(15),
            command_timeout: Duration::from_secs(crate::inventory::DEFAULT_COMMAND_TIMEOUT),
        }
    }
}

/// One SSH server to reach: a target host or a bastion.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// How errors name it, e.g. `node1 (root@10.0.0.1:22)`.
    pub label: String,
    /// The inventory's pinned fingerprint (targets only).
    pub pin: Option<String>,
}

/// An authenticated session, and the bastion session it runs through (kept alive with it).
pub struct Link {
    pub session: Handle<Client>,
    _bastion: Option<Box<Link>>,
}

/// Why one attempt failed.
enum Failure {
    /// Worth another attempt: network trouble, timeout, connection closed.
    Retry(String),
    /// Never retried.
    Fatal(Error),
}

fn retryable(e: &russh::Error) -> bool {
    matches!(
        e,
        russh::Error::IO(_)
            | russh::Error::Disconnect
            | russh::Error::HUP
            | russh::Error::ConnectionTimeout
            | russh::Error::Elapsed(_)
            | russh::Error::ChannelOpenFailure(_)
            | russh::Error::SendError
    )
}

fn client_config(verifier: &Verifier, options: &ConnectOptions) -> Arc<client::Config> {
    let (key, certs) = verifier.algorithms();
    Arc::new(client::Config {
        preferred: russh::Preferred {
            key: Cow::Owned(key),
            host_key_certificates: Cow::Owned(certs),
            ..russh::Preferred::DEFAULT
        },
        keepalive_interval: Some(options.keepalive),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    })
}

/// One attempt at the SSH handshake, over TCP or through `via`.
async fn handshake(
    ep: &Endpoint,
    via: Option<&Handle<Client>>,
    target: &SshTarget,
    options: &ConnectOptions,
    can_pin: bool,
) -> Result<Handle<Client>, Failure> {
    // known_hosts is read for every attempt, so a key added meanwhile counts.
    let files = hostkey::files(&target.known_hosts, options.global_known_hosts.as_deref());
    let verifier = Verifier::new(
        &ep.address,
        ep.port,
        &files,
        target.host_key_policy,
        ep.pin.clone(),
        can_pin,
    )
    .map_err(|problem| {
        Failure::Fatal(Error::HostKey {
            host: ep.label.clone(),
            problem,
        })
    })?;
    let config = client_config(&verifier, options);
    let client = Client::new(verifier);
    let attempt = async {
        let result = match via {
            None => {
                let tcp = tokio::net::TcpStream::connect((ep.address.as_str(), ep.port))
                    .await
                    .map_err(|e| Failure::Retry(format!("TCP connection: {e}")))?;
                let _ = tcp.set_nodelay(true);
                // Data the host stops acknowledging (its link cut mid-upload) fails the
                // connection after the time the keepalives would take, instead of after the
                // kernel's retransmissions (about 15 minutes).
                let _ =
                    socket2::SockRef::from(&tcp).set_tcp_user_timeout(Some(options.keepalive * 3));
                client::connect_stream(config, tcp, client).await
            }
            Some(bastion) => {
                let channel = bastion
                    .channel_open_direct_tcpip(ep.address.as_str(), ep.port.into(), "127.0.0.1", 0)
                    .await
                    .map_err(|e| {
                        Failure::Retry(format!(
                            "the bastion could not open a connection to {}:{}: {e}",
                            ep.address, ep.port
                        ))
                    })?;
                client::connect_stream(config, channel.into_stream(), client).await
            }
        };
        result.map_err(|e| match e {
            HandlerError::HostKey(problem) => Failure::Fatal(Error::HostKey {
                host: ep.label.clone(),
                problem,
            }),
            HandlerError::Ssh(e) if retryable(&e) => Failure::Retry(format!("SSH handshake: {e}")),
            HandlerError::Ssh(e) => Failure::Fatal(Error::Connect {
                host: ep.label.clone(),
                attempts: 1,
                reason: format!("SSH handshake: {e}"),
                hint: "check that an OpenSSH server listens on this address and port".into(),
            }),
        })
    };
    match tokio::time::timeout(options.connect_timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Retry(format!(
            "no SSH session within {} s",
            options.connect_timeout.as_secs_f32()
        ))),
    }
}

/// Connects to `ep` (retrying the setup), then authenticates.
pub async fn establish(
    ep: &Endpoint,
    via: Option<&Handle<Client>>,
    target: &SshTarget,
    options: &ConnectOptions,
    can_pin: bool,
) -> Result<Handle<Client>, Error> {
    if target.identity_file.exists() {
        // Asks for a passphrase now, outside the time limits; failures are reported by the
        // authentication that follows.
        let _ = auth::load_identity(&target.identity_file).await;
    }
    let attempts = options.attempts.max(1);
    let mut delay = options.backoff;
    let mut last = String::new();
    let mut handle = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        let via_bastion = via.is_some();
        tracing::debug!(host = %ep.label, attempt, of = attempts, via_bastion, "connecting");
        let t = std::time::Instant::now();
        match handshake(ep, via, target, options, can_pin).await {
            Ok(h) => {
                let ms = t.elapsed().as_millis() as u64;
                tracing::debug!(host = %ep.label, ms, "SSH handshake done");
                handle = Some(h);
                break;
            }
            Err(Failure::Fatal(e)) => {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                tracing::debug!(host = %ep.label, "not retried: {first}");
                return Err(e);
            }
            Err(Failure::Retry(reason)) => {
                let retry_in_ms = (attempt < attempts).then_some(delay.as_millis() as u64);
                tracing::debug!(host = %ep.label, attempt, retry_in_ms, "attempt failed: {reason}");
                last = reason;
            }
        }
    }
    let Some(mut handle) = handle else {
        return Err(Error::Connect {
            host: ep.label.clone(),
            attempts,
            reason: last,
            hint: format!(
                "check that the host is up, that {}:{} is the right address and port, and that sshd runs on it{}",
                ep.address,
                ep.port,
                if via.is_some() {
                    " and is reachable from the bastion"
                } else {
                    ""
                }
            ),
        });
    };
    let t = std::time::Instant::now();
    // Bounded like the handshake; the identity file was decrypted (and its passphrase asked for)
    // before the first attempt, so no prompt runs inside this limit.
    let auth = auth::authenticate(&mut handle, &ep.user, &target.identity_file, &options.agent);
    let result = match tokio::time::timeout(options.connect_timeout, auth).await {
        Ok(r) => r,
        Err(_) => Err(vec![format!(
            "no answer to authentication within {} s",
            options.connect_timeout.as_secs_f32()
        )]),
    };
    result
        .inspect(|()| {
            let ms = t.elapsed().as_millis() as u64;
            tracing::debug!(host = %ep.label, user = %ep.user, ms, "authenticated");
        })
        .map_err(|tried| Error::Auth {
            host: ep.label.clone(),
            user: ep.user.clone(),
            tried,
            hint: super::auth_hint(&ep.user, &target.identity_file, &ep.address, ep.port),
        })?;
    Ok(handle)
}

/// Connects to the target, through the bastion when one is configured.
pub async fn open(
    target_ep: &Endpoint,
    target: &SshTarget,
    bastion: Option<&Endpoint>,
    options: &ConnectOptions,
) -> Result<Link, Error> {
    match bastion {
        None => Ok(Link {
            session: establish(target_ep, None, target, options, true).await?,
            _bastion: None,
        }),
        Some(b) => {
            let bastion_session = establish(b, None, target, options, false).await?;
            let session =
                establish(target_ep, Some(&bastion_session), target, options, true).await?;
            Ok(Link {
                session,
                _bastion: Some(Box::new(Link {
                    session: bastion_session,
                    _bastion: None,
                })),
            })
        }
    }
}
