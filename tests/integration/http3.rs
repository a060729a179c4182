//! HTTP/3 judged by an independent client: aioquic's QUIC and HTTP/3 stack
//! (tests/apps/h3_client.py), against the real binary on the UDP port of the HTTPS listener.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use super::browser::{app_behind_proxy, chromium};
use crate::python_apps::python;
use crate::support::client::{self, HOST};
use crate::support::pki::TestPki;
use crate::support::server::{BIN, Candado, site_yaml};
use crate::support::tcp::wait_until;
use crate::support::upstream::{self, Upstream};
use crate::support::{Fixture, free_port, output_text};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/h3_client.py");

/// What the aioquic client saw: one JSON object per request, or the connection's error.
pub(crate) fn h3(port: u16, ca: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    let out = Command::new(python())
        .args([CLIENT, "--port", &port.to_string(), "--name", HOST])
        .args(["--ca", ca.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = output_text(&out);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    match lines.first().and_then(|v| v.get("error")) {
        Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
        None if out.status.success() => Ok(lines),
        None => Err(text),
    }
}

fn header<'a>(res: &'a Value, name: &str) -> Option<&'a str> {
    res["headers"][name].as_str()
}

#[test]
fn a_static_file_is_served_over_http3_and_tcp_responses_advertise_it() {
    let f = Fixture::start("", "");
    let port = f.server.https.port();
    let tcp = f.get("/", &[]);
    assert_eq!(tcp.status, 200);
    assert_eq!(
        tcp.header("alt-svc").as_deref(),
        Some(format!("h3=\":{port}\"; ma=86400").as_str()),
        "{}",
        tcp.head
    );
    let res = h3(
        port,
        &f.pki.ca_path,
        &["--path", "/", "--path", "/index.html"],
    )
    .unwrap();
    assert_eq!(res.len(), 2, "two requests on one connection");
    for r in &res {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["body"], "<h1>home</h1>\n");
        assert_eq!(header(r, "content-type"), Some("text/html; charset=utf-8"));
        assert!(header(r, "strict-transport-security").is_some(), "{r}");
        assert_eq!(header(r, "x-content-type-options"), Some("nosniff"));
        // Alt-Svc is for clients that are not on HTTP/3 yet.
        assert_eq!(header(r, "alt-svc"), None, "{r}");
    }
    assert!(
        f.server.wait_log("kind=http3", Duration::from_secs(3)),
        "{}",
        f.server.log()
    );
}

/// The test site with /api proxied to the echoing backend, plus `site_extra` lines.
fn proxied(up: &Upstream, site_extra: &str, top_extra: &str) -> Fixture {
    Fixture::start(
        &format!(
            "    proxy:\n      - path: /api\n        to: {}\n{site_extra}",
            up.origin()
        ),
        top_extra,
    )
}

#[test]
fn a_3_mb_post_reaches_the_app_whole_and_the_app_sees_forwarding_headers() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let port = f.server.https.port();
    let n = 3 * 1024 * 1024;
    let args = ["--method", "POST", "--path", "/api/upload"];
    let res = h3(
        port,
        &f.pki.ca_path,
        &[&args[..], &["--body-bytes", &n.to_string()]].concat(),
    )
    .unwrap();
    let body = upstream::pattern(0, n);
    assert_eq!(res[0]["status"], 200, "{}", res[0]);
    assert_eq!(
        res[0]["body"],
        format!("{} {}", n, upstream::checksum(&body)),
        "the app got the body byte for byte"
    );
    // The echo: the app is told the client came over HTTPS, with the public host.
    let echo = h3(port, &f.pki.ca_path, &["--path", "/api/echo?q=%2F"]).unwrap();
    let text = echo[0]["body"].as_str().unwrap();
    assert!(text.starts_with("GET /api/echo?q=%2F HTTP/1.1"), "{text}");
    assert!(text.contains("x-forwarded-proto: https"), "{text}");
    assert!(text.contains("x-forwarded-for: 127.0.0.1"), "{text}");
    assert!(
        text.contains(&format!("x-forwarded-host: {HOST}:{port}")),
        "{text}"
    );
}

