//! What a server sends back to a probe ClientHello: a ServerHello, a HelloRetryRequest, an
//! alert, or something else. The bytes come from a server that may be hostile, so parsing
//! never panics, never indexes without a bound check, and never allocates by a length the
//! peer chose: the caller reads at most `MAX_REPLY_BYTES` within a deadline and hands the
//! bytes read so far to `parse_server_reply`, which answers "need more" until it can decide.

use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt;

/// Bytes read from one server before giving up (an HRR cookie can be up to 64 KiB).
pub(crate) const MAX_REPLY_BYTES: usize = 72 * 1024;
/// RFC 8446 §5.1: a record fragment is at most 2^14 bytes, plus 2048 bytes of expansion.
const MAX_RECORD: usize = (1 << 14) + 2048;
/// The random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest" (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// The parts of a ServerHello (or HelloRetryRequest) a probe learns from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerHello {
    /// The version negotiated: supported_versions when present, legacy_version otherwise.
    pub version: u16,
    pub cipher_suite: u16,
    pub compression: u8,
    /// TLS 1.3: the key share's group (or the group a HelloRetryRequest asks for).
    pub group: Option<u16>,
    pub retry_request: bool,
    /// Extension types in the order the server sent them.
    pub extensions: Vec<u16>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Hello(ServerHello),
    Alert {
        level: u8,
        description: u8,
    },
    /// The connection closed (or reset) before a whole message arrived.
    Closed,
    /// Bytes that are not a TLS answer to a ClientHello.
    Invalid {
        reason: String,
    },
    /// Nothing decisive before the deadline.
    Timeout,
}

/// The result of looking at the bytes read so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Done(Reply),
    NeedMore,
}

fn invalid(reason: impl Into<String>) -> Parsed {
    Parsed::Done(Reply::Invalid {
        reason: reason.into(),
    })
}

/// Decides what `bytes` (the start of a server's answer) say, or that more are needed.
pub fn parse_server_reply(bytes: &[u8]) -> Parsed {
    if bytes.len() > MAX_REPLY_BYTES {
        return invalid("reply too large");
    }
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = bytes;
    loop {
        let Some(header) = rest.get(..5) else {
            return match rest.first() {
                Some(b) if ![20, 21, 22, 23].contains(b) => not_tls(rest),
                _ => Parsed::NeedMore,
            };
        };
        let content_type = header[0];
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if ![20, 21, 22, 23].contains(&content_type) || header[1] != 3 {
            return not_tls(rest);
        }
        if len > MAX_RECORD {
            return invalid(format!("record of {len} bytes"));
        }
        let Some(fragment) = rest.get(5..5 + len) else {
            return Parsed::NeedMore;
        };
        rest = &rest[5 + len..];
        match content_type {
            21 => {
                return match fragment {
                    [level, description, ..] => Parsed::Done(Reply::Alert {
                        level: *level,
                        description: *description,
                    }),
                    _ => invalid("alert record shorter than 2 bytes"),
                };
            }
            22 => {
                handshake.extend_from_slice(fragment);
                if let Some(done) = parse_handshake(&handshake) {
                    return done;
                }
            }
            20 => return invalid("ChangeCipherSpec before ServerHello"),
            _ => return invalid("application data before ServerHello"),
        }
    }
}

fn not_tls(bytes: &[u8]) -> Parsed {
    let shown: String = bytes
        .iter()
        .take(16)
        .map(|&b| match b {
            0x20..=0x7e => b as char,
            _ => '.',
        })
        .collect();
    invalid(format!("not a TLS record: {shown:?}"))
}

/// The first handshake message, once it is whole.
fn parse_handshake(hs: &[u8]) -> Option<Parsed> {
    let [kind, a, b, c, body @ ..] = hs else {
        return None;
    };
    let len = u32::from_be_bytes([0, *a, *b, *c]) as usize;
    if *kind != 2 {
        return Some(invalid(format!(
            "handshake message {kind} instead of ServerHello"
        )));
    }
    if len > MAX_REPLY_BYTES {
        return Some(invalid(format!("ServerHello of {len} bytes")));
    }
    let body = body.get(..len)?;
    Some(match parse_server_hello(body) {
        Some(hello) => Parsed::Done(Reply::Hello(hello)),
        None => invalid("malformed ServerHello"),
    })
}

