//! Response compression (issue 17), judged by clients that decode it themselves: curl
//! (`--compressed`, explicit Accept-Encoding), Python's httpx (with the brotli and zstandard
//! decoders) and Chromium. A static JS bundle (the minified libraries Django's admin ships)
//! and proxied JSON must come back byte for byte.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::support::client::{self, HOST};
use crate::support::server::Candado;
use crate::support::{Fixture, output_text};

/// The minified jQuery, Select2 and XRegExp that Django's admin ships (about 330 KB of real
/// JavaScript), from the test venv.
pub(crate) fn js_bundle() -> Vec<u8> {
    let lib = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/lib"));
    let python = std::fs::read_dir(&lib)
        .expect("the test venv (scripts/test creates target/pyenv)")
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python3")
        })
        .unwrap();
    let vendor = python.join("site-packages/django/contrib/admin/static/admin/js/vendor");
    let mut out = Vec::new();
    for f in [
        "jquery/jquery.min.js",
        "select2/select2.full.min.js",
        "xregexp/xregexp.min.js",
    ] {
        out.extend(std::fs::read(vendor.join(f)).unwrap());
        out.push(b'\n');
    }
    out
}

/// JSON as an API returns it: a few KB of records.
fn json_document() -> Vec<u8> {
    let rows: Vec<String> = (0..120)
        .map(|i| format!("{{\"id\":{i},\"name\":\"user {i}\",\"email\":\"user{i}@example.com\",\"active\":{}}}", i % 3 == 0))
        .collect();
    format!("{{\"users\":[{}]}}", rows.join(",")).into_bytes()
}

/// Compresses `data` the way a build step would make `app.js.gz` (or `.br`, `.zst`).
fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZstdEncoder};
    use tokio::io::{AsyncWrite, AsyncWriteExt};
    async fn run(mut e: impl AsyncWrite + Unpin, data: &[u8]) {
        e.write_all(data).await.unwrap();
        e.shutdown().await.unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut out = Vec::new();
    rt.block_on(async {
        match coding {
            "gzip" => run(GzipEncoder::new(&mut out), data).await,
            "br" => run(BrotliEncoder::new(&mut out), data).await,
            "zstd" => run(ZstdEncoder::new(&mut out), data).await,
            other => panic!("{other}"),
        }
    });
    out
}

