//! Validated settings. Everything downstream reads these types, never the raw YAML.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::defaults;
use super::parse::parse_site_name;

/// The validated configuration. `Default` is nothing served with every setting at its
/// default, for the command-line modes to fill in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub tls_policy: TlsPolicy,
    pub unknown_sni: UnknownSni,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub log: LogSettings,
    pub sites: Vec<Site>,
    /// TLS for raw TCP services, and from plain TCP clients to TLS services.
    pub tunnels: Vec<Tunnel>,
    /// Serve certificates past their notAfter date (never the default).
    pub allow_expired: bool,
    /// Where `certificate: acme` sites get their certificates.
    pub acme: AcmeSettings,
    /// The file this config was read from (absolute), if any: it names the instance's pid
    /// and metrics files, so that several instances can share a data folder.
    pub source: Option<PathBuf>,
    /// `--lan` / `lan: true`: one site also served on this machine's LAN addresses.
    pub lan: Option<Lan>,
    /// The admin listener (metrics and status), off unless configured.
    pub admin: Option<Admin>,
    /// `cluster:`: state shared with other instances through Redis; `None` talks to no Redis.
    pub cluster: Option<ClusterSettings>,
}

/// `cluster:` / `--cluster-redis`: where the shared state lives and who this instance is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClusterSettings {
    /// `redis://` or `rediss://` (TLS, verified) `[user:password@]host:port[/db]`; checked by
    /// the Redis client at start.
    pub redis: String,
    /// Every Redis key starts with `PREFIX:`, so clusters can share one Redis.
    pub key_prefix: String,
    /// This instance's name in logs and in Redis (the host name when not given).
    pub instance: Option<String>,
    /// Where the shared key is when `CANDADO_CLUSTER_KEY` is not set (mode 0600).
    pub key_file: Option<PathBuf>,
    /// With `rediss://`: the CA certificates (PEM) that Redis's certificate must chain to,
    /// instead of the system's.
    pub ca: Option<PathBuf>,
    /// How often the shared session-ticket key is replaced (the previous one is kept as long
    /// again); tickets are issued for this long.
    pub ticket_rotation: Duration,
}

/// The admin listener: `/metrics`, `/status`, `/status.json`, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admin {
    pub listen: SocketAddr,
    /// Answer clients that are not on loopback (only with a token).
    pub allow_remote: bool,
    /// `Authorization: Bearer TOKEN` required when set.
    pub token: Option<String>,
    /// HTTPS with client certificates (the sites' verifier), when set.
    pub client_auth: Option<ClientAuth>,
    /// The admin listener's own certificate when it speaks HTTPS (local by default).
    pub certificate: CertSource,
}

/// How a site is offered to phones and laptops on the same network (the `lan` module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lan {
    /// Index of the site in `Config::sites`.
    pub site: usize,
    /// Announce `HOSTNAME.local` and an `_https._tcp` service over mDNS.
    pub mdns: bool,
    /// Port of the plain-HTTP onboarding page on the LAN addresses.
    pub onboarding_port: u16,
    /// Only these interfaces (empty: every interface with a private address, but for the
    /// bridges of containers and virtual machines).
    pub interfaces: Vec<String>,
}

impl Lan {
    pub(crate) fn for_site(site: usize) -> Self {
        Lan {
            site,
            mdns: true,
            onboarding_port: defaults::LAN_ONBOARDING_PORT,
            interfaces: Vec::new(),
        }
    }
}

/// The ACME CA and account that `certificate: acme` sites use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AcmeSettings {
    /// The CA's directory URL (Let's Encrypt production unless configured).
    pub directory: String,
    /// Contact address for the account (expiry notices, policy changes).
    pub email: Option<String>,
    /// PEM bundle of extra roots to trust the directory's HTTPS with (a private CA, pebble).
    pub ca: Option<PathBuf>,
    /// External Account Binding (ZeroSSL, some private CAs): key id and HMAC key bytes.
    pub eab: Option<(String, Vec<u8>)>,
    pub challenge: ChallengeChoice,
    /// Accounts and certificates are kept here (0700 folders, 0600 keys).
    pub storage: PathBuf,
    /// What a site serves while its first certificate is being obtained.
    pub while_pending: WhilePending,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        AcmeSettings {
            directory: defaults::ACME_DIRECTORY.to_owned(),
            email: None,
            ca: None,
            eab: None,
            challenge: ChallengeChoice::Auto,
            storage: crate::config::data_dir().join("acme"),
            while_pending: WhilePending::Refuse,
        }
    }
}

