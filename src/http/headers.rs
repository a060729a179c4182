//! Header rules of a reverse proxy, as pure functions over `HeaderMap`: hop-by-hop removal,
//! ambiguous framing, forwarding headers, `Secure` cookies and `Location` rewriting.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
];

/// Removes hop-by-hop headers: the fixed list, `Keep-Alive`, any `Proxy-*`, and every header
/// the `Connection` header names.
pub fn remove_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        h.remove(name);
    }
    let proxy: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-") || k.as_str() == "keep-alive")
        .cloned()
        .collect();
    for name in proxy {
        h.remove(name);
    }
}

/// Framing a proxy must not guess at (RFC 9112 §6.3): both Content-Length and
/// Transfer-Encoding, or Content-Length values that differ.
pub fn framing_is_ambiguous(h: &HeaderMap) -> bool {
    if h.contains_key(header::TRANSFER_ENCODING) && h.contains_key(header::CONTENT_LENGTH) {
        return true;
    }
    let mut lengths = h
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(|v| v.trim_ascii());
    match lengths.next() {
        Some(first) => lengths.any(|other| other != first),
        None => false,
    }
}

/// Adds X-Forwarded-For/-Proto/-Host, X-Real-IP and RFC 7239 `Forwarded`. Incoming
/// forwarding headers are kept only when the peer is a trusted proxy; otherwise a client could
/// claim any address.
pub fn add_forwarding(h: &mut HeaderMap, peer: IpAddr, host: &str, peer_is_trusted: bool) {
    let prior_xff = match peer_is_trusted {
        true => h
            .get(X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        false => None,
    };
    let prior_fwd = match peer_is_trusted {
        true => h
            .get(header::FORWARDED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        false => None,
    };
    for name in [
        X_FORWARDED_FOR,
        X_FORWARDED_PROTO,
        X_FORWARDED_HOST,
        X_REAL_IP,
        header::FORWARDED,
    ] {
        h.remove(name);
    }
    let xff = match prior_xff {
        Some(prior) => format!("{prior}, {peer}"),
        None => peer.to_string(),
    };
    let node = match peer {
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let this = format!("for={node};host=\"{host}\";proto=https");
    let fwd = match prior_fwd {
        Some(prior) => format!("{prior}, {this}"),
        None => this,
    };
    let real_ip = match peer_is_trusted {
        true => xff.split(',').next().unwrap_or_default().trim().to_owned(),
        false => peer.to_string(),
    };
    let pairs = [
        (X_FORWARDED_FOR, xff),
        (X_FORWARDED_PROTO, "https".to_owned()),
        (X_FORWARDED_HOST, host.to_owned()),
        (X_REAL_IP, real_ip),
        (header::FORWARDED, fwd),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// Replaces any client-sent identity headers with the verified certificate's, if any. A
/// client can never set these itself: backends trust them as candado's word.
pub fn set_client_identity(
    h: &mut HeaderMap,
    identity: Option<&crate::tls::ClientIdentity>,
    with_pem: bool,
) {
    for name in [
        X_CLIENT_CERT_SUBJECT,
        X_CLIENT_CERT_SAN,
        X_CLIENT_CERT_FINGERPRINT,
        X_CLIENT_CERT,
    ] {
        h.remove(name);
    }
    let Some(id) = identity else {
        return;
    };
    // Certificate text may hold any Unicode: escape what a header value cannot carry.
    let escape = |v: &str| percent_encoding::utf8_percent_encode(v, HEADER_UNSAFE).to_string();
    let mut values = vec![
        (X_CLIENT_CERT_SUBJECT, escape(&id.subject)),
        (X_CLIENT_CERT_SAN, escape(&id.sans.join(", "))),
        (X_CLIENT_CERT_FINGERPRINT, id.fingerprint_hex()),
    ];
    if with_pem {
        // URL-encoded, as nginx's $ssl_client_escaped_cert: a header cannot hold newlines.
        let pem = id.pem();
        let encoded =
            percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC);
        values.push((X_CLIENT_CERT, encoded.to_string()));
    }
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// Control characters and `%` itself (so that an escape can be told from the text).
const HEADER_UNSAFE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

pub const X_CLIENT_CERT_SUBJECT: HeaderName = HeaderName::from_static("x-client-cert-subject");
pub const X_CLIENT_CERT_SAN: HeaderName = HeaderName::from_static("x-client-cert-san");
pub const X_CLIENT_CERT_FINGERPRINT: HeaderName =
    HeaderName::from_static("x-client-cert-fingerprint");
pub const X_CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert");

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Adds the `Secure` attribute to every `Set-Cookie` that lacks it (RFC 6265 §4.1.2.5), so
/// cookies set by an app behind the proxy never travel over plain HTTP.
pub fn secure_cookies(h: &mut HeaderMap) {
    let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return;
    }
    h.remove(header::SET_COOKIE);
    for c in cookies {
        let has_secure = c
            .to_str()
            .map(|s| {
                s.split(';')
                    .skip(1)
                    .any(|a| a.trim().eq_ignore_ascii_case("secure"))
            })
            .unwrap_or(true);
        let value = match has_secure {
            true => c,
            false => {
                let mut bytes = c.as_bytes().to_vec();
                bytes.extend_from_slice(b"; Secure");
                HeaderValue::from_bytes(&bytes).unwrap_or(c)
            }
        };
        h.append(header::SET_COOKIE, value);
    }
}

/// Rewrites a `Location` that points at the upstream (`http://127.0.0.1:5000/x`) to the public
/// origin (`https://app.example/x`), as nginx's `proxy_redirect default` does.
pub fn rewrite_location(
    h: &mut HeaderMap,
    upstream_origin: &str,
    public_origin: impl FnOnce() -> String,
) {
    let Some(loc) = h.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(rest) = strip_prefix_ignore_case(loc, upstream_origin) else {
        return;
    };
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{}{rest}", public_origin())) {
        h.insert(header::LOCATION, v);
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn connection_header_tokens_are_removed_case_insensitively() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("keep-alive", "5"),
            ("proxy-authorization", "x"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn content_length_with_transfer_encoding_is_ambiguous() {
        assert!(framing_is_ambiguous(&map(&[
            ("content-length", "5"),
            ("transfer-encoding", "chunked")
        ])));
        assert!(framing_is_ambiguous(&map(&[
            ("content-length", "5"),
            ("content-length", "6")
        ])));
        assert!(framing_is_ambiguous(&map(&[("content-length", "5, 6")])));
        assert!(!framing_is_ambiguous(&map(&[
            ("content-length", "5"),
            ("content-length", "5")
        ])));
        assert!(!framing_is_ambiguous(&map(&[(
            "transfer-encoding",
            "chunked"
        )])));
    }

    #[test]
    fn forwarded_for_from_untrusted_clients_is_replaced() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        add_forwarding(&mut h, "10.0.0.1".parse().unwrap(), "app.example", false);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-real-ip"], "10.0.0.1");
        assert_eq!(
            h["forwarded"],
            "for=10.0.0.1;host=\"app.example\";proto=https"
        );
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn forwarded_for_from_trusted_proxies_is_appended() {
        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        add_forwarding(&mut h, "::1".parse().unwrap(), "a", true);
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, ::1");
        assert_eq!(h["x-real-ip"], "1.2.3.4");
        assert_eq!(h["forwarded"], "for=\"[::1]\";host=\"a\";proto=https");
    }

    #[test]
    fn every_cookie_gets_secure_once() {
        let mut h = map(&[
            ("set-cookie", "a=1; Path=/"),
            ("set-cookie", "b=2; secure"),
            ("set-cookie", "c=3"),
        ]);
        secure_cookies(&mut h);
        let all: Vec<_> = h
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(all, ["a=1; Path=/; Secure", "b=2; secure", "c=3; Secure"]);
    }

    #[test]
    fn locations_pointing_at_the_upstream_become_public() {
        let mut h = map(&[("location", "http://127.0.0.1:5000/login?next=%2F")]);
        rewrite_location(&mut h, "http://127.0.0.1:5000", || {
            "https://app.example".into()
        });
        assert_eq!(h["location"], "https://app.example/login?next=%2F");
        let mut h = map(&[("location", "http://127.0.0.1:50001/x")]);
        rewrite_location(&mut h, "http://127.0.0.1:5000", || {
            "https://app.example".into()
        });
        assert_eq!(
            h["location"], "http://127.0.0.1:50001/x",
            "another port is another origin"
        );
    }
}
