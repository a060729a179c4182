//! The functions every request goes through, reachable from the micro-benchmarks in
//! `benches/` (issue 16) so that a regression shows before a full benchmark run. Not an API:
//! thin wrappers over crate-private code, hidden from the documentation.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::{HeaderMap, HeaderValue, Request};

/// Host (or SNI) → site, the exact-before-wildcard table both TLS and HTTP use.
pub struct Names(crate::certs::NameTable<usize>);

impl Names {
    pub fn new(sites: &[&[&str]]) -> Self {
        let mut table = crate::certs::NameTable::new(true);
        for (i, names) in sites.iter().enumerate() {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            table.insert(&names, i);
        }
        Names(table)
    }

    pub fn site(&self, host: &str) -> Option<usize> {
        self.0.get(Some(host)).copied()
    }
}

/// The request-side header rules of the proxy.
/// `peer_value`: [`peer_value`]`(peer)`, made once per connection; `host`: the client's Host.
pub fn proxy_request_headers(
    h: &mut HeaderMap,
    (peer, peer_value): (IpAddr, &HeaderValue),
    host: &HeaderValue,
    trusted: bool,
) {
    crate::http::headers::remove_hop_by_hop(h);
    crate::http::headers::add_forwarding(h, (peer, peer_value), host, trusted);
}

/// A client's address as the forwarding headers carry it.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    crate::http::headers::peer_value(peer)
}

/// The response-side rule that marks cookies Secure.
pub fn secure_cookies(h: &mut HeaderMap) {
    crate::http::headers::secure_cookies(h);
}

/// The HTTP/1.1 framing check that follows every request stream.
pub struct Framing(crate::listener::FramingScanner);

impl Default for Framing {
    fn default() -> Self {
        Framing(crate::listener::FramingScanner::new(Arc::new(
            AtomicU64::new(0),
        )))
    }
}

impl Framing {
    pub fn feed(&mut self, data: &[u8]) {
        self.0.feed(data);
    }
}

/// A clock read: `Instant::now()` (`precise`) or the coarse clock the connections stamp
/// their activity with (`coarse`).
pub fn clock_read(coarse: bool) -> std::time::Instant {
    match coarse {
        true => crate::clock::coarse_instant(),
        false => std::time::Instant::now(),
    }
}

/// The Date a kept file's HTTP/2 answer is stamped with (made once a second per thread).
pub fn http_date() -> HeaderValue {
    crate::clock::http_date()
}

/// One turn of an HTTP/2 connection, as h2load's `-m10` makes it: ten GET requests read in
/// one HEADERS frame each, answered at once with a kept file's head and 1 KiB body.
pub struct H2Turn {
    conn: crate::http2::Conn<http_body_util::Full<bytes::Bytes>>,
    requests: bytes::Bytes,
    head: http::HeaderMap,
    next_id: u32,
}

impl Default for H2Turn {
    fn default() -> Self {
        use crate::http2::frame;
        let config = crate::http2::Config {
            max_concurrent_streams: 128,
            max_header_list: 16 << 10,
            stream_window: 1 << 20,
            conn_window: 1 << 20,
            connect_protocol: true,
        };
        let mut conn = crate::http2::Conn::new(config, Default::default());
        let mut buf = bytes::BytesMut::from(frame::PREFACE);
        frame::settings(&mut buf, &[]);
        let _ = conn.recv(&mut buf, &mut Vec::new());
        // :method GET, :scheme https, :path /index.html (static), :authority and user-agent as
        // literals without indexing.
        let mut block = vec![0x82, 0x87, 0x85, 0x01, 6];
        block.extend_from_slice(b"a.test");
        block.extend_from_slice(&[0x0f, 0x2b, 13]);
        block.extend_from_slice(b"h2load nghttp");
        let mut head = http::HeaderMap::new();
        for (name, value) in [
            ("date", "Thu, 03 Dec 2026 17:36:56 GMT"),
            ("etag", "\"400-18edcefd69b4abe1\""),
            ("last-modified", "Thu, 03 Dec 2026 17:36:54 GMT"),
            ("accept-ranges", "bytes"),
            ("content-type", "text/html; charset=utf-8"),
            ("content-length", "1024"),
            ("vary", "accept-encoding"),
            ("strict-transport-security", "max-age=31536000"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
        ] {
            head.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        H2Turn {
            conn,
            requests: block.into(),
            head,
            next_id: 1,
        }
    }
}

impl H2Turn {
    pub fn run(&mut self) {
        use crate::http2::{Event, frame};
        let mut buf = bytes::BytesMut::new();
        for _ in 0..10 {
            frame::put_head(
                &mut buf,
                self.requests.len(),
                frame::kind::HEADERS,
                0x5,
                self.next_id,
            );
            buf.extend_from_slice(&self.requests);
            self.next_id += 2;
        }
        let mut events = Vec::new();
        let _ = self.conn.recv(&mut buf, &mut events);
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        for Event::Request(id, _req) in events {
            let mut res = http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(&[b'a'; 1024]),
            ));
            *res.headers_mut() = self.head.clone();
            self.conn.respond(id, res, &mut cx);
        }
        self.conn.out.clear();
    }
}

