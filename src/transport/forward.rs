//! Local port forwarding through the connection, for health checks of services that listen on
//! the host's loopback address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::{Connection, OpenError, Result};

/// A listener on 127.0.0.1 whose connections are carried to `remote_host:remote_port` as seen
/// from the host. Dropping it stops the listener and the connections it carries.
#[derive(Debug)]
pub struct Forward {
    local: SocketAddr,
    last_error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Forward {
    /// The local address to connect to (`127.0.0.1:<port>`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The local port.
    pub fn port(&self) -> u16 {
        self.local.port()
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
    /// Binds 127.0.0.1:0 and forwards each accepted connection through a `direct-tcpip`
    /// channel to `remote_host:remote_port` as the host sees it (e.g. `127.0.0.1`, 2379).
    pub async fn forward(&self, remote_host: &str, remote_port: u16) -> Result<Forward> {
        let step = format!("forwarding a local port to {remote_host}:{remote_port}");
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| self.session_error(step.clone(), format!("binding 127.0.0.1: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| self.session_error(step.clone(), e))?;
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
            local,
            last_error,
            task,
        })
    }
}

async fn accept_loop(
    conn: Connection,
    listener: TcpListener,
    host: String,
    port: u16,
    last_error: Arc<Mutex<Option<String>>>,
) {
    // Dropping the set (when this task is aborted) aborts every forwarded connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((mut socket, peer)) = accepted else { continue };
                let conn = conn.clone();
                let host = host.clone();
                let last_error = last_error.clone();
                connections.spawn(async move {
                    let opened = conn
                        .open_channel(|link| {
                            let host = host.clone();
                            async move {
                                link.session
                                    .channel_open_direct_tcpip(host, port.into(), "127.0.0.1", peer.port().into())
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
