//! Automatic certificates against a real ACME CA (pebble): HTTP-01 and TLS-ALPN-01, stored
//! accounts and certificates, renewal without restart, revocation, failures with backoff.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::client::{self, curl_raw};
use crate::support::pebble::{Options, Pebble};
use crate::support::server::{BIN, Candado};
use crate::support::{free_port, output_text, upstream};

const SITE: &str = "site.test";

/// A one-site candado config whose certificate comes from `pebble`.
fn acme_yaml(
    pebble: &Pebble,
    https: u16,
    http: Option<u16>,
    acme_extra: &str,
    storage: &Path,
) -> String {
    let www = storage.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello over ACME\n").unwrap();
    let redirect = http.map_or(String::new(), |p| {
        format!("    http_redirect: 127.0.0.1:{p}\n")
    });
    format!(
        "acme:\n  directory: {}\n  ca: {}\n  email: admin@example.com\n  storage: {}\n{acme_extra}sites:\n  - names: [{SITE}]\n    listen: 127.0.0.1:{https}\n{redirect}    certificate: acme\n    root: {}\n",
        pebble.directory,
        pebble.api_ca().display(),
        storage.join("acme").display(),
        www.display()
    )
}

/// GET https://site.test:PORT/ trusting only pebble's roots.
fn get(addr: SocketAddr, trust: &Path) -> client::Response {
    let resolve = format!("{SITE}:{}:127.0.0.1", addr.port());
    let url = format!("https://{SITE}:{}/", addr.port());
    curl_raw(
        &url,
        &["--resolve", &resolve, "--cacert", trust.to_str().unwrap()],
    )
}

/// The serial number (hex) of the certificate served for site.test, verified with `trust`.
fn served_serial(addr: SocketAddr, trust: &Path) -> String {
    let pem = std::fs::read_to_string(trust).unwrap();
    let tls = client::connect(addr, SITE, client::client_config(&pem, &[b"http/1.1"])).unwrap();
    let leaf = tls.conn.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.serial.to_str_radix(16)
}

fn wait_for(server: &Candado, needle: &str, secs: u64) {
    assert!(
        server.wait_log(needle, Duration::from_secs(secs)),
        "no `{needle}` within {secs}s:\n{}",
        server.log()
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Runs a candado command to its end with a given data folder: (success, stdout + stderr).
fn run_cli(args: &[&str], data: &Path) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("90")
        .arg(BIN)
        .args(args)
        .env("CANDADO_DATA_DIR", data)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

fn stored_cert_dir(storage: &Path, pebble: &Pebble) -> PathBuf {
    let dir_key = pebble
        .directory
        .trim_start_matches("https://")
        .replace([':', '/'], "-");
    storage
        .join("acme")
        .join(dir_key)
        .join("certificates")
        .join(SITE)
}

#[test]
fn serve_gets_a_certificate_over_http01_and_a_restart_reuses_it_at_once() {
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(Options::ports(http, https));
    let storage = tempfile::tempdir().unwrap();
    let yaml = acme_yaml(&pebble, https, Some(http), "", storage.path());
    let server = Candado::from_yaml(&yaml, &[]);
    wait_for(&server, "ACME certificate obtained and now served", 60);
    let log = server.log();
    for step in [
        "ACME account: registered",
        "ACME order: ",
        "ACME challenge: http-01 for site.test is ready",
        "path=/.well-known/acme-challenge/",
        "ACME validation: every name is proven",
        "ACME download: certificate received",
    ] {
        assert!(log.contains(step), "missing `{step}`:\n{log}");
    }
    let trust = pebble.trust_file();
    let res = get(server.https, &trust);
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "hello over ACME\n");
    let serial = served_serial(server.https, &trust);

    // Stored privately: 0700 folders, 0600 files.
    let dir = stored_cert_dir(storage.path(), &pebble);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);
    assert_eq!(mode(&dir.join("cert.pem")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&storage.path().join("acme")), 0o700);

    // A restart serves the stored certificate from the first handshake, asks for nothing.
    drop(server);
    let again = Candado::from_yaml(&yaml, &[]);
    assert_eq!(get(again.https, &trust).status, 200);
    assert_eq!(served_serial(again.https, &trust), serial);
    std::thread::sleep(Duration::from_secs(1));
    let log = again.log();
    assert!(!log.contains("ACME order"), "{log}");
    assert!(!log.contains("ACME account: registered"), "{log}");
}

