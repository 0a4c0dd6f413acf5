//! The PROXY protocol, version 2 (HAProxy's `send-proxy-v2`): a balancer in TCP mode sends
//! the client's address ahead of the TLS handshake, so the server's throttles count the
//! client's address and not the balancer's (issue 26). Read only on connections from the
//! addresses configured in `limits.balancers`; from anyone else, such a header would be a
//! client claiming any address it likes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The most address data a header may carry (Unix sockets' 216 bytes, and TLVs): more is
/// no PROXY header this server reads.
const MAX_BODY: usize = 536;

fn malformed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("PROXY header: {why}"))
}

/// Reads the PROXY v2 header a balancer sends first. Returns the client's address for a
/// proxied TCP connection, or `None` for the balancer's own (a `LOCAL` health check, or an
/// address family other than TCP over IPv4 or IPv6).
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Option<SocketAddr>> {
    let mut head = [0u8; 16];
    stream.read_exact(&mut head).await?;
    if head[..12] != SIGNATURE {
        return Err(malformed("missing (is the balancer set to send-proxy-v2?)"));
    }
    let (version, command) = (head[12] >> 4, head[12] & 0x0f);
    if version != 2 {
        return Err(malformed("not version 2"));
    }
    let len = u16::from_be_bytes([head[14], head[15]]) as usize;
    if len > MAX_BODY {
        return Err(malformed("too long"));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    match command {
        0 => return Ok(None),
        1 => {}
        _ => return Err(malformed("unknown command")),
    }
    let family = head[13];
    let address = match family {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 if len >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([body[8], body[9]]))
        }
        0x21 if len >= 36 => {
            let octets: [u8; 16] = body[..16].try_into().expect("16 bytes");
            let port = u16::from_be_bytes([body[32], body[33]]);
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port)
        }
        0x11 | 0x21 => return Err(malformed("addresses cut short")),
        _ => return Ok(None),
    };
    Ok(Some(address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn a_proxied_address_is_read_and_nothing_after_it() {
        let mut ipv4 = header(
            1,
            0x11,
            &[192, 0, 2, 7, 10, 0, 0, 1, 0x1f, 0x90, 0x01, 0xbb],
        );
        ipv4.extend_from_slice(b"\x16\x03\x01TLS");
        let mut input = &ipv4[..];
        assert_eq!(
            read_header(&mut input).await.unwrap(),
            Some("192.0.2.7:8080".parse().unwrap())
        );
        assert_eq!(input, b"\x16\x03\x01TLS", "the handshake is left to TLS");
        let mut six = vec![0u8; 36];
        six[15] = 1;
        six[32..34].copy_from_slice(&443u16.to_be_bytes());
        let ipv6 = header(1, 0x21, &six);
        assert_eq!(
            read_header(&mut &ipv6[..]).await.unwrap(),
            Some("[::1]:443".parse().unwrap())
        );
        let local = header(0, 0x00, &[]);
        assert_eq!(read_header(&mut &local[..]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let plain = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh";
        assert!(read_header(&mut &plain[..]).await.is_err());
        let short = header(1, 0x11, &[1, 2, 3]);
        assert!(read_header(&mut &short[..]).await.is_err());
        let mut long = header(1, 0x11, &[]);
        long[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert!(read_header(&mut &long[..]).await.is_err());
    }
}
