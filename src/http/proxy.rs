//! Reverse proxy: a request whose path matches a route goes to one of its upstreams, streamed
//! both ways without buffering whole bodies. Path and query reach the upstream byte for byte;
//! hop-by-hop headers are dropped; forwarding headers are added; the response comes back with
//! every header the upstream sent, cookies made `Secure` and `Location` rewritten.
//! WebSocket upgrades (HTTP/1.1) are relayed as a byte tunnel once both sides agree.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{Body, ConnInfo, error, headers};
use crate::config::{Route, Site, Upstream, defaults};

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, Box<dyn StdError + Send + Sync>>;
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A route's pooled HTTP client: keep-alive connections to its upstreams, https:// upstreams
/// verified against the system's roots with SNI.
#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<Connector, UpstreamBody>,
}

impl UpstreamClient {
    pub fn new(
        provider: Arc<rustls::crypto::CryptoProvider>,
        connect_timeout: std::time::Duration,
    ) -> std::io::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(defaults::UPSTREAM_IDLE_PER_HOST)
            .build(tls);
        Ok(UpstreamClient { client })
    }
}

/// A route, its client and the state of its upstreams.
pub struct RouteHandler {
    pub route: Route,
    client: UpstreamClient,
    next: AtomicUsize,
    /// Per upstream: milliseconds after `epoch` until which it is skipped.
    down_until: Vec<AtomicU64>,
    epoch: Instant,
}

impl RouteHandler {
    pub fn new(
        route: Route,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> std::io::Result<Self> {
        let client = UpstreamClient::new(provider, route.connect_timeout)?;
        let down_until = route.upstreams.iter().map(|_| AtomicU64::new(0)).collect();
        Ok(RouteHandler {
            route,
            client,
            next: AtomicUsize::new(0),
            down_until,
            epoch: Instant::now(),
        })
    }

    /// Round robin over the upstreams that did not fail recently (all of them if none is up).
    fn pick(&self) -> (usize, &Upstream) {
        let n = self.route.upstreams.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.down_until[i].load(Ordering::Relaxed) <= now)
            .unwrap_or(start % n);
        (i, &self.route.upstreams[i])
    }

    fn mark_down(&self, i: usize) {
        let until = self.epoch.elapsed() + defaults::UPSTREAM_DOWN_FOR;
        self.down_until[i].store(until.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Everything about the client side that the upstream request needs.
pub struct Forward<'a> {
    pub conn: &'a ConnInfo,
    /// The host the client asked for (validated), and the raw authority it sent.
    pub host: &'a str,
    pub site: &'a Site,
}

pub async fn forward(
    rh: &RouteHandler,
    mut req: Request<Incoming>,
    fwd: Forward<'_>,
) -> Response<Body> {
    let accept = req.headers().get(header::ACCEPT).cloned();
    let fail = |status, msg: &str| error::page_for(accept.as_ref(), status, msg);
    if headers::framing_is_ambiguous(req.headers()) {
        return fail(
            StatusCode::BAD_REQUEST,
            "The request has conflicting Content-Length and Transfer-Encoding headers.",
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > fwd.site.max_body_bytes) {
        return fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than this site accepts.",
        );
    }
    let upgrade = is_websocket_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let (i, upstream) = rh.pick();
    let Some(uri) = upstream_uri(&rh.route, upstream, req.uri()) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The request target cannot be forwarded.",
        );
    };
    let (mut parts, body) = req.into_parts();
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    prepare_request_headers(
        &mut parts.headers,
        &rh.route,
        &fwd,
        original_host,
        upgrade.is_some(),
    );
    let body: UpstreamBody = Limited::new(body, fwd.site.max_body_bytes as usize).boxed();
    let sent = tokio::time::timeout(
        rh.route.response_timeout,
        rh.client.client.request(Request::from_parts(parts, body)),
    )
    .await;
    let mut res = match sent {
        Err(_) => {
            tracing::warn!(upstream = %upstream.origin, "upstream sent no response in time");
            return fail(
                StatusCode::GATEWAY_TIMEOUT,
                "The application did not answer in time.",
            );
        }
        Ok(Err(e)) => return upstream_error(rh, i, upstream, &e, fail),
        Ok(Ok(res)) => res,
    };
    if let Some(client_side) = upgrade.filter(|_| res.status() == StatusCode::SWITCHING_PROTOCOLS) {
        tunnel(client_side, hyper::upgrade::on(&mut res));
        let (parts, _) = res.into_parts();
        return Response::from_parts(parts, super::empty());
    }
    let (mut parts, body) = res.into_parts();
    prepare_response_headers(&mut parts.headers, &rh.route, upstream, &fwd);
    Response::from_parts(parts, body.map_err(std::io::Error::other).boxed())
}