/// Which ACME challenge proves control of a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeChoice {
    /// HTTP-01 when the site has an HTTP listener, TLS-ALPN-01 otherwise; a failed attempt
    /// tries the other one next time.
    Auto,
    /// A token served at http://NAME/.well-known/acme-challenge/ by the site's HTTP listener.
    Http01,
    /// A special certificate on the TLS port itself (RFC 8737): no port 80 needed.
    TlsAlpn01,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WhilePending {
    /// Handshakes fail (with a log line saying why) until the certificate arrives.
    Refuse,
    /// A temporary certificate from the local development CA.
    LocalCa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TlsPolicy {
    /// TLS 1.3 and 1.2, forward-secret AEAD suites only (Mozilla "intermediate").
    #[default]
    Intermediate,
    /// TLS 1.3 only (Mozilla "modern").
    Modern,
}

/// What a handshake for a name no site serves gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum UnknownSni {
    /// The listener's first site's certificate (as nginx's default server does).
    #[default]
    DefaultCertificate,
    /// A handshake failure: nothing about the sites is revealed.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub handshake: Duration,
    pub header_read: Duration,
    pub idle: Duration,
    /// A response the client reads nothing of for this long is aborted.
    pub write: Duration,
    /// An upgraded connection (WebSocket) with no byte moving either way for this long is closed.
    pub upgrade_idle: Duration,
    pub shutdown: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            handshake: defaults::HANDSHAKE_TIMEOUT,
            header_read: defaults::HEADER_READ_TIMEOUT,
            idle: defaults::IDLE_TIMEOUT,
            write: defaults::WRITE_TIMEOUT,
            upgrade_idle: defaults::UPGRADE_IDLE_TIMEOUT,
            shutdown: defaults::SHUTDOWN_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_header_bytes: usize,
    /// Longest request target (414 beyond it).
    pub max_uri_bytes: usize,
    pub max_connections: usize,
}

impl Limits {
    /// What the HTTP parser may read as one request head: the target and the header fields,
    /// each within its own limit (as nginx keeps the request line apart from the headers), so
    /// that a long target gets 414 and big header fields 431 rather than one hiding the other.
    pub(crate) fn max_head_bytes(&self) -> usize {
        self.max_header_bytes + self.max_uri_bytes
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: defaults::MAX_HEADER_BYTES,
            max_uri_bytes: defaults::MAX_URI_BYTES,
            max_connections: defaults::MAX_CONNECTIONS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub(crate) struct LogSettings {
    pub format: LogFormat,
    pub access: bool,
    /// Append to this file instead of writing to standard error (reopened on SIGUSR1).
    pub file: Option<PathBuf>,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Human,
            access: true,
            file: None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// Host names this site answers to, lower-case; `*.example.com` matches one label.
    pub names: Vec<String>,
    pub listen: SocketAddr,
    /// Plain-HTTP listener that redirects to this site, if any.
    pub redirect_from: Option<SocketAddr>,
    pub certificate: CertSource,
    /// Folder served as static files; `None` serves nothing but the welcome page or 404s.
    pub root: Option<PathBuf>,
    pub static_options: StaticOptions,
    /// Serve the built-in welcome page at `/` when the root has no index.html.
    pub welcome_page: bool,
    pub hsts: Option<Hsts>,
    /// Extra response headers, added to every HTTPS response of this site.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Reverse-proxy routes; the longest matching prefix wins, static files serve the rest.
    pub routes: Vec<Route>,
    /// Largest request body forwarded to an upstream (413 beyond it).
    pub max_body_bytes: u64,
    /// Add `Secure` to cookies set by upstreams.
    pub secure_cookies: bool,
    /// Peers whose X-Forwarded-For / Forwarded headers are kept (other clients' are replaced).
    pub trusted_proxies: Vec<IpAddr>,
    /// Forward request headers whose names contain `_` (dropped by default: CGI and WSGI
    /// read `X_Real_IP` as `X-Real-IP`). Headers candado sets itself are never shadowed.
    pub allow_underscore_headers: bool,
    /// Paths behind HTTP basic auth; each protects its whole subtree, proxied paths included.
    pub auth: Vec<AuthRule>,
    /// Exact-path redirects (PyServe's `redirect_instructions`): path → target, answered 302.
    pub redirects: Vec<(String, String)>,
    /// Mutual TLS: the client certificates this site asks for.
    pub client_auth: Option<ClientAuth>,
    /// Compress responses (zstd, br, gzip) for clients that accept it (`http::compression`).
    pub compression: bool,
    /// Also serve HTTP/3 (QUIC, on the UDP port of the same number) and advertise it with
    /// Alt-Svc.
    pub http3: bool,
}

/// Mutual TLS: which client certificates a site or tunnel accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAuth {
    /// `required`: no certificate, no handshake. `optional`: none is fine, but one that is
    /// presented must verify (and pass the allow list).
    pub required: bool,
    pub ca: ClientCa,
    /// Revocation lists (PEM or DER); a certificate they revoke is refused.
    pub crls: Vec<PathBuf>,
    /// When set, only these identities get through (default deny).
    pub allow: Option<AllowList>,
    /// Also send the whole client certificate upstream (`X-Client-Cert`, URL-encoded PEM).
    pub forward_pem: bool,
}

/// The CAs that issue accepted client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientCa {
    /// A PEM bundle.
    File(PathBuf),
    /// candado's local development CA (`candado cert issue --client NAME` issues from it).
    Local,
}

