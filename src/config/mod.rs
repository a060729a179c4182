//! Configuration: candado's own YAML format and PyServe's `config.yaml`, both read into one
//! validated [`Config`]. Parse raw, validate once, report every problem with its line.

pub mod defaults;
pub mod model;
pub(crate) mod pyserve;
mod raw;
mod tunnels;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue};
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

pub use model::*;
use raw::{RawAcme, RawCertificate, RawConfig, RawSite};
pub use tunnels::{host_of, parse_host_port, parse_spki_pin};

/// Which dialect a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Candado,
    PyServe,
}

/// A config file read and validated, plus the warnings worth showing (ignored PyServe keys…).
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub format: Format,
    pub warnings: Vec<String>,
}

/// Reads and validates a config file of either format.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let fail = |line, key: &str, message: String| ConfigError {
        file: path.to_owned(),
        problems: vec![Problem {
            line,
            key: key.to_owned(),
            message,
        }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "config file not found".to_owned(),
            _ => format!("cannot read the config file: {e}"),
        };
        fail(None, "", message)
    })?;
    let format = detect_format(&text).map_err(|p| ConfigError {
        file: path.to_owned(),
        problems: vec![p],
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let result = match format {
        Format::Candado => parse_candado(&text, &base).map(|c| (c, Vec::new())),
        Format::PyServe => pyserve::parse(&text),
    };
    result
        .map(|(config, warnings)| Loaded {
            config,
            format,
            warnings,
        })
        .map_err(|problems| ConfigError {
            file: path.to_owned(),
            problems,
        })
}

/// A file with a top-level `sites:` or `tunnels:` key is candado's; anything else is read as PyServe's.
fn detect_format(text: &str) -> Result<Format, Problem> {
    let top: Option<BTreeMap<String, IgnoredAny>> =
        serde_saphyr::from_str(text).map_err(yaml_problem)?;
    match top {
        None => Err(Problem {
            line: None,
            key: String::new(),
            message: "the file is empty: see candado.example.yaml for a commented example".into(),
        }),
        Some(keys) if keys.contains_key("sites") || keys.contains_key("tunnels") => {
            Ok(Format::Candado)
        }
        Some(_) => Ok(Format::PyServe),
    }
}

/// Turns a YAML or shape error (unknown key, wrong type) into a located problem.
pub(crate) fn yaml_problem(e: serde_saphyr::Error) -> Problem {
    Problem {
        line: e.location().map(|l| l.line()),
        key: String::new(),
        message: strip_location_suffix(&e.without_snippet().to_string()),
    }
}

fn strip_location_suffix(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Collects problems while a raw config is validated.
#[derive(Default)]
pub(crate) struct Problems(pub Vec<Problem>);

impl Problems {
    pub(crate) fn add(
        &mut self,
        line: Option<u64>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.0.push(Problem {
            line,
            key: key.into(),
            message: msg.into(),
        });
    }

    /// Records `r`'s error (if any) at `line`/`key` and returns its value.
    pub(crate) fn check<T>(
        &mut self,
        line: Option<u64>,
        key: impl Into<String>,
        r: Result<T, String>,
    ) -> Option<T> {
        r.map_err(|m| self.add(line, key, m)).ok()
    }
}

pub(crate) fn line_of<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

fn parse_candado(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| vec![yaml_problem(e)])?;
    let mut p = Problems::default();
    let config = validate(raw, base, &mut p);
    match p.0.is_empty() {
        true => Ok(config),
        false => Err(p.0),
    }
}

fn validate(raw: RawConfig, base: &Path, p: &mut Problems) -> Config {
    let (policy, unknown_sni) = raw
        .tls
        .map(|t| (t.policy, t.unknown_sni))
        .unwrap_or_default();
    let unknown_sni = match unknown_sni {
        None => UnknownSni::DefaultCertificate,
        Some(s) => match s.value.as_str() {
            "default" => UnknownSni::DefaultCertificate,
            "reject" => UnknownSni::Reject,
            other => {
                p.add(line_of(&s), "tls.unknown_sni", format!("unknown choice `{other}`: use `default` (the first site's certificate) or `reject` (a handshake failure)"));
                UnknownSni::DefaultCertificate
            }
        },
    };
    let tls_policy = match policy {
        None => TlsPolicy::Intermediate,
        Some(s) => match s.value.as_str() {
            "intermediate" => TlsPolicy::Intermediate,
            "modern" => TlsPolicy::Modern,
            other => {
                p.add(line_of(&s), "tls.policy", format!("unknown policy `{other}`: use `intermediate` (TLS 1.2 and 1.3) or `modern` (TLS 1.3 only)"));
                TlsPolicy::Intermediate
            }
        },
    };
    let mut timeouts = Timeouts::default();
    if let Some(t) = raw.timeouts {
        for (key, field, slot) in [
            ("handshake", t.handshake, &mut timeouts.handshake),
            ("header_read", t.header_read, &mut timeouts.header_read),
            ("idle", t.idle, &mut timeouts.idle),
            ("write", t.write, &mut timeouts.write),
            ("upgrade_idle", t.upgrade_idle, &mut timeouts.upgrade_idle),
            ("shutdown", t.shutdown, &mut timeouts.shutdown),
        ] {
            if let Some(s) = field {
                let key = format!("timeouts.{key}");
                if let Some(d) = p.check(line_of(&s), key, parse_duration(&s.value)) {
                    *slot = d;
                }
            }
        }
    }
    let mut limits = Limits::default();
    if let Some(l) = raw.limits {
        if let Some(v) = l.max_header_bytes {
            match v.value {
                1024..=1_048_576 => limits.max_header_bytes = v.value as usize,
                _ => p.add(
                    line_of(&v),
                    "limits.max_header_bytes",
                    "must be between 1024 and 1048576 bytes",
                ),
            }
        }
        if let Some(v) = l.max_uri_bytes {
            match v.value {
                256..=1_048_576 => limits.max_uri_bytes = v.value as usize,
                _ => p.add(
                    line_of(&v),
                    "limits.max_uri_bytes",
                    "must be between 256 and 1048576 bytes",
                ),
            }
        }
        if let Some(v) = l.max_connections {
            match v.value {
                1..=1_000_000 => limits.max_connections = v.value as usize,
                _ => p.add(
                    line_of(&v),
                    "limits.max_connections",
                    "must be between 1 and 1000000",
                ),
            }
        }
    }
    let mut log = LogSettings::default();
    if let Some(l) = raw.log {
        log.access = l.access.unwrap_or(true);
        log.file = l.file.map(|f| base.join(f));
        if let Some(f) = l.format {
            match f.value.as_str() {
                "human" => log.format = LogFormat::Human,
                "json" => log.format = LogFormat::Json,
                other => p.add(
                    line_of(&f),
                    "log.format",
                    format!("unknown format `{other}`: use `human` or `json`"),
                ),
            }
        }
    }
    let (sites_line, raw_sites) = match raw.sites {
        Some(s) => (line_of(&s), s.value),
        None => (None, Vec::new()),
    };
    let (tunnels_line, raw_tunnels) = match raw.tunnels {
        Some(t) => (line_of(&t), t.value),
        None => (None, Vec::new()),
    };
    if raw_sites.is_empty() && raw_tunnels.is_empty() {
        p.add(
            sites_line.or(tunnels_line),
            "sites",
            "no site or tunnel is configured: add at least one",
        );
    }
    let sites: Vec<Site> = raw_sites
        .into_iter()
        .enumerate()
        .map(|(i, s)| validate_site(i, s, base, p))
        .collect();
    let tunnels = tunnels::validate_tunnels(raw_tunnels, base, p);
    tunnels::check_tunnel_addresses(&sites, &tunnels, p);
    check_acme_tunnels(&tunnels, p);
    let tunnels: Vec<Tunnel> = tunnels.into_iter().map(|(_, t)| t).collect();
    tunnels::check_route_allow_lists(&sites, p);
    check_addresses(&sites, p);
    let acme = raw
        .acme
        .map(|a| validate_acme(a, base, p))
        .unwrap_or_default();
    check_acme_sites(&sites, &acme, p);
    Config {
        tls_policy,
        unknown_sni,
        timeouts,
        limits,
        log,
        sites,
        tunnels,
        allow_expired: false,
        acme,
    }
}

fn validate_acme(raw: RawAcme, base: &Path, p: &mut Problems) -> AcmeSettings {
    let mut acme = AcmeSettings::default();
    if let Some(d) = raw.directory
        && let Some(url) = p.check(line_of(&d), "acme.directory", acme_directory(&d.value))
    {
        acme.directory = url;
    }
    if let Some(e) = raw.email {
        match e.value.split_once('@') {
            Some((user, domain)) if !user.is_empty() && domain.contains('.') => {
                acme.email = Some(e.value.clone())
            }
            _ => p.add(
                line_of(&e),
                "acme.email",
                format!("`{}` is not an email address", e.value),
            ),
        }
    }
    if let Some(c) = raw.ca {
        let path = base.join(&c.value);
        match path.is_file() {
            true => acme.ca = Some(path),
            false => p.add(
                line_of(&c),
                "acme.ca",
                format!("file not found: {}", path.display()),
            ),
        }
    }
    if let Some(eab) = raw.eab {
        let key = &eab.hmac_key;
        if let Some(hmac) = p.check(line_of(key), "acme.eab.hmac_key", acme_eab_key(&key.value)) {
            acme.eab = Some((eab.kid, hmac));
        }
    }
    if let Some(c) = raw.challenge
        && let Some(choice) = p.check(line_of(&c), "acme.challenge", challenge_choice(&c.value))
    {
        acme.challenge = choice;
    }
    if let Some(s) = raw.storage {
        acme.storage = base.join(s);
    }
    if let Some(w) = raw.while_pending {
        match w.value.as_str() {
            "refuse" => acme.while_pending = WhilePending::Refuse,
            "local" => acme.while_pending = WhilePending::LocalCa,
            other => p.add(
                line_of(&w),
                "acme.while_pending",
                format!("unknown choice `{other}`: use `refuse` (handshakes fail until the certificate arrives) or `local` (a temporary local-CA certificate)"),
            ),
        }
    }
    acme
}

/// `letsencrypt`, `letsencrypt-staging` or an https:// directory URL.
pub fn acme_directory(s: &str) -> Result<String, String> {
    match s {
        "letsencrypt" => Ok(defaults::ACME_DIRECTORY.to_owned()),
        "letsencrypt-staging" => Ok(defaults::ACME_STAGING_DIRECTORY.to_owned()),
        url if url.starts_with("https://") && url.parse::<http::Uri>().is_ok() => {
            Ok(url.to_owned())
        }
        other => Err(format!(
            "`{other}` is not an ACME directory: use `letsencrypt`, `letsencrypt-staging` or an https:// URL"
        )),
    }
}

/// An EAB HMAC key, given in base64url as the CA shows it.
pub fn acme_eab_key(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "not a base64url key: copy it exactly as the CA shows it".to_owned())
}

