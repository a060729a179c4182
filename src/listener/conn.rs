//! One accepted connection, with a deadline on every phase: the first byte and the TLS
//! handshake (`timeouts.handshake`), each request head (`timeouts.header_read`), idleness
//! (`timeouts.idle`), and shutdown. Plain HTTP arriving on the TLS port is answered with a
//! redirect instead of a dropped connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use super::ListenerCtx;
use super::activity::{Activity, Tracked};
use super::framing::FramingScanner;
use crate::http::{ConnBusy, ConnInfo, FramingConflict, Router, access_log, redirect};
use crate::tls::{ALPN_H2, ClientIdentity};

fn version_name(v: rustls::ProtocolVersion) -> &'static str {
    match v {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "other",
    }
}

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

pub(crate) async fn serve_tls(
    tcp: TcpStream,
    peer: SocketAddr,
    front: &crate::tls::TlsFront,
    router: Arc<Router>,
    ctx: Arc<ListenerCtx>,
    shutdown: CancellationToken,
) {
    let deadline = Instant::now() + ctx.timeouts.handshake;
    let mut first = [0u8; 1];
    match timeout_at(deadline, tcp.peek(&mut first)).await {
        Ok(Ok(1)) => {}
        _ => return,
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        tracing::debug!(%peer, "plain HTTP on the TLS port: answering with a redirect");
        return serve_plain(tcp, peer, router, ctx, shutdown).await;
    }
    let (tls, profile) = match timeout_at(deadline, front.accept(tcp)).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            let site = e.profile.and_then(|i| router.sites().get(i));
            let site = site.map_or("-", |s| s.site.primary_name());
            return match e.refusal() {
                Some(reason) => {
                    tracing::warn!(%site, client = %peer, "client certificate refused: {reason}")
                }
                None => tracing::debug!(%peer, error = %e.error, "TLS handshake failed"),
            };
        }
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let session = tls.get_ref().1;
    if session.alpn_protocol() == Some(crate::acme::ACME_TLS_ALPN) {
        // A TLS-ALPN-01 validation: the handshake was the whole exchange (RFC 8737 §3).
        return tracing::debug!(%peer, sni = ?session.server_name(), "answered an ACME TLS-ALPN-01 validation");
    }
    let info = ConnInfo {
        peer,
        tls_version: session.protocol_version().map(version_name),
        sni: session.server_name().map(str::to_owned),
        local_port: ctx.local_port,
        tls_site: profile,
        client: session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| ClientIdentity::from_der(leaf))
            .map(Arc::new),
    };
    let h2 = session.alpn_protocol() == Some(ALPN_H2);
    tracing::debug!(
        %peer,
        sni = info.sni.as_deref().unwrap_or("-"),
        version = info.tls_version.unwrap_or("-"),
        suite = ?session.negotiated_cipher_suite().map(|s| s.suite()),
        group = ?session.negotiated_key_exchange_group().map(|g| g.name()),
        alpn = if h2 { "h2" } else { "http/1.1" },
        resumed = matches!(session.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
        "TLS handshake done"
    );
    serve_https(tls, info, h2, router, ctx, shutdown).await
}

async fn serve_https<S>(
    stream: S,
    info: ConnInfo,
    h2: bool,
    router: Arc<Router>,
    ctx: Arc<ListenerCtx>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    // HTTP/1.1 only: the scanner flags requests whose framing hyper would quietly resolve.
    let ambiguous = Arc::new(AtomicU64::new(0));
    let mut tracked = Tracked::new(stream, activity.clone());
    if !h2 {
        tracked = tracked.with_framing(FramingScanner::new(ambiguous.clone()));
    }
    let io = TokioIo::new(tracked);
    let info = Arc::new(info);
    let act = activity.clone();
    let served = Arc::new(AtomicU64::new(0));
    let svc = service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnBusy::new(act.begin()));
        let index = served.fetch_add(1, Ordering::Relaxed);
        if ambiguous.load(Ordering::Relaxed) == index + 1 {
            req.extensions_mut().insert(FramingConflict);
        }
        let (router, info) = (router.clone(), info.clone());
        async move { Ok::<_, Infallible>(router.handle(req, &info).await) }
    });
    let t = ctx.timeouts;
    if h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(crate::config::defaults::MAX_H2_STREAMS)
            // RFC 8441: WebSockets over HTTP/2 streams.
            .enable_connect_protocol()
            .max_header_list_size(ctx.limits.max_head_bytes() as u32)
            .keep_alive_interval(Some(t.idle / 2))
            .keep_alive_timeout(t.handshake)
            .serve_connection(io, svc);
        drive(conn, &activity, &ctx, shutdown).await;
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(t.header_read)
            .max_header_size(ctx.limits.max_head_bytes())
            .serve_connection(io, svc)
            .with_upgrades();
        drive(conn, &activity, &ctx, shutdown).await;
    }
}

/// HTTP/1.1 without TLS: every request gets a redirect to its HTTPS address.
pub(crate) async fn serve_plain(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Arc<Router>,
    ctx: Arc<ListenerCtx>,
    shutdown: CancellationToken,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(tcp, activity.clone()));
    let info = Arc::new(ConnInfo {
        peer,
        tls_version: None,
        sni: None,
        local_port: ctx.local_port,
        tls_site: 0,
        client: None,
    });
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let started = std::time::Instant::now();
        let res = redirect::to_https(&router, &req);
        if router.logs_access() {
            access_log(req.method(), req.uri().path(), &res, &info, started);
        }
        std::future::ready(Ok::<_, Infallible>(res))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.timeouts.header_read)
        .max_header_size(ctx.limits.max_head_bytes())
        .keep_alive(false)
        .serve_connection(io, svc)
        .with_upgrades();
    drive(conn, &activity, &ctx, shutdown).await;
}

/// A hyper connection that can be asked to finish what it is doing and close.
trait Drain: Future<Output = Result<(), hyper::Error>> {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drain for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

impl<I, S, B, E> Drain for http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

/// Runs a connection to its end, draining it when it has been idle too long or when the
/// server shuts down.
async fn drive<C: Drain>(
    conn: C,
    activity: &Activity,
    ctx: &ListenerCtx,
    shutdown: CancellationToken,
) {
    tokio::pin!(conn);
    let idle = ctx.timeouts.idle;
    let mut draining = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                conn.as_mut().drain();
                draining = true;
            }
            _ = sleep_until(activity.idle_deadline(idle)), if !draining => {
                if activity.is_idle(idle) {
                    tracing::debug!("closing an idle connection");
                    conn.as_mut().drain();
                    draining = true;
                }
            }
        }
    }
}
