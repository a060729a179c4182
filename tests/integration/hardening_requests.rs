//! Issue 12 (hardening), request headers and request targets: header names with underscores,
//! doubled chunked coding, over-long targets, non-canonical Content-Length, absolute-form
//! targets, and redirects from apps mounted under a stripped prefix. Real apps judge: a
//! wsgiref app (which folds `_` into `-` as CGI and WSGI do) and Flask with and without
//! Werkzeug's ProxyFix(x_prefix=1).

use crate::python_apps::{App, spawn};
use crate::support::client::{HOST, raw_tls, status_of};
use crate::support::{Fixture, free_port, upstream};

/// `KEY=value` lines as the wsgiref app prints its environ.
fn environ(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn wsgiref_app() -> App {
    let port = free_port();
    spawn(&["wsgi_environ.py", &port.to_string()], port)
}

fn proxy_to(port: u16, extra: &str) -> String {
    format!("    proxy:\n      - path: /\n        to: http://127.0.0.1:{port}\n{extra}")
}

const SPOOFS: [&str; 5] = [
    "X_Real_IP: 6.6.6.6",
    "X_Forwarded_For: 6.6.6.6",
    "X-Forwarded_Host: evil.example",
    "X_Client_Cert_Subject: CN=admin",
    "Transfer_Encoding: chunked",
];

fn curl_with_headers(f: &Fixture, headers: &[&str]) -> crate::support::client::Response {
    let mut args = vec!["--http1.1"];
    for h in headers {
        args.extend(["-H", h]);
    }
    f.get("/", &args)
}

#[test]
fn header_names_with_underscores_never_reach_a_wsgi_app() {
    let app = wsgiref_app();
    let f = Fixture::start(&proxy_to(app.1, ""), "");
    let mut headers = SPOOFS.to_vec();
    headers.push("X_Custom_Thing: 1");
    let res = curl_with_headers(&f, &headers);
    assert_eq!(res.status, 200, "{}", res.text());
    let env = environ(&res.text());
    assert_eq!(env["HTTP_X_REAL_IP"], "127.0.0.1", "{env:?}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env:?}");
    assert_eq!(
        env["HTTP_X_FORWARDED_HOST"],
        format!("{HOST}:{}", f.server.https.port())
    );
    for gone in [
        "HTTP_X_CLIENT_CERT_SUBJECT",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_X_CUSTOM_THING",
    ] {
        assert!(!env.contains_key(gone), "{gone} reached the app: {env:?}");
    }
}

#[test]
fn a_dropped_header_is_named_in_the_debug_log() {
    let app = wsgiref_app();
    let pki = crate::support::pki::TestPki::new();
    let leaf = pki.leaf("site", &[HOST]);
    let root = tempfile::tempdir().unwrap();
    let yaml = crate::support::server::site_yaml(
        &leaf.cert,
        &leaf.key,
        root.path(),
        &proxy_to(app.1, ""),
        "",
    );
    let server = crate::support::server::Candado::from_yaml(&yaml, &["-d"]);
    let res = crate::support::client::curl(
        server.https,
        &pki.ca_path,
        "/",
        &["-H", "X_Real_IP: 6.6.6.6"],
    );
    assert_eq!(res.status, 200);
    assert!(
        server.wait_log_line(
            &["dropped a request header", "x_real_ip"],
            std::time::Duration::from_secs(3)
        ),
        "{}",
        server.log()
    );
}

#[test]
fn a_site_may_allow_underscores_but_candados_own_headers_are_never_shadowed() {
    let app = wsgiref_app();
    let f = Fixture::start(&proxy_to(app.1, "    allow_underscore_headers: true\n"), "");
    let mut headers = SPOOFS.to_vec();
    headers.push("X_Custom_Thing: 1");
    let res = curl_with_headers(&f, &headers);
    assert_eq!(res.status, 200, "{}", res.text());
    let env = environ(&res.text());
    assert_eq!(env["HTTP_X_CUSTOM_THING"], "1", "the opt-in works: {env:?}");
    assert_eq!(env["HTTP_X_REAL_IP"], "127.0.0.1", "{env:?}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env:?}");
    assert_eq!(
        env["HTTP_X_FORWARDED_HOST"],
        format!("{HOST}:{}", f.server.https.port())
    );
    assert!(!env.contains_key("HTTP_X_CLIENT_CERT_SUBJECT"), "{env:?}");
    assert!(!env.contains_key("HTTP_TRANSFER_ENCODING"), "{env:?}");
}

/// Every status line in a raw HTTP/1.1 answer, in order.
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .map(|(i, _)| status_of(&raw[i..]))
        .collect()
}