/// An app behind the proxy: JSON, JSON it already gzipped itself, JSON marked no-transform or
/// with a Content-Digest, and an event stream (three events 400 ms apart).
fn app() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    let gzipped = Bytes::from(compress("gzip", &json_document()));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let gzipped = gzipped.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| app_answer(req, gzipped.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

type AppBody = BoxBody<Bytes, Infallible>;

async fn app_answer(
    req: Request<Incoming>,
    gzipped: Bytes,
) -> Result<Response<AppBody>, Infallible> {
    let full = |b: Vec<u8>| Full::new(Bytes::from(b)).boxed();
    let json = Response::builder().header("content-type", "application/json");
    let path = req.uri().path().to_owned();
    let res = match path.rsplit('/').next().unwrap_or_default() {
        "data.json" => json.body(full(json_document())),
        "gzipped.json" => json
            .header("content-encoding", "gzip")
            .body(Full::new(gzipped).boxed()),
        "no-transform.json" => json
            .header("cache-control", "public, no-transform")
            .body(full(json_document())),
        // The digest's value does not matter here: any Content-Digest pins the bytes.
        "digest.json" => json
            .header("content-digest", "sha-256=:AAAA:")
            .body(full(json_document())),
        "events" => {
            let events = futures_util::stream::iter(0..3).then(|i| async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {i}\n\n"))))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(BodyExt::boxed(StreamBody::new(events)))
        }
        _ => Response::builder().status(404).body(full(Vec::new())),
    };
    Ok(res.unwrap())
}

/// A site serving the JS bundle, a small text file, a PNG and a folder with a precompressed
/// sibling, with `/api` proxied to [`app`] (compressed) and `/raw` to the same app with
/// `compression: false`.
fn site(extra: &str) -> Fixture {
    let app = app();
    let routes = format!(
        "    proxy:\n      - path: /api\n        to: http://{app}\n      - path: /raw\n        to: http://{app}\n        compression: false\n{extra}"
    );
    Fixture::start_with_files(&routes, "", |root| {
        std::fs::write(root.join("app.js"), js_bundle()).unwrap();
        std::fs::write(root.join("small.txt"), "short and sweet\n").unwrap();
        // A PNG signature and noise: not a type worth compressing.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        std::fs::write(root.join("image.png"), png).unwrap();
    })
}

fn ae(value: &str) -> String {
    format!("Accept-Encoding: {value}")
}

#[test]
fn curl_decodes_every_coding_of_the_js_bundle_byte_for_byte() {
    let f = site("");
    let bundle = js_bundle();
    for (accept, expected) in [
        (None, "zstd"), // curl --compressed: deflate, gzip, br, zstd
        (Some("zstd"), "zstd"),
        (Some("br"), "br"),
        (Some("gzip"), "gzip"),
        (Some("gzip;q=0.5, br;q=0.9, zstd;q=0.1"), "br"),
        (Some("*"), "zstd"),
        (Some("zstd;q=0, *;q=0.3"), "br"),
        (Some("x-gzip"), "gzip"),
    ] {
        let header = accept.map(ae);
        let mut args = vec!["--compressed"];
        args.extend(header.iter().flat_map(|h| ["-H", h.as_str()]));
        for version in ["--http2", "--http1.1"] {
            let mut args = args.clone();
            args.push(version);
            let res = f.get("/app.js", &args);
            assert_eq!(res.status, 200, "{accept:?}");
            assert_eq!(
                res.header("content-encoding").as_deref(),
                Some(expected),
                "{accept:?} {version}: {}",
                res.head
            );
            assert!(
                res.body == bundle,
                "{accept:?} {version}: decoded bytes differ"
            );
            assert_eq!(res.header("vary").as_deref(), Some("accept-encoding"));
            assert_eq!(res.header("content-length"), None, "{}", res.head);
            assert_eq!(res.header("accept-ranges"), None, "{}", res.head);
            let etag = res.header("etag").unwrap();
            assert!(
                etag.starts_with("W/\"") && etag.ends_with(&format!("-{expected}\"")),
                "{etag}"
            );
        }
    }
}

#[test]
fn identity_is_sent_when_asked_for_or_when_nothing_else_is_accepted() {
    let f = site("");
    let bundle = js_bundle();
    for accept in ["identity", "gzip;q=0.5, identity", "compress, deflate", ""] {
        let res = f.get("/app.js", &["-H", &ae(accept)]);
        assert_eq!(
            res.header("content-encoding"),
            None,
            "{accept}: {}",
            res.head
        );
        assert!(res.body == bundle);
        assert_eq!(res.header("content-length"), Some(bundle.len().to_string()));
        // The representation still depends on Accept-Encoding: caches must know.
        assert_eq!(res.header("vary").as_deref(), Some("accept-encoding"));
    }
    let plain = f.get("/app.js", &[]);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(plain.body == bundle);
}

#[test]
fn small_bodies_stay_plain_unless_identity_is_refused() {
    let f = site("");
    let res = f.get("/small.txt", &["--compressed", "-H", &ae("gzip, br")]);
    assert_eq!(res.header("content-encoding"), None, "{}", res.head);
    assert_eq!(res.text(), "short and sweet\n");
    let res = f.get(
        "/small.txt",
        &["--compressed", "-H", &ae("gzip;q=0.5, identity;q=0")],
    );
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(res.text(), "short and sweet\n");
}

#[test]
fn images_are_sent_as_they_are_even_with_a_gz_beside_them() {
    let f = site("");
    // Not even a precompressed copy is looked for.
    let png = std::fs::read(f.root.path().join("image.png")).unwrap();
    std::fs::write(f.root.path().join("image.png.gz"), compress("gzip", &png)).unwrap();
    let res = f.get("/image.png", &["--compressed"]);
    assert_eq!(res.header("content-encoding"), None, "{}", res.head);
    assert_eq!(res.header("vary"), None, "{}", res.head);
    assert_eq!(res.header("content-length").as_deref(), Some("4104"));
}

#[test]
fn head_matches_get_and_validators_name_the_coding() {
    let f = site("");
    let get = f.get("/app.js", &["--compressed", "-H", &ae("br")]);
    let head = f.get("/app.js", &["-I", "-H", &ae("br")]);
    for name in [
        "content-encoding",
        "vary",
        "etag",
        "content-type",
        "content-length",
    ] {
        assert_eq!(get.header(name), head.header(name), "{name}: {}", head.head);
    }
    // (curl -I writes the head where the body would go: no byte of the file may be there.)
    assert!(!head.text().contains("jQuery"), "{}", head.text());
    let etag = get.header("etag").unwrap();
    let identity_etag = f.get("/app.js", &[]).header("etag").unwrap();
    // `"abc"` for identity, `W/"abc-br"` for br.
    assert_eq!(
        etag,
        format!("W/{}-br\"", identity_etag.trim_end_matches('"'))
    );

    // A browser revalidates with the tag it has: 304 with that same tag.
    let inm = format!("If-None-Match: {etag}");
    let res = f.get("/app.js", &["-H", &ae("br"), "-H", &inm]);
    assert_eq!(res.status, 304, "{}", res.head);
    assert_eq!(res.header("etag").as_deref(), Some(etag.as_str()));
    assert_eq!(res.header("vary").as_deref(), Some("accept-encoding"));
    // The br tag names another representation than zstd's: a client that now gets zstd
    // receives it in full.
    let res = f.get("/app.js", &["--compressed", "-H", &ae("zstd"), "-H", &inm]);
    assert_eq!(res.status, 200, "{}", res.head);
    // The identity tag still works for identity.
    let inm = format!("If-None-Match: {identity_etag}");
    assert_eq!(f.get("/app.js", &["-H", &inm]).status, 304);
}

#[test]
fn ranges_are_cut_from_the_identity_bytes() {
    let f = site("");
    let bundle = js_bundle();
    let res = f.get(
        "/app.js",
        &[
            "--compressed",
            "-H",
            &ae("gzip, br, zstd"),
            "-H",
            "Range: bytes=100-199",
        ],
    );
    assert_eq!(res.status, 206, "{}", res.head);
    assert_eq!(res.header("content-encoding"), None, "{}", res.head);
    assert!(res.body == bundle[100..200]);
    assert_eq!(
        res.header("content-range"),
        Some(format!("bytes 100-199/{}", bundle.len()))
    );
}

#[test]
fn precompressed_siblings_are_served_while_fresh() {
    let f = site("");
    let original = b"console.log('built on the fly');\n".repeat(100);
    let built = b"console.log('built ahead of time');\n".repeat(100);
    let root = f.root.path();
    std::fs::write(root.join("pre.js"), &original).unwrap();
    std::fs::write(root.join("pre.js.br"), compress("br", &built)).unwrap();
    std::fs::write(root.join("pre.js.gz"), compress("gzip", &built)).unwrap();
    let set_mtime = |name: &str, t: SystemTime| {
        let file = std::fs::File::options()
            .write(true)
            .open(root.join(name))
            .unwrap();
        file.set_modified(t).unwrap();
    };
    let now = SystemTime::now();
    set_mtime("pre.js", now - Duration::from_secs(60));
    set_mtime("pre.js.br", now - Duration::from_secs(30));
    set_mtime("pre.js.gz", now - Duration::from_secs(30));

    // zstd is preferred but there is no .zst: the client's next choice that exists, br.
    let res = f.get("/pre.js", &["--compressed", "-H", &ae("zstd, br, gzip")]);
    assert_eq!(
        res.header("content-encoding").as_deref(),
        Some("br"),
        "{}",
        res.head
    );
    assert!(res.body == built, "{}", res.text());
    let br_len = std::fs::metadata(root.join("pre.js.br")).unwrap().len();
    assert_eq!(res.header("content-length"), Some(br_len.to_string()));
    assert_eq!(res.header("vary").as_deref(), Some("accept-encoding"));
    assert!(res.header("etag").unwrap().ends_with("-br\""));
    assert_eq!(
        res.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    let head = f.get("/pre.js", &["-I", "-H", &ae("zstd, br, gzip")]);
    assert_eq!(head.header("content-length"), Some(br_len.to_string()));
    assert_eq!(head.header("content-encoding").as_deref(), Some("br"));
    let res = f.get("/pre.js", &["--compressed", "-H", &ae("gzip")]);
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    assert!(res.body == built);
    // A client that takes no coding gets the file itself.
    assert!(f.get("/pre.js", &[]).body == original);
    // Ranges come from the file itself too.
    let res = f.get("/pre.js", &["-H", &ae("br"), "-H", "Range: bytes=0-9"]);
    assert_eq!((res.status, res.body.as_slice()), (206, &original[..10]));

    // The source is edited after the build: the stale copy is never served.
    set_mtime("pre.js", now);
    let res = f.get("/pre.js", &["--compressed", "-H", &ae("br")]);
    assert_eq!(res.header("content-encoding").as_deref(), Some("br"));
    assert!(res.body == original, "{}", res.text());
    assert_eq!(res.header("content-length"), None, "compressed on the fly");
}

/// Small files are kept in memory after their first request; a copy built afterwards is
/// still found (within the second the memory copy may go unchecked).
#[test]
fn a_precompressed_copy_made_later_is_found_for_a_file_kept_in_memory() {
    let f = site("");
    let root = f.root.path();
    let original = b"body { color: black; }\n".repeat(100);
    let built = b"body { color: blue; }\n".repeat(100);
    std::fs::write(root.join("late.css"), &original).unwrap();
    for _ in 0..2 {
        let res = f.get("/late.css", &["--compressed", "-H", &ae("gzip")]);
        assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
        assert!(res.body == original);
    }
    std::fs::write(root.join("late.css.gz"), compress("gzip", &built)).unwrap();
    let found = crate::support::tcp::wait_until(Duration::from_secs(5), || {
        f.get("/late.css", &["--compressed", "-H", &ae("gzip")])
            .body
            == built
    });
    assert!(found, "the .gz made later was never served");
    // Clients that take no coding still get the file from memory.
    assert!(f.get("/late.css", &[]).body == original);
    // Removed again: back to compressing on the fly.
    std::fs::remove_file(root.join("late.css.gz")).unwrap();
    let gone = crate::support::tcp::wait_until(Duration::from_secs(5), || {
        f.get("/late.css", &["--compressed", "-H", &ae("gzip")])
            .body
            == original
    });
    assert!(gone, "the removed .gz is still served");
}

#[test]
fn proxied_json_is_compressed_and_decodes_byte_for_byte() {
    let f = site("");
    let json = json_document();
    for coding in ["zstd", "br", "gzip"] {
        let res = f.get("/api/data.json", &["--compressed", "-H", &ae(coding)]);
        assert_eq!(
            res.header("content-encoding").as_deref(),
            Some(coding),
            "{}",
            res.head
        );
        assert!(res.body == json, "{coding}: {}", res.text());
        assert_eq!(res.header("vary").as_deref(), Some("accept-encoding"));
    }
}

#[test]
fn what_the_app_encoded_or_marked_no_transform_is_left_alone() {
    let f = site("");
    let json = json_document();
    // Without --compressed curl shows the bytes as they came: the app's own gzip.
    let res = f.get("/api/gzipped.json", &["-H", &ae("zstd, br, gzip")]);
    assert_eq!(res.header("content-encoding").as_deref(), Some("gzip"));
    assert!(
        res.body == compress("gzip", &json),
        "the app's gzip bytes were changed"
    );
    assert_eq!(res.header("vary"), None, "{}", res.head);
    for path in ["/api/no-transform.json", "/api/digest.json"] {
        let res = f.get(path, &["-H", &ae("zstd, br, gzip")]);
        assert_eq!(res.header("content-encoding"), None, "{path}: {}", res.head);
        assert!(res.body == json);
    }
}

#[test]
fn a_route_or_a_site_can_turn_compression_off() {
    let f = site("");
    let res = f.get("/raw/data.json", &["-H", &ae("zstd, br, gzip")]);
    assert_eq!(res.header("content-encoding"), None, "{}", res.head);
    assert!(res.body == json_document());
    let f = site("    compression: false\n");
    for path in ["/app.js", "/api/data.json"] {
        let res = f.get(path, &["-H", &ae("zstd, br, gzip")]);
        assert_eq!(res.header("content-encoding"), None, "{path}: {}", res.head);
        assert_eq!(res.header("vary"), None, "{path}: {}", res.head);
    }
}

#[test]
fn no_compression_flag_turns_it_off_for_serve() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.js"), js_bundle()).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["serve", "-p", "0", "--http-port", "0"];
        args.extend_from_slice(extra);
        let server = Candado::with_args(&args, dir.path(), tempfile::tempdir().unwrap(), false);
        let url = format!("https://localhost:{}/app.js", server.https.port());
        let ca = server.data_dir().join("ca/ca.crt");
        let res = client::curl_raw(&url, &["--cacert", ca.to_str().unwrap(), "-H", &ae("gzip")]);
        res.header("content-encoding")
    };
    assert_eq!(run(&[]).as_deref(), Some("gzip"));
    assert_eq!(run(&["--no-compression"]), None);
}

#[test]
fn no_compression_flag_turns_it_off_for_proxy() {
    let app = app().to_string();
    let run = |extra: &[&str]| {
        let from = format!(":{}", crate::support::free_port());
        let mut args = vec!["proxy", "--to", &app, "--from", &from, "--http-port", "0"];
        args.extend_from_slice(extra);
        let dir = tempfile::tempdir().unwrap();
        let server = Candado::with_args(&args, dir.path(), tempfile::tempdir().unwrap(), false);
        let url = format!("https://localhost:{}/data.json", server.https.port());
        let ca = server.data_dir().join("ca/ca.crt");
        let res = client::curl_raw(
            &url,
            &[
                "--cacert",
                ca.to_str().unwrap(),
                "--compressed",
                "-H",
                &ae("br"),
            ],
        );
        assert!(res.body == json_document());
        res.header("content-encoding")
    };
    assert_eq!(run(&[]).as_deref(), Some("br"));
    assert_eq!(run(&["--no-compression"]), None);
}

#[test]
fn a_pyserve_config_compresses_too() {
    let pki = crate::support::pki::TestPki::new();
    let leaf = pki.leaf("py", &["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/app.js"), js_bundle()).unwrap();
    let port = crate::support::free_port();
    let config = format!(
        "server:\n  host: 127.0.0.1\n  port: {port}\nhttp:\n  static_dir: ./static\nssl:\n  enabled: true\n  cert_file: {}\n  key_file: {}\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    std::fs::write(dir.path().join("config.yaml"), &config).unwrap();
    let _server = Candado::with_args(
        &["-c", "config.yaml"],
        dir.path(),
        tempfile::tempdir().unwrap(),
        false,
    );
    let res = client::curl_raw(
        &format!("https://localhost:{port}/app.js"),
        &["--cacert", pki.ca_path.to_str().unwrap(), "--compressed"],
    );
    assert_eq!(
        res.header("content-encoding").as_deref(),
        Some("zstd"),
        "{}",
        res.head
    );
    assert!(res.body == js_bundle());
}

/// Requests `path` with `Accept-Encoding: coding` over HTTP/2 or HTTP/1.1 from this process
/// (no client process to schedule on a busy machine), decodes the body as it streams and
/// returns when each marker first appeared in the decoded text, measured from the request
/// (at most 5 s).
fn decoded_arrival_times(
    f: &Fixture,
    path: &str,
    coding: &str,
    h2: bool,
    markers: &[&str],
) -> Vec<Duration> {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
    use tokio::io::{AsyncRead, AsyncReadExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(f.server.https)
            .await
            .unwrap();
        let alpn: &[&[u8]] = if h2 { &[b"h2"] } else { &[b"http/1.1"] };
        let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
        let tls = tokio_rustls::TlsConnector::from(client::client_config(&f.pki.ca_pem, alpn))
            .connect(name, tcp)
            .await
            .unwrap();
        let io = TokioIo::new(tls);
        let req = Request::get(format!("https://{HOST}{path}"))
            .header("accept-encoding", coding)
            .header("accept", "text/event-stream");
        let empty = http_body_util::Empty::<Bytes>::new();
        let started = Instant::now();
        let res = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req.body(empty).unwrap()).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            let req = req.header("host", HOST).body(empty).unwrap();
            send.send_request(req).await.unwrap()
        };
        let encoding = res.headers().get("content-encoding").cloned();
        assert_eq!(encoding.as_ref().map(|v| v.to_str().unwrap()), Some(coding));
        let stream = res
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        let reader = tokio_util::io::StreamReader::new(stream);
        let mut decoded: std::pin::Pin<Box<dyn AsyncRead>> = match coding {
            "zstd" => Box::pin(ZstdDecoder::new(reader)),
            "br" => Box::pin(BrotliDecoder::new(reader)),
            _ => Box::pin(GzipDecoder::new(reader)),
        };
        let (mut seen, mut times) = (String::new(), Vec::new());
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while times.len() < markers.len() {
            let read = tokio::time::timeout_at(deadline, decoded.read(&mut buf)).await;
            let Ok(Ok(n @ 1..)) = read else { break };
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            while times.len() < markers.len() && seen.contains(markers[times.len()]) {
                times.push(started.elapsed());
            }
        }
        assert_eq!(
            times.len(),
            markers.len(),
            "not every marker arrived: {seen}"
        );
        times
    })
}

