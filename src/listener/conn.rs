//! One accepted connection, with a deadline on every phase: the first byte and the TLS
//! handshake (`timeouts.handshake`), each request head (`timeouts.header_read`), idleness
//! (`timeouts.idle`), a response the client stops reading (`timeouts.write`), and shutdown.
//! Plain HTTP arriving on the TLS port is answered with a redirect instead of a dropped
//! connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout_at};
use tokio_util::sync::CancellationToken;

use super::activity::{Activity, Tracked};
use super::framing::FramingScanner;
use super::wire::{PlainWire, Wire};
use super::{Admitted, ConnSettings, ListenerCtx};
use crate::clock::CoarseTimer;
use crate::config::Timeouts;
use crate::http::{ConnInfo, RequestMeta, Router, access_log, redirect};
use crate::observe::{HandshakeFailure, Protocol, metrics};
use crate::tls::ALPN_H2;

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

pub(crate) async fn serve_tls(
    tcp: TcpStream,
    peer: SocketAddr,
    front: &crate::tls::TlsFront,
    router: Arc<Router>,
    ctx: Arc<ListenerCtx>,
    shutdown: CancellationToken,
    admitted: Admitted,
) {
    let Some(https) = accept(tcp, peer, front, &router, ctx, &shutdown).await else {
        return;
    };
    // The rest in a task of its own, which keeps no room for the handshake's state.
    admitted.go_on(serve_https(https, router, shutdown));
}

/// An HTTPS connection whose handshake is done, and what it is served with.
struct Https {
    tls: Box<Tls>,
    info: Arc<ConnInfo>,
    h2: bool,
    settings: Arc<ConnSettings>,
    /// Counts the connection as open, by protocol, while it lives.
    open: crate::observe::OpenConnection,
}

