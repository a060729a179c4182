//! Relaying: half-close, SNI routing, PROXY v2, a refusing upstream, reload, idle timeout,
//! the connection limit and SIGTERM.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::client;
use crate::support::pki::TestPki;
use crate::support::server::Candado;
use crate::support::tcp::{
    Capture, Chat, Echo, exchange, parse_proxy_v2, read_line, read_to_end, refusing_addr, reply_to,
    tls_config, wait_until,
};
use crate::support::tunnels::*;
use crate::support::upstream::pattern;

/// A client that sends its request and then closes its write side (close_notify and FIN)
/// still reads the whole reply, which the upstream only sends once it has seen the end of
/// the request; the log counts the bytes both ways.
#[test]
fn a_client_that_closes_its_write_side_still_reads_the_whole_reply() {
    let pki = TestPki::new();
    let leaf = pki.leaf("echo", &["echo.test"]);
    let echo = Echo::start();
    let server = start(&[entry("echo", echo.addr, &leaf, "")]);
    let request = pattern(0, 300_000);
    let got = exchange(
        server.tunnel("echo"),
        "echo.test",
        tls_config(&pki.ca_pem, None, &[]),
        &request,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let expected = reply_to(&request);
    assert_eq!(
        got.reply.len(),
        expected.len(),
        "reply starts {:?}",
        String::from_utf8_lossy(&got.reply[..got.reply.len().min(20)])
    );
    assert!(
        got.reply == expected,
        "the reply differs from the upstream's"
    );
    let (bytes_in, bytes_out) = (
        format!("bytes_in={}", request.len()),
        format!("bytes_out={}", expected.len()),
    );
    assert!(
        server.wait_log_line(
            &["tunnel closed", "tunnel=echo", &bytes_in, &bytes_out],
            Duration::from_secs(5)
        ),
        "no `tunnel closed tunnel=echo {bytes_in} {bytes_out}` line:\n{}",
        server.log()
    );
}

/// Two tunnels on one listen address, each with its own names, certificate file and
/// upstream: the SNI name picks the certificate and the upstream.
#[test]
fn two_tunnels_on_one_port_route_by_sni_to_their_own_upstreams() {
    let pki = TestPki::new();
    let (a, b) = (pki.leaf("a", &["a.test"]), pki.leaf("b", &["b.test"]));
    let (up_a, up_b) = (Echo::start(), Echo::start());
    let server = start(&[entry("a", up_a.addr, &a, ""), entry("b", up_b.addr, &b, "")]);
    let addr = server.tunnel("a");
    assert_eq!(addr, server.tunnel("b"), "one port for both");
    let config = tls_config(&pki.ca_pem, None, &[]);
    let got = exchange(addr, "a.test", config.clone(), b"for a").unwrap();
    assert_eq!(got.peer, a.der(), "a.test gets a's certificate");
    assert_eq!(got.reply, reply_to(b"for a"));
    assert_eq!((up_a.accepted(), up_b.accepted()), (1, 0));
    let got = exchange(addr, "b.test", config, b"for b").unwrap();
    assert_eq!(got.peer, b.der(), "b.test gets b's certificate");
    assert_eq!(got.reply, reply_to(b"for b"));
    assert_eq!((up_a.accepted(), up_b.accepted()), (1, 1));
}

/// With `proxy_protocol: v2` and `alpn: [chat/1]`, the upstream first gets a PROXY v2 header
/// naming the client's own address and port and candado's, with the negotiated ALPN and the
/// SNI name as TLVs, then the client's bytes.
#[test]
fn the_upstream_gets_a_proxy_v2_header_with_the_client_address_alpn_and_sni() {
    let pki = TestPki::new();
    let leaf = pki.leaf("chat", &["chat.test"]);
    let capture = Capture::start();
    let server = start(&[entry(
        "chat",
        capture.addr,
        &leaf,
        "    proxy_protocol: v2\n    alpn: [chat/1]\n",
    )]);
    let addr = server.tunnel("chat");
    let mut tls = client::connect(
        addr,
        "chat.test",
        tls_config(&pki.ca_pem, None, &[b"chat/1"]),
    )
    .unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"chat/1"[..]));
    tls.write_all(b"hello\n").unwrap();
    tls.flush().unwrap();
    let bytes = capture.first(|b| parse_proxy_v2(b).is_ok_and(|h| b.len() >= h.len + 6));
    let header = parse_proxy_v2(&bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"));
    assert_eq!(header.version_command, 0x21, "version 2, PROXY");
    assert_eq!(header.family, 0x11, "TCP over IPv4");
    assert_eq!(
        header.source,
        tls.sock.local_addr().unwrap(),
        "the client's address and port"
    );
    assert_eq!(header.destination, addr, "candado's listen address");
    assert_eq!(
        header.tlv(0x01),
        Some(&b"chat/1"[..]),
        "ALPN TLV: {header:?}"
    );
    assert_eq!(
        header.tlv(0x02),
        Some(&b"chat.test"[..]),
        "AUTHORITY TLV: {header:?}"
    );
    assert_eq!(&bytes[header.len..], b"hello\n", "then the payload");
}

