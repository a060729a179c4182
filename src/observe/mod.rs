//! What candado is doing, for people and for Prometheus: counters and gauges of requests,
//! connections, TLS handshakes, upstreams, certificates, ACME and reloads, the last errors,
//! and what is served (sites, routes, tunnels). `admin` serves them (`/metrics`, `/status`,
//! `/status.json`); `candado status` prints them.
//!
//! The request path only touches atomics: every label set is resolved when a site, route or
//! listener is built (start and reload) into an `Arc` handle kept beside it, so counting a
//! request is a few relaxed atomic adds and never a lock or a map lookup. The registry's locks
//! are taken when handles are made, on error paths, and when somebody scrapes.
//!
//! Labels are bounded by the config: site names, route prefixes, upstream origins, listener
//! addresses and fixed enums. Never a client address, a path or a header value.

pub(crate) mod encode;
mod process;
pub(crate) mod status;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use crate::config::defaults;
use crate::locks::lock;

/// The process's one registry (one candado process serves one configuration).
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &METRICS
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    sites: Mutex<Vec<Arc<SiteMetrics>>>,
    routes: Mutex<Vec<Arc<RequestCounts>>>,
    upstreams: Mutex<Vec<Arc<UpstreamMetrics>>>,
    listeners: Mutex<Vec<Arc<ListenerGauges>>>,
    acme: Mutex<Vec<Arc<AcmeMetrics>>>,
    pub(crate) handshakes: Handshakes,
    reloads: [AtomicU64; 2],
    last_reload: AtomicI64,
    certificates: Mutex<Vec<CertInfo>>,
    served: Mutex<Arc<status::Served>>,
    recent: Mutex<VecDeque<RecentError>>,
    pub(crate) cluster: ClusterGauges,
}

/// `cluster:`: what this instance shares through Redis. Without `cluster:` nothing sets
/// `enabled`, and /metrics shows none of it.
#[derive(Default)]
pub(crate) struct ClusterGauges {
    pub(crate) enabled: AtomicBool,
    pub(crate) redis_up: AtomicBool,
    pub(crate) ticket_generation: AtomicU64,
    /// This instance's name, and the names of the instances seen lately (it included).
    pub(crate) instance: Mutex<String>,
    pub(crate) instances: Mutex<Vec<String>>,
    /// The ACME order locks held now, and by whom.
    pub(crate) locks: Mutex<Vec<status::LockStatus>>,
}

impl ClusterGauges {
    /// What `candado status` shows of the cluster; `None` without `cluster:`.
    pub(crate) fn status(&self) -> Option<status::ClusterStatus> {
        self.enabled
            .load(Ordering::Relaxed)
            .then(|| status::ClusterStatus {
                instance: lock(&self.instance).clone(),
                redis_up: self.redis_up.load(Ordering::Relaxed),
                instances: lock(&self.instances).clone(),
                ticket_generation: self.ticket_generation.load(Ordering::Relaxed),
                order_locks: lock(&self.locks).clone(),
            })
    }
}

impl Metrics {
    /// The handle of a site's request metrics (the same one across reloads).
    pub(crate) fn site(&self, name: &str) -> Arc<SiteMetrics> {
        let mut sites = lock(&self.sites);
        if let Some(s) = sites.iter().find(|s| s.site == name) {
            return s.clone();
        }
        let s = Arc::new(SiteMetrics::new(name));
        sites.push(s.clone());
        s
    }

    /// The request counts of one route of a site; `route` is its prefix, or `static` for
    /// files and `-` for requests no handler took.
    pub(crate) fn route(&self, site: &str, route: &str) -> Arc<RequestCounts> {
        let mut routes = lock(&self.routes);
        if let Some(r) = routes.iter().find(|r| r.site == site && r.route == route) {
            return r.clone();
        }
        let r = Arc::new(RequestCounts::new(site, route));
        routes.push(r.clone());
        r
    }

    pub(crate) fn upstream(&self, site: &str, route: &str, origin: &str) -> Arc<UpstreamMetrics> {
        let mut ups = lock(&self.upstreams);
        if let Some(u) = ups
            .iter()
            .find(|u| u.site == site && u.route == route && u.origin == origin)
        {
            return u.clone();
        }
        let u = Arc::new(UpstreamMetrics::new(site, route, origin));
        ups.push(u.clone());
        u
    }