#[test]
fn one_proxy_command_gets_a_certificate_over_tls_alpn01_without_port_80() {
    let https = free_port();
    // The HTTP-01 port points nowhere: only TLS-ALPN-01 can succeed.
    let pebble = Pebble::start(Options::ports(free_port(), https));
    let app = upstream::start();
    let work = tempfile::tempdir().unwrap();
    let from = format!("{SITE}:{https}");
    let ca = pebble.api_ca().to_str().unwrap().to_owned();
    let args = [
        "proxy",
        "--from",
        &from,
        "--to",
        &app.origin(),
        "-H",
        "127.0.0.1",
        "--http-port",
        "0",
        "--email",
        "me@example.com",
        "--acme-directory",
        &pebble.directory,
        "--acme-ca",
        &ca,
    ];
    let server = Candado::with_args(&args, work.path(), tempfile::tempdir().unwrap(), false);
    wait_for(&server, "ACME certificate obtained and now served", 60);
    assert!(
        server
            .log()
            .contains("ACME challenge: tls-alpn-01 for site.test is ready")
    );
    let res = get(server.https, &pebble.trust_file());
    assert_eq!(res.status, 200, "{}", res.text());
    let port = app.addr.port().to_string();
    assert_eq!(res.header("x-upstream"), Some(port), "{:?}", res.head);
    // The validation certificate is gone once the order is done: an acme-tls/1 handshake
    // now fails instead of revealing anything.
    let pem = std::fs::read_to_string(pebble.trust_file()).unwrap();
    let alpn = client::client_config(&pem, &[b"acme-tls/1"]);
    assert!(client::connect(server.https, SITE, alpn).is_err());
}

