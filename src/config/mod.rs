//! Configuration: candado's own YAML format and PyServe's `config.yaml`, both read into one
//! validated [`Config`]. Parse raw, validate once, report every problem with its line.

mod acme;
pub(crate) mod defaults;
pub(crate) mod model;
mod parse;
pub(crate) mod pyserve;
mod raw;
mod site;
mod tls;
mod tunnels;
mod unknown_keys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use acme::{check_acme_sites, check_acme_tunnels, validate_acme};
pub(crate) use defaults::data_dir;
pub(crate) use model::{
    AcmeSettings, Admin, AllowList, AuthRule, Balance, CertSource, ChallengeChoice, ClientAuth,
    ClientCa, ClusterSettings, Config, ConfigError, HealthCheck, Hsts, Lan, Limits, LogFormat,
    LogSettings, PasswordCheck, Problem, Route, Site, StaticOptions, Timeouts, TlsPolicy, Tunnel,
    TunnelClient, TunnelMode, TunnelServer, UnknownSni, Upstream, WhilePending, local_names,
    name_matches, path_in_prefix,
};
pub(crate) use parse::{
    acme_directory, acme_eab_key, host_of, is_public_name, parse_duration, parse_host_port,
    parse_listen, parse_site_name, parse_spki_pin,
};
use raw::RawConfig;
use site::{check_addresses, validate_site};
pub(crate) use site::{trim_prefix, validate_redirects};
pub(crate) use tls::cert_source;

/// Which dialect a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Candado,
    PyServe,
}

/// A config file read and validated, plus the warnings worth showing (ignored PyServe keys…).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub config: Config,
    pub format: Format,
    pub warnings: Vec<String>,
}

/// Reads and validates a config file of either format.
pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
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
            config: Config {
                source: Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())),
                ..config
            },
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

/// Reads the raw mirror of a file; on failure, every unknown key in it (serde stops at the
/// first) and the first other error past them (a wrong type), or else the error itself.
pub(crate) fn read_raw<'de, T: serde::Deserialize<'de>>(text: &'de str) -> Result<T, Vec<Problem>> {
    serde_saphyr::from_str(text).map_err(|e| {
        let (mut all, rest) = unknown_keys::unknown_keys::<T>(text);
        match all.is_empty() {
            true => all.push(yaml_problem(e)),
            false => all.extend(rest.map(yaml_problem)),
        }
        all
    })
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

    /// The value `s` names among `choices`; anything else is a problem at `key` that says
    /// "unknown WHAT `s`: use HINT".
    pub(crate) fn choose<T: Copy>(
        &mut self,
        s: &Spanned<String>,
        key: impl Into<String>,
        (what, hint): (&str, &str),
        choices: &[(&str, T)],
    ) -> Option<T> {
        let found = choices.iter().find(|(word, _)| *word == s.value.as_str());
        if found.is_none() {
            let other = &s.value;
            self.add(
                line_of(s),
                key,
                format!("unknown {what} `{other}`: use {hint}"),
            );
        }
        found.map(|(_, v)| *v)
    }
}

pub(crate) fn line_of<T>(s: &Spanned<T>) -> Option<u64> {
    Some(s.referenced.line())
}

fn parse_candado(text: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let raw: RawConfig = read_raw(text)?;
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
    let unknown_sni = unknown_sni
        .and_then(|s| {
            p.choose(
                &s,
                "tls.unknown_sni",
                (
                    "choice",
                    "`default` (the first site's certificate) or `reject` (a handshake failure)",
                ),
                &[
                    ("default", UnknownSni::DefaultCertificate),
                    ("reject", UnknownSni::Reject),
                ],
            )
        })
        .unwrap_or(UnknownSni::DefaultCertificate);
    let tls_policy = policy
        .and_then(|s| {
            p.choose(
                &s,
                "tls.policy",
                (
                    "policy",
                    "`intermediate` (TLS 1.2 and 1.3) or `modern` (TLS 1.3 only)",
                ),
                &[
                    ("intermediate", TlsPolicy::Intermediate),
                    ("modern", TlsPolicy::Modern),
                ],
            )
        })
        .unwrap_or(TlsPolicy::Intermediate);
    let timeouts = validate_timeouts(raw.timeouts, p);
    let limits = validate_limits(raw.limits, p);
    let log = validate_log(raw.log, base, p);
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
    let lan = lan_site(&raw_sites, p);
    let sites: Vec<Site> = raw_sites
        .into_iter()
        .enumerate()
        .map(|(i, s)| validate_site(i, s, base, p))
        .collect();
    let tunnels = tunnels::validate_tunnels(raw_tunnels, base, p);
    tunnels::check_tunnel_addresses(&sites, &tunnels, p);
    check_acme_tunnels(&tunnels, p);
    let tunnels: Vec<Tunnel> = tunnels.into_iter().map(|(_, t)| t).collect();
    tls::check_route_allow_lists(&sites, p);
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
        source: None,
        lan,
        admin: raw.admin.and_then(|a| validate_admin(a, base, p)),
        cluster: raw.cluster.and_then(|c| validate_cluster(c, base, p)),
    }
}

