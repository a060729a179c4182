//! Test helpers: a test PKI (rcgen), the real candado binary on ephemeral loopback ports, and
//! clients (curl, openssl, a rustls client for raw bytes).

#![allow(dead_code)]

pub mod client;
pub mod judges;
pub mod pebble;
pub mod pki;
pub mod server;
pub mod tcp;
pub mod tunnels;
pub mod upstream;

use std::path::Path;

use tempfile::TempDir;

/// What a finished program printed, stdout then stderr, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A port that was free a moment ago, for programs that cannot bind port 0 themselves.
///
/// Taken below the kernel's ephemeral range (32768–60999 here), each port once per test run:
/// between this call and the program's bind, a server elsewhere in the suite binding port 0
/// (or a client's source port) can never be given the same port, which it could if this
/// port came from the kernel too.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Apart per process, so two suites on one machine rarely meet (reduced first: a pid times
    // a spread would overflow where pid_max is 4194304).
    let offset = std::process::id() % SPAN * 97 % SPAN;
    for _ in 0..SPAN {
        let port = (FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN) as u16;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// A running candado with one site (test.example, *.wild.example, 127.0.0.1) serving a
/// folder, with a certificate from a fresh test CA.
pub struct Fixture {
    pub pki: pki::TestPki,
    pub root: TempDir,
    pub server: server::Candado,
}

impl Fixture {
    pub fn start(site_extra: &str, top_extra: &str) -> Fixture {
        Fixture::start_with_files(site_extra, top_extra, |_| {})
    }

    pub fn start_with_files(
        site_extra: &str,
        top_extra: &str,
        files: impl FnOnce(&Path),
    ) -> Fixture {
        let pki = pki::TestPki::new();
        let leaf = pki.leaf("site", &["test.example", "*.wild.example", "127.0.0.1"]);
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), "<h1>home</h1>\n").unwrap();
        files(root.path());
        let yaml = server::site_yaml(&leaf.cert, &leaf.key, root.path(), site_extra, top_extra);
        let server = server::Candado::from_yaml(&yaml, &[]);
        Fixture { pki, root, server }
    }

    pub fn get(&self, path: &str, extra: &[&str]) -> client::Response {
        client::curl(self.server.https, &self.pki.ca_path, path, extra)
    }
}
