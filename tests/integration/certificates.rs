//! Certificate loading: every key form served, every broken input refused with exit code 1,
//! a one-line reason naming the file, within a second.

use std::path::Path;
use std::time::Duration;

use crate::support::pki::{self, TestPki};
use crate::support::server::{Candado, run_to_exit, site_yaml};
use crate::support::{Fixture, client};

/// Starts candado with these files and expects it to refuse: returns the error output.
fn refused(cert: &Path, key: &Path, extra: &[&str]) -> String {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("c.yaml");
    std::fs::write(&config, site_yaml(cert, key, root.path(), "", "")).unwrap();
    let mut args = vec!["serve", "-c", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (status, out, took) = run_to_exit(&args, root.path());
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let errors: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("candado: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{out}");
    errors[0].to_owned()
}

#[test]
fn a_missing_certificate_file_is_named() {
    let pki = TestPki::new();
    let leaf = pki.leaf("a", &["test.example"]);
    let missing = pki.path("nope.crt");
    let err = refused(&missing, &leaf.key, &[]);
    assert!(
        err.contains(&format!(
            "certificate file not found: {}",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn a_missing_key_file_is_named() {
    let pki = TestPki::new();
    let leaf = pki.leaf("a", &["test.example"]);
    let err = refused(&leaf.cert, &pki.path("nope.key"), &[]);
    assert!(err.contains("private key file not found"), "{err}");
}

#[test]
fn a_file_that_is_not_pem_is_refused() {
    let pki = TestPki::new();
    let leaf = pki.leaf("a", &["test.example"]);
    let junk = pki.path("junk.crt");
    std::fs::write(&junk, b"\x30\x82\x01\x0a not pem at all").unwrap();
    let err = refused(&junk, &leaf.key, &[]);
    assert!(err.contains("is not a PEM file"), "{err}");
}

#[test]
fn swapped_certificate_and_key_are_explained() {
    let pki = TestPki::new();
    let leaf = pki.leaf("a", &["test.example"]);
    let err = refused(&leaf.key, &leaf.cert, &[]);
    assert!(err.contains("no certificate found in"), "{err}");
    assert!(err.contains("swapped"), "{err}");
}

#[test]
fn a_key_that_does_not_match_is_refused() {
    let pki = TestPki::new();
    let a = pki.leaf("a", &["test.example"]);
    let b = pki.leaf("b", &["test.example"]);
    let err = refused(&a.cert, &b.key, &[]);
    assert!(err.contains("does not match the certificate"), "{err}");
}

#[test]
fn an_encrypted_key_is_refused_without_a_prompt() {
    let pki = TestPki::new();
    let leaf = pki.leaf("a", &["test.example"]);
    let enc = pki.path("enc.key");
    let ok = std::process::Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:secret",
        ])
        .args([
            "-in",
            leaf.key.to_str().unwrap(),
            "-out",
            enc.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let err = refused(&leaf.cert, &enc, &[]);
    assert!(
        err.contains("encrypted private key") && err.contains("does not prompt"),
        "{err}"
    );
}

#[test]
fn an_expired_certificate_is_refused_unless_allowed() {
    let pki = TestPki::new();
    let leaf = pki.leaf_with("old", &["test.example"], pki::key_of("p256"), |p| {
        p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(100);
        p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(10);
    });
    let err = refused(&leaf.cert, &leaf.key, &[]);
    assert!(
        err.contains("expired on") && err.contains("--allow-expired"),
        "{err}"
    );

    let root = tempfile::tempdir().unwrap();
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), "", "");
    let server = Candado::from_yaml(&yaml, &["--allow-expired"]);
    assert!(server.log().contains("EXPIRED"), "{}", server.log());
    let (_, out) = client::s_client(server.https, &pki.ca_path, &[]);
    assert!(out.contains("certificate has expired"), "{out}");
}

#[test]
fn a_certificate_close_to_expiry_is_served_with_a_warning_and_the_date() {
    let pki = TestPki::new();
    let expiry = time::OffsetDateTime::now_utc() + time::Duration::days(5);
    let leaf = pki.leaf_with("soon", &["test.example"], pki::key_of("p256"), |p| {
        p.not_after = expiry
    });
    let root = tempfile::tempdir().unwrap();
    let server = Candado::from_yaml(&site_yaml(&leaf.cert, &leaf.key, root.path(), "", ""), &[]);
    let date = format!(
        "{:04}-{:02}-{:02}",
        expiry.year(),
        expiry.month() as u8,
        expiry.day()
    );
    let log = server.log();
    assert!(log.contains("expires on") && log.contains(&date), "{log}");
}

#[test]
fn a_key_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let pki = TestPki::new();
    let leaf = pki.leaf("a", &["test.example"]);
    std::fs::set_permissions(&leaf.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let server = Candado::from_yaml(&site_yaml(&leaf.cert, &leaf.key, root.path(), "", ""), &[]);
    assert!(
        server.log().contains("readable by group or others"),
        "{}",
        server.log()
    );
}

#[test]
fn every_supported_key_type_and_encoding_is_served() {
    let pki = TestPki::new();
    let cases = [
        ("p256", false),
        ("p256", true),
        ("p384", false),
        ("p384", true),
        ("ed25519", false),
        ("rsa", false),
        ("rsa", true),
    ];
    for (kind, traditional) in cases {
        let key = pki::key_of(kind);
        let mut leaf = pki.leaf_with(kind, &["test.example"], key, |_| {});
        if traditional {
            let pem = pki::traditional_key(&leaf.key_pem, kind);
            let marker = if kind == "rsa" {
                "BEGIN RSA PRIVATE KEY"
            } else {
                "BEGIN EC PRIVATE KEY"
            };
            assert!(pem.contains(marker), "{pem}");
            pki::write_key(&leaf.key, &pem);
            leaf.key_pem = pem;
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), kind).unwrap();
        let server =
            Candado::from_yaml(&site_yaml(&leaf.cert, &leaf.key, root.path(), "", ""), &[]);
        let res = client::curl(server.https, &pki.ca_path, "/", &[]);
        assert_eq!(
            (res.status, res.text()),
            (200, kind.to_owned()),
            "{kind} traditional={traditional}"
        );
    }
}

#[test]
fn the_whole_chain_is_presented_and_verifies_against_the_root() {
    let pki = TestPki::new();
    let leaf = pki.leaf_via_intermediate("chain", &["test.example"]);
    let root = tempfile::tempdir().unwrap();
    let server = Candado::from_yaml(&site_yaml(&leaf.cert, &leaf.key, root.path(), "", ""), &[]);
    let (ok, out) = client::s_client(
        server.https,
        &pki.ca_path,
        &["-showcerts", "-verify_return_error"],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
}

#[test]
fn config_check_also_loads_the_certificates() {
    let pki = TestPki::new();
    let a = pki.leaf("a", &["test.example"]);
    let b = pki.leaf("b", &["test.example"]);
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("c.yaml");
    std::fs::write(&config, site_yaml(&a.cert, &b.key, root.path(), "", "")).unwrap();
    let (status, out, _) = run_to_exit(&["config", "check", config.to_str().unwrap()], root.path());
    assert_eq!(status.code(), Some(1));
    assert!(out.contains("does not match"), "{out}");
}

#[test]
fn a_wildcard_name_is_served_by_the_wildcard_certificate() {
    let f = Fixture::start("", "");
    let port = f.server.https.port();
    let resolve = format!("a.wild.example:{port}:127.0.0.1");
    let url = format!("https://a.wild.example:{port}/");
    let res = client::curl_raw(
        &url,
        &[
            "--resolve",
            &resolve,
            "--cacert",
            f.pki.ca_path.to_str().unwrap(),
        ],
    );
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "<h1>home</h1>\n");
}