/// A static site's lookup: path checks, the hot-file cache or the disk, headers.
pub struct StaticSite(crate::http::static_files::StaticFiles);

impl StaticSite {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let options = crate::config::StaticOptions::default();
        crate::http::static_files::StaticFiles::new(root, options, false, Default::default())
            .map(StaticSite)
    }

    /// The status and body length of a GET for `path`: from memory at once when the file is
    /// kept (as the router asks first), else by the full path.
    pub async fn get(&self, path: &str) -> (u16, Option<u64>) {
        let req = Request::get(path).body(()).unwrap_or_default();
        let res = match self.0.at_once(&req, &[]) {
            Some(res) => res,
            None => self.0.serve(&req, &[]).await,
        };
        let len = http_body::Body::size_hint(res.body()).exact();
        (res.status().as_u16(), len)
    }
}

/// The size of `data` compressed in one coding (`zstd`, `br` or `gzip`) at `level`, through the
/// same streaming encoder responses go through.
pub async fn compressed_size(coding: &str, level: i32, data: &[u8]) -> usize {
    use crate::http::compression::{Coding, Encoded};
    use http_body_util::BodyExt;
    let Some(coding) = Coding::ALL.into_iter().find(|c| c.token() == coding) else {
        return 0;
    };
    let body = crate::http::full(bytes::Bytes::copy_from_slice(data));
    match Encoded::with_level(body, coding, level).collect().await {
        Ok(done) => done.to_bytes().len(),
        Err(_) => 0,
    }
}

/// TLS 1.3 handshakes in memory, with candado's provider on the server side: a P-256
/// certificate (what `cert issue` and ACME make) and stateless tickets, as served. The
/// server's first flight (ServerHello to Finished: key exchange and signature) is measured by
/// replaying one recorded ClientHello to fresh connections.
pub struct TlsHandshakes {
    server: Arc<rustls::ServerConfig>,
    roots: Arc<rustls::RootCertStore>,
}

/// Which key exchange a client offers, as its first choice.
#[derive(Clone, Copy, Debug)]
pub enum Offer {
    /// Only X25519 (curl with OpenSSL 3.0, the benchmark's load generator).
    X25519,
    /// X25519MLKEM768 first, with an X25519 share too (Chrome, Firefox, Go).
    Hybrid,
}

