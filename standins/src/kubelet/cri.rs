//! The kubelet's first contact with the container runtime: CRI `RuntimeService/Version` and
//! `RuntimeService/Status` over gRPC (HTTP/2 on the unix socket), as the real kubelet calls them.
//! Requests are empty protobuf messages; the few response fields used are decoded by hand.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;

/// What the runtime says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    pub runtime_name: String,
    pub runtime_version: String,
    pub runtime_api_version: String,
}

/// One CRI RuntimeCondition (RuntimeReady, NetworkReady).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// A unary gRPC call with an empty request message; returns the response message bytes.
async fn unary(socket: &Path, method: &str) -> Result<Bytes> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("connect {}", socket.display()))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "kubelet-stand-in grpc")
        // gRPC frame: not compressed, zero-length message (all request fields at their defaults).
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let header_status = grpc_status(resp.headers());
    let body = resp.into_body().collect().await?;
    let trailer_status = body.trailers().and_then(grpc_status);
    if status != hyper::StatusCode::OK {
        bail!("{method}: HTTP {status}");
    }
    match trailer_status.or(header_status) {
        Some((0, _)) => {}
        Some((code, msg)) => bail!(
            "{method}: rpc error: code = {} desc = {msg}",
            code_name(code)
        ),
        None => bail!("{method}: no grpc-status in the response"),
    }
    let data = body.to_bytes();
    if data.len() < 5 {
        bail!("{method}: short gRPC response");
    }
    if data[0] != 0 {
        bail!("{method}: compressed gRPC response not supported");
    }
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    data.get(5..5 + len)
        .map(Bytes::copy_from_slice)
        .ok_or_else(|| anyhow!("{method}: truncated gRPC message"))
}

fn grpc_status(h: &hyper::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let msg = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("");
    Some((code, percent_decode(msg)))
}

/// grpc-message is percent-encoded.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn code_name(code: u32) -> &'static str {
    match code {
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        7 => "PermissionDenied",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        16 => "Unauthenticated",
        _ => "Other",
    }
}

/// Protobuf wire fields: (number, varint value or length-delimited bytes).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let tag = varint(buf, &mut pos).context("bad protobuf tag")?;
        let (num, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((
                num,
                Field::Varint(varint(buf, &mut pos).context("bad varint")?),
            )),
            2 => {
                let len = varint(buf, &mut pos).context("bad length")? as usize;
                let b = buf.get(pos..pos + len).context("truncated field")?;
                pos += len;
                out.push((num, Field::Bytes(b)));
            }
            1 => pos += 8,
            5 => pos += 4,
            w => bail!("unsupported protobuf wire type {w}"),
        }
    }
    Ok(out)
}

fn string_field(buf: &[u8], num: u64) -> Result<String> {
    Ok(fields(buf)?
        .into_iter()
        .find_map(|(n, f)| match f {
            Field::Bytes(b) if n == num => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .unwrap_or_default())
}

pub fn decode_version(msg: &[u8]) -> Result<RuntimeInfo> {
    Ok(RuntimeInfo {
        runtime_name: string_field(msg, 2)?,
        runtime_version: string_field(msg, 3)?,
        runtime_api_version: string_field(msg, 4)?,
    })
}

/// StatusResponse.status (1) → RuntimeStatus.conditions (1, repeated).
pub fn decode_status(msg: &[u8]) -> Result<Vec<Condition>> {
    let mut out = Vec::new();
    for (n, f) in fields(msg)? {
        let (1, Field::Bytes(status)) = (n, f) else {
            continue;
        };
        for (n, f) in fields(status)? {
            let (1, Field::Bytes(c)) = (n, f) else {
                continue;
            };
            let status = fields(c)?
                .into_iter()
                .any(|(n, f)| n == 2 && matches!(f, Field::Varint(v) if v != 0));
            out.push(Condition {
                kind: string_field(c, 1)?,
                status,
                reason: string_field(c, 3)?,
                message: string_field(c, 4)?,
            });
        }
    }
    Ok(out)
}

/// Version, then Status: Ok(info) when the runtime and its network are ready, as the real
/// kubelet requires for a Ready node.
pub async fn check(socket: &Path) -> Result<RuntimeInfo> {
    let call = async {
        let version = unary(socket, "/runtime.v1.RuntimeService/Version")
            .await
            .context("container runtime is down")?;
        let info = decode_version(&version)?;
        let conditions = decode_status(&unary(socket, "/runtime.v1.RuntimeService/Status").await?)?;
        for want in ["RuntimeReady", "NetworkReady"] {
            match conditions.iter().find(|c| c.kind == want) {
                Some(c) if c.status => {}
                Some(c) => bail!(
                    "container runtime {}: {want}=false reason:{} message:{}",
                    if want == "NetworkReady" {
                        "network not ready"
                    } else {
                        "not ready"
                    },
                    c.reason,
                    c.message
                ),
                None => bail!("container runtime status has no {want} condition"),
            }
        }
        Ok(info)
    };
    tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .map_err(|_| anyhow!("container runtime did not answer within 5s"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![(num << 3) | 2, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(
            percent_decode("unknown%20service%3A x"),
            "unknown service: x"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn decodes_version_and_status() {
        let mut msg = field(1, b"0.1.0");
        msg.extend(field(2, b"containerd"));
        msg.extend(field(3, b"v1.6.20"));
        msg.extend(field(4, b"v1"));
        let v = decode_version(&msg).unwrap();
        assert_eq!(v.runtime_name, "containerd");
        assert_eq!(v.runtime_version, "v1.6.20");

        let mut ready = field(1, b"RuntimeReady");
        ready.extend([2 << 3, 1]);
        let mut net = field(1, b"NetworkReady");
        net.extend(field(3, b"NetworkPluginNotReady"));
        let mut status = field(1, &ready);
        status.extend(field(1, &net));
        let conds = decode_status(&field(1, &status)).unwrap();
        assert_eq!(conds.len(), 2);
        assert!(conds[0].status);
        assert!(!conds[1].status);
        assert_eq!(conds[1].reason, "NetworkPluginNotReady");
    }
}