/// `cluster:`: a Redis URL, a prefix Redis keys can carry, and a CA for `rediss://` only.
fn validate_cluster(
    raw: Spanned<raw::RawCluster>,
    base: &Path,
    p: &mut Problems,
) -> Option<ClusterSettings> {
    let line = line_of(&raw);
    let raw = raw.value;
    let Some(redis) = raw.redis else {
        p.add(
            line,
            "cluster.redis",
            "missing: the Redis URL, redis://HOST:PORT",
        );
        return None;
    };
    let url_ok = p.check(
        line_of(&redis),
        "cluster.redis",
        cluster_redis_url(&redis.value),
    );
    let key_prefix = match raw.key_prefix {
        Some(k) => {
            let ok = !k.value.is_empty()
                && k.value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !ok {
                p.add(
                    line_of(&k),
                    "cluster.key_prefix",
                    "use letters, digits, `-`, `_` and `.` only",
                );
            }
            k.value
        }
        None => defaults::CLUSTER_KEY_PREFIX.to_owned(),
    };
    let ca = raw.ca.map(|ca| {
        if !redis.value.starts_with("rediss://") {
            p.add(
                line_of(&ca),
                "cluster.ca",
                "a CA is for TLS to Redis: use a rediss:// URL, or remove it",
            );
        }
        base.join(&ca.value)
    });
    let ticket_rotation = match raw.ticket_rotation {
        Some(r) => {
            let parsed = parse_duration(&r.value).and_then(|d| match d.as_secs() {
                0 => Err("must be at least 1s".to_owned()),
                _ => Ok(d),
            });
            p.check(line_of(&r), "cluster.ticket_rotation", parsed)
        }
        None => Some(defaults::TICKET_KEY_ROTATION),
    };
    Some(ClusterSettings {
        redis: url_ok?,
        key_prefix,
        instance: raw.instance.filter(|i| !i.is_empty()),
        key_file: raw.key_file.map(|f| base.join(f)),
        ca,
        ticket_rotation: ticket_rotation?,
    })
}

/// A Redis URL candado can use: `redis://`, `rediss://` (TLS) or `unix://`. The error does
/// not repeat the URL: it may hold a password.
pub(crate) fn cluster_redis_url(s: &str) -> Result<String, String> {
    if !["redis://", "rediss://", "unix://"]
        .iter()
        .any(|scheme| s.starts_with(scheme))
    {
        return Err(
            "not a Redis URL: use redis://HOST:PORT, or rediss://HOST:PORT for TLS".to_owned(),
        );
    }
    Ok(s.to_owned())
}

