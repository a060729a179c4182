//! The TCP connector under a route's client. hyper-util's own tells the pool each socket's
//! addresses, and the pool then copies them into every upstream response's extensions (a boxed
//! map, its table and the value: three allocations per proxied request) for nobody here to
//! read. This one passes on only what the pool acts on: HTTP/2 and proxying.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

#[derive(Clone)]
pub(super) struct TcpConnector(pub(super) HttpConnector);

/// Boxed as hyper-util would box it: its `is_connect()` and the error's chain stay as they were.
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Connecting = Pin<Box<dyn Future<Output = Result<Bare<TokioIo<TcpStream>>, BoxError>> + Send>>;

impl Service<Uri> for TcpConnector {
    type Response = Bare<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(Bare).map_err(Into::into) })
    }
}

/// A connection that tells the pool only whether it speaks HTTP/2 and goes through a proxy.
pub(super) struct Bare<T>(T);

impl<T: Connection> Connection for Bare<T> {
    fn connected(&self) -> Connected {
        let full = self.0.connected();
        let bare = Connected::new().proxy(full.is_proxied());
        match full.is_negotiated_h2() {
            true => bare.negotiated_h2(),
            false => bare,
        }
    }
}

impl<T: Read + Unpin> Read for Bare<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Bare<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Told(Connected);

    impl Connection for Told {
        fn connected(&self) -> Connected {
            let c = Connected::new().extra(7u8).proxy(self.0.is_proxied());
            match self.0.is_negotiated_h2() {
                true => c.negotiated_h2(),
                false => c,
            }
        }
    }

    #[test]
    fn a_bare_connection_keeps_http2_and_proxying_and_drops_the_extras() {
        for (h2, proxied) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut told = Connected::new().proxy(proxied);
            if h2 {
                told = told.negotiated_h2();
            }
            let bare = Bare(Told(told)).connected();
            assert_eq!(bare.is_negotiated_h2(), h2);
            assert_eq!(bare.is_proxied(), proxied);
            let mut extensions = http::Extensions::new();
            bare.get_extras(&mut extensions);
            assert!(extensions.is_empty(), "h2 {h2}, proxied {proxied}");
        }
        let mut extensions = http::Extensions::new();
        Told(Connected::new())
            .connected()
            .get_extras(&mut extensions);
        assert_eq!(
            extensions.get::<u8>(),
            Some(&7),
            "the test's connection has extras"
        );
    }
}
