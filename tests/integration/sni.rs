//! Many sites on one port: each name gets its own certificate (wildcards included), chosen by
//! SNI and checked with `openssl s_client -servername`; unknown names get the default
//! certificate or, when configured, a handshake failure.

use std::net::SocketAddr;

use crate::support::pki::TestPki;
use crate::support::server::Candado;

fn three_sites(top: &str) -> (TestPki, Vec<tempfile::TempDir>, Candado) {
    let pki = TestPki::new();
    let mut roots = Vec::new();
    let mut yaml = format!("{top}\nsites:\n");
    for (name, stem) in [("a.test", "a"), ("b.test", "b"), ("*.c.test", "c")] {
        let leaf = pki.leaf(stem, &[name]);
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("index.html"), format!("site {stem}")).unwrap();
        yaml.push_str(&format!(
            "  - names: ['{name}']\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n",
            leaf.cert.display(),
            leaf.key.display(),
            root.path().display()
        ));
        roots.push(root);
    }
    let server = Candado::from_yaml(&yaml, &[]);
    (pki, roots, server)
}

/// The subject CN the server presents for `sni`, or None when the handshake fails.
fn presented(addr: SocketAddr, pki: &TestPki, sni: &str) -> Option<String> {
    let (_, text) = crate::support::client::s_client_for(addr, sni, &pki.ca_path, &[]);
    let subject = text.lines().find(|l| l.starts_with("subject="))?;
    Some(subject.rsplit("CN = ").next()?.trim().to_owned())
}

#[test]
fn each_name_gets_its_own_certificate_on_one_port() {
    let (pki, _roots, server) = three_sites("");
    assert_eq!(
        presented(server.https, &pki, "a.test").as_deref(),
        Some("a.test")
    );
    assert_eq!(
        presented(server.https, &pki, "b.test").as_deref(),
        Some("b.test")
    );
    assert_eq!(
        presented(server.https, &pki, "shop.c.test").as_deref(),
        Some("*.c.test")
    );
    assert_eq!(
        presented(server.https, &pki, "nobody.test").as_deref(),
        Some("a.test"),
        "the first site is the default"
    );
    // And each name's requests reach its own site.
    for (name, body) in [("b.test", "site b"), ("x.c.test", "site c")] {
        let port = server.https.port();
        let url = format!("https://{name}:{port}/");
        let resolve = format!("{name}:{port}:127.0.0.1");
        let res = crate::support::client::curl_raw(
            &url,
            &[
                "--resolve",
                &resolve,
                "--cacert",
                pki.ca_path.to_str().unwrap(),
            ],
        );
        assert_eq!(res.text(), body);
    }
}

#[test]
fn unknown_names_can_be_refused_at_the_handshake() {
    let (pki, _roots, server) = three_sites("tls: {unknown_sni: reject}");
    assert_eq!(
        presented(server.https, &pki, "a.test").as_deref(),
        Some("a.test")
    );
    assert_eq!(presented(server.https, &pki, "nobody.test"), None);
}

#[test]
fn ecdsa_and_rsa_certificates_for_one_name_are_chosen_by_what_the_client_supports() {
    let pki = TestPki::new();
    let ecdsa = pki.leaf_with(
        "ec",
        &["test.example"],
        crate::support::pki::key_of("p256"),
        |_| {},
    );
    let rsa = pki.leaf_with(
        "rsa",
        &["test.example"],
        crate::support::pki::key_of("rsa"),
        |_| {},
    );
    let root = tempfile::tempdir().unwrap();
    let yaml = format!(
        "sites:\n  - names: [test.example]\n    listen: 127.0.0.1:0\n    certificate:\n      - {{cert: {}, key: {}}}\n      - {{cert: {}, key: {}}}\n    root: {}\n",
        ecdsa.cert.display(),
        ecdsa.key.display(),
        rsa.cert.display(),
        rsa.key.display(),
        root.path().display()
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let key_of = |extra: &[&str]| {
        let (ok, out) = crate::support::client::s_client(server.https, &pki.ca_path, extra);
        assert!(ok, "{extra:?}: {out}");
        out.lines()
            .find(|l| l.starts_with("Server public key is"))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        key_of(&["-tls1_3"]),
        "Server public key is 256 bit",
        "ECDSA first when the client takes it"
    );
    assert_eq!(
        key_of(&[
            "-tls1_3",
            "-sigalgs",
            "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384"
        ]),
        "Server public key is 2048 bit"
    );
    assert_eq!(
        key_of(&["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]),
        "Server public key is 2048 bit",
        "a TLS 1.2 RSA-only suite list"
    );
    assert_eq!(
        key_of(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
        "Server public key is 256 bit"
    );
}