impl TlsHandshakes {
    pub fn new() -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("P-256 key generation");
        let cert = rcgen::CertificateParams::new(vec!["bench.test".to_owned()])
            .and_then(|p| p.self_signed(&key))
            .expect("a self-signed certificate");
        let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let mut server = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .and_then(|b| {
                b.with_no_client_auth()
                    .with_single_cert(vec![cert.der().clone()], der)
            })
            .expect("a server config");
        server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().expect("a ticketer");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).expect("a root");
        TlsHandshakes {
            server: Arc::new(server),
            roots: Arc::new(roots),
        }
    }

    /// A client config that offers `offer` and keeps the tickets it gets.
    pub fn client(&self, offer: Offer) -> Arc<rustls::ClientConfig> {
        use rustls::crypto::aws_lc_rs::kx_group::{X25519, X25519MLKEM768};
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.kx_groups = match offer {
            Offer::X25519 => vec![X25519],
            Offer::Hybrid => vec![X25519MLKEM768, X25519],
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A whole handshake, client and server, then the server's tickets read by the client
    /// (so its next hello offers one). Returns the negotiated group and the kind of handshake.
    pub fn handshake(
        &self,
        client: &Arc<rustls::ClientConfig>,
    ) -> (String, Option<rustls::HandshakeKind>) {
        let name = rustls_pki_types::ServerName::try_from("bench.test").expect("a name");
        let mut c = rustls::ClientConnection::new(client.clone(), name).expect("client");
        let mut s = rustls::ServerConnection::new(self.server.clone()).expect("server");
        pump(&mut c, &mut s);
        let group = s
            .negotiated_key_exchange_group()
            .map_or_else(String::new, |g| format!("{:?}", g.name()));
        (group, s.handshake_kind())
    }

    /// The ClientHello a fresh connection of `client` sends (with a ticket if it has one).
    pub fn client_hello(&self, client: &Arc<rustls::ClientConfig>) -> Vec<u8> {
        let name = rustls_pki_types::ServerName::try_from("bench.test").expect("a name");
        let mut c = rustls::ClientConnection::new(client.clone(), name).expect("client");
        let mut hello = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut hello).expect("write to memory");
        }
        hello
    }

    /// The server's whole answer to `hello`: the bytes of its first flight.
    pub fn server_first_flight(&self, hello: &[u8]) -> usize {
        let mut s = rustls::ServerConnection::new(self.server.clone()).expect("server");
        feed(&mut s, hello);
        let mut out = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut out).expect("write to memory");
        }
        out.len()
    }
}

impl Default for TlsHandshakes {
    fn default() -> Self {
        Self::new()
    }
}

fn feed<C, D>(conn: &mut C, mut bytes: &[u8])
where
    C: std::ops::DerefMut<Target = rustls::ConnectionCommon<D>>,
    D: rustls::SideData,
{
    while !bytes.is_empty() {
        conn.read_tls(&mut bytes).expect("read from memory");
        conn.process_new_packets().expect("a valid flight");
    }
}

/// Moves bytes both ways until neither side has more to say.
fn pump(c: &mut rustls::ClientConnection, s: &mut rustls::ServerConnection) {
    loop {
        let mut moved = false;
        if c.wants_write() {
            let mut buf = Vec::new();
            c.write_tls(&mut buf).expect("write to memory");
            feed(s, &buf);
            moved = true;
        }
        if s.wants_write() {
            let mut buf = Vec::new();
            s.write_tls(&mut buf).expect("write to memory");
            feed(c, &buf);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

/// Feeds `data` to a fresh HTTP/2 connection after its preface, cut in two reads at `cut`, and
/// answers each request it yields (for the fuzzer: no input may panic or end with more
/// than the protocol allows gathered to send).
pub fn http2_feed(data: &[u8], cut: usize) {
    use crate::http2::{Event, frame};
    let config = crate::http2::Config {
        max_concurrent_streams: 8,
        max_header_list: 4096,
        stream_window: 65_535,
        conn_window: 65_535,
        connect_protocol: true,
    };
    let mut conn =
        crate::http2::Conn::<http_body_util::Full<bytes::Bytes>>::new(config, Default::default());
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut buf = bytes::BytesMut::from(frame::PREFACE);
    let cut = cut.min(data.len());
    for part in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(part);
        let mut events = Vec::new();
        let _ = conn.recv(&mut buf, &mut events);
        for Event::Request(id, _) in events {
            let body = http_body_util::Full::new(bytes::Bytes::from_static(b"ok"));
            conn.respond(id, http::Response::new(body), &mut cx);
        }
        conn.apply_releases();
        conn.pump_all(&mut cx, usize::MAX);
        conn.out.clear();
    }
}
