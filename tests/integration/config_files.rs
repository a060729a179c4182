//! Config files (candado's and PyServe's), the no-config default, and start-up errors.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::pki::TestPki;
use crate::support::server::{Candado, run_to_exit};
use crate::support::{client, free_port};

#[test]
fn config_check_prints_every_problem_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "tls: {policy: ancient}\nsites:\n  - names: [ok.example, 'bad name']\n    listen: 127.0.0.1:99999\n    root: ./missing\n").unwrap();
    let (status, out, _) = run_to_exit(&["config", "check", file.to_str().unwrap()], dir.path());
    assert_eq!(status.code(), Some(1));
    let f = file.display().to_string();
    for expected in [
        format!("{f}:1: tls.policy: unknown policy `ancient`"),
        format!("{f}:3: sites[0].names: `bad name` is not a host name"),
        format!("{f}:4: sites[0].listen:"),
        format!("{f}:5: sites[0].root: folder not found"),
    ] {
        assert!(out.contains(&expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn unknown_keys_are_errors_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.yaml");
    std::fs::write(
        &file,
        "sites:\n  - names: [a.example]\n    hsts: {max_age: 1y, include_subdomain: true}\n",
    )
    .unwrap();
    let (status, out, _) = run_to_exit(&["config", "check", file.to_str().unwrap()], dir.path());
    assert_eq!(status.code(), Some(1));
    assert!(
        out.contains(&format!("{}:3:", file.display()))
            && out.contains("unknown field `include_subdomain`"),
        "{out}"
    );
}

#[test]
fn a_valid_config_checks_ok() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.yaml");
    std::fs::write(&file, "sites:\n  - names: [a.example]\n    root: .\n").unwrap();
    let (status, out, _) = run_to_exit(&["config", "check", file.to_str().unwrap()], dir.path());
    assert!(status.success(), "{out}");
    assert!(out.contains("OK (candado config, 1 site)"), "{out}");
}

#[test]
fn the_example_config_in_the_repo_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("public")).unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/candado.example.yaml"))
            .unwrap();
    let file = dir.path().join("candado.yaml");
    std::fs::write(&file, example).unwrap();
    let (status, out, _) = run_to_exit(&["config", "check", file.to_str().unwrap()], dir.path());
    assert!(status.success(), "{out}");
}

#[test]
fn a_busy_port_is_a_one_line_error_naming_the_address() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (status, out, _) = run_to_exit(&["-p", &port, "--http-port", "0"], dir.path());
    assert_eq!(status.code(), Some(1));
    assert!(
        out.contains(&format!(
            "cannot listen on 127.0.0.1:{port}: the address is already in use"
        )),
        "{out}"
    );
}

