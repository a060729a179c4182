//! End to end with real Python apps as users run them: Flask (Werkzeug's server, ProxyFix) and
//! a bare ASGI app under uvicorn, behind candado, reached with curl and Python's websockets.
//! `scripts/test` creates the venv (target/pyenv) from tests/apps/requirements.txt.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

use crate::support::client::{self, HOST};
use crate::support::{Fixture, free_port};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");

pub(crate) fn python() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/pyenv/bin/python"
    ));
    assert!(
        p.exists(),
        "no Python venv at {}: run scripts/test, which creates it",
        p.display()
    );
    p
}

/// A Python app process, killed when dropped.
pub(crate) struct App(Child, pub(crate) u16);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn(args: &[&str], port: u16) -> App {
    let child = Command::new(python())
        .args(args)
        .current_dir(APPS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let app = App(child, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{args:?} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    app
}

fn flask() -> App {
    let port = free_port();
    spawn(&["flask_app.py", &port.to_string()], port)
}

fn uvicorn() -> App {
    let port = free_port();
    let p = port.to_string();
    spawn(
        &[
            "-m",
            "uvicorn",
            "asgi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            &p,
            "--ws",
            "websockets",
            "--log-level",
            "warning",
        ],
        port,
    )
}

fn behind_candado(app: &App) -> Fixture {
    Fixture::start(
        &format!(
            "    proxy:\n      - path: /\n        to: http://127.0.0.1:{}\n",
            app.1
        ),
        "",
    )
}

#[test]
fn flask_builds_https_urls_and_its_cookies_become_secure() {
    let app = flask();
    let f = behind_candado(&app);
    let port = f.server.https.port();
    let res = f.get("/", &[]);
    assert_eq!(res.status, 200);
    assert_eq!(
        res.text(),
        format!("https://{HOST}:{port}/landing"),
        "url_for(_external=True) through ProxyFix"
    );
    let cookies: Vec<&str> = res
        .head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .collect();
    assert_eq!(cookies.len(), 2, "{}", res.head);
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    let res = f.get("/login", &[]);
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location"),
        Some(format!("https://{HOST}:{port}/landing"))
    );
    assert_eq!(
        f.get("/landing", &[]).text(),
        "scheme=https remote=127.0.0.1"
    );
}

/// Mutual TLS in front of Flask: the app reads who the client is from the verified
/// certificate's headers, and a client cannot claim to be someone by sending them itself.
#[test]
fn flask_learns_the_verified_client_certificate_and_never_a_forged_one() {
    let app = flask();
    let clients = crate::support::pki::TestPki::named("Flask client CA");
    let alice = clients.client_leaf("alice", "alice", &["alice.test"]);
    let f = Fixture::start(
        &format!(
            "    client_auth: {{mode: optional, ca: {}}}\n    proxy:\n      - path: /\n        to: http://127.0.0.1:{}\n",
            clients.ca_path.display(),
            app.1
        ),
        "",
    );
    let with_cert = [
        "--cert",
        alice.cert.to_str().unwrap(),
        "--key",
        alice.key.to_str().unwrap(),
    ];
    let res = f.get("/whoami", &with_cert);
    assert_eq!(res.status, 200, "{}", res.text());
    let der = alice.der();
    let fingerprint: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(res.text().contains("subject=CN=alice"), "{}", res.text());
    assert!(
        res.text().contains(&format!("fingerprint={fingerprint}")),
        "{}",
        res.text()
    );
    let forged = [
        "-H",
        "X-Client-Cert-Subject: CN=admin",
        "-H",
        "X-Client-Cert-Fingerprint: 00",
    ];
    let res = f.get("/whoami", &forged);
    assert_eq!(res.text(), "subject=none fingerprint=none");
}

#[test]
fn flask_receives_a_file_upload_whole() {
    let app = flask();
    let f = behind_candado(&app);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.bin");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let sha = Command::new("sha256sum").arg(&file).output().unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let form = format!("file=@{}", file.display());
    for proto in ["--http1.1", "--http2"] {
        let res = f.get("/upload", &[proto, "-F", &form]);
        assert_eq!(res.text(), format!("{} {sha}", data.len()), "{proto}");
    }
}

#[test]
fn uvicorn_websocket_echo_passes_text_binary_ping_and_close() {
    let app = uvicorn();
    let f = behind_candado(&app);
    let url = format!("wss://127.0.0.1:{}/ws", f.server.https.port());
    let out = Command::new(python())
        .args([
            &format!("{APPS}/ws_client.py"),
            &url,
            f.pki.ca_path.to_str().unwrap(),
            HOST,
        ])
        .output()
        .unwrap();
    let text = crate::support::output_text(&out);
    assert!(
        out.status.success() && text.contains("websocket ok"),
        "{text}"
    );
}

#[test]
fn uvicorn_server_sent_events_arrive_as_they_are_sent() {
    let app = uvicorn();
    let f = behind_candado(&app);
    let req = b"GET /sse HTTP/1.1\r\nHost: test.example\r\nAccept: text/event-stream\r\n\r\n";
    let times = client::arrival_times(
        f.server.https,
        &f.pki.ca_pem,
        req,
        &["token 0", "token 1", "token 2"],
    );
    client::assert_flushed_as_sent(&times);
}
