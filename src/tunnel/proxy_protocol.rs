//! The PROXY protocol v2 header (HAProxy's `proxy-protocol.txt` §2.2) sent first to a tunnel's
//! upstream, so that it learns who the client is: its address, candado's address, and as
//! TLVs the ALPN protocol and the SNI name the client asked for.

use std::net::SocketAddr;

use ppp::v2::{Addresses, Builder, Command, Protocol, Type, Version};

pub(super) fn header(
    client: SocketAddr,
    local: SocketAddr,
    alpn: Option<&[u8]>,
    sni: Option<&str>,
) -> std::io::Result<Vec<u8>> {
    let addresses = Addresses::from((canonical(client), canonical(local)));
    let mut builder =
        Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses);
    if let Some(alpn) = alpn {
        builder = builder.write_tlv(Type::ALPN, alpn)?;
    }
    if let Some(sni) = sni {
        builder = builder.write_tlv(Type::Authority, sni.as_bytes())?;
    }
    builder.build()
}

/// An IPv4 client on a dual-stack socket shows as `::ffff:a.b.c.d`; send it as IPv4 when the
/// other address can be too, so that both are of one family as the header requires.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_carries_both_addresses_and_the_tlvs() {
        let h = header(
            "127.0.0.1:50000".parse().unwrap(),
            "127.0.0.2:7443".parse().unwrap(),
            Some(b"chat/1"),
            Some("chat.test"),
        )
        .unwrap();
        assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(h[12], 0x21, "version 2, PROXY");
        assert_eq!(h[13], 0x11, "TCP over IPv4");
        let len = u16::from_be_bytes([h[14], h[15]]) as usize;
        assert_eq!(h.len(), 16 + len);
        assert_eq!(&h[16..20], &[127, 0, 0, 1]);
        assert_eq!(&h[20..24], &[127, 0, 0, 2]);
        assert_eq!(u16::from_be_bytes([h[24], h[25]]), 50000);
        assert_eq!(u16::from_be_bytes([h[26], h[27]]), 7443);
        assert_eq!(&h[28..31], &[0x01, 0, 6]);
        assert_eq!(&h[31..37], b"chat/1");
        assert_eq!(&h[37..40], &[0x02, 0, 9]);
        assert_eq!(&h[40..], b"chat.test");
    }

    #[test]
    fn ipv4_mapped_clients_are_sent_as_ipv4() {
        let h = header(
            "[::ffff:10.0.0.1]:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            None,
            None,
        )
        .unwrap();
        assert_eq!(h[13], 0x11);
    }
}
