//! The reverse proxy against a backend written in the tests: byte-exact targets, streaming
//! bodies both ways, header rules, smuggling attempts, failures and upgrades.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::client::{self, HOST, raw_tls, status_of};
use crate::support::server::{Candado, run_to_exit};
use crate::support::upstream::{self, Upstream, checksum, pattern};
use crate::support::{Fixture, pki::TestPki};

fn proxied(up: &Upstream, route_extra: &str, site_extra: &str) -> Fixture {
    let site = format!(
        "    proxy:\n      - path: /api\n        to: {}\n{route_extra}      - path: /dead\n        to: 127.0.0.1:1\n{site_extra}",
        up.origin()
    );
    Fixture::start(&site, "")
}

#[test]
fn path_and_query_reach_the_backend_byte_for_byte() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let target = "/api/a%2Fb/%7euser/;p?q=%20x&y=%2e%2E&&z=%F0%9F%94%92";
    let res = f.get(target, &[]);
    assert_eq!(res.status, 200);
    assert!(
        res.text().starts_with(&format!("GET {target} HTTP/1.1\n")),
        "{}",
        res.text()
    );
}

#[test]
fn prefixes_match_on_segment_boundaries_and_the_longest_wins() {
    let up = upstream::start();
    let f = proxied(
        &up,
        "        strip_prefix: true\n      - path: /api/v2\n        to: 127.0.0.1:1\n",
        "",
    );
    assert!(
        f.get("/api/users?x=1", &[])
            .text()
            .starts_with("GET /users?x=1 "),
        "strip_prefix"
    );
    assert!(f.get("/api", &[]).text().starts_with("GET / "));
    assert_eq!(
        f.get("/apiary", &[]).status,
        404,
        "/apiary is not under /api"
    );
    assert_eq!(
        f.get("/api/v2/x", &[]).status,
        502,
        "the longer prefix wins"
    );
}

#[test]
fn forwarding_headers_are_set_and_hop_by_hop_headers_dropped() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let req = "GET /api/echo HTTP/1.1\r\nHost: test.example\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close, X-Private\r\nX-Private: secret\r\nKeep-Alive: 5\r\nProxy-Authorization: x\r\nTE: trailers\r\nX-Custom: kept\r\n\r\n";
    let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
    let seen = raw.to_ascii_lowercase();
    for expected in [
        "x-forwarded-for: 127.0.0.1\n",
        "x-forwarded-proto: https\n",
        "x-forwarded-host: test.example\n",
        "x-real-ip: 127.0.0.1\n",
        "forwarded: for=127.0.0.1;host=\"test.example\";proto=https\n",
        "host: test.example\n",
        "x-custom: kept\n",
    ] {
        assert!(seen.contains(expected), "missing {expected:?} in {raw}");
    }
    for dropped in [
        "6.6.6.6",
        "x-private",
        "keep-alive: 5",
        "proxy-authorization",
        "te: trailers",
    ] {
        assert!(!seen.contains(dropped), "{dropped} was forwarded: {raw}");
    }
}

#[test]
fn every_response_header_survives_and_cookies_become_secure() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let raw = raw_tls(
        f.server.https,
        &f.pki.ca_pem,
        b"GET /api/cookies HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n",
    );
    assert!(
        raw.contains("set-cookie: session=abc; Path=/; HttpOnly; Secure\r\n"),
        "{raw}"
    );
    assert!(raw.contains("set-cookie: theme=dark; Secure\r\n"), "{raw}");
    assert!(raw.contains("x-app: kept\r\n"), "{raw}");
}

#[test]
fn locations_pointing_at_the_backend_are_rewritten_to_the_public_url() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let res = f.get("/api/redirect", &[]);
    assert_eq!(res.status, 302);
    let port = f.server.https.port();
    assert_eq!(
        res.header("location"),
        Some(format!(
            "https://test.example:{port}/landing?from=%2Fredirect"
        ))
    );
}

#[test]
fn large_bodies_stream_both_ways_plain_and_chunked() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.bin");
    let data = pattern(0, 1 << 20);
    std::fs::write(&file, &data).unwrap();
    let expected = format!("{} {}", data.len(), checksum(&data));
    let at = format!("@{}", file.display());
    for proto in ["--http1.1", "--http2"] {
        let res = f.get("/api/upload", &[proto, "--data-binary", &at]);
        assert_eq!(res.text(), expected, "{proto} with Content-Length");
        let res = f.get(
            "/api/upload",
            &[
                proto,
                "--data-binary",
                &at,
                "-H",
                "Transfer-Encoding: chunked",
            ],
        );
        assert_eq!(res.text(), expected, "{proto} chunked");
        let res = f.get("/api/download?n=1048576", &[proto]);
        assert!(
            res.body == data,
            "{proto} chunked download of {} bytes",
            res.body.len()
        );
    }
}

