//! HTTP: from a parsed request to a response. Nothing here touches sockets or rustls: the
//! listener hands over the request and a [`ConnInfo`] with the TLS facts.
//!
//! HTTPS request → [`Router::handle`]: check the Host, pick the site, serve its files, add the
//! site's security headers. Plain-HTTP request → [`redirect::to_https`].

pub(crate) mod auth;
pub(crate) mod compression;
pub(crate) mod error;
pub(crate) mod headers;
pub(crate) mod host;
pub(crate) mod proxy;
pub(crate) mod redirect;
pub(crate) mod static_files;

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::ready;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};

use crate::config::{Limits, Site, defaults};
use proxy::RouteHandler;
use static_files::StaticFiles;

/// Every response body: boxed, so files, pages and (later) proxied streams share one type.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// A request body the router can serve: hyper's `Incoming` (HTTP/1.1 and HTTP/2), or an
/// HTTP/3 request stream adapted by the QUIC listener.
pub(crate) trait RequestBody:
    http_body::Body<Data = Bytes, Error: StdError + Send + Sync + 'static>
    + Send
    + Sync
    + Unpin
    + 'static
{
}

impl<B> RequestBody for B where
    B: http_body::Body<Data = Bytes, Error: StdError + Send + Sync + 'static>
        + Send
        + Sync
        + Unpin
        + 'static
{
}

pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Counts the requests in progress on a connection (the listener's connection activity).
pub(crate) trait Busy: Send + Sync {
    fn begin(&self);
    fn end(&self);
}

/// Keeps the connection counted as busy while a clone is alive, so that the idle deadline does
/// not close an HTTP/2 connection that carries a long-lived tunnel. Every clone is counted on
/// the connection's own counter: sharing one costs no allocation.
pub(crate) struct ConnBusy(Arc<dyn Busy>);

impl ConnBusy {
    pub(crate) fn new(counter: Arc<dyn Busy>) -> Self {
        counter.begin();
        ConnBusy(counter)
    }
}

impl Clone for ConnBusy {
    fn clone(&self) -> Self {
        ConnBusy::new(self.0.clone())
    }
}

impl Drop for ConnBusy {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// What the listener knows about one request besides its head and body. Passed along with
/// the request rather than in its extensions: those cost three allocations per request.
#[derive(Default)]
pub(crate) struct RequestMeta {
    /// Held until the response is handed over, and by a tunnel made of the request.
    pub busy: Option<ConnBusy>,
    /// An HTTP/1.1 request that carried both Content-Length and Transfer-Encoding, or the
    /// chunked coding twice (hyper resolves both before the request reaches us). Answered with
    /// 400 and never forwarded: it is how requests are smuggled past front ends.
    pub framing_conflict: bool,
}

/// A request matched to its site and route: what its answer is made with and finished with.
struct Routed<'a> {
    site: &'a Arc<SiteHandler>,
    /// The host the client asked for (validated).
    host: String,
    route: Option<&'a RouteHandler>,
    /// The request body's declared length, for the site's bytes received.
    bytes_in: u64,
    /// The client's accepted codings, and the request's method, when the site compresses.
    compression: Option<(compression::Negotiation, Method)>,
    over_h3: bool,
}

impl Routed<'_> {
    /// What static files may be sent precompressed in, best first.
    fn codings(&self) -> &[compression::Coding] {
        self.compression
            .as_ref()
            .map_or(&[][..], |(n, _)| n.codings())
    }
}

/// What the listener knows about the connection a request came on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub peer: SocketAddr,
    /// Negotiated TLS version ("TLSv1.3"), `None` on plain HTTP.
    pub tls_version: Option<&'static str>,
    /// The listener's own port, for redirects that must come back to it.
    pub local_port: u16,
    /// The listener's open-connection gauges (an upgraded connection counts there too).
    pub gauges: Arc<crate::observe::ListenerGauges>,
    /// Which of the listener's sites the TLS handshake was made for (by SNI). It matters
    /// only where sites ask for client certificates: each then has its own TLS set-up.
    pub tls_site: usize,
    /// The verified client certificate, when the client presented one (mutual TLS).
    pub client: Option<Arc<crate::tls::ClientIdentity>>,
    /// How long an upgraded connection (WebSocket) may stay silent both ways.
    pub upgrade_idle: std::time::Duration,
    /// `peer`'s address as a forwarding header value, made on the first proxied request
    /// (read it with [`ConnInfo::peer_value`]).
    pub peer_value: std::sync::OnceLock<HeaderValue>,
}

