//! TCP TLS tunnels: a plain TCP program (a chat, an echo, a recorder) behind candado, reached
//! with openssl s_client and rustls clients; client certificates required, checked against a
//! CA, an allow list and a CRL; SNI routing, PROXY protocol v2, client mode, reload, idle
//! timeout and the `candado tunnel` command line.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::client;
use crate::support::free_port;
use crate::support::judges::openssl_server;
use crate::support::pki::{Leaf, TestPki};
use crate::support::server::Candado;
use crate::support::tcp::{
    Capture, Chat, Echo, exchange, parse_proxy_v2, read_line, read_to_end, refused, refusing_addr,
    reply_to, tls_config, wait_until,
};
use crate::support::upstream::pattern;

/// One entry of a `tunnels:` list: NAME on 127.0.0.1:0 for the SNI name NAME.test, with
/// `leaf` as its certificate, to `to`, plus extra lines (indented by the caller to 4 spaces).
fn entry(name: &str, to: SocketAddr, leaf: &Leaf, extra: &str) -> String {
    format!(
        "  - name: {name}\n    listen: 127.0.0.1:0\n    to: {to}\n    names: [{name}.test]\n    certificate: {{cert: {}, key: {}}}\n{extra}",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// The `client_auth:` lines of an entry: certificates from `ca` required, plus `more` lines
/// (indented by the caller to 6 spaces).
fn required(ca: &Path, more: &str) -> String {
    format!(
        "    client_auth:\n      mode: required\n      ca: {}\n{more}",
        ca.display()
    )
}

fn start(entries: &[String]) -> Candado {
    Candado::tunnels_from_yaml(&format!("tunnels:\n{}", entries.concat()), entries.len())
}

/// Asserts that `server` logged the refusal of a client certificate for `tunnel` with a reason
/// containing `reason`.
fn assert_refusal_logged(server: &Candado, tunnel: &str, reason: &str) {
    let tunnel = format!("tunnel={tunnel}");
    assert!(
        server.wait_log_line(
            &["client certificate refused", &tunnel, reason],
            Duration::from_secs(5)
        ),
        "no `client certificate refused {tunnel}` line with `{reason}`:\n{}",
        server.log()
    );
}

/// Asserts that a refused client saw a TLS alert, not data nor a silent close.
fn assert_alert(ended: &str) {
    assert!(
        ended.to_ascii_lowercase().contains("alert"),
        "the refused client got no TLS alert: {ended}"
    );
}

/// `timeout 30 openssl s_client -quiet ...` as a chat client: lines go in on stdin, what the
/// tunnel sends back is read line by line on a thread.
struct SClient {
    child: Child,
    stdin: ChildStdin,
    heard: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl SClient {
    fn connect(addr: SocketAddr, sni: &str, ca: &Path, cert: Option<&Leaf>) -> SClient {
        let mut cmd = Command::new("timeout");
        cmd.args(["30", "openssl", "s_client", "-quiet", "-connect"])
            .arg(addr.to_string())
            .args(["-servername", sni, "-CAfile"])
            .arg(ca);
        if let Some(leaf) = cert {
            cmd.arg("-cert").arg(&leaf.cert).arg("-key").arg(&leaf.key);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, heard) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        SClient {
            stdin: child.stdin.take().unwrap(),
            child,
            heard,
            stderr,
        }
    }

    /// Types a line (a refused client's pipe may already be gone: that is fine).
    fn say(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    /// Whether `line` arrives within `timeout`.
    fn hears(&self, line: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.heard.recv_timeout(left) {
                Ok(l) if l.trim_end() == line => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Everything received so far.
    fn heard_so_far(&self) -> Vec<String> {
        self.heard.try_iter().collect()
    }

    fn exits_within(&mut self, timeout: Duration) -> bool {
        wait_until(timeout, || matches!(self.child.try_wait(), Ok(Some(_))))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for SClient {
    fn drop(&mut self) {
        // SIGTERM to `timeout` reaches openssl too; SIGKILL would leave openssl running.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        if !self.exits_within(Duration::from_secs(5)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The seeds' scenario: a chat server behind a tunnel that requires certificates from the
/// test CA; alice and bob have one.
struct ChatTunnel {
    pki: TestPki,
    alice: Leaf,
    bob: Leaf,
    chat: Chat,
    server: Candado,
}

impl ChatTunnel {
    fn start() -> ChatTunnel {
        let pki = TestPki::new();
        let leaf = pki.leaf("chat", &["chat.test"]);
        let alice = pki.client_leaf("alice", "alice", &["alice.test"]);
        let bob = pki.client_leaf("bob", "bob", &["bob.test"]);
        let chat = Chat::start();
        let server = start(&[entry("chat", chat.addr, &leaf, &required(&pki.ca_path, ""))]);
        ChatTunnel {
            pki,
            alice,
            bob,
            chat,
            server,
        }
    }

    fn join(&self, cert: Option<&Leaf>) -> SClient {
        SClient::connect(
            self.server.tunnel("chat"),
            "chat.test",
            &self.pki.ca_path,
            cert,
        )
    }

    fn wait_joined(&self, n: usize) {
        assert!(
            wait_until(Duration::from_secs(10), || self.chat.joined() == n),
            "the chat accepted {} connections, not {n}:\n{}",
            self.chat.accepted(),
            self.server.log()
        );
    }
}

/// Alice and Bob, each with a certificate, chat through the tunnel with openssl s_client: a
/// line typed by one shows up at the other.
#[test]
fn two_chat_clients_with_certificates_talk_through_a_tunnel_that_requires_them() {
    let t = ChatTunnel::start();
    let mut alice = t.join(Some(&t.alice));
    let mut bob = t.join(Some(&t.bob));
    t.wait_joined(2);
    alice.say("hello bob, this is alice");
    assert!(
        bob.hears("hello bob, this is alice", Duration::from_secs(10)),
        "bob did not get alice's line; bob's openssl: {}\n{}",
        bob.stderr(),
        t.server.log()
    );
    bob.say("hi alice");
    assert!(
        alice.hears("hi alice", Duration::from_secs(10)),
        "alice did not get bob's line; alice's openssl: {}",
        alice.stderr()
    );
}

/// While alice is in the chat, an intruder's s_client with `cert` is refused: it is
/// disconnected, its line reaches nobody, the chat accepts no new connection and candado's
/// log says why.
/// `intruder_cert` gets the tunnel and an unrelated CA.
fn assert_intruder_refused(
    intruder_cert: impl FnOnce(&ChatTunnel, &TestPki) -> Option<Leaf>,
    reason: &str,
) {
    let t = ChatTunnel::start();
    let alice = t.join(Some(&t.alice));
    t.wait_joined(1);
    let stranger = TestPki::named("another test root");
    let cert = intruder_cert(&t, &stranger);
    let mut intruder = t.join(cert.as_ref());
    intruder.say("intruder was here");
    assert!(
        intruder.exits_within(Duration::from_secs(15)),
        "the intruder's s_client is still connected: {}",
        intruder.stderr()
    );
    assert_alert(&intruder.stderr());
    assert_refusal_logged(&t.server, "chat", reason);
    assert!(
        !alice.hears("intruder was here", Duration::from_millis(500)),
        "the intruder's line reached alice"
    );
    assert!(
        !t.chat.lines().iter().any(|l| l.contains("intruder")),
        "the intruder's line reached the chat: {:?}",
        t.chat.lines()
    );
    assert_eq!(
        t.chat.accepted(),
        1,
        "the chat server was contacted for the intruder"
    );
    assert!(
        intruder.heard_so_far().is_empty(),
        "the intruder read chat data"
    );
}

/// No certificate, while the tunnel requires one.
#[test]
fn a_chat_client_without_a_certificate_is_refused_and_the_log_says_why() {
    assert_intruder_refused(|_, _| None, "no client certificate");
}

/// A certificate from a CA the tunnel does not trust.
#[test]
fn a_chat_client_with_a_certificate_from_another_ca_is_refused_and_the_log_says_why() {
    assert_intruder_refused(
        |_, stranger| Some(stranger.client_leaf("mallory", "mallory", &["mallory.test"])),
        "unknown CA",
    );
}

/// A certificate from the right CA that expired yesterday.
#[test]
fn a_chat_client_with_an_expired_certificate_is_refused_and_the_log_says_why() {
    assert_intruder_refused(
        |t, _| Some(t.pki.expired_client_leaf("old", "alice")),
        "expired",
    );
}

/// A certificate from a different CA that happens to bear the trusted CA's name (two test or
/// development CAs made the same way, with different keys) is refused as from an unknown CA.
#[test]
fn a_certificate_from_a_different_ca_with_the_same_name_is_refused_as_from_an_unknown_ca() {
    let pki = TestPki::new();
    let twin = TestPki::new();
    let leaf = pki.leaf("twin", &["twin.test"]);
    let mallory = twin.client_leaf("mallory", "mallory", &["mallory.test"]);
    let echo = Echo::start();
    let server = start(&[entry("twin", echo.addr, &leaf, &required(&pki.ca_path, ""))]);
    assert_alert(&refused(
        server.tunnel("twin"),
        "twin.test",
        tls_config(&pki.ca_pem, Some(&mallory), &[]),
    ));
    assert_refusal_logged(&server, "twin", "unknown CA");
    assert_eq!(echo.accepted(), 0, "the upstream was contacted");
}

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

/// A tunnel, its CA and its echo upstream, for tests where one client gets in and another
/// does not.
struct LetsIn<'a> {
    server: &'a Candado,
    tunnel: &'a str,
    pki: &'a TestPki,
    echo: &'a Echo,
}

impl LetsIn<'_> {
    /// `allowed` reaches the echo; `turned_away` gets only an alert and the log says `reason`;
    /// the upstream saw only the allowed client.
    fn only(&self, allowed: &Leaf, turned_away: &Leaf, reason: &str) {
        let addr = self.server.tunnel(self.tunnel);
        let sni = format!("{}.test", self.tunnel);
        let config = |leaf| tls_config(&self.pki.ca_pem, Some(leaf), &[]);
        let got = exchange(addr, &sni, config(allowed), b"let me in")
            .unwrap_or_else(|e| panic!("the allowed client: {e}\n{}", self.server.log()));
        assert_eq!(got.reply, reply_to(b"let me in"));
        assert_alert(&refused(addr, &sni, config(turned_away)));
        assert_refusal_logged(self.server, self.tunnel, reason);
        assert_eq!(
            self.echo.accepted(),
            1,
            "the upstream saw only the allowed client"
        );
    }
}

/// `allow: {cn: [alice]}`: alice's certificate passes, bob's (same CA) is refused with an
/// alert and the log says he is not in the allow list.
#[test]
fn a_certificate_whose_cn_is_not_in_the_allow_list_is_refused_and_a_listed_one_passes() {
    let pki = TestPki::new();
    let leaf = pki.leaf("gate", &["gate.test"]);
    let alice = pki.client_leaf("alice", "alice", &["alice.test"]);
    let bob = pki.client_leaf("bob", "bob", &["bob.test"]);
    let echo = Echo::start();
    let server = start(&[entry(
        "gate",
        echo.addr,
        &leaf,
        &required(&pki.ca_path, "      allow: {cn: [alice]}\n"),
    )]);
    let lets_in = LetsIn {
        server: &server,
        tunnel: "gate",
        pki: &pki,
        echo: &echo,
    };
    lets_in.only(&alice, &bob, "not in the allow list");
}

/// The SHA-256 of a certificate's SubjectPublicKeyInfo, in lowercase hex.
fn spki_sha256(leaf: &Leaf) -> String {
    let der = leaf.der();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    Sha256::digest(cert.tbs_certificate.subject_pki.raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `allow: {spki_sha256: [...]}` pins one key: carol (whose CN is listed nowhere) passes,
/// dave is refused.
#[test]
fn a_pinned_public_key_passes_and_any_other_key_is_refused() {
    let pki = TestPki::new();
    let leaf = pki.leaf("pin", &["pin.test"]);
    let carol = pki.client_leaf("carol", "carol", &[]);
    let dave = pki.client_leaf("dave", "dave", &[]);
    let echo = Echo::start();
    let server = start(&[entry(
        "pin",
        echo.addr,
        &leaf,
        &required(
            &pki.ca_path,
            &format!(
                "      allow: {{spki_sha256: ['{}']}}\n",
                spki_sha256(&carol)
            ),
        ),
    )]);
    let lets_in = LetsIn {
        server: &server,
        tunnel: "pin",
        pki: &pki,
        echo: &echo,
    };
    lets_in.only(&carol, &dave, "not in the allow list");
}

/// With a CRL that revokes eve's serial number, eve is refused and the log says `revoked`;
/// frank, from the same CA and not on the list, passes.
#[test]
fn a_certificate_revoked_by_the_crl_is_refused_and_the_log_says_revoked() {
    let pki = TestPki::new();
    let leaf = pki.leaf("crl", &["crl.test"]);
    let eve = pki.client_leaf_with_serial("eve", "eve", 0x5eed);
    let frank = pki.client_leaf_with_serial("frank", "frank", 0x600d);
    let crl = pki.crl("revoked", &[0x5eed]);
    let echo = Echo::start();
    let server = start(&[entry(
        "crl",
        echo.addr,
        &leaf,
        &required(&pki.ca_path, &format!("      crl: [{}]\n", crl.display())),
    )]);
    let lets_in = LetsIn {
        server: &server,
        tunnel: "crl",
        pki: &pki,
        echo: &echo,
    };
    lets_in.only(&frank, &eve, "revoked");
}

/// A new CRL is picked up without a signal or a restart, like a renewed certificate: frank
/// passes until the CRL file that revokes him replaces the empty one.
#[test]
fn a_rewritten_crl_file_revokes_without_a_restart() {
    let pki = TestPki::new();
    let leaf = pki.leaf("crl", &["crl.test"]);
    let frank = pki.client_leaf_with_serial("frank", "frank", 0x600d);
    let crl = pki.crl("list", &[]);
    let echo = Echo::start();
    let server = start(&[entry(
        "crl",
        echo.addr,
        &leaf,
        &required(&pki.ca_path, &format!("      crl: [{}]\n", crl.display())),
    )]);
    let addr = server.tunnel("crl");
    let config = || tls_config(&pki.ca_pem, Some(&frank), &[]);
    let got = exchange(addr, "crl.test", config(), b"frank").unwrap();
    assert_eq!(got.reply, reply_to(b"frank"));
    assert_eq!(pki.crl("list", &[0x600d]), crl);
    assert!(
        server.wait_log(
            "a certificate, key, CA or CRL file changed: reloaded",
            Duration::from_secs(10)
        ),
        "{}",
        server.log()
    );
    assert_alert(&refused(addr, "crl.test", config()));
    assert_refusal_logged(&server, "crl", "revoked");
}

/// A client-mode tunnel NAME on a port of its own, to `to`, trusting `ca` for `server_name`,
/// plus extra lines under `tls_client:` (indented by the caller to 6 spaces).
fn client_entry(name: &str, to: SocketAddr, ca: &Path, server_name: &str, more: &str) -> String {
    format!(
        "  - name: {name}\n    listen: 127.0.0.1:{}\n    to: {to}\n    tls_client:\n      ca: {}\n      server_name: {server_name}\n{more}",
        free_port(),
        ca.display()
    )
}

/// Sends `request` over plain TCP and reads what comes back until the connection closes,
/// which must happen within 10 s.
fn closed_answer(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The tunnel may close before the request is written.
    let _ = tcp.write_all(request);
    let mut answer = Vec::new();
    if let Err(e) = tcp.read_to_end(&mut answer) {
        assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the local connection was left open"
        );
    }
    answer
}

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

/// Replaces the live files the way an operator does: write aside, then rename.
fn install(leaf: &Leaf, cert: &Path, key: &Path) {
    let (tc, tk) = (
        cert.with_extension("crt.new"),
        key.with_extension("key.new"),
    );
    std::fs::copy(&leaf.cert, &tc).unwrap();
    std::fs::copy(&leaf.key, &tk).unwrap();
    std::fs::rename(&tk, key).unwrap();
    std::fs::rename(&tc, cert).unwrap();
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

/// `candado tunnel --listen --to --name --cert --key --client-ca --client-auth required`:
/// no config file, alice's certificate passes, no certificate is refused.
#[test]
fn the_tunnel_command_runs_a_server_mode_tunnel_that_requires_client_certificates() {
    let pki = TestPki::new();
    let leaf = pki.leaf("cli", &["cli.test"]);
    let alice = pki.client_leaf("alice", "alice", &["alice.test"]);
    let echo = Echo::start();
    let to = echo.addr.to_string();
    let server = Candado::tunnels_with_args(
        &[
            "tunnel",
            "--listen",
            "127.0.0.1:0",
            "--to",
            &to,
            "--name",
            "cli.test",
            "--cert",
            leaf.cert.to_str().unwrap(),
            "--key",
            leaf.key.to_str().unwrap(),
            "--client-ca",
            pki.ca_path.to_str().unwrap(),
            "--client-auth",
            "required",
        ],
        1,
    );
    let addr = server.tunnels[0].1;
    let got = exchange(
        addr,
        "cli.test",
        tls_config(&pki.ca_pem, Some(&alice), &[]),
        b"from the command line",
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(got.peer, leaf.der());
    assert_eq!(got.reply, reply_to(b"from the command line"));
    assert_alert(&refused(
        addr,
        "cli.test",
        tls_config(&pki.ca_pem, None, &[]),
    ));
    assert!(
        server.wait_log_line(
            &["client certificate refused", "no client certificate"],
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
    assert_eq!(echo.accepted(), 1);
}

/// The seed's own scenario in its own language: Python clients written like the seed's chat
/// client (the `ssl` module, verifying the server, each with a certificate that `candado cert
/// issue --client` made) talk through a tunnel that checks them against the development CA.
#[test]
fn python_ssl_clients_with_issued_certificates_chat_through_a_tunnel() {
    let chat = Chat::start();
    let yaml = format!(
        "tunnels:\n  - name: chat\n    listen: 127.0.0.1:0\n    to: {}\n    names: [chat.test]\n    client_auth: {{ca: local}}\n",
        chat.addr
    );
    let server = Candado::tunnels_from_yaml(&yaml, 1);
    let data = server.data_dir();
    let issue = |name: &str| {
        let out = Command::new(crate::support::server::BIN)
            .args(["cert", "issue", "--client", name, "--out"])
            .arg(server.dir.path())
            .env("CANDADO_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            crate::support::output_text(&out)
        );
        let cert = server.dir.path().join(format!("{name}.crt"));
        (cert.clone(), cert.with_extension("key"))
    };
    let (alice, bob) = (issue("alice"), issue("bob"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/chat_clients.py");
    let out = Command::new("timeout")
        .args(["20", "python3", script])
        .arg(server.tunnel("chat").port().to_string())
        .arg("chat.test")
        .arg(data.join("ca/ca.crt"))
        .args([&alice.0, &alice.1, &bob.0, &bob.1])
        .output()
        .unwrap();
    let text = crate::support::output_text(&out);
    assert!(out.status.success(), "{text}\n{}", server.log());
    assert!(text.starts_with("hola desde python\nTLSv1.3"), "{text}");
    assert_eq!(chat.lines(), ["hola desde python"]);
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
