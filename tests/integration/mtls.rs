//! Mutual TLS for HTTP sites: the client certificate's identity forwarded to the backend (and
//! never a client's forged copy), 421 when Host and SNI name different sites, per-route allow
//! lists, refusals at the handshake, and `candado cert issue --client` end to end. Clients:
//! curl with `--cert/--key` and a rustls client; the backend echoes the headers it got.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};

use crate::support::Fixture;
use crate::support::client::{self, HOST, Response};
use crate::support::pki::{Leaf, TestPki};
use crate::support::server::{BIN, Candado, site_yaml};
use crate::support::tcp::{read_to_end, tls_config};
use crate::support::upstream::{self, Upstream};

/// The test site (test.example) with `client_auth: <client_auth>` when given, /whoami and
/// /admin proxied to the echoing backend, plus `admin_extra` lines for the /admin route
/// (indented by the caller to 8 spaces). / serves a static page.
fn site(up: &Upstream, client_auth: Option<&str>, admin_extra: &str) -> Fixture {
    let auth = client_auth.map_or(String::new(), |a| format!("    client_auth: {a}\n"));
    let origin = up.origin();
    Fixture::start(
        &format!(
            "{auth}    proxy:\n      - path: /whoami\n        to: {origin}\n      - path: /admin\n        to: {origin}\n{admin_extra}"
        ),
        "",
    )
}

/// curl arguments presenting `leaf` as the client certificate.
fn cert_args(leaf: &Leaf) -> [&str; 4] {
    [
        "--cert",
        leaf.cert.to_str().unwrap(),
        "--key",
        leaf.key.to_str().unwrap(),
    ]
}

/// Every value of header `name` in the backend's echo of the request, in order.
fn seen(echo: &str, name: &str) -> Vec<String> {
    let head = echo.split("\n\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.to_owned())
        })
        .collect()
}

