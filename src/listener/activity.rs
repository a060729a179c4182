//! Per-connection activity: when bytes last moved, how many requests are in flight, and which
//! response bodies are waiting for the client to read, so that an idle connection (nothing in
//! flight, nothing moving) can be closed and a response the client stopped reading can be
//! aborted, for HTTP/1.1 and HTTP/2 alike. hyper does neither by itself.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::framing::FramingScanner;
use crate::clock::coarse_ms;
use crate::http::{Body, Busy, ConnBusy};
use crate::locks::lock;

#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    /// `start` on the coarse clock ([`coarse_ms`]).
    start_ms: u64,
    /// Milliseconds after `start` (on the coarse clock) when bytes last moved.
    last_ms: AtomicU64,
    /// 1 + the millisecond (after `start`) when the request head being read began; 0 while
    /// none is (HTTP/1.1 only: the framing scanner knows where heads are).
    head_since_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Set when an idle HTTP/1.1 connection should hand its socket back (see [`Tracked`]).
    park: AtomicBool,
    /// Response bodies still being sent (dead entries are pruned as new ones come).
    responses: Mutex<Vec<Weak<Outgoing>>>,
    /// Woken when a response is registered while none was known, so that the connection
    /// starts watching its writes.
    pub(crate) first_response: tokio::sync::Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            start_ms: coarse_ms(),
            last_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            park: AtomicBool::new(false),
            responses: Mutex::new(Vec::new()),
            first_response: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        coarse_ms().saturating_sub(self.start_ms)
    }

    /// Bytes moved now; returns now (milliseconds after `start`).
    fn touch(&self) -> u64 {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        now
    }

    /// After a read at `now`: whether a request head is still being read.
    fn note_head(&self, pending: bool, now: u64) {
        let since = self.head_since_ms.load(Ordering::Relaxed);
        if pending && since == 0 {
            self.head_since_ms.store(now + 1, Ordering::Relaxed);
        } else if !pending && since != 0 {
            self.head_since_ms.store(0, Ordering::Relaxed);
        }
    }

    /// When the request head being read must be whole (`timeouts.header_read` after it began).
    pub(crate) fn head_deadline(&self, header_read: Duration) -> Option<Instant> {
        let since = self.head_since_ms.load(Ordering::Relaxed).checked_sub(1)?;
        Some(self.start + Duration::from_millis(since) + header_read)
    }

    /// A request head began longer than `header_read` ago and is not whole (a slow-header
    /// client). Bytes pipelined behind a request still being answered wait for it: the
    /// deadline counts once the connection is quiet, as hyper's own would only start then.
    pub(crate) fn head_overdue(&self, header_read: Duration) -> bool {
        self.head_deadline(header_read)
            .is_some_and(|at| Instant::now() >= at && self.is_quiet())
    }

    /// Marks a request in flight until the guard (and every clone of it) is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> ConnBusy {
        ConnBusy::new(self.clone())
    }

    /// When the connection becomes idle if nothing happens before then.
    pub(crate) fn idle_deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    pub(crate) fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_deadline(idle)
    }

    /// Whether no byte has moved for `period`, requests in flight or not.
    pub(crate) fn is_silent(&self, period: Duration) -> bool {
        Instant::now() >= self.idle_deadline(period)
    }

    /// Asks the connection's [`Tracked`] stream to end hyper's connection at its next read
    /// that finds nothing, if by then nothing is in flight (HTTP/1.1), or to let its buffers
    /// go (HTTP/2, which does not park).
    pub(crate) fn request_park(&self) {
        self.park.store(true, Ordering::Relaxed);
    }

    /// When bytes last moved (a stamp to compare, not a time).
    pub(crate) fn last_moved(&self) -> u64 {
        self.last_ms.load(Ordering::Relaxed)
    }

    /// No request is being handled and no response body is being sent (or was aborted: its
    /// connection is on its way out).
    pub(crate) fn is_quiet(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && lock(&self.responses)
                .iter()
                .filter_map(Weak::upgrade)
                .all(|out| lock(&out.body).is_none() && !out.aborted.load(Ordering::Relaxed))
    }

    /// Wraps a response body so that the time it spends waiting for the client to take its
    /// next frame is watched by [`Activity::check_writes`].
    pub(crate) fn watch_response(&self, body: Body) -> Paced {
        let out = Arc::new(Outgoing {
            // A body waits for the client from the start: an HTTP/2 stream whose window is
            // closed is never polled at all.
            waiting_since: AtomicU64::new(self.now_ms() + 1),
            body: Mutex::new(Some(body)),
            aborted: Default::default(),
        });
        let mut list = lock(&self.responses);
        if list.len() >= 32 {
            list.retain(|w| w.strong_count() > 0);
        }
        if list.is_empty() {
            self.first_response.notify_one();
        }
        list.push(Arc::downgrade(&out));
        drop(list);
        Paced {
            out,
            start_ms: self.start_ms,
        }
    }

    /// Aborts every response that has waited for the client longer than `write` (dropping its
    /// file or upstream at once). Says whether the connection is stalled, that is every
    /// response still being sent was aborted, and when to look again.
    pub(crate) fn check_writes(&self, write: Duration) -> Writes {
        let now = self.now_ms();
        let limit = write.as_millis() as u64;
        let (mut live, mut stalled) = (0usize, 0usize);
        let mut next = None::<u64>;
        let mut list = lock(&self.responses);
        list.retain(|w| w.strong_count() > 0);
        for out in list.iter().filter_map(Weak::upgrade) {
            let mut body = lock(&out.body);
            if body.is_none() {
                continue;
            }
            live += 1;
            let since = out.waiting_since.load(Ordering::Relaxed);
            // A body waiting for its own source is looked at again a write timeout from now:
            // it cannot stall sooner than that.
            let deadline = match since {
                0 => now + limit,
                _ => since - 1 + limit,
            };
            if deadline <= now {
                *body = None;
                out.aborted.store(true, Ordering::Relaxed);
                stalled += 1;
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        Writes {
            aborted: stalled,
            stalled: stalled > 0 && stalled == live,
            next_check: next.map(|ms| self.start + Duration::from_millis(ms)),
        }
    }
}

/// What [`Activity::check_writes`] found.
#[derive(Debug)]
pub(crate) struct Writes {
    /// Responses aborted by this check.
    pub(crate) aborted: usize,
    /// Every response still being sent made no progress for the write timeout.
    pub(crate) stalled: bool,
    /// When to look again; `None` while no response is being sent.
    pub(crate) next_check: Option<Instant>,
}

/// One response body being sent, shared between the connection (which polls it) and the
/// write watch (which can drop it).
struct Outgoing {
    /// 1 + the millisecond (after `Activity::start`) when the body handed out a frame that the
    /// connection has not yet been able to send (0 while the body itself is being waited for).
    waiting_since: AtomicU64,
    /// `None` once sent in full or aborted.
    body: Mutex<Option<Body>>,
    aborted: std::sync::atomic::AtomicBool,
}

/// A response body under the write watch. Once the watch has aborted it, it ends with an
/// error, which resets the HTTP/2 stream or closes the HTTP/1.1 connection.
pub(crate) struct Paced {
    out: Arc<Outgoing>,
    /// The connection's start on the coarse clock.
    start_ms: u64,
}

impl hyper::body::Body for Paced {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let out = &self.out;
        out.waiting_since.store(0, Ordering::Relaxed);
        let mut slot = lock(&out.body);
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            ))));
        };
        let polled = Pin::new(body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                let ms = coarse_ms().saturating_sub(self.start_ms);
                out.waiting_since.store(ms + 1, Ordering::Relaxed);
            }
            // Done: release the file or upstream now rather than when hyper drops us.
            Poll::Ready(_) => *slot = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match lock(&self.out.body).as_ref() {
            Some(b) => b.is_end_stream(),
            // An aborted body must be polled once more, to fail.
            None => !self.out.aborted.load(Ordering::Relaxed),
        }
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.out.body)
            .as_ref()
            .map_or_else(SizeHint::default, |b| b.size_hint())
    }
}

