//! Issue 15: the flags people already know (Caddy's `--to`/`--from` forms), bind errors that
//! name the flag, a response timeout for slow apps, `--browse`, a quiet `-d`, and a table of
//! common mistakes, each answered by one line that says what, where and what to do.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::client;
use crate::support::pki::TestPki;
use crate::support::server::{Candado, run_to_exit};
use crate::support::{free_port, upstream};

fn proxy(to: &str, extra: &[&str]) -> Candado {
    let port = free_port().to_string();
    let mut args = vec!["proxy", "--to", to, "--from", &port, "--http-port", "0"];
    args.extend_from_slice(extra);
    Candado::with_args(
        &args,
        std::env::temp_dir().as_path(),
        tempfile::tempdir().unwrap(),
        false,
    )
}

fn get(server: &Candado, path: &str) -> client::Response {
    let ca = server.data_dir().join("ca/ca.crt");
    client::curl_raw(
        &format!("https://localhost:{}{path}", server.https.port()),
        &["--cacert", ca.to_str().unwrap(), "-m", "10"],
    )
}

#[test]
fn to_accepts_a_port_alone_as_caddy_does() {
    let up = upstream::start();
    let port = up.addr.port().to_string();
    for to in [
        format!(":{port}"),
        port.clone(),
        format!("localhost:{port}"),
    ] {
        let server = proxy(&to, &[]);
        let res = get(&server, "/hello");
        assert_eq!(res.status, 200, "--to {to}: {}", server.log());
        assert!(
            res.text().starts_with("GET /hello"),
            "--to {to}: {}",
            res.text()
        );
    }
}

#[test]
fn from_accepts_a_port_a_name_and_an_https_url() {
    let up = upstream::start();
    for from in ["PORT", ":PORT", "localhost:PORT", "https://localhost:PORT"] {
        let port = free_port();
        let from = from.replace("PORT", &port.to_string());
        let args = [
            "proxy",
            "--to",
            &up.origin(),
            "--from",
            &from,
            "--http-port",
            "0",
        ];
        let server = Candado::with_args(
            &args,
            std::env::temp_dir().as_path(),
            tempfile::tempdir().unwrap(),
            false,
        );
        assert_eq!(server.https.port(), port, "--from {from}");
        assert_eq!(get(&server, "/").status, 200, "--from {from}");
    }
}

#[test]
fn a_slow_app_gets_the_response_timeout_it_is_given_and_the_log_names_the_setting() {
    let up = upstream::start();
    let server = proxy(&up.origin(), &["--response-timeout", "1s"]);
    // The test upstream's /slow answers after 3 s.
    assert_eq!(get(&server, "/slow").status, 504);
    assert!(
        server.wait_log_line(
            &["--response-timeout", "timeouts.response", "1s"],
            Duration::from_secs(2)
        ),
        "{}",
        server.log()
    );
    let patient = proxy(&up.origin(), &[]);
    assert_eq!(
        get(&patient, "/slow").status,
        200,
        "the 5 min default waits"
    );
}

#[test]
fn browse_lists_a_folder_from_the_command_line() {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("photos")).unwrap();
    std::fs::write(site.path().join("photos/cat.txt"), "meow").unwrap();
    let port = free_port().to_string();
    let args = ["-p", &port, "--http-port", "0", "--browse"];
    let server = Candado::with_args(&args, site.path(), tempfile::tempdir().unwrap(), false);
    let res = get(&server, "/photos/");
    assert_eq!(res.status, 200);
    assert!(res.text().contains("cat.txt"), "{}", res.text());
}

#[test]
fn debug_start_up_shows_no_handshake_failures_from_its_own_self_check() {
    let site = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let args = ["-p", &port, "--http-port", "0", "-d"];
    let server = Candado::with_args(&args, site.path(), tempfile::tempdir().unwrap(), false);
    assert!(
        server.wait_log("TLS self-check", Duration::from_secs(20)),
        "{}",
        server.log()
    );
    // The server may still be finishing the probes' last connections.
    std::thread::sleep(Duration::from_millis(500));
    let failed = server.log().matches("TLS handshake failed").count();
    assert_eq!(failed, 0, "{}", server.log());
}

#[test]
fn check_help_names_each_default_once() {
    let (status, out, _) = run_to_exit(&["check", "--help"], std::env::temp_dir().as_path());
    assert!(status.success());
    assert_eq!(out.matches("[default: 80]").count(), 1, "{out}");
}

