//! Moves bytes both ways between two streams until both directions have ended. Half-close
//! passes through: when one side stops sending, the other side's write half is shut down and
//! the opposite direction goes on (a client that has sent its request still gets the reply).
//! Each direction holds one bounded buffer; no byte moving for `idle` closes both.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::defaults::TUNNEL_BUFFER_BYTES;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Both sides finished sending.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A read or write failed (a reset, a TLS error).
    Failed,
}

#[derive(Debug)]
pub struct Relayed {
    /// Bytes read from the first stream (and written to the second).
    pub sent: u64,
    /// Bytes read from the second stream.
    pub received: u64,
    pub ending: Ending,
    pub error: Option<io::Error>,
}

pub async fn relay<A, B>(a: A, b: B, idle: Duration) -> Relayed
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let clock = Arc::new(Clock::new());
    let (sent, received) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut a = Metered::new(a, clock.clone(), sent.clone());
    let mut b = Metered::new(b, clock.clone(), received.clone());
    let copy = tokio::io::copy_bidirectional_with_sizes(
        &mut a,
        &mut b,
        TUNNEL_BUFFER_BYTES,
        TUNNEL_BUFFER_BYTES,
    );
    tokio::pin!(copy);
    let (ending, error) = loop {
        tokio::select! {
            res = &mut copy => break match res {
                Ok(_) => (Ending::Closed, None),
                Err(e) => (Ending::Failed, Some(e)),
            },
            _ = tokio::time::sleep_until(clock.deadline(idle)) => {
                if Instant::now() >= clock.deadline(idle) {
                    break (Ending::Idle, None);
                }
            }
        }
    };
    Relayed {
        sent: sent.load(Ordering::Relaxed),
        received: received.load(Ordering::Relaxed),
        ending,
        error,
    }
}

/// When bytes last moved, in milliseconds after the relay started.
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
}

impl Clock {
    fn new() -> Self {
        Clock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// Counts the bytes read from a stream and marks activity both ways.
struct Metered<S> {
    inner: S,
    clock: Arc<Clock>,
    read: Arc<AtomicU64>,
}

impl<S> Metered<S> {
    fn new(inner: S, clock: Arc<Clock>, read: Arc<AtomicU64>) -> Self {
        Metered { inner, clock, read }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
            self.clock.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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

    #[tokio::test(start_paused = true)]
    async fn a_quiet_relay_ends_after_the_idle_timeout() {
        let (client, _client_far) = tokio::io::duplex(64);
        let (upstream, _upstream_far) = tokio::io::duplex(64);
        let done = relay(client, upstream, Duration::from_secs(30)).await;
        assert_eq!(done.ending, Ending::Idle);
    }
}
