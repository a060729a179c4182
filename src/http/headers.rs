//! Header rules of a reverse proxy, as pure functions over `HeaderMap`: hop-by-hop removal,
//! ambiguous framing, forwarding headers, `Secure` cookies and `Location` rewriting.

use std::borrow::Borrow;
use std::net::IpAddr;

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Removes hop-by-hop headers: the fixed list, `Keep-Alive`, `Close`, any `Proxy-*`, and every
/// header the `Connection` header names.
pub(crate) fn remove_hop_by_hop(h: &mut HeaderMap) {
    // A removal hashes its name even when the map lacks it: one look at each name finds the
    // few that are there. Most messages carry none, or only `Connection: keep-alive`.
    let mut found = h.keys().filter(|k| is_hop_by_hop(k));
    let Some(first) = found.next() else {
        return;
    };
    let named = match first == header::CONNECTION && found.next().is_none() {
        // The usual case: one hashed look both reads the field and removes it.
        true => match h.entry(header::CONNECTION) {
            Entry::Occupied(field) => connection_options(field.remove_entry_mult().1),
            Entry::Vacant(_) => Vec::new(),
        },
        false => {
            let named = connection_options(h.get_all(header::CONNECTION));
            let present: Vec<HeaderName> = h.keys().filter(|k| is_hop_by_hop(k)).cloned().collect();
            for name in present {
                h.remove(name);
            }
            named
        }
    };
    for name in named {
        h.remove(name);
    }
}

/// The header names the values of a `Connection` field list. `keep-alive` and `close`, the
/// options nearly every message carries, are hop-by-hop names already: building a
/// `HeaderName` for them would cost an allocation each.
fn connection_options<V: Borrow<HeaderValue>>(
    values: impl IntoIterator<Item = V>,
) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for value in values {
        let Ok(text) = value.borrow().to_str() else {
            continue;
        };
        named.extend(
            text.split(',')
                .map(str::trim)
                .filter(|t| {
                    !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close")
                })
                .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok()),
        );
    }
    named
}

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1): Connection, TE,
/// Trailer, Transfer-Encoding, Upgrade, Keep-Alive, Close and any `Proxy-*`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    // Names are stored lower-cased: plain comparisons, no case folding. By length first: this
    // runs for every field of every proxied message, and most names have none of these lengths.
    let name = name.as_str();
    let listed = match name.len() {
        2 => name == "te",
        5 => name == "close",
        7 => name == "trailer" || name == "upgrade",
        10 => name == "connection" || name == "keep-alive",
        17 => name == "transfer-encoding",
        _ => false,
    };
    listed || name.starts_with("proxy-")
}

/// Removes those of `names` the map holds, with one look at the names it has (a request
/// carries a handful) instead of a hashed removal per name. Every name given starts with `x`
/// or `f`: a first byte settles most fields without a comparison.
fn remove_present(h: &mut HeaderMap, names: &[HeaderName]) {
    debug_assert!(names.iter().all(|n| n.as_str().starts_with(['x', 'f'])));
    let may_be = |k: &HeaderName| k.as_str().starts_with(['x', 'f']);
    if h.keys().any(|k| may_be(k) && names.contains(k)) {
        for name in names {
            h.remove(name);
        }
    }
}

/// Request header names that candado sets or acts on itself, with their dashes. A name that
/// reads as one of these once `_` is taken for `-` would shadow it in CGI and WSGI apps, where
/// `X_Real_IP` and `X-Real-IP` are both `HTTP_X_REAL_IP`.
const RESERVED_PREFIXES: [&str; 2] = ["x-forwarded-", "x-client-cert"];
const RESERVED: [&str; 4] = [
    "x-real-ip",
    "content-length",
    "transfer-encoding",
    "keep-alive",
];

