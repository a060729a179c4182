//! Reverse proxy: a request whose path matches a route goes to one of its upstreams, streamed
//! both ways without buffering whole bodies. Path and query reach the upstream byte for byte;
//! hop-by-hop headers are dropped; forwarding headers are added; the response comes back with
//! every header the upstream sent, cookies made `Secure` and redirects (`Location`,
//! `Content-Location`, `Refresh`) pointed back at the public origin and route prefix (and
//! `http://` ones on the public origin upgraded, with a hint for the app: `hints`).
//! WebSocket upgrades (HTTP/1.1) are relayed as a byte tunnel once both sides agree.

mod connect;
mod conns;
mod hints;
mod upstreams;

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;

use super::{Body, ConnBusy, ConnInfo, error, headers};
use crate::config::{Route, Site, Upstream};
use crate::observe::UpstreamError;
use upstreams::{Picked, Pool, UpstreamHttp};

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, Box<dyn StdError + Send + Sync>>;

/// A route, its client and the state of its upstreams.
pub(crate) struct RouteHandler {
    pub route: Route,
    client: UpstreamHttp,
    /// Kept-alive connections to the route's plain-HTTP/1.1 upstreams (hyper-util's `client`
    /// serves HTTPS and HTTP/2 ones).
    http1: Arc<conns::Http1Pool>,
    pool: Arc<Pool>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Each upstream's scheme and authority, parsed once (in the pool's order).
    origins: Vec<Origin>,
    /// What the app gets wrong about being behind HTTPS, said once (and counted).
    pub(crate) hints: hints::Hints,
    /// The route's request counts, resolved once.
    pub counts: Arc<crate::observe::RequestCounts>,
}

/// An upstream's scheme and authority, ready to put in front of a request's path.
type Origin = (http::uri::Scheme, http::uri::Authority);

fn origin_of(upstream: &Upstream) -> std::io::Result<Origin> {
    let uri: Uri = upstream.origin.parse().map_err(std::io::Error::other)?;
    let parts = uri.into_parts();
    match (parts.scheme, parts.authority) {
        (Some(s), Some(a)) => Ok((s, a)),
        _ => Err(std::io::Error::other(format!(
            "{} is not an upstream origin",
            upstream.origin
        ))),
    }
}

impl RouteHandler {
    /// Builds the route's client; starts its health checks when configured (needs a runtime).
    pub(crate) fn new(
        route: Route,
        site: &str,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> std::io::Result<Self> {
        let client = upstreams::client(&route, provider.clone())?;
        let pool = Pool::new(&route, site);
        if let Some(check) = route.health_check.clone() {
            upstreams::spawn_health_checks(&pool, client.clone(), check);
        }
        let origins = route
            .upstreams
            .iter()
            .map(origin_of)
            .collect::<std::io::Result<_>>()?;
        Ok(RouteHandler {
            counts: crate::observe::metrics().route(site, &route.prefix),
            http1: conns::Http1Pool::new(route.upstreams.len(), route.connect_timeout),
            route,
            client,
            pool,
            provider,
            origins,
            hints: hints::Hints::default(),
        })
    }

    /// The authority of upstream `index` when the route's own HTTP/1.1 pool reaches it:
    /// plain HTTP on a route without `http2`.
    fn direct(&self, index: usize) -> Option<&http::uri::Authority> {
        let (scheme, authority) = self.origins.get(index)?;
        (!self.route.http2 && *scheme == http::uri::Scheme::HTTP).then_some(authority)
    }
}

/// Everything about the client side that the upstream request needs.
pub(crate) struct Forward<'a> {
    pub conn: &'a ConnInfo,
    /// The host the client asked for (validated), and the raw authority it sent.
    pub host: &'a str,
    pub site: &'a Site,
    /// Keeps the connection busy while a tunnel made of this request lives.
    pub busy: Option<ConnBusy>,
}