pub fn challenge_choice(s: &str) -> Result<ChallengeChoice, String> {
    match s {
        "auto" => Ok(ChallengeChoice::Auto),
        "http-01" => Ok(ChallengeChoice::Http01),
        "tls-alpn-01" => Ok(ChallengeChoice::TlsAlpn01),
        other => Err(format!(
            "unknown challenge `{other}`: use `auto`, `http-01` or `tls-alpn-01`"
        )),
    }
}

/// ACME sites need names a CA can issue for, and HTTP-01 needs the site's HTTP listener.
fn check_acme_sites(sites: &[Site], acme: &AcmeSettings, p: &mut Problems) {
    for (i, s) in sites.iter().enumerate() {
        if s.certificate != CertSource::Acme {
            continue;
        }
        let key = format!("sites[{i}].certificate");
        if let Some(n) = s
            .names
            .iter()
            .find(|n| n.parse::<std::net::IpAddr>().is_ok())
        {
            p.add(None, &key, format!("ACME certificates are for host names; `{n}` is an IP address: use `local` or certificate files for it"));
        }
        if acme.challenge == ChallengeChoice::Http01 && s.redirect_from.is_none() {
            p.add(None, &key, "acme.challenge is http-01, which needs the site's HTTP listener: set `http_redirect: :80`, or use tls-alpn-01");
        }
        if s.names.iter().any(|n| n.starts_with("*.")) {
            p.add(None, &key, "wildcard names need the DNS-01 challenge, which candado does not do: list the names, or use certificate files");
        }
    }
}

