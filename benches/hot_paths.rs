//! Micro-benchmarks of what every request goes through (issue 16): routing by host, the
//! proxy's header rules, the HTTP/1.1 framing check, a clock read, an HTTP/2 turn of ten
//! requests, a static-file lookup, the cost of compressing a JS bundle in each coding and level,
//! and what a TLS 1.3 handshake costs the server with each key exchange. Run with
//! `cargo bench --bench hot_paths`; compare before and after a change on the same machine.

use std::net::{IpAddr, Ipv4Addr};

use candado::hot_paths::{
    Framing, H2Turn, Names, Offer, StaticSite, TlsHandshakes, clock_read, compressed_size,
    peer_value, proxy_request_headers, secure_cookies,
};
use divan::Bencher;
use http::{HeaderMap, HeaderValue, header};

fn main() {
    divan::main();
}

#[divan::bench(args = ["app.example", "x.wild.example", "nowhere.example"])]
fn route_by_host(bencher: Bencher, host: &str) {
    let names = Names::new(&[
        &["example.com", "www.example.com"],
        &["app.example"],
        &["*.wild.example"],
        &["api.example", "api2.example"],
    ]);
    bencher.bench_local(|| names.site(divan::black_box(host)));
}

fn browser_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "app.example"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-US,en;q=0.9"),
        ("cookie", "session=abc123; theme=dark"),
        ("connection", "keep-alive"),
    ] {
        h.insert(
            header::HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

#[divan::bench]
fn proxy_request_header_rules(bencher: Bencher) {
    let peer = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let (peer_value, host) = (peer_value(peer), HeaderValue::from_static("app.example"));
    bencher
        .with_inputs(browser_headers)
        .bench_local_refs(|h| proxy_request_headers(h, (peer, &peer_value), &host, false));
}

#[divan::bench]
fn secure_cookie_rule(bencher: Bencher) {
    bencher
        .with_inputs(|| {
            let mut h = HeaderMap::new();
            h.append(
                header::SET_COOKIE,
                HeaderValue::from_static("session=x; Path=/; HttpOnly"),
            );
            h
        })
        .bench_local_refs(secure_cookies);
}

/// A plain GET takes the check's shortcut; a POST and its body get the full parse.
#[divan::bench(args = ["get", "post"])]
fn framing_check_of_a_request(bencher: Bencher, method: &str) {
    let request: &[u8] = match method {
        "get" => b"GET /index.html HTTP/1.1\r\nHost: app.example\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n",
        _ => b"POST /form HTTP/1.1\r\nHost: app.example\r\nUser-Agent: wrk\r\nContent-Length: 3\r\n\r\na=1",
    };
    let mut framing = Framing::default();
    bencher.bench_local(|| framing.feed(divan::black_box(request)));
}

#[divan::bench(args = ["precise", "coarse"])]
fn clock_read_per_frame(bencher: Bencher, clock: &str) {
    let coarse = clock == "coarse";
    bencher.bench_local(|| clock_read(divan::black_box(coarse)));
}

/// The Date header value of a kept file's HTTP/2 answer.
#[divan::bench]
fn date_header_value(bencher: Bencher) {
    bencher.bench_local(candado::hot_paths::http_date);
}

/// Ten HTTP/2 requests read and answered with a kept file's head and 1 KiB, in one turn.
#[divan::bench]
fn h2_turn_of_ten_requests(bencher: Bencher) {
    let mut turn = H2Turn::default();
    bencher.bench_local(|| turn.run());
}

#[divan::bench(args = ["/index.html", "/missing.html"])]
fn static_lookup(bencher: Bencher, path: &str) {
    let root = std::env::temp_dir().join(format!("candado-bench-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("a temporary folder");
    std::fs::write(root.join("index.html"), vec![b'x'; 1024]).expect("a 1 KiB file");
    let site = StaticSite::new(&root).expect("the folder opens");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    bencher.bench_local(|| rt.block_on(site.get(divan::black_box(path))));
    let _ = std::fs::remove_dir_all(&root);
}

/// The JS Django's admin ships (jQuery, Select2, XRegExp, minified: 330 KB) from the test venv
/// that `scripts/test` makes; this file's own text, repeated, where there is none.
fn js_bundle() -> Vec<u8> {
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/lib");
    let vendor = std::fs::read_dir(lib)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(Result::ok)
        .map(|python| {
            python
                .path()
                .join("site-packages/django/contrib/admin/static/admin/js/vendor")
        });
    let files = [
        "jquery/jquery.min.js",
        "select2/select2.full.min.js",
        "xregexp/xregexp.min.js",
    ];
    let bundle: Vec<u8> = vendor
        .iter()
        .flat_map(|v| {
            files
                .iter()
                .filter_map(move |f| std::fs::read(v.join(f)).ok())
        })
        .flatten()
        .collect();
    match bundle.is_empty() {
        true => include_str!("hot_paths.rs").repeat(40).into_bytes(),
        false => bundle,
    }
}

/// The README's compression table: time per bundle (divide by its size for the CPU per MB);
/// the compressed size is printed once per coding and level.
#[divan::bench(args = ["zstd-1", "zstd-3", "zstd-6", "br-3", "br-4", "br-5", "gzip-1", "gzip-5", "gzip-6"])]
fn compress_js_bundle(bencher: Bencher, choice: &str) {
    let (coding, level) = choice.split_once('-').expect("coding-level");
    let level: i32 = level.parse().expect("a level");
    let bundle = js_bundle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let size = rt.block_on(compressed_size(coding, level, &bundle));
    eprintln!("{choice}: {} → {size} bytes", bundle.len());
    bencher.bench_local(|| rt.block_on(compressed_size(coding, level, divan::black_box(&bundle))));
}

/// What one TLS 1.3 handshake costs the server (ServerHello to Finished, replayed from one
/// recorded ClientHello): X25519 alone, the X25519MLKEM768 hybrid browsers offer, and a
/// resumption (a ticket, still with a fresh X25519 exchange: psk_dhe_ke).
#[divan::bench(args = ["x25519", "hybrid", "resumed"])]
fn tls13_server_first_flight(bencher: Bencher, kind: &str) {
    let tls = TlsHandshakes::new();
    let offer = match kind {
        "hybrid" => Offer::Hybrid,
        _ => Offer::X25519,
    };
    let client = tls.client(offer);
    if kind == "resumed" {
        tls.handshake(&client);
    }
    let hello = tls.client_hello(&client);
    bencher.bench_local(|| tls.server_first_flight(divan::black_box(&hello)));
}

/// A whole handshake in memory, both sides.
#[divan::bench(args = ["x25519", "hybrid"])]
fn tls13_full_handshake_both_sides(bencher: Bencher, kind: &str) {
    let tls = TlsHandshakes::new();
    let offer = match kind {
        "hybrid" => Offer::Hybrid,
        _ => Offer::X25519,
    };
    bencher.bench_local(|| {
        // A fresh client config each time, so no ticket is offered.
        let client = tls.client(offer);
        tls.handshake(&client)
    });
}
