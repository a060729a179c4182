//! A site as the YAML config describes it: names, addresses, root, routes (upstreams, health
//! checks, header rules), basic auth, redirects, HSTS and extra headers.

use std::path::Path;

use http::{HeaderName, HeaderValue};
use serde_saphyr::Spanned;

use super::model::*;
use super::parse::*;
use std::collections::{BTreeMap, HashMap};

use super::raw::{self, RawSite};
use super::tls::cert_source;
use super::{Problems, RESERVED_HEADERS, defaults, line_of};

pub(super) fn validate_site(i: usize, raw: RawSite, base: &Path, p: &mut Problems) -> Site {
    let key = |k: &str| format!("sites[{i}].{k}");
    let names = site_names(&raw.names, &key("names"), p);
    let listen = raw
        .listen
        .and_then(|l| p.check(line_of(&l), key("listen"), parse_listen(&l.value)))
        .unwrap_or_else(|| default_listen(defaults::HTTPS_PORT));
    let redirect_from = raw.http_redirect.and_then(|r| match r.value.as_str() {
        "off" | "false" | "no" => None,
        v => p.check(line_of(&r), key("http_redirect"), parse_listen(v)),
    });
    let certificate = cert_source(raw.certificate, &names, base, &key("certificate"), p);
    let root = raw
        .root
        .and_then(|r| existing_root(&r, base, &key("root"), p));
    let st = raw.static_files.unwrap_or_default();
    let static_options = StaticOptions {
        listing: st.listing.unwrap_or(false),
        hidden: st.hidden.unwrap_or(false),
        follow_symlinks: st.follow_symlinks.unwrap_or(false),
    };
    let hsts = raw
        .hsts
        .map_or(Some(Hsts::default()), |h| validate_hsts(h, &key("hsts"), p));
    let headers = raw
        .headers
        .map(|h| validate_headers(line_of(&h), &key("headers"), h.value, p))
        .unwrap_or_default();
    let routes = raw
        .proxy
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(j, r)| validate_route(r, &key(&format!("proxy[{j}]")), base, p))
        .collect();
    let max_body_bytes = max_body(raw.max_body_bytes, &key("max_body_bytes"), p);
    let trusted_proxies = trusted_proxies(raw.trusted_proxies, &key("trusted_proxies"), p);
    Site {
        names,
        listen,
        redirect_from,
        certificate,
        root,
        static_options,
        welcome_page: false,
        hsts,
        headers,
        routes,
        max_body_bytes,
        secure_cookies: raw.secure_cookies.unwrap_or(true),
        trusted_proxies,
        allow_underscore_headers: raw.allow_underscore_headers.unwrap_or(false),
        auth: raw
            .basic_auth
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(j, a)| validate_auth(a, &key(&format!("basic_auth[{j}]")), p))
            .collect(),
        redirects: raw
            .redirects
            .map(|r| validate_redirects(line_of(&r), &key("redirects"), r.value, p))
            .unwrap_or_default(),
        client_auth: raw
            .client_auth
            .map(|c| super::tls::validate_client_auth(c, base, &key("client_auth"), p)),
        compression: raw.compression.unwrap_or(true),
        http3: raw.http3.unwrap_or(true),
    }
}

/// A site's names, each checked; at least one.
fn site_names(raw: &Spanned<Vec<Spanned<String>>>, key: &str, p: &mut Problems) -> Vec<String> {
    let mut names = Vec::new();
    for n in &raw.value {
        if let Some(name) = p.check(line_of(n), key, parse_site_name(&n.value)) {
            names.push(name);
        }
    }
    if raw.value.is_empty() {
        p.add(
            line_of(raw),
            key,
            "a site needs at least one name, e.g. [localhost]",
        );
    }
    names
}

/// The static root, relative to the config file; it must be a folder.
fn existing_root(
    r: &Spanned<String>,
    base: &Path,
    key: &str,
    p: &mut Problems,
) -> Option<std::path::PathBuf> {
    let path = base.join(&r.value);
    match path.is_dir() {
        true => Some(path),
        false => {
            p.add(
                line_of(r),
                key,
                format!("folder not found: {}", path.display()),
            );
            None
        }
    }
}

fn max_body(raw: Option<Spanned<u64>>, key: &str, p: &mut Problems) -> u64 {
    match raw {
        Some(v) if v.value == 0 => {
            p.add(line_of(&v), key, "must be more than zero");
            defaults::MAX_BODY_BYTES
        }
        Some(v) => v.value,
        None => defaults::MAX_BODY_BYTES,
    }
}