fn validate_site(i: usize, raw: RawSite, base: &Path, p: &mut Problems) -> Site {
    let key = |k: &str| format!("sites[{i}].{k}");
    let mut names = Vec::new();
    for n in &raw.names.value {
        if let Some(name) = p.check(line_of(n), key("names"), parse_site_name(&n.value)) {
            names.push(name);
        }
    }
    if raw.names.value.is_empty() {
        p.add(
            line_of(&raw.names),
            key("names"),
            "a site needs at least one name, e.g. [localhost]",
        );
    }
    let listen = raw
        .listen
        .and_then(|l| p.check(line_of(&l), key("listen"), parse_listen(&l.value)))
        .unwrap_or_else(|| default_listen(defaults::HTTPS_PORT));
    let redirect_from = raw.http_redirect.and_then(|r| match r.value.as_str() {
        "off" | "false" | "no" => None,
        v => p.check(line_of(&r), key("http_redirect"), parse_listen(v)),
    });
    let certificate = cert_source(raw.certificate, &names, base, &key("certificate"), p);
    let root = raw.root.and_then(|r| {
        let path = base.join(&r.value);
        match path.is_dir() {
            true => Some(path),
            false => {
                p.add(
                    line_of(&r),
                    key("root"),
                    format!("folder not found: {}", path.display()),
                );
                None
            }
        }
    });
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
    let max_body_bytes = match raw.max_body_bytes {
        Some(v) if v.value == 0 => {
            p.add(line_of(&v), key("max_body_bytes"), "must be more than zero");
            defaults::MAX_BODY_BYTES
        }
        Some(v) => v.value,
        None => defaults::MAX_BODY_BYTES,
    };
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let ip = t
                .value
                .parse()
                .map_err(|_| format!("`{}` is not an IP address", t.value));
            p.check(line_of(t), key("trusted_proxies"), ip)
        })
        .collect();
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
            .map(|c| tunnels::validate_client_auth(c, base, &key("client_auth"), p)),
    }
}