#[test]
fn compressed_event_streams_are_flushed_per_event() {
    let f = site("");
    for coding in ["zstd", "br", "gzip"] {
        // curl, the independent judge, decodes the whole stream...
        let res = f.get(
            "/api/events",
            &[
                "--compressed",
                "-H",
                &ae(coding),
                "-H",
                "Accept: text/event-stream",
            ],
        );
        assert_eq!(
            res.header("content-encoding").as_deref(),
            Some(coding),
            "{}",
            res.head
        );
        assert_eq!(res.text(), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
        // ...and each event decodes on arrival, 400 ms after the one before, as it was sent.
        for h2 in [true, false] {
            let markers = ["data: 0", "data: 1", "data: 2"];
            let times = decoded_arrival_times(&f, "/api/events", coding, h2, &markers);
            client::assert_flushed_as_sent(&times);
        }
    }
}

/// httpx, with the brotli and zstandard decoders installed, as a Python app's client would be.
#[test]
fn httpx_decodes_static_and_proxied_responses() {
    let f = site("");
    let script = r#"
import hashlib, sys, httpx
port, ca = sys.argv[1], sys.argv[2]
with httpx.Client(verify=ca, http2=False) as c:
    for path in ["/app.js", "/api/data.json"]:
        for coding in ["zstd", "br", "gzip"]:
            r = c.get(f"https://127.0.0.1:{port}{path}", headers={"Accept-Encoding": coding})
            print(path, coding, r.status_code, r.headers.get("content-encoding"), hashlib.sha256(r.content).hexdigest())
"#;
    let out = Command::new(crate::python_apps::python())
        .args(["-c", script, &f.server.https.port().to_string()])
        .arg(&f.pki.ca_path)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let sha = |b: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    for (path, body) in [
        ("/app.js", js_bundle()),
        ("/api/data.json", json_document()),
    ] {
        for coding in ["zstd", "br", "gzip"] {
            let line = format!("{path} {coding} 200 {coding} {}", sha(&body));
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in:\n{text}"
            );
        }
    }
}