impl ConnInfo {
    /// The client's address as the forwarding headers carry it (made once per connection).
    pub(crate) fn peer_value(&self) -> &HeaderValue {
        self.peer_value
            .get_or_init(|| headers::peer_value(self.peer.ip()))
    }
}

/// One site as the request path sees it: its names, its handlers and the headers it adds.
pub(crate) struct SiteHandler {
    pub site: Site,
    files: Option<StaticFiles>,
    /// Longest prefix first, so the first match is the longest.
    routes: Vec<RouteHandler>,
    auth: auth::BasicAuth,
    outgoing: Outgoing,
    /// Latency and bytes, and the requests no route took (files, or nothing): resolved once.
    metrics: Arc<crate::observe::SiteMetrics>,
    unrouted: Arc<crate::observe::RequestCounts>,
}

impl SiteHandler {
    /// `h3_port`: the UDP port its listener serves HTTP/3 on, when the site advertises it.
    pub(crate) fn new(
        site: Site,
        provider: &Arc<rustls::crypto::CryptoProvider>,
        h3_port: Option<u16>,
    ) -> std::io::Result<Self> {
        let outgoing = Outgoing::of(&site, h3_port);
        let files = match &site.root {
            Some(root) => Some(StaticFiles::new(
                root,
                site.static_options,
                site.welcome_page,
                outgoing.clone(),
            )?),
            None => None,
        };
        let name = site.primary_name().to_owned();
        let mut routes: Vec<RouteHandler> = site
            .routes
            .iter()
            .map(|r| RouteHandler::new(r.clone(), &name, provider.clone()))
            .collect::<std::io::Result<_>>()?;
        routes.sort_by_key(|r| std::cmp::Reverse(r.route.prefix.len()));
        let observe = crate::observe::metrics();
        let unrouted = match files.is_some() {
            true => "static",
            false => "-",
        };
        Ok(SiteHandler {
            metrics: observe.site(&name),
            unrouted: observe.route(&name, unrouted),
            auth: auth::BasicAuth::new(site.auth.clone()),
            site,
            files,
            routes,
            outgoing,
        })
    }

    pub(crate) fn static_root(&self) -> Option<&std::path::Path> {
        self.files.as_ref().map(StaticFiles::root)
    }

    /// The route for `path` (longest prefix), if any.
    fn route_for(&self, path: &str) -> Option<&RouteHandler> {
        self.routes.iter().find(|r| r.route.matches(path))
    }

    /// The answer to a request for a hot file that needs nothing of the request but its path
    /// (no route, password, redirect, body, condition, range, or coding to compress in), with
    /// its head finished once: [`Router::finish`] is skipped. `None`: [`Self::respond`].
    fn at_once<B: RequestBody>(
        &self,
        req: &Request<B>,
        route: Option<&RouteHandler>,
        codings: &[compression::Coding],
    ) -> Option<Response<Body>> {
        // An HTTP/3 response carries no Alt-Svc, which the kept heads have.
        let plain = route.is_none()
            && req.version() != http::Version::HTTP_3
            && self.auth.is_off()
            && http_body::Body::is_end_stream(req.body())
            && !redirect::is_exact(&self.site.redirects, req.uri().path());
        if !plain {
            return None;
        }
        self.files.as_ref()?.at_once(req, codings)
    }