/// Client identities let through, by SAN DNS name, SAN URI (SPIFFE IDs), subject CN or the
/// SHA-256 of the public key (SPKI pin). Any one match is enough.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllowList {
    pub dns: Vec<String>,
    pub uri: Vec<String>,
    pub cn: Vec<String>,
    pub spki_sha256: Vec<[u8; 32]>,
}

/// A TCP service behind TLS (server mode) or a TLS service for plain TCP clients (client mode).
#[derive(Debug, Clone)]
pub(crate) struct Tunnel {
    /// For logs: the configured name, or the listen address.
    pub name: String,
    pub listen: SocketAddr,
    /// `HOST:PORT` of the upstream (server mode) or of the TLS server (client mode).
    pub to: String,
    /// No byte either way for this long closes both sides.
    pub idle_timeout: Duration,
    pub mode: TunnelMode,
}

#[derive(Debug, Clone)]
pub(crate) enum TunnelMode {
    /// TLS in, plain TCP out.
    Server(TunnelServer),
    /// Plain TCP in, verified TLS out (stunnel's client mode).
    Client(TunnelClient),
}

#[derive(Debug, Clone)]
pub(crate) struct TunnelServer {
    /// SNI names, for sharing a port with other tunnels and for the certificate.
    pub names: Vec<String>,
    pub certificate: CertSource,
    /// ALPN protocols offered, most preferred first; the chosen one is sent upstream in the
    /// PROXY header.
    pub alpn: Vec<Vec<u8>>,
    /// Send a PROXY protocol v2 header first, so the upstream learns the client's address.
    pub proxy_protocol: bool,
    pub client_auth: Option<ClientAuth>,
}

#[derive(Debug, Clone)]
pub(crate) struct TunnelClient {
    /// Trust only these CAs (PEM) instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// The name the server's certificate must have (the host of `to` unless set).
    pub server_name: String,
    /// A client certificate and key, for servers that ask for one (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
    pub alpn: Vec<Vec<u8>>,
}

impl Config {
    /// Every file whose change reloads the configuration: certificates and keys, client CAs,
    /// revocation lists.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for s in &self.sites {
            files.extend(s.certificate.files().into_iter().flat_map(|(c, k)| [c, k]));
            files.extend(s.client_auth.iter().flat_map(ClientAuth::files));
        }
        for t in &self.tunnels {
            match &t.mode {
                TunnelMode::Server(s) => {
                    files.extend(s.certificate.files().into_iter().flat_map(|(c, k)| [c, k]));
                    files.extend(s.client_auth.iter().flat_map(ClientAuth::files));
                }
                TunnelMode::Client(c) => {
                    files.extend(c.ca.clone());
                    files.extend(c.identity.iter().flat_map(|(c, k)| [c.clone(), k.clone()]));
                }
            }
        }
        files
    }
}

impl ClientAuth {
    fn files(&self) -> Vec<PathBuf> {
        let mut files = self.crls.clone();
        if let ClientCa::File(ca) = &self.ca {
            files.push(ca.clone());
        }
        files
    }
}

impl Tunnel {
    /// The names its certificate is for: its SNI names, or when it has none the names a
    /// client on this machine uses (localhost, 127.0.0.1, ::1, the host name).
    pub(crate) fn cert_names(&self) -> Vec<String> {
        match &self.mode {
            TunnelMode::Server(s) if !s.names.is_empty() => s.names.clone(),
            _ => local_names(self.listen.ip()),
        }
    }
}