/// Forwards `req` along the route. What can be decided at once (refusals, the upstream, the
/// upstream request) is decided before the returned future: it then holds the upstream
/// request only, not the client's request as well (an `async fn` keeps its arguments for its
/// whole life, rust-lang/rust#62958, and a future is moved whole at every step until boxed).
pub(crate) fn forward<'a>(
    rh: &'a RouteHandler,
    req: Request<impl super::RequestBody>,
    mut fwd: Forward<'a>,
) -> impl Future<Output = Response<Body>> + Send + 'a {
    let p = match prepare(rh, req, &mut fwd) {
        Ok(p) => p,
        Err(refused) => return Either::Left(std::future::ready(*refused)),
    };
    // `p` is used in place, never moved to a local: the future keeps one copy of it.
    Either::Right(async move {
        let (mut res, lease) = match send(rh, p.request, &p.picked).await {
            Ok(sent) => sent,
            Err((status, msg)) => return error::page_for(p.accept.as_ref(), status, msg),
        };
        match p
            .upgrade
            .filter(|_| res.status() == StatusCode::SWITCHING_PROTOCOLS)
        {
            Some(client_side) => {
                let upstream_side = hyper::upgrade::on(&mut res);
                let open = fwd.conn.gauges.open(crate::observe::Protocol::Upgraded);
                tunnel(
                    client_side,
                    upstream_side,
                    (p.busy, open),
                    fwd.conn.upgrade_idle,
                );
                upgraded(res, p.over_h2)
            }
            None => streamed(res, rh, (p.picked, lease), &fwd),
        }
    })
}

/// A request ready to go to its upstream, and what its answer needs.
struct Prepared {
    request: Request<UpstreamBody>,
    picked: Picked,
    /// The client's Accept, for the form of an error page.
    accept: Option<HeaderValue>,
    /// The client's side of a WebSocket upgrade, and whether it came as an HTTP/2 CONNECT.
    upgrade: Option<ClientSide>,
    over_h2: bool,
    busy: Option<ConnBusy>,
}

/// The upstream request for `req`, or the answer that refuses it (boxed: it is rare).
fn prepare(
    rh: &RouteHandler,
    mut req: Request<impl super::RequestBody>,
    fwd: &mut Forward<'_>,
) -> Result<Prepared, Box<Response<Body>>> {
    let accept = req.headers().get(header::ACCEPT).cloned();
    let fail = |status, msg: &str| Box::new(error::page_for(accept.as_ref(), status, msg));
    if let Some((status, msg)) = refusal(&req, fwd.site) {
        return Err(fail(status, msg));
    }
    let over_h2 = is_extended_connect_websocket(&req);
    let upgrade = (over_h2 || is_websocket_upgrade(&req)).then(|| ClientSide::of(&mut req));
    let picked = rh.pool.pick();
    let origin = rh.origins.get(picked.index);
    let direct = rh.direct(picked.index);
    let Some(request) = origin.and_then(|origin| {
        upstream_request(rh, req, (origin, direct), fwd, upgrade.is_some(), over_h2)
    }) else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "The request target cannot be forwarded.",
        ));
    };
    Ok(Prepared {
        request,
        picked,
        accept,
        upgrade,
        over_h2,
        busy: fwd.busy.take(),
    })
}

