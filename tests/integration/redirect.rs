//! The HTTP→HTTPS redirect listener: byte-exact targets, no open redirect, no HSTS on HTTP.

use crate::support::Fixture;
use crate::support::client::{raw_tcp, status_of};

fn redirecting() -> Fixture {
    Fixture::start("    http_redirect: 127.0.0.1:0", "")
}

fn ask(f: &Fixture, request: &str) -> String {
    raw_tcp(f.server.http.unwrap(), request.as_bytes())
}

#[test]
fn path_and_query_are_kept_byte_for_byte() {
    let f = redirecting();
    let port = f.server.https.port();
    let target = "/a%2Fb/c%20d;p=1?q=%2e%2E&x=a+b&&y=%F0%9F%94%92#";
    let target = target.trim_end_matches('#');
    let raw = ask(
        &f,
        &format!("GET {target} HTTP/1.1\r\nHost: test.example\r\n\r\n"),
    );
    assert_eq!(status_of(&raw), 301, "{raw}");
    assert!(
        raw.contains(&format!(
            "\r\nlocation: https://test.example:{port}{target}\r\n"
        )),
        "{raw}"
    );
}

#[test]
fn post_is_redirected_with_308_so_it_stays_a_post() {
    let f = redirecting();
    let raw = ask(
        &f,
        "POST /form HTTP/1.1\r\nHost: test.example\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status_of(&raw), 308, "{raw}");
}

#[test]
fn a_foreign_host_gets_400_not_a_redirect() {
    let f = redirecting();
    for host in [
        "evil.example",
        "test.example@evil.example",
        "evil.example/test.example",
        "test.example.evil.example",
    ] {
        let raw = ask(&f, &format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(status_of(&raw), 400, "{host}: {raw}");
        assert!(
            !raw.to_ascii_lowercase().contains("location:"),
            "{host}: {raw}"
        );
    }
    let raw = ask(
        &f,
        "GET http://evil.example/ HTTP/1.1\r\nHost: test.example\r\n\r\n",
    );
    assert_eq!(
        status_of(&raw),
        400,
        "absolute-form with another host: {raw}"
    );
    let raw = ask(&f, "GET / HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&raw), 400, "no Host: {raw}");
}

#[test]
fn wildcard_names_redirect_to_the_name_asked_for() {
    let f = redirecting();
    let port = f.server.https.port();
    let raw = ask(&f, "GET / HTTP/1.1\r\nHost: shop.wild.example\r\n\r\n");
    assert!(
        raw.contains(&format!("location: https://shop.wild.example:{port}/\r\n")),
        "{raw}"
    );
}

#[test]
fn hsts_is_sent_over_https_only() {
    let f = redirecting();
    let raw = ask(&f, "GET / HTTP/1.1\r\nHost: test.example\r\n\r\n");
    assert!(
        !raw.to_ascii_lowercase()
            .contains("strict-transport-security"),
        "{raw}"
    );
    let res = f.get("/", &[]);
    assert_eq!(
        res.header("strict-transport-security").as_deref(),
        Some("max-age=31536000")
    );
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        res.header("referrer-policy").as_deref(),
        Some("strict-origin-when-cross-origin")
    );
    for missing in ["/nope", "/.env"] {
        let res = f.get(missing, &[]);
        assert!(
            res.header("strict-transport-security").is_some(),
            "{missing}: errors carry HSTS too"
        );
    }
}

#[test]
fn hsts_policy_and_extra_headers_are_configurable() {
    let f = Fixture::start(
        "    hsts: {max_age: 2y, include_subdomains: true, preload: true}\n    headers: {X-Frame-Options: DENY}",
        "",
    );
    let res = f.get("/", &[]);
    assert_eq!(
        res.header("strict-transport-security").as_deref(),
        Some("max-age=63115200; includeSubDomains; preload")
    );
    assert_eq!(res.header("x-frame-options").as_deref(), Some("DENY"));
    let f = Fixture::start("    hsts: {enabled: false}", "");
    assert!(
        f.get("/", &[])
            .header("strict-transport-security")
            .is_none()
    );
}