    /// Basic auth, then exact redirects, then the longest matching route, then files.
    /// `codings`: what static files may be sent precompressed in, best first. A plain `fn`
    /// returning an `async` block, which keeps the request once (see [`Router::handle`]).
    fn respond<'a>(
        &'a self,
        mut req: Request<impl RequestBody>,
        fwd: proxy::Forward<'a>,
        route: Option<&'a RouteHandler>,
        codings: &'a [compression::Coding],
    ) -> impl Future<Output = Response<Body>> + Send + 'a {
        let conn = fwd.conn;
        async move {
            match self.auth.check(req.uri().path(), req.headers()).await {
                // The credentials were for candado: the application never sees them.
                Ok(true) => drop(req.headers_mut().remove(header::AUTHORIZATION)),
                Ok(false) => {}
                Err(challenge) => return challenge,
            }
            if let Some(res) = redirect::exact(&self.site.redirects, req.uri()) {
                return res;
            }
            if route.is_none()
                && let Err(res) = discard_body(req.body_mut(), self.site.max_body_bytes).await
            {
                return res;
            }
            let path = req.uri().path();
            match (route, &self.files) {
                (Some(rh), _) if !client_allowed(rh, conn) => {
                    tracing::warn!(
                        site = %self.site.primary_name(),
                        client = %conn.peer.ip(),
                        certificate = %conn.client.as_ref().map_or("none".into(), |c| c.describe()),
                        path = %path,
                        "refused: the client certificate is not in the route's allow_clients"
                    );
                    error::page(
                        StatusCode::FORBIDDEN,
                        "This path needs a client certificate that is allowed here.",
                    )
                }
                (Some(rh), _) => proxy::forward(rh, req, fwd).await,
                (None, Some(files)) => files.serve(&req, codings).await,
                _ => error::page(StatusCode::NOT_FOUND, "Nothing is served at this address."),
            }
        }
    }
}

/// Reads and drops a request body that nothing here uses, before answering: its framing errors
/// are then found and blamed on the client (over HTTP/2 a stream error, RFC 9113 §8.1.1),
/// rather than lost behind an early answer.
async fn discard_body(body: &mut impl RequestBody, limit: u64) -> Result<(), Response<Body>> {
    let mut seen = 0u64;
    while !http_body::Body::is_end_stream(body) {
        let Some(frame) = body.frame().await else {
            break;
        };
        match frame {
            Ok(f) => {
                seen += f.data_ref().map_or(0, |d| d.len() as u64);
                if seen > limit {
                    return Err(error::page(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "The request body is larger than this site accepts.",
                    ));
                }
            }
            Err(_) => {
                return Err(error::page(
                    StatusCode::BAD_REQUEST,
                    "The request body is malformed or was cut off.",
                ));
            }
        }
    }
    Ok(())
}

/// A route with `allow_clients` lets through only the certificates it names.
fn client_allowed(route: &RouteHandler, conn: &ConnInfo) -> bool {
    match &route.route.allow_clients {
        None => true,
        Some(allow) => conn.client.as_ref().is_some_and(|c| allow.permits(c)),
    }
}

/// What a site adds to its responses on their way out besides compressing them, made once at
/// start-up. [`Router::finish`] applies it to each response; hot files keep a head it was
/// applied to.
#[derive(Clone, Default)]
pub(crate) struct Outgoing {
    /// HSTS, nosniff, Referrer-Policy and the configured extras.
    headers: HeaderMap,
    /// The site compresses: a compressible response varies with Accept-Encoding.
    compresses: bool,
    /// `h3=":PORT"; ma=…` when the listener's QUIC endpoint is bound and the site serves
    /// HTTP/3: sent on HTTP/1.1 and HTTP/2 responses (RFC 7838, RFC 9114 §3.1.1).
    alt_svc: Option<HeaderValue>,
}

impl Outgoing {
    fn of(site: &Site, h3_port: Option<u16>) -> Self {
        let max_age = defaults::ALT_SVC_MAX_AGE.as_secs();
        let alt_svc = h3_port
            .and_then(|port| HeaderValue::from_str(&format!("h3=\":{port}\"; ma={max_age}")).ok());
        Outgoing {
            headers: security_headers(site),
            compresses: site.compression,
            alt_svc,
        }
    }

