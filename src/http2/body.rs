//! A request's body as the handler reads it: the DATA the connection received for its stream.
//!
//! The connection pushes each DATA payload into the stream's [`Inbox`]; the handler's
//! [`RecvBody`] takes them out. Only what the handler has taken is given back to the client as
//! flow-control window (the connection sends WINDOW_UPDATE), so a handler that reads slowly
//! holds the client back instead of making candado buffer without bound.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http::HeaderMap;
use http_body::{Frame, SizeHint};

use crate::locks::lock;

/// What the connection learns from its streams' bodies: bytes read (to give back as window),
/// and the waker of the connection's task.
#[derive(Default)]
pub(crate) struct Releases {
    read: Mutex<Vec<(u32, usize)>>,
    pub(crate) waker: AtomicWaker,
}

impl Releases {
    fn add(&self, stream: u32, n: usize) {
        lock(&self.read).push((stream, n));
        self.waker.wake();
    }

    /// The bytes read since the last call, per stream (streams may repeat).
    pub(crate) fn take(&self, into: &mut Vec<(u32, usize)>) {
        let mut read = lock(&self.read);
        into.append(&mut read);
    }
}

/// One stream's received DATA, shared by the connection and the handler's body.
pub(crate) struct Inbox {
    stream: u32,
    releases: Arc<Releases>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    end: bool,
    /// The stream was reset or its connection ended before the body did.
    broken: bool,
    /// The handler dropped its body: what arrives is given back at once.
    dropped: bool,
    waker: Option<Waker>,
}

impl Inbox {
    pub(crate) fn new(stream: u32, releases: Arc<Releases>) -> Arc<Self> {
        Arc::new(Inbox {
            stream,
            releases,
            state: Mutex::default(),
        })
    }

    /// Adds a payload; `false` if nobody will read it (the connection gives it back itself).
    pub(crate) fn push(&self, data: Bytes) -> bool {
        let mut s = lock(&self.state);
        if s.dropped {
            return false;
        }
        s.chunks.push_back(data);
        wake(&mut s);
        true
    }

    /// Whether the handler dropped its body.
    pub(crate) fn is_abandoned(&self) -> bool {
        lock(&self.state).dropped
    }

    pub(crate) fn finish(&self, trailers: Option<HeaderMap>) {
        let mut s = lock(&self.state);
        s.trailers = trailers;
        s.end = true;
        wake(&mut s);
    }

    /// The body will not end well; returns the bytes it held, unread, for the connection to
    /// give back.
    pub(crate) fn break_off(&self) -> usize {
        let mut s = lock(&self.state);
        if !s.end {
            s.broken = true;
        }
        let unread = s.chunks.drain(..).map(|c| c.len()).sum();
        wake(&mut s);
        unread
    }
}

fn wake(s: &mut State) {
    if let Some(w) = s.waker.take() {
        w.wake();
    }
}

/// A request body: nothing (the HEADERS frame ended the stream), or its stream's [`Inbox`].
pub(crate) struct RecvBody {
    inbox: Option<Arc<Inbox>>,
    /// Content-Length, when the request declared one.
    declared: Option<u64>,
}

impl RecvBody {
    pub(crate) fn empty() -> Self {
        RecvBody {
            inbox: None,
            declared: None,
        }
    }

    pub(crate) fn new(inbox: Arc<Inbox>, declared: Option<u64>) -> Self {
        RecvBody {
            inbox: Some(inbox),
            declared,
        }
    }
}

/// The client reset the stream, or the connection ended, before the body was whole.
#[derive(Debug, thiserror::Error)]
#[error("the HTTP/2 stream ended before the request body was complete")]
pub(crate) struct BodyBroken;

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = BodyBroken;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyBroken>>> {
        let Some(inbox) = &self.inbox else {
            return Poll::Ready(None);
        };
        let mut s = lock(&inbox.state);
        if let Some(chunk) = s.chunks.pop_front() {
            drop(s);
            inbox.releases.add(inbox.stream, chunk.len());
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if s.broken {
            return Poll::Ready(Some(Err(BodyBroken)));
        }
        if let Some(trailers) = s.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if s.end {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        match &self.inbox {
            None => true,
            Some(inbox) => {
                let s = lock(&inbox.state);
                s.end && s.chunks.is_empty() && s.trailers.is_none()
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inbox, self.declared) {
            (None, _) => SizeHint::with_exact(0),
            (Some(_), Some(n)) => SizeHint::with_exact(n),
            (Some(_), None) => SizeHint::default(),
        }
    }
}

impl Drop for RecvBody {
    fn drop(&mut self) {
        let Some(inbox) = &self.inbox else { return };
        let mut s = lock(&inbox.state);
        s.dropped = true;
        let unread: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        drop(s);
        if unread > 0 {
            inbox.releases.add(inbox.stream, unread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn chunks_and_trailers_come_out_in_order_and_reads_are_given_back() {
        let releases = Arc::new(Releases::default());
        let inbox = Inbox::new(3, releases.clone());
        let mut body = RecvBody::new(inbox.clone(), Some(5));
        assert!(inbox.push(Bytes::from_static(b"ab")));
        assert!(inbox.push(Bytes::from_static(b"cde")));
        let mut trailers = HeaderMap::new();
        trailers.insert("x-sum", "1".parse().expect("value"));
        inbox.finish(Some(trailers));
        let collected = (&mut body).collect().await.expect("whole");
        assert_eq!(
            collected.trailers().map(|t| &t["x-sum"]),
            Some(&"1".parse().expect("v"))
        );
        assert_eq!(collected.to_bytes(), "abcde");
        let mut read = Vec::new();
        releases.take(&mut read);
        assert_eq!(read, [(3, 2), (3, 3)]);
    }

    #[tokio::test]
    async fn a_broken_stream_is_an_error_and_a_dropped_body_gives_back_what_it_held() {
        let releases = Arc::new(Releases::default());
        let inbox = Inbox::new(5, releases.clone());
        let body = RecvBody::new(inbox.clone(), None);
        inbox.push(Bytes::from_static(b"xyz"));
        drop(body);
        assert!(!inbox.push(Bytes::from_static(b"more")));
        let mut read = Vec::new();
        releases.take(&mut read);
        assert_eq!(read, [(5, 3)]);

        let inbox = Inbox::new(7, releases);
        let body = RecvBody::new(inbox.clone(), None);
        assert_eq!(inbox.break_off(), 0);
        assert!(body.collect().await.is_err());
    }
}