#[test]
fn a_body_over_the_sites_limit_gets_413_over_http3() {
    let up = upstream::start();
    let f = proxied(&up, "    max_body_bytes: 100000\n", "");
    let port = f.server.https.port();
    let res = h3(
        port,
        &f.pki.ca_path,
        &[
            "--method",
            "POST",
            "--path",
            "/api/upload",
            "--body-bytes",
            "3145728",
        ],
    )
    .unwrap();
    assert_eq!(res[0]["status"], 413, "{}", res[0]);
}

#[test]
fn ranges_and_etags_work_over_http3_as_over_tcp() {
    let f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("digits.txt"), "0123456789").unwrap();
    });
    let port = f.server.https.port();
    let ca = &f.pki.ca_path;
    let args = ["--path", "/digits.txt", "--header", "range: bytes=2-5"];
    let res = h3(port, ca, &args).unwrap();
    assert_eq!(res[0]["status"], 206, "{}", res[0]);
    assert_eq!(res[0]["body"], "2345");
    assert_eq!(header(&res[0], "content-range"), Some("bytes 2-5/10"));
    let etag = header(&res[0], "etag").unwrap().to_owned();
    let again = h3(
        port,
        ca,
        &[
            "--path",
            "/digits.txt",
            "--header",
            &format!("if-none-match: {etag}"),
        ],
    )
    .unwrap();
    assert_eq!(again[0]["status"], 304, "{}", again[0]);
    let past = h3(
        port,
        ca,
        &["--path", "/digits.txt", "--header", "range: bytes=20-"],
    )
    .unwrap();
    assert_eq!(past[0]["status"], 416, "{}", past[0]);
}

#[test]
fn server_sent_events_arrive_one_by_one_over_http3() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let res = h3(
        f.server.https.port(),
        &f.pki.ca_path,
        &["--path", "/api/sse"],
    )
    .unwrap();
    assert_eq!(res[0]["status"], 200, "{}", res[0]);
    assert_eq!(res[0]["body"], "data: 0\n\ndata: 1\n\ndata: 2\n\n");
    // The app waits 400 ms between events: each must reach the client as it is sent, not all
    // at the end.
    let chunks = res[0]["chunks"].as_array().unwrap();
    let at = |event: &str| {
        chunks
            .iter()
            .find(|c| c[2].as_str().unwrap().contains(event))
            .map(|c| c[0].as_f64().unwrap())
            .unwrap_or_else(|| panic!("{event} in {chunks:?}"))
    };
    let (first, last) = (at("data: 0"), at("data: 2"));
    assert!(first < 0.2, "the first event came late: {chunks:?}");
    assert!(last - first > 0.6, "the events came together: {chunks:?}");
}

#[test]
fn client_certificates_are_checked_and_their_identity_forwarded_over_http3() {
    let up = upstream::start();
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &[HOST]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "home").unwrap();
    let site = format!(
        "    client_auth: {{mode: required, ca: {}}}\n    proxy:\n      - path: /api\n        to: {}\n",
        pki.ca_path.display(),
        up.origin()
    );
    let server = Candado::from_yaml(
        &site_yaml(&leaf.cert, &leaf.key, root.path(), &site, ""),
        &[],
    );
    let port = server.https.port();
    let alice = pki.client_leaf("alice", "alice", &["alice.example"]);
    let cert = [
        "--cert",
        alice.cert.to_str().unwrap(),
        "--key",
        alice.key.to_str().unwrap(),
    ];
    let res = h3(
        port,
        &pki.ca_path,
        &[&cert[..], &["--path", "/api/who"]].concat(),
    )
    .unwrap();
    assert_eq!(res[0]["status"], 200, "{}", res[0]);
    let text = res[0]["body"].as_str().unwrap();
    assert!(text.contains("x-client-cert-subject: CN=alice"), "{text}");
    // A client's own copy is never believed.
    let forged = h3(
        port,
        &pki.ca_path,
        &[
            &cert[..],
            &[
                "--path",
                "/api/who",
                "--header",
                "x-client-cert-subject: CN=admin",
            ],
        ]
        .concat(),
    )
    .unwrap();
    let text = forged[0]["body"].as_str().unwrap();
    assert!(!text.contains("CN=admin"), "{text}");
    // No certificate: no connection, and the log says why.
    let refused = h3(port, &pki.ca_path, &["--path", "/api/who"]);
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        server.wait_log(
            "client certificate refused (HTTP/3)",
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
}

