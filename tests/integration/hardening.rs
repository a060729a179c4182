//! Hosts, limits, deadlines and shutdown: what a slow, sloppy or hostile client meets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::Fixture;
use crate::support::client::{self, HOST, raw_tls, status_of};

const SHORT: &str = "timeouts: {handshake: 1s, header_read: 1s, idle: 1s}";

/// Seconds until the server closes `stream` (reads until EOF), bounded by 10 s.
fn seconds_until_closed(stream: &mut impl Read) -> f64 {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(10) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue;
            }
            Err(_) => break,
        }
    }
    started.elapsed().as_secs_f64()
}

#[test]
fn a_connection_that_never_says_hello_is_closed_after_the_handshake_deadline() {
    let f = Fixture::start("", SHORT);
    let mut tcp = TcpStream::connect(f.server.https).unwrap();
    tcp.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let took = seconds_until_closed(&mut tcp);
    assert!((0.8..4.0).contains(&took), "closed after {took}s");
}

#[test]
fn a_slow_header_client_is_cut_off() {
    let f = Fixture::start("", SHORT);
    // Header lines after a request line, or blank lines before one (which a server skips):
    // activity alone must not keep the connection open. Every 700 ms (a 200 ms read, then
    // 500): longer than an HTTP/1.1 connection waits before it parks, so a park must not
    // restart the deadline either.
    for (opening, dribble) in [
        (
            &b"GET / HTTP/1.1\r\nHost: test.example\r\n"[..],
            &b"X-Slow: 1\r\n"[..],
        ),
        (b"", b"\r\n"),
    ] {
        let mut tls = client::connect(
            f.server.https,
            HOST,
            client::client_config(&f.pki.ca_pem, &[b"http/1.1"]),
        )
        .unwrap();
        tls.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        tls.write_all(opening).unwrap();
        let started = Instant::now();
        let mut closed = false;
        while started.elapsed() < Duration::from_secs(6) {
            if tls.write_all(dribble).and_then(|_| tls.flush()).is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 512];
            if tls.read(&mut buf).is_ok() {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let took = started.elapsed().as_secs_f64();
        let what = String::from_utf8_lossy(dribble);
        assert!(
            closed && took < 4.0,
            "a client sending {what:?} every 700 ms still connected after {took}s"
        );
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let f = Fixture::start("", SHORT);
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let mut tls = client::connect(
            f.server.https,
            HOST,
            client::client_config(&f.pki.ca_pem, &[alpn]),
        )
        .unwrap();
        tls.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if alpn == b"h2" {
            // The client preface and an empty SETTINGS frame, then nothing.
            tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                .unwrap();
        } else {
            tls.write_all(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n")
                .unwrap();
        }
        let took = seconds_until_closed(&mut tls);
        assert!(
            took < 5.0,
            "{} idle connection open after {took}s",
            String::from_utf8_lossy(alpn)
        );
    }
}

#[test]
fn oversized_request_heads_get_431() {
    let f = Fixture::start("", "limits: {max_header_bytes: 4096}");
    let big = "a".repeat(8000);
    let raw = raw_tls(
        f.server.https,
        &f.pki.ca_pem,
        format!("GET / HTTP/1.1\r\nHost: test.example\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&raw), 431, "{raw}");
}

#[test]
fn missing_duplicate_and_unknown_hosts_are_refused() {
    let f = Fixture::start("", "");
    let ask = |req: &str| status_of(&raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes()));
    assert_eq!(ask("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 400);
    assert_eq!(
        ask(
            "GET / HTTP/1.1\r\nHost: test.example\r\nHost: test.example\r\nConnection: close\r\n\r\n"
        ),
        400
    );
    assert_eq!(
        ask("GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n"),
        421
    );
    assert_eq!(
        ask("GET / HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n"),
        200
    );
}

#[test]
fn connections_beyond_the_limit_wait_their_turn() {
    let f = Fixture::start("", "limits: {max_connections: 2}");
    let config = client::client_config(&f.pki.ca_pem, &[b"http/1.1"]);
    let a = client::connect(f.server.https, HOST, config.clone()).unwrap();
    let _b = client::connect(f.server.https, HOST, config.clone()).unwrap();
    let third = TcpStream::connect(f.server.https).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    // The kernel accepts the TCP connection, but candado does not take it up: a ClientHello
    // gets no answer while two connections are open.
    let conn = rustls::ClientConnection::new(config.clone(), HOST.try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, third);
    let err = tls.conn.complete_io(&mut tls.sock);
    assert!(err.is_err(), "the third handshake must wait");
    drop(a);
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("handshake once a slot is free");
    }
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_exits_0() {
    let big: Vec<u8> = vec![7u8; 4_000_000];
    let mut f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("big.bin"), &big).unwrap()
    });
    let (addr, ca) = (f.server.https, f.pki.ca_path.clone());
    let download =
        std::thread::spawn(move || client::curl(addr, &ca, "/big.bin", &["--limit-rate", "2M"]));
    std::thread::sleep(Duration::from_millis(500));
    f.server.signal("TERM");
    assert!(
        f.server
            .wait_log("SIGTERM received", Duration::from_secs(5))
    );
    // New connections are refused while the download goes on.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() || {
            std::thread::sleep(Duration::from_millis(100));
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
        }
    );
    let res = download.join().unwrap();
    assert_eq!((res.status, res.body.len()), (200, 4_000_000));
    let status = f.server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", f.server.log());
}

#[test]
fn every_request_is_in_the_access_log() {
    let f = Fixture::start("", "");
    f.get("/nope?secret=1", &[]);
    assert!(f.server.wait_log("path=/nope", Duration::from_secs(2)));
    let log = f.server.log();
    let line = log.lines().find(|l| l.contains("path=/nope")).unwrap();
    for part in [
        "client=127.0.0.1",
        "method=GET",
        "status=404",
        "bytes=",
        "duration_ms=",
        "tls=TLSv1.3",
    ] {
        assert!(line.contains(part), "{part} missing in {line}");
    }
    assert!(
        !line.contains("secret=1"),
        "the query string stays out of the log: {line}"
    );
}