/// Removes request headers whose names contain `_` (as nginx's `underscores_in_headers off`),
/// or, where a site allows them, those that would shadow a header candado owns. Returns the
/// names removed, for the log.
pub(crate) fn remove_underscore_names(h: &mut HeaderMap, allow: bool) -> Vec<HeaderName> {
    let removed: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().contains('_') && (!allow || shadows_a_reserved_name(k)))
        .cloned()
        .collect();
    for name in &removed {
        h.remove(name);
    }
    removed
}

fn shadows_a_reserved_name(name: &HeaderName) -> bool {
    let folded = name.as_str().replace('_', "-");
    RESERVED.contains(&folded.as_str())
        || RESERVED_PREFIXES.iter().any(|p| folded.starts_with(p))
        || folded.starts_with("proxy-")
}

/// Framing a proxy must not guess at (RFC 9112 §6.3): both Content-Length and
/// Transfer-Encoding, Content-Length values that differ, or the chunked coding applied more
/// than once (RFC 9112 §7: a sender MUST NOT).
pub(crate) fn framing_is_ambiguous(h: &HeaderMap) -> bool {
    // One pass over the few fields a message has (each lookup by name hashes it).
    let (mut coded, mut chunked) = (false, 0);
    let (mut length, mut lengths_differ) = (None, false);
    for (name, value) in h {
        if name == header::TRANSFER_ENCODING {
            coded = true;
            chunked += list_items(value)
                .filter(|t| t.eq_ignore_ascii_case(b"chunked"))
                .count();
        } else if name == header::CONTENT_LENGTH {
            for v in list_items(value) {
                lengths_differ |= *length.get_or_insert(v) != v;
            }
        }
    }
    (coded && length.is_some()) || chunked > 1 || lengths_differ
}