fn trusted_proxies(
    raw: Option<Vec<Spanned<String>>>,
    key: &str,
    p: &mut Problems,
) -> Vec<std::net::IpAddr> {
    raw.unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let ip = t
                .value
                .parse()
                .map_err(|_| format!("`{}` is not an IP address", t.value));
            p.check(line_of(t), key, ip)
        })
        .collect()
}

fn validate_auth(a: Spanned<raw::RawAuth>, key: &str, p: &mut Problems) -> AuthRule {
    let line = line_of(&a);
    let a = a.value;
    if !a.path.starts_with('/') {
        p.add(
            line,
            format!("{key}.path"),
            format!("`{}` must start with /", a.path),
        );
    }
    if a.users.is_empty() {
        p.add(
            line,
            format!("{key}.users"),
            "no user: add `name: HASH` (candado hash-password makes the hash)",
        );
    }
    let users = a
        .users
        .into_iter()
        .filter_map(|(user, hash)| {
            let check = PasswordCheck::parse_hash(&hash);
            p.check(line, format!("{key}.users.{user}"), check)
                .map(|c| (user, c))
        })
        .collect();
    AuthRule {
        prefix: trim_prefix(&a.path),
        users,
    }
}

/// `/admin/` and `/admin` protect the same subtree.
pub(crate) fn trim_prefix(path: &str) -> String {
    match path.trim_end_matches('/') {
        "" => "/".to_owned(),
        p => p.to_owned(),
    }
}

pub(crate) fn validate_redirects(
    line: Option<u64>,
    key: &str,
    map: impl IntoIterator<Item = (String, String)>,
    p: &mut Problems,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (from, to) in map {
        if !from.starts_with('/') {
            p.add(
                line,
                key,
                format!("`{from}` must be a path starting with /"),
            );
        } else if to.is_empty() || HeaderValue::from_str(&to).is_err() {
            p.add(
                line,
                key,
                format!("the target of `{from}` is empty or not a valid URL"),
            );
        } else {
            out.push((from, to));
        }
    }
    out
}

fn validate_route(
    r: Spanned<raw::RawRoute>,
    key: &str,
    base: &Path,
    p: &mut Problems,
) -> Option<Route> {
    let line = line_of(&r);
    let r = r.value;
    let prefix = r.path.value.trim_end_matches('/');
    let prefix = if prefix.is_empty() { "/" } else { prefix }.to_owned();
    if !r.path.value.starts_with('/') {
        p.add(
            line_of(&r.path),
            format!("{key}.path"),
            format!("`{}` must start with /", r.path.value),
        );
    }
    let to_line = line_of(&r.to);
    let upstreams: Vec<Upstream> =
        r.to.value
            .into_vec()
            .iter()
            .filter_map(|u| p.check(to_line, format!("{key}.to"), Upstream::parse(u)))
            .collect();
    if upstreams.is_empty() {
        p.add(
            to_line,
            format!("{key}.to"),
            "at least one upstream is needed, e.g. http://127.0.0.1:5000",
        );
    }
    let host_header = r.host_header.and_then(|h| {
        let v = HeaderValue::from_str(&h.value).map_err(|_| "not a valid Host value".to_owned());
        p.check(line_of(&h), format!("{key}.host_header"), v)
    });
    let mut route = Route::to(&prefix, upstreams);
    route.strip_prefix = r.strip_prefix.unwrap_or(false);
    route.host_header = host_header;
    route.request_headers = header_ops(
        r.request_headers,
        line,
        &format!("{key}.request_headers"),
        p,
    );
    route.response_headers = header_ops(
        r.response_headers,
        line,
        &format!("{key}.response_headers"),
        p,
    );
    route.http2 = r.http2.unwrap_or(false);
    route.compression = r.compression.unwrap_or(true);
    route.allow_clients = r
        .allow_clients
        .map(|a| super::tls::validate_allow(a, &format!("{key}.allow_clients"), p));
    route.ca = r.ca.map(|c| base.join(c));
    let choices = [
        ("round_robin", Balance::RoundRobin),
        ("least_connections", Balance::LeastConnections),
    ];
    let hint = ("policy", "round_robin or least_connections");
    if let Some(b) = r
        .balance
        .and_then(|b| p.choose(&b, format!("{key}.balance"), hint, &choices))
    {
        route.balance = b;
    }
    if let Some(h) = r.health_check {
        route.health_check = health_check(h, key, p);
    }
    if let Some(t) = r.timeouts {
        for (name, field, slot) in [
            ("connect", t.connect, &mut route.connect_timeout),
            ("response", t.response, &mut route.response_timeout),
        ] {
            if let Some(s) = field
                && let Some(d) = p.check(
                    line_of(&s),
                    format!("{key}.timeouts.{name}"),
                    parse_duration(&s.value),
                )
            {
                *slot = d;
            }
        }
    }
    Some(route)
}

