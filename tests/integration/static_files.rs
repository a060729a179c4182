//! Static files as a browser and an attacker see them.

use std::os::unix::fs::symlink;

use crate::support::Fixture;
use crate::support::client::{self, raw_tls, status_of};

fn with_files() -> Fixture {
    Fixture::start_with_files("", "", |root| {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/index.html"), "docs index").unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("style.css"), "body{}").unwrap();
        std::fs::write(root.join("app.js"), "1").unwrap();
        std::fs::write(root.join("logo.png"), [0x89, b'P', b'N', b'G']).unwrap();
        std::fs::write(
            root.join("data.bin"),
            (0..=255u8).cycle().take(1000).collect::<Vec<_>>(),
        )
        .unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "secret").unwrap();
        std::fs::write(root.join(".env"), "PASSWORD=x").unwrap();
    })
}

#[test]
fn folders_serve_their_index_and_get_a_trailing_slash() {
    let f = with_files();
    assert_eq!(f.get("/", &[]).text(), "<h1>home</h1>\n");
    assert_eq!(f.get("/docs/", &[]).text(), "docs index");
    let res = f.get("/docs?x=1", &[]);
    assert_eq!(res.status, 301);
    assert_eq!(res.header("location").as_deref(), Some("/docs/?x=1"));
}

