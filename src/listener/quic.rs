//! HTTP/3 (RFC 9114) over QUIC, on the UDP port of the same number as an HTTPS listener. Each
//! connection is served with the same pieces as TCP's: the TLS set-up built from the same
//! certificate resolver (ALPN `h3`, 0-RTT off), the same `http::Router` (Host/SNI rule,
//! static files, proxy, auth, headers), and the same limits and deadlines, counted against
//! the connection limit shared with TCP. What QUIC adds: Retry under load (address
//! validation, RFC 9000 §8.1) and GOAWAY on drain (RFC 9114 §5.2).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Buf, Bytes};
use h3::error::Code;
use http::{HeaderMap, Request, Response, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::activity::Activity;
use super::{ConnSettings, ListenerCtx};
use crate::config::defaults;
use crate::http::{ConnInfo, Router, error, host};
use crate::tls::ClientIdentity;

/// The ALPN identifier of HTTP/3 (RFC 9114 §3.1).
pub(crate) const ALPN_H3: &[u8] = b"h3";

/// What the QUIC side of a listener serves; replaced whole on reload (new connections get the
/// new certificates and sites, open ones keep theirs).
pub(crate) struct QuicState {
    /// The rustls set-up with ALPN `h3`, sharing the TCP side's certificate resolver.
    pub tls: Arc<rustls::ServerConfig>,
    pub router: Arc<Router>,
}

/// A bound QUIC endpoint and what it serves.
pub(crate) struct QuicListener {
    endpoint: quinn::Endpoint,
    state: ArcSwap<Option<QuicState>>,
    /// The TCP listener's context on the same port: its deadlines and limits.
    tcp: Arc<ListenerCtx>,
}

type H3Conn = h3::server::Connection<h3_quinn::Connection, Bytes>;
type RecvSide = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// Binds UDP `addr` (the port an HTTPS listener got). The caller decides what a failure
/// means: HTTP/3 is an addition, so the site is served over TCP without it.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
}

impl QuicListener {
    pub(crate) fn new(
        endpoint: quinn::Endpoint,
        state: Option<QuicState>,
        tcp: Arc<ListenerCtx>,
    ) -> Arc<Self> {
        let listener = Arc::new(QuicListener {
            endpoint,
            state: ArcSwap::from_pointee(None),
            tcp,
        });
        listener.swap(state);
        listener
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// Serves `state` to new connections from now on; `None` refuses them.
    pub(crate) fn swap(&self, state: Option<QuicState>) {
        let settings = self.tcp.settings.load_full();
        let config = state
            .as_ref()
            .and_then(|s| match server_config(s, &settings) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "HTTP/3 is off: the TLS set-up does not suit QUIC");
                    None
                }
            });
        let serving = config.is_some();
        self.endpoint.set_server_config(config);
        self.state
            .store(Arc::new(if serving { state } else { None }));
    }
}

/// quinn's server config: the rustls set-up plus the transport limits.
fn server_config(
    state: &QuicState,
    settings: &ConnSettings,
) -> Result<quinn::ServerConfig, quinn::crypto::rustls::NoInitialCipherSuite> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(state.tls.clone())?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let t = settings.timeouts;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(defaults::MAX_H3_STREAMS.into())
        .max_concurrent_uni_streams(defaults::MAX_H3_UNI_STREAMS.into())
        // The request-level idle deadline (no request in flight for `idle`) closes quiet
        // connections, as for TCP; QUIC's own idle timeout only catches a vanished peer, and
        // pings keep it from cutting a long, silent response (an event stream).
        .max_idle_timeout(quinn::IdleTimeout::try_from(t.idle).ok())
        .keep_alive_interval(Some(t.idle / 3));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The handshakes in progress above which new clients are sent a Retry first.