/// A cursor over untrusted bytes: every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    let random = r.take(32)?;
    let session_id = r.vec8()?;
    if session_id.len() > 32 {
        return None;
    }
    let cipher_suite = r.u16()?;
    let compression = r.u8()?;
    let mut hello = ServerHello {
        version: legacy_version,
        cipher_suite,
        compression,
        group: None,
        retry_request: random == HRR_RANDOM,
        extensions: Vec::new(),
    };
    if r.0.is_empty() {
        return Some(hello);
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let mut data = Reader(exts.vec16()?);
        // At most one entry per extension type the server could send (RFC 8446 §4.2).
        if hello.extensions.len() < 64 {
            hello.extensions.push(kind);
        }
        match kind {
            0x002b => hello.version = data.u16()?,
            0x0033 => hello.group = Some(data.u16()?),
            _ => {}
        }
    }
    Some(hello)
}

/// Bytes read while looking for a TLS 1.2-or-older Certificate message.
pub(crate) const MAX_FLIGHT_BYTES: usize = 128 * 1024;
/// More certificates than any real chain has.
const MAX_CHAIN_LEN: usize = 16;

/// The certificate chain in a TLS 1.2-or-older server flight (ServerHello, then Certificate,
/// both in the clear), for servers rustls cannot talk to. `None` means "need more bytes".
pub fn parse_certificates(bytes: &[u8]) -> Option<Result<Vec<Vec<u8>>, String>> {
    if bytes.len() > MAX_FLIGHT_BYTES {
        return Some(Err("server flight too large".into()));
    }
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = bytes;
    loop {
        let header = rest.get(..5)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len > MAX_RECORD || header[1] != 3 {
            return Some(Err("not a TLS record".into()));
        }
        let fragment = rest.get(5..5 + len)?;
        rest = &rest[5 + len..];
        match header[0] {
            22 => handshake.extend_from_slice(fragment),
            21 => return Some(Err("alert instead of a certificate".into())),
            _ => return Some(Err("unexpected record before the certificate".into())),
        }
        let mut msgs = Reader(&handshake);
        while let (Some(kind), Some(len)) = (msgs.u8(), msgs.take(3)) {
            let len = u32::from_be_bytes([0, len[0], len[1], len[2]]) as usize;
            if len > MAX_FLIGHT_BYTES {
                return Some(Err(format!("handshake message of {len} bytes")));
            }
            let Some(body) = msgs.take(len) else {
                break;
            };
            match kind {
                2 => continue,
                11 => return Some(certificate_list(body)),
                other => {
                    return Some(Err(format!(
                        "handshake message {other} before the certificate"
                    )));
                }
            }
        }
    }
}

/// RFC 5246 §7.4.2: a 24-bit length, then each certificate with its own 24-bit length.
fn certificate_list(body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut r = Reader(body);
    let bad = || "malformed Certificate message".to_owned();
    let len = r.take(3).ok_or_else(bad)?;
    let len = u32::from_be_bytes([0, len[0], len[1], len[2]]) as usize;
    let mut list = Reader(r.take(len).ok_or_else(bad)?);
    let mut chain = Vec::new();
    while !list.0.is_empty() {
        let n = list.take(3).ok_or_else(bad)?;
        let n = u32::from_be_bytes([0, n[0], n[1], n[2]]) as usize;
        chain.push(list.take(n).ok_or_else(bad)?.to_vec());
        if chain.len() > MAX_CHAIN_LEN {
            return Err(format!("more than {MAX_CHAIN_LEN} certificates"));
        }
    }
    Ok(chain)
}