#[test]
fn mime_types_follow_the_extension() {
    let f = with_files();
    for (path, mime) in [
        ("/", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/logo.png", "image/png"),
        ("/data.bin", "application/octet-stream"),
    ] {
        assert_eq!(
            f.get(path, &[]).header("content-type").as_deref(),
            Some(mime),
            "{path}"
        );
    }
}

#[test]
fn etag_and_last_modified_give_304() {
    let f = with_files();
    let first = f.get("/style.css", &[]);
    let etag = first.header("etag").unwrap();
    let modified = first.header("last-modified").unwrap();
    let res = f.get("/style.css", &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!((res.status, res.body.len()), (304, 0));
    let res = f.get(
        "/style.css",
        &["-H", &format!("If-Modified-Since: {modified}")],
    );
    assert_eq!(res.status, 304);
    let res = f.get("/style.css", &["-H", "If-None-Match: \"other\""]);
    assert_eq!(res.status, 200);
}

#[test]
fn byte_ranges_give_206_and_416() {
    let f = with_files();
    let all = f.get("/data.bin", &[]).body;
    let res = f.get("/data.bin", &["-H", "Range: bytes=10-19"]);
    assert_eq!(res.status, 206);
    assert_eq!(
        res.header("content-range").as_deref(),
        Some("bytes 10-19/1000")
    );
    assert_eq!(res.body, all[10..20]);
    let res = f.get("/data.bin", &["-H", "Range: bytes=-5"]);
    assert_eq!(res.body, all[995..]);
    let res = f.get("/data.bin", &["-H", "Range: bytes=5000-"]);
    assert_eq!(res.status, 416);
    assert_eq!(res.header("content-range").as_deref(), Some("bytes */1000"));
}

#[test]
fn head_has_the_headers_without_the_body() {
    let f = with_files();
    let res = f.get("/data.bin", &["-I"]);
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length").as_deref(), Some("1000"));
    let raw = raw_tls(
        f.server.https,
        &f.pki.ca_pem,
        b"HEAD /style.css HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n",
    );
    assert!(raw.ends_with("\r\n\r\n"), "no body after the head: {raw:?}");
    assert!(raw.contains("content-length: 6\r\n"), "{raw}");
}

#[test]
fn other_methods_get_405_with_allow() {
    let f = with_files();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let res = f.get("/style.css", &["-X", method]);
        assert_eq!(res.status, 405, "{method}");
        assert_eq!(res.header("allow").as_deref(), Some("GET, HEAD"));
    }
}

#[test]
fn folders_are_not_listed_unless_enabled() {
    let f = with_files();
    assert_eq!(f.get("/empty/", &[]).status, 404);
    let f = Fixture::start_with_files("    static: {listing: true}", "", |root| {
        std::fs::create_dir_all(root.join("files")).unwrap();
        std::fs::write(root.join("files/<b>.txt"), "x").unwrap();
        std::fs::write(root.join("files/.hidden"), "x").unwrap();
    });
    let res = f.get("/files/", &[]);
    assert_eq!(res.status, 200);
    let page = res.text();
    assert!(
        page.contains("&lt;b&gt;.txt") && !page.contains("<b>.txt"),
        "{page}"
    );
    assert!(!page.contains(".hidden"), "{page}");
}

#[test]
fn hidden_files_and_folders_are_never_served_unless_enabled() {
    let f = with_files();
    for path in [
        "/.git/config",
        "/.env",
        "/.git/",
        "/%2egit/config",
        "/docs/../.env",
    ] {
        let res = f.get(path, &[]);
        assert!(
            res.status == 404 || res.status == 400,
            "{path}: {}",
            res.status
        );
        assert!(
            !res.text().contains("secret") && !res.text().contains("PASSWORD"),
            "{path}"
        );
    }
    let f = Fixture::start_with_files("    static: {hidden: true}", "", |root| {
        std::fs::write(root.join(".env"), "PASSWORD=x").unwrap()
    });
    assert_eq!(f.get("/.env", &[]).text(), "PASSWORD=x");
}

#[test]
fn path_traversal_is_impossible_in_every_form() {
    let f = with_files();
    let attempts = [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/..%2f..%2f..%2fetc/passwd",
        "/docs/..%2f..%2f..%2fetc%2fpasswd",
        "/..\\..\\..\\etc\\passwd",
        "/%5c..%5c..%5cetc/passwd",
        "/index.html%00.png",
        "/docs/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "//etc/passwd",
    ];
    for path in attempts {
        let raw = raw_tls(
            f.server.https,
            &f.pki.ca_pem,
            format!("GET {path} HTTP/1.1\r\nHost: test.example\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        let status = status_of(&raw);
        assert!(matches!(status, 400 | 404), "{path}: {raw}");
        assert!(!raw.contains("root:"), "{path} leaked /etc/passwd");
    }
}

#[test]
fn symlinks_out_of_the_root_are_refused_unless_enabled() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    let target = outside.path().to_owned();
    let link = |root: &std::path::Path| {
        symlink(target.join("secret.txt"), root.join("link.txt")).unwrap();
        symlink(&target, root.join("out")).unwrap();
        symlink(root.join("index.html"), root.join("inside.html")).unwrap();
    };
    let f = Fixture::start_with_files("", "", link);
    assert_eq!(f.get("/link.txt", &[]).status, 404);
    assert_eq!(f.get("/out/secret.txt", &[]).status, 404);
    assert_eq!(
        f.get("/inside.html", &[]).status,
        200,
        "links inside the root are fine"
    );
    let f = Fixture::start_with_files("    static: {follow_symlinks: true}", "", link);
    assert_eq!(f.get("/link.txt", &[]).text(), "outside");
}

#[test]
fn not_found_pages_escape_what_they_echo() {
    let f = with_files();
    let res = f.get("/%3Cscript%3Ealert(1)%3C/script%3E", &[]);
    assert_eq!(res.status, 404);
    let page = res.text();
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;script&gt;"), "{page}");
}

#[test]
fn large_files_stream_whole() {
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let expected = big.clone();
    let f = Fixture::start_with_files("", "", move |root| {
        std::fs::write(root.join("big.bin"), &big).unwrap()
    });
    for proto in ["--http1.1", "--http2"] {
        let res = f.get("/big.bin", &[proto]);
        assert_eq!(res.body.len(), expected.len(), "{proto}");
        assert!(res.body == expected, "{proto}: content differs");
    }
    let _ = client::HOST;
}