/// `admin:`: an address (`:2019` and a bare port mean loopback) or `off`; a non-loopback
/// address only with `allow_remote: true` and a token.
fn validate_admin(raw: Spanned<raw::RawAdmin>, base: &Path, p: &mut Problems) -> Option<Admin> {
    let line = line_of(&raw);
    let settings = match raw.value {
        raw::RawAdmin::Address(a) => raw::RawAdminSettings {
            listen: a,
            allow_remote: None,
            token: None,
            client_auth: None,
            certificate: None,
        },
        raw::RawAdmin::Full(f) => *f,
    };
    let (listen, allow_remote, token) = (
        settings.listen,
        settings.allow_remote.unwrap_or(false),
        settings.token,
    );
    if listen == "off" {
        return None;
    }
    let client_auth = settings
        .client_auth
        .map(|c| tls::validate_client_auth(c, base, "admin.client_auth", p));
    let certificate = match settings.certificate {
        Some(c) if client_auth.is_none() => {
            p.add(
                line_of(&c),
                "admin.certificate",
                "the admin listener speaks HTTPS only with client_auth: add it, or remove the certificate",
            );
            CertSource::Local
        }
        c => cert_source(c, &[], base, "admin.certificate", p),
    };
    if certificate == CertSource::Acme {
        p.add(
            line,
            "admin.certificate",
            "the admin listener takes `local` or {cert: FILE, key: FILE}, not an ACME certificate",
        );
    }
    let Some(addr) = admin_address(&listen) else {
        p.add(
            line,
            "admin",
            format!("`{listen}` is not an address: use 127.0.0.1:2019, :2019 or off"),
        );
        return None;
    };
    if !addr.ip().is_loopback() && !allow_remote {
        p.add(
            line,
            "admin",
            format!("{addr} is not a loopback address: the admin listener stays on 127.0.0.1 or ::1 unless `allow_remote: true` with a `token` or `client_auth`"),
        );
    }
    let no_token = token.as_deref().is_none_or(str::is_empty);
    if allow_remote && no_token && client_auth.as_ref().is_none_or(|a| !a.required) {
        p.add(
            line,
            "admin.token",
            "`allow_remote: true` needs a token (clients send `Authorization: Bearer TOKEN`) or `client_auth` with mode required",
        );
    }
    if token
        .as_deref()
        .is_some_and(|t| t.len() < defaults::ADMIN_TOKEN_MIN_BYTES)
    {
        p.add(
            line,
            "admin.token",
            format!(
                "the token is too short: use at least {} characters (`openssl rand -hex 24`)",
                defaults::ADMIN_TOKEN_MIN_BYTES
            ),
        );
    }
    Some(Admin {
        listen: addr,
        allow_remote,
        token,
        client_auth,
        certificate,
    })
}

/// `127.0.0.1:2019`, `[::1]:2019`, `:2019` or `2019` (both loopback).
pub(crate) fn admin_address(s: &str) -> Option<std::net::SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let port: u16 = s.strip_prefix(':').unwrap_or(s).parse().ok()?;
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The site with `lan: true`, if any: one at most, since the LAN addresses have one port.
fn lan_site(sites: &[raw::RawSite], p: &mut Problems) -> Option<Lan> {
    let on: Vec<(usize, Option<u64>)> = sites
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let lan = s.lan.as_ref()?;
            lan.value.then(|| (i, line_of(lan)))
        })
        .collect();
    if let [_, (i, line), ..] = on.as_slice() {
        p.add(
            *line,
            format!("sites[{i}].lan"),
            format!(
                "only one site can be served on the LAN addresses (sites[{}] already is)",
                on[0].0
            ),
        );
    }
    on.first().map(|&(i, _)| Lan::for_site(i))
}