/// The first read and the handshake. `None` when the connection is done with: it failed,
/// was an ACME validation, or was plain HTTP (answered here with redirects).
async fn accept(
    mut tcp: TcpStream,
    peer: SocketAddr,
    front: &crate::tls::TlsFront,
    router: &Arc<Router>,
    ctx: Arc<ListenerCtx>,
    shutdown: &CancellationToken,
) -> Option<Https> {
    let settings = ctx.settings.load_full();
    let deadline = Instant::now() + settings.timeouts.handshake;
    // The first bytes are read, not peeked at: the TLS stream is given them back (one
    // `recvfrom` fewer per connection), in a `BytesMut` that goes on to be its read buffer.
    let mut first = BytesMut::with_capacity(FIRST_READ);
    match timeout_at(deadline, tcp.read_buf(&mut first)).await {
        Ok(Ok(1..)) => {}
        _ => return None,
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        tracing::debug!(%peer, "plain HTTP on the TLS port: answering with a redirect");
        let wire = PlainWire::new(tcp, first.freeze());
        let (router, shutdown) = (router.clone(), shutdown.clone());
        Box::pin(serve_plain(wire, peer, router, ctx, shutdown)).await;
        return None;
    }
    let handshake = front.accept_http(Wire::tls(tcp), first);
    let (mut tls, agreed) = match timeout_at(deadline, handshake).await {
        // Boxed: the stream (1.2 KiB) moves on to the connection's task, and an HTTP/1.1
        // connection hands it from one hyper connection to the next.
        Ok(Ok((tls, agreed))) => (Box::new(tls), agreed),
        Ok(Err(e)) => {
            let site = e.profile.and_then(|i| router.sites().get(i));
            let site = site.map_or("-", |s| s.site.primary_name());
            metrics().handshake_failed(&e.error, e.refusal().as_deref(), site);
            match e.refusal() {
                Some(reason) => {
                    tracing::warn!(%site, client = %peer, "client certificate refused: {reason}")
                }
                None if super::self_check_running() => {
                    tracing::trace!(%peer, error = %e.error, "a self-check probe's handshake was refused")
                }
                None => tracing::debug!(%peer, error = %e.error, "TLS handshake failed"),
            };
            return None;
        }
        Err(_) => {
            metrics().handshakes.failed(HandshakeFailure::Timeout);
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    if agreed.is_acme_validation() {
        tracing::debug!(%peer, sni = ?agreed.sni, "answered an ACME TLS-ALPN-01 validation");
        return None;
    }
    if timeout_at(deadline, settle(&mut tls)).await.is_err() {
        metrics().handshakes.failed(HandshakeFailure::Timeout);
        tracing::debug!(%peer, "TLS handshake timed out sending session tickets");
        return None;
    }
    metrics().handshakes.done(
        agreed.version_name(),
        agreed.alpn.as_deref(),
        agreed.resumed,
    );
    let h2 = agreed.alpn.as_deref() == Some(ALPN_H2);
    let open = ctx
        .gauges
        .open(if h2 { Protocol::H2 } else { Protocol::H1 });
    tracing::debug!(
        %peer,
        sni = agreed.sni.as_deref().unwrap_or("-"),
        version = agreed.version_name().unwrap_or("-"),
        suite = ?agreed.cipher,
        group = ?agreed.group,
        alpn = if h2 { "h2" } else { "http/1.1" },
        resumed = agreed.resumed,
        "TLS handshake done"
    );
    let info = Arc::new(ConnInfo {
        peer,
        tls_version: agreed.version_name(),
        local_port: ctx.local_port,
        gauges: ctx.gauges.clone(),
        tls_site: agreed.profile,
        client: agreed.client,
        upgrade_idle: settings.timeouts.upgrade_idle,
        peer_value: Default::default(),
    });
    Some(Https {
        tls,
        info,
        h2,
        settings,
        open,
    })
}

async fn serve_https(https: Https, router: Arc<Router>, shutdown: CancellationToken) {
    let Https {
        tls: stream,
        info,
        h2,
        settings,
        open: _open,
    } = https;
    let activity = Activity::new();
    // HTTP/1.1 only: the scanner flags requests whose framing hyper would quietly resolve.
    let ambiguous = Arc::new(AtomicU64::new(0));
    let mut tracked = Tracked::new(stream, activity.clone());
    if !h2 {
        tracked = tracked.with_framing(FramingScanner::new(ambiguous.clone()));
    }
    let gauges = info.gauges.clone();
    let act = activity.clone();
    let served = Arc::new(AtomicU64::new(0));
    let (r, i, a) = (router.clone(), info.clone(), act.clone());
    let svc = service_fn(move |req: hyper::Request<Incoming>| {
        let index = served.fetch_add(1, Ordering::Relaxed);
        // The guard is held by the handler until the response is handed over, and by a
        // tunnel made of the request.
        let meta = RequestMeta {
            busy: Some(a.busy()),
            framing_conflict: ambiguous.load(Ordering::Relaxed) == index + 1,
        };
        answer(&r, &i, &a, meta, req).map(Ok::<_, Infallible>)
    });
    let (t, limits) = (&settings.timeouts, &settings.limits);
    if h2 {
        let config = crate::http2::Config {
            max_concurrent_streams: crate::config::defaults::MAX_H2_STREAMS,
            max_header_list: limits.max_head_bytes(),
            stream_window: H2_WINDOW,
            conn_window: H2_WINDOW,
            connect_protocol: true,
        };
        let handler = move |req: hyper::Request<crate::http2::RecvBody>| {
            let meta = RequestMeta {
                busy: Some(act.busy()),
                framing_conflict: false,
            };
            answer(&router, &info, &act, meta, req)
        };
        let mut conn = Box::pin(crate::http2::Server::new(tracked, config, handler));
        Box::pin(drive(
            conn.as_mut(),
            &activity,
            t,
            Some(PARK_AFTER),
            &shutdown,
        ))
        .await;
    } else {
        loop {
            // Boxed, from hyper's connection to the wait for its end: what a busy connection
            // holds (hyper's connection and buffers, `drive`'s timers) is gone while it is
            // parked, and its task keeps room only for the wait for the next request.
            // In a block of its own: a value in scope at an `.await` keeps room in the task.
            tracked = {
                let parked = Box::pin(async {
                    let mut conn = http1::Builder::new()
                        // `header_read` is enforced by `drive`, from the framing scanner's view of
                        // where heads begin and end: hyper's own deadline is a timer armed and
                        // cancelled per request.
                        .header_read_timeout(None)
                        .max_header_size(limits.max_head_bytes())
                        .serve_connection(TokioIo::new(tracked), svc.clone())
                        .with_upgrades();
                    let park = Some(PARK_AFTER);
                    if !drive(Pin::new(&mut conn), &activity, t, park, &shutdown).await {
                        return None;
                    }
                    // `None` after an upgrade: the stream went to the WebSocket. What hyper had
                    // read and not used is empty: a stream parks only between whole requests.
                    let mut tracked = conn.into_parts()?.io.into_inner();
                    tracked.take_parked().then_some(tracked)
                })
                .await;
                match parked {
                    Some(parked) => parked,
                    None => return,
                }
            };
            let waiting = gauges.waiting();
            let next = next_request(&tracked, &activity, t, &shutdown).await;
            drop(waiting);
            if !next {
                // Idle for the idle timeout, or the server is stopping: goodbye, as hyper says it.
                let _ = timeout_at(Instant::now() + CLOSE_GRACE, tracked.shutdown()).await;
                return;
            }
        }
    }
}

/// Each request's answer, made by the router and watched while it is sent: the same for
/// HTTP/1.1 and HTTP/2.
fn answer<B: crate::http::RequestBody>(
    router: &Arc<Router>,
    info: &Arc<ConnInfo>,
    act: &Arc<Activity>,
    meta: RequestMeta,
    req: hyper::Request<B>,
) -> impl Future<Output = hyper::Response<super::activity::Paced>> + Send + use<B> {
    let (router, info, act) = (router.clone(), info.clone(), act.clone());
    async move {
        let res = router.handle(req, &info, meta).await;
        res.map(|body| act.watch_response(body))
    }
}

/// HTTP/2 flow-control windows for request bodies, per stream and per connection (hyper's).
const H2_WINDOW: u32 = 1 << 20;

/// An HTTP/1.1 connection that has moved no byte for this long (between requests, with
/// nothing in flight) gives up hyper's buffers until its next request arrives: an idle
/// keep-alive connection costs its TLS state only. An HTTP/2 one gives up its TLS buffers.
/// Browsers keep connections idle for minutes; a busy connection never waits this long
/// between requests.
const PARK_AFTER: Duration = Duration::from_millis(500);

/// How long a closing connection may take to send its TLS close_notify.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The TLS stream of an accepted connection.
type Tls = crate::tls::stream::TlsStream<Wire>;

/// How much the first read of a connection takes: a whole ClientHello as a rule (post-quantum
/// key shares make Chrome's about 1.8 KB), as rustls would read it.
const FIRST_READ: usize = 4096;

/// Ends the socket's handshake mode. Session tickets written at the end of the handshake go out
/// with the first response when the client's request came with its Finished, and now when it
/// did not (a client that only connects, to resume later, must get them).
async fn settle(tls: &mut Tls) {
    let waiting = tls.has_plaintext();
    if let Err(e) = tls.get_mut().settle(waiting).await {
        tracing::debug!(error = %e, "could not send the session tickets");
    }
}

/// Waits for a parked connection's next bytes; `false` if the server shuts down first or the
/// wait outlasts the idle timeout or `header_read`, which bounds the wait for every request
/// head, the first one included, as it does while hyper waits.
async fn next_request(
    tracked: &Tracked<Box<Tls>>,
    activity: &Activity,
    t: &Timeouts,
    shutdown: &CancellationToken,
) -> bool {
    let wire = tracked.get_ref().get_ref();
    // `poll_read_ready`, not `readable()`: its future would be 150 bytes of every parked
    // connection's task.
    let readable = std::future::poll_fn(|cx| wire.tcp().poll_read_ready(cx));
    tokio::select! {
        ready = readable => ready.is_ok(),
        _ = sleep_until(activity.idle_deadline(t.idle.min(t.header_read))) => false,
        _ = shutdown.cancelled() => false,
    }
}

/// HTTP/1.1 without TLS: every request gets a redirect to its HTTPS address.
pub(crate) async fn serve_plain<IO>(
    tcp: IO,
    peer: SocketAddr,
    router: Arc<Router>,
    ctx: Arc<ListenerCtx>,
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + super::activity::Buffers + Unpin + Send + 'static,
{
    let settings = ctx.settings.load_full();
    let _open = ctx.gauges.open(Protocol::H1);
    let activity = Activity::new();
    let io = TokioIo::new(Tracked::new(tcp, activity.clone()));
    let info = Arc::new(ConnInfo {
        peer,
        tls_version: None,
        local_port: ctx.local_port,
        gauges: ctx.gauges.clone(),
        tls_site: 0,
        client: None,
        upgrade_idle: settings.timeouts.upgrade_idle,
        peer_value: Default::default(),
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
        .timer(CoarseTimer::default())
        .header_read_timeout(settings.timeouts.header_read)
        .max_header_size(settings.limits.max_head_bytes())
        .keep_alive(false)
        .serve_connection(io, svc)
        .with_upgrades();
    tokio::pin!(conn);
    drive(conn, &activity, &settings.timeouts, None, &shutdown).await;
}

/// A hyper connection that can be asked to finish what it is doing and close.
trait Drain: Future<Output = Result<(), Self::Error>> {
    type Error: std::fmt::Display;

    fn drain(self: Pin<&mut Self>);

    /// Asks the client to answer (an HTTP/2 PING): a connection with requests in flight but
    /// silent for the idle timeout must show its client is still there. `false` if the client
    /// never answered the last one. HTTP/1.1 cannot ask.
    fn ping(self: Pin<&mut Self>) -> bool {
        true
    }

    /// How long a stalled connection has to say goodbye before it is closed: an HTTP/2
    /// GOAWAY needs a moment; HTTP/1.1 has nothing to say.
    const STALLED_GRACE: Duration;

    /// Whether a park request ends it (HTTP/1.1, see [`Tracked`]). One that does not park
    /// (HTTP/2) lets its TLS buffers go instead, once per quiet spell.
    const PARKS: bool;
}

impl<I, S, B> Drain for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Error = hyper::Error;

    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown()
    }

    const STALLED_GRACE: Duration = Duration::ZERO;
    const PARKS: bool = true;
}

impl<IO, S, F, B> Drain for crate::http2::Server<IO, S, F, B>
where
    IO: AsyncRead + AsyncWrite + crate::http2::Quiet + Unpin,
    S: FnMut(hyper::Request<crate::http2::RecvBody>) -> F + Unpin,
    F: Future<Output = hyper::Response<B>>,
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
{
    type Error = crate::http2::ConnError;

    fn drain(self: Pin<&mut Self>) {
        self.get_mut().drain()
    }

    fn ping(self: Pin<&mut Self>) -> bool {
        self.get_mut().ping()
    }

    const STALLED_GRACE: Duration = Duration::from_secs(1);
    const PARKS: bool = false;
}

/// Runs a connection to its end, draining it when it has been idle too long or when the
/// server shuts down, and closing it when the client has read nothing of any response for
/// the write timeout, or a request head that outlasts `header_read` (HTTP/1.1 over TLS,
/// whose stream is scanned). With `park_after`, an HTTP/1.1 connection idle that long is
/// asked to park (see [`Tracked`]), which ends hyper's connection but not the stream. Says
/// whether the connection ended by itself (`false`: it was cut off and must be dropped).
async fn drive<C: Drain>(
    mut conn: Pin<&mut C>,
    activity: &Activity,
    t: &Timeouts,
    park_after: Option<Duration>,
    shutdown: &CancellationToken,
) -> bool {
    let mut draining = false;
    // Set once the connection is stalled: it gets a moment to send its GOAWAY, then goes.
    let mut close_at: Option<Instant> = None;
    // When bytes last moved as of the last park request. A connection that does not park is
    // asked once per quiet spell: an idle HTTP/2 connection is not woken every `park_after`
    // to let go of nothing. (One that parks is looked at again until it does.)
    let mut asked_at: Option<u64> = None;
    let ask_again = |asked_at: Option<u64>| C::PARKS || asked_at != Some(activity.last_moved());
    // One timer for the connection's life, moved only when its deadline changes: a timer
    // made anew on every turn of this loop was a timer-wheel insert (and, being the soonest,
    // a wake-up of the I/O driver) per proxied request.
    let check = sleep_until(next_check(activity, t, park_after, None));
    tokio::pin!(check);
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return true;
            }
            _ = shutdown.cancelled(), if !draining => {
                conn.as_mut().drain();
                draining = true;
            }
            // A response is being sent where none was: it cannot stall before a write
            // timeout from now, so look then at the latest.
            _ = activity.first_response.notified(), if close_at.is_none() => {
                let now = Instant::now();
                let mut due = now + t.write;
                // A connection that does not park looks again a park delay after a burst
                // begins, to let its buffers go once the burst is over.
                if let Some(p) = park_after.filter(|_| !C::PARKS) {
                    due = due.min(now + p);
                }
                if due < check.deadline() {
                    check.as_mut().reset(due);
                }
            }
            _ = check.as_mut() => {
                if close_at.is_some() {
                    tracing::debug!("closed a connection whose client stopped reading");
                    return false;
                }
                let writes = activity.check_writes(t.write);
                if writes.aborted > 0 {
                    tracing::debug!(responses = writes.aborted, "aborted responses the client stopped reading for the write timeout");
                }
                if writes.stalled {
                    conn.as_mut().drain();
                    draining = true;
                    close_at = Some(Instant::now() + C::STALLED_GRACE);
                } else if activity.head_overdue(t.header_read) {
                    tracing::debug!("closed a connection whose request head took longer than header_read");
                    return false;
                } else if !draining && !activity.is_idle(t.idle) && activity.is_silent(t.idle) {
                    // Requests in flight, and not a byte for the idle timeout (a long poll, an
                    // app that thinks for minutes): ask the client if it is still there.
                    if !conn.as_mut().ping() {
                        tracing::debug!("closed a connection whose client did not answer a ping");
                        return false;
                    }
                } else if !draining && activity.is_idle(t.idle) {
                    tracing::debug!("closing an idle connection");
                    conn.as_mut().drain();
                    draining = true;
                } else if draining && activity.is_idle(t.idle) {
                    // Told to close an idle timeout ago and not a byte moved since (its last
                    // bytes stuck behind a client that reads nothing): cut it off.
                    tracing::debug!("closed a connection that did not finish closing");
                    return false;
                } else if !draining
                    && ask_again(asked_at)
                    && park_after.is_some_and(|p| activity.is_idle(p))
                    && activity.is_quiet()
                {
                    // Polled again as the loop comes round: hyper's next read parks (HTTP/1.1)
                    // or lets the TLS buffers go (HTTP/2).
                    activity.request_park();
                    asked_at = Some(activity.last_moved());
                }
                let park = park_after.filter(|_| ask_again(asked_at));
                let next = next_check(activity, t, park, writes.next_check);
                check.as_mut().reset(close_at.unwrap_or(next));
            }
        }
    }
}

