//! Issue 16: HTTP/2 is served by candado's own server (src/http2). Beyond h2spec
//! (tests/integration/h2spec.rs), it must bound what a client can make it hold or do, and
//! talk to an independent HTTP/2 client (Python's h2, through httpx).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::python_apps::python;
use crate::support::{Fixture, upstream};

const FLOODS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps/h2_floods.py");
const RAPID_RESET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/tools/h2_rapid_reset.py"
);

fn proxied(up: &upstream::Upstream) -> Fixture {
    let site = format!(
        "    proxy:\n      - path: /api\n        to: {}\n",
        up.origin()
    );
    Fixture::start(&site, "")
}

fn still_serves(f: &Fixture) {
    let res = f.get("/", &["--http2"]);
    assert_eq!(res.status, 200, "{}", res.head);
}

/// What a tool printed on its one line of standard output; it must have run to its end.
fn summary(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "{line}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    line
}

/// `key=value` from the flood tools' summary line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn rapid_reset_of_requests_still_being_answered_ends_with_enhance_your_calm() {
    let up = upstream::start();
    let f = proxied(&up);
    let line = summary(
        Command::new(python())
            .arg(RAPID_RESET)
            .args(["127.0.0.1", &f.server.https.port().to_string()])
            .args([
                "--streams",
                "5000",
                "--seconds",
                "10",
                "--path",
                "/api/slow",
            ])
            .args([
                "--cafile",
                f.pki.ca_path.to_str().unwrap(),
                "--sni",
                "test.example",
            ]),
    );
    // The 101st reset of a request candado was still answering (its upstream takes 3 s) ends
    // the connection: the GOAWAY names stream 201 as the last one taken. The tool sends in
    // batches of 100 and looks for the GOAWAY between them.
    assert!(line.contains("goaway=('ENHANCE_YOUR_CALM', 201)"), "{line}");
    let sent: usize = field(&line, "streams_sent").parse().unwrap();
    assert!(sent < 5000, "{line}");
    still_serves(&f);
}

#[test]
fn a_continuation_flood_ends_the_connection_long_before_it_is_large() {
    let f = Fixture::start("", "");
    let line = summary(Command::new(python()).args([
        FLOODS,
        "continuation",
        &f.server.https.port().to_string(),
    ]));
    // A header block is bounded at twice the header limit and a frame (48 KiB here); the
    // rest of what was sent went into the kernel's socket buffers before the client saw the
    // connection end, well short of the tool's 8 MiB.
    assert_eq!(field(&line, "goaway"), "ENHANCE_YOUR_CALM", "{line}");
    let sent: usize = field(&line, "sent").parse().unwrap();
    assert!(sent < 8 << 20, "{line}");
    still_serves(&f);
}

#[test]
fn a_ping_flood_from_a_client_that_reads_nothing_is_not_buffered() {
    let f = Fixture::start("", "");
    let before = f.server.status_kb("VmRSS");
    let mut flood = Command::new(python())
        .args([FLOODS, "ping", &f.server.https.port().to_string(), "10"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(flood.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // Every PING asks for an answer; unread answers stop candado from reading more, so the
    // client's writes block once the kernel's buffers are full (some MB on loopback), long
    // before its 2,000,000th.
    let sent: usize = field(&line, "sent").parse().unwrap();
    let during = f.server.status_kb("VmRSS");
    let _ = flood.kill();
    let _ = flood.wait();
    assert!(sent < 2_000_000, "{line}");
    assert!(
        during < before + 8 * 1024,
        "RSS {before} -> {during} KiB while {sent} PINGs waited for their answers"
    );
    still_serves(&f);
}

#[test]
fn an_independent_http2_client_gets_files_and_round_trips_a_body_through_the_proxy() {
    let up = upstream::start();
    let f = proxied(&up);
    let script = r#"
import sys, httpx
base, ca = sys.argv[1], sys.argv[2]
with httpx.Client(http2=True, verify=ca) as c:
    home = c.get(base + "/")
    body = bytes(range(256)) * 4000
    up = c.post(base + "/api/upload", content=body)
    print(home.http_version, home.status_code, home.text.strip(), up.status_code, up.text)
"#;
    let base = format!("https://127.0.0.1:{}", f.server.https.port());
    let started = Instant::now();
    let text = summary(Command::new(python()).args([
        "-c",
        script,
        &base,
        f.pki.ca_path.to_str().unwrap(),
    ]));
    assert!(started.elapsed() < Duration::from_secs(30));
    let body: Vec<u8> = (0..=255u8).cycle().take(256 * 4000).collect();
    let expected = format!(
        "HTTP/2 200 <h1>home</h1> 200 {} {}",
        body.len(),
        upstream::checksum(&body)
    );
    assert_eq!(text, expected);
}