    /// The site's headers (a response's own value first), then Alt-Svc unless the response
    /// goes over HTTP/3.
    fn add(&self, h: &mut HeaderMap, over_h3: bool) {
        add_headers(h, &self.headers);
        if let Some(alt_svc) = self.alt_svc.as_ref().filter(|_| !over_h3) {
            h.insert(header::ALT_SVC, alt_svc.clone());
        }
    }

    /// What [`Router::finish`] does to the head of a whole static response: sent as it is
    /// (`coding` `None`), or already compressed in `coding`.
    pub(crate) fn finish_static(&self, h: &mut HeaderMap, coding: Option<compression::Coding>) {
        match coding {
            Some(coding) => {
                h.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(coding.token()),
                );
                compression::finish_precompressed(h, coding);
            }
            None if self.compresses => compression::vary_uncompressed(h),
            None => {}
        }
        self.add(h, false);
    }
}

fn security_headers(site: &Site) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(hsts) = &site.hsts
        && let Ok(v) = HeaderValue::from_str(&hsts.header_value())
    {
        h.insert(header::STRICT_TRANSPORT_SECURITY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(defaults::REFERRER_POLICY),
    );
    for (name, value) in &site.headers {
        h.insert(name.clone(), value.clone());
    }
    h
}

/// The sites of one listener, chosen by the request's host with the rule TLS uses for SNI
/// (exact names before wildcards, whatever the config order), so that the certificate, the
/// content and the access rules always come from the same site.
pub(crate) struct Router {
    sites: Vec<Arc<SiteHandler>>,
    /// Host → index in `sites`.
    names: crate::certs::NameTable<usize>,
    access_log: bool,
    /// ACME HTTP-01 tokens, answered on plain HTTP before any redirect.
    challenges: Option<Arc<crate::certs::Challenges>>,
    /// The request target and header field limits (the listener's parser allows their sum).
    limits: Limits,
    /// Requests refused before a site was found (bad Host, no such site).
    siteless: Arc<crate::observe::RequestCounts>,
}

impl Router {
    pub(crate) fn new(sites: Vec<Arc<SiteHandler>>, access_log: bool) -> Self {
        let mut names = crate::certs::NameTable::new(true);
        for (i, s) in sites.iter().enumerate() {
            names.insert(&s.site.names, i);
        }
        Router {
            sites,
            names,
            access_log,
            challenges: None,
            limits: Limits::default(),
            siteless: crate::observe::metrics().route("-", "-"),
        }
    }

    pub(crate) fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub(crate) fn with_challenges(mut self, challenges: Arc<crate::certs::Challenges>) -> Self {
        self.challenges = Some(challenges);
        self
    }

    /// The key authorization for an HTTP-01 token in flight, if `path` asks for one.
    pub(crate) fn acme_http01(&self, path: &str) -> Option<String> {
        self.challenges.as_ref()?.http01_response(path)
    }

    pub(crate) fn site_for(&self, host: &str) -> Option<&Arc<SiteHandler>> {
        self.site_index(host).map(|(_, s)| s)
    }

    fn site_index(&self, host: &str) -> Option<(usize, &Arc<SiteHandler>)> {
        let i = *self.names.get(Some(host))?;
        Some((i, self.sites.get(i)?))
    }

    pub(crate) fn sites(&self) -> &[Arc<SiteHandler>] {
        &self.sites
    }