#[test]
fn http3_false_and_no_http3_serve_tcp_only_without_alt_svc() {
    let f = Fixture::start("    http3: false\n", "");
    let tcp = f.get("/", &[]);
    assert_eq!(tcp.status, 200);
    assert_eq!(tcp.header("alt-svc"), None, "{}", tcp.head);
    let res = h3(f.server.https.port(), &f.pki.ca_path, &["--timeout", "3"]);
    assert!(res.is_err(), "{res:?}");
    assert!(!f.server.log().contains("kind=http3"));

    let pki = TestPki::new();
    let leaf = pki.leaf("site", &[HOST]);
    let root = tempfile::tempdir().unwrap();
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), "", "");
    let server = Candado::from_yaml(&yaml, &["--no-http3"]);
    let tcp = client::curl(server.https, &pki.ca_path, "/", &[]);
    assert_eq!(tcp.header("alt-svc"), None, "{}", tcp.head);
    assert!(h3(server.https.port(), &pki.ca_path, &["--timeout", "3"]).is_err());
}

#[test]
fn a_reloaded_certificate_is_served_to_new_quic_connections() {
    let pki = TestPki::new();
    let (cert, key) = (pki.path("live.crt"), pki.path("live.key"));
    let first = pki.leaf("v0", &[HOST]);
    std::fs::copy(&first.cert, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "ok").unwrap();
    let server = Candado::from_yaml(&site_yaml(&cert, &key, root.path(), "", ""), &[]);
    let port = server.https.port();
    let seen = || h3(port, &pki.ca_path, &[]).unwrap()[0]["peer_cert_sha256"].clone();
    assert_eq!(
        seen(),
        sha256_of_pem(&std::fs::read_to_string(&first.cert).unwrap())
    );
    let second = pki.leaf("v1", &[HOST]);
    std::fs::copy(&second.key, pki.path("new.key")).unwrap();
    std::fs::copy(&second.cert, pki.path("new.crt")).unwrap();
    std::fs::rename(pki.path("new.key"), &key).unwrap();
    std::fs::rename(pki.path("new.crt"), &cert).unwrap();
    server.signal("HUP");
    let want = sha256_of_pem(&std::fs::read_to_string(&second.cert).unwrap());
    let started = Instant::now();
    while seen() != want {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sha256_of_pem(pem: &str) -> Value {
    use sha2::Digest;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let hex: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Value::String(hex)
}

#[test]
fn under_load_clients_prove_their_address_with_a_retry_first() {
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &[HOST]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "ok").unwrap();
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), "", "");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("candado.yaml");
    std::fs::write(&config, &yaml).unwrap();
    // Every handshake counts as "under load".
    let server = Candado::with_args_env(
        &["serve", "-c", config.to_str().unwrap()],
        &[
            ("CANDADO_QUIC_RETRY_ABOVE", "0"),
            ("RUST_LOG", "candado=debug"),
        ],
        root.path(),
        dir,
        false,
    );
    let res = h3(server.https.port(), &pki.ca_path, &[]).unwrap();
    assert_eq!(res[0]["status"], 200);
    assert!(
        server.wait_log("asked to retry", Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

#[test]
fn a_request_head_over_the_limit_gets_431_over_http3() {
    let f = Fixture::start("", "limits: {max_header_bytes: 2048}");
    let big = format!("x-big: {}", "a".repeat(20_000));
    let res = h3(f.server.https.port(), &f.pki.ca_path, &["--header", &big]).unwrap();
    assert_eq!(res[0]["status"], 431, "{}", res[0]);
    // Just under the QPACK limit, but over the header fields limit: the router's 431.
    let mid = format!("x-mid: {}", "a".repeat(4_000));
    let res = h3(f.server.https.port(), &f.pki.ca_path, &["--header", &mid]).unwrap();
    assert_eq!(res[0]["status"], 431, "{}", res[0]);
}

#[test]
fn on_shutdown_a_request_in_flight_over_http3_finishes() {
    let up = upstream::start();
    let mut f = proxied(&up, "", "");
    let port = f.server.https.port();
    let ca = f.pki.ca_path.clone();
    let slow = std::thread::spawn(move || h3(port, &ca, &["--path", "/api/slow"]));
    std::thread::sleep(Duration::from_millis(800));
    f.server.signal("TERM");
    let res = slow.join().unwrap();
    let res = res.unwrap_or_else(|e| panic!("{e}\n{}", f.server.log()));
    assert_eq!(res[0]["status"], 200, "{}", res[0]);
    assert_eq!(res[0]["body"], "late");
    assert!(f.server.wait_exit(Duration::from_secs(10)).is_some());
}

/// `candado check` reports the Alt-Svc it saw and whether its own HTTP/3 request worked; a
/// server without HTTP/3 is reported as not advertising it.
#[test]
fn candado_check_reports_http3_from_alt_svc_and_a_real_request() {
    let check = |f: &Fixture, extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["check", &format!("{HOST}:{}", f.server.https.port())])
            .args(["--connect", "127.0.0.1", "--http-port", "1", "--ca"])
            .arg(&f.pki.ca_path)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let f = Fixture::start("", "");
    let port = f.server.https.port();
    let json: Value = serde_json::from_str(&check(&f, &["--json"])).unwrap();
    let h3 = &json["http"]["http3"];
    assert_eq!(h3["alt_svc"], format!("h3=\":{port}\"; ma=86400"), "{h3}");
    assert_eq!(h3["advertised_port"], port);
    assert_eq!(h3["status"], 200, "{h3}");
    assert!(check(&f, &[]).contains(&format!(
        "UDP port {port}: QUIC handshake and GET / (200) work"
    )),);
    let off = Fixture::start("    http3: false\n", "");
    let json: Value = serde_json::from_str(&check(&off, &["--json"])).unwrap();
    assert_eq!(json["http"]["http3"]["advertised_port"], Value::Null);
    assert!(check(&off, &[]).contains("not advertised"));
}

/// Writes how the browser reached the page into it (`next-hop=h3` over HTTP/3).
const NEXT_HOP_PAGE: &str = "<!doctype html><title>h3</title><body><script>document.body.textContent = 'next-hop=' + performance.getEntries()[0].nextHopProtocol;</script></body>\n";

/// Chromium, forced onto QUIC for the origin, loads a page through `candado proxy` over
/// HTTP/3, trusting the development CA as `candado ca install` set it up.
#[test]
fn chromium_loads_a_page_through_candado_proxy_over_http3() {
    let p = app_behind_proxy(true, NEXT_HOP_PAGE);
    let force = format!("--origin-to-force-quic-on=app.test:{}", p.port);
    let flags = ["--enable-quic", &force, "--dump-dom"];
    let (dom, log) = chromium(p.home.path(), &flags, &p.url);
    assert!(
        dom.contains("next-hop=h3"),
        "Chromium did not load the page over HTTP/3:\n{dom}\n{log}\n{}",
        p.proxy.log()
    );
    // The control: without forcing QUIC the first load goes over TCP (HTTP/2).
    let (dom, log) = chromium(p.home.path(), &["--dump-dom"], &p.url);
    assert!(dom.contains("next-hop=h2"), "{dom}\n{log}");
}

#[test]
fn an_idle_http3_connection_is_closed_after_the_idle_timeout() {
    let f = Fixture::start("", "timeouts: {idle: 1s}");
    let port = f.server.https.port();
    // Quick enough: both requests share the connection.
    let res = h3(
        port,
        &f.pki.ca_path,
        &[
            "--path",
            "/",
            "--pause",
            "0.3",
            "--path",
            "/",
            "--timeout",
            "30",
        ],
    );
    assert_eq!(res.unwrap().len(), 2);
    // Idle longer than the timeout: the server has closed it. (A loaded machine can delay
    // aioquic's report of the close past its default 10 s for the whole run.)
    let res = h3(
        port,
        &f.pki.ca_path,
        &[
            "--path",
            "/",
            "--pause",
            "2.5",
            "--path",
            "/",
            "--timeout",
            "30",
        ],
    );
    let err = res.unwrap_err();
    assert!(err.contains("connection closed"), "{err}");
}

#[test]
fn quic_connections_count_against_the_limit_shared_with_tcp() {
    // Two: the TCP accept loop holds one slot while it waits (so that clients over the limit
    // wait in the kernel's queue); the connection below takes it, the loop takes the other.
    let f = Fixture::start("", "limits: {max_connections: 2}");
    let port = f.server.https.port();
    let tcp = client::connect(
        f.server.https,
        HOST,
        client::client_config(&f.pki.ca_pem, &[b"http/1.1"]),
    )
    .unwrap();
    let refused = h3(port, &f.pki.ca_path, &["--timeout", "3"]);
    assert!(refused.is_err(), "{refused:?}");
    drop(tcp);
    let started = Instant::now();
    while let Err(e) = h3(port, &f.pki.ca_path, &["--timeout", "3"]) {
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

type H3Send = h3::client::SendRequest<h3_quinn::OpenStreams, bytes::Bytes>;
type H3Stream = h3::client::RequestStream<h3_quinn::BidiStream<bytes::Bytes>, bytes::Bytes>;

/// An HTTP/3 connection from a quinn + h3 client trusting `ca_pem`; the endpoint and request
/// sender keep it open.
async fn h3_connect(addr: std::net::SocketAddr, ca_pem: &str) -> (quinn::Endpoint, H3Send) {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let config = quinn::ClientConfig::new(std::sync::Arc::new(quic));
    let conn = endpoint
        .connect_with(config, addr, HOST)
        .unwrap()
        .await
        .unwrap();
    let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    (endpoint, send)
}

/// Sends a GET for `path` on the connection; the stream, to read the response from.
async fn h3_send(
    send: &mut H3Send,
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<H3Stream, h3::error::StreamError> {
    let uri = format!("https://{HOST}:{}{path}", addr.port());
    let mut stream = send
        .send_request(http::Request::get(uri).body(()).unwrap())
        .await?;
    stream.finish().await?;
    Ok(stream)
}

/// An HTTP/3 client that asks for `path` and reads only the response head.
async fn h3_head_only(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    path: &str,
) -> ((quinn::Endpoint, H3Send), H3Stream, u16) {
    let (endpoint, mut send) = h3_connect(addr, ca_pem).await;
    let mut stream = h3_send(&mut send, addr, path).await.unwrap();
    let status = stream.recv_response().await.unwrap().status().as_u16();
    ((endpoint, send), stream, status)
}

#[test]
fn an_http3_client_that_stops_reading_loses_its_response_after_the_write_timeout() {
    const BIG: usize = 64 * 1024 * 1024;
    let f = Fixture::start_with_files("", "timeouts: {write: 2s}", |root| {
        let file = std::fs::File::create(root.join("big.bin")).unwrap();
        file.set_len(BIG as u64).unwrap();
    });
    let baseline = f.server.open_fds();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_conn, mut stream, status) =
            h3_head_only(f.server.https, &f.pki.ca_pem, "/big.bin").await;
        assert_eq!(status, 200);
        // The file is open while the response waits for the client.
        let open = wait_until(Duration::from_secs(2), || f.server.open_fds() > baseline);
        assert!(open, "the file is not open: {} fds", f.server.open_fds());
        // Stalled longer than the write timeout: the file is released...
        let started = Instant::now();
        while f.server.open_fds() > baseline {
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "the stalled response still holds its file"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            started.elapsed() > Duration::from_secs(1),
            "released before the write timeout: {:?}",
            started.elapsed()
        );
        // ...and the stream is cut: reading again ends in an error well before the end.
        let mut total = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.recv_data()).await {
                Ok(Ok(Some(chunk))) => total += bytes::Buf::remaining(&chunk),
                Ok(Ok(None)) => panic!("the whole body arrived ({total} bytes)"),
                Ok(Err(_)) => break,
                Err(_) => panic!("the stream was neither cut nor finished ({total} bytes)"),
            }
        }
        assert!(total < BIG, "{total}");
    });
}

