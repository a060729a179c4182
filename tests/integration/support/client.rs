//! Clients: curl (as users run it), openssl s_client, and a rustls client for exact bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

pub const HOST: &str = "test.example";

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The header block as received, e.g. "HTTP/2 200\r\ncontent-type: ...".
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `curl` against https://test.example:PORT/PATH, trusting only `ca`. The path is sent as is.
pub fn curl(addr: SocketAddr, ca: &Path, path: &str, extra: &[&str]) -> Response {
    let url = format!("https://{HOST}:{}{path}", addr.port());
    let resolve = format!("{HOST}:{}:127.0.0.1", addr.port());
    let mut args = vec!["--resolve", &resolve, "--cacert", ca.to_str().unwrap()];
    args.extend_from_slice(extra);
    curl_raw(&url, &args)
}

/// `curl` with any URL and arguments; the response of the last hop is returned.
pub fn curl_raw(url: &str, args: &[&str]) -> Response {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = Command::new("curl")
        .args([
            "-sS",
            "--path-as-is",
            "--max-time",
            "20",
            "-D",
            head.to_str().unwrap(),
            "-o",
            body.to_str().unwrap(),
        ])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(head).unwrap();
    let last = head
        .trim_end()
        .rsplit("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned();
    let status = last
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head: last,
        body: std::fs::read(body).unwrap_or_default(),
    }
}

/// Runs `curl` expecting it to fail; returns its stderr.
pub fn curl_fails(url: &str, args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl {url} unexpectedly succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `openssl s_client` with extra flags; returns (exit success, stdout + stderr).
pub fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> (bool, String) {
    s_client_for(addr, HOST, ca, extra)
}

/// `openssl s_client` asking for `sni`.
pub fn s_client_for(addr: SocketAddr, sni: &str, ca: &Path, extra: &[&str]) -> (bool, String) {
    let connect = addr.to_string();
    let mut child = Command::new("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            &connect,
            "-servername",
            sni,
            "-CAfile",
            ca.to_str().unwrap(),
        ])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closing stdin makes s_client end the session after the handshake.
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = crate::support::output_text(&out);
    (out.status.success(), text)
}

pub fn client_config(ca_pem: &str, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A finished TLS handshake with `sni`, verified against the config's roots.
pub fn connect(addr: SocketAddr, sni: &str, config: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// Sends raw bytes over TLS and reads the answer until the server closes or goes quiet.
pub fn raw_tls(addr: SocketAddr, ca_pem: &str, request: &[u8]) -> String {
    let mut tls = connect(addr, HOST, client_config(ca_pem, &[b"http/1.1"])).unwrap();
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    tls.write_all(request).unwrap();
    read_all(&mut tls)
}

/// Sends raw bytes over plain TCP and reads the answer.
pub fn raw_tcp(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    tcp.write_all(request).unwrap();
    read_all(&mut tcp)
}

fn read_all(r: &mut impl Read) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in raw HTTP/1.1 text.
pub fn status_of(raw: &str) -> u16 {
    raw.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends `request` over a fresh TLS connection and returns when each marker first appeared
/// in the response stream, measured from the moment the request was sent (at most 5 s).
pub fn arrival_times(
    addr: SocketAddr,
    ca_pem: &str,
    request: &[u8],
    markers: &[&str],
) -> Vec<Duration> {
    let mut tls = connect(addr, HOST, client_config(ca_pem, &[b"http/1.1"])).unwrap();
    tls.write_all(request).unwrap();
    let started = std::time::Instant::now();
    let (mut seen, mut times) = (String::new(), Vec::new());
    let mut buf = [0u8; 4096];
    while times.len() < markers.len() && started.elapsed() < Duration::from_secs(5) {
        let n = tls.read(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        while times.len() < markers.len() && seen.contains(markers[times.len()]) {
            times.push(started.elapsed());
        }
    }
    assert_eq!(
        times.len(),
        markers.len(),
        "not every marker arrived: {seen}"
    );
    times
}

/// Asserts that events sent 400 ms apart arrive 400 ms apart (each flushed within 50 ms of
/// being sent, none held back until the stream ends), the first one promptly.
pub fn assert_flushed_as_sent(times: &[Duration]) {
    assert!(
        times[0] < Duration::from_millis(300),
        "first event after {:?}",
        times[0]
    );
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            // Wide enough for a loaded CI machine's scheduling; events held back would
            // arrive together (about 0 ms apart) or with the next one (800 ms).
            gap > Duration::from_millis(250) && gap < Duration::from_millis(650),
            "events {gap:?} apart, sent 400 ms apart"
        );
    }
}

/// An RFC 8441 WebSocket over HTTP/2 (extended CONNECT to `path`), opened after one warm-up
/// GET so the server's SETTINGS (with ENABLE_CONNECT_PROTOCOL) have arrived. Returns the
/// tunnel's byte stream; call inside a tokio runtime.
pub async fn h2_websocket(
    addr: SocketAddr,
    ca_pem: &str,
    path: &str,
) -> hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(HOST).unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_config(ca_pem, &[b"h2"]))
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let get = hyper::Request::get(format!("https://{HOST}/warm"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let warm = sender.send_request(get).await.unwrap();
    let _ = warm.into_body().collect().await;
    let mut connect = hyper::Request::connect(format!("https://{HOST}{path}"))
        .header("sec-websocket-version", "13")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    connect
        .extensions_mut()
        .insert(hyper::ext::Protocol::from_static("websocket"));
    let res = sender.send_request(connect).await.unwrap();
    assert_eq!(res.status(), 200);
    TokioIo::new(hyper::upgrade::on(res).await.unwrap())
}
