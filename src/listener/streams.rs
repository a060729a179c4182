//! The HTTP/2 streams of one connection, run inside that connection's own task.
//!
//! hyper hands each HTTP/2 stream to an executor; the usual one spawns a task per stream, and
//! on the multi-thread runtime that spawn and its cross-thread wake-ups were a fifth of the CPU
//! of a small h2 request (bench/profile-2026-12-01.md). A stream cannot outlive its connection
//! and never needs another core, so the connection's task polls its streams itself, as nginx
//! and h2o do within a worker. Streams still run concurrently: each is its own future.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

use super::gather::SendGathered;
use crate::locks::lock;

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper's HTTP/2 server is given: it queues each new stream for the
/// connection's task and wakes that task.
#[derive(Clone, Default)]
pub(super) struct StreamQueue(Arc<Queue>);

#[derive(Default)]
struct Queue {
    new: Mutex<Vec<Stream>>,
    waker: AtomicWaker,
}

impl<F> hyper::rt::Executor<F> for StreamQueue
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        let mut new = lock(&self.0.new);
        new.push(Box::pin(stream));
        drop(new);
        self.0.waker.wake();
    }
}

pin_project_lite::pin_project! {
    /// A connection together with the streams it started: done when the connection is. A
    /// stream still running then has lost its connection, so it is dropped with it (and so is
    /// what it held: a file, an upstream request).
    pub(super) struct WithStreams<C> {
        #[pin]
        conn: C,
        queue: StreamQueue,
        running: FuturesUnordered<Stream>,
        gathered: Arc<dyn SendGathered>,
    }
}

impl<C> WithStreams<C> {
    /// `gathered`: the connection's writes, sent whenever this task has done all it can.
    pub(super) fn new(conn: C, queue: StreamQueue, gathered: Arc<dyn SendGathered>) -> Self {
        WithStreams {
            conn,
            queue,
            running: FuturesUnordered::new(),
            gathered,
        }
    }

    pub(super) fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        self.project().conn
    }
}

impl<C: Future> Future for WithStreams<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        this.queue.0.waker.register(cx.waker());
        // The connection reads frames and starts streams; the streams produce responses that
        // the connection then writes. While either moves the other, go round again (bounded,
        // so one busy connection cannot keep its thread from the others).
        for _ in 0..ROUNDS {
            if let Poll::Ready(done) = this.conn.as_mut().poll(cx) {
                this.gathered.send_gathered(cx);
                return Poll::Ready(done);
            }
            // Drained, not taken: the queue keeps its room for the next turn's streams.
            let mut new = lock(&this.queue.0.new);
            let started = !new.is_empty();
            this.running.extend(new.drain(..));
            drop(new);
            let mut finished = false;
            while let Poll::Ready(Some(())) = this.running.poll_next_unpin(cx) {
                finished = true;
            }
            if !started && !finished {
                this.gathered.send_gathered(cx);
                return Poll::Pending;
            }
        }
        this.gathered.send_gathered(cx);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// How many times one poll may go between the connection and its streams before yielding.
const ROUNDS: usize = 8;
