//! The socket under an HTTPS connection's TLS, saving it two system calls per connection:
//! - The bytes read to tell TLS from plain HTTP (the ClientHello, as a rule) are handed on
//!   (to the TLS handshake, or as [`PlainWire`]'s first bytes), where a peek would have read
//!   them twice.
//! - TLS 1.3 session tickets, which rustls writes as soon as the client's Finished arrives, wait
//!   for the connection's first write (its first response, or HTTP/2's SETTINGS) and go out in
//!   the same `writev`. [`Wire::settle`] sends them at once when no request came with the
//!   Finished (a client that resumes later must get them), and a connection dropped with bytes
//!   still held (a handshake's last alert) tries to send them on its way out.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TLS record's type byte for application data: after the server's first flight, every
/// TLS 1.3 record has it on the outside, tickets included (RFC 8446 §5.2).
const APPLICATION_DATA: u8 = 0x17;

/// A TLS record header: type, version, length (RFC 8446 §5.1).
const RECORD_HEADER: usize = 5;

pub(crate) struct Wire {
    tcp: TcpStream,
    writes: Writes,
}

/// A plain-HTTP connection on the TLS port: the bytes read to tell it from TLS are read again
/// before the socket. (Kept out of [`Wire`], which every idle HTTPS connection holds.)
pub(crate) struct PlainWire {
    tcp: TcpStream,
    read_back: Bytes,
}

/// What the write side is doing with the bytes it is given.
enum Writes {
    /// Handshake: bytes go out as they come; the records are followed so that a write can be
    /// known to start one.
    Handshake {
        records: RecordScan,
        /// A read brought bytes since the last write: a write now answers the client, it does
        /// not carry on a flight the socket took only part of.
        read_since_write: bool,
    },
    /// Post-handshake records held for the next write. (A boxed slice, not a `Vec`: this enum
    /// is then 24 bytes, and every idle HTTPS connection's TLS stream 1,280, not 1,288.)
    Holding(Box<[u8]>),
    /// Bytes go out as they come.
    Through,
}