/// What a [`ConnBusy`] counts on.
impl Busy for Activity {
    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }
}

/// An I/O stream that records activity whenever bytes are read or written, and optionally
/// lets a framing scanner see every byte read (HTTP/1.1 only).
///
/// It can also *park* an idle HTTP/1.1 connection: once [`Activity::request_park`] was called,
/// a read that finds nothing, between whole requests, with nothing in flight, reports the end
/// of the stream instead of waiting. hyper then ends its connection without writing anything
/// (and the shutdown that follows only flushes), which frees its 16 KiB of buffers, and the
/// stream lets its own go ([`Buffers`]); the listener gets the stream back and serves it anew
/// when the next request's bytes arrive. An HTTP/2 connection, which does not park, is asked
/// the same way to let its stream's buffers go.
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    framing: Option<FramingScanner>,
    parked: bool,
    /// An HTTP/2 stream let its buffers go; its connection may let its own go too.
    let_go: bool,
    /// The client has closed its side (a read found the end of the stream).
    peer_closed: bool,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked {
            inner,
            activity,
            framing: None,
            parked: false,
            let_go: false,
            peer_closed: false,
        }
    }

    pub(crate) fn with_framing(mut self, scanner: FramingScanner) -> Self {
        self.framing = Some(scanner);
        self
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether the stream ended hyper's connection by parking (then it is still open), and
    /// makes it an ordinary stream again.
    pub(crate) fn take_parked(&mut self) -> bool {
        std::mem::take(&mut self.parked)
    }
}

