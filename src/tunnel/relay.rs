//! Moves bytes both ways between two streams until both directions have ended. Half-close
//! passes through: when one side stops sending, the other side's write half is shut down and
//! the opposite direction goes on (a client that has sent its request still gets the reply).
//! No byte moving for `idle` closes both.
//!
//! Each direction holds at most one buffer of `TUNNEL_BUFFER_BYTES`, and only while bytes are
//! in flight: it is released whenever the reader has nothing more, so an idle tunnel holds no
//! buffer at all. (`tokio::io::copy_bidirectional` keeps two for the connection's life, which
//! is most of an idle tunnel's memory.)

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::defaults::TUNNEL_BUFFER_BYTES;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Both sides finished sending.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A read or write failed (a reset, a TLS error).
    Failed,
}

#[derive(Debug)]
pub(crate) struct Relayed {
    /// Bytes read from the first stream (and written to the second).
    pub sent: u64,
    /// Bytes read from the second stream.
    pub received: u64,
    pub ending: Ending,
    pub error: Option<io::Error>,
}

pub(crate) async fn relay<A, B>(mut a: A, mut b: B, idle: Duration) -> Relayed
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut forth, mut back) = (Direction::default(), Direction::default());
    let mut last_moved = Instant::now();
    // Re-armed only when it fires, not at every byte: moving the timer costs more than a
    // comparison.
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let (ending, error) = poll_fn(|cx| {
        let before = (forth.moved, back.moved);
        let polled = [
            forth.poll(cx, &mut a, &mut b),
            back.poll(cx, &mut b, &mut a),
        ];
        if let Some(e) = polled.into_iter().find_map(|p| match p {
            Poll::Ready(Err(e)) => Some(e),
            _ => None,
        }) {
            return Poll::Ready((Ending::Failed, Some(e)));
        }
        if forth.done && back.done {
            return Poll::Ready((Ending::Closed, None));
        }
        if (forth.moved, back.moved) != before {
            last_moved = Instant::now();
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= last_moved + idle {
                return Poll::Ready((Ending::Idle, None));
            }
            timer.as_mut().reset(last_moved + idle);
        }
        Poll::Pending
    })
    .await;
    Relayed {
        sent: forth.moved,
        received: back.moved,
        ending,
        error,
    }
}

/// One direction: read into the buffer, write it all out, repeat; at the reader's end, shut
/// down the writer.
#[derive(Default)]
struct Direction {
    buf: Option<Box<[u8]>>,
    /// `buf[start..end]` is read and not yet written.
    start: usize,
    end: usize,
    /// Written since the last flush.
    unflushed: bool,
    read_done: bool,
    done: bool,
    moved: u64,
}

impl Direction {
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, r: &mut R, w: &mut W) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.start == self.end && !self.read_done {
                let buf = self
                    .buf
                    .get_or_insert_with(|| vec![0; TUNNEL_BUFFER_BYTES].into_boxed_slice());
                let mut read = ReadBuf::new(buf);
                match Pin::new(&mut *r).poll_read(cx, &mut read) {
                    Poll::Pending => {
                        // Nothing in flight: give the buffer back, and flush what was written
                        // in case the other side waits for it before sending more.
                        self.buf = None;
                        if self.unflushed {
                            ready!(Pin::new(&mut *w).poll_flush(cx))?;
                            self.unflushed = false;
                        }
                        return Poll::Pending;
                    }
                    // A TLS peer that closes without close_notify (Python's `ssl`, most
                    // clients that just close the socket): the end of its data all the same.
                    Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        read.clear();
                    }
                    Poll::Ready(res) => res?,
                }
                let n = read.filled().len();
                (self.start, self.end) = (0, n);
                self.read_done = n == 0;
                self.moved += n as u64;
            }
            while self.start < self.end {
                let Some(buf) = &self.buf else { break };
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.unflushed = true;
            }
            if self.read_done {
                self.buf = None;
                ready!(Pin::new(&mut *w).poll_flush(cx))?;
                match ready!(Pin::new(&mut *w).poll_shutdown(cx)) {
                    // The other side is gone already: there was nothing left to tell it.
                    Err(e) if gone(&e) => {}
                    res => res?,
                }
                self.done = true;
                return Poll::Ready(Ok(()));
            }
        }
    }
}

fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::NotConnected
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_side_that_stops_sending_still_gets_the_reply() {
        let (client, mut client_far) = tokio::io::duplex(1024);
        let (upstream, mut upstream_far) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(client, upstream, Duration::from_secs(5)));
        client_far.write_all(b"question").await.unwrap();
        client_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        upstream_far.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"question");
        upstream_far.write_all(b"answer").await.unwrap();
        upstream_far.shutdown().await.unwrap();
        let mut reply = Vec::new();
        client_far.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"answer");
        let done = relay.await.unwrap();
        assert_eq!(
            (done.sent, done.received, done.ending),
            (8, 6, Ending::Closed)
        );
    }

    #[tokio::test]
    async fn a_direction_with_nothing_more_to_read_holds_no_buffer() {
        let (mut r, mut r_far) = tokio::io::duplex(64);
        let (mut w, mut w_far) = tokio::io::duplex(64);
        r_far.write_all(b"abc").await.unwrap();
        let mut d = Direction::default();
        let polled = std::future::poll_fn(|cx| Poll::Ready(d.poll(cx, &mut r, &mut w))).await;
        assert!(polled.is_pending());
        assert!(d.buf.is_none());
        assert_eq!(d.moved, 3);
        let mut got = [0u8; 3];
        w_far.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"abc");
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_relay_ends_after_the_idle_timeout() {
        let (client, _client_far) = tokio::io::duplex(64);
        let (upstream, _upstream_far) = tokio::io::duplex(64);
        let done = relay(client, upstream, Duration::from_secs(30)).await;
        assert_eq!(done.ending, Ending::Idle);
    }

    /// Reads what it holds, then fails as a TLS stream does when the peer closes the socket
    /// without close_notify.
    struct EndsWithoutNotify(&'static [u8]);

    impl AsyncRead for EndsWithoutNotify {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.0.is_empty() {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            buf.put_slice(self.0);
            self.0 = &[];
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for EndsWithoutNotify {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            b: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(b.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
    }

    #[tokio::test]
    async fn a_client_that_closes_without_close_notify_ends_the_relay_cleanly() {
        let (upstream, mut app) = tokio::io::duplex(1024);
        let relay = tokio::spawn(relay(
            EndsWithoutNotify(b"bye"),
            upstream,
            Duration::from_secs(5),
        ));
        let mut got = Vec::new();
        app.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
        drop(app);
        let done = relay.await.unwrap();
        assert_eq!(done.ending, Ending::Closed, "{:?}", done.error);
        assert_eq!(done.sent, 3);
    }
}