    /// Serves one HTTPS request: routing first, at once, then the site's answer, the one step
    /// that may wait. Each `async fn` level keeps its arguments as well as its locals
    /// (rust-lang/rust#62958), and a future is moved whole until it is boxed: five levels kept
    /// the request ten times (3.2 KiB); two `async` blocks that use it in place keep it twice
    /// (1.7 KiB).
    pub(crate) fn handle<'a, B: RequestBody>(
        &'a self,
        mut req: Request<B>,
        conn: &'a ConnInfo,
        meta: RequestMeta,
    ) -> impl Future<Output = Response<Body>> + Send + 'a {
        let started = Instant::now();
        let line = self
            .access_log
            // The URI shares its bytes: no copy of the path per request.
            .then(|| (req.method().clone(), req.uri().clone()));
        let method = crate::observe::MethodClass::of(req.method());
        let routed = match self.route(&mut req, conn) {
            Ok(routed) => routed,
            Err(res) => {
                // No site took it: counted apart.
                self.siteless.count(method, res.status());
                return Either::Left(ready(logged(line, *res, conn, started)));
            }
        };
        if meta.framing_conflict {
            let res = self.finish(routed, method, framing_conflict(&req, conn), started);
            return Either::Left(ready(logged(line, res, conn, started)));
        }
        if let Some(res) = routed.site.at_once(&req, routed.route, routed.codings()) {
            let res = self.account(&routed, method, res, started);
            return Either::Left(ready(logged(line, res, conn, started)));
        }
        // `req` and `routed` are used in place, never moved to locals: no second copy here.
        // Boxed here, on the path that needs it, so that an answer made at once is neither
        // allocated nor copied: the future is kilobytes (a proxied request's state), and
        // hyper moves what the service returns at every step until it reaches its stream.
        Either::Right(Box::pin(async move {
            let fwd = proxy::Forward {
                conn,
                host: &routed.host,
                site: &routed.site.site,
                busy: meta.busy,
            };
            let codings = routed.codings();
            let res = routed.site.respond(req, fwd, routed.route, codings).await;
            logged(
                line,
                self.finish(routed, method, res, started),
                conn,
                started,
            )
        }))
    }

    /// The site and route for `req`, or the answer when no site may take it (boxed: a
    /// refusal is rare, and a `Response` would make every `Ok` as large).
    fn route<B>(
        &self,
        req: &mut Request<B>,
        conn: &ConnInfo,
    ) -> Result<Routed<'_>, Box<Response<Body>>> {
        if let Some(refused) = self.beyond_limits(req) {
            return Err(Box::new(refused));
        }
        let host = match host::request_host(req) {
            Ok(h) => h,
            Err(e) => {
                return Err(Box::new(error::page(
                    StatusCode::BAD_REQUEST,
                    &e.to_string(),
                )));
            }
        };
        let Some((index, site)) = self.site_index(&host) else {
            return Err(Box::new(error::page(
                StatusCode::MISDIRECTED_REQUEST,
                &format!("This server has no site named {host}."),
            )));
        };
        if !self.same_tls_rules(index, conn) {
            return Err(Box::new(error::page(
                StatusCode::MISDIRECTED_REQUEST,
                &format!(
                    "This connection was set up for another site, and {host} checks client certificates on its own: connect to {host} directly."
                ),
            )));
        }
        let route = site.route_for(req.uri().path());
        let compression = (site.site.compression && route.is_none_or(|r| r.route.compression))
            .then(|| (compression::Negotiation::of(req), req.method().clone()));
        Ok(Routed {
            site,
            host,
            route,
            bytes_in: declared_length(req.headers()),
            compression,
            over_h3: req.version() == http::Version::HTTP_3,
        })
    }

    /// What every site's response gets on its way out: compression, the site's headers and
    /// Alt-Svc, then [`Self::account`].
    fn finish(
        &self,
        routed: Routed<'_>,
        method: crate::observe::MethodClass,
        mut res: Response<Body>,
        started: Instant,
    ) -> Response<Body> {
        if let Some((negotiation, req_method)) = &routed.compression {
            res = negotiation.apply(req_method, res);
        }
        routed.site.outgoing.add(res.headers_mut(), routed.over_h3);
        self.account(&routed, method, res, started)
    }

    /// The response counted for its site and route.
    fn account(
        &self,
        routed: &Routed<'_>,
        method: crate::observe::MethodClass,
        mut res: Response<Body>,
        started: Instant,
    ) -> Response<Body> {
        let site = routed.site;
        let counts = routed.route.map_or(&site.unrouted, |r| &r.counts);
        counts.count(method, res.status());
        let bytes_out = match http_body::Body::size_hint(res.body()).exact() {
            Some(n) => n,
            None => {
                // Streamed (compressed, or proxied without a length): counted as it is sent.
                res = res.map(|body| counted(body, site.metrics.clone()));
                0
            }
        };
        site.metrics
            .served(started.elapsed(), routed.bytes_in, bytes_out);
        res
    }

    /// Whether a request for the site at `index` may use this connection. When sites ask for
    /// client certificates each has its own TLS set-up, so a connection made for one site
    /// (by SNI) must not reach another with different rules: the client could otherwise
    /// present a certificate to one site, or none, and be served by the other.
    fn same_tls_rules(&self, index: usize, conn: &ConnInfo) -> bool {
        let asks = |i: usize| {
            self.sites
                .get(i)
                .is_some_and(|s| s.site.client_auth.is_some())
        };
        conn.tls_site == index
            || conn.tls_version.is_none()
            || !(asks(index) || asks(conn.tls_site))
    }

    /// 414 for a request target (path and query) over `max_uri_bytes`, 431 for header fields
    /// over `max_header_bytes`, counted as `name: value\r\n` for HTTP/1.1 and HTTP/2 alike.
    fn beyond_limits<B>(&self, req: &Request<B>) -> Option<Response<Body>> {
        let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
        if target > self.limits.max_uri_bytes {
            return Some(error::page(
                StatusCode::URI_TOO_LONG,
                "The address (path and query) is longer than this server accepts.",
            ));
        }
        let fields: usize = req
            .headers()
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 4)
            .sum();
        (fields > self.limits.max_header_bytes).then(|| {
            error::page(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "The request headers are larger than this server accepts.",
            )
        })
    }

    /// Whether the access log is on.
    pub(crate) fn logs_access(&self) -> bool {
        self.access_log
    }
}