/// Where a site's or tunnel's certificate comes from. Like Caddy, when none is given, public
/// names get a public (ACME) certificate and the rest the local CA's.
pub(crate) fn cert_source(
    raw: Option<Spanned<RawCertificate>>,
    names: &[String],
    base: &Path,
    key: &str,
    p: &mut Problems,
) -> CertSource {
    match raw {
        None if !names.is_empty() && names.iter().all(|n| is_public_name(n)) => CertSource::Acme,
        None => CertSource::Local,
        Some(c) => match c.value {
            RawCertificate::Keyword(k) if k == "local" => CertSource::Local,
            RawCertificate::Keyword(k) if k == "acme" => CertSource::Acme,
            RawCertificate::Keyword(k) => {
                p.add(Some(c.referenced.line()), key, format!("unknown certificate source `{k}`: use `local`, `acme` or {{cert: FILE, key: FILE}}"));
                CertSource::Local
            }
            RawCertificate::Files(f) => CertSource::Files {
                cert: base.join(f.cert),
                key: base.join(f.key),
            },
            RawCertificate::Several(list) if list.is_empty() => {
                p.add(
                    Some(c.referenced.line()),
                    key,
                    "the list of certificates is empty",
                );
                CertSource::Local
            }
            RawCertificate::Several(list) => CertSource::Several(
                list.into_iter()
                    .map(|f| (base.join(f.cert), base.join(f.key)))
                    .collect(),
            ),
        },
    }
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

/// ACME tunnels need their host names listed (no wildcards: no DNS-01; no IP addresses).
fn check_acme_tunnels(tunnels: &[(usize, Tunnel)], p: &mut Problems) {
    for (i, t) in tunnels {
        let TunnelMode::Server(s) = &t.mode else {
            continue;
        };
        let unfit = |n: &String| n.starts_with("*.") || n.parse::<std::net::IpAddr>().is_ok();
        if s.certificate == CertSource::Acme && (s.names.is_empty() || s.names.iter().any(unfit)) {
            p.add(None, format!("tunnels[{i}].certificate"), "ACME certificates need the tunnel's host names in `names` (no wildcards, no IP addresses): list them, or use `local` or certificate files");
        }
    }
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
    route.allow_clients = r
        .allow_clients
        .map(|a| tunnels::validate_allow(a, &format!("{key}.allow_clients"), p));
    route.ca = r.ca.map(|c| base.join(c));
    if let Some(b) = r.balance {
        match b.value.as_str() {
            "round_robin" => route.balance = Balance::RoundRobin,
            "least_connections" => route.balance = Balance::LeastConnections,
            other => p.add(
                line_of(&b),
                format!("{key}.balance"),
                format!("unknown policy `{other}`: use round_robin or least_connections"),
            ),
        }
    }
    if let Some(h) = r.health_check {
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
        route.health_check = interval.map(|interval| HealthCheck {
            path: h.path.value,
            interval,
        });
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

/// Headers that describe the message framing or the connection cannot be set per site.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "host",
];

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
                "this header describes the connection or framing and is set by candado itself",
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
fn check_addresses(sites: &[Site], p: &mut Problems) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        parse_candado(yaml, Path::new(".")).expect_err("expected problems")
    }

    #[test]
    fn a_public_name_without_a_certificate_gets_acme_and_a_private_one_the_local_ca() {
        let c = parse_candado(
            "sites:\n  - names: [app.example.com]\n    http_redirect: :80\n  - names: [app.test]\n    listen: 127.0.0.1:9443\n  - names: [localhost]\n    listen: 127.0.0.1:9444\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(c.sites[0].certificate, CertSource::Acme);
        assert_eq!(c.sites[1].certificate, CertSource::Local);
        assert_eq!(c.sites[2].certificate, CertSource::Local);
        assert_eq!(c.acme.directory, defaults::ACME_DIRECTORY);
        assert_eq!(c.acme.challenge, ChallengeChoice::Auto);
    }

    #[test]
    fn acme_settings_are_checked_each_with_its_line() {
        let p = problems(
            "acme:\n  directory: http://insecure.example/dir\n  email: nobody\n  challenge: dns-01\n  while_pending: wait\n  eab: {kid: k, hmac_key: 'not base64!'}\nsites:\n  - names: [a.test]\n",
        );
        let at = |line: u64, key: &str, text: &str| {
            assert!(
                p.iter()
                    .any(|x| x.line == Some(line) && x.key == key && x.message.contains(text)),
                "{key} at {line}: {p:?}"
            )
        };
        at(2, "acme.directory", "https:// URL");
        at(3, "acme.email", "not an email address");
        at(4, "acme.challenge", "http-01");
        at(5, "acme.while_pending", "refuse");
        at(6, "acme.eab.hmac_key", "base64url");
        let staging = parse_candado(
            "acme: {directory: letsencrypt-staging}\nsites:\n  - names: [a.test]\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(staging.acme.directory, defaults::ACME_STAGING_DIRECTORY);
    }

    #[test]
    fn acme_sites_need_host_names_and_http01_needs_the_http_listener() {
        let p = problems(
            "acme: {challenge: http-01}\nsites:\n  - names: [a.example.com, 192.0.2.1]\n    certificate: acme\n  - names: ['*.b.example.com']\n    listen: :9443\n    http_redirect: :9080\n    certificate: acme\n",
        );
        let text = format!("{p:?}");
        assert!(text.contains("`192.0.2.1` is an IP address"), "{text}");
        assert!(text.contains("set `http_redirect: :80`"), "{text}");
        assert!(
            text.contains("wildcard names need the DNS-01 challenge"),
            "{text}"
        );
    }

    #[test]
    fn a_relative_log_file_is_relative_to_the_config_folder() {
        let yaml = "log: {file: logs/candado.log}\nsites:\n  - names: [localhost]\n";
        let c = parse_candado(yaml, Path::new("/etc/candado")).unwrap();
        assert_eq!(
            c.log.file.as_deref(),
            Some(Path::new("/etc/candado/logs/candado.log"))
        );
        let c = parse_candado("sites:\n  - names: [localhost]\n", Path::new(".")).unwrap();
        assert_eq!(c.log.file, None, "standard error unless asked");
    }

    #[test]
    fn public_names_are_those_a_public_ca_can_issue_for() {
        for public in ["example.com", "app.example.com", "xn--caf-dma.fr."] {
            assert!(is_public_name(public), "{public}");
        }
        for private in [
            "localhost",
            "a.localhost",
            "printer.local",
            "app.test",
            "a.example",
            "db.internal",
            "10.0.0.1",
            "::1",
            "nas.home.arpa",
            "intranet",
        ] {
            assert!(!is_public_name(private), "{private}");
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let p = problems("sites:\n  - names: [a.test]\n    hstss: {}\n");
        assert_eq!(p[0].line, Some(3));
        assert!(p[0].message.contains("unknown field `hstss`"), "{p:?}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let p = problems(
            "tls: {policy: ancient}\nsites:\n  - names: [a..b]\n    listen: nowhere\n    root: /does/not/exist\n",
        );
        let keys: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            [
                ("tls.policy", Some(1)),
                ("sites[0].names", Some(3)),
                ("sites[0].listen", Some(4)),
                ("sites[0].root", Some(5))
            ]
        );
    }

    #[test]
    fn a_typo_inside_the_certificate_mapping_is_named() {
        let p =
            problems("sites:\n  - names: [a.test]\n    certificate: {cert: a.pem, kye: b.pem}\n");
        assert!(p[0].message.contains("unknown field `kye`"), "{p:?}");
    }

    #[test]
    fn preload_without_subdomains_is_refused() {
        let p = problems("sites:\n  - names: [a.test]\n    hsts: {preload: true}\n");
        assert_eq!(p[0].key, "sites[0].hsts.preload");
    }

    #[test]
    fn framing_headers_cannot_be_configured() {
        let p = problems("sites:\n  - names: [a.test]\n    headers: {Content-Length: '5'}\n");
        assert!(p[0].key.ends_with("Content-Length"), "{p:?}");
    }

    #[test]
    fn a_valid_config_reads_into_the_model() {
        let c = parse_candado(
            "timeouts: {handshake: 2s}\nsites:\n  - names: [A.test, '*.b.test']\n    listen: 127.0.0.1:9443\n    http_redirect: 127.0.0.1:9080\n    certificate: {cert: c.pem, key: k.pem}\n    hsts: {max_age: 1d, include_subdomains: true}\n",
            Path::new("/etc/candado"),
        )
        .expect("valid");
        let s = &c.sites[0];
        assert_eq!(s.names, ["a.test", "*.b.test"]);
        assert_eq!(s.redirect_from.map(|a| a.port()), Some(9080));
        assert_eq!(
            s.certificate,
            CertSource::Files {
                cert: "/etc/candado/c.pem".into(),
                key: "/etc/candado/k.pem".into()
            }
        );
        assert_eq!(
            s.hsts.map(|h| h.header_value()).as_deref(),
            Some("max-age=86400; includeSubDomains")
        );
        assert_eq!(c.timeouts.handshake.as_secs(), 2);
    }
}
