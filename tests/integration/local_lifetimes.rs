//! Issue 12, item 8: local certificates that graders accept. `cert issue` and the dev CA's
//! leaves last at most 365 days (sslyze's Mozilla "intermediate" check is the judge), and
//! `serve` reissues its own local-CA leaves once a third of their life is left: at start and
//! while running, without a restart and without dropping connections.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ::time::OffsetDateTime;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::server::{BIN, Candado};
use crate::support::{client, free_port, output_text};

/// Runs candado with CANDADO_DATA_DIR=`data`, asserting success.
fn candado(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .env("CANDADO_DATA_DIR", data)
        .args(args)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "candado {args:?}: {text}");
    text
}

/// `sslyze --mozilla_config intermediate` against 127.0.0.1:`port` trusting `ca`:
/// (exit code, output).
fn sslyze_mozilla(port: u16, ca: &Path) -> (Option<i32>, String) {
    let sslyze = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/pyenv/bin/sslyze"
    ));
    assert!(sslyze.exists(), "no sslyze in the venv: run scripts/test");
    let out = Command::new("timeout")
        .arg("120")
        .arg(sslyze)
        .arg(format!("127.0.0.1:{port}"))
        .arg("--certinfo_ca_file")
        .arg(ca)
        .args(["--mozilla_config", "intermediate"])
        .output()
        .unwrap();
    (out.status.code(), output_text(&out))
}

/// The certificate a server presents for `sni`: (serial, notBefore, notAfter) as Unix times.
fn served(addr: std::net::SocketAddr, sni: &str, ca_pem: &str) -> (Vec<u8>, i64, i64) {
    let tls = client::connect(addr, sni, client::client_config(ca_pem, &[b"http/1.1"])).unwrap();
    let der = tls.conn.peer_certificates().unwrap()[0].as_ref().to_vec();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let v = cert.validity();
    (
        cert.raw_serial().to_vec(),
        v.not_before.timestamp(),
        v.not_after.timestamp(),
    )
}