/// A request body's length as its Content-Length declares it (0 when it declares none).
fn declared_length(h: &HeaderMap) -> u64 {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

fn framing_conflict<B>(req: &Request<B>, conn: &ConnInfo) -> Response<Body> {
    tracing::warn!(client = %conn.peer.ip(), path = %req.uri().path(), "refused a request with ambiguous framing: both Content-Length and Transfer-Encoding, or chunked twice");
    let mut res = error::page(
        StatusCode::BAD_REQUEST,
        "The request's length is ambiguous: it has both Content-Length and Transfer-Encoding headers, or the chunked coding twice.",
    );
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// `body`, adding the size of each data frame to the site's bytes sent as it goes out.
fn counted(body: Body, metrics: Arc<crate::observe::SiteMetrics>) -> Body {
    body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            metrics.sent(data.len() as u64);
        }
        frame
    })
    .boxed()
}

/// `res`, written to the access log first when it is on (`line`: the request's method and URI).
fn logged(
    line: Option<(Method, http::Uri)>,
    res: Response<Body>,
    conn: &ConnInfo,
    started: Instant,
) -> Response<Body> {
    if let Some((method, uri)) = line {
        access_log(&method, uri.path(), &res, conn, started);
    }
    res
}

/// The access log: one line per request.
pub(crate) fn access_log(
    method: &Method,
    path: &str,
    res: &Response<Body>,
    conn: &ConnInfo,
    started: Instant,
) {
    let bytes = http_body::Body::size_hint(res.body()).exact().or_else(|| {
        res.headers()
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .parse()
            .ok()
    });
    tracing::info!(
        target: "candado::access",
        client = %conn.peer.ip(),
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        bytes,
        duration_ms = format_args!("{:.3}", started.elapsed().as_secs_f64() * 1e3),
        tls = %conn.tls_version.unwrap_or("none"),
        "request"
    );
}

/// Adds the site's headers where the response has none of its own (an upstream's own HSTS
/// or Referrer-Policy is left as the application set it).
fn add_headers(target: &mut HeaderMap, extra: &HeaderMap) {
    for (name, value) in extra {
        target.entry(name).or_insert_with(|| value.clone());
    }
}
