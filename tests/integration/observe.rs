//! Seeing what candado does (issue 18): the admin listener's `/metrics` judged by promtool and
//! scraped by a real Prometheus server, counters after known requests, `/status` rendered by
//! Chromium, `candado status` exit codes, and who the admin listener refuses.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::browser::{chromium, png_has_content, screenshot_dir};
use crate::support::client::{self, curl_raw};
use crate::support::pki::TestPki;
use crate::support::server::{BIN, Candado, site_yaml};
use crate::support::{Fixture, free_port, output_text};

const TOKEN: &str = "3f1c0e6a9b2d4c8e7f6a5b4c3d2e1f00";

/// The admin listener's address, from its `listening kind=admin` line.
pub(crate) fn admin_addr(c: &Candado) -> SocketAddr {
    assert!(
        c.wait_log("listening kind=admin", Duration::from_secs(10)),
        "no admin listener:\n{}",
        c.log()
    );
    let log = c.log();
    let marker = "listening kind=admin addr=";
    let rest = &log[log.find(marker).unwrap() + marker.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

fn get(url: &str, args: &[&str]) -> client::Response {
    curl_raw(url, args)
}

pub(crate) fn scrape(admin: SocketAddr) -> String {
    let res = get(&format!("http://{admin}/metrics"), &[]);
    assert_eq!(res.status, 200, "{}", res.text());
    assert!(
        res.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{}",
        res.head
    );
    res.text()
}

/// The value of the sample whose name and labels are exactly `series`; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test (Debian package prometheus)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}\n{text}",
        output_text(&out)
    );
}

/// A site with files, a route to an app that is not running and the admin listener.
fn site_with_dead_app(admin: &str) -> Fixture {
    let dead = free_port();
    Fixture::start(
        &format!("    proxy:\n      - path: /app\n        to: http://127.0.0.1:{dead}\n"),
        admin,
    )
}