/// The single value of header `name` in the backend's echo; panics unless there is one.
fn one(echo: &str, name: &str) -> String {
    let values = seen(echo, name);
    assert_eq!(values.len(), 1, "{name} once in:\n{echo}");
    values[0].clone()
}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A raw HTTP/1.1 exchange over rustls, presenting `leaf` when given; the whole answer.
fn raw_with_cert(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    leaf: Option<&Leaf>,
    request: &str,
) -> String {
    let mut tls = client::connect(addr, HOST, tls_config(ca_pem, leaf, &[b"http/1.1"])).unwrap();
    tls.write_all(request.as_bytes()).unwrap();
    let answer = read_to_end(&mut tls).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// With client_auth required and `forward_pem: true`, the backend gets alice's subject (CN),
/// her SANs (DNS and URI), the SHA-256 of her certificate and the certificate itself as a
/// URL-encoded PEM.
#[test]
fn the_client_certificate_identity_reaches_the_backend_in_headers() {
    let up = upstream::start();
    let clients = TestPki::new();
    let alice = clients.client_leaf(
        "alice",
        "alice",
        &["alice.test", "spiffe://example.org/alice"],
    );
    let auth = format!(
        "{{mode: required, ca: {}, forward_pem: true}}",
        clients.ca_path.display()
    );
    let f = site(&up, Some(&auth), "");
    let res = f.get("/whoami", &cert_args(&alice));
    assert_eq!(res.status, 200, "{}", f.server.log());
    let echo = res.text();

    let subject = one(&echo, "x-client-cert-subject");
    assert!(subject.contains("CN=alice"), "subject: {subject}");
    let san = one(&echo, "x-client-cert-san");
    assert!(
        san.contains("DNS:alice.test") && san.contains("URI:spiffe://example.org/alice"),
        "SAN: {san}"
    );
    assert_eq!(
        one(&echo, "x-client-cert-fingerprint"),
        sha256_hex(&alice.der()),
        "the SHA-256 of the certificate, lowercase hex"
    );
    let encoded = one(&echo, "x-client-cert");
    assert!(!encoded.contains('\n'), "the PEM is URL-encoded: {encoded}");
    let pem = percent_encoding::percent_decode_str(&encoded)
        .decode_utf8()
        .unwrap()
        .into_owned();
    assert!(
        pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----"),
        "{pem}"
    );
    assert_eq!(
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec(),
        alice.der(),
        "X-Client-Cert is alice's certificate"
    );
}

const SPOOFED: &str = "X-Client-Cert-Subject: CN=admin\r\nx-client-cert-san: DNS:admin.test\r\nX-CLIENT-CERT-FINGERPRINT: 00\r\nX-Client-Cert: forged\r\n";

/// Identity headers a client writes itself never reach the backend: on an mTLS site they are
/// replaced by the real ones (and X-Client-Cert, without `forward_pem`, is dropped), on a site
/// without client_auth they are dropped.
#[test]
fn identity_headers_sent_by_the_client_are_removed_with_and_without_mtls() {
    let up = upstream::start();
    let clients = TestPki::new();
    let alice = clients.client_leaf("alice", "alice", &["alice.test"]);
    let request =
        format!("GET /whoami HTTP/1.1\r\nHost: {HOST}\r\n{SPOOFED}Connection: close\r\n\r\n");

    let auth = format!("{{mode: optional, ca: {}}}", clients.ca_path.display());
    let f = site(&up, Some(&auth), "");
    let echo = raw_with_cert(f.server.https, &f.pki.ca_pem, Some(&alice), &request);
    assert!(echo.starts_with("HTTP/1.1 200"), "{echo}");
    assert!(one(&echo, "x-client-cert-subject").contains("CN=alice"));
    assert_eq!(one(&echo, "x-client-cert-san"), "DNS:alice.test");
    assert_eq!(
        one(&echo, "x-client-cert-fingerprint"),
        sha256_hex(&alice.der())
    );
    assert!(seen(&echo, "x-client-cert").is_empty(), "{echo}");
    assert!(
        !echo.contains("admin") && !echo.contains("forged"),
        "{echo}"
    );

    // The same site, this time without a certificate: no identity at all.
    let echo = raw_with_cert(f.server.https, &f.pki.ca_pem, None, &request);
    assert!(echo.starts_with("HTTP/1.1 200"), "{echo}");
    assert!(
        !echo.to_ascii_lowercase().contains("x-client-cert"),
        "{echo}"
    );

    let plain = site(&up, None, "");
    let echo = client::raw_tls(plain.server.https, &plain.pki.ca_pem, request.as_bytes());
    assert!(echo.starts_with("HTTP/1.1 200"), "{echo}");
    assert!(
        !echo.to_ascii_lowercase().contains("x-client-cert"),
        "{echo}"
    );
}

/// Two sites on one port, a.test requiring client certificates and b.test not: a request
/// whose Host names the other site than the TLS handshake's SNI gets 421, both ways.
#[test]
fn a_host_header_for_another_site_than_the_sni_gets_421() {
    let pki = TestPki::new();
    let clients = TestPki::new();
    let alice = clients.client_leaf("alice", "alice", &[]);
    let mut roots = Vec::new();
    let mut yaml = String::from("sites:\n");
    for (name, auth) in [
        (
            "a.test",
            format!(
                "    client_auth: {{mode: required, ca: {}}}\n",
                clients.ca_path.display()
            ),
        ),
        ("b.test", String::new()),
    ] {
        let leaf = pki.leaf(name, &[name]);
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), format!("site {name}")).unwrap();
        yaml.push_str(&format!(
            "  - names: [{name}]\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n{auth}",
            leaf.cert.display(),
            leaf.key.display(),
            root.path().display()
        ));
        roots.push(root);
    }
    let server = Candado::from_yaml(&yaml, &[]);
    let port = server.https.port();
    let get = |sni: &str, extra: &[&str]| -> Response {
        let resolve = format!("{sni}:{port}:127.0.0.1");
        let mut args = vec![
            "--resolve",
            &resolve,
            "--cacert",
            pki.ca_path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        client::curl_raw(&format!("https://{sni}:{port}/"), &args)
    };
    let alice_args = cert_args(&alice);

    assert_eq!(get("b.test", &[]).text(), "site b.test");
    assert_eq!(get("a.test", &alice_args).text(), "site a.test");
    for proto in ["--http1.1", "--http2"] {
        let res = get("b.test", &[proto, "-H", "Host: a.test"]);
        assert_eq!(
            res.status,
            421,
            "{proto}: SNI b.test, Host a.test: {}",
            res.text()
        );
        assert_ne!(res.text(), "site a.test");
    }
    let mut args = alice_args.to_vec();
    args.extend(["-H", "Host: b.test"]);
    let res = get("a.test", &args);
    assert_eq!(res.status, 421, "SNI a.test, Host b.test: {}", res.text());
}

/// `allow_clients: {cn: [alice]}` on /admin with client_auth optional: alice gets in, bob
/// (same CA) and a client without a certificate get 403 there, while / stays open to all.
#[test]
fn a_route_allow_list_admits_alice_and_turns_away_bob_and_anonymous_clients() {
    let up = upstream::start();
    let clients = TestPki::new();
    let alice = clients.client_leaf("alice", "alice", &[]);
    let bob = clients.client_leaf("bob", "bob", &[]);
    let auth = format!("{{mode: optional, ca: {}}}", clients.ca_path.display());
    let f = site(&up, Some(&auth), "        allow_clients: {cn: [alice]}\n");
    let res = f.get("/admin", &cert_args(&alice));
    assert_eq!(res.status, 200, "alice: {}", f.server.log());
    assert!(res.text().starts_with("GET /admin "), "{}", res.text());
    assert_eq!(f.get("/admin", &cert_args(&bob)).status, 403, "bob");
    assert_eq!(f.get("/admin", &[]).status, 403, "no certificate");
    let home = f.get("/", &[]);
    assert_eq!(
        (home.status, home.text().as_str()),
        (200, "<h1>home</h1>\n"),
        "/ without a certificate"
    );
    assert_eq!(
        f.get("/whoami", &cert_args(&bob)).status,
        200,
        "bob elsewhere"
    );
}