fn retry_above() -> usize {
    std::env::var("CANDADO_QUIC_RETRY_ABOVE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(defaults::QUIC_RETRY_ABOVE_HANDSHAKES)
}

/// Accepts QUIC connections until `shutdown`, within the connection limit shared with TCP;
/// then sends every connection a GOAWAY, lets requests in flight finish (at most
/// `drain_timeout`) and closes. Returns how many connections were still open.
pub(crate) async fn serve(
    listeners: Vec<Arc<QuicListener>>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> usize {
    let tracker = TaskTracker::new();
    let mut loops = tokio::task::JoinSet::new();
    for l in &listeners {
        loops.spawn(accept_loop(
            l.clone(),
            permits.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    tracker.close();
    let left = match tokio::time::timeout(drain_timeout, tracker.wait()).await {
        Ok(()) => 0,
        Err(_) => tracker.len(),
    };
    for l in &listeners {
        l.endpoint.close(
            Code::H3_NO_ERROR.value().try_into().unwrap_or_default(),
            b"",
        );
    }
    // Lets the CONNECTION_CLOSE frames leave, briefly.
    for l in &listeners {
        let _ = tokio::time::timeout(Duration::from_millis(200), l.endpoint.wait_idle()).await;
    }
    left
}

/// Counts a handshake in progress while alive.
struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Handshaking(count.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn accept_loop(
    listener: Arc<QuicListener>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let handshakes = Arc::new(AtomicUsize::new(0));
    let retry_above = retry_above();
    loop {
        let incoming = tokio::select! {
            i = listener.endpoint.accept() => match i {
                Some(i) => i,
                None => return,
            },
            _ = shutdown.cancelled() => return,
        };
        // Over the limit a TCP client waits in the kernel's queue; a QUIC client is told to
        // come back later (CONNECTION_REFUSED), which costs nothing to keep.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(peer = %incoming.remote_address(), "QUIC connection refused: at the connection limit");
            incoming.refuse();
            continue;
        };
        if handshakes.load(Ordering::Relaxed) >= retry_above
            && !incoming.remote_address_validated()
            && incoming.may_retry()
        {
            tracing::debug!(peer = %incoming.remote_address(), "QUIC handshake asked to retry: validating the address first");
            if let Err(e) = incoming.retry() {
                drop(e.into_incoming());
            }
            continue;
        }
        let handshaking = Handshaking::start(&handshakes);
        let (l, shutdown) = (listener.clone(), shutdown.clone());
        tracker.spawn(async move {
            serve_connection(incoming, handshaking, &l, shutdown).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handshaking: Handshaking,
    listener: &QuicListener,
    shutdown: CancellationToken,
) {
    let state = listener.state.load_full();
    let Some(state) = state.as_ref() else {
        return incoming.refuse();
    };
    let settings = listener.tcp.settings.load_full();
    let peer = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => return tracing::debug!(%peer, error = %e, "QUIC connection failed"),
    };
    let conn = match timeout(settings.timeouts.handshake, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            return match refusal(&e) {
                Some(reason) => {
                    tracing::warn!(client = %peer, "client certificate refused (HTTP/3): {reason}")
                }
                None => tracing::debug!(%peer, error = %e, "QUIC handshake failed"),
            };
        }
        Err(_) => return tracing::debug!(%peer, "QUIC handshake timed out"),
    };
    drop(handshaking);
    let metrics = crate::observe::metrics();
    metrics.handshakes.done(Some("TLSv1.3"), Some(b"h3"), false);
    let _open = listener.tcp.gauges.open(crate::observe::Protocol::H3);
    let info = conn_info(&conn, peer, &listener.tcp, &settings);
    tracing::debug!(%peer, sni = %sni(&conn).unwrap_or_default(), "QUIC handshake done (HTTP/3)");
    let limits = settings.limits;
    let h3 = h3::server::builder()
        .max_field_section_size(limits.max_head_bytes() as u64)
        .build::<_, Bytes>(h3_quinn::Connection::new(conn.clone()))
        .await;
    let h3 = match h3 {
        Ok(h3) => h3,
        Err(e) => return tracing::debug!(%peer, error = %e, "HTTP/3 connection set-up failed"),
    };
    let ctx = Arc::new(RequestCtx {
        router: state.router.clone(),
        info,
        settings: *settings,
        activity: Activity::new(),
    });
    drive(h3, &conn, ctx, shutdown).await;
}

/// What every request of one connection shares.
struct RequestCtx {
    router: Arc<Router>,
    info: ConnInfo,
    settings: ConnSettings,
    activity: Arc<Activity>,
}

/// Accepts requests until the client goes, the connection is idle, or the server drains
/// (GOAWAY, then the requests in flight finish).
async fn drive(
    mut h3: H3Conn,
    conn: &quinn::Connection,
    ctx: Arc<RequestCtx>,
    shutdown: CancellationToken,
) {
    let t = ctx.settings.timeouts;
    let mut requests = tokio::task::JoinSet::new();
    let mut draining = false;
    // One timer, moved when its deadline changes, not one made per request (see conn.rs).
    let check = sleep_until(Instant::now() + t.idle);
    tokio::pin!(check);
    loop {
        tokio::select! {
            accepted = h3.accept(), if !draining => match accepted {
                Ok(Some(resolver)) => drop(requests.spawn(serve_request(resolver, ctx.clone()))),
                // The client sent GOAWAY or closed: the requests in flight still finish (or
                // fail at once if the connection is gone).
                end => {
                    if let Err(e) = end.as_ref()
                        && !e.is_h3_no_error()
                    {
                        tracing::debug!(peer = %ctx.info.peer, error = %e, "HTTP/3 connection ended with an error");
                    }
                    draining = true;
                    if requests.is_empty() {
                        break;
                    }
                }
            },
            Some(_) = requests.join_next(), if !requests.is_empty() => {
                if draining && requests.is_empty() {
                    break;
                }
            }
            _ = shutdown.cancelled(), if !draining => {
                // GOAWAY naming the last request accepted: the client retries the rest
                // elsewhere, the ones in flight finish.
                let _ = h3.shutdown(0).await;
                draining = true;
                if requests.is_empty() {
                    break;
                }
            }
            _ = check.as_mut() => {
                let writes = ctx.activity.check_writes(t.write);
                if writes.aborted > 0 {
                    tracing::debug!(responses = writes.aborted, "aborted HTTP/3 responses the client stopped reading for the write timeout");
                }
                if !draining && ctx.activity.is_idle(t.idle) {
                    tracing::debug!(peer = %ctx.info.peer, "closing an idle HTTP/3 connection");
                    let _ = h3.shutdown(0).await;
                    draining = true;
                    if requests.is_empty() {
                        break;
                    }
                }
                let idle = ctx.activity.idle_deadline(t.idle).max(Instant::now() + Duration::from_millis(100));
                check.as_mut().reset(writes.next_check.map_or(idle, |w| w.min(idle)));
            }
        }
    }
    // Whatever is still running (a client that went away) ends with the connection.
    requests.abort_all();
    if draining {
        // The last responses may still be in flight (closing discards unsent stream data):
        // give the client a moment to read them and close by itself.
        let _ = timeout(CLOSE_GRACE, conn.closed()).await;
    }
    conn.close(quic_code(Code::H3_NO_ERROR), b"");
}

/// How long a drained connection waits for the client to close it after its last response.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

fn quic_code(code: Code) -> quinn::VarInt {
    quinn::VarInt::from_u64(code.value()).unwrap_or_default()
}

/// One request: its head, the per-site HTTP/3 switch, the router, then the response streamed
/// under the write deadline.
async fn serve_request(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    ctx: Arc<RequestCtx>,
) {
    let t = ctx.settings.timeouts;
    let _busy = ctx.activity.busy();
    // h3 answers an oversized head with 431 by itself (QPACK field section limit).
    let (req, stream) = match timeout(t.header_read, resolver.resolve_request()).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return tracing::debug!(peer = %ctx.info.peer, error = %e, "HTTP/3 request refused");
        }
        Err(_) => return tracing::debug!(peer = %ctx.info.peer, "HTTP/3 request head timed out"),
    };
    let (mut send, recv) = stream.split();
    let (mut parts, ()) = req.into_parts();
    parts.version = Version::HTTP_3;
    let req = Request::from_parts(parts, RecvBody(std::sync::Mutex::new(recv)));
    let res = match h3_refused(&ctx.router, &req) {
        Some(res) => res,
        None => {
            let meta = crate::http::RequestMeta::default();
            ctx.router.handle(req, &ctx.info, meta).await
        }
    };
    let (mut head, body) = res.into_parts();
    strip_connection_headers(&mut head.headers);
    let mut body = ctx.activity.watch_response(body);
    if let Err(e) = send.send_response(Response::from_parts(head, ())).await {
        return tracing::debug!(peer = %ctx.info.peer, error = %e, "HTTP/3 response not sent");
    }
    let deadline = |_| Instant::now() + t.write;
    loop {
        let frame = match body.frame().await {
            None => break,
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                tracing::debug!(peer = %ctx.info.peer, error = %e, "HTTP/3 response cut off");
                return send.stop_stream(Code::H3_REQUEST_CANCELLED);
            }
        };
        let sent = match frame.into_data() {
            Ok(data) => timeout_at(deadline(()), send.send_data(data)).await,
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => timeout_at(deadline(()), send.send_trailers(trailers)).await,
                Err(_) => continue,
            },
        };
        match sent {
            Ok(Ok(())) => {}
            // The client stopped reading (flow control closed) for the write timeout.
            Err(_) => return send.stop_stream(Code::H3_REQUEST_CANCELLED),
            Ok(Err(e)) => {
                return tracing::debug!(peer = %ctx.info.peer, error = %e, "HTTP/3 response not sent in full");
            }
        }
    }
    let _ = send.finish().await;
}

/// 421 for a site that turned HTTP/3 off (`http3: false`) but shares its port with one that
/// did not: the client tries again over TCP (RFC 9110 §15.5.20).
fn h3_refused<B>(router: &Router, req: &Request<B>) -> Option<Response<crate::http::Body>> {
    let host = host::request_host(req).ok()?;
    let site = router.site_for(&host)?;
    (!site.site.http3).then(|| {
        error::page(
            StatusCode::MISDIRECTED_REQUEST,
            &format!("{host} is not served over HTTP/3 here: use HTTPS over TCP."),
        )
    })
}

/// Connection-specific fields are malformed in HTTP/3 (RFC 9114 §4.2); a response made for
/// HTTP/1.1 (a framing refusal's `Connection: close`, an upstream's `Keep-Alive`) drops them.
fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// The request body as the router reads it: DATA frames of the request stream. The mutex is
/// never contended (the body is polled through `&mut`); it makes the stream `Sync`, as the
/// proxy's boxed bodies require.
struct RecvBody(std::sync::Mutex<RecvSide>);

impl hyper::body::Body for RecvBody {
    type Data = Bytes;
    type Error = h3::error::StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let recv = self
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match recv.poll_recv_data(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Some(mut buf))) => {
                let bytes = buf.copy_to_bytes(buf.remaining());
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// What the router needs to know of the connection, as for TCP.
fn conn_info(
    conn: &quinn::Connection,
    peer: SocketAddr,
    tcp: &ListenerCtx,
    settings: &ConnSettings,
) -> ConnInfo {
    let client = conn
        .peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|chain| chain.first().and_then(|c| ClientIdentity::from_der(c)))
        .map(Arc::new);
    ConnInfo {
        peer,
        tls_version: Some("TLSv1.3"),
        local_port: tcp.local_port,
        // Only listeners with one TLS set-up serve HTTP/3 (QUIC cannot pick one by SNI
        // before the handshake), so every connection is made for profile 0.
        tls_site: 0,
        client,
        upgrade_idle: settings.timeouts.upgrade_idle,
        peer_value: Default::default(),
        gauges: tcp.gauges.clone(),
    }
}

fn sni(conn: &quinn::Connection) -> Option<String> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .server_name
}

/// Why a client certificate was refused, when that is what ended the handshake (quinn keeps
/// rustls's reason as text only).
fn refusal(e: &quinn::ConnectionError) -> Option<String> {
    let text = e.to_string();
    text.contains("certificate").then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_specific_fields_are_removed_from_http3_responses() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("connection", "close"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "keep-alive"),
            ("content-type", "text/plain"),
        ] {
            h.insert(
                header::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        strip_connection_headers(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["content-type"]);
    }

    #[test]
    fn the_h3_error_codes_fit_quic_varints() {
        assert_eq!(quic_code(Code::H3_NO_ERROR).into_inner(), 0x100);
        assert_eq!(quic_code(Code::H3_REQUEST_CANCELLED).into_inner(), 0x10c);
    }
}