fn validate_timeouts(raw: Option<raw::RawTimeouts>, p: &mut Problems) -> Timeouts {
    let mut timeouts = Timeouts::default();
    if let Some(t) = raw {
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
    timeouts
}

fn validate_limits(raw: Option<raw::RawLimits>, p: &mut Problems) -> Limits {
    let mut limits = Limits::default();
    let Some(l) = raw else {
        return limits;
    };
    for (key, value, range, unit, slot) in [
        (
            "max_header_bytes",
            l.max_header_bytes,
            1024..=1_048_576,
            " bytes",
            &mut limits.max_header_bytes,
        ),
        (
            "max_uri_bytes",
            l.max_uri_bytes,
            256..=1_048_576,
            " bytes",
            &mut limits.max_uri_bytes,
        ),
        (
            "max_connections",
            l.max_connections,
            1..=1_000_000,
            "",
            &mut limits.max_connections,
        ),
    ] {
        let Some(v) = value else { continue };
        match range.contains(&v.value) {
            true => *slot = v.value as usize,
            false => p.add(
                line_of(&v),
                format!("limits.{key}"),
                format!(
                    "must be between {} and {}{unit}",
                    range.start(),
                    range.end()
                ),
            ),
        }
    }
    limits
}

fn validate_log(raw: Option<raw::RawLog>, base: &Path, p: &mut Problems) -> LogSettings {
    let mut log = LogSettings::default();
    if let Some(l) = raw {
        log.access = l.access.unwrap_or(true);
        log.file = l.file.map(|f| base.join(f));
        let formats = [("human", LogFormat::Human), ("json", LogFormat::Json)];
        let hint = ("format", "`human` or `json`");
        if let Some(format) = l
            .format
            .and_then(|f| p.choose(&f, "log.format", hint, &formats))
        {
            log.format = format;
        }
    }
    log
}

/// Headers that describe the message framing or the connection, or that the server stamps on
/// each answer (Date), cannot be set per site.
const RESERVED_HEADERS: &[&str] = &[
    "date",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "host",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<Problem> {
        parse_candado(yaml, Path::new(".")).expect_err("expected problems")
    }

    #[test]
    fn lan_true_offers_that_site_on_the_lan_and_only_one_site_may_ask() {
        let yaml = "sites:\n  - names: [a.test]\n  - names: [b.test]\n    lan: true\n";
        let config = parse_candado(yaml, Path::new(".")).unwrap();
        let lan = config.lan.unwrap();
        assert_eq!((lan.site, lan.mdns), (1, true));
        assert_eq!(lan.onboarding_port, defaults::LAN_ONBOARDING_PORT);
        let both =
            "sites:\n  - names: [a.test]\n    lan: true\n  - names: [b.test]\n    lan: true\n";
        let p = problems(both);
        assert!(
            p.iter()
                .any(|p| p.key == "sites[1].lan" && p.line == Some(5)),
            "{p:?}"
        );
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
    fn the_admin_listener_defaults_to_loopback_and_off_turns_it_off() {
        let admin = |value: &str| {
            let yaml = format!("admin: {value}\nsites:\n  - names: [a.test]\n");
            parse_candado(&yaml, Path::new(".")).unwrap().admin
        };
        let short = admin(":2019").unwrap();
        assert_eq!(short.listen, "127.0.0.1:2019".parse().unwrap());
        assert!(!short.allow_remote && short.token.is_none() && short.client_auth.is_none());
        assert_eq!(
            admin("'[::1]:9000'").unwrap().listen,
            "[::1]:9000".parse().unwrap()
        );
        assert_eq!(admin("off"), None);
        let yaml = "sites:\n  - names: [a.test]\n";
        assert_eq!(parse_candado(yaml, Path::new(".")).unwrap().admin, None);
    }

    #[test]
    fn a_remote_admin_listener_needs_a_long_token_or_a_client_certificate() {
        let problems_of = |admin: &str| {
            problems(&format!("admin: {admin}\nsites:\n  - names: [a.test]\n"))
                .into_iter()
                .map(|p| (p.line, p.key, p.message))
                .collect::<Vec<_>>()
        };
        let p = problems_of("0.0.0.0:2019");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].0, p[0].1.as_str()), (Some(1), "admin"));
        assert!(p[0].2.contains("not a loopback address"), "{p:?}");
        let p = problems_of("{listen: 0.0.0.0:2019, allow_remote: true}");
        assert!(p[0].2.contains("needs a token"), "{p:?}");
        let p = problems_of("{listen: 0.0.0.0:2019, allow_remote: true, token: short}");
        assert!(p[0].2.contains("too short"), "{p:?}");
        let p = problems_of("{listen: 127.0.0.1:2019, certificate: local}");
        assert!(p[0].2.contains("only with client_auth"), "{p:?}");
        let p = problems_of("nowhere");
        assert!(p[0].2.contains("not an address"), "{p:?}");
        let p = problems_of("{listen: :2019, tokn: x}");
        assert!(p.iter().any(|p| p.2.contains("tokn")), "{p:?}");
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
    fn framing_headers_and_date_cannot_be_configured() {
        let p = problems("sites:\n  - names: [a.test]\n    headers: {Content-Length: '5'}\n");
        assert!(p[0].key.ends_with("Content-Length"), "{p:?}");
        let p = problems("sites:\n  - names: [a.test]\n    headers: {Date: 'Thu, 01 Jan 1970'}\n");
        assert_eq!(p[0].key, "sites[0].headers.Date", "{p:?}");
        assert!(p[0].message.contains("remove it from the config"), "{p:?}");
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