#[test]
fn differing_content_lengths_are_rejected_never_forwarded() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    for cl in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
    ] {
        let req = format!(
            "POST /api/echo HTTP/1.1\r\nHost: test.example\r\n{cl}\r\nConnection: close\r\n\r\nhello!"
        );
        let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
        assert_eq!(status_of(&raw), 400, "{raw}");
        assert!(
            !raw.contains("POST /api/echo"),
            "reached the backend: {raw}"
        );
    }
}

#[test]
fn content_length_with_transfer_encoding_is_rejected_never_forwarded() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let smuggle = "0\r\n\r\nGET /api/smuggled HTTP/1.1\r\nHost: test.example\r\n\r\n";
    for headers in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    ] {
        // After an ordinary request on the same connection, so the index logic is exercised.
        let req = format!(
            "GET /api/first HTTP/1.1\r\nHost: test.example\r\n\r\nPOST /api/echo HTTP/1.1\r\nHost: test.example\r\n{headers}\r\n\r\n{smuggle}"
        );
        let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
        let statuses: Vec<u16> = raw
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| status_of(&raw[i..]))
            .collect();
        assert_eq!(statuses, [200, 400], "{raw}");
        assert!(
            !raw.contains("POST /api/echo") && !raw.contains("smuggled"),
            "reached the backend: {raw}"
        );
    }
    // Content-Length first is caught by candado's scanner (hyper would read it as chunked);
    // Transfer-Encoding first hyper refuses by itself. Candado's refusal is logged.
    let wait = |needle| f.server.wait_log(needle, Duration::from_secs(3));
    assert!(
        wait("both Content-Length and Transfer-Encoding"),
        "{}",
        f.server.log()
    );
    assert!(
        wait("path=/api/echo status=400"),
        "in the access log: {}",
        f.server.log()
    );
    assert!(raw_has_hsts(&f), "refusals carry the site's headers");
}

fn raw_has_hsts(f: &Fixture) -> bool {
    let req = "POST /api/echo HTTP/1.1\r\nHost: test.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
    status_of(&raw) == 400 && raw.contains("strict-transport-security: max-age=31536000\r\n")
}

#[test]
fn bodies_over_the_limit_get_413() {
    let up = upstream::start();
    let f = proxied(&up, "", "    max_body_bytes: 1000\n");
    let big = "x".repeat(5000);
    // HTTP/1.1: over HTTP/2 an early 413 races the rest of the upload (curl may see the
    // stream reset before the response), which says nothing about candado.
    let res = f.get("/api/upload", &["--http1.1", "--data-binary", &big]);
    assert_eq!(res.status, 413);
    let res = f.get(
        "/api/upload",
        &[
            "--http1.1",
            "--data-binary",
            &big,
            "-H",
            "Transfer-Encoding: chunked",
        ],
    );
    assert_eq!(res.status, 413, "chunked bodies are counted as they stream");
    assert_eq!(
        f.get("/api/upload", &["--data-binary", "small"]).status,
        200
    );
}

#[test]
fn an_unreachable_backend_is_502_and_a_slow_one_504_without_leaking_details() {
    let up = upstream::start();
    let f = proxied(&up, "        timeouts: {response: 1s}\n", "");
    let res = f.get("/dead/x", &[]);
    assert_eq!(res.status, 502);
    assert!(
        !res.text().contains("127.0.0.1") && !res.text().contains("refused"),
        "{}",
        res.text()
    );
    let res = f.get("/dead/x", &["-H", "Accept: application/json"]);
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(res.text().contains("\"status\":502"), "{}", res.text());
    let started = Instant::now();
    let res = f.get("/api/slow", &[]);
    assert_eq!(res.status, 504);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn server_sent_events_are_flushed_as_they_arrive() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let req = b"GET /api/sse HTTP/1.1\r\nHost: test.example\r\nAccept: text/event-stream\r\n\r\n";
    let times = client::arrival_times(
        f.server.https,
        &f.pki.ca_pem,
        req,
        &["data: 0", "data: 1", "data: 2"],
    );
    client::assert_flushed_as_sent(&times);
}

