//! Plain TCP programs for the tunnels to carry, each on 127.0.0.1:0 in its own threads (they
//! live until the test process ends): a line chat, an echo that answers after EOF, an upstream
//! that records what it receives (PROXY protocol v2 parsed by hand), a refusing port, and a
//! rustls client that can present a client certificate and close its write side.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::{ClientConfig, RootCertStore};

use super::client::{Tls, connect};
use super::pki::Leaf;

/// Polls `done` every 20 ms for at most `timeout`.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts connections forever, counting them, handing each to `handle` on its own thread.
fn serve(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let handle = handle.clone();
            std::thread::spawn(move || handle(tcp));
        }
    });
    (addr, accepted)
}

/// A line chat: every line a client sends goes to every connected client (the sender too).
pub struct Chat {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    joined: Arc<AtomicUsize>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Chat {
    pub fn start() -> Chat {
        let clients: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let heard = lines.clone();
        let joined = Arc::new(AtomicUsize::new(0));
        let members = joined.clone();
        let (addr, accepted) = serve(move |tcp| {
            clients.lock().unwrap().push(tcp.try_clone().unwrap());
            members.fetch_add(1, Ordering::SeqCst);
            for line in BufReader::new(tcp).lines().map_while(Result::ok) {
                heard.lock().unwrap().push(line.clone());
                clients
                    .lock()
                    .unwrap()
                    .retain_mut(|c| c.write_all(format!("{line}\n").as_bytes()).is_ok());
            }
        });
        Chat {
            addr,
            accepted,
            joined,
            lines,
        }
    }

    /// How many connections the chat accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// How many accepted connections joined the chat (get what others say) so far.
    pub fn joined(&self) -> usize {
        self.joined.load(Ordering::SeqCst)
    }

