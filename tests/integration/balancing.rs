//! Several upstreams per route: round robin, least connections, passive and active health,
//! https:// upstreams verified against a configured CA, HTTP/2 upstreams.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::Fixture;
use crate::support::pki::TestPki;
use crate::support::upstream::{self, Upstream};

const DEAD: &str = "http://127.0.0.1:1";

fn route_to(origins: &[String], extra: &str) -> Fixture {
    let to = origins.join(", ");
    Fixture::start(
        &format!("    proxy:\n      - path: /\n        to: [{to}]\n{extra}"),
        "",
    )
}

fn answered_by(f: &Fixture, path: &str) -> String {
    let res = f.get(path, &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    res.header("x-upstream").unwrap()
}

#[test]
fn round_robin_takes_turns() {
    let (a, b) = (upstream::start(), upstream::start());
    let f = route_to(&[a.origin(), b.origin()], "");
    let seen: Vec<String> = (0..4).map(|_| answered_by(&f, "/")).collect();
    assert_ne!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    assert_eq!(seen[1], seen[3]);
}

#[test]
fn a_refusing_upstream_is_skipped_after_its_first_failure() {
    let live = upstream::start();
    let f = route_to(&[DEAD.into(), live.origin()], "");
    let statuses: Vec<u16> = (0..6).map(|_| f.get("/", &[]).status).collect();
    assert!(
        statuses.iter().filter(|&&s| s == 502).count() <= 1,
        "{statuses:?}"
    );
    assert!(statuses[2..].iter().all(|&s| s == 200), "{statuses:?}");
}

#[test]
fn active_health_checks_take_a_dead_upstream_out_before_any_client_sees_it() {
    let live = upstream::start();
    let f = route_to(
        &[DEAD.into(), live.origin()],
        "        health_check: {path: /health, interval: 200ms}\n",
    );
    std::thread::sleep(Duration::from_millis(600));
    let statuses: Vec<u16> = (0..6).map(|_| f.get("/", &[]).status).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert!(
        f.server
            .wait_log("failed its health check", Duration::from_secs(3)),
        "{}",
        f.server.log()
    );
}

#[test]
fn least_connections_avoids_the_busy_upstream() {
    let (a, b) = (upstream::start(), upstream::start());
    let f = std::sync::Arc::new(route_to(
        &[a.origin(), b.origin()],
        "        balance: least_connections\n",
    ));
    let slow = {
        let f = f.clone();
        std::thread::spawn(move || f.get("/slow", &[]).header("x-upstream").unwrap())
    };
    std::thread::sleep(Duration::from_millis(500));
    let quick: Vec<String> = (0..4).map(|_| answered_by(&f, "/")).collect();
    let busy = slow.join().unwrap();
    assert!(
        quick.iter().all(|u| *u != busy),
        "busy {busy}, quick went to {quick:?}"
    );
}

#[test]
fn http2_upstreams_are_spoken_to_in_http2() {
    let up = upstream::start();
    let f = route_to(&[up.origin()], "        http2: true\n");
    let res = f.get("/x?y=1", &["--http1.1"]);
    let first = res.text().lines().next().unwrap_or_default().to_owned();
    assert!(
        first.starts_with("GET ") && first.ends_with("/x?y=1 HTTP/2.0"),
        "{first}"
    );
}

/// `openssl s_server -www` with a certificate from its own CA, as an https:// upstream.
struct TlsUpstream(std::process::Child, u16);

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls_upstream(pki: &TestPki) -> TlsUpstream {
    let leaf = pki.leaf("backend", &["127.0.0.1"]);
    let port = crate::support::free_port();
    let child = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            leaf.cert.to_str().unwrap(),
            "-key",
            leaf.key.to_str().unwrap(),
            "-www",
            "-quiet",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let up = TlsUpstream(child, port);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return up;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("openssl s_server did not start");
}

#[test]
fn https_upstreams_are_verified_against_the_configured_ca() {
    let backend_pki = TestPki::new();
    let backend = tls_upstream(&backend_pki);
    let origin = format!("https://127.0.0.1:{}", backend.1);
    let trusted = route_to(
        std::slice::from_ref(&origin),
        &format!("        ca: {}\n", backend_pki.ca_path.display()),
    );
    let res = trusted.get("/", &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(res.text().contains("s_server"), "{}", res.text());
    // Without the CA, the backend's certificate is not trusted: 502, never plain trust.
    let untrusted = route_to(&[origin], "");
    assert_eq!(untrusted.get("/", &[]).status, 502);
    let _ = Upstream::origin;
}