/// Basic auth for a path prefix.
#[derive(Debug, Clone)]
pub(crate) struct AuthRule {
    pub prefix: String,
    /// User name → how to check the password.
    pub users: Vec<(String, PasswordCheck)>,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum PasswordCheck {
    /// PyServe's plain-text passwords (compared in constant time).
    Plain(String),
    /// A bcrypt (`$2b$…`) or argon2 (`$argon2id$…`) hash.
    Hash(String),
}

impl fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a password, even in debug output.
        match self {
            PasswordCheck::Plain(_) => f.write_str("Plain(***)"),
            PasswordCheck::Hash(h) => write!(f, "Hash({})", h.split('$').nth(1).unwrap_or("?")),
        }
    }
}

impl PasswordCheck {
    /// Accepts a bcrypt or argon2 hash in its usual text form.
    pub(crate) fn parse_hash(s: &str) -> Result<PasswordCheck, String> {
        let bcrypt = ["$2a$", "$2b$", "$2y$"].iter().any(|p| s.starts_with(p)) && s.len() == 60;
        let argon2 = s.starts_with("$argon2") && argon2::PasswordHash::new(s).is_ok();
        match bcrypt || argon2 {
            true => Ok(PasswordCheck::Hash(s.to_owned())),
            false => Err("not a bcrypt ($2b$...) or argon2 ($argon2id$...) hash; make one with: candado hash-password".into()),
        }
    }
}

/// Whether `path` is `prefix` or below it, on segment boundaries (`/api` covers `/api/x`,
/// never `/apiary`).
pub(crate) fn path_in_prefix(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix == "/" || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// A path prefix served by one or more upstreams.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Starts with `/`, no trailing slash (except `/` itself); matches on segment boundaries.
    pub prefix: String,
    pub upstreams: Vec<Upstream>,
    pub strip_prefix: bool,
    /// Host header sent upstream; `None` passes the client's through.
    pub host_header: Option<HeaderValue>,
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub balance: Balance,
    pub health_check: Option<HealthCheck>,
    /// Trust only this CA (PEM) for https:// upstreams instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// Speak HTTP/2 to the upstreams (ALPN for https://, prior knowledge for http://).
    pub http2: bool,
    /// Only clients whose certificate matches get through; the others get 403.
    pub allow_clients: Option<AllowList>,
    /// `false` turns compression off for this route's responses (BREACH: an app that reflects
    /// request input next to a secret in the same response).
    pub compression: bool,
}

/// How a route spreads requests over its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Balance {
    #[default]
    RoundRobin,
    /// The upstream with the fewest requests in flight.
    LeastConnections,
}

/// Active health checking: GET `path` on each upstream every `interval`; a failure (no 2xx or
/// 3xx in time) takes it out of rotation until a check succeeds again.
#[derive(Debug, Clone)]
pub(crate) struct HealthCheck {
    pub path: String,
    pub interval: Duration,
}

impl Route {
    /// A route to `upstreams` with every option at its default.
    pub(crate) fn to(prefix: &str, upstreams: Vec<Upstream>) -> Route {
        Route {
            prefix: prefix.to_owned(),
            upstreams,
            strip_prefix: false,
            host_header: None,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
            connect_timeout: defaults::PROXY_CONNECT_TIMEOUT,
            response_timeout: defaults::PROXY_RESPONSE_TIMEOUT,
            balance: Balance::default(),
            health_check: None,
            ca: None,
            http2: false,
            allow_clients: None,
            compression: true,
        }
    }

    /// `/api` matches `/api`, `/api/x` and `/api?q`, never `/apiary`.
    pub(crate) fn matches(&self, path: &str) -> bool {
        path_in_prefix(&self.prefix, path)
    }

    /// The prefix the app never sees (`strip_prefix` on anything but `/`): its paths and
    /// redirects are relative to it.
    pub(crate) fn stripped_prefix(&self) -> Option<&str> {
        (self.strip_prefix && self.prefix != "/").then_some(self.prefix.as_str())
    }
}

/// An upstream origin: `http://127.0.0.1:5000` or `https://backend.internal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// Scheme and authority, no path: `http://127.0.0.1:5000`.
    pub origin: String,
}