/// What is refused before anything reaches the application: ambiguous framing, a declared
/// body over the site's limit.
fn refusal<B>(req: &Request<B>, site: &Site) -> Option<(StatusCode, &'static str)> {
    if headers::framing_is_ambiguous(req.headers()) {
        return Some((
            StatusCode::BAD_REQUEST,
            "The request has conflicting Content-Length and Transfer-Encoding headers, or the chunked coding twice.",
        ));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    declared
        .is_some_and(|len| len > site.max_body_bytes)
        .then_some((
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than this site accepts.",
        ))
}

/// The request as the upstream gets it: its URI, HTTP/1.1, the forwarding headers, and the
/// body (bounded), or none after an upgrade. `None` when the target cannot be forwarded.
/// `direct`: the upstream's authority when the route's own HTTP/1.1 pool sends it, which
/// takes the target in origin form (hyper-util's client makes that form itself).
fn upstream_request(
    rh: &RouteHandler,
    req: Request<impl super::RequestBody>,
    (origin, direct): (&Origin, Option<&http::uri::Authority>),
    fwd: &Forward<'_>,
    upgrade: bool,
    over_h2: bool,
) -> Option<Request<UpstreamBody>> {
    let uri = match direct {
        Some(_) => Uri::from(upstream_target(&rh.route, req.uri())?),
        None => upstream_uri(&rh.route, origin, req.uri())?,
    };
    let (mut parts, body) = req.into_parts();
    // The authority of an absolute-form target (HTTP/1.1) wins over Host (RFC 9112 §3.2.2), as
    // it did when the site was chosen; over HTTP/2 it is `:authority`, which Host must match.
    let original_host = parts
        .uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .or_else(|| parts.headers.get(header::HOST).cloned());
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    if let Some(authority) = direct.filter(|_| original_host.is_none()) {
        // No Host from the client (HTTP/1.0): the upstream's own, as hyper-util sets it.
        parts.headers.insert(
            header::HOST,
            HeaderValue::from_str(authority.as_str()).ok()?,
        );
    }
    prepare_request_headers(&mut parts.headers, &rh.route, fwd, original_host, upgrade);
    if over_h2 {
        // RFC 8441 §5: the HTTP/2 CONNECT becomes an HTTP/1.1 Upgrade to the application.
        parts.method = Method::GET;
        parts
            .headers
            .insert(SEC_WEBSOCKET_KEY, websocket_key(&rh.provider));
    }
    // After an upgrade the stream's bytes belong to the tunnel, not to a request body. A
    // body already at its end (a GET) is sent as one that is empty from the start: the same
    // framing upstream, and no box for it (an empty one takes no allocation).
    let body: UpstreamBody = match upgrade || http_body::Body::is_end_stream(&body) {
        true => http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
        false => Limited::new(
            body.map_err(|e| ClientBodyError(e.into())),
            fwd.site.max_body_bytes as usize,
        )
        .boxed(),
    };
    Some(Request::from_parts(parts, body))
}

/// Sends the request and waits for the response head, at most the route's response timeout.
/// With the response comes the connection it was read from, when the route's own pool lent
/// it (to go back to the pool once the body has been read).
async fn send(
    rh: &RouteHandler,
    request: Request<UpstreamBody>,
    picked: &Picked,
) -> Result<(Response<Incoming>, Option<conns::Lease>), (StatusCode, &'static str)> {
    let started = std::time::Instant::now();
    let metrics = picked.metrics();
    let sending = async {
        match rh.direct(picked.index) {
            Some(authority) => match rh.http1.send(picked.index, authority, request).await {
                Ok((res, lease)) => Ok((res, Some(lease))),
                // hyper's own error, so that its kind (a reset, a body over the limit) shows.
                Err(conns::SendError::Http(e)) => Err(upstream_error(picked, &e, false)),
                Err(e) => Err(upstream_error(picked, &e, true)),
            },
            None => match rh.client.request(request).await {
                Ok(res) => Ok((res, None)),
                Err(e) => Err(upstream_error(picked, &e, e.is_connect())),
            },
        }
    };
    match tokio::time::timeout(rh.route.response_timeout, sending).await {
        Err(_) => {
            metrics.failed(UpstreamError::Timeout);
            crate::observe::metrics().error(
                "upstream",
                &metrics.origin,
                format!(
                    "no response within {}: answered 504",
                    humantime::format_duration(rh.route.response_timeout)
                ),
            );
            tracing::warn!(
                upstream = %picked.upstream().origin,
                "the upstream sent no response within {} (the route's timeouts.response, or proxy --response-timeout): answered 504",
                humantime::format_duration(rh.route.response_timeout)
            );
            Err((
                StatusCode::GATEWAY_TIMEOUT,
                "The application did not answer in time.",
            ))
        }
        Ok(Err(refused)) => Err(refused),
        Ok(Ok(sent)) => {
            metrics.answered(started.elapsed());
            Ok(sent)
        }
    }
}

/// The answer to an upgrade the application accepted; the tunnel carries the rest.
fn upgraded(res: Response<Incoming>, over_h2: bool) -> Response<Body> {
    let (mut parts, _) = res.into_parts();
    if over_h2 {
        // HTTP/2 accepts the stream with 200 and has no connection-specific headers.
        parts.status = StatusCode::OK;
        headers::remove_hop_by_hop(&mut parts.headers);
        parts.headers.remove(SEC_WEBSOCKET_ACCEPT);
    }
    Response::from_parts(parts, super::empty())
}

/// The application's response, its headers rewritten, its body streamed as it comes.
fn streamed(
    res: Response<Incoming>,
    rh: &RouteHandler,
    (picked, lease): (Picked, Option<conns::Lease>),
    fwd: &Forward<'_>,
) -> Response<Body> {
    let (mut parts, body) = res.into_parts();
    prepare_response_headers(&mut parts.headers, rh, picked.upstream(), fwd);
    let body = Counted {
        inner: body,
        ended: false,
        lease,
        _picked: picked,
    };
    Response::from_parts(parts, body.map_err(std::io::Error::other).boxed())
}

/// A response body that keeps its upstream counted as busy until it has been streamed (or
/// dropped), for least-connections balancing, and gives its connection back to the route's
/// pool when it was read to its end.
struct Counted {
    inner: Incoming,
    /// The last frame has been read.
    ended: bool,
    lease: Option<conns::Lease>,
    _picked: Picked,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // A body left unread (the client went away) leaves the connection mid-response: it is
        // closed with the lease instead.
        let whole = self.ended || hyper::body::Body::is_end_stream(&self.inner);
        if let Some(lease) = self.lease.take().filter(|_| whole) {
            lease.give_back();
        }
    }
}

