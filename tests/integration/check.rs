//! `candado check` against servers set up to be good or bad in known ways: openssl s_server
//! with old protocols and anonymous suites, with static-RSA-only suites, with an expired
//! certificate, a wrong host name and an incomplete chain; nginx with a strong configuration;
//! and candado itself. Each expected finding and grade is asserted, and for each server the
//! protocols, suites and groups candado reports are compared with sslyze's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::support::judges::{self, sslyze, sslyze_curves, sslyze_suites};
use crate::support::pki::{self, TestPki};
use crate::support::server::{BIN, Candado, site_yaml};
use crate::support::{free_port, output_text};

/// `candado check NAME:PORT --connect 127.0.0.1 --ca CA --http-port H [extra]`.
fn candado_check(name: &str, port: u16, ca: &Path, http_port: u16, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["check", &format!("{name}:{port}"), "--connect", "127.0.0.1"])
        .arg("--ca")
        .arg(ca)
        .args(["--http-port", &http_port.to_string()])
        .args(extra)
        .output()
        .unwrap()
}

/// The JSON report, asserting the command itself ran (exit 0).
fn report(name: &str, port: u16, ca: &Path, http_port: u16) -> Value {
    let out = candado_check(name, port, ca, http_port, &["--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn protocol<'a>(r: &'a Value, label: &str) -> &'a Value {
    r["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["protocol"] == label)
        .unwrap()
}

fn offered(r: &Value, label: &str) -> bool {
    protocol(r, label)["offered"].as_bool().unwrap()
}

fn suite_names(r: &Value, label: &str) -> Vec<String> {
    protocol(r, label)["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn caps(r: &Value) -> String {
    r["caps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}\n", c["grade"], c["reason"]))
        .collect()
}

/// Fails on any disagreement with sslyze about protocols, accepted suites (among the suites
/// sslyze tries) and supported curves (among the curves sslyze tries).
fn assert_agrees_with_sslyze(r: &Value, port: u16) {
    let scan = sslyze(port);
    let keys = [
        ("SSLv3", "ssl_3_0"),
        ("TLS 1.0", "tls_1_0"),
        ("TLS 1.1", "tls_1_1"),
        ("TLS 1.2", "tls_1_2"),
        ("TLS 1.3", "tls_1_3"),
    ];
    for (label, key) in keys {
        let (accepted, tried) = sslyze_suites(&scan, key);
        let ours: BTreeSet<String> = suite_names(r, label)
            .into_iter()
            .filter(|s| tried.contains(s))
            .collect();
        let theirs: BTreeSet<String> = accepted.into_iter().collect();
        assert_eq!(ours, theirs, "{label}: candado vs sslyze suites");
        assert_eq!(offered(r, label), !theirs.is_empty(), "{label} offered");
    }
    let (supported, tried) = sslyze_curves(&scan);
    let lower = |v: &[String]| -> BTreeSet<String> { v.iter().map(|s| s.to_lowercase()).collect() };
    let tried = lower(&tried);
    let ours: BTreeSet<String> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_lowercase())
        .filter(|g| tried.contains(g))
        .collect();
    assert_eq!(ours, lower(&supported), "candado vs sslyze curves");
}

#[test]
fn old_protocols_and_anonymous_suites_are_found_graded_f_and_match_sslyze() {
    let pki = TestPki::new();
    let leaf = pki.leaf("weak", &["test.example"]);
    let server = judges::openssl_server(
        &leaf.cert,
        &leaf.key,
        &["-min_protocol", "TLSv1", "-cipher", "ALL:@SECLEVEL=0"],
    );
    let r = report("test.example", server.port, &pki.ca_path, free_port());
    for label in ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"] {
        assert!(offered(&r, label), "{label}");
    }
    // Debian's OpenSSL 3 has no SSL 3.0 at all: it must be reported as not offered.
    assert!(!offered(&r, "SSLv3"));
    let tls10 = suite_names(&r, "TLS 1.0");
    assert!(
        tls10.contains(&"TLS_DH_anon_WITH_AES_128_CBC_SHA".to_owned()),
        "{tls10:?}"
    );
    let anon = protocol(&r, "TLS 1.0")["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "TLS_DH_anon_WITH_AES_128_CBC_SHA")
        .unwrap()
        .clone();
    assert_eq!(anon["strength"], "insecure");
    assert_eq!(r["grade"], "F", "{}", caps(&r));
    let reasons = caps(&r);
    assert!(reasons.contains("anonymous"), "{reasons}");
    assert!(
        reasons.contains("TLS 1.0 or TLS 1.1 is offered"),
        "{reasons}"
    );
    assert_eq!(r["certificate"]["trusted"], true, "the leaf itself is fine");
    assert_eq!(r["compression"], false);
    assert_agrees_with_sslyze(&r, server.port);

    // The gate for CI pipelines: below --min-grade the exit code is 1, and the table says why.
    let out = candado_check(
        "test.example",
        server.port,
        &pki.ca_path,
        free_port(),
        &["--min-grade", "B"],
    );
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Grade  F"), "{text}");
    assert!(text.contains("grade F is below --min-grade B"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "no colours when stdout is not a terminal"
    );
}

#[test]
fn static_rsa_suites_without_forward_secrecy_cap_the_grade_at_b() {
    let pki = TestPki::new();
    let leaf = pki.leaf_with("rsa", &["test.example"], pki::key_of("rsa"), |_| {});
    let server = judges::openssl_server(
        &leaf.cert,
        &leaf.key,
        &[
            "-no_tls1_3",
            "-cipher",
            "AES128-GCM-SHA256:AES256-GCM-SHA384",
        ],
    );
    let r = report("test.example", server.port, &pki.ca_path, free_port());
    assert!(offered(&r, "TLS 1.2") && !offered(&r, "TLS 1.3"));
    let suites = suite_names(&r, "TLS 1.2");
    assert_eq!(
        suites.iter().collect::<BTreeSet<_>>(),
        [
            "TLS_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_RSA_WITH_AES_256_GCM_SHA384"
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .iter()
        .collect::<BTreeSet<_>>()
    );
    assert_eq!(r["grade"], "B", "{}", caps(&r));
    assert!(caps(&r).contains("forward secrecy"), "{}", caps(&r));
    assert!(caps(&r).contains("TLS 1.3 is not offered"), "{}", caps(&r));
    assert!(
        r["groups"].as_array().unwrap().is_empty(),
        "no ECDHE, no groups"
    );
    assert_agrees_with_sslyze(&r, server.port);
}

/// A modern openssl set-up (TLS 1.2 and 1.3, ECDHE) with the given chain and key.
fn modern_openssl(cert: &Path, key: &Path) -> judges::Server {
    judges::openssl_server(cert, key, &["-cipher", "ECDHE+AESGCM"])
}

#[test]
fn an_expired_certificate_is_not_trusted_and_fails() {
    let pki = TestPki::new();
    let leaf = pki.leaf_with("old", &["test.example"], pki::key_of("p256"), |p| {
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(100);
        p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    });
    let server = modern_openssl(&leaf.cert, &leaf.key);
    let r = report("test.example", server.port, &pki.ca_path, free_port());
    let cert = &r["certificate"];
    assert_eq!(cert["expired"], true);
    assert_eq!(cert["trusted"], false);
    assert!(cert["days_left"].as_i64().unwrap() <= -10);
    assert_eq!(cert["hostname_matches"], true);
    assert_eq!(r["grade"], "F");
    assert!(
        caps(&r).contains("not trusted: the certificate expired"),
        "{}",
        caps(&r)
    );
    assert!(r["fixes"].to_string().contains("renew the certificate"));
    assert_agrees_with_sslyze(&r, server.port);
}

#[test]
fn a_certificate_for_another_name_is_not_trusted_and_fails() {
    let pki = TestPki::new();
    let leaf = pki.leaf("other", &["other.example"]);
    let server = modern_openssl(&leaf.cert, &leaf.key);
    let r = report("test.example", server.port, &pki.ca_path, free_port());
    assert_eq!(r["certificate"]["hostname_matches"], false);
    assert_eq!(r["certificate"]["trusted"], false);
    assert_eq!(r["certificate"]["expired"], false);
    assert_eq!(r["grade"], "F");
    assert!(
        caps(&r).contains("does not cover the host name"),
        "{}",
        caps(&r)
    );
    // The same server checked under the name it has is trusted.
    let good = report("other.example", server.port, &pki.ca_path, free_port());
    assert_eq!(good["certificate"]["trusted"], true, "{}", caps(&good));
}

#[test]
fn a_chain_without_its_intermediate_is_incomplete_and_fails() {
    let pki = TestPki::new();
    let full = pki.leaf_via_intermediate("chain", &["test.example"]);
    let end = full.cert_pem.find("-----END CERTIFICATE-----").unwrap();
    let leaf_only = &full.cert_pem[..end + "-----END CERTIFICATE-----\n".len()];
    let partial = pki.write("leaf-only", leaf_only, &full.key_pem);
    let server = modern_openssl(&partial.cert, &partial.key);
    let r = report("test.example", server.port, &pki.ca_path, free_port());
    assert_eq!(r["certificate"]["chain_complete"], false);
    assert_eq!(r["certificate"]["trusted"], false);
    assert_eq!(
        r["certificate"]["chain"]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(r["grade"], "F");
    let reasons = caps(&r);
    assert!(reasons.contains("the chain is incomplete"), "{reasons}");
    assert!(reasons.contains("candado test intermediate"), "{reasons}");
    // Serving the whole chain fixes it (s_server sends the intermediates of -cert_chain).
    let chain = full.cert.to_str().unwrap();
    let server = judges::openssl_server(
        &full.cert,
        &full.key,
        &["-cipher", "ECDHE+AESGCM", "-cert_chain", chain],
    );
    let r = report("test.example", server.port, &pki.ca_path, free_port());
    assert_eq!(r["certificate"]["chain_complete"], true);
    assert_eq!(r["certificate"]["trusted"], true, "{}", caps(&r));
}

#[test]
fn nginx_with_a_strong_configuration_gets_a_plus_and_matches_sslyze() {
    let pki = TestPki::new();
    let leaf = pki.leaf("nginx", &["test.example"]);
    let nginx = judges::nginx_strong(&leaf.cert, &leaf.key);
    let r = report(
        "test.example",
        nginx.https.port,
        &pki.ca_path,
        nginx.http_port,
    );
    assert_eq!(r["grade"], "A+", "{}", caps(&r));
    assert!(!offered(&r, "TLS 1.0") && !offered(&r, "TLS 1.1"));
    assert_eq!(
        suite_names(&r, "TLS 1.2"),
        [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        ],
        "nginx's order, as configured"
    );
    assert_eq!(protocol(&r, "TLS 1.2")["server_order"], true);
    let groups: Vec<&str> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["secp256r1", "secp384r1", "X25519"]);
    assert_eq!(r["http"]["alpn"], "h2");
    assert_eq!(r["http"]["hsts"]["max_age"], 63_072_000);
    assert_eq!(r["http"]["hsts"]["include_subdomains"], true);
    assert_eq!(r["http"]["redirect"]["kind"], "to_https", "{}", r["http"]);
    assert_eq!(r["hsts_preload_ready"], false, "no preload directive");
    // A cookie without Secure is named in the fixes but, as at SSL Labs, caps nothing.
    assert_eq!(r["http"]["cookies"][0]["name"], "session");
    assert_eq!(r["http"]["cookies"][0]["secure"], false);
    assert_eq!(r["http"]["cookies"][0]["http_only"], true);
    assert!(
        r["fixes"]
            .to_string()
            .contains("mark the cookie `session` Secure"),
        "{}",
        r["fixes"]
    );
    assert_eq!(r["certificate"]["trusted"], true);
    assert_agrees_with_sslyze(&r, nginx.https.port);
}

/// candado serving test.example with a redirect listener, certificate from a fresh test CA.
fn candado_server(pki: &TestPki, args: &[&str]) -> (Candado, tempfile::TempDir) {
    let leaf = pki.leaf("site", &["test.example", "127.0.0.1"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<h1>home</h1>\n").unwrap();
    let yaml = site_yaml(
        &leaf.cert,
        &leaf.key,
        root.path(),
        "    http_redirect: 127.0.0.1:0",
        "",
    );
    (Candado::from_yaml(&yaml, args), root)
}

#[test]
fn candado_itself_gets_a_plus_with_h2_post_quantum_groups_and_its_redirect() {
    let pki = TestPki::new();
    let (server, _root) = candado_server(&pki, &[]);
    let http = server.http.unwrap().port();
    let r = report("test.example", server.https.port(), &pki.ca_path, http);
    assert_eq!(r["grade"], "A+", "{}", caps(&r));
    assert!(r["caps"].as_array().unwrap().is_empty());
    for label in ["SSLv3", "TLS 1.0", "TLS 1.1"] {
        assert!(!offered(&r, label), "{label}");
    }
    assert!(offered(&r, "TLS 1.2") && offered(&r, "TLS 1.3"));
    for s in protocol(&r, "TLS 1.2")["suites"].as_array().unwrap() {
        assert_eq!(s["strength"], "strong", "{s}");
    }
    assert_eq!(protocol(&r, "TLS 1.2")["server_order"], true);
    let groups = r["groups"].to_string();
    assert!(groups.contains("X25519MLKEM768"), "{groups}");
    assert!(groups.contains("\"X25519\""), "{groups}");
    assert_eq!(r["http"]["alpn"], "h2");
    assert_eq!(r["http"]["hsts"]["max_age"], 31_536_000);
    assert_eq!(r["http"]["redirect"]["kind"], "to_https", "{}", r["http"]);
    assert_eq!(r["certificate"]["trusted"], true);
    assert_agrees_with_sslyze(&r, server.https.port());

    let out = candado_check(
        "test.example",
        server.https.port(),
        &pki.ca_path,
        http,
        &["--min-grade", "A+"],
    );
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn without_the_ca_candado_itself_is_not_trusted() {
    let pki = TestPki::new();
    let (server, _root) = candado_server(&pki, &[]);
    let other = TestPki::new();
    let r = report(
        "test.example",
        server.https.port(),
        &other.ca_path,
        free_port(),
    );
    assert_eq!(r["certificate"]["trusted"], false);
    assert_eq!(r["grade"], "F");
    assert!(caps(&r).contains("not trusted"), "{}", caps(&r));
}

#[test]
fn serve_in_debug_mode_logs_the_grade_of_its_own_tls_set_up() {
    let pki = TestPki::new();
    let (server, _root) = candado_server(&pki, &["-d"]);
    let line = self_check_line(&server);
    // The test CA is in no trust store the server knows of, so its own check says F.
    assert!(line.contains("grade=F"), "{line}");
    assert!(line.contains("not trusted"), "{line}");
}

#[test]
fn a_server_that_never_answers_is_reported_within_the_deadline() {
    // The kernel completes TCP connections on a listening socket nobody reads from.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let pki = TestPki::new();
    let started = std::time::Instant::now();
    let out = candado_check(
        "test.example",
        port,
        &pki.ca_path,
        free_port(),
        &["--json", "--timeout", "1"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    for p in r["protocols"].as_array().unwrap() {
        assert_eq!(p["offered"], false, "{p}");
        assert_eq!(p["answer"], "no answer in time", "{p}");
    }
    assert_eq!(r["grade"], "F");
    assert!(
        caps(&r).contains("no protocol version was accepted"),
        "{}",
        caps(&r)
    );
}

#[test]
fn a_closed_port_is_an_error_naming_the_address() {
    let pki = TestPki::new();
    let port = free_port();
    let out = candado_check("test.example", port, &pki.ca_path, free_port(), &[]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{text}"
    );
}

#[test]
fn an_https_url_is_accepted_as_the_target() {
    let pki = TestPki::new();
    let (server, _root) = candado_server(&pki, &[]);
    let url = format!("https://test.example:{}/some/path", server.https.port());
    let out = Command::new(BIN)
        .args(["check", &url, "--connect", "127.0.0.1", "--json", "--ca"])
        .arg(&pki.ca_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["host"], "test.example");
    assert_eq!(r["port"], server.https.port());
}

#[test]
fn serve_in_debug_mode_with_the_development_ca_grades_itself_a_plus() {
    let site = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (https, http) = (free_port(), free_port());
    let args = [
        "-d",
        "-p",
        &https.to_string(),
        "--http-port",
        &http.to_string(),
    ];
    let server = Candado::with_args(&args, site.path(), data, true);
    let line = self_check_line(&server);
    // The check trusts the development CA the server issued its certificate from.
    assert!(line.contains("grade=A+"), "{line}");
    assert!(line.contains("capped_by=[]"), "{line}");
}

/// The `serve -d` start-up line with the server's grade of itself.
fn self_check_line(server: &Candado) -> String {
    assert!(
        server.wait_log("TLS self-check", Duration::from_secs(30)),
        "{}",
        server.log()
    );
    let log = server.log();
    log.lines()
        .find(|l| l.contains("TLS self-check"))
        .unwrap()
        .to_owned()
}

/// A site that requires client certificates: `check` says so (with the CA names the server
/// hints), and explains that the HTTP checks need one; with `--cert`/`--key` it presents one,
/// reads HSTS and grades A+.
#[test]
fn a_site_requiring_client_certificates_is_reported_and_checked_with_one() {
    let pki = TestPki::new();
    let clients = TestPki::named("check client CA");
    let alice = clients.client_leaf("alice", "alice", &[]);
    let leaf = pki.leaf("site", &["test.example"]);
    let root = tempfile::tempdir().unwrap();
    let yaml = site_yaml(
        &leaf.cert,
        &leaf.key,
        root.path(),
        &format!(
            "    http_redirect: 127.0.0.1:0\n    client_auth: {{ca: {}}}",
            clients.ca_path.display()
        ),
        "",
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let (port, http) = (server.https.port(), server.http.unwrap().port());
    let r = report("test.example", port, &pki.ca_path, http);
    let asked = &r["http"]["client_certificate"];
    assert_eq!(asked["required"], true, "{}", r["http"]);
    assert_eq!(asked["hinted_cas"][0], "CN=check client CA", "{asked}");
    let text = output_text(&candado_check(
        "test.example",
        port,
        &pki.ca_path,
        http,
        &[],
    ));
    assert!(text.contains("pass --cert and --key"), "{text}");
    let with = [
        "--json",
        "--cert",
        alice.cert.to_str().unwrap(),
        "--key",
        alice.key.to_str().unwrap(),
    ];
    let out = candado_check("test.example", port, &pki.ca_path, http, &with);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["http"]["client_certificate"]["presented"], "CN=alice");
    assert_eq!(r["http"]["hsts"]["max_age"], 31_536_000, "{}", r["http"]);
    assert_eq!(r["grade"], "A+", "{}", caps(&r));
}
