//! A CONNECT stream turned into a byte stream (RFC 9113 §8.5; RFC 8441 for WebSockets): once
//! the handler's 2xx answer is sent, what the client sends on the stream is read from
//! [`Upgraded`], and what is written to it goes out as the stream's DATA.
//!
//! The handler finds an [`OnUpgrade`] in the request's extensions, as hyper's own upgrade.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::body::RecvBody;
use crate::locks::lock;

/// How much a tunnel may write before the connection has sent it: beyond this, writes wait.
const OUTBOX_BYTES: usize = 64 << 10;

/// The client's side of a CONNECT stream, once its 2xx answer is sent. Clones share it (a
/// request's extensions must be `Clone`): the first to wait for it gets it.
#[derive(Clone)]
pub(crate) struct OnUpgrade(Arc<Mutex<oneshot::Receiver<Upgraded>>>);

/// The stream was answered with something other than 2xx, or it ended first.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP/2 CONNECT stream was not upgraded")]
pub(crate) struct NotUpgraded;

impl Future for OnUpgrade {
    type Output = Result<Upgraded, NotUpgraded>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut rx = lock(&self.0);
        Pin::new(&mut *rx)
            .poll(cx)
            .map(|r| r.map_err(|_| NotUpgraded))
    }
}

/// What the connection keeps to fulfil an [`OnUpgrade`].
pub(crate) struct Pending {
    tx: oneshot::Sender<Upgraded>,
    recv: RecvBody,
}

pub(crate) fn pending(recv: RecvBody) -> (Pending, OnUpgrade) {
    let (tx, rx) = oneshot::channel();
    (Pending { tx, recv }, OnUpgrade(Arc::new(Mutex::new(rx))))
}

impl Pending {
    /// The answer went out: hands the stream over; returns the body that sends its writes.
    pub(crate) fn fulfil(self) -> TunnelBody {
        let outbox = Arc::new(Outbox::default());
        let upgraded = Upgraded {
            recv: self.recv,
            unread: Bytes::new(),
            out: outbox.clone(),
        };
        // A handler that stopped waiting drops what it would have got: the stream then ends.
        let _ = self.tx.send(upgraded);
        TunnelBody(outbox)
    }
}

#[derive(Default)]
struct Outbox {
    state: Mutex<OutState>,
}

#[derive(Default)]
struct OutState {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    closed: bool,
    /// The connection, waiting for bytes; the tunnel, waiting for room.
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Outbox {
    fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }
}

/// An upgraded HTTP/2 stream: reads are the client's DATA, writes become DATA to it.
pub(crate) struct Upgraded {
    recv: RecvBody,
    unread: Bytes,
    out: Arc<Outbox>,
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.unread.is_empty() {
            match Pin::new(&mut self.recv).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.unread = data;
                    }
                }
            }
        }
        let n = self.unread.len().min(buf.remaining());
        buf.put_slice(&self.unread[..n]);
        self.unread.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = lock(&self.out.state);
        if s.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if s.buffered >= OUTBOX_BYTES {
            s.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = data.len().min(OUTBOX_BYTES - s.buffered);
        s.chunks.push_back(Bytes::copy_from_slice(&data[..n]));
        s.buffered += n;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.out.close();
        Poll::Ready(Ok(()))
    }
}

impl Drop for Upgraded {
    fn drop(&mut self) {
        self.out.close();
    }
}

/// A CONNECT stream's response body: what its [`Upgraded`] writes, ending when it shuts down.
pub(crate) struct TunnelBody(Arc<Outbox>);

impl Body for TunnelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let mut s = lock(&self.0.state);
        if let Some(chunk) = s.chunks.pop_front() {
            s.buffered -= chunk.len();
            if let Some(w) = s.writer.take() {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        s.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = lock(&self.0.state);
        s.closed && s.chunks.is_empty()
    }
}

impl Drop for TunnelBody {
    fn drop(&mut self) {
        // The stream is gone: writes fail from now on.
        let mut s = lock(&self.0.state);
        s.closed = true;
        if let Some(w) = s.writer.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http2::body::{Inbox, Releases};
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_upgraded_stream_reads_the_clients_data_and_its_writes_become_the_body() {
        let inbox = Inbox::new(1, Arc::new(Releases::default()));
        let (pending, on_upgrade) = pending(RecvBody::new(inbox.clone(), None));
        let body = pending.fulfil();
        let mut up = on_upgrade.await.expect("upgraded");
        inbox.push(Bytes::from_static(b"ping"));
        inbox.finish(None);
        let mut read = Vec::new();
        up.read_to_end(&mut read).await.expect("read");
        assert_eq!(read, b"ping");
        up.write_all(b"pong").await.expect("write");
        up.shutdown().await.expect("shutdown");
        assert_eq!(body.collect().await.expect("body").to_bytes(), "pong");
    }

    #[tokio::test]
    async fn an_upgrade_not_fulfilled_fails() {
        let (pending, on_upgrade) = pending(RecvBody::empty());
        drop(pending);
        assert!(on_upgrade.await.is_err());
    }
}