#[test]
fn websocket_upgrades_are_relayed_both_ways() {
    let up = upstream::start();
    // Short timeouts: a tunnel must outlive them.
    let f = Fixture::start(
        &format!(
            "    proxy:\n      - path: /api\n        to: {}\n        timeouts: {{response: 1s}}\n",
            up.origin()
        ),
        "timeouts: {header_read: 1s, idle: 1s}",
    );
    let mut tls = client::connect(
        f.server.https,
        HOST,
        client::client_config(&f.pki.ca_pem, &[b"http/1.1"]),
    )
    .unwrap();
    tls.write_all(b"GET /api/ws HTTP/1.1\r\nHost: test.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for (i, message) in [
        &b"hello text"[..],
        &[0u8, 1, 2, 255, 254][..],
        &vec![7u8; 200_000][..],
    ]
    .into_iter()
    .enumerate()
    {
        if i == 1 {
            std::thread::sleep(Duration::from_millis(2500));
        }
        tls.write_all(message).unwrap();
        let mut back = vec![0u8; message.len()];
        tls.read_exact(&mut back).unwrap();
        assert!(back == message, "echo of {} bytes differs", message.len());
    }
}

#[test]
fn proxy_command_puts_an_app_behind_https_in_one_line() {
    let up = upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let https = crate::support::free_port();
    let to = up.addr.to_string();
    let from = format!("app.localhost:{https}");
    let server = Candado::with_args(
        &["proxy", "--to", &to, "--from", &from, "--http-port", "0"],
        dir.path(),
        tempfile::tempdir().unwrap(),
        false,
    );
    let ca = server.data_dir().join("ca/ca.crt");
    let url = format!("https://app.localhost:{https}/hello?x=1");
    let resolve = format!("app.localhost:{https}:127.0.0.1");
    let res = client::curl_raw(
        &url,
        &["--cacert", ca.to_str().unwrap(), "--resolve", &resolve],
    );
    assert_eq!(res.status, 200);
    assert!(
        res.text().starts_with("GET /hello?x=1 HTTP/1.1\n"),
        "{}",
        res.text()
    );
    assert!(
        res.text().contains("host: app.localhost:"),
        "{}",
        res.text()
    );
    assert_eq!(
        res.header("strict-transport-security").as_deref(),
        Some("max-age=31536000")
    );
    let _ = TestPki::new;
}

#[test]
fn pyserve_reverse_proxy_routes_strip_their_prefix() {
    let up = upstream::start();
    let pki = TestPki::new();
    let leaf = pki.leaf("py", &["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let config = format!(
        "server:\n  port: {port}\n  reverse_proxy:\n    - path: /api\n      host: 127.0.0.1\n      port: {}\nssl:\n  enabled: true\n  cert_file: {}\n  key_file: {}\n",
        up.addr.port(),
        leaf.cert.display(),
        leaf.key.display()
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let server = Candado::with_args(
        &["-c", "config.yaml"],
        dir.path(),
        tempfile::tempdir().unwrap(),
        false,
    );
    let res = client::curl_raw(
        &format!("https://localhost:{}/api/users?id=7", server.https.port()),
        &["--cacert", pki.ca_path.to_str().unwrap()],
    );
    assert!(
        res.text().starts_with("GET /users?id=7 HTTP/1.1\n"),
        "{}",
        res.text()
    );
    let _ = run_to_exit;
}

#[test]
fn websockets_over_http2_extended_connect_reach_an_http1_app() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let up = upstream::start();
    // Idle deadline 1 s: the tunnel's stream must keep the HTTP/2 connection open past it.
    let site = format!(
        "    proxy:\n      - path: /api\n        to: {}\n",
        up.origin()
    );
    let f = Fixture::start(&site, "timeouts: {idle: 1s}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut stream = client::h2_websocket(f.server.https, &f.pki.ca_pem, "/api/ws").await;
        for (i, message) in [&b"over h2"[..], &vec![9u8; 100_000][..]]
            .into_iter()
            .enumerate()
        {
            if i == 1 {
                tokio::time::sleep(Duration::from_millis(2500)).await;
            }
            stream.write_all(message).await.unwrap();
            let mut back = vec![0u8; message.len()];
            tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut back))
                .await
                .unwrap()
                .unwrap();
            assert!(back == message, "echo of {} bytes differs", message.len());
        }
    });
}