/// The items of a comma-separated field value, trimmed.
fn list_items(v: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    v.as_bytes().split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Sends the Content-Length as one canonical number (RFC 9110 §8.6: `005` is 5, and a list of
/// equal values may be replaced by one), so the upstream never has to parse what the client
/// wrote. Values that do not agree are left for [`framing_is_ambiguous`] to refuse.
pub(crate) fn canonical_content_length(h: &mut HeaderMap) {
    let agreed = {
        let mut values = h
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .flat_map(list_items)
            .map(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok());
        match values.next() {
            Some(Some(first)) => values.all(|v| v == Some(first)).then_some(first),
            _ => None,
        }
    };
    if let Some(length) = agreed {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
}

/// The route prefix an app mounted under a stripped prefix lives at (ProxyFix's `x_prefix`,
/// Starlette's `root_path`). A client's own copy is always removed: it would let anyone choose
/// the URLs the app builds.
pub(crate) fn set_forwarded_prefix(h: &mut HeaderMap, prefix: Option<&str>) {
    match prefix.and_then(|p| HeaderValue::from_str(p).ok()) {
        // An insert replaces the client's copies.
        Some(v) => drop(h.insert(X_FORWARDED_PREFIX, v)),
        None => remove_present(h, &[X_FORWARDED_PREFIX]),
    }
}

/// A client's address as the forwarding headers carry it.
pub(crate) fn peer_value(ip: IpAddr) -> HeaderValue {
    // An address's text is always a valid header value.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(ip.to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Adds X-Forwarded-For/-Proto/-Host, X-Real-IP and RFC 7239 `Forwarded`. Incoming
/// forwarding headers are kept only when the peer is a trusted proxy; otherwise a client could
/// claim any address. `peer_value`: the peer's address as a header value (made once per
/// connection); `host`: the Host as the client sent it (the value is shared, not copied).
pub(crate) fn add_forwarding(
    h: &mut HeaderMap,
    (peer, peer_value): (IpAddr, &HeaderValue),
    host: &HeaderValue,
    peer_is_trusted: bool,
) {
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
    // One allocation per value made here, handed to the header without a copy: this runs
    // per proxied request.
    let value = |s: String| HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok();
    let ip = peer_value.to_str().unwrap_or_default();
    let xff = match &prior_xff {
        Some(prior) => value(format!("{prior}, {peer}")),
        None => Some(peer_value.clone()),
    };
    let real_ip = match (&prior_xff, peer_is_trusted) {
        (Some(prior), true) => value(
            prior
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        ),
        _ => Some(peer_value.clone()),
    };
    let host_text = host.to_str().unwrap_or_default();
    let mut fwd =
        String::with_capacity(prior_fwd.as_ref().map_or(0, |p| p.len() + 2) + host_text.len() + 64);
    if let Some(prior) = &prior_fwd {
        fwd.push_str(prior);
        fwd.push_str(", ");
    }
    // Pushed piece by piece: `write!` cost more than the rest of this function.
    match peer {
        IpAddr::V6(_) => fwd.extend(["for=\"[", ip, "]\""]),
        IpAddr::V4(_) => fwd.extend(["for=", ip]),
    }
    fwd.extend([";host=\"", host_text, "\";proto=https"]);
    let pairs = [
        (X_FORWARDED_FOR, xff),
        (X_FORWARDED_PROTO, Some(HeaderValue::from_static("https"))),
        (X_FORWARDED_HOST, Some(host.clone())),
        (X_REAL_IP, real_ip),
        (header::FORWARDED, value(fwd)),
    ];
    // An insert replaces whatever the client sent under that name; a value that cannot be
    // made (a prior one not valid as text) leaves the header out altogether.
    for (name, value) in pairs {
        match value {
            Some(v) => drop(h.insert(name, v)),
            None => drop(h.remove(name)),
        }
    }
}

/// Replaces any client-sent identity headers with the verified certificate's, if any. A
/// client can never set these itself: backends trust them as candado's word.
pub(crate) fn set_client_identity(
    h: &mut HeaderMap,
    identity: Option<&crate::tls::ClientIdentity>,
    with_pem: bool,
) {
    remove_present(
        h,
        &[
            X_CLIENT_CERT_SUBJECT,
            X_CLIENT_CERT_SAN,
            X_CLIENT_CERT_FINGERPRINT,
            X_CLIENT_CERT,
        ],
    );
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

pub(crate) const X_CLIENT_CERT_SUBJECT: HeaderName =
    HeaderName::from_static("x-client-cert-subject");
pub(crate) const X_CLIENT_CERT_SAN: HeaderName = HeaderName::from_static("x-client-cert-san");
pub(crate) const X_CLIENT_CERT_FINGERPRINT: HeaderName =
    HeaderName::from_static("x-client-cert-fingerprint");
pub(crate) const X_CLIENT_CERT: HeaderName = HeaderName::from_static("x-client-cert");

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub(crate) const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub(crate) const X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Adds the `Secure` attribute to every `Set-Cookie` that lacks it (RFC 6265 §4.1.2.5), so
/// cookies set by an app behind the proxy never travel over plain HTTP. Returns how many
/// lacked it (the app's own setting is worth fixing too).
pub(crate) fn secure_cookies(h: &mut HeaderMap) -> usize {
    let cookies: Vec<HeaderValue> = h.get_all(header::SET_COOKIE).iter().cloned().collect();
    if cookies.is_empty() {
        return 0;
    }
    let mut added = 0;
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
                added += 1;
                let mut bytes = c.as_bytes().to_vec();
                bytes.extend_from_slice(b"; Secure");
                HeaderValue::from_bytes(&bytes).unwrap_or(c)
            }
        };
        h.append(header::SET_COOKIE, value);
    }
    added
}

/// `http://` URLs on the site's own public authority (`app.example:8443`) in `Location`,
/// `Content-Location` and `Refresh` become `https://`: the app built them because it does not
/// know it is behind HTTPS, and HSTS (RFC 6797 §8.3) would upgrade them in the browser anyway.
/// Returns how many headers changed.
pub(crate) fn upgrade_own_http_urls(h: &mut HeaderMap, public_authority: &str) -> usize {
    let (insecure, secure) = (
        format!("http://{public_authority}"),
        format!("https://{public_authority}"),
    );
    let urls = PublicUrls {
        upstream_origin: &insecure,
        public_origin: &secure,
        stripped_prefix: None,
    };
    let names = [header::LOCATION, header::CONTENT_LOCATION, header::REFRESH];
    let before: Vec<Option<HeaderValue>> = names.iter().map(|n| h.get(n).cloned()).collect();
    rewrite_redirects(h, &urls);
    names
        .iter()
        .zip(before)
        .filter(|(n, b)| h.get(*n) != b.as_ref())
        .count()
}

/// Where an app's redirects point once they leave candado: the upstream's own origin and the
/// prefix it was mounted under are the app's view; the client needs the public one.
pub(crate) struct PublicUrls<'a> {
    /// The upstream origin, as the app may name itself: `http://127.0.0.1:5000`.
    pub upstream_origin: &'a str,
    /// The origin the client used: `https://app.example:8443`.
    pub public_origin: &'a str,
    /// The route prefix the app never saw (`strip_prefix`), e.g. `/api`.
    pub stripped_prefix: Option<&'a str>,
}

/// Rewrites `Location`, `Content-Location` and `Refresh` so that they lead the client back
/// through candado: a URL on the upstream's origin gets the public origin (nginx's
/// `proxy_redirect default`), and under a stripped prefix, its path and any root-relative path
/// get the prefix back (the app's `/target` is the public `/api/target`). A path already under
/// the prefix is left alone, so an app that knows its prefix is never prefixed twice.
pub(crate) fn rewrite_redirects(h: &mut HeaderMap, urls: &PublicUrls<'_>) {
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let new = h
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| urls.public(v));
        if let Some(v) = new.and_then(|v| HeaderValue::from_str(&v).ok()) {
            h.insert(name, v);
        }
    }
    let refresh = h
        .get(header::REFRESH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| rewrite_refresh(v, urls));
    if let Some(v) = refresh.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::REFRESH, v);
    }
}