/// quinn's default crypto is ring; candado's QUIC must use aws-lc-rs like the rest.
#[test]
fn the_quic_stack_brings_no_second_crypto_library() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal,build",
            "-i",
            "ring",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!text.contains("ring v"), "{text}");
    assert!(
        text.contains("nothing to print") || text.contains("did not match"),
        "{text}"
    );
}

/// Two sites on one port, one with `http3: false`: only the other advertises HTTP/3, and an
/// HTTP/3 request for the first is sent back to TCP with 421.
#[test]
fn a_site_with_http3_off_on_a_shared_port_answers_421_over_http3_and_no_alt_svc() {
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &[HOST, "tcp-only.example"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "home").unwrap();
    let other = format!(
        "  - names: [tcp-only.example]\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n    http3: false\n",
        leaf.cert.display(),
        leaf.key.display(),
        root.path().display()
    );
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), &other, "");
    let server = Candado::from_yaml(&yaml, &[]);
    let port = server.https.port();
    let tcp = |name: &str| {
        let url = format!("https://{name}:{port}/");
        let resolve = format!("{name}:{port}:127.0.0.1");
        let ca = pki.ca_path.to_str().unwrap().to_owned();
        client::curl_raw(&url, &["--resolve", &resolve, "--cacert", &ca])
    };
    assert!(tcp(HOST).header("alt-svc").is_some());
    assert_eq!(tcp("tcp-only.example").header("alt-svc"), None);
    let ours = h3(port, &pki.ca_path, &[]).unwrap();
    assert_eq!(ours[0]["status"], 200);
    let authority = format!("tcp-only.example:{port}");
    let theirs = h3(port, &pki.ca_path, &["--authority", &authority]).unwrap();
    assert_eq!(theirs[0]["status"], 421, "{}", theirs[0]);
}

