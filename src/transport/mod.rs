//! SSH transport: one authenticated connection per host, reused by every step, to run commands
//! as root, upload files atomically, and forward a private local socket to services on the host.
//!
//! ```text
//! let conn = Connection::connect(&host, &cluster.ssh).await?;
//! let out = conn.run_checked("systemctl is-active etcd").await?;
//! conn.upload(Source::File(path), "/usr/local/bin/etcd", 0o755).await?;
//! let fwd = conn.forward("127.0.0.1", 2379).await?;   // connect to fwd.socket()
//! ```
//!
//! - Authentication: the host's `identity_file` when it exists (OpenSSH ed25519, ecdsa or rsa
//!   key; an encrypted one is decrypted with `PROVISIONER_SSH_PASSPHRASE` or a prompt on the
//!   terminal), then the keys of ssh-agent (`SSH_AUTH_SOCK`).
//! - With `sudo = true`, commands run through `sudo -n sh -c '...'` and files are written as
//!   root the same way.
//! - Host keys are always verified, see [`hostkey`]: known_hosts (the configured file and
//!   `/etc/ssh/ssh_known_hosts`, plain, hashed, `[host]:port`, `@cert-authority`, `@revoked`)
//!   or the inventory's pinned `host_key`; `accept-new` records unknown keys, changed keys are
//!   always refused.
//! - `[ssh] bastion = "user@host:port"`: the session runs over a `direct-tcpip` channel of a
//!   session to the bastion, whose host key is verified against the same files.
//! - Connection setup has a timeout and is retried with exponential backoff; a refused host
//!   key or a failed authentication is never retried.
//!
//! Errors name the host, the step, and the fix; they never contain key material.

pub(crate) mod auth;
mod download;
mod exec;
mod forward;
pub mod hostkey;
pub mod known_hosts;
mod session;
mod upload;

use std::fmt;
use std::sync::Arc;

pub use auth::{Agent, PASSPHRASE_ENV};
pub use download::Downloaded;
pub use exec::Output;
pub use forward::Forward;
pub use hostkey::HostKeyProblem;
pub use session::ConnectOptions;
pub use upload::{Progress, Source, Uploaded};

use crate::inventory::{Host, SshSettings};
use session::{Endpoint, Link};

/// What went wrong, where, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection could not be set up (after the retries).
    #[error("{host}: cannot connect after {attempts} attempt(s): {reason}\n  hint: {hint}")]
    Connect {
        host: String,
        attempts: u32,
        reason: String,
        hint: String,
    },
    /// The host key was refused (never retried).
    #[error("{host}: host key verification failed: {problem}")]
    HostKey {
        host: String,
        problem: HostKeyProblem,
    },
    /// No key was accepted (never retried).
    #[error("{host}: authentication as {user} failed: {}.\n  hint: {hint}", .tried.join("; "))]
    Auth {
        host: String,
        user: String,
        /// One line per key source tried.
        tried: Vec<String>,
        hint: String,
    },
    /// `run_checked`: the command exited with a non-zero status.
    #[error("{host}: command `{command}` failed with exit status {status}{}", stderr_part(.stderr_tail, .hint))]
    Command {
        host: String,
        command: String,
        status: u32,
        /// The last lines of its stderr.
        stderr_tail: String,
        hint: Option<String>,
    },
    /// An upload failed.
    #[error("{host}: uploading {path}: {reason}")]
    Upload {
        host: String,
        path: String,
        reason: String,
    },
    /// A step on an established connection failed (opening a channel, running a command, a
    /// port forward).
    #[error("{host}: {step}: {reason}")]
    Session {
        host: String,
        step: String,
        reason: String,
    },
}

/// The fix for a failed authentication.
pub(crate) fn auth_hint(
    user: &str,
    identity: &std::path::Path,
    address: &str,
    port: u16,
) -> String {
    let port_arg = if port == 22 {
        String::new()
    } else {
        format!("-p {port} ")
    };
    format!(
        "authorize the public key on the host (`ssh-copy-id -i {}.pub {port_arg}{user}@{address}`), \
         check the user name and identity_file in the inventory, or add the key to ssh-agent \
         (`ssh-add`)",
        identity.display()
    )
}

fn stderr_part(tail: &str, hint: &Option<String>) -> String {
    let mut s = String::new();
    if !tail.trim().is_empty() {
        s.push_str(":\n");
        for line in tail.trim_end().lines() {
            s.push_str("  | ");
            s.push_str(line);
            s.push('\n');
        }
        s.pop();
    }
    if let Some(h) = hint {
        s.push_str("\n  hint: ");
        s.push_str(h);
    }
    s
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connection to one host. Cheap to clone; every clone uses the same SSH session, which is
/// set up again (with the same checks) when it was lost.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    target: crate::inventory::SshTarget,
    endpoint: Endpoint,
    bastion: Option<Endpoint>,
    options: ConnectOptions,
    link: tokio::sync::Mutex<Arc<Link>>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.inner.endpoint.label)
            .finish()
    }
}

impl Connection {
    /// Connects to `host` with [`ConnectOptions::default`].
    pub async fn connect(host: &Host, settings: &SshSettings) -> Result<Connection> {
        let options = ConnectOptions {
            command_timeout: settings.command_timeout,
            ..ConnectOptions::default()
        };
        Connection::connect_with(host, settings, options).await
    }