/// The client's request body could not be read (a malformed chunk, a reset): the client's
/// fault, not the application's (RFC 9112 §7.1).
#[derive(Debug, thiserror::Error)]
#[error("the client's request body is malformed or was cut off")]
struct ClientBodyError(#[source] Box<dyn StdError + Send + Sync>);

/// The answer for a request that got no response; `connect`: no connection could be made
/// (the upstream is then taken out of rotation for a while).
fn upstream_error(
    picked: &Picked,
    e: &(dyn StdError + 'static),
    connect: bool,
) -> (StatusCode, &'static str) {
    if caused_by::<LengthLimitError>(e) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than this site accepts.",
        );
    }
    if caused_by::<ClientBodyError>(e) {
        // The upstream saw an unfinished body and a closed connection: nothing complete.
        tracing::info!(error = %chain(e), "refused a request whose body could not be read");
        return (
            StatusCode::BAD_REQUEST,
            "The request body is malformed (RFC 9112 §7.1).",
        );
    }
    let upstream = picked.upstream();
    let kind = match (connect, caused_by_reset(e)) {
        (true, _) => UpstreamError::Connect,
        (false, true) => UpstreamError::Reset,
        (false, false) => UpstreamError::Other,
    };
    picked.metrics().failed(kind);
    if connect {
        picked.mark_down();
        tracing::warn!(upstream = %upstream.origin, error = %chain(e), "cannot connect to the upstream");
    } else {
        tracing::warn!(upstream = %upstream.origin, error = %chain(e), "upstream request failed");
    }
    crate::observe::metrics().error("upstream", &upstream.origin, chain(e));
    // The page names no address and no error text: those stay in the log.
    (
        StatusCode::BAD_GATEWAY,
        "The application behind this site is not answering.",
    )
}

fn caused_by<E: StdError + 'static>(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<E>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The upstream closed or reset the connection before answering (an I/O reset, or hyper's
/// "connection closed before message completed").
pub(super) fn caused_by_reset(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        {
            return true;
        }
        if err
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        out.push_str(": ");
        out.push_str(&err.to_string());
        cur = err.source();
    }
    out
}

/// The upstream URI: its origin plus [`upstream_target`].
fn upstream_uri(route: &Route, (scheme, authority): &Origin, uri: &Uri) -> Option<Uri> {
    Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query(upstream_target(route, uri)?)
        .build()
        .ok()
}

/// The client's path and query as sent, minus the route's prefix when `strip_prefix` is set.
fn upstream_target(route: &Route, uri: &Uri) -> Option<http::uri::PathAndQuery> {
    Some(match (route.stripped_prefix(), uri.path_and_query()) {
        // The client's own path and query, shared rather than copied.
        (None, Some(pq)) => pq.clone(),
        (None, None) => http::uri::PathAndQuery::from_static("/"),
        (Some(prefix), pq) => {
            let rest = pq.map_or("/", |pq| pq.as_str()).strip_prefix(prefix)?;
            match rest.starts_with('/') {
                true => rest.parse().ok()?,
                false => format!("/{rest}").parse().ok()?,
            }
        }
    })
}

const SEC_WEBSOCKET_KEY: http::HeaderName = http::HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_ACCEPT: http::HeaderName =
    http::HeaderName::from_static("sec-websocket-accept");

/// An extended CONNECT with `:protocol = websocket` (RFC 8441 §4).
fn is_extended_connect_websocket<B>(req: &Request<B>) -> bool {
    req.method() == Method::CONNECT
        && req
            .extensions()
            .get::<hyper::ext::Protocol>()
            .is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket"))
}

