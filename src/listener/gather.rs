//! HTTP/2 writes gathered into one TLS write per turn of the connection's task.
//!
//! The `h2` crate writes every DATA frame of 256 bytes or more on its own and flushes after
//! each, so ten small responses that complete together cost ten TLS records and ten `writev`
//! calls, and on loopback the sender pays for the receiver's TCP processing of each
//! (bench/profile-2026-12-01.md, section 3). Here a write is copied into a buffer and a flush
//! is only noted; the connection's task ([`super::streams::WithStreams`]) sends the buffer
//! once, when it has done all it can for now, as h2o and nginx write once per event-loop turn.
//! Nothing waits longer than it did: the buffer is sent before the task sleeps.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::locks::lock;

/// The most bytes gathered before a write waits for the socket: a slow reader still pushes
/// back on the HTTP/2 connection, which then stops taking data from its streams.
const GATHER_LIMIT: usize = 64 * 1024;

/// A write at least this large, with nothing gathered before it, goes straight through: a
/// bulk DATA frame gains nothing from a copy.
const WRITE_THROUGH: usize = 16 * 1024;

/// What an empty buffer reserves at its first write: a turn's small responses then go in
/// without the buffer growing (and being copied) several times on the way. It is let go once
/// sent.
const TURN_CAPACITY: usize = 16 * 1024;

/// The stream given to hyper: reads pass through, writes are gathered.
pub(crate) struct Gathered<S>(Arc<Mutex<Shared<S>>>);

/// What the connection's task holds to send what was gathered.
pub(crate) trait SendGathered: Send + Sync {
    /// Sends what was gathered and flushes the stream beneath. A failure is kept for the
    /// connection's next read or write, and the task is woken to meet it.
    fn send_gathered(&self, cx: &mut Context<'_>);
}

struct Shared<S> {
    io: S,
    buf: Vec<u8>,
    /// A flush was asked for and not yet done.
    flush_owed: bool,
    /// An error met while sending for the connection, given to its next call.
    failed: Option<io::Error>,
}

impl<S> Gathered<S> {
    /// The stream for hyper, and the handle its task sends with.
    pub(crate) fn new(io: S) -> (Self, Arc<dyn SendGathered>)
    where
        S: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(Mutex::new(Shared {
            io,
            buf: Vec::new(),
            flush_owed: false,
            failed: None,
        }));
        (Gathered(shared.clone()), shared)
    }

    /// Only this task touches the lock (hyper's connection and the task's own turn end), so
    /// it is never contended.
    fn lock(&self) -> MutexGuard<'_, Shared<S>> {
        lock(&self.0)
    }
}