/// Reads a TLS 1.2-or-older server flight from `stream` until its Certificate message.
pub(crate) async fn read_certificates<S>(
    stream: &mut S,
    timeout: Duration,
) -> Result<Vec<Vec<u8>>, String>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let read = async {
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return Err("the connection closed before the certificate".to_owned());
                }
                Ok(n) => n,
            };
            let room = MAX_FLIGHT_BYTES + 1 - buf.len().min(MAX_FLIGHT_BYTES + 1);
            buf.extend_from_slice(&chunk[..n.min(room)]);
            if let Some(done) = parse_certificates(&buf) {
                return done;
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err("no certificate in time".into()))
}

/// Reads a server's answer from `stream` until it is decided, the peer closes, the cap is
/// reached, or `timeout` passes.
pub(crate) async fn read_reply<S>(stream: &mut S, timeout: Duration) -> Reply
where
    S: tokio::io::AsyncRead + Unpin,
{
    let read = async {
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Reply::Closed,
                Ok(n) => n,
            };
            let room = MAX_REPLY_BYTES + 1 - buf.len().min(MAX_REPLY_BYTES + 1);
            buf.extend_from_slice(&chunk[..n.min(room)]);
            if let Parsed::Done(reply) = parse_server_reply(&buf) {
                return reply;
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Reply::Timeout)
}

