//! One DNS question over TCP (RFC 1035 4.2.2: each message behind a two-byte length), enough for
//! the cluster DNS gate to ask for a name's IPv4 addresses and read the answer.

use std::net::Ipv4Addr;

use anyhow::{bail, ensure, Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// Asks `stream` (a DNS server's TCP port) for the A records of `name`.
pub async fn lookup_a<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    name: &str,
) -> Result<Vec<Ipv4Addr>> {
    let id = getrandom::u32().context("reading the system's random source")? as u16;
    let q = query(id, name)?;
    stream.write_u16(q.len() as u16).await?;
    stream.write_all(&q).await?;
    stream.flush().await?;
    let len = stream
        .read_u16()
        .await
        .context("the server closed the connection without an answer")?;
    let mut buf = vec![0; len as usize];
    stream.read_exact(&mut buf).await?;
    answer(id, &buf)
}

/// A standard query with recursion desired, for the A records of `name`.
fn query(id: u16, name: &str) -> Result<Vec<u8>> {
    let mut m = Vec::with_capacity(name.len() + 18);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        ensure!(
            !label.is_empty() && label.len() < 64,
            "`{name}` is not a DNS name"
        );
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&TYPE_A.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// The A records of an answer to query `id`; an error for any other response code.
fn answer(id: u16, m: &[u8]) -> Result<Vec<Ipv4Addr>> {
    let u16_at = |i: usize| -> Result<u16> {
        m.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .context("a truncated DNS answer")
    };
    ensure!(u16_at(0)? == id, "an answer to another question");
    let flags = u16_at(2)?;
    ensure!(flags & 0x8000 != 0, "a query, not an answer");
    match flags & 0x000f {
        0 => {}
        3 => bail!("NXDOMAIN: the name does not exist"),
        2 => bail!("SERVFAIL"),
        rcode => bail!("response code {rcode}"),
    }
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let mut i = 12;
    for _ in 0..questions {
        i = skip_name(m, i)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        i = skip_name(m, i)?;
        let (rtype, class, len) = (u16_at(i)?, u16_at(i + 2)?, u16_at(i + 8)? as usize);
        let data = m
            .get(i + 10..i + 10 + len)
            .context("a truncated DNS record")?;
        if rtype == TYPE_A && class == CLASS_IN && len == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        i += 10 + len;
    }
    Ok(out)
}

/// The offset after the (possibly compressed) name starting at `i`.
fn skip_name(m: &[u8], mut i: usize) -> Result<usize> {
    loop {
        let len = *m.get(i).context("a truncated DNS name")?;
        match len {
            0 => return Ok(i + 1),
            l if l & 0xc0 == 0xc0 => return Ok(i + 2),
            l => i += 1 + l as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as a server writes it: the question echoed, then A records pointing back at it.
    fn reply(id: u16, rcode: u16, ips: &[[u8; 4]]) -> Vec<u8> {
        let q = query(id, "kubernetes.default.svc.cluster.local").unwrap();
        let mut m = q[..12].to_vec();
        m[2..4].copy_from_slice(&(0x8180 | rcode).to_be_bytes());
        m[6..8].copy_from_slice(&(ips.len() as u16).to_be_bytes());
        m.extend_from_slice(&q[12..]);
        for ip in ips {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
            m.extend_from_slice(ip);
        }
        m
    }

    #[test]
    fn a_query_names_each_label() {
        let q = query(7, "kubernetes.default.svc.").unwrap();
        assert_eq!(&q[..2], &[0, 7]);
        assert_eq!(
            &q[12..],
            b"\x0akubernetes\x07default\x03svc\x00\x00\x01\x00\x01"
        );
        assert!(query(7, "a..b").is_err());
    }

    #[test]
    fn answers_give_their_addresses_or_say_why_not() {
        let ips = answer(9, &reply(9, 0, &[[10, 32, 0, 1], [10, 32, 0, 2]])).unwrap();
        assert_eq!(
            ips,
            [Ipv4Addr::new(10, 32, 0, 1), Ipv4Addr::new(10, 32, 0, 2)]
        );
        let e = answer(9, &reply(9, 3, &[])).unwrap_err().to_string();
        assert!(e.contains("NXDOMAIN"), "{e}");
        assert!(answer(8, &reply(9, 0, &[])).is_err());
        let cut = reply(9, 0, &[[10, 32, 0, 1]]);
        assert!(answer(9, &cut[..cut.len() - 2]).is_err());
    }

    #[tokio::test]
    async fn lookup_speaks_length_prefixed_messages() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let served = tokio::spawn(async move {
            let len = server.read_u16().await.unwrap();
            let mut q = vec![0; len as usize];
            server.read_exact(&mut q).await.unwrap();
            let r = reply(u16::from_be_bytes([q[0], q[1]]), 0, &[[10, 32, 0, 1]]);
            server.write_u16(r.len() as u16).await.unwrap();
            server.write_all(&r).await.unwrap();
        });
        let ips = lookup_a(&mut client, "kubernetes.default.svc.cluster.local")
            .await
            .unwrap();
        served.await.unwrap();
        assert_eq!(ips, [Ipv4Addr::new(10, 32, 0, 1)]);
    }
}