impl<S: AsyncWrite + Unpin> Shared<S> {
    /// Writes the whole buffer to the stream beneath.
    fn write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            match std::task::ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))? {
                0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                n => drop(self.buf.drain(..n)),
            }
        }
        // Let go once sent: an idle connection (most HTTP/2 connections, most of the time)
        // keeps none of it, and the next turn reserves its own.
        self.buf = Vec::new();
        Poll::Ready(Ok(()))
    }

    fn send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.write_out(cx))?;
        if self.flush_owed {
            std::task::ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.flush_owed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Reserves `len` more bytes, a turn's worth when the buffer is new.
    fn make_room(&mut self, len: usize) {
        match self.buf.is_empty() {
            true => self.buf.reserve(len.max(TURN_CAPACITY)),
            false => self.buf.reserve(len),
        }
    }

    /// Makes room for `len` more bytes, writing out first when they would not fit.
    fn room_for(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        if !self.buf.is_empty() && self.buf.len() + len > GATHER_LIMIT {
            std::task::ready!(self.write_out(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin + Send> SendGathered for Mutex<Shared<S>> {
    fn send_gathered(&self, cx: &mut Context<'_>) {
        let mut shared = lock(self);
        if shared.buf.is_empty() && !shared.flush_owed {
            return;
        }
        if let Poll::Ready(Err(e)) = shared.send(cx) {
            shared.failed = Some(e);
            cx.waker().wake_by_ref();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gathered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut shared = self.lock();
        if let Some(e) = shared.failed.take() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut shared.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gathered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut shared = self.lock();
        std::task::ready!(shared.room_for(cx, data.len()))?;
        if shared.buf.is_empty() && data.len() >= WRITE_THROUGH {
            return Pin::new(&mut shared.io).poll_write(cx, data);
        }
        shared.make_room(data.len());
        shared.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        let mut shared = self.lock();
        std::task::ready!(shared.room_for(cx, len))?;
        if shared.buf.is_empty() && len >= WRITE_THROUGH {
            return Pin::new(&mut shared.io).poll_write_vectored(cx, bufs);
        }
        shared.make_room(len);
        for b in bufs {
            shared.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Noted, and done at the end of the task's turn by [`SendGathered`].
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = self.lock();
        if let Some(e) = shared.failed.take() {
            return Poll::Ready(Err(e));
        }
        shared.flush_owed = true;
        Poll::Ready(Ok(()))
    }

    /// A closing connection's last frames (its GOAWAY) go out before the stream is shut.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut shared = self.lock();
        shared.flush_owed = true;
        std::task::ready!(shared.send(cx))?;
        Pin::new(&mut shared.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Counts the writes that reach the stream beneath.
    struct Counting<S> {
        io: S,
        writes: Arc<AtomicUsize>,
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            Pin::new(&mut self.io).poll_write(cx, data)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    fn send_now(handle: &Arc<dyn SendGathered>) {
        let waker = futures_util::task::noop_waker();
        handle.send_gathered(&mut Context::from_waker(&waker));
    }

    #[tokio::test]
    async fn small_writes_and_flushes_go_out_as_one_write_when_the_task_sends() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let (mut gathered, handle) = Gathered::new(Counting {
            io: near,
            writes: writes.clone(),
        });
        for i in 0..10u8 {
            gathered.write_all(&[i; 1024]).await.unwrap();
            gathered.flush().await.unwrap();
        }
        assert_eq!(
            writes.load(Ordering::Relaxed),
            0,
            "nothing sent before the turn ends"
        );
        send_now(&handle);
        assert_eq!(writes.load(Ordering::Relaxed), 1);
        let mut got = vec![0u8; 10 * 1024];
        far.read_exact(&mut got).await.unwrap();
        assert!(
            got.chunks(1024)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b == i as u8))
        );
    }

    #[tokio::test]
    async fn a_turns_small_writes_fill_one_buffer_that_is_let_go_once_sent() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let (mut gathered, handle) = Gathered::new(near);
        gathered.write_all(&[1; 1300]).await.unwrap();
        let first = gathered.lock().buf.as_ptr();
        for _ in 0..9 {
            gathered.write_all(&[1; 1300]).await.unwrap();
        }
        let (len, at) = {
            let shared = gathered.lock();
            (shared.buf.len(), shared.buf.as_ptr())
        };
        assert_eq!(len, 13_000);
        // Growing it, and copying it each time, was 2 % of a small h2 response's CPU.
        assert_eq!(at, first, "the buffer moved within one turn");
        send_now(&handle);
        assert_eq!(
            gathered.lock().buf.capacity(),
            0,
            "an idle connection keeps no buffer"
        );
        far.read_exact(&mut [0; 13_000]).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_buffer_waits_for_the_socket_and_keeps_the_order() {
        // The far end holds 8 KiB: the gathered bytes beyond it wait until the far end reads.
        let (near, mut far) = tokio::io::duplex(8 * 1024);
        let (mut gathered, handle) = Gathered::new(near);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        });
        for chunk in sent.chunks(3000) {
            gathered.write_all(chunk).await.unwrap();
        }
        std::future::poll_fn(|cx| {
            handle.send_gathered(cx);
            Poll::Ready(())
        })
        .await;
        gathered.shutdown().await.unwrap();
        drop(gathered);
        drop(handle);
        assert_eq!(reader.await.unwrap(), sent);
    }

    #[tokio::test]
    async fn a_failed_send_is_the_connections_next_error() {
        let (near, far) = tokio::io::duplex(1024);
        drop(far);
        let (mut gathered, handle) = Gathered::new(near);
        gathered.write_all(b"goodbye").await.unwrap();
        send_now(&handle);
        let err = gathered.write_all(b"more").await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "{err}");
    }
}