/// An alert description's name (RFC 8446 §6), for reports.
pub(crate) fn alert_name(description: u8) -> &'static str {
    match description {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        22 => "record_overflow",
        40 => "handshake_failure",
        42 => "bad_certificate",
        47 => "illegal_parameter",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        120 => "no_application_protocol",
        _ => "other alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn server_hello(version: u16, suite: u16, random: [u8; 32], exts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = version.to_be_bytes().to_vec();
        body.extend_from_slice(&random);
        body.push(0);
        body.extend_from_slice(&suite.to_be_bytes());
        body.push(0);
        if !exts.is_empty() {
            let mut e = Vec::new();
            for (k, d) in exts {
                e.extend_from_slice(&k.to_be_bytes());
                e.extend_from_slice(&(d.len() as u16).to_be_bytes());
                e.extend_from_slice(d);
            }
            body.extend_from_slice(&(e.len() as u16).to_be_bytes());
            body.extend_from_slice(&e);
        }
        let mut hs = vec![2, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        hs
    }

    fn hello_of(p: Parsed) -> ServerHello {
        match p {
            Parsed::Done(Reply::Hello(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_tls12_server_hello_gives_version_and_suite() {
        let bytes = record(
            22,
            &server_hello(0x0303, 0xc02f, [7; 32], &[(0xff01, &[0])]),
        );
        let h = hello_of(parse_server_reply(&bytes));
        assert_eq!(
            (h.version, h.cipher_suite, h.retry_request),
            (0x0303, 0xc02f, false)
        );
        assert_eq!(h.extensions, vec![0xff01]);
    }

    #[test]
    fn supported_versions_overrides_the_legacy_version_in_tls13() {
        let hs = server_hello(
            0x0303,
            0x1301,
            [1; 32],
            &[(0x2b, &[3, 4]), (0x33, &[0, 29, 0, 32, 1, 2])],
        );
        let h = hello_of(parse_server_reply(&record(22, &hs)));
        assert_eq!(
            (h.version, h.cipher_suite, h.group),
            (0x0304, 0x1301, Some(29))
        );
    }

    #[test]
    fn a_hello_retry_request_is_recognised_with_its_group() {
        let hs = server_hello(
            0x0303,
            0x1302,
            HRR_RANDOM,
            &[(0x2b, &[3, 4]), (0x33, &[0, 23])],
        );
        let h = hello_of(parse_server_reply(&record(22, &hs)));
        assert!(h.retry_request);
        assert_eq!(h.group, Some(23));
    }

    #[test]
    fn a_server_hello_split_over_records_is_reassembled() {
        let hs = server_hello(0x0301, 0x002f, [3; 32], &[]);
        let (a, b) = hs.split_at(10);
        let mut bytes = record(22, a);
        assert_eq!(parse_server_reply(&bytes), Parsed::NeedMore);
        bytes.extend(record(22, b));
        assert_eq!(hello_of(parse_server_reply(&bytes)).cipher_suite, 0x002f);
    }

    #[test]
    fn alerts_are_reported_with_their_description() {
        assert_eq!(
            parse_server_reply(&record(21, &[2, 70])),
            Parsed::Done(Reply::Alert {
                level: 2,
                description: 70
            })
        );
        assert_eq!(alert_name(70), "protocol_version");
    }

    #[test]
    fn every_truncation_of_a_valid_reply_asks_for_more() {
        let bytes = record(22, &server_hello(0x0303, 0xc02f, [7; 32], &[(0x17, &[])]));
        for n in 0..bytes.len() {
            assert_eq!(parse_server_reply(&bytes[..n]), Parsed::NeedMore, "{n}");
        }
    }

    #[test]
    fn plain_http_and_garbage_are_invalid_not_a_hang() {
        for bytes in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            &[0x80, 0x2e, 0x04][..],
            &[0xff][..],
        ] {
            assert!(
                matches!(
                    parse_server_reply(bytes),
                    Parsed::Done(Reply::Invalid { .. })
                ),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn huge_lengths_are_refused_without_allocating_them() {
        // A record longer than TLS allows.
        assert!(matches!(
            parse_server_reply(&[22, 3, 3, 0xff, 0xff]),
            Parsed::Done(Reply::Invalid { .. })
        ));
        // A handshake message claiming 16 MiB.
        assert!(matches!(
            parse_server_reply(&record(22, &[2, 0xff, 0xff, 0xff, 0, 0])),
            Parsed::Done(Reply::Invalid { .. })
        ));
        // Inner lengths running past the end of the ServerHello.
        let mut hs = server_hello(0x0303, 0xc02f, [7; 32], &[(0x2b, &[3, 4])]);
        let n = hs.len();
        hs[n - 4] = 0xff;
        assert!(matches!(
            parse_server_reply(&record(22, &hs)),
            Parsed::Done(Reply::Invalid { .. })
        ));
    }

    #[test]
    fn other_handshake_messages_and_records_first_are_invalid() {
        for bytes in [
            record(22, &[11, 0, 0, 0]),
            record(20, &[1]),
            record(23, &[1, 2, 3]),
            record(21, &[2]),
        ] {
            assert!(
                matches!(
                    parse_server_reply(&bytes),
                    Parsed::Done(Reply::Invalid { .. })
                ),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn more_bytes_than_the_cap_are_refused() {
        let bytes = vec![22u8; MAX_REPLY_BYTES + 1];
        assert!(matches!(
            parse_server_reply(&bytes),
            Parsed::Done(Reply::Invalid { .. })
        ));
    }

    #[test]
    fn a_certificate_message_after_the_server_hello_gives_the_chain() {
        let mut hs = server_hello(0x0303, 0x009c, [7; 32], &[]);
        let certs: [&[u8]; 2] = [b"leaf", b"issuer"];
        let mut list = Vec::new();
        for c in certs {
            list.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            list.extend_from_slice(c);
        }
        let mut body = (list.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend_from_slice(&list);
        hs.push(11);
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let (a, b) = hs.split_at(hs.len() - 5);
        let mut bytes = record(22, a);
        for n in 0..bytes.len() {
            assert_eq!(parse_certificates(&bytes[..n]), None, "{n}");
        }
        bytes.extend(record(22, b));
        assert_eq!(
            parse_certificates(&bytes),
            Some(Ok(vec![b"leaf".to_vec(), b"issuer".to_vec()]))
        );
        // Inner lengths that overrun are an error, not a panic.
        let mut hs = server_hello(0x0303, 0x009c, [7; 32], &[]);
        hs.extend_from_slice(&[11, 0, 0, 4, 0, 0, 9, 1]);
        assert!(matches!(parse_certificates(&record(22, &hs)), Some(Err(_))));
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_and_a_closing_one_is_closed() {
        let (mut client, _server) = tokio::io::duplex(64);
        let started = std::time::Instant::now();
        assert_eq!(
            read_reply(&mut client, Duration::from_millis(100)).await,
            Reply::Timeout
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let (mut client, server) = tokio::io::duplex(64);
        drop(server);
        assert_eq!(
            read_reply(&mut client, Duration::from_secs(1)).await,
            Reply::Closed
        );
    }
}
