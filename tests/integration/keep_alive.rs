//! HTTP/1.1 keep-alive connections that idle. After half a second with nothing moving,
//! between whole requests, a connection gives up hyper's buffers ("parks") until its next
//! bytes come. A client must not be able to tell: the same connection answers the next
//! request, a request cut in two by a pause is still one request, a slow answer is not a
//! pause, and shutdown still says goodbye.

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use crate::observe::{admin_addr, scrape};
use crate::support::Fixture;
use crate::support::client::{self, HOST, status_of};
use crate::support::upstream::{self, checksum};

/// Longer than the server waits before it parks an idle connection (500 ms).
const PAUSE: Duration = Duration::from_millis(1200);

fn proxied() -> (Fixture, upstream::Upstream) {
    let up = upstream::start();
    let site = format!(
        "    proxy:\n      - path: /api\n        to: {}\n",
        up.origin()
    );
    (Fixture::start(&site, "admin: 127.0.0.1:0"), up)
}

/// `candado_waiting_connections`: connections parked between requests.
fn waiting(f: &Fixture) -> u32 {
    let text = scrape(admin_addr(&f.server));
    let line = text
        .lines()
        .find(|l| l.starts_with("candado_waiting_connections{"))
        .unwrap_or_else(|| panic!("no waiting gauge in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn connect(f: &Fixture) -> client::Tls {
    client::connect(
        f.server.https,
        HOST,
        client::client_config(&f.pki.ca_pem, &[b"http/1.1"]),
    )
    .unwrap()
}

/// Reads one response with a Content-Length body: its status and body.
fn response(tls: &mut client::Tls) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).expect("a response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(!head.contains("connection: close"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0u8; len];
    tls.read_exact(&mut body).expect("the response body");
    (
        status_of(&head),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn send(tls: &mut client::Tls, bytes: &[u8]) {
    tls.write_all(bytes).and_then(|_| tls.flush()).unwrap();
}

#[test]
fn curl_reuses_one_connection_across_pauses_and_a_slow_answer() {
    let (f, _up) = proxied();
    let port = f.server.https.port();
    let url = |path: &str| format!("https://{HOST}:{port}{path}");
    // `--rate 40/m`: a transfer starts 1.5 s after the one before, on the same connection.
    let mut args = vec![
        "-sS".to_owned(),
        "--http1.1".to_owned(),
        "--max-time".to_owned(),
        "30".to_owned(),
        "--rate".to_owned(),
        "40/m".to_owned(),
        "--resolve".to_owned(),
        format!("{HOST}:{port}:127.0.0.1"),
        "--cacert".to_owned(),
        f.pki.ca_path.display().to_string(),
        "-w".to_owned(),
        "%{http_code} %{num_connects} %{size_download}\\n".to_owned(),
    ];
    // /api/slow answers after 3 s: six times the park delay, with the request in flight.
    for path in ["/index.html", "/index.html", "/api/slow", "/index.html"] {
        args.extend(["-o".to_owned(), "/dev/null".to_owned(), url(path)]);
    }
    let out = Command::new("curl").args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    // Status, new connections made for the transfer, body bytes ("<h1>home</h1>\n", "late").
    assert_eq!(
        lines,
        ["200 1 14", "200 0 14", "200 0 4", "200 0 14"],
        "{}",
        f.server.log()
    );
}

#[test]
fn requests_cut_by_pauses_and_pipelined_after_one_are_answered_on_the_same_connection() {
    let (f, _up) = proxied();
    let mut tls = connect(&f);
    std::thread::sleep(PAUSE);
    // A connection that has asked nothing yet (a browser's preconnect) parks too.
    assert_eq!(waiting(&f), 1, "not parked before its first request");
    // A head cut in two by a pause longer than the park delay.
    send(
        &mut tls,
        b"GET /index.html HTTP/1.1\r\nHost: test.example\r\n",
    );
    std::thread::sleep(PAUSE);
    assert_eq!(waiting(&f), 0, "parked in the middle of a head");
    send(&mut tls, b"\r\n");
    assert_eq!(response(&mut tls), (200, "<h1>home</h1>\n".to_owned()));
    // A body cut in two.
    send(
        &mut tls,
        b"POST /api/upload HTTP/1.1\r\nHost: test.example\r\nContent-Length: 10\r\n\r\n12345",
    );
    std::thread::sleep(PAUSE);
    send(&mut tls, b"67890");
    let sum = checksum(b"1234567890");
    assert_eq!(response(&mut tls), (200, format!("10 {sum}")));
    // Idle (parked), then two requests in one write.
    std::thread::sleep(PAUSE);
    assert_eq!(waiting(&f), 1, "not parked after a second of idleness");
    send(
        &mut tls,
        b"GET /index.html HTTP/1.1\r\nHost: test.example\r\n\r\nGET /api/health HTTP/1.1\r\nHost: test.example\r\n\r\n",
    );
    assert_eq!(response(&mut tls), (200, "<h1>home</h1>\n".to_owned()));
    assert_eq!(response(&mut tls), (200, "ok".to_owned()));
    assert_eq!(waiting(&f), 0, "still counted as waiting while answering");
}

#[test]
fn a_parked_connection_is_closed_with_close_notify_at_shutdown_and_at_its_deadlines() {
    // Shutdown: the idle connection is told goodbye and the server exits at once.
    let mut f = Fixture::start("", "");
    let mut tls = connect(&f);
    send(&mut tls, b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert_eq!(response(&mut tls).0, 200);
    std::thread::sleep(PAUSE);
    f.server.signal("TERM");
    let status = f.server.wait_exit(Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", f.server.log());
    let mut buf = [0u8; 16];
    // Ok(0): the TLS close_notify, not a reset or a cut.
    assert_eq!(tls.read(&mut buf).ok(), Some(0));

    // A parked connection's wait is still bounded: by the idle timeout after a request, by
    // header_read before its first one (a client that connects and asks nothing).
    for (timeouts, asks) in [("{idle: 2s}", true), ("{header_read: 2s}", false)] {
        let f = Fixture::start("", &format!("timeouts: {timeouts}"));
        let mut tls = connect(&f);
        if asks {
            send(&mut tls, b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
            assert_eq!(response(&mut tls).0, 200);
        }
        let quiet = std::time::Instant::now();
        tls.sock
            .set_read_timeout(Some(Duration::from_secs(6)))
            .unwrap();
        assert_eq!(tls.read(&mut buf).ok(), Some(0), "{timeouts}");
        let after = quiet.elapsed();
        assert!(
            (Duration::from_millis(1800)..Duration::from_secs(4)).contains(&after),
            "closed {after:?} after the last byte, timeouts {timeouts}"
        );
    }
}
