//! Serves one HTTP/2 connection in its task: reads frames into [`Conn`], runs each request's
//! handler, and writes what the connection gathered once per turn.
//!
//! A handler that answers at once (a kept file, a refusal) is answered in the same turn that
//! read its request, without a task, a box of its own or a wake-up: ten requests read together
//! go out as one write. Handlers that wait (a proxied request) are boxed and run here, in the
//! connection's task, each cancelled if its stream is reset first.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{RecvBody, Releases};
use super::conn::{Config, Conn, Event, Fatal};

/// Frames gathered beyond this wait for the client to read: no more requests are read and no
/// more body is produced until they are written.
const HIGH_WATER: usize = 64 << 10;
/// How much a read asks for.
const READ_SIZE: usize = 16 << 10;
/// Turns one poll may take before yielding to the connection's neighbours.
const ROUNDS: usize = 8;

/// An I/O stream that tells when its connection has been quiet long enough to let its
/// buffers go (`listener::activity::Tracked`, after half a second without a byte).
pub(crate) trait Quiet {
    fn quiet_now(&mut self) -> bool;
}

/// A connection served by candado's own HTTP/2 implementation.
pub(crate) struct Server<IO, S, F, B> {
    io: IO,
    conn: Conn<B>,
    read: BytesMut,
    service: S,
    waiting: FuturesUnordered<Abortable<Tagged<F>>>,
    events: Vec<Event>,
    releases: Arc<Releases>,
    read_closed: bool,
}

/// Why a connection ended badly.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl<IO, S, F, B> Server<IO, S, F, B>
where
    IO: AsyncRead + AsyncWrite + Quiet + Unpin,
    S: FnMut(Request<RecvBody>) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Unpin,
{
    pub(crate) fn new(io: IO, config: Config, service: S) -> Self {
        let releases = Arc::new(Releases::default());
        Server {
            io,
            conn: Conn::new(config, releases.clone()),
            read: BytesMut::new(),
            service,
            waiting: FuturesUnordered::new(),
            events: Vec::new(),
            releases,
            read_closed: false,
        }
    }

    /// Finish the streams in progress, take no new ones, then close.
    pub(crate) fn drain(&mut self) {
        self.conn.go_away();
    }

    /// Sends a PING; `false` if the last one was never answered.
    pub(crate) fn ping(&mut self) -> bool {
        self.conn.send_ping()
    }

    /// Reads what the socket has; `true` if anything came (or the client closed).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnError> {
        if self.read_closed || self.conn.out.len() >= HIGH_WATER || self.conn.is_finished() {
            return Ok(false);
        }
        if self.read.capacity() - self.read.len() < READ_SIZE / 4 {
            self.read.reserve(READ_SIZE);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read) {
            Poll::Ready(Ok(0)) => {
                self.read_closed = true;
                Ok(true)
            }
            Poll::Ready(Ok(_)) => {
                let res = self.conn.recv(&mut self.read, &mut self.events);
                if let Err(Fatal { reason, why }) = res {
                    tracing::debug!(%reason, why, "HTTP/2 connection error");
                }
                Ok(true)
            }
            Poll::Ready(Err(e)) => Err(e.into()),
            Poll::Pending => {
                // Quiet for a while, with nothing half-read and nothing in flight: the buffer
                // goes until bytes come, as the stream's own do.
                if self.io.quiet_now() && self.read.is_empty() && self.conn.is_idle() {
                    self.read = BytesMut::new();
                    self.conn.let_go();
                }
                Ok(false)
            }
        }
    }

    /// Starts the handlers of the requests just read; those that answer at once are answered.
    fn start(&mut self, cx: &mut Context<'_>) {
        for event in self.events.drain(..) {
            let Event::Request(id, req) = event;
            let mut fut = Box::pin((self.service)(req));
            match fut.as_mut().poll(cx) {
                Poll::Ready(res) => self.conn.respond(id, res, cx),
                Poll::Pending => {
                    let (abort, registration) = AbortHandle::new_pair();
                    self.conn.set_abort(id, abort);
                    self.waiting
                        .push(Abortable::new(Tagged { id, fut }, registration));
                }
            }
        }
    }

    /// Writes what was gathered; `true` if anything was.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnError> {
        let mut wrote = false;
        while !self.conn.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.conn.out) {
                Poll::Ready(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Poll::Ready(Ok(n)) => {
                    self.conn.out.advance(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => break,
            }
        }
        if wrote && let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
            return Err(e.into());
        }
        Ok(wrote)
    }

    fn turn(&mut self, cx: &mut Context<'_>) -> Result<bool, ConnError> {
        let mut moved = self.poll_read(cx)?;
        self.start(cx);
        while let Poll::Ready(Some(done)) = self.waiting.poll_next_unpin(cx) {
            if let Ok((id, res)) = done {
                self.conn.respond(id, res, cx);
            }
            moved = true;
        }
        self.conn.apply_releases();
        self.conn.pump_all(cx, HIGH_WATER);
        moved |= self.poll_write(cx)?;
        Ok(moved)
    }
}

impl<IO, S, F, B> Future for Server<IO, S, F, B>
where
    IO: AsyncRead + AsyncWrite + Quiet + Unpin,
    S: FnMut(Request<RecvBody>) -> F + Unpin,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + Unpin,
{
    type Output = Result<(), ConnError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.releases.waker.register(cx.waker());
        for _ in 0..ROUNDS {
            let moved = match this.turn(cx) {
                Ok(moved) => moved,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if this.read_closed || (this.conn.is_finished() && this.conn.out.is_empty()) {
                return match Pin::new(&mut this.io).poll_shutdown(cx) {
                    Poll::Ready(_) => Poll::Ready(Ok(())),
                    Poll::Pending => Poll::Pending,
                };
            }
            if !moved {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A handler's future with the stream it answers.
    struct Tagged<F> {
        id: u32,
        fut: Pin<Box<F>>,
    }
}

impl<F: Future> Future for Tagged<F> {
    type Output = (u32, F::Output);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.fut.as_mut().poll(cx).map(|res| (*this.id, res))
    }
}