impl Upstream {
    /// Parses `http://host:port`, `https://host[:port]` or a bare `host:port` (HTTP).
    /// A port alone (`5000`, `:5000`) means this machine, as in Caddy.
    pub(crate) fn parse(s: &str) -> Result<Upstream, String> {
        let with_scheme = match s {
            _ if s.contains("://") => s.to_owned(),
            _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                format!("http://127.0.0.1:{s}")
            }
            _ if s.starts_with(':') => format!("http://127.0.0.1{s}"),
            _ => format!("http://{s}"),
        };
        let uri: http::Uri = with_scheme.parse().map_err(|_| {
            format!("`{s}` is not an upstream address; write e.g. http://127.0.0.1:5000")
        })?;
        let scheme = uri.scheme_str().unwrap_or("");
        if scheme != "http" && scheme != "https" {
            return Err(format!("`{s}`: upstreams are http:// or https://"));
        }
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            return Err(format!(
                "`{s}` has no host; write e.g. http://127.0.0.1:5000"
            ));
        };
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
            return Err(format!(
                "`{s}`: an upstream is scheme://host:port without a path; use strip_prefix to change paths"
            ));
        }
        Ok(Upstream {
            origin: format!("{scheme}://{authority}"),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderOps {
    pub set: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderOps {
    pub(crate) fn apply(&self, h: &mut http::HeaderMap) {
        for name in &self.remove {
            h.remove(name);
        }
        for (name, value) in &self.set {
            h.insert(name.clone(), value.clone());
        }
    }
}

impl Site {
    /// The name used in redirects and URLs: the first configured one that is not a wildcard.
    pub(crate) fn primary_name(&self) -> &str {
        self.names
            .iter()
            .find(|n| !n.starts_with("*."))
            .or(self.names.first())
            .map(String::as_str)
            .unwrap_or("localhost")
    }

    /// Whether `host` (lower-case, no port) is one of this site's names.
    pub(crate) fn matches(&self, host: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, host))
    }
}

/// `*.example.com` matches exactly one extra label, as in certificates (RFC 6125 §6.4.3).
pub(crate) fn name_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertSource {
    /// A leaf issued by candado's local development CA.
    Local,
    Files {
        cert: PathBuf,
        key: PathBuf,
    },
    /// Several certificates for the same names, the first one the client can use is served.
    Several(Vec<(PathBuf, PathBuf)>),
    /// Obtained and renewed automatically from the ACME CA in `Config::acme`.
    Acme,
}

impl CertSource {
    /// The (certificate, key) files, in order of preference.
    pub(crate) fn files(&self) -> Vec<(PathBuf, PathBuf)> {
        match self {
            CertSource::Local | CertSource::Acme => Vec::new(),
            CertSource::Files { cert, key } => vec![(cert.clone(), key.clone())],
            CertSource::Several(list) => list.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StaticOptions {
    pub listing: bool,
    pub hidden: bool,
    pub follow_symlinks: bool,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Hsts {
    pub max_age: Duration,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Default for Hsts {
    fn default() -> Self {
        Hsts {
            max_age: defaults::HSTS_MAX_AGE,
            include_subdomains: false,
            preload: false,
        }
    }
}

impl Hsts {
    /// The `Strict-Transport-Security` value (RFC 6797 §6.1).
    pub(crate) fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// One thing wrong in a config file: where, which key, what and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub line: Option<u64>,
    pub key: String,
    pub message: String,
}

/// Every problem found in one file, printed one per line as `FILE:LINE: KEY: message`.
#[derive(Debug)]
pub(crate) struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        // One problem is one line; several get a count, then a line each.
        let indent = match n {
            1 => "",
            _ => {
                writeln!(f, "{}: {n} problems found", self.file.display())?;
                "  "
            }
        };
        for (i, p) in self.problems.iter().enumerate() {
            let line = p.line.map(|l| format!(":{l}")).unwrap_or_default();
            write!(f, "{indent}{}{line}: ", self.file.display())?;
            if !p.key.is_empty() {
                write!(f, "{}: ", p.key)?;
            }
            write!(f, "{}", p.message)?;
            if i + 1 < n {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The names a locally bound site answers to: loopback names, the bound address when it is
/// a specific one, and this machine's host name.
pub(crate) fn local_names(bind: std::net::IpAddr) -> Vec<String> {
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if !bind.is_unspecified() && !bind.is_loopback() {
        names.push(bind.to_string());
    }
    if let Some(h) = std::fs::read_to_string("/etc/hostname")
        .ok()
        .and_then(|h| parse_site_name(h.trim()).ok())
        .filter(|h| !names.contains(h))
    {
        names.push(h);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_exactly_one_label() {
        assert!(name_matches("*.example.com", "a.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.example.com", ".example.com"));
        assert!(name_matches("example.com", "example.com"));
    }

    #[test]
    fn hsts_value_lists_the_chosen_directives() {
        let h = Hsts {
            include_subdomains: true,
            preload: true,
            ..Hsts::default()
        };
        assert_eq!(
            h.header_value(),
            "max-age=31536000; includeSubDomains; preload"
        );
    }
}