/// A fresh Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 §4.1).
fn websocket_key(provider: &rustls::crypto::CryptoProvider) -> HeaderValue {
    use base64::Engine;
    let mut nonce = [0u8; 16];
    // A nonce for the handshake, not a secret: a failed random source still yields a valid key.
    let _ = provider.secure_random.fill(&mut nonce);
    let key = base64::engine::general_purpose::STANDARD.encode(nonce);
    HeaderValue::from_str(&key).unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="))
}

/// `Connection: upgrade` + `Upgrade: websocket` on an HTTP/1.1 GET (RFC 6455 §4.1).
fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

fn prepare_request_headers(
    h: &mut HeaderMap,
    route: &Route,
    fwd: &Forward<'_>,
    original_host: Option<HeaderValue>,
    upgrade: bool,
) {
    // Room for the forwarding headers at once: the map would otherwise grow (and rehash) as
    // they go in, up to twice.
    h.reserve(6);
    let dropped = headers::remove_underscore_names(h, fwd.site.allow_underscore_headers);
    for name in dropped {
        // CGI and WSGI read `_` as `-`: X_Real_IP would arrive as X-Real-IP.
        tracing::debug!(client = %fwd.conn.peer.ip(), header = %name, "dropped a request header with `_` in its name");
    }
    headers::remove_hop_by_hop(h);
    headers::canonical_content_length(h);
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    // X-Forwarded-Host carries the Host as the client sent it, port included, so that apps
    // build correct external URLs (Werkzeug's ProxyFix, Django's USE_X_FORWARDED_HOST).
    let public = match original_host.as_ref().filter(|v| v.to_str().is_ok()) {
        Some(sent) => sent.clone(),
        None => HeaderValue::from_str(fwd.host).unwrap_or_else(|_| HeaderValue::from_static("")),
    };
    // These two look for the client's copies among the fields: before the forwarding
    // headers go in, there are fewer to look at.
    let identity = fwd
        .site
        .client_auth
        .as_ref()
        .and(fwd.conn.client.as_deref());
    let pem = fwd.site.client_auth.as_ref().is_some_and(|a| a.forward_pem);
    headers::set_client_identity(h, identity, pem);
    headers::set_forwarded_prefix(h, route.stripped_prefix());
    let peer = fwd.conn.peer.ip();
    let trusted = fwd.site.trusted_proxies.contains(&peer);
    headers::add_forwarding(h, (peer, fwd.conn.peer_value()), &public, trusted);
    if let Some(host) = route.host_header.clone().or(original_host) {
        h.insert(header::HOST, host);
    }
    route.request_headers.apply(h);
}

fn prepare_response_headers(
    h: &mut HeaderMap,
    rh: &RouteHandler,
    upstream: &Upstream,
    fwd: &Forward<'_>,
) {
    let route = &rh.route;
    headers::remove_hop_by_hop(h);
    let insecure = match fwd.site.secure_cookies {
        true => headers::secure_cookies(h),
        false => 0,
    };
    // Most responses redirect nowhere: build the public URL only for those that do.
    let redirects = [header::LOCATION, header::CONTENT_LOCATION, header::REFRESH];
    let mut upgraded = 0;
    if redirects.iter().any(|name| h.contains_key(name)) {
        let public = super::redirect::https_url(fwd.host, fwd.conn.local_port, "/");
        let public = public.trim_end_matches('/');
        let urls = headers::PublicUrls {
            upstream_origin: &upstream.origin,
            public_origin: public,
            stripped_prefix: route.stripped_prefix(),
        };
        headers::rewrite_redirects(h, &urls);
        upgraded = headers::upgrade_own_http_urls(h, public.trim_start_matches("https://"));
    }
    if upgraded > 0 {
        let upgraded = upgraded as u64;
        rh.counts
            .redirects_upgraded
            .fetch_add(upgraded, Ordering::Relaxed);
    }
    if upgraded + insecure > 0 {
        let public = super::redirect::https_url(fwd.host, fwd.conn.local_port, "/");
        let app_port = upstream
            .origin
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(80);
        rh.hints.note(
            &route.prefix,
            h,
            (upgraded, insecure),
            public.trim_end_matches('/'),
            app_port,
        );
    }
    route.response_headers.apply(h);
}