/// With client certificates, the PROXY header tells the upstream who the client is, as
/// HAProxy's `send-proxy-v2-ssl-cn` does: the SSL TLV says a certificate was presented and
/// verified, and carries the TLS version and the certificate's CN.
#[test]
fn the_proxy_v2_header_carries_the_verified_client_cn() {
    let pki = TestPki::new();
    let leaf = pki.leaf("who", &["who.test"]);
    let alice = pki.client_leaf("alice", "alice", &[]);
    let capture = Capture::start();
    let server = start(&[entry(
        "who",
        capture.addr,
        &leaf,
        &format!("    proxy_protocol: v2\n{}", required(&pki.ca_path, "")),
    )]);
    let config = tls_config(&pki.ca_pem, Some(&alice), &[]);
    let mut tls = client::connect(server.tunnel("who"), "who.test", config).unwrap();
    tls.write_all(b"hi\n").unwrap();
    tls.flush().unwrap();
    let bytes = capture.first(|b| parse_proxy_v2(b).is_ok_and(|h| b.len() >= h.len + 3));
    let header = parse_proxy_v2(&bytes).unwrap_or_else(|e| panic!("{e}: {bytes:?}"));
    let ssl = header.tlv(0x20).expect("an SSL TLV");
    assert_eq!(
        ssl[0], 0x07,
        "TLS, with a certificate on this connection and session"
    );
    assert_eq!(&ssl[1..5], &[0, 0, 0, 0], "verified");
    let mut subs = Vec::new();
    let mut at = 5;
    while at + 3 <= ssl.len() {
        let n = usize::from(u16::from_be_bytes([ssl[at + 1], ssl[at + 2]]));
        subs.push((
            ssl[at],
            String::from_utf8_lossy(&ssl[at + 3..at + 3 + n]).into_owned(),
        ));
        at += 3 + n;
    }
    assert!(subs.contains(&(0x21, "TLSv1.3".into())), "{subs:?}");
    assert!(subs.contains(&(0x22, "alice".into())), "{subs:?}");
    assert_eq!(&bytes[header.len..], b"hi\n");
}