/// A real browser: Chromium fetches the bundle and the proxied JSON (offering zstd, br and
/// gzip as it always does), and its page checks the decoded bytes.
#[test]
fn chromium_decodes_the_bundle_and_the_json() {
    let f = site("");
    let bundle = js_bundle();
    let json = json_document();
    let page = r#"<!doctype html><title>c</title><body><script>
function fetchBytes(url) {
  const x = new XMLHttpRequest();
  x.open('GET', url, false);
  x.overrideMimeType('text/plain; charset=x-user-defined');
  x.send();
  let h = 0x811c9dc5;
  for (let i = 0; i < x.responseText.length; i++) {
    h ^= x.responseText.charCodeAt(i) & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return url + ' ' + x.status + ' ' + x.getResponseHeader('content-encoding') + ' ' + x.responseText.length + ' ' + h;
}
document.body.textContent = [fetchBytes('/app.js'), fetchBytes('/api/data.json')].join(' | ');
</script></body>
"#;
    std::fs::write(f.root.path().join("check.html"), page).unwrap();
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let nss = format!("sql:{}", db.display());
    for args in [
        vec!["-N", "-d", &nss, "--empty-password"],
        vec![
            "-A",
            "-d",
            &nss,
            "-t",
            "C,,",
            "-n",
            "test-ca",
            "-i",
            f.pki.ca_path.to_str().unwrap(),
        ],
    ] {
        let out = Command::new("certutil").args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            output_text(&out)
        );
    }
    let profile = tempfile::tempdir().unwrap();
    let url = format!("https://{HOST}:{}/check.html", f.server.https.port());
    let out = Command::new("timeout")
        .args(["60", "chromium"])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            &format!("--host-resolver-rules=MAP {HOST} 127.0.0.1"),
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &url,
        ])
        .env("HOME", home.path())
        .output()
        .expect("chromium is installed by scripts/test");
    let dom = String::from_utf8_lossy(&out.stdout);
    let fnv = |b: &[u8]| {
        b.iter().fold(0x811c9dc5u32, |h, &x| {
            (h ^ u32::from(x)).wrapping_mul(0x01000193)
        })
    };
    for (path, body) in [("/app.js", &bundle), ("/api/data.json", &json)] {
        let expected = format!("{path} 200 zstd {} {}", body.len(), fnv(body));
        assert!(
            dom.contains(&expected),
            "expected `{expected}` in:\n{dom}\n{}",
            output_text(&out)
        );
    }
}

