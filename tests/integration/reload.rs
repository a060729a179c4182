//! Reload without dropping anything: SIGHUP re-reads certificates and config; new connections
//! get the new certificate at once, open ones keep working, a broken file changes nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, pem::PemObject};

use crate::support::client::{self, HOST};
use crate::support::pki::{Leaf, TestPki};
use crate::support::server::{Candado, site_yaml};

struct Reloadable {
    pki: TestPki,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    _root: tempfile::TempDir,
    server: Candado,
}

fn start() -> Reloadable {
    let pki = TestPki::new();
    let first = pki.leaf("v0", &["test.example"]);
    let (cert, key) = (pki.path("live.crt"), pki.path("live.key"));
    install(&first, &cert, &key);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "ok").unwrap();
    let server = Candado::from_yaml(&site_yaml(&cert, &key, root.path(), "", ""), &[]);
    Reloadable {
        pki,
        cert,
        key,
        _root: root,
        server,
    }
}

/// Replaces the live files the way certbot or an operator does: write aside, then rename.
fn install(leaf: &Leaf, cert: &std::path::Path, key: &std::path::Path) {
    let (tc, tk) = (
        cert.with_extension("crt.new"),
        key.with_extension("key.new"),
    );
    std::fs::copy(&leaf.cert, &tc).unwrap();
    std::fs::copy(&leaf.key, &tk).unwrap();
    std::fs::rename(&tk, key).unwrap();
    std::fs::rename(&tc, cert).unwrap();
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The leaf a fresh handshake is given.
fn served(r: &Reloadable) -> Vec<u8> {
    let tls = client::connect(
        r.server.https,
        HOST,
        client::client_config(&r.pki.ca_pem, &[b"http/1.1"]),
    )
    .unwrap();
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn wait_until_served(r: &Reloadable, want: &[u8]) {
    let started = Instant::now();
    while served(r) != want {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_serves_the_new_certificate_and_a_broken_file_keeps_the_old() {
    let r = start();
    let next = r.pki.leaf("v1", &["test.example"]);
    install(&next, &r.cert, &r.key);
    r.server.signal("HUP");
    wait_until_served(&r, &der(&next.cert_pem));
    assert!(r.server.wait_log(
        "SIGHUP received: reloaded the configuration",
        Duration::from_secs(2)
    ));

    std::fs::write(&r.cert, "not a certificate").unwrap();
    r.server.signal("HUP");
    assert!(
        r.server.wait_log(
            "reload failed, still serving the previous configuration",
            Duration::from_secs(3)
        ),
        "{}",
        r.server.log()
    );
    assert!(
        r.server.log().contains("is not a PEM file"),
        "the log says why: {}",
        r.server.log()
    );
    assert_eq!(
        served(&r),
        der(&next.cert_pem),
        "the old certificate is still served"
    );
}

/// One GET on an open keep-alive connection; the status, or None on any failure.
fn get(tls: &mut client::Tls) -> Option<u16> {
    tls.write_all(b"GET / HTTP/1.1\r\nHost: test.example\r\n\r\n")
        .ok()?;
    let mut reader = BufReader::new(tls);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    status_line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn twenty_certificate_swaps_under_load_fail_no_request() {
    let r = Arc::new(start());
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for keep_alive in [false, true] {
        let (r, stop, done, failed) = (r.clone(), stop.clone(), done.clone(), failed.clone());
        clients.push(std::thread::spawn(move || {
            let config = client::client_config(&r.pki.ca_pem, &[b"http/1.1"]);
            let started = Instant::now();
            let mut conn = None;
            // Bounded in time and count.
            for _ in 0..20_000 {
                if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(60) {
                    break;
                }
                if conn.is_none() || !keep_alive {
                    conn = client::connect(r.server.https, HOST, config.clone()).ok();
                }
                let ok = conn.as_mut().and_then(get) == Some(200);
                done.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failed.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                }
            }
        }));
    }
    for i in 1..=20 {
        let next = r.pki.leaf(&format!("swap{i}"), &["test.example"]);
        install(&next, &r.cert, &r.key);
        r.server.signal("HUP");
        wait_until_served(&r, &der(&next.cert_pem));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(done > 100, "only {done} requests were made");
    assert_eq!(
        failed, 0,
        "{failed} of {done} requests failed during reloads"
    );
}

#[test]
fn a_replaced_certificate_file_is_served_without_a_signal() {
    let r = start();
    let next = r.pki.leaf("watched", &["test.example"]);
    install(&next, &r.cert, &r.key);
    wait_until_served(&r, &der(&next.cert_pem));
    // The log is read from candado's stderr by another thread: the line may trail the swap.
    assert!(
        r.server.wait_log(
            "a certificate, key, CA or CRL file changed: reloaded",
            Duration::from_secs(3)
        ),
        "{}",
        r.server.log()
    );
}

#[test]
fn candado_reload_signals_the_running_server() {
    let r = start();
    let next = r.pki.leaf("asked", &["test.example"]);
    install(&next, &r.cert, &r.key);
    let out = std::process::Command::new(crate::support::server::BIN)
        .arg("reload")
        .env("CANDADO_DATA_DIR", r.server.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_served(&r, &der(&next.cert_pem));
    assert!(
        r.server
            .wait_log("SIGHUP received: reloaded", Duration::from_secs(2)),
        "{}",
        r.server.log()
    );
    // With no server behind the data folder, it says so instead of signalling anything.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::support::server::BIN)
        .arg("reload")
        .env("CANDADO_DATA_DIR", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no running candado found"));
}

#[test]
fn the_time_left_on_each_certificate_is_written_for_monitoring() {
    let pki = TestPki::new();
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::days(5);
    let leaf = pki.leaf_with(
        "soon",
        &["test.example"],
        crate::support::pki::key_of("p256"),
        |p| p.not_after = expiry,
    );
    let root = tempfile::tempdir().unwrap();
    let server = Candado::from_yaml(&site_yaml(&leaf.cert, &leaf.key, root.path(), "", ""), &[]);
    // One file per instance, `metrics-<instance>.prom`, so that instances sharing a data
    // folder do not overwrite each other's.
    let metrics_file = || {
        std::fs::read_dir(server.data_dir())
            .ok()?
            .map_while(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with("metrics-") && name.ends_with(".prom")
            })
    };
    let started = Instant::now();
    let metrics = loop {
        if let Some(m) = metrics_file() {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no metrics-*.prom"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&metrics).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("candado_certificate_expiry_seconds{site=\"test.example\"}"))
        .expect(&text);
    let seconds: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((4 * 86_400..=5 * 86_400).contains(&seconds), "{line}");
}