/// The client's side of an upgrade: hyper's (HTTP/1.1, and HTTP/2 served by hyper), or a
/// CONNECT stream of candado's own HTTP/2 server.
enum ClientSide {
    Hyper(hyper::upgrade::OnUpgrade),
    Http2(crate::http2::OnUpgrade),
}

impl ClientSide {
    fn of<B>(req: &mut Request<B>) -> Self {
        match req.extensions_mut().remove::<crate::http2::OnUpgrade>() {
            Some(own) => ClientSide::Http2(own),
            None => ClientSide::Hyper(hyper::upgrade::on(req)),
        }
    }

    async fn upgraded(
        self,
    ) -> Result<
        Either<hyper::upgrade::Upgraded, crate::http2::Upgraded>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        Ok(match self {
            ClientSide::Hyper(on) => Either::Left(on.await?),
            ClientSide::Http2(on) => Either::Right(on.await?),
        })
    }
}

/// Relays bytes both ways between the upgraded client and upstream connections, until both
/// sides close or nothing moves for `idle` (`timeouts.upgrade_idle`). No request timeout
/// applies: WebSockets live as long as both ends want and talk.
fn tunnel(
    client: ClientSide,
    upstream: hyper::upgrade::OnUpgrade,
    busy: (Option<ConnBusy>, crate::observe::OpenConnection),
    idle: std::time::Duration,
) {
    tokio::spawn(async move {
        // Held for the tunnel's life: an HTTP/2 connection carrying it is not idle, and the
        // upgraded connection is counted as open.
        let _busy = busy;
        let (client, upstream) = match tokio::join!(client.upgraded(), upstream) {
            (Ok(c), Ok(u)) => (c, TokioIo::new(u)),
            (Err(e), _) => return tracing::debug!(error = %e, "upgrade failed"),
            (_, Err(e)) => return tracing::debug!(error = %e, "upgrade failed"),
        };
        let relayed = match client {
            Either::Left(hyper) => crate::tunnel::relay(TokioIo::new(hyper), upstream, idle).await,
            Either::Right(own) => crate::tunnel::relay(own, upstream, idle).await,
        };
        match relayed.ending {
            crate::tunnel::Ending::Idle => tracing::debug!(
                "closed a WebSocket silent for {} (timeouts.upgrade_idle)",
                humantime::format_duration(idle)
            ),
            _ => {
                tracing::debug!(ending = ?relayed.ending, error = ?relayed.error, "WebSocket tunnel ended")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, strip: bool) -> Route {
        let mut r = Route::to(prefix, vec![Upstream::parse("127.0.0.1:5000").unwrap()]);
        r.strip_prefix = strip;
        r
    }

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let r = route("/api", false);
        assert!(
            r.matches("/api") && r.matches("/api/x") && !r.matches("/apiary") && !r.matches("/ap")
        );
        assert!(route("/", false).matches("/anything"));
    }

    #[test]
    fn upstream_uris_keep_the_target_byte_for_byte() {
        let up = Upstream::parse("http://127.0.0.1:5000").unwrap();
        let uri: Uri = "/api/a%2Fb/%7e?x=%20&y".parse().unwrap();
        assert_eq!(
            upstream_uri(&route("/api", false), &origin_of(&up).unwrap(), &uri).unwrap(),
            "http://127.0.0.1:5000/api/a%2Fb/%7e?x=%20&y"
        );
        assert_eq!(
            upstream_uri(&route("/api", true), &origin_of(&up).unwrap(), &uri).unwrap(),
            "http://127.0.0.1:5000/a%2Fb/%7e?x=%20&y"
        );
        let bare: Uri = "/api?q=1".parse().unwrap();
        assert_eq!(
            upstream_uri(&route("/api", true), &origin_of(&up).unwrap(), &bare).unwrap(),
            "http://127.0.0.1:5000/?q=1"
        );
    }

    #[test]
    fn upstream_addresses_are_checked() {
        assert_eq!(
            Upstream::parse("127.0.0.1:5000").unwrap().origin,
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            Upstream::parse("https://b.internal").unwrap().origin,
            "https://b.internal"
        );
        assert!(Upstream::parse("ftp://x").is_err());
        assert!(Upstream::parse("http://x/base").is_err());
    }
}