#[test]
fn short_lived_certificates_are_renewed_and_served_without_a_restart() {
    let (https, http) = (free_port(), free_port());
    let mut options = Options::ports(http, https);
    options.validity_secs = Some(15);
    let pebble = Pebble::start(options);
    let storage = tempfile::tempdir().unwrap();
    let yaml = acme_yaml(&pebble, https, Some(http), "", storage.path());
    let server = Candado::from_yaml(&yaml, &[]);
    wait_for(&server, "ACME certificate obtained and now served", 60);
    let trust = pebble.trust_file();
    let first = served_serial(server.https, &trust);
    // A third of 15 s left: renewal about 10 s after issuance.
    let deadline = Instant::now() + Duration::from_secs(45);
    let renewed = loop {
        assert!(Instant::now() < deadline, "not renewed:\n{}", server.log());
        assert_eq!(get(server.https, &trust).status, 200);
        let now = served_serial(server.https, &trust);
        if now != first {
            break now;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_ne!(renewed, first);
    assert_eq!(
        server.log().matches("ACME certificate obtained").count(),
        2,
        "{}",
        server.log()
    );
}

#[test]
fn cert_obtain_writes_files_asks_once_and_revoke_revokes_at_the_ca() {
    let http = free_port();
    let mut options = Options::ports(http, free_port());
    // pebble's own defaults: rejected nonces and slow validations must be retried.
    options.unreliable = Some(2);
    let pebble = Pebble::start(options);
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = http.to_string();
    let ca = pebble.api_ca().to_str().unwrap().to_owned();
    let acme = ["--acme-directory", &pebble.directory, "--acme-ca", &ca];
    let out_dir = out.path().to_str().unwrap();
    let obtain = |extra: &[&str]| {
        let mut args = vec!["cert", "obtain", "-d", SITE, "-d", "www.site.test"];
        args.extend_from_slice(&["-H", "127.0.0.1", "--http-port", &port, "--out", out_dir]);
        args.extend_from_slice(&acme);
        args.extend_from_slice(extra);
        run_cli(&args, data.path())
    };
    let (ok, text) = obtain(&[]);
    assert!(ok, "{text}\n{}", pebble.log());
    let steps = [
        "account: registered",
        "order: ",
        "challenge: http-01 for site.test",
        "validation: every name is proven",
        "download: certificate received",
        "written: ",
    ];
    let mut at = 0;
    for step in steps {
        let found = text[at..]
            .find(step)
            .unwrap_or_else(|| panic!("`{step}` missing or out of order:\n{text}"));
        at += found;
    }
    let (crt, key) = (
        out.path().join("site.test.crt"),
        out.path().join("site.test.key"),
    );
    assert_eq!(mode(&key), 0o600);
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(pebble.root_file())
        .arg("-untrusted")
        .arg(&crt)
        .arg(&crt)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", output_text(&verify));
    let sans = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-serial", "-in"])
        .arg(&crt)
        .output()
        .unwrap();
    let sans = output_text(&sans);
    assert!(
        sans.contains("DNS:site.test") && sans.contains("DNS:www.site.test"),
        "{sans}"
    );
    let serial = sans
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .unwrap()
        .to_ascii_lowercase();

    // Nothing is requested twice while the stored certificate is valid.
    let (ok, text) = obtain(&[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("stored: a valid certificate for site.test"),
        "{text}"
    );
    assert!(!text.contains("order: "), "{text}");

    // --force asks anyway (a forced renewal): a new certificate, the account reused.
    let (ok, text) = obtain(&["--force"]);
    assert!(ok, "{text}");
    assert!(text.contains("account: using the stored account"), "{text}");
    assert!(text.contains("download: certificate received"), "{text}");
    let renewed = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&crt)
        .output()
        .unwrap();
    let renewed = output_text(&renewed).trim().to_ascii_lowercase();
    assert_ne!(renewed.trim_start_matches("serial="), serial);
    let serial = renewed.trim_start_matches("serial=").to_owned();

    let mut args = vec!["cert", "revoke", "-d", SITE, "-d", "www.site.test"];
    args.extend_from_slice(&acme);
    let (ok, text) = run_cli(&args, data.path());
    assert!(ok, "{text}");
    assert!(text.contains("account: using the stored account"), "{text}");
    assert!(text.contains("revoked"), "{text}");
    assert_eq!(
        pebble.cert_status(serial.trim_start_matches('0')),
        "Revoked"
    );
    // Gone from the store, so the next obtain asks again.
    let (ok, text) = run_cli(&args, data.path());
    assert!(!ok);
    assert!(
        text.contains("no valid stored certificate for site.test"),
        "{text}"
    );
}

#[test]
fn a_failing_challenge_logs_the_cas_error_backs_off_and_serves_a_temporary_certificate() {
    let (https, http) = (free_port(), free_port());
    // pebble validates HTTP-01 on a port where nothing answers.
    let pebble = Pebble::start(Options::ports(free_port(), https));
    let storage = tempfile::tempdir().unwrap();
    let extra = "  challenge: http-01\n  while_pending: local\n";
    let yaml = acme_yaml(&pebble, https, Some(http), extra, storage.path());
    let server = Candado::from_yaml(&yaml, &[]);
    wait_for(&server, "ACME: could not get a certificate", 60);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("could not get a certificate"))
        .unwrap();
    // The CA's own words, and when the next attempt comes.
    assert!(
        line.contains("urn:ietf:params:acme:error:connection"),
        "{line}"
    );
    assert!(
        line.contains("retrying in 2m") || line.contains("retrying in 3m"),
        "{line}"
    );
    assert!(line.contains("attempt=1"), "{line}");
    assert!(
        line.contains("a temporary local-CA certificate is served"),
        "{line}"
    );
    // Meanwhile the site answers with the local development CA's certificate.
    let local_ca = server.data_dir().join("ca").join("ca.crt");
    assert!(local_ca.exists(), "{}", server.log());
    let res = get(server.https, &local_ca);
    assert_eq!(res.status, 200);
    // And nothing more is asked of the CA before the backoff ends.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        server.log().matches("ACME order: ").count(),
        1,
        "{}",
        server.log()
    );
}