#[test]
fn chunked_twice_gets_400_and_never_reaches_the_app() {
    let up = upstream::start();
    let f = Fixture::start(
        &format!(
            "    proxy:\n      - path: /api\n        to: {}\n",
            up.origin()
        ),
        "",
    );
    for te in [
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked, chunked",
    ] {
        for path in ["/api/echo", "/index.html"] {
            let req = format!(
                "GET /api/first HTTP/1.1\r\nHost: {HOST}\r\n\r\nPOST {path} HTTP/1.1\r\nHost: {HOST}\r\n{te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            );
            let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
            assert_eq!(statuses(&raw), [200, 400], "{te} {path}: {raw}");
            assert!(!raw.contains("hello"), "{te} {path} reached the app: {raw}");
        }
    }
    // One chunked coding is fine.
    let req = format!(
        "POST /api/echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    );
    let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert!(raw.contains("hello"), "{raw}");
}

#[test]
fn request_targets_over_the_limit_get_414_over_http1_and_http2() {
    let f = Fixture::start("", "");
    let target = |len: usize| format!("/?q={}", "a".repeat(len - 4));
    for version in ["--http1.1", "--http2"] {
        let res = f.get(&target(8192), &[version]);
        assert_eq!(res.status, 200, "{version}: 8 KiB is within the limit");
        let res = f.get(&target(8193), &[version]);
        assert_eq!(res.status, 414, "{version}: {}", res.text());
    }
    // A target longer than the whole head limit is still a target too long.
    let raw = raw_tls(
        f.server.https,
        &f.pki.ca_pem,
        format!(
            "GET {} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n",
            target(20_000)
        )
        .as_bytes(),
    );
    assert_eq!(status_of(&raw), 414, "{raw}");
    assert_eq!(f.get(&target(20_000), &["--http2"]).status, 414);
    // Header fields keep their own budget: 431, whatever the target.
    let big = format!("X-Big: {}", "b".repeat(17_000));
    for version in ["--http1.1", "--http2"] {
        assert_eq!(f.get("/", &[version, "-H", &big]).status, 431, "{version}");
    }
    let f = Fixture::start("", "limits: {max_uri_bytes: 1024}");
    assert_eq!(f.get(&target(1024), &[]).status, 200);
    assert_eq!(f.get(&target(1025), &["--http2"]).status, 414);
}

#[test]
fn content_length_reaches_the_app_in_canonical_form() {
    let up = upstream::start();
    let f = Fixture::start(&proxy_to(up.addr.port(), ""), "");
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 005\r\nConnection: close\r\n\r\nhello"
    );
    let raw = raw_tls(f.server.https, &f.pki.ca_pem, req.as_bytes());
    assert_eq!(status_of(&raw), 200, "{raw}");
    assert!(raw.contains("\ncontent-length: 5\n"), "{raw}");
    assert!(raw.contains("\nhello"), "{raw}");
}

#[test]
fn an_absolute_form_target_names_the_host_and_the_host_header_is_ignored() {
    let up = upstream::start();
    let f = Fixture::start(
        &format!(
            "    proxy:\n      - path: /api\n        to: {}\n",
            up.origin()
        ),
        "",
    );
    let ask = |target: &str, host: &str| {
        raw_tls(
            f.server.https,
            &f.pki.ca_pem,
            format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    // RFC 9112 §3.2.2: the target's authority wins.
    let raw = ask("https://test.example/index.html", "other.example");
    assert_eq!(status_of(&raw), 200, "{raw}");
    assert!(raw.contains("<h1>home</h1>"), "{raw}");
    let raw = ask("https://test.example/api/echo", "other.example");
    assert_eq!(status_of(&raw), 200, "{raw}");
    assert!(raw.contains("\nhost: test.example\n"), "{raw}");
    assert!(raw.contains("\nx-forwarded-host: test.example\n"), "{raw}");
    // The usual site checks apply to the authority: a name no site serves gets 421.
    let raw = ask("https://other.example/index.html", HOST);
    assert_eq!(status_of(&raw), 421, "{raw}");
    // The Host header must still be one valid value.
    let raw = ask("https://test.example/index.html", "a b");
    assert_eq!(status_of(&raw), 400, "{raw}");
}

/// Two copies of the prefix app under stripped prefixes: /plain believes it lives at /,
/// /aware reads X-Forwarded-Prefix through ProxyFix.
struct PrefixApps {
    _plain: App,
    _aware: App,
    f: Fixture,
}

fn prefix_apps() -> PrefixApps {
    let (p, a) = (free_port(), free_port());
    let plain = spawn(&["prefix_app.py", &p.to_string()], p);
    let aware = spawn(&["prefix_app.py", &a.to_string(), "--proxyfix"], a);
    let f = Fixture::start(
        &format!(
            "    proxy:\n      - path: /plain\n        to: http://127.0.0.1:{p}\n        strip_prefix: true\n      - path: /aware\n        to: http://127.0.0.1:{a}\n        strip_prefix: true\n"
        ),
        "",
    );
    PrefixApps {
        _plain: plain,
        _aware: aware,
        f,
    }
}

#[test]
fn redirects_from_an_app_under_a_stripped_prefix_keep_the_prefix() {
    let apps = prefix_apps();
    let f = &apps.f;
    let public = format!("https://{HOST}:{}", f.server.https.port());
    for (path, location) in [
        ("/plain/absolute", format!("{public}/plain/target")),
        ("/plain/root-relative", "/plain/target".to_owned()),
        ("/plain/url-for", "/plain/target".to_owned()),
    ] {
        let res = f.get(path, &[]);
        assert_eq!(res.status, 302, "{path}: {}", res.head);
        assert_eq!(res.header("location"), Some(location), "{path}");
        let res = f.get(path, &["-L"]);
        assert_eq!(res.status, 200, "{path} followed: {}", res.head);
        assert_eq!(res.text(), "target script_name=", "{path} followed");
    }
    let res = f.get("/plain/refresh", &[]);
    assert_eq!(
        res.header("refresh").as_deref(),
        Some("0; url=/plain/target")
    );
    let res = f.get("/plain/content-location", &[]);
    assert_eq!(
        res.header("content-location"),
        Some(format!("{public}/plain/target?v=1"))
    );
}

#[test]
fn a_prefix_aware_app_is_never_double_prefixed() {
    let apps = prefix_apps();
    let f = &apps.f;
    let public = format!("https://{HOST}:{}", f.server.https.port());
    for (path, location) in [
        ("/aware/url-for", "/aware/target".to_owned()),
        ("/aware/url-for-external", format!("{public}/aware/target")),
        ("/aware/absolute", format!("{public}/aware/target")),
        ("/aware/root-relative", "/aware/target".to_owned()),
    ] {
        let res = f.get(path, &[]);
        assert_eq!(res.status, 302, "{path}: {}", res.head);
        assert_eq!(res.header("location"), Some(location), "{path}");
        let res = f.get(path, &["-L"]);
        assert_eq!(res.status, 200, "{path} followed: {}", res.head);
        assert_eq!(res.text(), "target script_name=/aware", "{path} followed");
    }
}
