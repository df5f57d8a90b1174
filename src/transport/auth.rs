//! Public key authentication: the identity file first (decrypted with the passphrase from
//! `PROVISIONER_SSH_PASSPHRASE` or a terminal prompt), then the keys of ssh-agent.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::ssh_encoding::Encode;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::hostkey::Client;
use super::known_hosts::fingerprint;

/// The environment variable holding the identity file's passphrase.
pub const PASSPHRASE_ENV: &str = "PROVISIONER_SSH_PASSPHRASE";

/// Where to find ssh-agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    /// The socket named by `SSH_AUTH_SOCK`, when it is set.
    FromEnv,
    /// This socket.
    Socket(PathBuf),
    /// Do not use an agent.
    None,
}

/// Decrypted identity files, so that a passphrase is asked for once per run and concurrent
/// connections do not prompt at the same time (the lock is held while prompting).
fn key_cache() -> &'static tokio::sync::Mutex<HashMap<PathBuf, Arc<PrivateKey>>> {
    static CACHE: OnceLock<tokio::sync::Mutex<HashMap<PathBuf, Arc<PrivateKey>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

pub(crate) async fn load_identity(path: &Path) -> Result<Arc<PrivateKey>, String> {
    let mut cache = key_cache().lock().await;
    if let Some(k) = cache.get(path) {
        tracing::trace!(identity = %path.display(), "identity file already read");
        return Ok(k.clone());
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let key = match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => k,
        Err(russh::keys::Error::KeyIsEncrypted) => {
            tracing::debug!(identity = %path.display(), "identity file is encrypted");
            let passphrase = passphrase(path).await?;
            russh::keys::decode_secret_key(&text, Some(&passphrase))
                .map_err(|e| format!("cannot decrypt it ({e}): is the passphrase right?"))?
        }
        Err(e) => return Err(format!("cannot read it as a private key: {e}")),
    };
    let key = Arc::new(key);
    cache.insert(path.to_path_buf(), key.clone());
    Ok(key)
}

async fn passphrase(path: &Path) -> Result<String, String> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        tracing::debug!("passphrase taken from {PASSPHRASE_ENV}");
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "it is encrypted: set {PASSPHRASE_ENV}, run from a terminal to be asked for the \
             passphrase, or load it into ssh-agent (`ssh-add {}`)",
            path.display()
        ));
    }
    let prompt = format!("Passphrase for {}: ", path.display());
    tracing::debug!("asking for the passphrase on the terminal");
    // The prompt shares the terminal with the progress lines, whose redraws would erase it.
    tokio::task::spawn_blocking(move || crate::term::suspend(|| rpassword::prompt_password(prompt)))
        .await
        .map_err(|e| format!("asking for its passphrase: {e}"))?
        .map_err(|e| format!("asking for its passphrase: {e}"))
}

/// The signature hash for RSA keys: the best the server announced, SHA-256 when it said
/// nothing.
async fn rsa_hash(handle: &Handle<Client>) -> Option<HashAlg> {
    match handle.best_supported_rsa_hash().await {
        Ok(Some(h)) => h,
        _ => Some(HashAlg::Sha256),
    }
}

/// Authenticates as `user`; on failure returns what was tried, one item per key source.
pub async fn authenticate(
    handle: &mut Handle<Client>,
    user: &str,
    identity: &Path,
    agent: &Agent,
) -> Result<(), Vec<String>> {
    let mut tried = Vec::new();
    if identity.exists() {
        tracing::debug!(user, identity = %identity.display(), "trying the identity file");
        match load_identity(identity).await {
            Ok(key) => {
                let hash = if key.algorithm().is_rsa() {
                    rsa_hash(handle).await
                } else {
                    None
                };
                let fp = fingerprint(&key.public_key().key_data().encode_vec().unwrap_or_default());
                match handle
                    .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                    .await
                {
                    Ok(r) if r.success() => {
                        tracing::debug!(user, key = %fp, "the host accepted the identity file's key");
                        return Ok(());
                    }
                    Ok(_) => tried.push(format!(
                        "the key of identity file {} ({fp}) was refused",
                        identity.display()
                    )),
                    Err(e) => tried.push(format!(
                        "authenticating with identity file {} failed: {e}",
                        identity.display()
                    )),
                }
            }
            Err(e) => tried.push(format!("identity file {}: {e}", identity.display())),
        }
    } else {
        tried.push(format!(
            "identity file {} does not exist",
            identity.display()
        ));
    }

    let socket = match agent {
        Agent::FromEnv => std::env::var_os("SSH_AUTH_SOCK")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
        Agent::Socket(p) => Some(p.clone()),
        Agent::None => None,
    };
    if let Some(last) = tried.last() {
        tracing::debug!("{last}");
    }
    let Some(socket) = socket else {
        if *agent == Agent::FromEnv {
            tried.push("no ssh-agent (SSH_AUTH_SOCK is not set)".into());
        }
        return Err(tried);
    };
    let mut client = match AgentClient::connect_uds(&socket).await {
        Ok(c) => c,
        Err(e) => {
            tried.push(format!("ssh-agent at {}: {e}", socket.display()));
            return Err(tried);
        }
    };
    let identities = match client.request_identities().await {
        Ok(i) => i,
        Err(e) => {
            tried.push(format!("ssh-agent at {}: {e}", socket.display()));
            return Err(tried);
        }
    };
    tracing::debug!(agent = %socket.display(), keys = identities.len(), "trying ssh-agent");
    let mut refused = 0;
    for identity in identities {
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let hash = if key.algorithm().is_rsa() {
            rsa_hash(handle).await
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user, key, hash, &mut client)
            .await
        {
            Ok(r) if r.success() => {
                tracing::debug!(user, key = %fp, "the host accepted an ssh-agent key");
                return Ok(());
            }
            Ok(_) => {
                tracing::debug!(user, key = %fp, "the host refused an ssh-agent key");
                refused += 1;
            }
            Err(e) => tried.push(format!("ssh-agent could not sign: {e}")),
        }
    }
    tried.push(if refused == 0 {
        format!("ssh-agent at {} holds no usable key", socket.display())
    } else {
        format!(
            "the {refused} key(s) of ssh-agent at {} were refused",
            socket.display()
        )
    });
    Err(tried)
}
