//! Forwarding through the connection, for health checks of services that listen on the host's
//! loopback address. The local end is a Unix socket in a directory only the operator can enter:
//! a TCP port on 127.0.0.1 would let any local user reach etcd or the API server with the
//! operator's forwarded access while a gate runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::UnixListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{Connection, OpenError, Result};

/// A listening Unix socket (in a private 0700 directory) whose connections are carried to
/// `remote_host:remote_port` as seen from the host. Dropping it stops the listener, the
/// connections it carries, and removes the socket.
#[derive(Debug)]
pub struct Forward {
    socket: PathBuf,
    last_error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Forward {
    /// The socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Why the last forwarded connection could not be opened on the host, if it could not
    /// (e.g. nothing listens there): a refused channel shows locally only as a closed
    /// connection.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Connection {
    /// Listens on a private Unix socket and forwards each accepted connection through a
    /// `direct-tcpip` channel to `remote_host:remote_port` as the host sees it (e.g.
    /// `127.0.0.1`, 2379).
    pub async fn forward(&self, remote_host: &str, remote_port: u16) -> Result<Forward> {
        let step = format!("forwarding to {remote_host}:{remote_port}");
        // 0700: only this user (and root) can reach the socket.
        let dir = tempfile::Builder::new()
            .prefix("provisioner-forward-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| self.session_error(step.clone(), format!("a private directory: {e}")))?;
        let socket = dir.path().join("s");
        let listener = UnixListener::bind(&socket).map_err(|e| {
            self.session_error(step.clone(), format!("binding {}: {e}", socket.display()))
        })?;
        // Fail early when the connection is gone and cannot be set up again.
        self.link().await?;
        let last_error = Arc::new(Mutex::new(None));
        let task = tokio::spawn(accept_loop(
            self.clone(),
            listener,
            remote_host.to_string(),
            remote_port,
            last_error.clone(),
        ));
        Ok(Forward {
            socket,
            last_error,
            task,
            _dir: dir,
        })
    }
}

async fn accept_loop(
    conn: Connection,
    listener: UnixListener,
    host: String,
    port: u16,
    last_error: Arc<Mutex<Option<String>>>,
) {
    // Dropping the set (when this task is aborted) aborts every forwarded connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut socket, _)) = accepted else { continue };
                let conn = conn.clone();
                let host = host.clone();
                let last_error = last_error.clone();
                connections.spawn(async move {
                    let opened = conn
                        .open_channel(|link| {
                            let host = host.clone();
                            async move {
                                link.session
                                    .channel_open_direct_tcpip(host, port.into(), "127.0.0.1", 0)
                                    .await
                            }
                        })
                        .await
                        .map_err(|e| match e {
                            OpenError::Connect(e) => e.to_string(),
                            OpenError::Channel(e) => {
                                format!("{}: opening a channel to {host}:{port}: {e}", conn.label())
                            }
                        });
                    match opened {
                        Ok(channel) => {
                            let mut stream = channel.into_stream();
                            let _ = tokio::io::copy_bidirectional(&mut socket, &mut stream).await;
                        }
                        Err(e) => {
                            if let Ok(mut slot) = last_error.lock() {
                                *slot = Some(e);
                            }
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