/// An upstream that refuses connections: the client's TLS connection is closed (not left
/// hanging) and the log names the tunnel and the upstream.
#[test]
fn an_upstream_that_refuses_closes_the_client_connection_and_the_log_says_so() {
    let pki = TestPki::new();
    let leaf = pki.leaf("dead", &["dead.test"]);
    let dead = refusing_addr();
    let server = start(&[entry("dead", dead, &leaf, "")]);
    match exchange(
        server.tunnel("dead"),
        "dead.test",
        tls_config(&pki.ca_pem, None, &[]),
        b"anyone there?\n",
    ) {
        Ok(got) => assert!(got.reply.is_empty(), "read {:?}", got.reply),
        Err(e) => assert!(
            !e.starts_with("WouldBlock") && !e.starts_with("TimedOut"),
            "the connection stayed open: {e}"
        ),
    }
    let upstream = format!("upstream={dead}");
    assert!(
        server.wait_log_line(
            &["cannot connect to the upstream", "tunnel=dead", &upstream],
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
}

/// SIGHUP after the certificate files were swapped: the connection opened before keeps
/// relaying both ways, and new handshakes get the new certificate.
#[test]
fn an_open_tunnel_connection_keeps_relaying_across_a_reload_and_new_ones_get_the_new_certificate() {
    let pki = TestPki::new();
    let v0 = pki.leaf("v0", &["chat.test"]);
    let live = pki.write("live", &v0.cert_pem, &v0.key_pem);
    let chat = Chat::start();
    let server = start(&[entry("chat", chat.addr, &live, "")]);
    let addr = server.tunnel("chat");
    let config = tls_config(&pki.ca_pem, None, &[]);
    let mut open = client::connect(addr, "chat.test", config.clone()).unwrap();
    assert_eq!(open.conn.peer_certificates().unwrap()[0].to_vec(), v0.der());
    open.write_all(b"before the reload\n").unwrap();
    assert_eq!(read_line(&mut open).unwrap(), "before the reload\n");

    let v1 = pki.leaf("v1", &["chat.test"]);
    install(&v1, &live.cert, &live.key);
    server.signal("HUP");
    let served = || {
        client::connect(addr, "chat.test", config.clone())
            .ok()
            .and_then(|t| Some(t.conn.peer_certificates()?[0].to_vec()))
    };
    assert!(
        wait_until(Duration::from_secs(5), || served() == Some(v1.der())),
        "new handshakes do not get the new certificate:\n{}",
        server.log()
    );
    assert!(server.wait_log("SIGHUP received: reloaded", Duration::from_secs(2)));

    open.write_all(b"after the reload\n").unwrap();
    assert_eq!(
        read_line(&mut open).unwrap(),
        "after the reload\n",
        "{}",
        server.log()
    );
}

/// `idle_timeout: 1s`: a connection where nothing moves either way is closed after about a
/// second, and the log says the tunnel closed.
#[test]
fn a_quiet_connection_is_closed_after_the_idle_timeout() {
    let pki = TestPki::new();
    let leaf = pki.leaf("idle", &["idle.test"]);
    let chat = Chat::start();
    let server = start(&[entry("idle", chat.addr, &leaf, "    idle_timeout: 1s\n")]);
    let mut tls = client::connect(
        server.tunnel("idle"),
        "idle.test",
        tls_config(&pki.ca_pem, None, &[]),
    )
    .unwrap();
    tls.write_all(b"ping\n").unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "ping\n");
    let quiet = Instant::now();
    let end = read_to_end(&mut tls);
    let waited = quiet.elapsed();
    if let Err(e) = &end {
        assert!(
            !e.starts_with("WouldBlock") && !e.starts_with("TimedOut"),
            "still open after 10 s: {e}"
        );
    }
    assert_eq!(end.unwrap_or_default(), b"", "nothing more was sent");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    assert!(
        server.wait_log_line(&["tunnel closed", "tunnel=idle"], Duration::from_secs(2)),
        "{}",
        server.log()
    );
}

/// `limits.max_connections` holds for tunnels as for HTTPS: beyond it a client waits in the
/// kernel's queue (its handshake gets no answer) until a connection ends.
#[test]
fn tunnel_connections_beyond_the_limit_wait_their_turn() {
    let pki = TestPki::new();
    let leaf = pki.leaf("lim", &["lim.test"]);
    let echo = Echo::start();
    let yaml = format!(
        "limits: {{max_connections: 1}}\ntunnels:\n{}",
        entry("lim", echo.addr, &leaf, "")
    );
    let server = Candado::tunnels_from_yaml(&yaml, 1);
    let config = tls_config(&pki.ca_pem, None, &[]);
    let first = client::connect(server.tunnel("lim"), "lim.test", config.clone()).unwrap();
    let second = TcpStream::connect(server.tunnel("lim")).unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let conn = rustls::ClientConnection::new(config, "lim.test".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, second);
    assert!(
        tls.conn.complete_io(&mut tls.sock).is_err(),
        "the second handshake must wait"
    );
    drop(first);
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("handshake once the first connection has ended");
    }
}

/// SIGTERM: no new connections, an open tunnel keeps relaying while the drain lasts, and the
/// process exits once `timeouts.shutdown` has passed, saying it closed what was still open.
#[test]
fn sigterm_drains_open_tunnels_for_the_shutdown_timeout_then_exits() {
    let pki = TestPki::new();
    let leaf = pki.leaf("drain", &["drain.test"]);
    let chat = Chat::start();
    let yaml = format!(
        "timeouts: {{shutdown: 2s}}\ntunnels:\n{}",
        entry("drain", chat.addr, &leaf, "")
    );
    let mut server = Candado::tunnels_from_yaml(&yaml, 1);
    let addr = server.tunnel("drain");
    let mut tls = client::connect(addr, "drain.test", tls_config(&pki.ca_pem, None, &[])).unwrap();
    tls.write_all(b"before\n").unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "before\n");
    let asked = Instant::now();
    server.signal("TERM");
    assert!(server.wait_log("SIGTERM received", Duration::from_secs(5)));
    tls.write_all(b"during\n").unwrap();
    assert_eq!(read_line(&mut tls).unwrap(), "during\n");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status}");
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        server
            .log()
            .contains("connections still busy after the shutdown timeout were closed"),
        "{}",
        server.log()
    );
}