impl PublicUrls<'_> {
    /// The public form of a redirect target, or `None` when it needs no change.
    fn public(&self, target: &str) -> Option<String> {
        if let Some(rest) = strip_prefix_ignore_case(target, self.upstream_origin)
            && (rest.is_empty() || rest.starts_with(['/', '?', '#']))
        {
            return Some(format!("{}{}", self.public_origin, self.with_prefix(rest)));
        }
        // Root-relative, not `//host/...` (another origin, RFC 3986 §4.2).
        if target.starts_with('/') && !target.starts_with("//") {
            let public = self.with_prefix(target);
            return (public != target).then_some(public);
        }
        None
    }

    /// `path` (empty, or starting with `/`, `?` or `#`) as the public path.
    fn with_prefix(&self, path: &str) -> String {
        let Some(prefix) = self.stripped_prefix else {
            return path.to_owned();
        };
        let already = path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']));
        match (already, path.starts_with('/')) {
            (true, _) => path.to_owned(),
            (false, true) => format!("{prefix}{path}"),
            (false, false) => format!("{prefix}/{path}"),
        }
    }
}

/// `Refresh: 5; url=/next` (the HTML meta-refresh syntax, which browsers honour as a header):
/// the URL part rewritten as a Location would be, quotes kept.
fn rewrite_refresh(value: &str, urls: &PublicUrls<'_>) -> Option<String> {
    let at = value.to_ascii_lowercase().find("url")?;
    let after = value[at + 3..].trim_start();
    let after = after.strip_prefix('=')?.trim_start();
    let head = &value[..value.len() - after.len()];
    let (quote, url) = match after.chars().next() {
        Some(q @ ('\'' | '"')) => (Some(q), after[1..].trim_end_matches(q)),
        _ => (None, after.trim_end()),
    };
    let public = urls.public(url)?;
    Some(match quote {
        Some(q) => format!("{head}{q}{public}{q}"),
        None => format!("{head}{public}"),
    })
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

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
    fn http_urls_on_the_public_authority_become_https_and_no_other() {
        let mut h = map(&[
            ("location", "http://app.test:8443/landing?x=1"),
            ("content-location", "http://app.test:84430/x"),
            ("refresh", "0; url=HTTP://app.test:8443/next"),
        ]);
        assert_eq!(upgrade_own_http_urls(&mut h, "app.test:8443"), 2);
        assert_eq!(h["location"], "https://app.test:8443/landing?x=1");
        assert_eq!(h["content-location"], "http://app.test:84430/x");
        assert_eq!(h["refresh"], "0; url=https://app.test:8443/next");
        let mut h = map(&[("location", "http://evil.example/")]);
        assert_eq!(upgrade_own_http_urls(&mut h, "app.test"), 0);
    }

    #[test]
    fn connection_header_tokens_are_removed_case_insensitively() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("x-secret", "1"),
            ("close", "1"),
            ("keep-alive", "5"),
            ("proxy-authorization", "x"),
            ("te", "trailers"),
            ("x-kept", "1"),
        ]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
    }

    #[test]
    fn a_lone_connection_header_or_close_header_goes_and_the_rest_stays() {
        for pairs in [
            &[("connection", "keep-alive"), ("x-kept", "1")][..],
            &[("x-kept", "1"), ("close", "1")][..],
            &[
                ("connection", "Keep-Alive, x-gone"),
                ("x-gone", "1"),
                ("x-kept", "1"),
            ][..],
            // Two Connection fields: the options of both count.
            &[
                ("connection", "keep-alive"),
                ("connection", "X-Also-Gone"),
                ("x-also-gone", "1"),
                ("x-kept", "1"),
            ][..],
        ] {
            let mut h = map(pairs);
            remove_hop_by_hop(&mut h);
            let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
            assert_eq!(names, ["x-kept"], "{pairs:?}");
        }
    }

    #[test]
    fn only_the_names_a_map_holds_are_removed_and_all_of_them_are() {
        let names = [X_FORWARDED_FOR, X_REAL_IP, header::FORWARDED];
        let mut h = map(&[
            ("x-real-ip", "6.6.6.6"),
            ("forwarded", "for=x"),
            ("via", "1"),
        ]);
        remove_present(&mut h, &names);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["via"]);
        let mut h = map(&[("accept", "*/*"), ("X-Real-IP", "6.6.6.6")]);
        remove_present(&mut h, &names);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["accept"]);
        let mut h = map(&[("accept", "*/*")]);
        remove_present(&mut h, &names);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn each_kind_of_hop_by_hop_header_is_removed_on_its_own() {
        for name in [
            "te",
            "trailer",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "Proxy-Foo",
        ] {
            let mut h = map(&[("x-kept", "1"), (name, "x")]);
            remove_hop_by_hop(&mut h);
            assert_eq!(
                h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                ["x-kept"],
                "{name}"
            );
        }
        let mut h = map(&[("x-kept", "1"), ("host", "a")]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
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
        let peer = "10.0.0.1".parse().unwrap();
        add_forwarding(
            &mut h,
            (peer, &peer_value(peer)),
            &host("app.example"),
            false,
        );
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
        let peer = "::1".parse().unwrap();
        add_forwarding(&mut h, (peer, &peer_value(peer)), &host("a"), true);
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

    fn rewrite(pairs: &[(&str, &str)], prefix: Option<&str>) -> HeaderMap {
        let mut h = map(pairs);
        let urls = PublicUrls {
            upstream_origin: "http://127.0.0.1:5000",
            public_origin: "https://app.example",
            stripped_prefix: prefix,
        };
        rewrite_redirects(&mut h, &urls);
        h
    }

    #[test]
    fn locations_pointing_at_the_upstream_become_public() {
        let h = rewrite(
            &[("location", "http://127.0.0.1:5000/login?next=%2F")],
            None,
        );
        assert_eq!(h["location"], "https://app.example/login?next=%2F");
        let h = rewrite(&[("location", "http://127.0.0.1:50001/x")], None);
        assert_eq!(
            h["location"], "http://127.0.0.1:50001/x",
            "another port is another origin"
        );
        let h = rewrite(&[("location", "/x")], None);
        assert_eq!(h["location"], "/x", "no prefix, nothing to add");
    }

    #[test]
    fn redirects_under_a_stripped_prefix_get_it_back() {
        let h = rewrite(
            &[
                ("location", "http://127.0.0.1:5000/target?a=1"),
                ("content-location", "/target"),
                ("refresh", "0; URL='/target'"),
            ],
            Some("/api"),
        );
        assert_eq!(h["location"], "https://app.example/api/target?a=1");
        assert_eq!(h["content-location"], "/api/target");
        assert_eq!(h["refresh"], "0; URL='/api/target'");
        let h = rewrite(&[("location", "http://127.0.0.1:5000")], Some("/api"));
        assert_eq!(h["location"], "https://app.example/api/", "the app's root");
        let h = rewrite(
            &[("location", "/apiary"), ("refresh", "5;url=/")],
            Some("/api"),
        );
        assert_eq!(
            h["location"], "/api/apiary",
            "prefixes match whole segments"
        );
        assert_eq!(h["refresh"], "5;url=/api/");
    }

    #[test]
    fn a_path_already_under_the_prefix_and_other_origins_are_left_alone() {
        for kept in [
            "/api/target",
            "/api",
            "/api?x=1",
            "//evil.example/x",
            "https://other.example/x",
            "target",
        ] {
            let h = rewrite(&[("location", kept)], Some("/api"));
            assert_eq!(h["location"], kept);
        }
        let h = rewrite(&[("location", "http://127.0.0.1:5000/api/x")], Some("/api"));
        assert_eq!(h["location"], "https://app.example/api/x");
    }

    #[test]
    fn names_with_underscores_are_removed_and_never_shadow_candados_own() {
        let pairs = [
            ("x_real_ip", "6.6.6.6"),
            ("x-forwarded_for", "6.6.6.6"),
            ("x_client_cert_subject", "CN=admin"),
            ("transfer_encoding", "chunked"),
            ("content_length", "9"),
            ("proxy_authorization", "x"),
            ("x_custom", "1"),
            ("x-kept", "1"),
        ];
        let mut h = map(&pairs);
        let removed = remove_underscore_names(&mut h, false);
        assert_eq!(removed.len(), 7);
        assert_eq!(h.keys().map(|k| k.as_str()).collect::<Vec<_>>(), ["x-kept"]);
        let mut h = map(&pairs);
        remove_underscore_names(&mut h, true);
        let mut kept: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        kept.sort();
        assert_eq!(
            kept,
            ["x-kept", "x_custom"],
            "allowed, except where they would shadow a header candado owns"
        );
    }

    #[test]
    fn chunked_twice_is_ambiguous() {
        assert!(framing_is_ambiguous(&map(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ])));
        assert!(framing_is_ambiguous(&map(&[(
            "transfer-encoding",
            "Chunked ,chunked"
        )])));
        assert!(!framing_is_ambiguous(&map(&[(
            "transfer-encoding",
            "gzip, chunked"
        )])));
    }

    #[test]
    fn content_length_is_forwarded_in_canonical_form() {
        for (sent, canonical) in [("005", "5"), ("5, 5", "5"), ("0", "0"), ("12", "12")] {
            let mut h = map(&[("content-length", sent)]);
            canonical_content_length(&mut h);
            assert_eq!(h["content-length"], canonical, "{sent}");
        }
        let mut h = map(&[("content-length", "007"), ("content-length", "7")]);
        canonical_content_length(&mut h);
        assert_eq!(h.get_all("content-length").iter().count(), 1);
        assert_eq!(h["content-length"], "7");
        let mut h = map(&[("content-length", "5, 6")]);
        canonical_content_length(&mut h);
        assert_eq!(h["content-length"], "5, 6", "left for the ambiguity check");
    }
}