#[test]
fn a_client_that_goes_away_cancels_the_upstream_request() {
    let up = upstream::start();
    let f = proxied(&up, "", "");
    let dropped = || upstream::FOREVER_DROPPED.load(std::sync::atomic::Ordering::SeqCst);
    let before = dropped();
    let config = client::client_config(&f.pki.ca_pem, &[b"http/1.1"]);
    let mut tls = client::connect(f.server.https, HOST, config).unwrap();
    tls.write_all(b"GET /api/forever HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    assert!(tls.read(&mut buf).unwrap() > 0);
    drop(tls);
    let started = Instant::now();
    while dropped() == before {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the upstream stream was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn host_and_header_rules_and_cookie_policy_are_configurable() {
    let up = upstream::start();
    let route = "        host_header: app.internal\n        request_headers: {set: {X-Env: prod}, remove: [X-Debug]}\n        response_headers: {set: {X-Served-By: candado}, remove: [X-App]}\n";
    let f = proxied(&up, route, "    secure_cookies: false\n");
    let text = f.get("/api/echo", &["-H", "X-Debug: 1"]).text();
    assert!(
        text.contains("host: app.internal\n") && text.contains("x-env: prod\n"),
        "{text}"
    );
    assert!(!text.contains("x-debug"), "{text}");
    assert!(
        text.contains("x-forwarded-host: test.example:"),
        "the public host is still forwarded: {text}"
    );
    let res = f.get("/api/cookies", &[]);
    assert_eq!(res.header("x-served-by").as_deref(), Some("candado"));
    assert_eq!(res.header("x-app"), None);
    assert_eq!(
        res.header("set-cookie").as_deref(),
        Some("session=abc; Path=/; HttpOnly"),
        "no Secure when turned off"
    );
}

/// A plain-TCP app that answers every request with `<connection>-<request>` (both counted
/// from 1) and closes each connection, while idle, after `per_conn` answers, as apps do when
/// their keep-alive runs out. Returns its address and how many connections it accepted.
fn numbering_app(per_conn: usize) -> (std::net::SocketAddr, std::sync::Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(50).flatten() {
            let conn = counter.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::spawn(move || answer_numbered(tcp, conn, per_conn));
        }
    });
    (addr, accepted)
}

fn answer_numbered(mut tcp: std::net::TcpStream, conn: usize, per_conn: usize) {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    for req in 1..=per_conn {
        head.clear();
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let body = format!("{conn}-{req}");
        let res = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if tcp.write_all(res.as_bytes()).is_err() {
            return;
        }
    }
    // Closed with the last answer read: idle, as a keep-alive timeout leaves it.
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn upstream_connections_are_reused_across_clients_and_replaced_when_the_app_closes_them() {
    let (addr, accepted) = numbering_app(2);
    let route = format!("      - path: /app\n        to: http://{addr}\n");
    let f = Fixture::start(&format!("    proxy:\n{route}"), "");
    let mut answers = Vec::new();
    for _ in 0..5 {
        // Each curl is a new client connection: the upstream one outlives it.
        let res = f.get("/app/x", &[]);
        assert_eq!(res.status, 200, "{}", res.text());
        answers.push(res.text());
        // Time for the app's close to reach candado before the next request.
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(answers, ["1-1", "1-2", "2-1", "2-2", "3-1"]);
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

/// A plain-TCP app that answers each connection's first request with `<connection>-1` and
/// closes the connection, unanswered, when the next request comes: the race of an app
/// closing an idle kept-alive connection just as a request arrives on it.
fn closing_app() -> (std::net::SocketAddr, std::sync::Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for mut tcp in listener.incoming().take(50).flatten() {
            let conn = counter.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::spawn(move || {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let mut buf = [0u8; 8192];
                if tcp.read(&mut buf).unwrap_or(0) == 0 {
                    return;
                }
                let body = format!("{conn}-1");
                let res = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(res.as_bytes());
                // The next request is read, then the connection closed without an answer.
                let _ = tcp.read(&mut buf);
            });
        }
    });
    (addr, accepted)
}

#[test]
fn an_idle_upstream_connection_closed_under_a_get_is_retried_but_never_under_a_post() {
    let (addr, accepted) = closing_app();
    let route = format!("      - path: /app\n        to: http://{addr}\n");
    let f = Fixture::start(&format!("    proxy:\n{route}"), "");
    assert_eq!(f.get("/app/x", &[]).text(), "1-1");
    // Idle long enough that an app may be closing it: the GET goes out again on a new one.
    std::thread::sleep(Duration::from_millis(1300));
    let res = f.get("/app/x", &[]);
    assert_eq!((res.status, res.text()), (200, "2-1".to_owned()));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A POST may have changed something: it is never sent twice. (Over HTTP/1.1: over HTTP/2
    // the 502 may end with RST_STREAM(NO_ERROR) when the body was not read yet, as RFC 9113
    // §8.1 allows, and Debian's curl 7.88 then reports a framing error.)
    std::thread::sleep(Duration::from_millis(1300));
    let res = f.get("/app/x", &["--http1.1", "--data-binary", "order=1"]);
    assert_eq!(res.status, 502, "{}", res.text());
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "no second attempt");
}