    /// Every line the chat received, from anyone.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Reads until EOF, then answers with `reply_to(request)` and closes.
pub struct Echo {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Echo {
    pub fn start() -> Echo {
        let (addr, accepted) = serve(|mut tcp| {
            let mut request = Vec::new();
            if tcp.read_to_end(&mut request).is_ok() {
                let _ = tcp.write_all(&reply_to(&request));
            }
            let _ = tcp.shutdown(Shutdown::Both);
        });
        Echo { addr, accepted }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// The echo's answer: `got N bytes\n`, then the request reversed.
pub fn reply_to(request: &[u8]) -> Vec<u8> {
    let mut reply = format!("got {} bytes\n", request.len()).into_bytes();
    reply.extend(request.iter().rev());
    reply
}

/// The bytes received so far on each connection, in the order they were accepted.
type Received = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// Records the bytes of each connection as they arrive; answers nothing.
pub struct Capture {
    pub addr: SocketAddr,
    received: Received,
}

impl Capture {
    pub fn start() -> Capture {
        let received: Received = Arc::default();
        let conns = received.clone();
        let (addr, _) = serve(move |mut tcp| {
            let bytes: Arc<Mutex<Vec<u8>>> = Arc::default();
            conns.lock().unwrap().push(bytes.clone());
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = tcp.read(&mut buf) {
                bytes.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Capture { addr, received }
    }

    /// The bytes of the first connection once `enough` says so (at most 10 s); what arrived
    /// by then otherwise.
    pub fn first(&self, enough: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let current = || {
            self.received
                .lock()
                .unwrap()
                .first()
                .map(|b| b.lock().unwrap().clone())
                .unwrap_or_default()
        };
        wait_until(Duration::from_secs(10), || enough(&current()));
        current()
    }
}

/// An address where nothing listens: connections to it are refused.
pub fn refusing_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// A PROXY protocol v2 header, as parsed from the first bytes of a connection.
#[derive(Debug)]
pub struct ProxyV2 {
    /// The version and command byte: 0x21 is version 2, PROXY.
    pub version_command: u8,
    /// The family and transport byte: 0x11 is TCP over IPv4.
    pub family: u8,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// Type-length-value records after the addresses, in order.
    pub tlvs: Vec<(u8, Vec<u8>)>,
    /// The header's length in bytes: what follows is the payload.
    pub len: usize,
}

impl ProxyV2 {
    pub fn tlv(&self, kind: u8) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|(t, _)| *t == kind)
            .map(|(_, v)| v.as_slice())
    }
}

/// Parses a v2 header with IPv4 addresses: 12-byte signature, version/command, family,
/// length (big endian), source and destination addresses and ports, then TLVs.
pub fn parse_proxy_v2(b: &[u8]) -> Result<ProxyV2, String> {
    if b.len() < 16 {
        return Err(format!("{} bytes: too short for a v2 header", b.len()));
    }
    if b[..12] != PROXY_V2_SIGNATURE {
        return Err(format!("no v2 signature: {:?}", &b[..12]));
    }
    let (version_command, family) = (b[12], b[13]);
    let len = 16 + usize::from(u16::from_be_bytes([b[14], b[15]]));
    if b.len() < len {
        return Err(format!("header says {len} bytes, {} arrived", b.len()));
    }
    if family != 0x11 {
        return Err(format!("family {family:#04x}, not TCP over IPv4"));
    }
    if len < 28 {
        return Err(format!("{len} bytes: too short for IPv4 addresses"));
    }
    let ip = |at: usize| std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let source = SocketAddr::from((ip(16), port(24)));
    let destination = SocketAddr::from((ip(20), port(26)));
    let mut tlvs = Vec::new();
    let mut at = 28;
    while at < len {
        if at + 3 > len {
            return Err(format!("truncated TLV at byte {at}"));
        }
        let kind = b[at];
        let n = usize::from(u16::from_be_bytes([b[at + 1], b[at + 2]]));
        if at + 3 + n > len {
            return Err(format!("TLV {kind:#04x} of {n} bytes overruns the header"));
        }
        tlvs.push((kind, b[at + 3..at + 3 + n].to_vec()));
        at += 3 + n;
    }
    Ok(ProxyV2 {
        version_command,
        family,
        source,
        destination,
        tlvs,
        len,
    })
}

/// A rustls client config trusting `ca_pem`, presenting `client` when given, offering `alpn`.
pub fn tls_config(ca_pem: &str, client: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => {
            let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What one TLS conversation through a tunnel gave.
#[derive(Debug)]
pub struct Exchange {
    /// Everything read until the end of the stream.
    pub reply: Vec<u8>,
    /// The DER of the certificate the server presented.
    pub peer: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
}

/// Connects with `sni`, sends `request`, closes its write side (close_notify, then FIN) and
/// reads until the end of the stream (10 s at most). Err: the failure, as rustls words it.
pub fn exchange(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
    request: &[u8],
) -> Result<Exchange, String> {
    let mut tls = connect(addr, sni, config).map_err(|e| e.to_string())?;
    let peer = tls.conn.peer_certificates().unwrap()[0].to_vec();
    let alpn = tls.conn.alpn_protocol().map(<[u8]>::to_vec);
    tls.write_all(request).map_err(|e| e.to_string())?;
    // The server may already have closed (a refused upstream): that is an answer too.
    close_write(&mut tls).map_err(|e| format!("{:?}: {e}", e.kind()))?;
    let reply = read_to_end(&mut tls)?;
    Ok(Exchange { reply, peer, alpn })
}

/// Sends close_notify and shuts the TCP write side, keeping the read side open.
pub fn close_write(tls: &mut Tls) -> std::io::Result<()> {
    tls.conn.send_close_notify();
    tls.flush()?;
    tls.sock.shutdown(Shutdown::Write)
}

/// Reads until the peer's close_notify or EOF. Err: any other failure (an alert, a reset,
/// 10 s without the end).
pub fn read_to_end(tls: &mut Tls) -> Result<Vec<u8>, String> {
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // The peer closed TCP without close_notify: the end of the stream all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(out),
            Err(e) => {
                return Err(format!(
                    "{:?}: {e} (after {} bytes: {:?})",
                    e.kind(),
                    out.len(),
                    String::from_utf8_lossy(&out)
                ));
            }
        }
    }
}

/// A client the tunnel must refuse at the handshake: connects, sends nothing, and returns
/// what ended the connection (for a refusal, a TLS alert). Panics when the server instead
/// keeps the connection open for 10 s or sends data.
pub fn refused(addr: SocketAddr, sni: &str, config: Arc<ClientConfig>) -> String {
    let mut tls = match connect(addr, sni, config) {
        Ok(tls) => tls,
        // TLS 1.2, or an alert during the client's own handshake steps.
        Err(e) => return e.to_string(),
    };
    // With TLS 1.3 the client's handshake ends before the server has judged its certificate:
    // the verdict arrives on the first read.
    match read_to_end(&mut tls) {
        Ok(data) => {
            assert!(data.is_empty(), "the refused client read {data:?}");
            "closed without an alert".to_owned()
        }
        Err(e) => {
            assert!(
                !e.starts_with("WouldBlock") && !e.starts_with("TimedOut"),
                "the connection stayed open: {e}"
            );
            e
        }
    }
}

/// Reads one line (up to `\n`) from a blocking reader with a 10 s timeout set by the caller.
pub fn read_line(r: &mut impl Read) -> std::io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while r.read(&mut byte)? == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}