impl<S: Buffers> Tracked<S> {
    /// A read found nothing: park if asked to and nothing would be cut short. Only a scanned
    /// (HTTP/1.1) stream knows where requests end, so only it parks.
    fn parks_now(&mut self) -> bool {
        if !self.activity.park.load(Ordering::Relaxed) {
            return false;
        }
        // Either way the stream's own buffers go: nothing is in them between requests.
        let Some(scanner) = &mut self.framing else {
            // HTTP/2 does not park.
            self.activity.park.store(false, Ordering::Relaxed);
            self.inner.release_buffers();
            self.let_go = true;
            return false;
        };
        if !scanner.at_boundary() || !self.activity.is_quiet() {
            return false;
        }
        self.activity.park.store(false, Ordering::Relaxed);
        scanner.release();
        self.inner.release_buffers();
        self.parked = true;
        true
    }
}

impl<S> crate::http2::Quiet for Tracked<S> {
    fn quiet_now(&mut self) -> bool {
        std::mem::take(&mut self.let_go)
    }
}

/// A stream that can let its buffers go while its connection waits for the client.
pub(crate) trait Buffers {
    fn release_buffers(&mut self) {}
}

impl Buffers for Box<crate::tls::stream::TlsStream<super::wire::Wire>> {
    fn release_buffers(&mut self) {
        crate::tls::stream::TlsStream::release_buffers(self)
    }
}

/// Plain HTTP's streams hold no buffer of their own.
impl Buffers for super::wire::PlainWire {}
impl Buffers for tokio::net::TcpStream {}
#[cfg(test)]
impl Buffers for tokio::io::DuplexStream {}

