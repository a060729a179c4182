//! A real browser: Debian's Chromium, headless, in a throwaway HOME. It trusts candado's
//! development CA only through the NSS database `candado ca install` writes (Chromium on
//! Linux never reads /etc/ssl/certs), and it takes the screenshots of candado's own pages
//! (target/screenshots/) that people look at before a release.
//!
//! Chromium skips HSTS and treats `localhost` and IP addresses as secure contexts whatever
//! their certificate, so the pages are reached under `*.test` names mapped to 127.0.0.1 with
//! --host-resolver-rules.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::first_hour::candado_at_home;
use crate::support::server::{Candado, proxy_app_test};
use crate::support::{free_port, output_text};

/// Runs headless Chromium with `HOME=home` and a fresh profile on `url`, bounded to 60 s;
/// returns what it printed on stdout (the DOM with --dump-dom) and on stderr (where a failed
/// load is reported, e.g. `Page load failed: net::ERR_CERT_AUTHORITY_INVALID`).
pub(crate) fn chromium(home: &Path, extra: &[&str], url: &str) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["60", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--host-resolver-rules=MAP *.test 127.0.0.1",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(extra)
        .arg(url)
        .env("HOME", home)
        .output()
        .expect("chromium is installed by scripts/test");
    assert!(
        out.status.success(),
        "chromium failed on {url}:\n{}",
        output_text(&out)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `python3 -m http.server` on a folder (the app behind the proxy), killed when dropped.
pub(crate) struct FileApp(Child, pub(crate) u16);

impl Drop for FileApp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn file_app(dir: &Path) -> FileApp {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let app = FileApp(child, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    app
}

/// A page whose script writes what the browser thinks of the connection into the DOM.
const PROBE_PAGE: &str = "<!doctype html><title>probe</title><body><script>document.body.textContent = 'secure-context=' + window.isSecureContext + ' protocol=' + location.protocol;</script></body>\n";

/// A page served through `candado proxy` as a newcomer sets it up: `ca install` (or not) into
/// a throwaway HOME, `cert issue app.test`, and the proxy in front of a static app.
pub(crate) struct ProxiedApp {
    pub(crate) home: tempfile::TempDir,
    pub(crate) proxy: Candado,
    /// The proxy's HTTPS port, and `https://app.test:PORT/`.
    pub(crate) port: u16,
    pub(crate) url: String,
    _app: FileApp,
}

pub(crate) fn app_behind_proxy(install: bool, page: &str) -> ProxiedApp {
    let home = tempfile::tempdir().unwrap();
    if install {
        let out = candado_at_home(home.path(), &["ca", "install"], &[]);
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let certs = home.path().join("certs");
    let out = candado_at_home(
        home.path(),
        &[
            "cert",
            "issue",
            "app.test",
            "--out",
            certs.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let site = home.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), page).unwrap();
    let app = file_app(&site);
    let port = free_port();
    let (cert, key) = (certs.join("app.test.crt"), certs.join("app.test.key"));
    let proxy = proxy_app_test(port, app.1, (&cert, &key), home.path(), &[]);
    ProxiedApp {
        home,
        proxy,
        port,
        url: format!("https://app.test:{port}/"),
        _app: app,
    }
}

#[test]
fn chromium_trusts_a_proxied_app_after_ca_install_into_a_fresh_home() {
    let p = app_behind_proxy(true, PROBE_PAGE);
    let (dom, log) = chromium(p.home.path(), &["--dump-dom"], &p.url);
    assert!(!log.contains("ERR_CERT"), "{log}");
    assert!(
        dom.contains("secure-context=true protocol=https:"),
        "Chromium did not load the page as a secure context:\n{dom}\n{log}"
    );
}

/// The control: the same set-up without `ca install` gets Chromium's certificate error page,
/// so the test above fails for the reason it claims to check.
#[test]
fn chromium_refuses_the_same_app_without_ca_install() {
    let p = app_behind_proxy(false, PROBE_PAGE);
    let (dom, log) = chromium(p.home.path(), &["--dump-dom"], &p.url);
    assert!(!dom.contains("secure-context=true"), "{dom}");
    assert!(log.contains("net::ERR_CERT_AUTHORITY_INVALID"), "{log}");
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether `file` is a PNG with something drawn in it (a blank page compresses to far less).
pub(crate) fn png_has_content(file: &Path) -> bool {
    let bytes = std::fs::read(file).unwrap_or_default();
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 4_000
}

#[test]
fn screenshots_of_welcome_404_502_and_a_listing() {
    let home = tempfile::tempdir().unwrap();
    let out = candado_at_home(home.path(), &["ca", "install"], &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let data = home.path().join("data");
    let env = [("CANDADO_DATA_DIR", data.to_str().unwrap())];

    // The welcome page: no config, an empty folder.
    let empty = tempfile::tempdir().unwrap();
    let welcome_port = free_port();
    let welcome = Candado::with_args_env(
        &[
            "-p",
            &welcome_port.to_string(),
            "--http-port",
            "0",
            "-s",
            empty.path().to_str().unwrap(),
        ],
        &env,
        empty.path(),
        tempfile::tempdir().unwrap(),
        false,
    );

    // 404, 502 and a listing: a site from the development CA with a folder and a dead app.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("files/photos")).unwrap();
    std::fs::write(root.path().join("files/notes.txt"), "three\n").unwrap();
    std::fs::write(root.path().join("files/report.pdf"), vec![7u8; 250_000]).unwrap();
    let dead = free_port();
    let yaml = format!(
        "sites:\n  - names: [pages.test]\n    listen: 127.0.0.1:0\n    certificate: local\n    root: {}\n    static: {{listing: true}}\n    proxy:\n      - path: /app\n        to: http://127.0.0.1:{dead}\n",
        root.path().display()
    );
    let config = home.path().join("pages.yaml");
    std::fs::write(&config, yaml).unwrap();
    let pages = Candado::with_args_env(
        &["serve", "-c", config.to_str().unwrap()],
        &env,
        home.path(),
        tempfile::tempdir().unwrap(),
        false,
    );
    let base = format!("https://pages.test:{}", pages.https.port());

    let dir = screenshot_dir();
    for (name, url) in [
        ("welcome", format!("https://localhost:{welcome_port}/")),
        ("404", format!("{base}/no/such/page")),
        ("502", format!("{base}/app/")),
        ("listing", format!("{base}/files/")),
    ] {
        let file = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&file);
        let (_, log) = chromium(
            home.path(),
            &[
                &format!("--screenshot={}", file.display()),
                "--window-size=1000,640",
                "--hide-scrollbars",
            ],
            &url,
        );
        assert!(!log.contains("Page load failed"), "{url}: {log}");
        assert!(
            png_has_content(&file),
            "no screenshot of {url} in {}",
            file.display()
        );
    }
    drop(welcome);
}