fn lifetime_days(path: &Path) -> i64 {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let v = cert.validity();
    (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400
}

/// Writes `data/certs/localhost.{crt,key}` as plain files: a leaf of the dev CA in `data` for
/// what a zero-config candado serves, valid from `start` to `end` (relative to now).
fn write_local_leaf(data: &Path, start: ::time::Duration, end: ::time::Duration) -> Vec<u8> {
    let ca_pem = std::fs::read_to_string(data.join("ca/ca.crt")).unwrap();
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(data.join("ca/ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    // The names `local_names` gives a loopback site: these and the machine's host name.
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim().to_ascii_lowercase();
    if !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        names.push(host);
    }
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    params.not_before = now + start;
    params.not_after = now + end;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let certs = data.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("localhost.crt"), cert.pem()).unwrap();
    crate::support::pki::write_key(&certs.join("localhost.key"), &key.serialize_pem());
    let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
    parsed.raw_serial().to_vec()
}

/// A zero-config candado (serving an empty folder with the dev CA) on a free port.
fn zero_config(data: tempfile::TempDir, site: &Path, env: &[(&str, &str)]) -> Candado {
    let (https, http) = (free_port().to_string(), free_port().to_string());
    let args = ["-p", &https, "--http-port", &http];
    Candado::with_args_env(&args, env, site, data, true)
}

/// Moves a prepared data folder to where `Candado` keeps CANDADO_DATA_DIR (`DIR/data`).
fn data_holder(prepare: impl FnOnce(&Path)) -> tempfile::TempDir {
    let holder = tempfile::tempdir().unwrap();
    prepare(&holder.path().join("data"));
    holder
}

#[test]
fn cert_issue_certificates_last_365_days_and_pass_sslyzes_mozilla_intermediate_check() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let printed = candado(
        data.path(),
        &[
            "cert",
            "issue",
            "app.test",
            "--ip",
            "127.0.0.1",
            "--out",
            dir,
        ],
    );
    assert!(printed.contains("365 days"), "{printed}");
    let (cert, key) = (
        out.path().join("app.test.crt"),
        out.path().join("app.test.key"),
    );
    assert_eq!(lifetime_days(&cert), 365, "{printed}");

    let site = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let args = [
        "-p",
        &port,
        "--http-port",
        "0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let server = Candado::with_args(&args, site.path(), tempfile::tempdir().unwrap(), false);
    let (code, text) = sslyze_mozilla(server.https.port(), &data.path().join("ca/ca.crt"));
    assert_eq!(
        code,
        Some(0),
        "sslyze --mozilla_config intermediate:\n{text}"
    );
}

#[test]
fn a_zero_config_candado_passes_sslyzes_mozilla_intermediate_check() {
    let site = tempfile::tempdir().unwrap();
    let server = zero_config(tempfile::tempdir().unwrap(), site.path(), &[]);
    let leaf = server.data_dir().join("certs/localhost.crt");
    assert!(lifetime_days(&leaf) <= 365, "{}", leaf.display());
    let (code, text) = sslyze_mozilla(server.https.port(), &server.data_dir().join("ca/ca.crt"));
    assert_eq!(
        code,
        Some(0),
        "sslyze --mozilla_config intermediate:\n{text}"
    );
}

#[test]
fn a_local_leaf_past_two_thirds_of_its_life_is_replaced_at_start() {
    // 360 days of life, 60 left: more than 30 days (the old rule), less than a third.
    let mut old_serial = Vec::new();
    let data = data_holder(|d| {
        candado(d, &["ca", "init"]);
        old_serial = write_local_leaf(d, -::time::Duration::days(300), ::time::Duration::days(60));
    });
    let site = tempfile::tempdir().unwrap();
    let server = zero_config(data, site.path(), &[]);
    let ca_pem = std::fs::read_to_string(server.data_dir().join("ca/ca.crt")).unwrap();
    let (serial, not_before, not_after) = served(server.https, "localhost", &ca_pem);
    assert_ne!(serial, old_serial, "the old leaf is still served");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(not_before <= now && not_after - not_before <= 365 * 86_400);
    assert!(not_after - now > 360 * 86_400, "a fresh leaf is served");
    // And it is the one on disk, so the next start reuses it.
    let on_disk = std::fs::read(server.data_dir().join("certs/localhost.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&on_disk).unwrap();
    assert_eq!(pem.parse_x509().unwrap().raw_serial(), &serial[..]);
}

#[test]
fn a_running_server_reissues_its_local_leaf_when_it_becomes_due_without_dropping_connections() {
    // 3 h 20 s of life with 1 h 20 s left: current at start (more than a third left), due
    // some 13 s later.
    let mut old_serial = Vec::new();
    let data = data_holder(|d| {
        candado(d, &["ca", "init"]);
        old_serial = write_local_leaf(
            d,
            -::time::Duration::hours(2),
            ::time::Duration::hours(1) + ::time::Duration::seconds(20),
        );
    });
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), "still here").unwrap();
    let env = [("CANDADO_LOCAL_CERT_CHECK_SECS", "1")];
    let server = zero_config(data, site.path(), &env);
    let ca_pem = std::fs::read_to_string(server.data_dir().join("ca/ca.crt")).unwrap();
    let (serial, _, _) = served(server.https, "localhost", &ca_pem);
    assert_eq!(serial, old_serial, "the leaf is still current at start");

    // A connection opened before the swap keeps working after it.
    let mut open = client::connect(
        server.https,
        "localhost",
        client::client_config(&ca_pem, &[b"http/1.1"]),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(45);
    let fresh = loop {
        let (serial, _, not_after) = served(server.https, "localhost", &ca_pem);
        if serial != old_serial {
            break not_after;
        }
        assert!(
            Instant::now() < deadline,
            "the leaf was not reissued:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(fresh - now > 360 * 86_400, "a fresh leaf is served");
    open.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = open.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("still here"),
        "{answer}"
    );
    assert!(
        server.wait_log("reissued", Duration::from_secs(3)),
        "the reissue is logged:\n{}",
        server.log()
    );
}