#[test]
fn a_site_waiting_for_its_first_certificate_refuses_handshakes_and_says_why() {
    let https = free_port();
    let pebble = Pebble::start(Options::ports(free_port(), free_port()));
    let storage = tempfile::tempdir().unwrap();
    let yaml = acme_yaml(
        &pebble,
        https,
        None,
        "  challenge: tls-alpn-01\n",
        storage.path(),
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let url = format!("https://{SITE}:{https}/");
    let resolve = format!("{SITE}:{https}:127.0.0.1");
    let err = client::curl_fails(&url, &["--resolve", &resolve, "-k"]);
    assert!(err.contains("alert") || err.contains("handshake"), "{err}");
    wait_for(
        &server,
        "TLS handshake refused: the site's certificate is still being obtained",
        10,
    );
}

#[test]
fn external_account_binding_is_sent_when_the_ca_requires_it() {
    let http = free_port();
    let mut options = Options::ports(http, free_port());
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    options.eab = Some(("kid-1".into(), hmac.into()));
    let pebble = Pebble::start(options);
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = http.to_string();
    let ca = pebble.api_ca().to_str().unwrap().to_owned();
    let base = [
        "cert",
        "obtain",
        "-d",
        SITE,
        "-H",
        "127.0.0.1",
        "--http-port",
        &port,
        "--out",
        out.path().to_str().unwrap(),
        "--acme-directory",
        &pebble.directory,
        "--acme-ca",
        &ca,
    ];
    let (ok, text) = run_cli(&base, data.path());
    assert!(!ok);
    assert!(
        text.contains("externalAccountRequired") || text.contains("External account"),
        "{text}"
    );
    let mut with_eab = base.to_vec();
    with_eab.extend_from_slice(&["--eab-kid", "kid-1", "--eab-hmac-key", hmac]);
    let (ok, text) = run_cli(&with_eab, data.path());
    assert!(ok, "{text}");
    assert!(out.path().join("site.test.crt").exists());
}

#[test]
fn a_failed_renewal_never_takes_down_a_site_whose_certificate_is_still_valid() {
    let (https, http) = (free_port(), free_port());
    let mut options = Options::ports(http, https);
    options.validity_secs = Some(30);
    let mut pebble = Pebble::start(options);
    let storage = tempfile::tempdir().unwrap();
    let yaml = acme_yaml(&pebble, https, Some(http), "", storage.path());
    let server = Candado::from_yaml(&yaml, &[]);
    wait_for(&server, "ACME certificate obtained and now served", 60);
    let trust = pebble.trust_file();
    let serial = served_serial(server.https, &trust);
    // The CA goes away before renewal is due (a third of 30 s left, about 20 s in).
    pebble.stop();
    wait_for(&server, "ACME: could not get a certificate", 40);
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("could not get a certificate"))
        .unwrap();
    assert!(
        line.contains("the site keeps its current certificate, valid until"),
        "{line}"
    );
    assert_eq!(get(server.https, &trust).status, 200);
    assert_eq!(served_serial(server.https, &trust), serial);
}

/// A tunnel gets its certificate like a site: TLS-ALPN-01 on the tunnel's own port (no HTTP
/// listener anywhere), then clients trusting only pebble's roots reach the TCP service.
#[test]
fn a_tunnel_gets_its_certificate_over_tls_alpn01_and_relays_with_it() {
    let port = free_port();
    let pebble = Pebble::start(Options::ports(free_port(), port));
    let echo = crate::support::tcp::Echo::start();
    let storage = tempfile::tempdir().unwrap();
    let yaml = format!(
        "acme:\n  directory: {}\n  ca: {}\n  storage: {}\ntunnels:\n  - name: echo\n    listen: 127.0.0.1:{port}\n    to: {}\n    names: [{SITE}]\n    certificate: acme\n",
        pebble.directory,
        pebble.api_ca().display(),
        storage.path().join("acme").display(),
        echo.addr
    );
    let server = Candado::tunnels_from_yaml(&yaml, 1);
    wait_for(&server, "ACME certificate obtained and now served", 60);
    let pem = std::fs::read_to_string(pebble.trust_file()).unwrap();
    let config = crate::support::tcp::tls_config(&pem, None, &[]);
    let done = crate::support::tcp::exchange(server.tunnel("echo"), SITE, config, b"ping").unwrap();
    assert_eq!(done.reply, crate::support::tcp::reply_to(b"ping"));
    // The validation answer is gone: an acme-tls/1 handshake now fails.
    let alpn = client::client_config(&pem, &[b"acme-tls/1"]);
    assert!(client::connect(server.tunnel("echo"), SITE, alpn).is_err());
}

/// A site that requires client certificates still passes TLS-ALPN-01: the CA's validation
/// connection is never asked for a certificate it does not have.
#[test]
fn a_site_requiring_client_certificates_still_gets_its_certificate_over_tls_alpn01() {
    let https = free_port();
    let pebble = Pebble::start(Options::ports(free_port(), https));
    let storage = tempfile::tempdir().unwrap();
    let clients = crate::support::pki::TestPki::named("ACME site client CA");
    let mut yaml = acme_yaml(&pebble, https, None, "", storage.path());
    yaml.push_str(&format!(
        "    client_auth: {{ca: {}}}\n",
        clients.ca_path.display()
    ));
    let server = Candado::from_yaml(&yaml, &[]);
    wait_for(&server, "ACME certificate obtained and now served", 60);
    let alice = clients.client_leaf("alice", "alice", &[]);
    let resolve = format!("{SITE}:{https}:127.0.0.1");
    let url = format!("https://{SITE}:{https}/");
    let trust = pebble.trust_file();
    let args = [
        "--resolve",
        &resolve,
        "--cacert",
        trust.to_str().unwrap(),
        "--cert",
        alice.cert.to_str().unwrap(),
        "--key",
        alice.key.to_str().unwrap(),
    ];
    let res = curl_raw(&url, &args);
    assert_eq!(res.status, 200, "{}", res.text());
}
