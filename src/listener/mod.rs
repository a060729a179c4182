//! Listening sockets: bind with a clear error, accept within the connection limit, hand each
//! connection to [`conn`], and on shutdown stop accepting and let connections drain, bounded.

mod activity;
mod conn;
mod framing;
pub(crate) use framing::FramingScanner;
pub(crate) mod quic;
pub(crate) mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Limits, Timeouts};
use crate::http::Router;
use crate::tls::TlsFront;
use crate::tunnel::TunnelListener;

/// What a listener serves; replaced whole on reload. A connection takes the current one when
/// it is accepted and keeps it to the end.
pub(crate) enum ListenerState {
    /// TLS, then HTTP/1.1 or HTTP/2 for the router's sites.
    Https { tls: TlsFront, router: Arc<Router> },
    /// Plain HTTP that redirects to HTTPS (and answers ACME HTTP-01 tokens).
    Redirect(Arc<Router>),
    /// Raw TCP behind TLS (or TLS for plain TCP clients), relayed to upstreams.
    Tunnel(Arc<TunnelListener>),
}

/// Set while `serve -d` grades its own TLS set-up: its probes offer what the server refuses on
/// purpose, and their failed handshakes must not read as clients' failures in the debug log.
static SELF_CHECK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn set_self_check_running(on: bool) {
    SELF_CHECK.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn self_check_running() -> bool {
    SELF_CHECK.load(std::sync::atomic::Ordering::Relaxed)
}

/// What every connection of one listener shares.
pub(crate) struct ListenerCtx {
    pub state: arc_swap::ArcSwap<ListenerState>,
    /// Replaced on reload like `state`: new connections take the current ones.
    pub settings: arc_swap::ArcSwap<ConnSettings>,
    pub local_port: u16,
    /// Open connections by protocol, for the admin listener.
    pub gauges: Arc<crate::observe::ListenerGauges>,
}

/// The deadlines and limits a connection is served with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ConnSettings {
    pub timeouts: Timeouts,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {reason}")]
pub(crate) struct BindError {
    addr: SocketAddr,
    reason: String,
}

/// How many finished TCP handshakes may wait for `accept` (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default). tokio's `TcpListener::bind` asks for 128, which a
/// burst of new connections overflows (then the kernel drops SYNs, and clients retry a second
/// later); nginx asks for 511, Go (Caddy) for `somaxconn`.
const ACCEPT_BACKLOG: u32 = 4096;

/// Listens on `addr` (inside the runtime: the listener is registered with its reactor).
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    listen(addr).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::AddrInUse => "the address is already in use (another server is running there; choose another port)".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".to_owned(),
            std::io::ErrorKind::AddrNotAvailable => "this machine has no such address".to_owned(),
            _ => e.to_string(),
        };
        BindError { addr, reason }
    })
}

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind`: a restarted server can bind while old connections linger.
    socket.set_reuseaddr(true)?;
    // Linux gives accepted connections the listener's TCP_NODELAY: one `setsockopt` per
    // connection fewer (see `accept_loop`).
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Whether an accepted connection already has TCP_NODELAY from its listener.
const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Accepts connections on every listener until `shutdown` is cancelled, then waits for open
/// connections to finish, at most `drain_timeout`. Returns how many were still open.
pub(crate) async fn serve(
    listeners: Vec<(TcpListener, Arc<ListenerCtx>)>,
    max_connections: usize,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> usize {
    let permits = Arc::new(Semaphore::new(max_connections));
    serve_with_permits(listeners, permits, shutdown, drain_timeout).await
}

/// [`serve`] with the connection limit's permits given, so that another transport (QUIC) can
/// share them.
pub(crate) async fn serve_with_permits(
    listeners: Vec<(TcpListener, Arc<ListenerCtx>)>,
    permits: Arc<Semaphore>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) -> usize {
    let tracker = TaskTracker::new();
    let mut loops = tokio::task::JoinSet::new();
    for (listener, ctx) in listeners {
        loops.spawn(accept_loop(
            listener,
            ctx,
            permits.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
    }
    while loops.join_next().await.is_some() {}
    tracker.close();
    let open = tracker.len();
    if open > 0 {
        tracing::info!(
            connections = open,
            "finishing requests in flight (at most {})",
            humantime::format_duration(drain_timeout)
        );
    }
    match tokio::time::timeout(drain_timeout, tracker.wait()).await {
        Ok(()) => 0,
        Err(_) => tracker.len(),
    }
}

/// Wait after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Failed accepts, logged at most once a second with how many there were.
struct AcceptFailures {
    count: u64,
    last_log: Option<tokio::time::Instant>,
}

impl AcceptFailures {
    fn note(&mut self, e: &std::io::Error) {
        self.count += 1;
        let now = tokio::time::Instant::now();
        if self
            .last_log
            .is_some_and(|t| now < t + Duration::from_secs(1))
        {
            return;
        }
        let hint = match e.raw_os_error() {
            Some(24 | 23) => {
                " (out of file descriptors: raise LimitNOFILE / ulimit -n, or lower limits.max_connections)"
            }
            _ => "",
        };
        tracing::warn!(error = %e, failures = self.count, "accept failed{hint}; retrying");
        self.count = 0;
        self.last_log = Some(now);
    }
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<ListenerCtx>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut failures = AcceptFailures {
        count: 0,
        last_log: None,
    };
    loop {
        // Wait for a free slot first: over the limit, clients queue in the kernel's backlog.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning, and keep trying, since
                    // descriptors free up as connections end.
                    failures.note(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        if !NODELAY_INHERITED {
            let _ = tcp.set_nodelay(true);
        }
        let (ctx, shutdown) = (ctx.clone(), shutdown.clone());
        let tasks = tracker.clone();
        tracker.spawn(serve_connection(
            tcp,
            peer,
            ctx,
            shutdown,
            Admitted { permit, tasks },
        ));
    }
}

/// What an accepted connection holds while it is served: its place under `max_connections`,
/// and the tracker that shutdown waits on.
pub(crate) struct Admitted {
    permit: OwnedSemaphorePermit,
    tasks: TaskTracker,
}

impl Admitted {
    /// Serves the rest of the connection in a task of its own. A task keeps room, for its
    /// whole life, for the largest state it ever awaits: an HTTPS connection's first task
    /// does the handshake, and an idle connection keeps room only for what it waits with
    /// (a 768-byte task, not 1,536).
    pub(crate) fn go_on(self, serving: impl Future<Output = ()> + Send + 'static) {
        let Admitted { permit, tasks } = self;
        // `map`, not an `async` block: that would keep room for `serving` twice.
        tasks.spawn(serving.map(move |()| drop(permit)));
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    ctx: Arc<ListenerCtx>,
    shutdown: CancellationToken,
    admitted: Admitted,
) {
    let state = ctx.state.load_full();
    // The redirect and tunnel futures are boxed: a task keeps room for the largest future it
    // may await, and every connection's first task would be as large as the tunnel relay's
    // (6 KiB).
    match &*state {
        ListenerState::Https { tls, router } => {
            conn::serve_tls(tcp, peer, tls, router.clone(), ctx, shutdown, admitted).await
        }
        ListenerState::Redirect(router) => {
            Box::pin(conn::serve_plain(tcp, peer, router.clone(), ctx, shutdown)).await
        }
        // Tunnels carry no requests to finish: on shutdown they run until they end or the
        // drain timeout cuts them.
        ListenerState::Tunnel(tunnels) => {
            let _open = ctx.gauges.open(crate::observe::Protocol::Tunnel);
            Box::pin(crate::tunnel::serve(tcp, peer, tunnels.clone())).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn accepted_connections_have_tcp_nodelay_from_the_listener() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "Nagle would delay small writes"
        );
        let Err(taken) = bind(addr) else {
            panic!("{addr} is in use");
        };
        assert!(taken.to_string().contains("already in use"), "{taken}");
    }
}