/// The write deadline covers compressed responses too: a client that stops reading a large
/// compressed file is cut off after `timeouts.write`, and the file is closed.
#[test]
fn a_client_that_stops_reading_a_compressed_response_is_cut_off() {
    use std::io::{Read, Write};
    // 32 MiB of text that compresses to about three quarters: the socket buffers fill long
    // before the end.
    let text = |root: &std::path::Path| {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let body: Vec<u8> = (0..32 * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % 64) as usize]
            })
            .collect();
        std::fs::write(root.join("big.txt"), body).unwrap();
    };
    let f = Fixture::start_with_files("", "timeouts: {write: 2s}", text);
    let baseline = f.server.open_fds();
    let mut tls = client::connect(
        f.server.https,
        HOST,
        client::client_config(&f.pki.ca_pem, &[b"http/1.1"]),
    )
    .unwrap();
    tls.write_all(b"GET /big.txt HTTP/1.1\r\nHost: test.example\r\nAccept-Encoding: zstd\r\n\r\n")
        .unwrap();
    let sent = Instant::now();
    let mut head = [0u8; 512];
    let n = tls.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.contains("content-encoding: zstd"), "{head}");
    let wait = crate::support::tcp::wait_until;
    assert!(
        wait(Duration::from_secs(10), || f.server.open_fds() <= baseline),
        "still {} fds (baseline {baseline}) after {:?}",
        f.server.open_fds(),
        sent.elapsed()
    );
    let closed_after = sent.elapsed();
    assert!(
        closed_after > Duration::from_secs(2) && closed_after < Duration::from_secs(6),
        "closed after {closed_after:?}, write timeout 2 s"
    );
}

