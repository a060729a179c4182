//! What the TLS listener offers, judged by openssl s_client, curl and a rustls client.

use crate::support::client::{self, HOST};
use crate::support::{Fixture, client::s_client};
use rustls::client::{Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn tls_1_1_is_refused_and_1_2_and_1_3_are_accepted() {
    let f = Fixture::start("", "");
    let ca = &f.pki.ca_path;
    let (ok, out) = s_client(
        f.server.https,
        ca,
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    assert!(!ok, "TLS 1.1 must fail:\n{out}");
    let (ok, out) = s_client(f.server.https, ca, &["-tls1_2", "-verify_return_error"]);
    assert!(ok && out.contains("Protocol  : TLSv1.2"), "{out}");
    let (ok, out) = s_client(f.server.https, ca, &["-tls1_3", "-verify_return_error"]);
    assert!(ok && out.contains("TLSv1.3"), "{out}");
}

#[test]
fn weak_tls_1_2_suites_are_refused() {
    let f = Fixture::start("", "");
    for weak in [
        "AES128-SHA",
        "ECDHE-ECDSA-AES128-SHA",
        "AES256-GCM-SHA384",
        "DES-CBC3-SHA",
    ] {
        let (ok, out) = s_client(
            f.server.https,
            &f.pki.ca_path,
            &["-tls1_2", "-cipher", &format!("{weak}@SECLEVEL=0")],
        );
        assert!(!ok, "{weak} must be refused:\n{out}");
    }
    let (ok, out) = s_client(
        f.server.https,
        &f.pki.ca_path,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
    );
    assert!(ok, "{out}");
}

#[test]
fn the_server_picks_aes_128_gcm_whatever_order_the_client_offers() {
    let f = Fixture::start("", "");
    let ca = &f.pki.ca_path;
    let suites = "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256";
    let (ok, out) = s_client(f.server.https, ca, &["-tls1_3", "-ciphersuites", suites]);
    assert!(ok && out.contains("TLS_AES_128_GCM_SHA256"), "{out}");
    let (ok, out) = s_client(
        f.server.https,
        ca,
        &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
    );
    assert!(ok && out.contains("TLS_AES_256_GCM_SHA384"), "{out}");
    let twelve =
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256";
    let (ok, out) = s_client(f.server.https, ca, &["-tls1_2", "-cipher", twelve]);
    assert!(ok && out.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{out}");
}

#[test]
fn the_modern_policy_serves_tls_1_3_only() {
    let f = Fixture::start("", "tls: {policy: modern}");
    let (ok, out) = s_client(f.server.https, &f.pki.ca_path, &["-tls1_2"]);
    assert!(!ok, "{out}");
    let (ok, out) = s_client(
        f.server.https,
        &f.pki.ca_path,
        &["-tls1_3", "-verify_return_error"],
    );
    assert!(ok, "{out}");
}

#[test]
fn alpn_negotiates_h2_and_http_1_1() {
    let f = Fixture::start("", "");
    let (_, out) = s_client(f.server.https, &f.pki.ca_path, &["-alpn", "h2,http/1.1"]);
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    let (_, out) = s_client(f.server.https, &f.pki.ca_path, &["-alpn", "http/1.1"]);
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    let res = f.get("/", &["--http2"]);
    assert!(res.head.starts_with("HTTP/2 200"), "{}", res.head);
    let res = f.get("/", &["--http1.1"]);
    assert!(res.head.starts_with("HTTP/1.1 200"), "{}", res.head);
}

/// A new connection with `config` (which holds the tickets of an earlier one) is resumed.
fn assert_the_next_connection_resumes(f: &Fixture, config: std::sync::Arc<rustls::ClientConfig>) {
    let next = client::connect(f.server.https, HOST, config).unwrap();
    assert_eq!(
        next.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}

#[test]
fn sessions_resume_with_tickets() {
    let f = Fixture::start("", "");
    let config = client::client_config(&f.pki.ca_pem, &[b"http/1.1"]);
    // TLS 1.3 tickets arrive after the handshake: make one request so they are read.
    let mut first = client::connect(f.server.https, HOST, config.clone()).unwrap();
    get_and_close(&mut first);
    assert_eq!(
        first.conn.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    assert_the_next_connection_resumes(&f, config);
}

#[test]
fn each_handshake_leaves_one_ticket_so_a_client_keeps_resuming() {
    // A TLS 1.3 client uses a ticket once: candado sends one per handshake, resumed ones
    // included, so every connection leaves the client a ticket for the next.
    let f = Fixture::start("", "");
    let tickets = Arc::new(CountingTickets::default());
    let mut config = (*client::client_config(&f.pki.ca_pem, &[b"http/1.1"])).clone();
    config.resumption = rustls::client::Resumption::store(tickets.clone());
    let config = Arc::new(config);
    for (n, kind) in [
        rustls::HandshakeKind::Full,
        rustls::HandshakeKind::Resumed,
        rustls::HandshakeKind::Resumed,
    ]
    .into_iter()
    .enumerate()
    {
        let mut conn = client::connect(f.server.https, HOST, config.clone()).unwrap();
        let answer = get_and_close(&mut conn);
        assert!(answer.starts_with(b"HTTP/1.1 200"), "connection {n}");
        assert_eq!(conn.conn.handshake_kind(), Some(kind), "connection {n}");
        assert_eq!(tickets.received(), n + 1, "tickets after connection {n}");
    }
}

/// Asks for `/` on `conn` and reads the answer to the server's close: the TLS 1.3 tickets
/// that came with it are then in the client's session store.
fn get_and_close(conn: &mut client::Tls) -> Vec<u8> {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    answer
}

/// rustls's client session cache, counting the TLS 1.3 tickets it is given.
#[derive(Debug)]
struct CountingTickets {
    cache: rustls::client::ClientSessionMemoryCache,
    received: AtomicUsize,
}

impl Default for CountingTickets {
    fn default() -> Self {
        CountingTickets {
            cache: rustls::client::ClientSessionMemoryCache::new(32),
            received: AtomicUsize::new(0),
        }
    }
}

impl CountingTickets {
    fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

impl rustls::client::ClientSessionStore for CountingTickets {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.cache.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.cache.kx_hint(name)
    }
    fn set_tls12_session(&self, name: ServerName<'static>, v: Tls12ClientSessionValue) {
        self.cache.set_tls12_session(name, v)
    }
    fn tls12_session(&self, name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.cache.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.cache.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(&self, name: ServerName<'static>, v: Tls13ClientSessionValue) {
        self.received.fetch_add(1, Ordering::SeqCst);
        self.cache.insert_tls13_ticket(name, v)
    }
    fn take_tls13_ticket(&self, name: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.cache.take_tls13_ticket(name)
    }
}

#[test]
fn a_connection_that_sends_no_request_still_gets_tickets_to_resume_with() {
    // candado sends the tickets with the first response when a request came with the
    // client's Finished; a client that only connects (a browser's preconnect, a probe) gets
    // them at once.
    let f = Fixture::start("", "");
    let config = client::client_config(&f.pki.ca_pem, &[b"http/1.1"]);
    let mut first = client::connect(f.server.https, HOST, config.clone()).unwrap();
    first
        .sock
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let waited = first.read(&mut [0u8; 64]).unwrap_err();
    assert_eq!(waited.kind(), std::io::ErrorKind::WouldBlock, "{waited}");
    drop(first);
    assert_the_next_connection_resumes(&f, config);
}

#[test]
fn plain_http_on_the_tls_port_gets_a_redirect_not_a_dropped_connection() {
    let f = Fixture::start("", "");
    let port = f.server.https.port();
    let raw = client::raw_tcp(
        f.server.https,
        format!("GET /x?y=1 HTTP/1.1\r\nHost: test.example:{port}\r\n\r\n").as_bytes(),
    );
    assert_eq!(client::status_of(&raw), 301, "{raw}");
    assert!(
        raw.contains(&format!("location: https://test.example:{port}/x?y=1\r\n")),
        "{raw}"
    );
    assert!(
        !raw.to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{raw}"
    );
}

#[test]
fn clients_without_sni_get_the_default_certificate() {
    let f = Fixture::start("", "");
    let url = format!("https://127.0.0.1:{}/", f.server.https.port());
    let res = client::curl_raw(&url, &["--cacert", f.pki.ca_path.to_str().unwrap()]);
    assert_eq!(res.status, 200);
}
