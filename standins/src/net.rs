//! Small HTTP/1.1 server and HTTPS client over hyper, tokio and rustls: all the stand-ins need.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, HOST};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::identity::Identity;
use crate::say;

/// Largest request body accepted (the real API server's limit is 3 MiB).
const MAX_BODY: usize = 3 << 20;

/// A request as the handlers see it: fully read, with the verified client identity if any.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub peer: Option<Identity>,
    pub remote: SocketAddr,
}

impl Request {
    /// A query parameter's (undecoded) value.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.into().into_bytes(),
        }
    }

    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json".into(),
            body: serde_json::to_vec(v).unwrap_or_default(),
        }
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<Response> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    Arc::new(move |r| Box::pin(f(r)))
}

/// Binds `addr` now, so that a port in use fails startup as it does for the real component.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))
}

/// Serves `handler` on `listener` (TLS when `tls` is given) until the process ends.
pub fn serve(listener: TcpListener, tls: Option<Arc<ServerConfig>>, handler: Handler) {
    let acceptor = tls.map(TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    say!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                match acceptor {
                    None => serve_conn(TokioIo::new(stream), None, remote, handler).await,
                    Some(a) => match a.accept(stream).await {
                        Ok(tls) => {
                            let peer = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| Identity::from_cert(c).ok());
                            serve_conn(TokioIo::new(tls), peer, remote, handler).await
                        }
                        // Refused handshakes (no or untrusted client certificate) end here; the
                        // client sees the TLS alert.
                        Err(e) => say!("TLS handshake with {remote} failed: {e}"),
                    },
                }
            });
        }
    });
}

async fn serve_conn<I>(io: I, peer: Option<Identity>, remote: SocketAddr, handler: Handler)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        let peer = peer.clone();
        async move {
            let (parts, body) = req.into_parts();
            let resp = match Limited::new(body, MAX_BODY).collect().await {
                Ok(b) => {
                    let request = Request {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_string(),
                        query: parts.uri.query().unwrap_or("").to_string(),
                        headers: parts.headers,
                        body: b.to_bytes(),
                        peer,
                        remote,
                    };
                    handler(request).await
                }
                Err(e) => Response::text(413, format!("request body: {e}")),
            };
            let mut out = hyper::Response::new(Full::new(Bytes::from(resp.body)));
            *out.status_mut() = hyper::StatusCode::from_u16(resp.status)
                .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
            if let Ok(v) = HeaderValue::from_str(&resp.content_type) {
                out.headers_mut().insert(CONTENT_TYPE, v);
            }
            Ok::<_, std::convert::Infallible>(out)
        }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await
    {
        if !e.is_incomplete_message() {
            say!("connection from {remote}: {e}");
        }
    }
}

/// A response as a client sees it.
#[derive(Debug, Clone)]
pub struct ClientResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl ClientResponse {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("response is not JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTPS client for one server: each request opens a fresh TLS connection, which keeps the
/// certificate checks visible on every round trip.
#[derive(Clone)]
pub struct HttpsClient {
    tls: Arc<ClientConfig>,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    timeout: Duration,
}

impl HttpsClient {
    pub fn new(
        tls: Arc<ClientConfig>,
        host: &str,
        port: u16,
        server_name: &str,
    ) -> Result<HttpsClient> {
        Ok(HttpsClient {
            tls,
            host: host.to_string(),
            port,
            server_name: crate::tls::server_name(server_name)?,
            timeout: Duration::from_secs(10),
        })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> HttpsClient {
        self.timeout = timeout;
        self
    }

    /// `host:port` for messages.
    pub fn target(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ClientResponse> {
        tokio::time::timeout(
            self.timeout,
            self.request_inner(method, path, content_type, body),
        )
        .await
        .map_err(|_| anyhow!("{method} https://{}{path}: timed out", self.target()))?
        .with_context(|| format!("{method} https://{}{path}", self.target()))
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ClientResponse> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.target())
            .header("accept", "application/json, */*")
            .header(
                "user-agent",
                format!("{}/stand-in", crate::log::component()),
            );
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(ClientResponse {
            status,
            content_type,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<ClientResponse> {
        self.request("GET", path, None, Vec::new()).await
    }

    pub async fn send_json(
        &self,
        method: &str,
        path: &str,
        v: &serde_json::Value,
    ) -> Result<ClientResponse> {
        self.request(
            method,
            path,
            Some("application/json"),
            serde_json::to_vec(v)?,
        )
        .await
    }
}

/// Parses `a.b.c.d/n` or an IPv6 CIDR.
pub fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8)> {
    let (ip, prefix) = s
        .split_once('/')
        .with_context(|| format!("{s:?} is not a CIDR"))?;
    let ip: std::net::IpAddr = ip.parse().with_context(|| format!("{s:?} is not a CIDR"))?;
    let prefix: u8 = prefix
        .parse()
        .with_context(|| format!("{s:?} is not a CIDR"))?;
    if prefix > if ip.is_ipv4() { 32 } else { 128 } {
        anyhow::bail!("{s:?} is not a CIDR (prefix too long)");
    }
    Ok((ip, prefix))
}
