//! Kept-alive HTTP/1.1 connections to a route's plain-HTTP upstreams: one list per upstream,
//! each connection driven by hyper's client connection in a task of its own.
//!
//! hyper-util's pool (still used for HTTPS and HTTP/2 upstreams) finds a connection in a map
//! keyed by origin, hashed under its lock twice per request, and spawns a task per request to
//! give the connection back. Here a request takes a connection by its upstream's index, and
//! its response body gives it back once read to its end: a body cut short leaves the
//! connection mid-message, so it is dropped (and closed) instead.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::UpstreamBody;
use crate::clock::coarse_ms;
use crate::config::defaults;
use crate::locks::lock;

/// How long an idle connection is kept. Apps close theirs sooner (gunicorn 2 s, uvicorn 5 s,
/// nginx 75 s), which the connection's task notices at once; this bounds the rest.
const IDLE_FOR: Duration = Duration::from_secs(90);

/// Idle at least this long (ms), a connection may be closing on the app's side: see
/// [`Http1Pool::send`]. Below it, as under steady load, no request is copied.
const MAY_BE_CLOSING_AFTER_MS: u64 = 1_000;

/// A copy of `req` to send again if it is idempotent and has no body (its head only: the
/// extensions stay behind, and none of them is for the upstream).
fn replayable(req: &Request<UpstreamBody>) -> Option<Request<UpstreamBody>> {
    if !req.method().is_idempotent() || !http_body::Body::is_end_stream(req.body()) {
        return None;
    }
    let mut copy = Request::new(UpstreamBody::default());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

pub(super) struct Http1Pool {
    /// Per upstream, in the route's order: idle connections, the most recently used last.
    idle: Vec<Mutex<Vec<Idle>>>,
    connect_timeout: Duration,
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    /// When it was given back, on the coarse clock.
    since_ms: u64,
}

/// Why a request got no response from its upstream.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("cannot connect to {authority}")]
    Connect {
        authority: Authority,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// A connection lent to one request; [`Lease::give_back`] returns it to the pool.
pub(super) struct Lease {
    pool: Arc<Http1Pool>,
    index: usize,
    sender: SendRequest<UpstreamBody>,
}

impl Lease {
    /// Returns the connection for the next request, once its response has been read whole.
    pub(super) fn give_back(self) {
        let mut idle = lock(&self.pool.idle[self.index]);
        if idle.len() >= defaults::UPSTREAM_IDLE_PER_HOST {
            idle.remove(0);
        }
        idle.push(Idle {
            sender: self.sender,
            since_ms: coarse_ms(),
        });
    }
}

impl Http1Pool {
    pub(super) fn new(upstreams: usize, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Http1Pool {
            idle: (0..upstreams).map(|_| Mutex::new(Vec::new())).collect(),
            connect_timeout,
        })
    }

    /// Sends `req` (origin-form target, Host set) to upstream `index` at `authority`, on an
    /// idle connection or a new one. A request that a reused connection closed under before
    /// it left is sent again on another: it never reached the app. So is an idempotent one
    /// without a body that a connection idle for a while was closed under, unanswered: apps
    /// close idle connections on their own clock (gunicorn after 2 s, uvicorn 5 s), and one
    /// may close just as a request arrives (nginx sends such a request again too).
    pub(super) async fn send(
        self: &Arc<Self>,
        index: usize,
        authority: &Authority,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let mut fresh_only = false;
        loop {
            // After a close under a copied request, a kept connection (as idle as the one that
            // closed) is left in the pool for later requests, not taken out and dropped.
            let taken = match fresh_only {
                true => None,
                false => self.take(index),
            };
            let (mut sender, idle_ms) = match taken {
                Some((sender, idle_ms)) => (sender, Some(idle_ms)),
                // Boxed: a connect (and the address lookup in it) is a large future, rarely
                // needed, and every request's future would otherwise carry its size.
                None => (Box::pin(self.connect(authority)).await?, None),
            };
            let copy = idle_ms
                .filter(|&ms| ms >= MAY_BE_CLOSING_AFTER_MS)
                .and_then(|_| replayable(&req));
            match sender.try_send_request(req).await {
                Ok(res) => {
                    let lease = Lease {
                        pool: self.clone(),
                        index,
                        sender,
                    };
                    return Ok((res, lease));
                }
                Err(mut e) => match (e.take_message(), copy) {
                    (Some(unsent), _) if idle_ms.is_some() => req = unsent,
                    (None, Some(copy)) if super::caused_by_reset(e.error()) => {
                        tracing::debug!(upstream = %authority, "an idle upstream connection closed under a request: sent again on a new one");
                        req = copy;
                        fresh_only = true;
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// The most recently used idle connection that is ready, dropping on the way those idle
    /// too long (at the front: the list is in the order they were given back) and those
    /// closed. One whose last response is still finishing in its task stays.
    /// Returns it with how long it was idle, in milliseconds.
    fn take(&self, index: usize) -> Option<(SendRequest<UpstreamBody>, u64)> {
        let mut idle = lock(self.idle.get(index)?);
        let now = coarse_ms();
        let oldest = now.saturating_sub(IDLE_FOR.as_millis() as u64);
        let expired = idle.iter().take_while(|c| c.since_ms < oldest).count();
        idle.drain(..expired);
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].sender.is_ready() {
                let Idle { sender, since_ms } = idle.remove(i);
                return Some((sender, now.saturating_sub(since_ms)));
            }
            if idle[i].sender.is_closed() {
                idle.remove(i);
            }
        }
        None
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<UpstreamBody>, SendError> {
        let failed = |source| SendError::Connect {
            authority: authority.clone(),
            source,
        };
        // An IPv6 literal comes bracketed in an authority, bare in a socket address.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(failed(e)),
            Err(_) => return Err(failed(std::io::ErrorKind::TimedOut.into())),
        };
        tcp.set_nodelay(true).map_err(failed)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        // Ends when the upstream closes, or when the pool and every lease let the sender go.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection to a peer that never answers, once its task wants a request; dropping the
    /// peer's end closes it.
    async fn connection() -> (SendRequest<UpstreamBody>, tokio::io::DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(ours))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.ready().await.unwrap();
        (sender, theirs)
    }

    fn give_back(pool: &Http1Pool, sender: SendRequest<UpstreamBody>, since_ms: u64) {
        lock(&pool.idle[0]).push(Idle { sender, since_ms });
    }

    #[tokio::test]
    async fn the_newest_ready_connection_is_taken_and_stale_or_closed_ones_are_dropped() {
        let pool = Http1Pool::new(1, Duration::from_secs(1));
        let (stale, _a) = connection().await;
        let (fresh, _b) = connection().await;
        let (closed, peer) = connection().await;
        let now = coarse_ms();
        give_back(
            &pool,
            stale,
            now.saturating_sub(IDLE_FOR.as_millis() as u64 + 1_000),
        );
        give_back(&pool, fresh, now);
        give_back(&pool, closed, now);
        drop(peer);
        for _ in 0..200 {
            if lock(&pool.idle[0])
                .last()
                .is_some_and(|c| c.sender.is_closed())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (taken, idle_ms) = pool.take(0).expect("the fresh connection");
        assert!(taken.is_ready() && !taken.is_closed());
        assert!(idle_ms < 60_000, "idle for {idle_ms} ms");
        assert!(
            lock(&pool.idle[0]).is_empty(),
            "the stale and the closed one are gone"
        );
        assert!(pool.take(0).is_none());
        assert!(pool.take(1).is_none(), "no such upstream");
    }

    #[tokio::test]
    async fn a_full_list_lets_its_oldest_connection_go() {
        let pool = Http1Pool::new(1, Duration::from_secs(1));
        let mut peers = Vec::new();
        for _ in 0..defaults::UPSTREAM_IDLE_PER_HOST + 1 {
            let (sender, peer) = connection().await;
            peers.push(peer);
            let lease = Lease {
                pool: pool.clone(),
                index: 0,
                sender,
            };
            lease.give_back();
        }
        assert_eq!(lock(&pool.idle[0]).len(), defaults::UPSTREAM_IDLE_PER_HOST);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_that_names_the_upstream() {
        let pool = Http1Pool::new(1, Duration::from_secs(2));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let authority: Authority = format!("127.0.0.1:{port}").parse().unwrap();
        let req = Request::get("/").body(UpstreamBody::default()).unwrap();
        let Err(e) = pool.send(0, &authority, req).await else {
            panic!("nothing listens there");
        };
        assert!(matches!(e, SendError::Connect { .. }), "{e:?}");
        assert_eq!(e.to_string(), format!("cannot connect to 127.0.0.1:{port}"));
    }
}