impl Wire {
    /// The socket of a TLS connection (what was read from it already goes to the handshake).
    pub(crate) fn tls(tcp: TcpStream) -> Self {
        let records = RecordScan::default();
        Wire {
            tcp,
            writes: Writes::Handshake {
                records,
                read_since_write: false,
            },
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The handshake is over. With `request_waiting` (the client's first bytes came with its
    /// Finished) what is held goes out with the response; otherwise it goes now.
    pub(crate) async fn settle(&mut self, request_waiting: bool) -> io::Result<()> {
        match self.writes {
            Writes::Handshake { .. } => self.writes = Writes::Through,
            Writes::Holding(_) if !request_waiting => {
                std::future::poll_fn(|cx| self.poll_release(cx, &[])).await?;
            }
            Writes::Holding(_) | Writes::Through => {}
        }
        Ok(())
    }

    fn note_read(&mut self, n: usize) {
        if let Writes::Handshake {
            read_since_write, ..
        } = &mut self.writes
            && n > 0
        {
            *read_since_write = true;
        }
    }

    /// During the handshake: whether this write is post-handshake records to hold (a reply to
    /// the client that starts with an application-data record). Otherwise its bytes are
    /// followed, once written, by [`Self::note_written`].
    fn holds(&self, first: Option<u8>) -> bool {
        match &self.writes {
            Writes::Handshake {
                records,
                read_since_write,
            } => *read_since_write && records.at_boundary() && first == Some(APPLICATION_DATA),
            _ => false,
        }
    }

    fn note_written(&mut self, bufs: &[IoSlice<'_>], mut n: usize) {
        if let Writes::Handshake {
            records,
            read_since_write,
        } = &mut self.writes
        {
            *read_since_write = false;
            for b in bufs {
                let k = b.len().min(n);
                records.feed(&b[..k]);
                n -= k;
            }
        }
    }

    /// Writes what is held and then as much of `bufs` as the socket takes; the count is of
    /// `bufs` only.
    fn poll_release(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        while let Writes::Holding(held) = &mut self.writes {
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(held));
            all.extend_from_slice(bufs);
            let n = ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            if n < held.len() {
                *held = held[n..].into();
                continue;
            }
            let past = n - held.len();
            self.writes = Writes::Through;
            if past > 0 || bufs.iter().all(|b| b.is_empty()) {
                return Poll::Ready(Ok(past));
            }
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
        this.note_read(buf.filled().len() - before);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.writes {
            Writes::Through => Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs),
            Writes::Holding(_) => this.poll_release(cx, bufs),
            Writes::Handshake { .. } => {
                let first = bufs.iter().find_map(|b| b.first().copied());
                if this.holds(first) {
                    // Sized first: the box is made without a reallocation.
                    let mut held = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum());
                    bufs.iter().for_each(|b| held.extend_from_slice(b));
                    let n = held.len();
                    this.writes = Writes::Holding(held.into_boxed_slice());
                    return Poll::Ready(Ok(n));
                }
                let n = ready!(Pin::new(&mut this.tcp).poll_write_vectored(cx, bufs))?;
                this.note_written(bufs, n);
                Poll::Ready(Ok(n))
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Held bytes stay held: they are waiting for the next write, not lost.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if matches!(self.writes, Writes::Holding(_)) {
            ready!(self.poll_release(cx, &[]))?;
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Drop for Wire {
    /// A handshake that failed after the client's Finished leaves its alert held: one try to
    /// send it, without waiting, before the socket closes.
    fn drop(&mut self) {
        if let Writes::Holding(held) = &self.writes {
            let _ = self.tcp.try_write(held);
        }
    }
}

impl PlainWire {
    /// The socket of a plain-HTTP connection, `read_back` being what was read from it already.
    pub(crate) fn new(tcp: TcpStream, read_back: Bytes) -> Self {
        PlainWire { tcp, read_back }
    }
}

impl AsyncRead for PlainWire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.read_back.is_empty() {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        let n = this.read_back.len().min(buf.remaining());
        buf.put_slice(&this.read_back[..n]);
        this.read_back.advance(n);
        if this.read_back.is_empty() {
            // Its buffer goes with the last handle on it.
            this.read_back = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for PlainWire {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Follows the record framing of the bytes written, to know where a record starts.
#[derive(Default)]
struct RecordScan {
    header: [u8; RECORD_HEADER],
    /// Bytes of the current record's header seen so far (at most 5).
    have: u8,
    /// Bytes of the current record's body still to come (at most 2^16 - 1).
    body_left: u16,
}

impl RecordScan {
    fn at_boundary(&self) -> bool {
        self.have == 0 && self.body_left == 0
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let k = usize::from(self.body_left).min(data.len());
                // `k` is at most `body_left`, a u16.
                self.body_left -= k as u16;
                data = &data[k..];
                continue;
            }
            let have = usize::from(self.have);
            let k = (RECORD_HEADER - have).min(data.len());
            self.header[have..have + k].copy_from_slice(&data[..k]);
            data = &data[k..];
            if have + k == RECORD_HEADER {
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]);
                self.have = 0;
            } else {
                // Under RECORD_HEADER (5).
                self.have = (have + k) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::time::timeout;

    /// A TLS-side wire and the client's end of its socket, over loopback.
    async fn pair() -> (Wire, TcpStream) {
        let (server, client) = sockets().await;
        (Wire::tls(server), client)
    }

    /// Both ends of a loopback TCP connection: the server's, then the client's.
    async fn sockets() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    /// A record of `kind` with `len` bytes of body.
    fn record(kind: u8, len: u16) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.resize(RECORD_HEADER + usize::from(len), kind);
        r
    }

    /// What the client can read within a moment (nothing: empty).
    async fn arrived(client: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(Ok(n @ 1..)) = timeout(Duration::from_millis(100), client.read(&mut buf)).await
        {
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// The server's flight, the client's Finished, then the tickets.
    async fn handshake(wire: &mut Wire, client: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
        let flight = [
            record(0x16, 90),
            record(0x14, 1),
            record(APPLICATION_DATA, 300),
        ]
        .concat();
        wire.write_all(&flight).await.unwrap();
        assert_eq!(arrived(client).await, flight);
        client
            .write_all(&record(APPLICATION_DATA, 53))
            .await
            .unwrap();
        let mut finished = [0u8; 58];
        wire.read_exact(&mut finished).await.unwrap();
        let tickets = [record(APPLICATION_DATA, 200), record(APPLICATION_DATA, 200)].concat();
        wire.write_all(&tickets).await.unwrap();
        wire.flush().await.unwrap();
        (flight, tickets)
    }

    #[tokio::test]
    async fn plain_http_reads_the_bytes_read_first_again_and_holds_nothing() {
        let (server, mut client) = sockets().await;
        let mut wire = PlainWire::new(server, Bytes::from_static(b"GET"));
        client.write_all(b" / HTTP/1.1").await.unwrap();
        let mut got = [0u8; 14];
        wire.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1");
        let bytes = record(APPLICATION_DATA, 10);
        wire.write_all(&bytes).await.unwrap();
        assert_eq!(arrived(&mut client).await, bytes);
    }

    #[tokio::test]
    async fn tickets_wait_for_the_first_response_and_go_out_before_it() {
        let (mut wire, mut client) = pair().await;
        let (_, tickets) = handshake(&mut wire, &mut client).await;
        assert!(
            arrived(&mut client).await.is_empty(),
            "the tickets went alone"
        );
        wire.settle(true).await.unwrap();
        assert!(arrived(&mut client).await.is_empty());
        let response = record(APPLICATION_DATA, 100);
        wire.write_all(&response).await.unwrap();
        assert_eq!(arrived(&mut client).await, [tickets, response].concat());
    }

    #[tokio::test]
    async fn tickets_go_at_once_when_no_request_came_with_the_finished() {
        let (mut wire, mut client) = pair().await;
        let (_, tickets) = handshake(&mut wire, &mut client).await;
        wire.settle(false).await.unwrap();
        assert_eq!(arrived(&mut client).await, tickets);
    }

    #[tokio::test]
    async fn what_is_held_when_the_connection_drops_is_sent_on_its_way_out() {
        let (mut wire, mut client) = pair().await;
        let (_, alert) = handshake(&mut wire, &mut client).await;
        drop(wire);
        assert_eq!(arrived(&mut client).await, alert);
    }

    #[tokio::test]
    async fn the_rest_of_a_flight_is_never_held() {
        // A flight whose write stopped at a record boundary: what follows, with no read in
        // between, goes at once even though it starts with an application-data record.
        let (mut wire, mut client) = pair().await;
        let hello = record(0x16, 90);
        wire.write_all(&hello).await.unwrap();
        let rest = record(APPLICATION_DATA, 300);
        wire.write_all(&rest).await.unwrap();
        assert_eq!(arrived(&mut client).await, [hello, rest].concat());
        // A write that starts inside a record is not held either, read or not.
        let (mut wire, mut client) = pair().await;
        let flight = record(0x16, 90);
        wire.write_all(&flight[..40]).await.unwrap();
        client.write_all(b"x").await.unwrap();
        wire.read_exact(&mut [0u8; 1]).await.unwrap();
        let mut tail = flight[40..].to_vec();
        tail[0] = APPLICATION_DATA;
        wire.write_all(&tail).await.unwrap();
        assert_eq!(arrived(&mut client).await.len(), flight.len());
    }

    #[test]
    fn the_record_scan_finds_boundaries_across_split_writes() {
        let mut scan = RecordScan::default();
        let r = [record(0x16, 3), record(0x17, 2)].concat();
        for (i, b) in r.iter().enumerate() {
            assert_eq!(scan.at_boundary(), i == 0 || i == 8, "at byte {i}");
            scan.feed(std::slice::from_ref(b));
        }
        assert!(scan.at_boundary());
    }
}
