//! Tunnel test helpers: config entries, a chat behind a tunnel, openssl s_client as a chat
//! client, and the checks that a refused client saw an alert and the log says why.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::free_port;
use super::pki::{Leaf, TestPki};
use super::server::Candado;
use super::tcp::{Chat, Echo, exchange, refused, reply_to, tls_config, wait_until};

/// One entry of a `tunnels:` list: NAME on 127.0.0.1:0 for the SNI name NAME.test, with
/// `leaf` as its certificate, to `to`, plus extra lines (indented by the caller to 4 spaces).
pub fn entry(name: &str, to: SocketAddr, leaf: &Leaf, extra: &str) -> String {
    format!(
        "  - name: {name}\n    listen: 127.0.0.1:0\n    to: {to}\n    names: [{name}.test]\n    certificate: {{cert: {}, key: {}}}\n{extra}",
        leaf.cert.display(),
        leaf.key.display()
    )
}

/// The `client_auth:` lines of an entry: certificates from `ca` required, plus `more` lines
/// (indented by the caller to 6 spaces).
pub fn required(ca: &Path, more: &str) -> String {
    format!(
        "    client_auth:\n      mode: required\n      ca: {}\n{more}",
        ca.display()
    )
}

pub fn start(entries: &[String]) -> Candado {
    Candado::tunnels_from_yaml(&format!("tunnels:\n{}", entries.concat()), entries.len())
}

/// Asserts that `server` logged the refusal of a client certificate for `tunnel` with a reason
/// containing `reason`.
pub fn assert_refusal_logged(server: &Candado, tunnel: &str, reason: &str) {
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
pub fn assert_alert(ended: &str) {
    assert!(
        ended.to_ascii_lowercase().contains("alert"),
        "the refused client got no TLS alert: {ended}"
    );
}

/// `timeout 30 openssl s_client -quiet ...` as a chat client: lines go in on stdin, what the
/// tunnel sends back is read line by line on a thread.
pub struct SClient {
    pub child: Child,
    pub stdin: ChildStdin,
    pub heard: mpsc::Receiver<String>,
    pub stderr: Arc<Mutex<String>>,
}

impl SClient {
    pub fn connect(addr: SocketAddr, sni: &str, ca: &Path, cert: Option<&Leaf>) -> SClient {
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
    pub fn say(&mut self, line: &str) {
        let _ = writeln!(self.stdin, "{line}");
        let _ = self.stdin.flush();
    }

    /// Whether `line` arrives within `timeout`.
    pub fn hears(&self, line: &str, timeout: Duration) -> bool {
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
    pub fn heard_so_far(&self) -> Vec<String> {
        self.heard.try_iter().collect()
    }

    pub fn exits_within(&mut self, timeout: Duration) -> bool {
        wait_until(timeout, || matches!(self.child.try_wait(), Ok(Some(_))))
    }

    pub fn stderr(&self) -> String {
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
pub struct ChatTunnel {
    pub pki: TestPki,
    pub alice: Leaf,
    pub bob: Leaf,
    pub chat: Chat,
    pub server: Candado,
}

impl ChatTunnel {
    pub fn start() -> ChatTunnel {
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

    pub fn join(&self, cert: Option<&Leaf>) -> SClient {
        SClient::connect(
            self.server.tunnel("chat"),
            "chat.test",
            &self.pki.ca_path,
            cert,
        )
    }

    pub fn wait_joined(&self, n: usize) {
        assert!(
            wait_until(Duration::from_secs(10), || self.chat.joined() == n),
            "the chat accepted {} connections, not {n}:\n{}",
            self.chat.accepted(),
            self.server.log()
        );
    }
}

/// A tunnel, its CA and its echo upstream, for tests where one client gets in and another
/// does not.
pub struct LetsIn<'a> {
    pub server: &'a Candado,
    pub tunnel: &'a str,
    pub pki: &'a TestPki,
    pub echo: &'a Echo,
}

impl LetsIn<'_> {
    /// `allowed` reaches the echo; `turned_away` gets only an alert and the log says `reason`;
    /// the upstream saw only the allowed client.
    pub fn only(&self, allowed: &Leaf, turned_away: &Leaf, reason: &str) {
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

/// The SHA-256 of a certificate's SubjectPublicKeyInfo, in lowercase hex.
pub fn spki_sha256(leaf: &Leaf) -> String {
    let der = leaf.der();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    Sha256::digest(cert.tbs_certificate.subject_pki.raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Replaces the live files the way an operator does: write aside, then rename.
pub fn install(leaf: &Leaf, cert: &Path, key: &Path) {
    let (tc, tk) = (
        cert.with_extension("crt.new"),
        key.with_extension("key.new"),
    );
    std::fs::copy(&leaf.cert, &tc).unwrap();
    std::fs::copy(&leaf.key, &tk).unwrap();
    std::fs::rename(&tk, key).unwrap();
    std::fs::rename(&tc, cert).unwrap();
}

/// A client-mode tunnel NAME on a port of its own, to `to`, trusting `ca` for `server_name`,
/// plus extra lines under `tls_client:` (indented by the caller to 6 spaces).
pub fn client_entry(
    name: &str,
    to: SocketAddr,
    ca: &Path,
    server_name: &str,
    more: &str,
) -> String {
    format!(
        "  - name: {name}\n    listen: 127.0.0.1:{}\n    to: {to}\n    tls_client:\n      ca: {}\n      server_name: {server_name}\n{more}",
        free_port(),
        ca.display()
    )
}

/// Sends `request` over plain TCP and reads what comes back until the connection closes,
/// which must happen within 10 s.
pub fn closed_answer(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
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