    /// The open-connection gauges of a listener, by the address it is bound to.
    pub(crate) fn listener(&self, addr: &str) -> Arc<ListenerGauges> {
        let mut all = lock(&self.listeners);
        if let Some(l) = all.iter().find(|l| l.listener == addr) {
            return l.clone();
        }
        let l = Arc::new(ListenerGauges::new(addr));
        all.push(l.clone());
        l
    }

    pub(crate) fn acme(&self, names: &str) -> Arc<AcmeMetrics> {
        let mut all = lock(&self.acme);
        if let Some(a) = all.iter().find(|a| a.names == names) {
            return a.clone();
        }
        let a = Arc::new(AcmeMetrics::new(names));
        all.push(a.clone());
        a
    }

    /// A reload finished: `taken` when the new configuration is served.
    pub(crate) fn reloaded(&self, taken: bool) {
        self.reloads[usize::from(!taken)].fetch_add(1, Ordering::Relaxed);
        self.last_reload
            .store(unix_seconds(SystemTime::now()), Ordering::Relaxed);
    }

    /// The certificates read from files and the local CA (at start and after each reload);
    /// ACME ones come and go with their renewals (`certificate_obtained`).
    pub(crate) fn set_certificates(&self, mut certs: Vec<CertInfo>) {
        let mut all = lock(&self.certificates);
        certs.extend(all.drain(..).filter(|c| c.source == CertOrigin::Acme));
        *all = certs;
    }

    /// An ACME certificate is served (found in storage, obtained or renewed).
    pub(crate) fn certificate_obtained(&self, issued: CertInfo) {
        let mut certs = lock(&self.certificates);
        certs.retain(|c| !(c.source == CertOrigin::Acme && c.names == issued.names));
        certs.push(issued);
    }

    pub(crate) fn certificates(&self) -> Vec<CertInfo> {
        lock(&self.certificates).clone()
    }

    /// What is served now: sites, routes, tunnels, listeners (for the status page).
    pub(crate) fn set_served(&self, served: status::Served) {
        *lock(&self.served) = Arc::new(served);
    }

    pub(crate) fn served(&self) -> Arc<status::Served> {
        lock(&self.served).clone()
    }

    /// Counts a failed handshake by reason; a refused client certificate is also kept for
    /// the status page (under `subject`, the site or tunnel).
    pub(crate) fn handshake_failed(
        &self,
        e: &std::io::Error,
        refusal: Option<&str>,
        subject: &str,
    ) {
        self.handshakes.failed(HandshakeFailure::of(e));
        if let Some(reason) = refusal {
            self.error(
                "tls",
                subject,
                format!("client certificate refused: {reason}"),
            );
        }
    }

    /// Keeps an error for the status page (the last `RECENT_ERRORS`). Never call it per
    /// request on a success path: it takes a lock.
    pub(crate) fn error(&self, kind: &'static str, subject: &str, message: String) {
        let mut recent = lock(&self.recent);
        if recent.len() >= defaults::RECENT_ERRORS {
            recent.pop_front();
        }
        recent.push_back(RecentError {
            at: SystemTime::now(),
            kind,
            subject: subject.to_owned(),
            message,
        });
    }

    pub(crate) fn recent_errors(&self) -> Vec<RecentError> {
        lock(&self.recent).iter().rev().cloned().collect()
    }

    /// Every upstream's health now, for the status page.
    pub(crate) fn upstream_list(&self) -> Vec<Arc<UpstreamMetrics>> {
        lock(&self.upstreams).clone()
    }
}

/// HTTP method classes (a bounded label).
#[derive(Clone, Copy)]
pub(crate) enum MethodClass {
    Read,
    Write,
    Other,
}