/// client_auth required and curl without a certificate: the TLS connection fails and the log
/// says which site refused whom and why.
#[test]
fn a_client_without_a_certificate_is_refused_at_the_handshake_and_the_log_says_why() {
    let up = upstream::start();
    let clients = TestPki::new();
    let auth = format!("{{mode: required, ca: {}}}", clients.ca_path.display());
    let f = site(&up, Some(&auth), "");
    let port = f.server.https.port();
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    let err = client::curl_fails(
        &format!("https://{HOST}:{port}/whoami"),
        &[
            "--resolve",
            &resolve,
            "--cacert",
            f.pki.ca_path.to_str().unwrap(),
        ],
    );
    assert!(!err.contains("(28)"), "curl timed out instead: {err}");
    assert!(
        f.server.wait_log_line(
            &[
                "client certificate refused",
                "site=test.example",
                "no client certificate"
            ],
            Duration::from_secs(5)
        ),
        "{}",
        f.server.log()
    );
}

/// Runs candado with CANDADO_DATA_DIR=`data`, asserting success; stdout and stderr.
fn candado(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .env("CANDADO_DATA_DIR", data)
        .args(args)
        .output()
        .unwrap();
    let text = crate::support::output_text(&out);
    assert!(out.status.success(), "candado {args:?}: {text}");
    text
}

/// `candado cert issue --client alice --out DIR` writes a client certificate from the local
/// CA (clientAuth, CN=alice, a 0600 key) that a site with `client_auth: {ca: local}` sharing
/// the data folder accepts; a certificate from another candado's CA is refused.
#[test]
fn cert_issue_client_makes_a_certificate_that_a_site_trusting_the_local_ca_accepts() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let printed = candado(
        data.path(),
        &["cert", "issue", "--client", "alice", "--out", dir],
    );
    let cert = out.path().join("alice.crt");
    let key = out.path().join("alice.key");
    assert!(
        printed.contains(&format!("certificate: {}", cert.display())),
        "{printed}"
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("Subject: CN = alice"), "{text}");
    assert!(text.contains("DNS:alice"), "{text}");

    // A site trusting the local CA of the same data folder.
    let up = upstream::start();
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &["test.example"]);
    let root = tempfile::tempdir().unwrap();
    let yaml = site_yaml(
        &leaf.cert,
        &leaf.key,
        root.path(),
        &format!(
            "    client_auth: {{mode: required, ca: local}}\n    proxy:\n      - path: /whoami\n        to: {}\n",
            up.origin()
        ),
        "",
    );
    let config = out.path().join("candado.yaml");
    std::fs::write(&config, yaml).unwrap();
    let server = Candado::with_args_env(
        &["serve", "-c", config.to_str().unwrap()],
        &[("CANDADO_DATA_DIR", data.path().to_str().unwrap())],
        out.path(),
        tempfile::tempdir().unwrap(),
        false,
    );
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let res = client::curl(
        server.https,
        &pki.ca_path,
        "/whoami",
        &["--cert", cert_s, "--key", key_s],
    );
    assert_eq!(res.status, 200, "{}", server.log());
    assert!(
        one(&res.text(), "x-client-cert-subject").contains("CN=alice"),
        "{}",
        res.text()
    );

    // Another data folder is another CA: its certificates are not accepted here.
    let other = tempfile::tempdir().unwrap();
    let other_out = other.path().join("out");
    candado(
        other.path(),
        &[
            "cert",
            "issue",
            "--client",
            "mallory",
            "--out",
            other_out.to_str().unwrap(),
        ],
    );
    let port = server.https.port();
    let resolve = format!("{HOST}:{port}:127.0.0.1");
    client::curl_fails(
        &format!("https://{HOST}:{port}/whoami"),
        &[
            "--resolve",
            &resolve,
            "--cacert",
            pki.ca_path.to_str().unwrap(),
            "--cert",
            other_out.join("mallory.crt").to_str().unwrap(),
            "--key",
            other_out.join("mallory.key").to_str().unwrap(),
        ],
    );
    // (Two development CAs made in the same second share their name: the reason then
    // differs, see the tunnel test about a CA with the same name.)
    assert!(
        server.wait_log_line(
            &["client certificate refused", "site=test.example"],
            Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
}
