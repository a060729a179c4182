//! Client mode: plain TCP in, verified TLS out (to openssl s_server, or to another tunnel
//! that asks for a client certificate).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::support::client;
use crate::support::judges::openssl_server;
use crate::support::pki::TestPki;
use crate::support::tcp::{Chat, read_line};
use crate::support::tunnels::*;

/// A plain TCP client reaches `openssl s_server -www` through a client-mode tunnel that
/// verifies the server against the test CA.
#[test]
fn a_plain_tcp_client_reaches_a_tls_server_through_a_client_mode_tunnel() {
    let pki = TestPki::new();
    let up = pki.leaf("upstream", &["upstream.test"]);
    let tls_server = openssl_server(&up.cert, &up.key, &[]);
    let to = SocketAddr::from(([127, 0, 0, 1], tls_server.port));
    let server = start(&[client_entry("db", to, &pki.ca_path, "upstream.test", "")]);
    let answer = client::raw_tcp(server.tunnel("db"), b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.0 200 ok"),
        "{answer}\n{}",
        server.log()
    );
}

/// The same, trusting the wrong CA: the local connection is closed and the log says the
/// TLS connection to the upstream failed.
#[test]
fn a_client_mode_tunnel_that_cannot_verify_the_server_closes_the_local_connection() {
    let pki = TestPki::new();
    let up = pki.leaf("upstream", &["upstream.test"]);
    let tls_server = openssl_server(&up.cert, &up.key, &[]);
    let to = SocketAddr::from(([127, 0, 0, 1], tls_server.port));
    let stranger = TestPki::named("another test root");
    let server = start(&[client_entry(
        "db",
        to,
        &stranger.ca_path,
        "upstream.test",
        "",
    )]);
    let answer = closed_answer(server.tunnel("db"), b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(answer, b"", "data came through an unverified connection");
    assert!(
        server.wait_log_line(
            &["TLS to the upstream failed", "tunnel=db"],
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
}

/// Two candados: a client-mode tunnel presenting alice's certificate reaches a server-mode
/// tunnel that requires one, and a plain TCP client chats through both; the same path
/// without a certificate is refused by the far end.
#[test]
fn a_client_mode_tunnel_presents_a_client_certificate_to_a_tunnel_that_requires_one() {
    let pki = TestPki::new();
    let leaf = pki.leaf("chat", &["chat.test"]);
    let alice = pki.client_leaf("alice", "alice", &["alice.test"]);
    let chat = Chat::start();
    let far = start(&[entry("chat", chat.addr, &leaf, &required(&pki.ca_path, ""))]);
    let to = far.tunnel("chat");
    let near = start(&[
        client_entry(
            "local",
            to,
            &pki.ca_path,
            "chat.test",
            &format!(
                "      cert: {}\n      key: {}\n",
                alice.cert.display(),
                alice.key.display()
            ),
        ),
        client_entry("anonymous", to, &pki.ca_path, "chat.test", ""),
    ]);

    let mut tcp = TcpStream::connect(near.tunnel("local")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"hello through two tunnels\n").unwrap();
    assert_eq!(
        read_line(&mut tcp).unwrap(),
        "hello through two tunnels\n",
        "near:\n{}\nfar:\n{}",
        near.log(),
        far.log()
    );

    let answer = closed_answer(near.tunnel("anonymous"), b"sneaking in\n");
    assert_eq!(
        answer, b"",
        "the far end answered a client without a certificate"
    );
    assert_refusal_logged(&far, "chat", "no client certificate");
    assert!(
        !chat.lines().iter().any(|l| l.contains("sneaking")),
        "{:?}",
        chat.lines()
    );
    assert_eq!(
        chat.accepted(),
        1,
        "only alice's connection reached the chat"
    );
}
