//! The PROXY protocol v2 header (HAProxy's `proxy-protocol.txt` §2.2) sent first to a tunnel's
//! upstream, so that it learns who the client is: its address, candado's address, and as
//! TLVs the ALPN protocol and the SNI name the client asked for, and the TLS facts (version,
//! cipher, the verified client certificate's CN) as HAProxy's `send-proxy-v2-ssl-cn` sends them.

use std::net::SocketAddr;

use ppp::v2::{Addresses, Builder, Command, Protocol, Type, Version};

/// What the TLS handshake established, for the TLVs.
pub(super) struct TlsFacts<'a> {
    pub(super) alpn: Option<&'a [u8]>,
    pub(super) sni: Option<&'a str>,
    /// `TLSv1.3`, as OpenSSL names it.
    pub(super) version: Option<&'a str>,
    pub(super) cipher: Option<String>,
    /// Whether the client presented a certificate (verified: otherwise there would be no
    /// connection), and its subject CN.
    pub(super) client_cert: bool,
    pub(super) client_cn: Option<&'a str>,
}

pub(super) fn header(
    client: SocketAddr,
    local: SocketAddr,
    tls: &TlsFacts<'_>,
) -> std::io::Result<Vec<u8>> {
    let addresses = Addresses::from((canonical(client), canonical(local)));
    let mut builder =
        Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses);
    if let Some(alpn) = tls.alpn {
        builder = builder.write_tlv(Type::ALPN, alpn)?;
    }
    if let Some(sni) = tls.sni {
        builder = builder.write_tlv(Type::Authority, sni.as_bytes())?;
    }
    builder.write_tlv(Type::SSL, &ssl_tlv(tls))?.build()
}

/// PP2_TYPE_SSL (§2.2.5): client flags, the verify result, then sub-TLVs.
fn ssl_tlv(tls: &TlsFacts<'_>) -> Vec<u8> {
    const CLIENT_SSL: u8 = 0x01;
    const CLIENT_CERT_CONN: u8 = 0x02;
    const CLIENT_CERT_SESS: u8 = 0x04;
    let mut value = vec![match tls.client_cert {
        true => CLIENT_SSL | CLIENT_CERT_CONN | CLIENT_CERT_SESS,
        false => CLIENT_SSL,
    }];
    // 0: a certificate was presented and verified; anything else: not.
    value.extend_from_slice(&u32::from(!tls.client_cert).to_be_bytes());
    let subs = [
        (0x21, tls.version.map(str::as_bytes)),
        (0x22, tls.client_cn.map(str::as_bytes)),
        (0x23, tls.cipher.as_deref().map(str::as_bytes)),
    ];
    for (kind, bytes) in subs {
        let Some(bytes) = bytes else { continue };
        let Ok(len) = u16::try_from(bytes.len()) else {
            continue;
        };
        value.push(kind);
        value.extend_from_slice(&len.to_be_bytes());
        value.extend_from_slice(bytes);
    }
    value
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

    fn facts() -> TlsFacts<'static> {
        TlsFacts {
            alpn: None,
            sni: None,
            version: None,
            cipher: None,
            client_cert: false,
            client_cn: None,
        }
    }

    #[test]
    fn the_header_carries_both_addresses_and_the_tlvs() {
        let tls = TlsFacts {
            alpn: Some(b"chat/1"),
            sni: Some("chat.test"),
            ..facts()
        };
        let h = header(
            "127.0.0.1:50000".parse().unwrap(),
            "127.0.0.2:7443".parse().unwrap(),
            &tls,
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
        assert_eq!(&h[40..49], b"chat.test");
        assert_eq!(
            &h[49..],
            &[0x20, 0, 5, 0x01, 0, 0, 0, 1],
            "TLS, no certificate"
        );
    }

    #[test]
    fn a_verified_client_certificate_is_flagged_with_its_cn() {
        let tls = TlsFacts {
            version: Some("TLSv1.3"),
            client_cert: true,
            client_cn: Some("alice"),
            ..facts()
        };
        let ssl = ssl_tlv(&tls);
        assert_eq!(&ssl[..5], &[0x07, 0, 0, 0, 0], "SSL, certificate, verified");
        assert_eq!(&ssl[5..8], &[0x21, 0, 7]);
        assert_eq!(&ssl[8..15], b"TLSv1.3");
        assert_eq!(&ssl[15..18], &[0x22, 0, 5]);
        assert_eq!(&ssl[18..], b"alice");
    }

    #[test]
    fn ipv4_mapped_clients_are_sent_as_ipv4() {
        let h = header(
            "[::ffff:10.0.0.1]:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            &facts(),
        )
        .unwrap();
        assert_eq!(h[13], 0x11);
    }
}
