//! HTTP/3 judged by an independent client: aioquic's QUIC and HTTP/3 stack
//! (tests/apps/h3_client.py), against the real binary on the UDP port of the HTTPS listener.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::python_apps::python;
use crate::support::client::HOST;
use crate::support::{Fixture, output_text};

const CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/h3_client.py");

/// What the aioquic client saw: one JSON object per request, or the connection's error.
pub(crate) fn h3(port: u16, ca: &Path, args: &[&str]) -> Result<Vec<Value>, String> {
    let out = Command::new(python())
        .args([CLIENT, "--port", &port.to_string(), "--name", HOST])
        .args(["--ca", ca.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = output_text(&out);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    match lines.first().and_then(|v| v.get("error")) {
        Some(e) => Err(e.as_str().unwrap_or_default().to_owned()),
        None if out.status.success() => Ok(lines),
        None => Err(text),
    }
}

fn header<'a>(res: &'a Value, name: &str) -> Option<&'a str> {
    res["headers"][name].as_str()
}

#[test]
fn a_static_file_is_served_over_http3_and_tcp_responses_advertise_it() {
    let f = Fixture::start("", "");
    let port = f.server.https.port();
    let tcp = f.get("/", &[]);
    assert_eq!(tcp.status, 200);
    assert_eq!(
        tcp.header("alt-svc").as_deref(),
        Some(format!("h3=\":{port}\"; ma=86400").as_str()),
        "{}",
        tcp.head
    );
    let res = h3(
        port,
        &f.pki.ca_path,
        &["--path", "/", "--path", "/index.html"],
    )
    .unwrap();
    assert_eq!(res.len(), 2, "two requests on one connection");
    for r in &res {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["body"], "<h1>home</h1>\n");
        assert_eq!(header(r, "content-type"), Some("text/html; charset=utf-8"));
        assert!(header(r, "strict-transport-security").is_some(), "{r}");
        assert_eq!(header(r, "x-content-type-options"), Some("nosniff"));
        // Alt-Svc is for clients that are not on HTTP/3 yet.
        assert_eq!(header(r, "alt-svc"), None, "{r}");
    }
    assert!(f.server.log().contains("kind=http3"), "{}", f.server.log());
}