/// A text file kept in memory is compressed once per coding: the next clients get the kept
/// bytes with their own Content-Length and the same validators, over HTTP/2 and HTTP/1.1;
/// ranges and HEAD still work, and an edit drops the copies with the file.
#[test]
fn a_file_kept_in_memory_is_compressed_once_per_coding_until_it_changes() {
    let f = site("");
    let root = f.root.path();
    let original = b"function hello(name) { return 'hello ' + name; }\n".repeat(150);
    std::fs::write(root.join("hot.js"), &original).unwrap();
    for coding in ["br", "zstd", "gzip"] {
        let accept = ae(coding);
        let first = f.get("/hot.js", &["--compressed", "-H", &accept]);
        assert_eq!(first.header("content-encoding").as_deref(), Some(coding));
        assert!(first.body == original, "{coding}: first answer differs");
        // Compressed on the way: its length was not known in advance.
        assert_eq!(first.header("content-length"), None, "{}", first.head);
        let etag = first.header("etag").unwrap();
        for version in ["--http2", "--http1.1"] {
            let raw = f.get("/hot.js", &["-H", &accept, version]);
            let length: usize = raw
                .header("content-length")
                .unwrap_or_else(|| panic!("{coding} {version}: not the kept copy: {}", raw.head))
                .parse()
                .unwrap();
            assert_eq!(raw.body.len(), length, "{coding} {version}");
            assert!(length < original.len() / 4, "{coding}: {length} bytes");
            assert_eq!(raw.header("etag").as_deref(), Some(etag.as_str()));
            assert_eq!(raw.header("vary").as_deref(), Some("accept-encoding"));
            assert_eq!(raw.header("accept-ranges"), None, "{}", raw.head);
            let decoded = f.get("/hot.js", &["--compressed", "-H", &accept, version]);
            assert!(
                decoded.body == original,
                "{coding} {version}: kept copy differs"
            );
            let head = f.get("/hot.js", &["-I", "-H", &accept, version]);
            assert_eq!(head.header("content-length"), Some(length.to_string()));
            assert_eq!(head.header("content-encoding").as_deref(), Some(coding));
        }
        let inm = format!("If-None-Match: {etag}");
        let cached = f.get("/hot.js", &["-H", &accept, "-H", &inm]);
        assert_eq!(cached.status, 304, "{}", cached.head);
        assert_eq!(cached.header("etag").as_deref(), Some(etag.as_str()));
    }
    // Ranges are cut from the file itself; clients without a coding get it as it is.
    let part = f.get("/hot.js", &["-H", &ae("br"), "-H", "Range: bytes=0-7"]);
    assert_eq!((part.status, part.text().as_str()), (206, "function"));
    assert_eq!(part.header("content-encoding"), None);
    let plain = f.get("/hot.js", &[]);
    assert!(plain.body == original);
    assert_eq!(
        plain.header("content-length"),
        Some(original.len().to_string())
    );

    // Edited: the new bytes, compressed anew, within the memory copy's second.
    let edited = b"function bye(name) { return 'bye ' + name; }\n".repeat(170);
    std::fs::write(root.join("hot.js"), &edited).unwrap();
    let seen = crate::support::tcp::wait_until(Duration::from_secs(5), || {
        f.get("/hot.js", &["--compressed", "-H", &ae("br")]).body == edited
    });
    assert!(seen, "the edited file was never served compressed");
    let kept = f.get("/hot.js", &["--compressed", "-H", &ae("br")]);
    assert!(
        kept.body == edited,
        "a copy of the old file is still served"
    );
    assert!(kept.header("content-length").is_some(), "{}", kept.head);
}