#[test]
fn with_no_config_it_serves_the_folder_with_the_local_ca_and_reuses_it() {
    let site = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (https, http) = (free_port(), free_port());
    let args = ["-p", &https.to_string(), "--http-port", &http.to_string()];
    let server = Candado::with_args(&args, site.path(), data, true);
    let ca = server.data_dir().join("ca/ca.crt");
    assert!(
        server.log().contains(&ca.display().to_string()),
        "the CA path is printed:\n{}",
        server.log()
    );
    assert!(
        server
            .log()
            .contains(&format!("https://localhost:{https}/")),
        "{}",
        server.log()
    );
    assert_eq!(server.https.ip().to_string(), "127.0.0.1", "loopback only");
    let key_mode = std::fs::metadata(server.data_dir().join("ca/ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    let url = format!("https://localhost:{https}/");
    let res = client::curl_raw(&url, &["--cacert", ca.to_str().unwrap()]);
    assert_eq!(res.status, 200);
    assert!(
        res.text().contains("candado is working"),
        "welcome page: {}",
        res.text()
    );
    let res = client::curl_raw(&format!("http://localhost:{http}/a?b"), &[]);
    assert_eq!(res.status, 301);
    assert_eq!(
        res.header("location"),
        Some(format!("https://localhost:{https}/a?b"))
    );

    // The next run reuses the CA and the leaf, and serves index.html now that there is one.
    let ca_before = std::fs::read(&ca).unwrap();
    let leaf_before = std::fs::read(server.data_dir().join("certs/localhost.crt")).unwrap();
    let data = std::mem::replace(&mut { server }.dir, tempfile::tempdir().unwrap());
    std::fs::write(site.path().join("index.html"), "mine").unwrap();
    let again = Candado::with_args(&args, site.path(), data, true);
    assert_eq!(std::fs::read(&ca).unwrap(), ca_before);
    assert_eq!(
        std::fs::read(again.data_dir().join("certs/localhost.crt")).unwrap(),
        leaf_before
    );
    assert!(!again.log().contains("created a local development CA"));
    let res = client::curl_raw(&url, &["--cacert", ca.to_str().unwrap()]);
    assert_eq!(res.text(), "mine");
}

#[test]
fn pyserve_config_and_flags_work_unchanged() {
    let pki = TestPki::new();
    let leaf = pki.leaf("py", &["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/index.html"), "pyserve site").unwrap();
    let port = free_port();
    let config = format!(
        "# my PyServe config\nserver:\n  host: 127.0.0.1\n  port: {port}\n  backlog: 5\n  reverse_proxy:\n    - path: /api\n      host: localhost\n      port: 3000\nhttp:\n  static_dir: ./static\n  templates_dir: ./templates\nssl:\n  enabled: true\n  cert_file: {}\n  key_file: {}\nlogging:\n  level: INFO\n  log_file: ./logs/pyserve.log\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Candado::with_args(&["-c", "config.yaml"], dir.path(), data, false);
    assert_eq!(server.https.port(), port);
    let res = client::curl_raw(
        &format!("https://localhost:{port}/"),
        &["--cacert", pki.ca_path.to_str().unwrap()],
    );
    assert_eq!(res.text(), "pyserve site");
    // The reverse_proxy route is live: its backend (port 3000) is not running here.
    let res = client::curl_raw(
        &format!("https://localhost:{port}/api/x"),
        &["--cacert", pki.ca_path.to_str().unwrap()],
    );
    assert_eq!(res.status, 502);
    drop(server);

    // PyServe's flags override the file, as in PyServe.
    let other = pki.leaf("other", &["localhost"]);
    let port2 = free_port();
    let args = [
        "-c",
        "config.yaml",
        "-p",
        &port2.to_string(),
        "--ssl",
        "--cert",
        other.cert.to_str().unwrap(),
        "--key",
        other.key.to_str().unwrap(),
    ];
    let server = Candado::with_args(&args, dir.path(), tempfile::tempdir().unwrap(), false);
    assert_eq!(server.https.port(), port2);
}

#[test]
fn ssl_config_writes_the_three_settings_and_keeps_comments_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let original = "# PyServe settings\nserver:\n  host: 127.0.0.1  # only here\n  port: 8000\n\nssl:\n  enabled: false\n\nlogging:\n  level: INFO  # keep me\n";
    std::fs::write(dir.path().join("config.yaml"), original).unwrap();
    let (status, out, _) = run_to_exit(
        &[
            "--ssl-config",
            "--ssl",
            "--cert",
            "./ssl/cert.pem",
            "--key",
            "./ssl/key.pem",
        ],
        dir.path(),
    );
    assert!(status.success(), "{out}");
    let written = std::fs::read_to_string(dir.path().join("config.yaml")).unwrap();
    assert_eq!(
        written,
        "# PyServe settings\nserver:\n  host: 127.0.0.1  # only here\n  port: 8000\n\nssl:\n  enabled: true\n  cert_file: ./ssl/cert.pem\n  key_file: ./ssl/key.pem\n\nlogging:\n  level: INFO  # keep me\n"
    );
}

#[test]
fn an_auth_type_candado_cannot_enforce_stops_the_start() {
    // Serving the protected pages to everyone would be worse than not serving.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "server:\n  locations:\n    /admin:\n      auth: {type: digest, username: a, password: b}\n",
    )
    .unwrap();
    let (status, out, _) = run_to_exit(&["-c", "config.yaml"], dir.path());
    assert_eq!(status.code(), Some(1));
    assert!(
        out.contains("server.locations./admin.auth.type: unknown auth type `digest`"),
        "{out}"
    );
}

#[test]
fn json_logs_and_debug_handshake_details() {
    let pki = TestPki::new();
    let leaf = pki.leaf("j", &["test.example"]);
    let root = tempfile::tempdir().unwrap();
    let yaml = crate::support::server::site_yaml(&leaf.cert, &leaf.key, root.path(), "", "");
    let server = Candado::from_yaml(&yaml, &["--log-format", "json", "-d"]);
    client::curl(server.https, &pki.ca_path, "/", &[]);
    assert!(
        server.wait_log("\"status\":404", Duration::from_secs(2)),
        "{}",
        server.log()
    );
    let log = server.log();
    let handshake = log
        .lines()
        .find(|l| l.contains("TLS handshake done"))
        .expect("debug handshake line");
    assert!(
        handshake.contains("TLS13_") && handshake.contains("\"sni\":\"test.example\""),
        "{handshake}"
    );
    for line in log.lines() {
        assert!(line.starts_with('{'), "not JSON: {line}");
    }
}

/// `config check` reads what mutual TLS and tunnels name, as `serve` would: a client CA file
/// with no certificate, a CRL that is not one, a client-mode key that does not match its
/// certificate. Each is named with its site or tunnel.
#[test]
fn config_check_reads_client_cas_crls_and_tunnel_keys() {
    let dir = tempfile::tempdir().unwrap();
    let pki = crate::support::pki::TestPki::new();
    let alice = pki.client_leaf("alice", "alice", &[]);
    let bob = pki.client_leaf("bob", "bob", &[]);
    std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
    let yaml = format!(
        "sites:\n  - names: [a.test]\n    client_auth: {{ca: junk.pem}}\ntunnels:\n  - name: t\n    listen: 127.0.0.1:7443\n    to: 127.0.0.1:1\n    client_auth: {{ca: {ca}, crl: junk.pem}}\n  - name: c\n    listen: 127.0.0.1:7444\n    to: 127.0.0.1:2\n    tls_client: {{cert: {cert}, key: {key}}}\n",
        ca = pki.ca_path.display(),
        cert = alice.cert.display(),
        key = bob.key.display()
    );
    let file = dir.path().join("mtls.yaml");
    std::fs::write(&file, yaml).unwrap();
    let (status, out, _) = run_to_exit(&["config", "check", file.to_str().unwrap()], dir.path());
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(
        out.contains("site a.test: cannot read the client CA file"),
        "{out}"
    );
    assert!(
        out.contains("tunnel t: cannot read the revocation list"),
        "{out}"
    );
    assert!(out.contains("not a CRL"), "{out}");
    assert!(out.contains("tunnel c: the private key"), "{out}");
}