#[test]
fn an_app_that_closes_without_answering_is_a_502_counted_as_a_reset() {
    let app = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = app.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut tcp in app.incoming().take(5).flatten() {
            // Reads the request, then closes without a word.
            use std::io::Read;
            let _ = tcp.read(&mut [0u8; 4096]);
        }
    });
    let f = Fixture::start(
        &format!("    proxy:\n      - path: /app\n        to: http://{addr}\n"),
        "admin: 127.0.0.1:0",
    );
    assert_eq!(f.get("/app/x", &[]).status, 502);
    let text = scrape(admin_addr(&f.server));
    let upstream = format!("site=\"test.example\",route=\"/app\",upstream=\"http://{addr}\"");
    let errors = |kind: &str| {
        sample(
            &text,
            &format!("candado_upstream_errors_total{{{upstream},kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(errors("reset"), 1.0, "{text}");
    assert_eq!(errors("connect"), 0.0, "{text}");
}

#[test]
fn metrics_pass_promtool_and_count_a_200_a_404_and_a_502() {
    let f = site_with_dead_app("admin: 127.0.0.1:0");
    let admin = admin_addr(&f.server);
    assert_eq!(f.get("/", &[]).status, 200);
    assert_eq!(f.get("/no/such/file", &[]).status, 404);
    assert_eq!(f.get("/app/x", &[]).status, 502);
    assert_eq!(f.get("/", &["--http1.1"]).status, 200);

    let text = scrape(admin);
    promtool_check(&text);
    let requests = |route: &str, status: &str| {
        sample(
            &text,
            &format!(
                "candado_http_requests_total{{site=\"test.example\",route=\"{route}\",method=\"read\",status=\"{status}\"}}"
            ),
        )
    };
    assert_eq!(requests("static", "2xx"), 2.0, "{text}");
    assert_eq!(requests("static", "4xx"), 1.0, "{text}");
    assert_eq!(requests("/app", "5xx"), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "candado_http_request_duration_seconds_count{site=\"test.example\"}"
        ),
        4.0
    );
    let upstream = format!(
        "site=\"test.example\",route=\"/app\",upstream=\"http://127.0.0.1:{}\"",
        text.split("upstream=\"http://127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
    );
    assert_eq!(
        sample(
            &text,
            &format!("candado_upstream_errors_total{{{upstream},kind=\"connect\"}}")
        ),
        1.0
    );
    assert_eq!(
        sample(&text, &format!("candado_upstream_up{{{upstream}}}")),
        0.0
    );
    // curl offers h2 by default; --http1.1 made one connection HTTP/1.1.
    assert_eq!(
        sample(
            &text,
            "candado_tls_handshakes_total{version=\"TLSv1.3\",alpn=\"h2\",session=\"full\"}"
        ),
        3.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "candado_tls_handshakes_total{version=\"TLSv1.3\",alpn=\"http/1.1\",session=\"full\"}"
        ),
        1.0
    );
    let https = f.server.https;
    assert_eq!(
        sample(
            &text,
            &format!("candado_connections_accepted_total{{listener=\"{https}\"}}")
        ),
        4.0
    );
    let expiry = sample(
        &text,
        "candado_certificate_expiry_seconds{site=\"test.example\",names=\"test.example,*.wild.example,127.0.0.1\",source=\"file\"}",
    );
    assert!(expiry > 80.0 * 86_400.0, "{text}");
    assert!(
        sample(&text, "process_resident_memory_bytes") > 1e6,
        "{text}"
    );
    assert!(sample(&text, "process_open_fds") > 3.0, "{text}");
    // Nothing a client controls becomes a label: not the path, not its address.
    assert!(
        !text.contains("no/such/file") && !text.contains("/app/x"),
        "{text}"
    );
}

#[test]
fn a_refused_client_certificate_and_reloads_are_counted() {
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &["test.example", "*.wild.example", "127.0.0.1"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "home\n").unwrap();
    let auth = format!(
        "    client_auth: {{mode: required, ca: {}}}\n",
        pki.ca_path.display()
    );
    let yaml = site_yaml(
        &leaf.cert,
        &leaf.key,
        root.path(),
        &auth,
        "admin: 127.0.0.1:0",
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let admin = admin_addr(&server);

    let other_ca = TestPki::named("another CA");
    let stranger = other_ca.client_leaf("mallory", "mallory", &[]);
    let alice = pki.client_leaf("alice", "alice", &[]);
    let url = format!("https://test.example:{}/", server.https.port());
    let resolve = format!("test.example:{}:127.0.0.1", server.https.port());
    let base = [
        "--resolve",
        &resolve,
        "--cacert",
        pki.ca_path.to_str().unwrap(),
    ];
    let with = |leaf: &crate::support::pki::Leaf| {
        let mut a = base.to_vec();
        a.extend(["--cert", leaf.cert.to_str().unwrap()]);
        a.extend(["--key", leaf.key.to_str().unwrap()]);
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(&a)
            .arg(&url)
            .output()
            .unwrap()
    };
    assert_eq!(String::from_utf8_lossy(&with(&alice).stdout), "200");
    assert_ne!(String::from_utf8_lossy(&with(&stranger).stdout), "200");

    // A good reload, then one that is refused (a key that does not exist).
    server.signal("HUP");
    assert!(server.wait_log("reloaded the configuration", Duration::from_secs(10)));
    let config = server.dir.path().join("candado.yaml");
    let broken = yaml.replace(leaf.key.to_str().unwrap(), "/nonexistent/key.pem");
    std::fs::write(&config, broken).unwrap();
    server.signal("HUP");
    assert!(server.wait_log("reload failed", Duration::from_secs(10)));

    // The handshake failure is counted as the server saw it end, a moment after curl.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(admin);
        let refused = "candado_tls_handshake_failures_total{reason=\"client_certificate_refused\"}";
        if sample(&text, refused) >= 1.0 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool_check(&text);
    assert_eq!(
        sample(
            &text,
            "candado_tls_handshake_failures_total{reason=\"client_certificate_refused\"}"
        ),
        1.0,
        "{text}\n{}",
        server.log()
    );
    assert_eq!(
        sample(&text, "candado_reloads_total{result=\"taken\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "candado_reloads_total{result=\"refused\"}"),
        1.0
    );
    assert!(sample(&text, "candado_last_reload_timestamp_seconds") > 1.7e9);

    // Both are on the status page's list of recent errors.
    let status: serde_json::Value =
        serde_json::from_slice(&get(&format!("http://{admin}/status.json"), &[]).body).unwrap();
    let kinds: Vec<&str> = status["recent_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"tls") && kinds.contains(&"reload"),
        "{status}"
    );
}

/// A Prometheus server child, killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(dir: &Path, target: SocketAddr) -> (Prometheus, u16) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: candado\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed by scripts/test (Debian package prometheus)");
    (Prometheus(child), port)
}

/// The first value of a PromQL instant query, if the answer has one.
fn promql(port: u16, query: &str) -> Option<f64> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--get", "--data-urlencode"])
        .arg(format!("query={query}"))
        .arg(format!("http://127.0.0.1:{port}/api/v1/query"))
        .output()
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_prometheus_server_scrapes_the_request_rate_and_the_expiry_gauge() {
    let f = Fixture::start("", "admin: 127.0.0.1:0");
    let admin = admin_addr(&f.server);
    let dir = tempfile::tempdir().unwrap();
    let (_prometheus, port) = start_prometheus(dir.path(), admin);
    let rate = "sum(rate(candado_http_requests_total{site=\"test.example\"}[5s]))";
    let expiry = "min(candado_certificate_expiry_seconds{site=\"test.example\"})";
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut seen_rate, mut seen_expiry) = (None, None);
    while Instant::now() < deadline && (seen_rate.is_none() || seen_expiry.is_none()) {
        assert_eq!(f.get("/", &[]).status, 200);
        seen_rate = seen_rate.or(promql(port, rate).filter(|&r| r > 0.0));
        seen_expiry = seen_expiry.or(promql(port, expiry));
        std::thread::sleep(Duration::from_millis(300));
    }
    let rate = seen_rate.expect("Prometheus never saw a request rate within 60 s");
    assert!(rate > 0.1 && rate < 100.0, "{rate} requests/s");
    let expiry = seen_expiry.expect("Prometheus never saw the expiry gauge within 60 s");
    assert!(expiry > 80.0 * 86_400.0, "{expiry} s");
}

#[test]
fn chromium_renders_the_status_page_with_one_bar_per_certificate() {
    let pki = TestPki::new();
    let soon = pki.leaf_with(
        "soon",
        &["soon.test"],
        rcgen::KeyPair::generate().unwrap(),
        |p| {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(80);
            p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
        },
    );
    let shop = pki.leaf("shop", &["shop.test", "www.shop.test"]);
    let root = tempfile::tempdir().unwrap();
    let dead = free_port();
    let yaml = format!(
        "admin: 127.0.0.1:0\nsites:\n  - names: [app.test]\n    listen: 127.0.0.1:0\n    certificate: local\n    proxy:\n      - path: /api\n        to: http://127.0.0.1:{dead}\n  - names: [shop.test, www.shop.test]\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n  - names: [soon.test]\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n",
        shop.cert.display(),
        shop.key.display(),
        root.path().display(),
        soon.cert.display(),
        soon.key.display(),
        root.path().display(),
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let admin = admin_addr(&server);
    // A request to the dead app puts its upstream out of rotation, in red on the page.
    let ca = server.data_dir().join("ca/ca.crt");
    let resolve = format!("app.test:{}:127.0.0.1", server.https.port());
    let res = curl_raw(
        &format!("https://app.test:{}/api/", server.https.port()),
        &["--resolve", &resolve, "--cacert", ca.to_str().unwrap()],
    );
    assert_eq!(res.status, 502);

    let url = format!("http://{admin}/status");
    let home = tempfile::tempdir().unwrap();
    let (dom, _) = chromium(home.path(), &["--dump-dom"], &url);
    assert_eq!(dom.matches("class=\"bar ").count(), 3, "{dom}");
    assert_eq!(dom.matches("class=\"bar ok\"").count(), 2, "{dom}");
    assert_eq!(dom.matches("class=\"bar renew_soon\"").count(), 1, "{dom}");
    assert!(dom.contains("class=\"today\""), "{dom}");
    assert!(
        dom.contains("class=\"down\""),
        "the dead app is shown as down: {dom}"
    );

    let file = screenshot_dir().join("status.png");
    let _ = std::fs::remove_file(&file);
    let shot = format!("--screenshot={}", file.display());
    let (_, log) = chromium(
        home.path(),
        &[&shot, "--window-size=1100,1000", "--hide-scrollbars"],
        &url,
    );
    assert!(!log.contains("Page load failed"), "{log}");
    assert!(
        png_has_content(&file),
        "no screenshot in {}",
        file.display()
    );
}

fn status_command(args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("30")
        .arg(BIN)
        .arg("status")
        .args(args)
        .env_remove("CANDADO_ADMIN_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn candado_status_exits_non_zero_when_an_upstream_is_down_or_a_certificate_expires_soon() {
    let f = site_with_dead_app("admin: 127.0.0.1:0");
    let admin = admin_addr(&f.server).to_string();
    let out = status_command(&["--admin", &admin]);
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("test.example") && text.contains("all healthy"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "colours only on a terminal: {text:?}"
    );

    assert_eq!(f.get("/app/", &[]).status, 502);
    let out = status_command(&["--admin", &admin]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("is down"),
        "{}",
        output_text(&out)
    );

    // A certificate with 3 days left.
    let pki = TestPki::new();
    let leaf = pki.leaf_with(
        "short",
        &["test.example", "*.wild.example", "127.0.0.1"],
        rcgen::KeyPair::generate().unwrap(),
        |p| p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3),
    );
    let root = tempfile::tempdir().unwrap();
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), "", "admin: 127.0.0.1:0");
    let server = Candado::from_yaml(&yaml, &[]);
    let admin = admin_addr(&server).to_string();
    let out = status_command(&["--admin", &admin, "--json"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let days = json["certificates"][0]["days_left"].as_i64().unwrap();
    assert!((2..=3).contains(&days), "{json}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expires in"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn the_admin_listener_stays_on_loopback_and_asks_for_its_token() {
    // A public address without allow_remote, and allow_remote without a token: refused.
    let dir = tempfile::tempdir().unwrap();
    for (admin, expected) in [
        ("admin: 0.0.0.0:2019", "not a loopback address"),
        (
            "admin: {listen: 0.0.0.0:2019, allow_remote: true}",
            "needs a token",
        ),
    ] {
        let file = dir.path().join("c.yaml");
        std::fs::write(
            &file,
            format!("{admin}\nsites:\n  - names: [a.test]\n    certificate: local\n"),
        )
        .unwrap();
        let out = Command::new(BIN)
            .args(["config", "check", file.to_str().unwrap()])
            .env("CANDADO_DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{admin}: {}", output_text(&out));
        assert!(
            output_text(&out).contains(expected),
            "{}",
            output_text(&out)
        );
    }
    let out = Command::new("timeout")
        .args(["20", BIN, "serve", "--admin", "0.0.0.0:0"])
        .env("CANDADO_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("stays on loopback"),
        "{}",
        output_text(&out)
    );

    // With a token, every request needs it.
    let f = Fixture::start(
        "",
        &format!("admin: {{listen: 127.0.0.1:0, allow_remote: true, token: {TOKEN}}}"),
    );
    let admin = admin_addr(&f.server);
    let url = format!("http://{admin}/metrics");
    assert_eq!(get(&url, &[]).status, 401);
    assert_eq!(get(&url, &["-H", "Authorization: Bearer nope"]).status, 401);
    let good = format!("Authorization: Bearer {TOKEN}");
    assert_eq!(get(&url, &["-H", &good]).status, 200);
    assert_eq!(
        get(
            &format!("http://{admin}/status"),
            &["-X", "POST", "-H", &good]
        )
        .status,
        405
    );
    let out = status_command(&["--admin", &admin.to_string()]);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("asks for a token"),
        "{}",
        output_text(&out)
    );
    let out = status_command(&["--admin", &admin.to_string(), "--token", TOKEN]);
    assert!(out.status.success(), "{}", output_text(&out));
    // No secret on any page: not the token, not a key.
    let status = get(&format!("http://{admin}/status.json"), &["-H", &good]).text();
    assert!(
        !status.contains(TOKEN) && !status.contains("PRIVATE KEY"),
        "{status}"
    );
}

#[test]
fn with_client_auth_the_admin_listener_speaks_https_and_wants_a_client_certificate() {
    let pki = TestPki::new();
    let admin_leaf = pki.leaf("admin", &["127.0.0.1"]);
    let alice = pki.client_leaf("alice", "alice", &[]);
    let top = format!(
        "admin:\n  listen: 127.0.0.1:0\n  allow_remote: true\n  client_auth: {{ca: {}}}\n  certificate: {{cert: {}, key: {}}}",
        pki.ca_path.display(),
        admin_leaf.cert.display(),
        admin_leaf.key.display()
    );
    let f = Fixture::start("", &top);
    let admin = admin_addr(&f.server);
    let url = format!("https://{admin}/status.json");
    let ca = pki.ca_path.to_str().unwrap();
    let refused = crate::support::client::curl_fails(&url, &["--cacert", ca]);
    assert!(!refused.is_empty());
    let res = get(
        &url,
        &[
            "--cacert",
            ca,
            "--cert",
            alice.cert.to_str().unwrap(),
            "--key",
            alice.key.to_str().unwrap(),
        ],
    );
    assert_eq!(res.status, 200, "{}", res.text());
    let status: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(status["sites"][0]["names"][0], "test.example");
    // Plain HTTP gets nothing either.
    assert!(
        !crate::support::client::curl_fails(&format!("http://{admin}/metrics"), &[]).is_empty()
    );
}

#[test]
fn an_acme_certificate_shows_its_order_its_next_renewal_and_its_expiry() {
    use crate::support::pebble::{Options, Pebble};
    let (https, http) = (free_port(), free_port());
    let pebble = Pebble::start(Options::ports(http, https));
    let storage = tempfile::tempdir().unwrap();
    let www = storage.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let yaml = format!(
        "admin: 127.0.0.1:0\nacme:\n  directory: {}\n  ca: {}\n  storage: {}\nsites:\n  - names: [site.test]\n    listen: 127.0.0.1:{https}\n    http_redirect: 127.0.0.1:{http}\n    certificate: acme\n    root: {}\n",
        pebble.directory,
        pebble.api_ca().display(),
        storage.path().join("acme").display(),
        www.display()
    );
    let server = Candado::from_yaml(&yaml, &[]);
    let admin = admin_addr(&server);
    assert!(
        server.wait_log(
            "ACME certificate obtained and now served",
            Duration::from_secs(60)
        ),
        "{}",
        server.log()
    );
    // The renewal loop sets its next check right after publishing the certificate.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(admin);
        let next = "candado_acme_next_renewal_timestamp_seconds{names=\"site.test\"}";
        if sample(&text, next) > 0.0 || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    promtool_check(&text);
    let names = "names=\"site.test\"";
    assert_eq!(
        sample(
            &text,
            &format!("candado_acme_renewal_attempts_total{{{names}}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("candado_acme_renewal_failures_total{{{names}}}")
        ),
        0.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let next = sample(
        &text,
        &format!("candado_acme_next_renewal_timestamp_seconds{{{names}}}"),
    );
    assert!(next > now + 86_400.0, "next renewal at {next}, now {now}");
    let expiry = sample(
        &text,
        "candado_certificate_expiry_seconds{site=\"site.test\",names=\"site.test\",source=\"acme\"}",
    );
    assert!(expiry > 30.0 * 86_400.0, "{text}");
}

#[test]
fn handshakes_for_unknown_names_and_old_versions_are_counted_by_reason() {
    let f = Fixture::start(
        "",
        "tls:\n  unknown_sni: reject\n  policy: modern\nadmin: 127.0.0.1:0",
    );
    let admin = admin_addr(&f.server);
    let ca = &f.pki.ca_path;
    let (ok, out) = client::s_client_for(f.server.https, "elsewhere.test", ca, &[]);
    assert!(!ok || out.contains("alert"), "{out}");
    let (ok, out) = client::s_client(f.server.https, ca, &["-tls1_2"]);
    assert!(!ok, "{out}");
    let (ok, out) = client::s_client(f.server.https, ca, &["-tls1_3"]);
    assert!(ok, "{out}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let failures = |text: &str, reason: &str| {
        sample(
            text,
            &format!("candado_tls_handshake_failures_total{{reason=\"{reason}\"}}"),
        )
    };
    let text = loop {
        let text = scrape(admin);
        let both =
            failures(&text, "unknown_sni") >= 1.0 && failures(&text, "protocol_version") >= 1.0;
        if both || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(failures(&text, "unknown_sni"), 1.0, "{text}");
    assert_eq!(failures(&text, "protocol_version"), 1.0, "{text}");
    assert_eq!(failures(&text, "other"), 0.0, "{text}");
}

#[test]
fn a_compressed_response_counts_the_bytes_sent_not_zero() {
    let body = "candado compresses text as it streams it out\n".repeat(2000);
    let f = Fixture::start_with_files("", "admin: 127.0.0.1:0", |root| {
        std::fs::write(root.join("big.txt"), &body).unwrap();
    });
    let admin = admin_addr(&f.server);
    let port = f.server.https.port();
    // Without --compressed, curl counts the bytes as they came: gzip, streamed.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .args(["-H", "Accept-Encoding: gzip", "--cacert"])
        .arg(&f.pki.ca_path)
        .args(["--resolve", &format!("test.example:{port}:127.0.0.1")])
        .arg(format!("https://test.example:{port}/big.txt"))
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, size) = got.split_once(' ').unwrap();
    assert_eq!(status, "200", "{got}");
    let size: f64 = size.parse().unwrap();
    assert!(size > 0.0 && size < body.len() as f64 / 4.0, "{got}");
    let text = scrape(admin);
    assert_eq!(
        sample(
            &text,
            "candado_http_response_body_bytes_total{site=\"test.example\"}"
        ),
        size,
        "{text}"
    );
}
