//! `candado ca init|path` and `candado cert issue|self-signed`, judged by openssl, curl and
//! Python's ssl module with the CA (or the self-signed certificate) as the only root.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::client;
use crate::support::server::{BIN, Candado, site_yaml};

/// Runs candado with CANDADO_DATA_DIR=`data`; returns stdout, asserting success.
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

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    let text = crate::support::output_text(&out);
    assert!(out.status.success(), "openssl {args:?}: {text}");
    text
}

#[test]
fn ca_init_creates_the_ca_once_and_path_prints_it() {
    let data = tempfile::tempdir().unwrap();
    let ca = data.path().join("ca/ca.crt");
    let out = candado(data.path(), &["ca", "init"]);
    assert!(
        out.contains(&format!("development CA created: {}", ca.display())),
        "{out}"
    );
    let mode = std::fs::metadata(data.path().join("ca/ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read(&ca).unwrap();
    assert!(candado(data.path(), &["ca", "init"]).contains("already exists"));
    assert_eq!(std::fs::read(&ca).unwrap(), before);
    assert_eq!(
        candado(data.path(), &["ca", "path"]).trim(),
        ca.display().to_string()
    );
    let text = openssl(&["x509", "-in", ca.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "{text}");
}

#[test]
fn issued_certificates_verify_and_are_trusted_by_curl_and_python() {
    let data = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().to_str().unwrap();
    for key in ["ecdsa", "rsa2048", "rsa4096", "ed25519"] {
        let dir = format!("{out}/{key}");
        candado(
            data.path(),
            &[
                "cert",
                "issue",
                "test.example",
                "*.app.test",
                "--ip",
                "127.0.0.1",
                "--key",
                key,
                "--out",
                &dir,
            ],
        );
        let cert = format!("{dir}/test.example.crt");
        let ca = data.path().join("ca/ca.crt");
        let verified = openssl(&["verify", "-CAfile", ca.to_str().unwrap(), &cert]);
        assert!(verified.contains(": OK"), "{key}: {verified}");
        let text = openssl(&["x509", "-in", &cert, "-noout", "-text"]);
        assert!(
            text.contains("DNS:test.example")
                && text.contains("DNS:*.app.test")
                && text.contains("IP Address:127.0.0.1"),
            "{text}"
        );
        let expected_key = match key {
            "ecdsa" => "id-ecPublicKey",
            "rsa2048" => "(2048 bit)",
            "rsa4096" => "(4096 bit)",
            _ => "ED25519",
        };
        assert!(text.contains(expected_key), "{key}: {text}");
        let mode = std::fs::metadata(format!("{dir}/test.example.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Serve the RSA one and reach it with curl and Python, trusting only the CA.
    let dir = out_dir.path().join("rsa2048");
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "issued").unwrap();
    let yaml = site_yaml(
        &dir.join("test.example.crt"),
        &dir.join("test.example.key"),
        root.path(),
        "",
        "",
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let ca = data.path().join("ca/ca.crt");
    assert_eq!(client::curl(server.https, &ca, "/", &[]).text(), "issued");
    let python = format!(
        "import socket, ssl\nctx = ssl.create_default_context(cafile={ca:?})\nwith socket.create_connection(('127.0.0.1', {port})) as s:\n    with ctx.wrap_socket(s, server_hostname='test.example') as t:\n        print('python', t.version())\n",
        ca = ca.display().to_string(),
        port = server.https.port()
    );
    // rustls, with the development CA as its only root.
    let ca_pem = std::fs::read_to_string(&ca).unwrap();
    let config = client::client_config(&ca_pem, &[b"h2"]);
    let tls = client::connect(server.https, client::HOST, config).unwrap();
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"h2"[..]));
    let py = Command::new("python3")
        .args(["-c", &python])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&py.stdout).into_owned() + &String::from_utf8_lossy(&py.stderr);
    assert!(
        py.status.success() && text.contains("python TLSv1.3"),
        "{text}"
    );
}

#[test]
fn self_signed_certificates_are_their_own_root() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let text = candado(
        data.path(),
        &[
            "cert",
            "self-signed",
            "localhost",
            "--days",
            "30",
            "--out",
            out.path().to_str().unwrap(),
        ],
    );
    assert!(text.contains("self-signed"), "{text}");
    assert!(
        !data.path().join("ca").exists(),
        "no CA is created for a self-signed certificate"
    );
    let cert = out.path().join("localhost.crt");
    let verified = openssl(&[
        "verify",
        "-CAfile",
        cert.to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert!(verified.contains(": OK"), "{verified}");
    let dates = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-checkend",
        &(29 * 86400).to_string(),
    ]);
    assert!(dates.contains("will not expire"), "{dates}");
}

#[test]
fn bad_names_and_days_are_refused_with_a_reason() {
    let data = tempfile::tempdir().unwrap();
    for (args, reason) in [
        (vec!["cert", "issue", "bad name"], "is not a host name"),
        (vec!["cert", "issue"], "name at least one host"),
        (
            vec!["cert", "self-signed", "a.test", "--days", "0"],
            "choose between 1 and 3650",
        ),
    ] {
        let out = Command::new(BIN)
            .env("CANDADO_DATA_DIR", data.path())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(reason),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn inspect(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("cert")
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    let text = crate::support::output_text(&out);
    (out.status.success(), text)
}

#[test]
fn inspect_describes_a_chain_file_and_whether_a_key_matches() {
    let pki = crate::support::pki::TestPki::new();
    let leaf = pki.leaf_via_intermediate("chain", &["test.example", "127.0.0.1"]);
    let other = pki.leaf("other", &["x.test"]);
    let (ok, text) = inspect(&[
        leaf.cert.to_str().unwrap(),
        "--key",
        leaf.key.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    for expected in [
        "certificate 1 of 2 (leaf)",
        "certificate 2 of 2 (intermediate)",
        "names      test.example, 127.0.0.1",
        "key        ECDSA P-256",
        "signature  ecdsa-with-SHA256",
        "days left",
        "chain: in order",
        "ends before its issuer CN=candado test root",
        "key: matches the leaf certificate",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let (_, text) = inspect(&[
        leaf.cert.to_str().unwrap(),
        "--key",
        other.key.to_str().unwrap(),
    ]);
    assert!(text.contains("key: does NOT match"), "{text}");
    let (ok, json) = inspect(&[leaf.cert.to_str().unwrap(), "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["certificates"][0]["names"],
        serde_json::json!(["test.example", "127.0.0.1"])
    );
    assert_eq!(v["chain_in_order"], true);
    assert!(v["certificates"][0]["days_left"].as_i64().unwrap() > 80);
}

#[test]
fn inspect_spots_a_chain_out_of_order() {
    let pki = crate::support::pki::TestPki::new();
    let leaf = pki.leaf_via_intermediate("chain", &["test.example"]);
    let pems: Vec<&str> = leaf
        .cert_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .collect();
    let swapped = pki.path("swapped.crt");
    std::fs::write(&swapped, format!("{}{}", pems[1], pems[0])).unwrap();
    let (_, text) = inspect(&[swapped.to_str().unwrap()]);
    assert!(text.contains("chain: OUT OF ORDER"), "{text}");
}

#[test]
fn inspect_asks_a_running_server_for_its_chain() {
    let f = crate::support::Fixture::start("", "");
    let target = format!("127.0.0.1:{}", f.server.https.port());
    let (ok, text) = inspect(&[&target, "--json"]);
    assert!(ok, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["certificates"][0]["names"],
        serde_json::json!(["test.example", "*.wild.example", "127.0.0.1"])
    );
    let (ok, text) = inspect(&["127.0.0.1:1"]);
    assert!(
        !ok && text.contains("cannot connect to 127.0.0.1:1"),
        "{text}"
    );
}

#[test]
fn ca_install_and_uninstall_change_exactly_what_they_say() {
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let system = home.path().join("system-trust");
    let nssdb = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).unwrap();
    let db = format!("sql:{}", nssdb.display());
    assert!(
        Command::new("certutil")
            .args(["-N", "--empty-password", "-d", &db])
            .status()
            .unwrap()
            .success()
    );
    let run = |what: &str| {
        let out = Command::new(BIN)
            .args(["ca", what])
            .env("CANDADO_DATA_DIR", data.path())
            .env("HOME", home.path())
            .env("CANDADO_SYSTEM_TRUST_DIR", &system)
            .env("CANDADO_UPDATE_CA_COMMAND", "true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = || {
        Command::new("certutil")
            .args(["-L", "-d", &db, "-n", "candado development CA"])
            .output()
            .unwrap()
            .status
            .success()
    };
    let installed = system.join("candado-development-ca.crt");

    let out = run("install");
    assert_eq!(
        out.lines().take(4).collect::<Vec<_>>(),
        [
            format!("added {}", installed.display()),
            "ran true".to_owned(),
            format!("added to the browser database {}", nssdb.display()),
            "Chromium and Google Chrome now trust the development CA (restart them if they are open)".to_owned()
        ]
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(data.path().join("ca/ca.crt")).unwrap()
    );
    assert!(listed(), "certutil lists the CA");

    let out = run("uninstall");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("removed {}", installed.display()),
            "ran true".to_owned(),
            format!("removed from the browser database {}", nssdb.display())
        ]
    );
    assert!(!installed.exists() && !listed());
    assert!(run("uninstall").contains("nothing to remove"));
}