fn upstream_error(
    rh: &RouteHandler,
    i: usize,
    upstream: &Upstream,
    e: &hyper_util::client::legacy::Error,
    fail: impl Fn(StatusCode, &str) -> Response<Body>,
) -> Response<Body> {
    if caused_by::<LengthLimitError>(e) {
        return fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The request body is larger than this site accepts.",
        );
    }
    if e.is_connect() {
        rh.mark_down(i);
        tracing::warn!(upstream = %upstream.origin, error = %chain(e), "cannot connect to the upstream");
    } else {
        tracing::warn!(upstream = %upstream.origin, error = %chain(e), "upstream request failed");
    }
    // The page names no address and no error text: those stay in the log.
    fail(
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

/// The upstream URI: its origin plus the client's path and query as sent, minus the route's
/// prefix when `strip_prefix` is set.
fn upstream_uri(route: &Route, upstream: &Upstream, uri: &Uri) -> Option<Uri> {
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let pq = match route.strip_prefix && route.prefix != "/" {
        true => {
            let rest = pq.strip_prefix(route.prefix.as_str())?;
            match rest.starts_with('/') {
                true => rest.to_owned(),
                false => format!("/{rest}"),
            }
        }
        false => pq.to_owned(),
    };
    format!("{}{pq}", upstream.origin).parse().ok()
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
    headers::remove_hop_by_hop(h);
    if upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    // X-Forwarded-Host carries the Host as the client sent it, port included, so that apps
    // build correct external URLs (Werkzeug's ProxyFix, Django's USE_X_FORWARDED_HOST).
    let public = original_host
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or(fwd.host)
        .to_owned();
    let trusted = fwd.site.trusted_proxies.contains(&fwd.conn.peer.ip());
    headers::add_forwarding(h, fwd.conn.peer.ip(), &public, trusted);
    if let Some(host) = route.host_header.clone().or(original_host) {
        h.insert(header::HOST, host);
    }
    route.request_headers.apply(h);
}

fn prepare_response_headers(
    h: &mut HeaderMap,
    route: &Route,
    upstream: &Upstream,
    fwd: &Forward<'_>,
) {
    headers::remove_hop_by_hop(h);
    if fwd.site.secure_cookies {
        headers::secure_cookies(h);
    }
    let public = super::redirect::https_url(fwd.host, fwd.conn.local_port, "/");
    headers::rewrite_location(h, &upstream.origin, public.trim_end_matches('/'));
    route.response_headers.apply(h);
}

/// Relays bytes both ways between the upgraded client and upstream connections, until either
/// side closes. No request timeout applies: WebSockets live as long as both ends want.
fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => (c, u),
            (Err(e), _) | (_, Err(e)) => return tracing::debug!(error = %e, "upgrade failed"),
        };
        let (mut c, mut u) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
            tracing::debug!(error = %e, "WebSocket tunnel ended");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, strip: bool) -> Route {
        Route {
            prefix: prefix.into(),
            upstreams: vec![Upstream::parse("127.0.0.1:5000").unwrap()],
            strip_prefix: strip,
            host_header: None,
            request_headers: Default::default(),
            response_headers: Default::default(),
            connect_timeout: defaults::PROXY_CONNECT_TIMEOUT,
            response_timeout: defaults::PROXY_RESPONSE_TIMEOUT,
        }
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
            upstream_uri(&route("/api", false), &up, &uri).unwrap(),
            "http://127.0.0.1:5000/api/a%2Fb/%7e?x=%20&y"
        );
        assert_eq!(
            upstream_uri(&route("/api", true), &up, &uri).unwrap(),
            "http://127.0.0.1:5000/a%2Fb/%7e?x=%20&y"
        );
        let bare: Uri = "/api?q=1".parse().unwrap();
        assert_eq!(
            upstream_uri(&route("/api", true), &up, &bare).unwrap(),
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