/// The next time to look at a connection: its park, idle or request-head deadline, or its
/// next write deadline. A deadline already past (a request has been in flight longer than
/// it) is pushed a whole period ahead, so the check does not spin.
fn next_check(
    activity: &Activity,
    t: &Timeouts,
    park_after: Option<Duration>,
    writes: Option<Instant>,
) -> Instant {
    let now = Instant::now();
    let after = |period: Duration| {
        let at = activity.idle_deadline(period);
        if at <= now { now + period } else { at }
    };
    let due = after(park_after.map_or(t.idle, |p| p.min(t.idle)));
    // A head deadline already past waits for the connection to be quiet: the periodic
    // check above looks again.
    let due = match activity.head_deadline(t.header_read) {
        Some(head) if head > now => head.min(due),
        _ => due,
    };
    writes.map_or(due, |w| w.min(due))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::activity::tests::Counted;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::ReadBuf;

    /// A connection that only reads, as an HTTP/2 one between requests: it does not park.
    struct Reads(Tracked<Counted>);

    impl Future for Reads {
        type Output = Result<(), hyper::Error>;

        fn poll(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            use std::task::Poll;
            let mut bytes = [0u8; 64];
            loop {
                let mut buf = ReadBuf::new(&mut bytes);
                match Pin::new(&mut self.0).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                    Poll::Ready(_) => return Poll::Ready(Ok(())),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }
    }

    impl Drain for Reads {
        type Error = hyper::Error;

        fn drain(self: Pin<&mut Self>) {}
        const STALLED_GRACE: Duration = Duration::ZERO;
        const PARKS: bool = false;
    }

    #[tokio::test]
    async fn a_connection_that_does_not_park_lets_its_buffers_go_once_per_quiet_spell() {
        let activity = Activity::new();
        let released = Arc::new(AtomicUsize::new(0));
        let (mut client, far) = tokio::io::duplex(64);
        let conn = Reads(Tracked::new(
            Counted(far, released.clone()),
            activity.clone(),
        ));
        let quiet = Duration::from_millis(100);
        let act = activity.clone();
        let driving = tokio::spawn(async move {
            let shutdown = CancellationToken::new();
            let mut conn = Box::pin(conn);
            drive(
                conn.as_mut(),
                &act,
                &Timeouts::default(),
                Some(quiet),
                &shutdown,
            )
            .await
        });
        tokio::time::sleep(quiet * 3).await;
        assert_eq!(released.load(Ordering::SeqCst), 1, "quiet: let go");
        tokio::time::sleep(quiet * 4).await;
        assert_eq!(
            released.load(Ordering::SeqCst),
            1,
            "still quiet: not asked again"
        );
        // A burst (a request and its response), then quiet again.
        client.write_all(b"request").await.unwrap();
        let response = activity.watch_response(crate::http::empty());
        drop(response);
        tokio::time::sleep(quiet * 4).await;
        assert_eq!(
            released.load(Ordering::SeqCst),
            2,
            "quiet after a burst: let go again"
        );
        drop(client);
        assert!(driving.await.unwrap(), "the connection ended by itself");
    }

    /// A connection that never ends by itself and answers only the first PING.
    struct Pinged(Arc<AtomicUsize>);

    impl Future for Pinged {
        type Output = Result<(), hyper::Error>;

        fn poll(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            std::task::Poll::Pending
        }
    }

    impl Drain for Pinged {
        type Error = hyper::Error;

        fn drain(self: Pin<&mut Self>) {}

        fn ping(self: Pin<&mut Self>) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst) == 0
        }

        const STALLED_GRACE: Duration = Duration::ZERO;
        const PARKS: bool = false;
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_silent_for_the_idle_timeout_is_pinged_and_closed_without_an_answer()
    {
        let activity = Activity::new();
        let _request = activity.busy();
        let pings = Arc::new(AtomicUsize::new(0));
        let t = Timeouts {
            idle: Duration::from_secs(10),
            ..Timeouts::default()
        };
        let started = Instant::now();
        let mut conn = Box::pin(Pinged(pings.clone()));
        let ended = drive(
            conn.as_mut(),
            &activity,
            &t,
            None,
            &CancellationToken::new(),
        )
        .await;
        assert!(!ended, "cut off");
        assert_eq!(
            pings.load(Ordering::SeqCst),
            2,
            "asked, then found unanswered"
        );
        assert!(started.elapsed() >= t.idle * 2);
    }
}