impl<S: AsyncRead + Buffers + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let now = self.activity.touch();
            // Bytes came: whatever asked for a park is out of date.
            self.activity.park.store(false, Ordering::Relaxed);
            let this = &mut *self;
            if let Some(scanner) = &mut this.framing {
                scanner.feed(&buf.filled()[before..]);
                this.activity.note_head(scanner.mid_head(), now);
            }
        } else if res.is_pending() && self.parks_now() {
            return Poll::Ready(Ok(()));
        } else if res.is_ready() && buf.remaining() > 0 {
            // The end of the stream, or an error reading it: the client is gone.
            self.peer_closed = true;
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.parked || self.peer_closed {
            // hyper's goodbye to a parked stream: send what is written, keep the stream open.
            // To a client that has closed its side: no TLS close_notify (and no `shutdown`)
            // after its own, as nginx does: the socket closes when it is dropped.
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_millis(50);

    /// A connection's activity and its scanned (HTTP/1.1) stream, with the client's end.
    fn scanned() -> (Arc<Activity>, Tracked<DuplexStream>, DuplexStream) {
        let activity = Activity::new();
        let (near, far) = tokio::io::duplex(1024);
        let scanner = FramingScanner::new(Arc::new(AtomicU64::new(0)));
        let t = Tracked::new(near, activity.clone()).with_framing(scanner);
        (activity, t, far)
    }

    async fn waits(t: &mut Tracked<DuplexStream>) -> bool {
        timeout(WAIT, t.read(&mut [0u8; 64])).await.is_err()
    }

    #[test]
    fn a_shared_request_guard_keeps_its_connection_busy_until_the_last_clone_is_gone() {
        let activity = Activity::new();
        let in_flight = |a: &Activity| a.in_flight.load(Ordering::Relaxed);
        let handler = activity.busy();
        let tunnel = handler.clone();
        assert_eq!(in_flight(&activity), 2);
        drop(handler);
        assert_eq!(in_flight(&activity), 1, "the tunnel still holds it");
        drop(tunnel);
        assert_eq!(in_flight(&activity), 0);
    }

    #[tokio::test]
    async fn a_partial_request_head_is_overdue_after_header_read_once_the_connection_is_quiet() {
        let (activity, mut t, mut far) = scanned();
        let long = Duration::from_secs(60);
        far.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n")
            .await
            .unwrap();
        assert_eq!(t.read(&mut [0u8; 128]).await.unwrap(), 47);
        let started = activity.head_deadline(long).expect("the second head began");
        assert!(!activity.head_overdue(long));
        // Pipelined behind a request still in flight: not counted yet.
        let handling = activity.busy();
        assert!(!activity.head_overdue(Duration::ZERO));
        drop(handling);
        // Past a tick of the coarse clock the deadline is counted on.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(activity.head_overdue(Duration::ZERO));
        // More of the same head does not move its deadline; its end clears it.
        far.write_all(b"Host: a\r\n").await.unwrap();
        assert_eq!(t.read(&mut [0u8; 128]).await.unwrap(), 9);
        assert_eq!(activity.head_deadline(long), Some(started));
        far.write_all(b"\r\n").await.unwrap();
        assert_eq!(t.read(&mut [0u8; 128]).await.unwrap(), 2);
        assert_eq!(activity.head_deadline(long), None);
        // A stray blank line begins a head: no park there, the head deadline runs on.
        far.write_all(b"\r\n").await.unwrap();
        assert_eq!(t.read(&mut [0u8; 128]).await.unwrap(), 2);
        assert!(activity.head_deadline(long).is_some());
        activity.request_park();
        assert!(waits(&mut t).await, "parked after a blank line");
        assert!(activity.head_deadline(long).is_some());
    }

    #[tokio::test]
    async fn a_park_waits_for_a_whole_request_with_nothing_in_flight_and_keeps_the_stream() {
        let (activity, mut t, mut far) = scanned();
        far.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
            .await
            .unwrap();
        assert_eq!(t.read(&mut [0u8; 64]).await.unwrap(), 25);
        activity.request_park();
        assert!(waits(&mut t).await, "parked in the middle of a head");

        far.write_all(b"\r\n").await.unwrap();
        assert_eq!(t.read(&mut [0u8; 64]).await.unwrap(), 2);
        let handling = activity.busy();
        activity.request_park();
        assert!(waits(&mut t).await, "parked with a request in flight");
        drop(handling);
        let sending = activity.watch_response(crate::http::empty());
        assert!(waits(&mut t).await, "parked while a response was sent");
        // Aborted by the write watch: its connection is to be closed, not parked.
        assert_eq!(activity.check_writes(Duration::ZERO).aborted, 1);
        assert!(waits(&mut t).await, "parked after its response was aborted");
        drop(sending);

        assert_eq!(
            t.read(&mut [0u8; 64]).await.unwrap(),
            0,
            "parks: reads as the end"
        );
        // hyper's shutdown of a parked stream does not close it.
        t.shutdown().await.unwrap();
        assert!(t.take_parked());
        far.write_all(b"GET /next HTTP/1.1\r\n\r\n").await.unwrap();
        assert_eq!(t.read(&mut [0u8; 64]).await.unwrap(), 22);
        t.write_all(b"answer").await.unwrap();
        let mut got = [0u8; 6];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"answer");
        // Without a new request, it never parks again.
        assert!(waits(&mut t).await);
        assert!(!t.take_parked());
    }

    /// A stream that counts the times it was asked to let its buffers go (also used by
    /// `conn`'s tests).
    pub(in crate::listener) struct Counted(pub DuplexStream, pub Arc<AtomicUsize>);

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl Buffers for Counted {
        fn release_buffers(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_stream_that_does_not_park_lets_its_buffers_go_once_when_asked() {
        let activity = Activity::new();
        let (_client, far) = tokio::io::duplex(64);
        let released = Arc::new(AtomicUsize::new(0));
        let mut t = Tracked::new(Counted(far, released.clone()), activity.clone());
        activity.request_park();
        for _ in 0..2 {
            let read = timeout(WAIT, t.read(&mut [0u8; 16])).await;
            assert!(read.is_err(), "a stream without framing never parks");
        }
        assert_eq!(released.load(Ordering::SeqCst), 1);
        assert!(!t.take_parked());
    }

    #[tokio::test]
    async fn a_client_that_closed_its_side_is_sent_no_goodbye() {
        let (_, mut t, mut far) = scanned();
        far.shutdown().await.unwrap();
        assert_eq!(t.read(&mut [0u8; 64]).await.unwrap(), 0);
        // hyper's shutdown reaches nothing under the stream (over TLS: no close_notify)...
        t.shutdown().await.unwrap();
        assert!(timeout(WAIT, far.read(&mut [0u8; 8])).await.is_err());
        // ...and the stream closes when it is dropped.
        drop(t);
        assert_eq!(far.read(&mut [0u8; 8]).await.unwrap(), 0);
        // A client still there gets the shutdown.
        let (_, mut t, mut far) = scanned();
        t.shutdown().await.unwrap();
        assert_eq!(far.read(&mut [0u8; 8]).await.unwrap(), 0);
    }
}