    /// Connects to `host`: through `settings.bastion` when set, host keys verified,
    /// authenticated.
    pub async fn connect_with(
        host: &Host,
        settings: &SshSettings,
        options: ConnectOptions,
    ) -> Result<Connection> {
        let t = &host.ssh;
        let bastion = settings.bastion.as_ref().map(|b| {
            let user = b.user.clone().unwrap_or_else(|| t.user.clone());
            Endpoint {
                label: format!("bastion {user}@{}:{} (for {})", b.host, b.port, host.name),
                address: b.host.clone(),
                port: b.port,
                user,
                pin: None,
            }
        });
        let via = bastion
            .as_ref()
            .map(|b| format!(" via {}@{}:{}", b.user, b.address, b.port))
            .unwrap_or_default();
        let endpoint = Endpoint {
            label: format!(
                "{} ({}@{}:{}{via})",
                host.name, t.user, host.address, t.port
            ),
            address: host.address.clone(),
            port: t.port,
            user: t.user.clone(),
            pin: t.host_key.clone(),
        };
        let link = session::open(&endpoint, t, bastion.as_ref(), &options).await?;
        Ok(Connection {
            inner: Arc::new(Inner {
                name: host.name.clone(),
                target: t.clone(),
                endpoint,
                bastion,
                options,
                link: tokio::sync::Mutex::new(Arc::new(link)),
            }),
        })
    }

    /// The inventory name of the host.
    pub fn host_name(&self) -> &str {
        &self.inner.name
    }

    /// How errors name the host: `name (user@address:port)`.
    pub fn label(&self) -> &str {
        &self.inner.endpoint.label
    }

    /// A new session to the host, with every check of the first one.
    async fn open_link(&self) -> Result<Arc<Link>> {
        let i = &self.inner;
        tracing::debug!(host = %i.endpoint.label, "the SSH session was lost; setting it up again");
        let fresh = session::open(&i.endpoint, &i.target, i.bastion.as_ref(), &i.options).await?;
        Ok(Arc::new(fresh))
    }

    /// The live session, set up again when it was closed (host rebooted, network cut).
    async fn link(&self) -> Result<Arc<Link>> {
        let mut link = self.inner.link.lock().await;
        if link.session.is_closed() {
            *link = self.open_link().await?;
        }
        Ok(link.clone())
    }

    /// Replaces `stale` by a new session, unless another caller already did.
    async fn relink(&self, stale: &Arc<Link>) -> Result<Arc<Link>> {
        let mut link = self.inner.link.lock().await;
        if Arc::ptr_eq(&link, stale) {
            *link = self.open_link().await?;
        }
        Ok(link.clone())
    }

    /// Opens a channel with `open`; when the session turns out to be gone (the host rebooted,
    /// the network was cut), sets it up again and tries once more. Nothing ran on the host
    /// before a channel is open, so this retry is safe.
    async fn open_channel<F, Fut>(&self, open: F) -> Result<ChannelOf, OpenError>
    where
        F: Fn(Arc<Link>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<ChannelOf, russh::Error>>,
    {
        let link = self.link().await.map_err(OpenError::Connect)?;
        match open(link.clone()).await {
            Ok(c) => Ok(c),
            Err(e) if session_gone(&e) => {
                let link = self.relink(&link).await.map_err(OpenError::Connect)?;
                open(link).await.map_err(OpenError::Channel)
            }
            Err(e) => Err(OpenError::Channel(e)),
        }
    }

    /// Ends the session. Other clones of this connection set it up again when used.
    pub async fn close(&self) {
        let link = self.inner.link.lock().await;
        let _ = link
            .session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    fn session_error(&self, step: impl Into<String>, reason: impl fmt::Display) -> Error {
        Error::Session {
            host: self.inner.endpoint.label.clone(),
            step: step.into(),
            reason: reason.to_string(),
        }
    }

    fn uses_sudo(&self) -> bool {
        self.inner.target.sudo && self.inner.target.user != "root"
    }

    /// Wraps a command to run as root: `sudo -n sh -c '...'` for a non-root user with sudo.
    fn as_root(&self, command: &str) -> String {
        crate::shell::as_root(command, self.uses_sudo())
    }

    /// A POSIX sh script run as root: `sh -c '...'`, through `sudo -n` when configured.
    fn as_root_script(&self, script: &str) -> String {
        crate::shell::script_as_root(script, self.uses_sudo())
    }
}

type ChannelOf = russh::Channel<russh::client::Msg>;

enum OpenError {
    /// Setting the session up again failed.
    Connect(Error),
    /// The channel could not be opened.
    Channel(russh::Error),
}

/// Errors that mean the session is no longer there.
fn session_gone(e: &russh::Error) -> bool {
    matches!(
        e,
        russh::Error::Disconnect
            | russh::Error::SendError
            | russh::Error::HUP
            | russh::Error::IO(_)
            | russh::Error::KeepaliveTimeout
            | russh::Error::InactivityTimeout
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_error_shows_stderr_tail_and_hint() {
        let e = Error::Command {
            host: "node1 (root@10.0.0.1:22)".into(),
            command: "false".into(),
            status: 1,
            stderr_tail: "line one\nline two\n".into(),
            hint: Some("do this".into()),
        };
        assert_eq!(
            e.to_string(),
            "node1 (root@10.0.0.1:22): command `false` failed with exit status 1:\n  | line one\n  | line two\n  hint: do this"
        );
    }
}
