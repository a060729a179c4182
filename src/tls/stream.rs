//! The server side of an HTTPS connection's TLS, on rustls's unbuffered API: rustls runs the
//! protocol, and the stream owns the buffers records are read into and written from. So an
//! idle connection (a parked HTTP/1.1 one, a quiet HTTP/2 one) can give them back
//! ([`TlsStream::release_buffers`]) and keep only its TLS state (about 2.5 KiB with the
//! record keys), where the buffered `ServerConnection` keeps a 4 KiB read buffer for the
//! connection's life.
//! (rustls 0.23 still encrypts each record into a `Vec` of its own, which the unbuffered API
//! then copies into the stream's buffer: one copy more per byte written than the buffered
//! API, measured in bench/README.md.)

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use rustls::server::{ServerConfig, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::io::poll_read_buf;

/// How much room a read from the socket is given at least: a whole ClientHello as a rule, and
/// what rustls's own buffer reads at a time.
const READ_ROOM: usize = 4096;

/// Records waiting in the read buffer, and a handshake message being joined from records, are
/// allowed this much: rustls's limit for a handshake message (64 KiB, a long client
/// certificate chain) plus one record.
const MAX_RECEIVED: usize = 0xffff + 16 * 1024 + 2048;

/// The most plaintext one write encrypts: a TLS record's worth several times over, so a
/// large body goes out in large writes without the stream holding more than this at once.
const MAX_WRITE: usize = 64 * 1024;

/// Room for each record's header, content type, padding and tag beyond its plaintext (22
/// bytes in TLS 1.3 with AES-GCM, 29 in TLS 1.2); a shortfall is asked for again exactly.
const RECORD_OVERHEAD: usize = 64;

/// Turns of the state machine that may encode what rustls queued before an error: the records
/// of a flight (ServerHello, ChangeCipherSpec) and the alert.
const MAX_ALERT_TURNS: usize = 8;

/// The largest plaintext of one record (RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 16 * 1024;

pub(crate) struct TlsStream<IO> {
    io: IO,
    conn: UnbufferedServerConnection,
    /// Records read from the socket and not yet processed. A `BytesMut`: the socket reads
    /// into its spare room, so a buffer taken anew is not zeroed first.
    incoming: BytesMut,
    /// Decrypted application data not yet read, from `plain_at` on. (A `u32`, so that with
    /// the flags below it takes one word: `plain` holds what one read's records decrypt to,
    /// a few records at most, never gigabytes.)
    plain: Vec<u8>,
    plain_at: u32,
    /// Records to send, from `sent` to `queued`.
    outgoing: Vec<u8>,
    sent: usize,
    queued: usize,
    /// The peer sent its close_notify: reads find the end of the stream.
    peer_closed: bool,
    close_queued: bool,
    /// A vectored write's pieces, gathered to be encrypted as one run of records.
    gathered: Vec<u8>,
}

/// What a turn of rustls's state machine is to send once application data may be sent.
#[derive(Clone, Copy)]
enum Out<'a> {
    Nothing,
    Data(&'a [u8]),
    CloseNotify,
}

/// What one turn of rustls's state machine came to.
enum Turn {
    /// It took or made something (records encoded, plaintext decrypted): go round again.
    Again,
    /// It needs more bytes from the peer (a handshake waiting for the client's next flight,
    /// or application data waiting for a record).
    NeedsInput,
    /// What was asked was encrypted: this many bytes of plaintext.
    Encrypted(usize),
    PeerClosed,
    Closed,
}

impl<IO> TlsStream<IO> {
    pub(crate) fn get_ref(&self) -> &IO {
        &self.io
    }

    pub(crate) fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The connection's TLS state: what was negotiated, the client's certificates.
    pub(crate) fn session(&self) -> &UnbufferedServerConnection {
        &self.conn
    }

    /// Whether application data has arrived and not been read yet (the client's first request
    /// came with its Finished).
    pub(crate) fn has_plaintext(&self) -> bool {
        (self.plain_at as usize) < self.plain.len()
    }

    /// Gives the buffers back to the allocator when nothing is in them: for a connection that
    /// waits for its client. The next read or write takes new ones.
    pub(crate) fn release_buffers(&mut self) {
        if self.incoming.is_empty() {
            self.incoming = BytesMut::new();
        }
        if !self.has_plaintext() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        if self.sent == self.queued {
            self.outgoing = Vec::new();
            (self.sent, self.queued) = (0, 0);
        }
        self.gathered = Vec::new();
    }

    /// One call of rustls's state machine over the records received; `send`: what to encrypt
    /// if application data may be sent (only asked once the handshake is done: a TLS 1.3
    /// server may send application data after its Finished, before the client's).
    fn turn(&mut self, send: Out<'_>) -> io::Result<Turn> {
        let Self {
            conn,
            incoming,
            plain,
            plain_at,
            outgoing,
            queued,
            peer_closed,
            ..
        } = self;
        let status = conn.process_tls_records(&mut incoming[..]);
        let discard = status.discard;
        let turn = match status.state.map_err(invalid_data)? {
            ConnectionState::ReadTraffic(mut records) => {
                while let Some(record) = records.next_record() {
                    let record = record.map_err(invalid_data)?;
                    if *plain_at as usize == plain.len() {
                        plain.clear();
                        *plain_at = 0;
                    }
                    plain.extend_from_slice(record.payload);
                }
                Turn::Again
            }
            ConnectionState::EncodeTlsData(mut data) => {
                // Into the room there is; the buffer grows only by what a record needs.
                let room = &mut outgoing[*queued..];
                let n = match data.encode(room) {
                    Ok(n) => n,
                    Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                        let room = reserve(outgoing, *queued, required_size);
                        data.encode(room).map_err(invalid_data)?
                    }
                    Err(e) => return Err(invalid_data(e)),
                };
                *queued += n;
                Turn::Again
            }
            // What was encoded is queued ahead of anything written later, so it counts as sent.
            ConnectionState::TransmitTlsData(data) => {
                data.done();
                Turn::Again
            }
            ConnectionState::WriteTraffic(mut traffic) => match send {
                Out::Data(data) => {
                    let data = &data[..data.len().min(MAX_WRITE)];
                    let records = data.len().div_ceil(MAX_FRAGMENT).max(1);
                    let room = reserve(outgoing, *queued, data.len() + records * RECORD_OVERHEAD);
                    let n = match traffic.encrypt(data, room) {
                        Ok(n) => n,
                        Err(EncryptError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => {
                            let room = reserve(outgoing, *queued, required_size);
                            traffic.encrypt(data, room).map_err(invalid_data)?
                        }
                        Err(e) => return Err(invalid_data(e)),
                    };
                    *queued += n;
                    Turn::Encrypted(data.len())
                }
                Out::CloseNotify => {
                    let room = reserve(outgoing, *queued, RECORD_OVERHEAD);
                    *queued += traffic.queue_close_notify(room).map_err(invalid_data)?;
                    Turn::Encrypted(0)
                }
                Out::Nothing => Turn::NeedsInput,
            },
            ConnectionState::BlockedHandshake => Turn::NeedsInput,
            ConnectionState::PeerClosed => {
                *peer_closed = true;
                Turn::PeerClosed
            }
            ConnectionState::Closed => Turn::Closed,
            // Early data is never accepted (`max_early_data_size` is 0), and the enum is
            // non-exhaustive.
            _ => Turn::NeedsInput,
        };
        incoming.advance(discard);
        Ok(turn)
    }
}

/// `outgoing` with room for `need` bytes from `at` on; the room.
fn reserve(outgoing: &mut Vec<u8>, at: usize, need: usize) -> &mut [u8] {
    if outgoing.len() < at + need {
        outgoing.resize(at + need, 0);
    }
    &mut outgoing[at..]
}

fn invalid_data(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<IO: AsyncRead + AsyncWrite + Unpin> TlsStream<IO> {
    /// Runs the server side of the handshake over `io`. `received`: bytes already read from
    /// it (the ClientHello, when the SNI was looked at first).
    pub(crate) async fn accept(
        io: IO,
        config: Arc<ServerConfig>,
        received: BytesMut,
    ) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(config).map_err(invalid_data)?;
        let mut stream = TlsStream {
            io,
            conn,
            // Its room stays: the socket's next reads go into it.
            incoming: received,
            plain: Vec::new(),
            plain_at: 0,
            outgoing: Vec::new(),
            sent: 0,
            queued: 0,
            peer_closed: false,
            close_queued: false,
            gathered: Vec::new(),
        };
        match std::future::poll_fn(|cx| stream.poll_handshake(cx)).await {
            Ok(()) => Ok(stream),
            Err(e) => {
                let waker = futures_util::task::noop_waker();
                stream.send_alert(&mut Context::from_waker(&waker));
                Err(e)
            }
        }
    }

    /// After rustls refused what the peer sent: the alert that says why, when it made one,
    /// tried once without waiting (the connection is closed next).
    fn send_alert(&mut self, cx: &mut Context<'_>) {
        // Whatever rustls queued before it failed (a TLS 1.3 ServerHello, say) goes first:
        // the alert is encrypted with the keys that come from it.
        for _ in 0..MAX_ALERT_TURNS {
            if !matches!(self.turn(Out::Nothing), Ok(Turn::Again)) {
                break;
            }
        }
        let _ = self.poll_send(cx);
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Turn::Again = self.turn(Out::Nothing)? {
                continue;
            }
            // Each flight goes out before the next is waited for.
            ready!(self.poll_send(cx))?;
            // A client may close right after its Finished (the close_notify in the same read):
            // the handshake is done, and the first read finds the end.
            if !self.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            if self.peer_closed {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            ready!(self.poll_receive(cx))?;
        }
    }

    /// Writes the queued records to the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.queued {
            let out = &self.outgoing[self.sent..self.queued];
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        (self.sent, self.queued) = (0, 0);
        Poll::Ready(Ok(()))
    }

    /// Reads more records from the socket. The end of the stream is an error: a peer that
    /// closes cleanly sends its close_notify first.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.incoming.len() >= MAX_RECEIVED {
            return Poll::Ready(Err(invalid_data(
                "TLS records over 80 KiB waiting unprocessed (rustls's 64 KiB handshake-message limit and a record)",
            )));
        }
        self.incoming.reserve(READ_ROOM);
        match ready!(poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.incoming
        ))? {
            0 => Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Copies decrypted data out; whether there was any.
    fn take_plaintext(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let waiting = &self.plain[self.plain_at as usize..];
        if waiting.is_empty() {
            return false;
        }
        let n = waiting.len().min(buf.remaining());
        buf.put_slice(&waiting[..n]);
        // `plain_at + n` is at most `plain.len()`, far under 4 GiB (see `plain_at`).
        self.plain_at += n as u32;
        true
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.take_plaintext(buf) || this.peer_closed {
                return Poll::Ready(Ok(()));
            }
            match this.turn(Out::Nothing) {
                Ok(Turn::Again) => continue,
                Ok(Turn::PeerClosed | Turn::Closed) => return Poll::Ready(Ok(())),
                Ok(Turn::NeedsInput | Turn::Encrypted(_)) => {}
                Err(e) => {
                    this.send_alert(cx);
                    return Poll::Ready(Err(e));
                }
            }
            // Records made while reading (a KeyUpdate's answer, an alert) go out with the
            // next write if the socket will not take them now.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            ready!(this.poll_receive(cx))?;
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // One write's records at a time: the caller waits while the socket is full.
        ready!(this.poll_send(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = loop {
            match this.turn(Out::Data(data))? {
                Turn::Encrypted(n) => break n,
                Turn::Again | Turn::PeerClosed => continue,
                Turn::Closed => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Turn::NeedsInput => {
                    return Poll::Ready(Err(invalid_data(
                        "TLS connection not in a state that sends application data",
                    )));
                }
            }
        };
        // Sent now as far as the socket takes it; the rest waits for the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    /// Pieces that fit in one record together (a response's head and a small body) are
    /// gathered and encrypted as one: a record per piece would cost an AEAD call and 22 bytes
    /// each. A larger piece is encrypted where it is, without a copy.
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut pieces = bufs.iter().filter(|b| !b.is_empty()).peekable();
        let Some(first) = pieces.peek().copied() else {
            return Poll::Ready(Ok(0));
        };
        let mut total = 0;
        let fit = pieces.take_while(|b| {
            total += b.len();
            total <= MAX_FRAGMENT
        });
        if fit.count() < 2 {
            return Pin::new(this).poll_write(cx, first);
        }
        ready!(this.poll_send(cx))?;
        let mut gathered = std::mem::take(&mut this.gathered);
        gathered.clear();
        for b in bufs {
            if gathered.len() + b.len() > MAX_FRAGMENT {
                break;
            }
            gathered.extend_from_slice(b);
        }
        let res = Pin::new(&mut *this).poll_write(cx, &gathered);
        this.gathered = gathered;
        res
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    /// Sends close_notify, then shuts the socket's write side.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while !this.close_queued {
            match this.turn(Out::CloseNotify)? {
                Turn::Again | Turn::PeerClosed => continue,
                Turn::Encrypted(_) | Turn::Closed | Turn::NeedsInput => this.close_queued = true,
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
    use tokio_rustls::client::TlsStream as ClientStream;

    /// A server configuration for `a.test` (offering `alpn`), and a client that trusts it.
    fn configs(alpn: &[&[u8]]) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let provider = crate::tls::provider();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap();
        server.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    async fn connect(
        server: Arc<ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> (TlsStream<DuplexStream>, ClientStream<DuplexStream>) {
        let (near, far) = duplex(1 << 20);
        let accepting = tokio::spawn(TlsStream::accept(far, server, BytesMut::new()));
        let name = ServerName::try_from("a.test").unwrap();
        let client = tokio_rustls::TlsConnector::from(client)
            .connect(name, near)
            .await
            .unwrap();
        (accepting.await.unwrap().unwrap(), client)
    }

    #[test]
    fn an_https_connections_stream_fits_jemallocs_1280_byte_class() {
        // Every idle HTTPS connection keeps its stream boxed; the next class up is 1,536.
        let size = std::mem::size_of::<TlsStream<crate::listener::wire::Wire>>();
        assert!(size <= 1280, "{size} bytes");
    }

    #[tokio::test]
    async fn requests_and_answers_cross_and_the_buffers_go_while_it_waits() {
        let (server, client) = configs(&[b"h2"]);
        let mut client = (*client).clone();
        client.alpn_protocols = vec![b"h2".to_vec()];
        let (mut s, mut c) = connect(server, Arc::new(client)).await;
        assert_eq!(s.session().alpn_protocol(), Some(&b"h2"[..]));
        assert!(!s.session().is_handshaking());
        for round in 0..2 {
            c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            c.flush().await.unwrap();
            let mut req = [0u8; 18];
            s.read_exact(&mut req).await.unwrap();
            assert_eq!(&req, b"GET / HTTP/1.1\r\n\r\n");
            // A head and a body, written together: one run of records.
            let bufs = [
                IoSlice::new(b"HTTP/1.1 200 OK\r\n\r\n"),
                IoSlice::new(b"hello"),
            ];
            let n = std::future::poll_fn(|cx| Pin::new(&mut s).poll_write_vectored(cx, &bufs))
                .await
                .unwrap();
            assert_eq!(n, 24);
            s.flush().await.unwrap();
            let mut res = [0u8; 24];
            c.read_exact(&mut res).await.unwrap();
            assert_eq!(&res, b"HTTP/1.1 200 OK\r\n\r\nhello", "round {round}");
            s.release_buffers();
            assert_eq!(
                (
                    s.incoming.capacity(),
                    s.plain.capacity(),
                    s.outgoing.capacity()
                ),
                (0, 0, 0),
                "a waiting connection holds no buffer"
            );
        }
    }

    #[tokio::test]
    async fn large_bodies_arrive_whole_both_ways() {
        let (server, client) = configs(&[]);
        let (mut s, mut c) = connect(server, client).await;
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let expected = body.clone();
        let upload = tokio::spawn(async move {
            c.write_all(&body).await.unwrap();
            c.flush().await.unwrap();
            let mut back = vec![0u8; body.len()];
            c.read_exact(&mut back).await.unwrap();
            (back, c)
        });
        let mut got = vec![0u8; expected.len()];
        s.read_exact(&mut got).await.unwrap();
        assert!(got == expected, "the upload arrived changed");
        s.write_all(&got).await.unwrap();
        s.flush().await.unwrap();
        let (back, _open) = upload.await.unwrap();
        assert!(back == expected, "the download arrived changed");
        // The buffers grew for the large records, and go when the connection waits.
        assert!(s.outgoing.len() > MAX_FRAGMENT);
        s.release_buffers();
        assert_eq!((s.incoming.capacity(), s.outgoing.len()), (0, 0));
    }

    #[tokio::test]
    async fn close_notify_ends_the_stream_cleanly_each_way() {
        let (server, client) = configs(&[]);
        let (mut s, mut c) = connect(server, client).await;
        c.shutdown().await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).await.unwrap(), 0);
        s.write_all(b"bye").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
    }

    #[tokio::test]
    async fn a_client_that_closes_right_after_its_finished_has_done_its_handshake() {
        let (server, client) = configs(&[]);
        let (near, far) = duplex(1 << 16);
        let accepting = tokio::spawn(TlsStream::accept(far, server, BytesMut::new()));
        let name = ServerName::try_from("a.test").unwrap();
        let mut c = tokio_rustls::TlsConnector::from(client)
            .connect(name, near)
            .await
            .unwrap();
        // The close_notify waits in the pipe beside the Finished: the server reads both at once.
        c.shutdown().await.unwrap();
        let mut s = accepting.await.unwrap().unwrap();
        let mut rest = Vec::new();
        assert_eq!(s.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_connection_cut_without_close_notify_is_an_error_not_an_end() {
        let (server, client) = configs(&[]);
        let (mut s, c) = connect(server, client).await;
        let (tcp, _) = c.into_inner();
        drop(tcp);
        let mut buf = [0u8; 16];
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_refused_handshake_tells_the_client_why() {
        let (server, client) = configs(&[b"h2"]);
        let mut client = (*client).clone();
        client.alpn_protocols = vec![b"spdy/3".to_vec()];
        let (near, far) = duplex(1 << 16);
        let accepting = tokio::spawn(TlsStream::accept(far, server, BytesMut::new()));
        let name = ServerName::try_from("a.test").unwrap();
        let refused = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, near)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("NoApplicationProtocol"),
            "the client was not told: {refused}"
        );
        let e = accepting.await.unwrap().err().unwrap();
        let rustls_error = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
        assert_eq!(rustls_error, Some(&rustls::Error::NoApplicationProtocol));
    }

    #[tokio::test]
    async fn bytes_read_before_the_handshake_start_it() {
        let (server, client) = configs(&[]);
        let (near, mut far) = duplex(1 << 16);
        let name = ServerName::try_from("a.test").unwrap();
        let connecting = tokio::spawn(tokio_rustls::TlsConnector::from(client).connect(name, near));
        let mut hello = BytesMut::with_capacity(4096);
        far.read_buf(&mut hello).await.unwrap();
        let mut s = TlsStream::accept(far, server, hello).await.unwrap();
        let mut c = connecting.await.unwrap().unwrap();
        c.write_all(b"ping").await.unwrap();
        c.flush().await.unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    }
}