/// A UDP port taken by another program: the site is served over TCP, says why, and does not
/// advertise an HTTP/3 it cannot serve.
#[test]
fn without_its_udp_port_a_site_stays_on_tcp_without_alt_svc() {
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &[HOST]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "home").unwrap();
    let (port, _taken) = loop {
        let port = free_port();
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            break (port, udp);
        }
    };
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), "", "")
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"));
    let server = Candado::from_yaml(&yaml, &[]);
    let res = client::curl(server.https, &pki.ca_path, "/", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("alt-svc"), None, "{}", res.head);
    assert!(
        server
            .log()
            .contains(&format!("cannot listen on UDP 127.0.0.1:{port} for HTTP/3")),
        "{}",
        server.log()
    );
}

/// On SIGTERM the client gets a GOAWAY: a new request on the connection is refused, while the
/// one in flight finishes.
#[test]
fn on_shutdown_an_http3_client_gets_goaway_and_its_request_in_flight_finishes() {
    let up = upstream::start();
    let mut f = proxied(&up, "", "");
    let addr = f.server.https;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_endpoint, mut send) = h3_connect(addr, &f.pki.ca_pem).await;
        let mut slow = h3_send(&mut send, addr, "/api/slow").await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        f.server.signal("TERM");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let refused = async {
            let mut late = h3_send(&mut send, addr, "/").await?;
            late.recv_response().await
        };
        let refused = tokio::time::timeout(Duration::from_secs(5), refused).await;
        assert!(
            matches!(refused, Ok(Err(_))),
            "a request after GOAWAY was served: {refused:?}"
        );
        let res = tokio::time::timeout(Duration::from_secs(10), slow.recv_response())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = slow.recv_data().await.unwrap().unwrap();
        assert_eq!(bytes::Buf::chunk(&body), b"late");
    });
    assert!(f.server.wait_exit(Duration::from_secs(10)).is_some());
}

/// HTTP/3 turned on by a reload needs a UDP port opened at start: the log says to restart,
/// and nothing advertises what is not served.
#[test]
fn http3_turned_on_by_a_reload_asks_for_a_restart() {
    let f = Fixture::start("    http3: false\n", "");
    let config = f.server.dir.path().join("candado.yaml");
    let yaml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, yaml.replace("    http3: false\n", "")).unwrap();
    f.server.signal("HUP");
    assert!(
        f.server
            .wait_log("restart candado to serve it", Duration::from_secs(5)),
        "{}",
        f.server.log()
    );
    assert!(f.server.wait_log("reloaded", Duration::from_secs(5)));
    assert_eq!(f.get("/", &[]).header("alt-svc"), None);
}