fn health_check(h: raw::RawHealthCheck, key: &str, p: &mut Problems) -> Option<HealthCheck> {
    if !h.path.value.starts_with('/') {
        p.add(
            line_of(&h.path),
            format!("{key}.health_check.path"),
            "must start with /",
        );
    }
    let interval = match h.interval {
        Some(i) => p.check(
            line_of(&i),
            format!("{key}.health_check.interval"),
            parse_duration(&i.value),
        ),
        None => Some(defaults::HEALTH_CHECK_INTERVAL),
    };
    interval.map(|interval| HealthCheck {
        path: h.path.value,
        interval,
    })
}

fn header_ops(
    raw: Option<raw::RawHeaderOps>,
    line: Option<u64>,
    key: &str,
    p: &mut Problems,
) -> HeaderOps {
    let raw = raw.unwrap_or_default();
    let set = validate_headers(line, &format!("{key}.set"), raw.set.unwrap_or_default(), p);
    let remove = raw
        .remove
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("`{n}` is not a header name"));
            p.check(line, format!("{key}.remove"), name)
        })
        .collect();
    HeaderOps { set, remove }
}

pub(crate) fn default_listen(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn validate_hsts(h: raw::RawHsts, key: &str, p: &mut Problems) -> Option<Hsts> {
    if h.enabled == Some(false) {
        return None;
    }
    let mut hsts = Hsts {
        include_subdomains: h.include_subdomains.unwrap_or(false),
        preload: h.preload.as_ref().is_some_and(|b| b.value),
        ..Hsts::default()
    };
    if let Some(m) = h.max_age
        && let Some(d) = p.check(
            line_of(&m),
            format!("{key}.max_age"),
            parse_duration(&m.value),
        )
    {
        hsts.max_age = d;
    }
    if let Some(pre) = h.preload.filter(|b| b.value)
        && (!hsts.include_subdomains || hsts.max_age < defaults::HSTS_PRELOAD_MIN_AGE)
    {
        p.add(
            line_of(&pre),
            format!("{key}.preload"),
            "preload lists require include_subdomains: true and max_age of at least 1 year",
        );
    }
    Some(hsts)
}

fn validate_headers(
    line: Option<u64>,
    key: &str,
    map: BTreeMap<String, String>,
    p: &mut Problems,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (name, value) in map {
        let k = format!("{key}.{name}");
        let Ok(n) = HeaderName::from_bytes(name.as_bytes()) else {
            p.add(line, k, "not a valid header name");
            continue;
        };
        if RESERVED_HEADERS.contains(&n.as_str()) {
            p.add(
                line,
                k,
                "candado sets this header itself (it describes the connection, the framing or the time of the answer): remove it from the config",
            );
            continue;
        }
        match HeaderValue::from_str(&value) {
            Ok(v) => out.push((n, v)),
            Err(_) => p.add(
                line,
                k,
                "not a valid header value (no control characters or line breaks)",
            ),
        }
    }
    out
}

/// A name may appear once per listener, and a redirect listener may not reuse a TLS port.
pub(super) fn check_addresses(sites: &[Site], p: &mut Problems) {
    let mut seen: HashMap<(std::net::SocketAddr, &str), usize> = HashMap::new();
    for (i, s) in sites.iter().enumerate() {
        for n in &s.names {
            if let Some(j) = seen.insert((s.listen, n.as_str()), i) {
                p.add(
                    None,
                    format!("sites[{i}].names"),
                    format!("`{n}` is already served on {} by sites[{j}]", s.listen),
                );
            }
        }
        // Port 0 asks the system for a free port, so two of them never collide.
        if let Some(r) = s.redirect_from
            && r.port() != 0
            && sites.iter().any(|o| o.listen == r)
        {
            p.add(
                None,
                format!("sites[{i}].http_redirect"),
                format!("{r} is already an HTTPS listener"),
            );
        }
    }
}