impl MethodClass {
    const ALL: [&'static str; 3] = ["read", "write", "other"];

    pub(crate) fn of(m: &http::Method) -> Self {
        use http::Method;
        match *m {
            Method::GET | Method::HEAD | Method::OPTIONS => MethodClass::Read,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE => MethodClass::Write,
            _ => MethodClass::Other,
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_class(status: http::StatusCode) -> usize {
    usize::from(status.as_u16() / 100).clamp(1, 5) - 1
}

/// Requests of one route of one site, by method class and status class.
pub(crate) struct RequestCounts {
    site: String,
    route: String,
    counts: [[AtomicU64; 5]; 3],
    /// The app's `http://` redirects on the site's own address that the proxy made `https://`
    /// (`candado doctor` explains the fix).
    pub(crate) redirects_upgraded: AtomicU64,
}

impl RequestCounts {
    fn new(site: &str, route: &str) -> Self {
        RequestCounts {
            site: site.to_owned(),
            route: route.to_owned(),
            counts: Default::default(),
            redirects_upgraded: AtomicU64::new(0),
        }
    }

    pub(crate) fn count(&self, method: MethodClass, status: http::StatusCode) {
        self.counts[method as usize][status_class(status)].fetch_add(1, Ordering::Relaxed);
    }
}

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram of atomics (prometheus-client's own takes a lock per observation).
#[derive(Default)]
pub(crate) struct Latency {
    /// One more than the bounds: the last counts everything above them.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Latency {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with their upper bounds).
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let buckets = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, counts.iter().sum(), buckets)
    }
}

/// One site's request latency and bytes.
pub(crate) struct SiteMetrics {
    site: String,
    pub(crate) latency: Latency,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl SiteMetrics {
    fn new(site: &str) -> Self {
        SiteMetrics {
            site: site.to_owned(),
            latency: Latency::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }

    /// A request answered: how long it took, the request body size its headers declared, and
    /// the response body size when known (a streamed one is counted by `sent`).
    pub(crate) fn served(&self, took: Duration, bytes_in: u64, bytes_out: u64) {
        self.latency.observe(took);
        // Most requests declare no body: skip the shared cache line then.
        if bytes_in > 0 {
            self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }

    /// Body bytes of a streamed response, as they are sent.
    pub(crate) fn sent(&self, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Connection protocols (a bounded label).
#[derive(Clone, Copy)]
pub(crate) enum Protocol {
    H1,
    H2,
    H3,
    Tunnel,
    Upgraded,
}

impl Protocol {
    const ALL: [&'static str; 5] = ["h1", "h2", "h3", "tunnel", "upgraded"];
}

/// Open connections of one listener, by protocol.
#[derive(Debug)]
pub(crate) struct ListenerGauges {
    listener: String,
    open: [AtomicI64; 5],
    /// HTTP/1.1 connections parked between requests (part of `open`).
    waiting: AtomicI64,
    accepted: AtomicU64,
}

impl ListenerGauges {
    fn new(addr: &str) -> Self {
        ListenerGauges {
            listener: addr.to_owned(),
            open: Default::default(),
            waiting: AtomicI64::new(0),
            accepted: AtomicU64::new(0),
        }
    }

    /// Counts an HTTP/1.1 connection as parked (see `listener::activity::Tracked`) until the
    /// guard is dropped.
    pub(crate) fn waiting(self: &Arc<Self>) -> WaitingConnection {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        WaitingConnection(self.clone())
    }

    /// Counts a connection as open until the guard is dropped.
    pub(crate) fn open(self: &Arc<Self>, p: Protocol) -> OpenConnection {
        self.open[p as usize].fetch_add(1, Ordering::Relaxed);
        if !matches!(p, Protocol::Upgraded) {
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
        OpenConnection {
            gauges: self.clone(),
            protocol: p,
        }
    }
}

/// Counts an idle HTTP/1.1 connection as waiting for its next request until dropped.
pub(crate) struct WaitingConnection(Arc<ListenerGauges>);

impl Drop for WaitingConnection {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) struct OpenConnection {
    gauges: Arc<ListenerGauges>,
    protocol: Protocol,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.gauges.open[self.protocol as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a TLS handshake failed (a bounded label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    NoClientCertificate,
    ClientCertificateRefused,
    UnknownSni,
    ProtocolVersion,
    NoCommonCipher,
    Timeout,
    Other,
}

impl HandshakeFailure {
    const ALL: [&'static str; 7] = [
        "no_client_certificate",
        "client_certificate_refused",
        "unknown_sni",
        "protocol_version",
        "no_common_cipher",
        "timeout",
        "other",
    ];

    /// Classifies a failed handshake from rustls's error inside the I/O error.
    pub(crate) fn of(e: &std::io::Error) -> Self {
        use rustls::{Error, PeerIncompatible};
        let inner = e.get_ref();
        if inner.is_some_and(|i| i.is::<crate::tls::front::UnknownName>()) {
            return HandshakeFailure::UnknownSni;
        }
        let Some(tls) = inner.and_then(|i| i.downcast_ref::<Error>()) else {
            return HandshakeFailure::Other;
        };
        match tls {
            Error::NoCertificatesPresented => HandshakeFailure::NoClientCertificate,
            Error::InvalidCertificate(_) => HandshakeFailure::ClientCertificateRefused,
            Error::PeerIncompatible(
                PeerIncompatible::NoCipherSuitesInCommon | PeerIncompatible::NoKxGroupsInCommon,
            ) => HandshakeFailure::NoCommonCipher,
            Error::PeerIncompatible(_) => HandshakeFailure::ProtocolVersion,
            // rustls's own words when the resolver has no certificate for the name.
            Error::General(m) if m == "no server certificate chain resolved" => {
                HandshakeFailure::UnknownSni
            }
            _ => HandshakeFailure::Other,
        }
    }
}

/// TLS handshakes by version × ALPN × resumed, and failures by reason.
#[derive(Default)]
pub(crate) struct Handshakes {
    done: [[[AtomicU64; 2]; 5]; 3],
    failed: [AtomicU64; 7],
}

impl Handshakes {
    const VERSIONS: [&'static str; 3] = ["TLSv1.3", "TLSv1.2", "other"];
    const ALPN: [&'static str; 5] = ["h2", "http/1.1", "none", "other", "h3"];

    pub(crate) fn done(&self, version: Option<&str>, alpn: Option<&[u8]>, resumed: bool) {
        let v = match version {
            Some("TLSv1.3") => 0,
            Some("TLSv1.2") => 1,
            _ => 2,
        };
        let a = match alpn {
            Some(b"h2") => 0,
            Some(b"http/1.1") => 1,
            None => 2,
            Some(b"h3") => 4,
            Some(_) => 3,
        };
        self.done[v][a][usize::from(resumed)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, why: HandshakeFailure) {
        self.failed[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests to one upstream, their errors and latency, and whether it is in rotation.
pub(crate) struct UpstreamMetrics {
    pub(crate) site: String,
    pub(crate) route: String,
    pub(crate) origin: String,
    requests: AtomicU64,
    errors: [AtomicU64; 4],
    pub(crate) latency: Latency,
    /// Unix milliseconds until which it is out of rotation (0: in rotation).
    down_until: AtomicU64,
}

/// Why an upstream request failed (a bounded label).
#[derive(Clone, Copy)]
pub(crate) enum UpstreamError {
    Connect,
    Timeout,
    Reset,
    Other,
}

impl UpstreamError {
    const ALL: [&'static str; 4] = ["connect", "timeout", "reset", "other"];
}

impl UpstreamMetrics {
    fn new(site: &str, route: &str, origin: &str) -> Self {
        UpstreamMetrics {
            site: site.to_owned(),
            route: route.to_owned(),
            origin: origin.to_owned(),
            requests: AtomicU64::new(0),
            errors: Default::default(),
            latency: Latency::default(),
            down_until: AtomicU64::new(0),
        }
    }

    /// An answered request (whatever its status) and how long the response head took.
    pub(crate) fn answered(&self, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency.observe(took);
    }

    pub(crate) fn failed(&self, why: UpstreamError) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.errors[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Out of rotation for `d` from now (a refused connection or a failed health check).
    pub(crate) fn down_for(&self, d: Duration) {
        let until = unix_millis(SystemTime::now() + d);
        self.down_until.store(until, Ordering::Relaxed);
    }

    pub(crate) fn back_up(&self) {
        self.down_until.store(0, Ordering::Relaxed);
    }

    pub(crate) fn is_up(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) <= unix_millis(SystemTime::now())
    }

    pub(crate) fn totals(&self) -> (u64, u64) {
        let errors = self.errors.iter().map(|e| e.load(Ordering::Relaxed)).sum();
        (self.requests.load(Ordering::Relaxed), errors)
    }
}

fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One certificate's ACME renewals.
pub(crate) struct AcmeMetrics {
    names: String,
    attempts: AtomicU64,
    failures: AtomicU64,
    /// Unix seconds of the next renewal check (0: unknown, or now).
    next_renewal: AtomicI64,
}

impl AcmeMetrics {
    fn new(names: &str) -> Self {
        AcmeMetrics {
            names: names.to_owned(),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            next_renewal: AtomicI64::new(0),
        }
    }

    pub(crate) fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn next_renewal(&self, at: SystemTime) {
        self.next_renewal.store(unix_seconds(at), Ordering::Relaxed);
    }
}

/// Where a served certificate comes from (a bounded label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CertOrigin {
    File,
    Local,
    Acme,
}

impl CertOrigin {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CertOrigin::File => "file",
            CertOrigin::Local => "local",
            CertOrigin::Acme => "acme",
        }
    }
}

/// A served certificate, as the status page and the expiry gauge show it.
#[derive(Clone, Debug)]
pub(crate) struct CertInfo {
    /// The site's primary name, or `tunnel NAME`.
    pub site: String,
    pub names: Vec<String>,
    pub source: CertOrigin,
    pub issuer: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertInfo {
    /// Reads the issuer and validity from the served chain's leaf.
    pub(crate) fn of(
        site: &str,
        names: &[String],
        source: CertOrigin,
        key: &rustls::sign::CertifiedKey,
    ) -> Option<CertInfo> {
        let leaf = key.cert.first()?;
        let (_, x509) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        let at = |ts: i64| match u64::try_from(ts) {
            Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
            Err(_) => SystemTime::UNIX_EPOCH,
        };
        let validity = x509.validity();
        Some(CertInfo {
            site: site.to_owned(),
            names: names.to_vec(),
            source,
            issuer: x509.issuer().to_string(),
            not_before: at(validity.not_before.timestamp()),
            not_after: at(validity.not_after.timestamp()),
        })
    }

    /// When renewal starts: a third of the lifetime before expiry (as local and ACME
    /// certificates do without the CA's own window).
    pub(crate) fn renew_from(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_after - life / 3
    }
}

/// An error kept for the status page.
#[derive(Clone, Debug)]
pub(crate) struct RecentError {
    pub at: SystemTime,
    pub kind: &'static str,
    pub subject: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes_cover_every_code() {
        assert_eq!(status_class(http::StatusCode::OK), 1);
        assert_eq!(status_class(http::StatusCode::NOT_FOUND), 3);
        assert_eq!(status_class(http::StatusCode::BAD_GATEWAY), 4);
        assert_eq!(status_class(http::StatusCode::SWITCHING_PROTOCOLS), 0);
        let odd = http::StatusCode::from_u16(999).unwrap();
        assert_eq!(status_class(odd), 4);
    }

    #[test]
    fn latency_lands_in_the_first_bucket_that_holds_it() {
        let l = Latency::default();
        l.observe(Duration::from_micros(500));
        l.observe(Duration::from_millis(30));
        l.observe(Duration::from_secs(60));
        let (sum, count, buckets) = l.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 60.0305).abs() < 1e-6, "{sum}");
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[5], (0.05, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }

    #[test]
    fn handles_are_shared_by_label_set() {
        let m = Metrics::default();
        assert!(Arc::ptr_eq(&m.site("a.test"), &m.site("a.test")));
        assert!(!Arc::ptr_eq(
            &m.route("a.test", "/api"),
            &m.route("a.test", "static")
        ));
    }

    #[test]
    fn handshake_failures_are_told_apart_by_rustls_error() {
        use rustls::{CertificateError, Error, PeerIncompatible};
        let of = |e: Error| {
            HandshakeFailure::of(&std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        assert_eq!(
            of(Error::NoCertificatesPresented),
            HandshakeFailure::NoClientCertificate
        );
        assert_eq!(
            of(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            HandshakeFailure::ClientCertificateRefused
        );
        assert_eq!(
            of(Error::PeerIncompatible(
                PeerIncompatible::NoCipherSuitesInCommon
            )),
            HandshakeFailure::NoCommonCipher
        );
        assert_eq!(
            of(Error::PeerIncompatible(
                PeerIncompatible::SupportedVersionsExtensionRequired
            )),
            HandshakeFailure::ProtocolVersion
        );
        let unknown = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            crate::tls::front::UnknownName(Some("x.test".into())),
        );
        assert_eq!(HandshakeFailure::of(&unknown), HandshakeFailure::UnknownSni);
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(HandshakeFailure::of(&eof), HandshakeFailure::Other);
    }

    #[test]
    fn the_last_errors_are_kept_newest_first() {
        let m = Metrics::default();
        for i in 0..defaults::RECENT_ERRORS + 5 {
            m.error("upstream", "a.test", format!("error {i}"));
        }
        let recent = m.recent_errors();
        assert_eq!(recent.len(), defaults::RECENT_ERRORS);
        assert_eq!(
            recent[0].message,
            format!("error {}", defaults::RECENT_ERRORS + 4)
        );
    }
}