/// Words that mean a Rust type or an internal error reached a person.
const INTERNALS: &[&str] = &[
    "Os {",
    "kind:",
    "Error {",
    "InvalidContentType",
    "CaUsedAsEndEntity",
    "number too large to fit in target type",
    "anyhow",
    "panicked",
];

#[test]
fn common_mistakes_each_get_one_line_that_says_what_where_and_what_to_do() {
    let pki = TestPki::new();
    let good = pki.leaf("good", &["localhost"]);
    let other = pki.leaf("other", &["localhost"]);
    let expired = pki.leaf_with(
        "old",
        &["localhost"],
        rcgen::KeyPair::generate().unwrap(),
        |p| {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
            p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.yaml"), "sites:\n  - names: [a.test\n").unwrap();
    std::fs::write(
        d.join("unknown.yaml"),
        "sites:\n  - names: [a.test]\n    lisen: 127.0.0.1:9443\n",
    )
    .unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port().to_string();
    let free = free_port().to_string();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (good_cert, good_key, other_key) = (path(&good.cert), path(&good.key), path(&other.key));
    let (old_cert, old_key) = (path(&expired.cert), path(&expired.key));
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("an unknown flag", vec!["--colour"], "--colour"),
        ("a missing certificate file", vec!["-p", &free, "--cert", "/nonexistent/c.pem", "--key", &good_key], "/nonexistent/c.pem"),
        ("a key that belongs to another certificate", vec!["-p", &free, "--cert", &good_cert, "--key", &other_key], "key"),
        ("an expired certificate", vec!["-p", &free, "--cert", &old_cert, "--key", &old_key], "expired"),
        ("a busy HTTPS port", vec!["-p", &busy_port, "--http-port", "0"], "-p"),
        ("a busy redirect port", vec!["-p", &free, "--http-port", &busy_port], "--http-port"),
        ("the same port twice", vec!["-p", &free, "--http-port", &free], "--http-port"),
        ("broken YAML", vec!["serve", "-c", "bad.yaml"], "bad.yaml"),
        ("an unknown config key", vec!["serve", "-c", "unknown.yaml"], "lisen"),
        ("a missing config file", vec!["serve", "-c", "nope.yaml"], "nope.yaml"),
        ("a wrong --to", vec!["proxy", "--to", "ftp://x:21"], "--to"),
        ("an http:// --from", vec!["proxy", "--to", ":5000", "--from", "http://a.localhost"], "--from"),
        ("a port out of range", vec!["proxy", "--to", ":5000", "--from", "a.localhost:99999"], "--from"),
        ("a bad response timeout", vec!["proxy", "--to", ":5000", "--response-timeout", "soon"], "--response-timeout"),
        ("a folder that does not exist", vec!["-p", &free, "-s", "/nonexistent/site"], "/nonexistent/site"),
    ];
    assert_eq!(cases.len(), 15);
    for (what, args, names) in &cases {
        let (status, out, _) = run_to_exit(args, d);
        assert!(!status.success(), "{what}: exited 0:\n{out}");
        let errors: Vec<&str> = out.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{what}: not one error line:\n{out}");
        assert!(
            errors[0].contains(names),
            "{what}: the line does not name `{names}`:\n{out}"
        );
        for word in INTERNALS {
            assert!(
                !out.contains(word),
                "{what}: `{word}` reached the user:\n{out}"
            );
        }
    }
}

#[test]
fn tls_and_network_failures_are_said_in_words_once() {
    // A plain-HTTP port: rustls calls it InvalidContentType.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = plain.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut c in plain.incoming().flatten().take(4) {
            use std::io::Write;
            let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let (status, out, _) = run_to_exit(&["cert", "inspect", &addr], std::env::temp_dir().as_path());
    assert!(!status.success());
    assert!(out.contains("did not answer with TLS"), "{out}");
    // A closed port: the reason once, not twice.
    let closed = free_port().to_string();
    let (status, out, _) = run_to_exit(
        &["check", &format!("127.0.0.1:{closed}")],
        std::env::temp_dir().as_path(),
    );
    assert!(!status.success());
    assert_eq!(out.matches("Connection refused").count(), 1, "{out}");
    for word in INTERNALS {
        assert!(!out.contains(word), "`{word}`:\n{out}");
    }
}
