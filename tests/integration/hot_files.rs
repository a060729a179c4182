//! Small static files are kept in memory (issue 16); what a visitor sees must not change: an
//! edited, removed or replaced file, or a symlink swapped to leave the root, shows within the
//! cache's one second, never later, and nothing outside the root is ever served.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use crate::support::Fixture;

/// Asks for `path` until `done` says the answer is the new one; how long that took.
fn until(f: &Fixture, path: &str, done: impl Fn(u16, &str) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let res = f.get(path, &[]);
        if done(res.status, &res.text()) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{path} still answers {} {:?} after 5 s",
            res.status,
            res.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_edited_file_is_served_new_within_a_second_even_with_the_same_size() {
    let f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("a.txt"), "first").unwrap();
    });
    assert_eq!(f.get("/a.txt", &[]).text(), "first");
    assert_eq!(f.get("/a.txt", &[]).text(), "first");
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(f.root.path().join("a.txt"), "again").unwrap();
    let took = until(&f, "/a.txt", |s, t| s == 200 && t == "again");
    assert!(took < Duration::from_millis(1600), "took {took:?}");
    let res = f.get("/a.txt", &[]);
    assert_eq!(res.header("content-length").as_deref(), Some("5"));
}

#[test]
fn a_removed_file_becomes_404_within_a_second() {
    let f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("gone.txt"), "here").unwrap();
    });
    assert_eq!(f.get("/gone.txt", &[]).text(), "here");
    std::fs::remove_file(f.root.path().join("gone.txt")).unwrap();
    let took = until(&f, "/gone.txt", |s, _| s == 404);
    assert!(took < Duration::from_millis(1600), "took {took:?}");
}

#[test]
fn a_symlink_swapped_to_leave_the_root_stops_being_served() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "SECRET").unwrap();
    let f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("real.txt"), "public").unwrap();
        symlink("real.txt", root.join("link.txt")).unwrap();
    });
    assert_eq!(f.get("/link.txt", &[]).text(), "public");
    let link = f.root.path().join("link.txt");
    std::fs::remove_file(&link).unwrap();
    symlink(outside.path().join("secret.txt"), &link).unwrap();
    let took = until(&f, "/link.txt", |s, _| s == 404);
    assert!(took < Duration::from_millis(1600), "took {took:?}");
    for _ in 0..5 {
        assert!(!f.get("/link.txt", &[]).text().contains("SECRET"));
    }
}

#[test]
fn ranges_304_and_head_are_answered_from_memory_like_from_disk() {
    let f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("d.txt"), "0123456789").unwrap();
    });
    let first = f.get("/d.txt", &[]);
    let again = f.get("/d.txt", &[]);
    assert_eq!(first.header("etag"), again.header("etag"));
    assert_eq!(first.header("last-modified"), again.header("last-modified"));
    let part = f.get("/d.txt", &["-H", "Range: bytes=2-4"]);
    assert_eq!((part.status, part.text().as_str()), (206, "234"));
    assert_eq!(
        part.header("content-range").as_deref(),
        Some("bytes 2-4/10")
    );
    assert_eq!(part.header("content-length").as_deref(), Some("3"));
    let etag = first.header("etag").unwrap();
    let cached = f.get("/d.txt", &["-H", &format!("If-None-Match: {etag}")]);
    assert_eq!(cached.status, 304);
    let head = f.get("/d.txt", &["-I"]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length").as_deref(), Some("10"));
    assert!(!head.text().contains("0123456789"), "HEAD sent the body");
}

/// Every header line but Date, lower-cased, in order.
fn head_lines(res: &crate::support::client::Response) -> Vec<String> {
    res.head
        .lines()
        .skip(1)
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty() && !l.starts_with("date:"))
        .collect()
}

#[test]
fn a_plain_get_from_memory_has_the_head_and_body_the_full_path_gives_over_http1_and_http2() {
    let f = Fixture::start_with_files(
        "    headers: {X-Frame-Options: DENY, Vary: Origin}\n",
        "",
        |root| {
            std::fs::write(root.join("s.css"), "body{}").unwrap();
            std::fs::write(root.join("p.png"), [0x89, b'P', b'N', b'G']).unwrap();
            std::fs::write(root.join("empty.txt"), "").unwrap();
            std::fs::write(root.join("big.js"), "let x = 1;\n".repeat(200)).unwrap();
        },
    );
    // The first answer in gzip is compressed on the way out and kept once sent whole (just
    // after the client has it); later ones are that copy, with its own length.
    let started = Instant::now();
    while f
        .get("/big.js", &["-H", "Accept-Encoding: gzip"])
        .header("content-length")
        .is_none()
    {
        assert!(started.elapsed() < Duration::from_secs(5), "no copy kept");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A condition that holds (modified since 1970) takes the full path and still gets 200.
    let since = "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT";
    for version in ["--http1.1", "--http2"] {
        for (path, accept) in [
            ("/s.css", "Accept-Encoding: identity"),
            // A type not worth compressing: the client's codings change nothing.
            ("/p.png", "Accept-Encoding: gzip, br"),
            ("/empty.txt", "Accept-Encoding: identity"),
            ("/big.js", "Accept-Encoding: gzip"),
            ("/big.js", "Accept-Encoding: identity"),
        ] {
            for method in [&[][..], &["-I"][..]] {
                let args = |extra: &[&'static str]| {
                    let mut a = vec![version, "-H", accept];
                    a.extend_from_slice(method);
                    a.extend_from_slice(extra);
                    a
                };
                let full = f.get(path, &args(&["-H", since]));
                let plain = f.get(path, &args(&[]));
                let what = format!("{version} {path} {method:?}");
                assert_eq!((full.status, plain.status), (200, 200), "{what}");
                assert_eq!(head_lines(&plain), head_lines(&full), "{what}");
                // With -I curl writes the head (Date and all) where the body goes.
                if method.is_empty() {
                    assert_eq!(plain.body, full.body, "{what}");
                }
            }
        }
    }
    let css = f.get("/s.css", &[]);
    assert_eq!(css.text(), "body{}");
    assert_eq!(css.header("vary").as_deref(), Some("accept-encoding"));
    assert_eq!(css.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(css.header("strict-transport-security").is_some());
    let js = f.get("/big.js", &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(js.header("content-encoding").as_deref(), Some("gzip"));
    assert!(js.header("accept-ranges").is_none());
    assert!(js.header("etag").is_some_and(|t| t.starts_with("W/")));
    assert!(js.body.len() < 2400 && js.body.starts_with(&[0x1f, 0x8b]));
    let png = f.get("/p.png", &["-H", "Accept-Encoding: gzip"]);
    assert_eq!(png.header("vary").as_deref(), Some("Origin"));
    assert_eq!(png.header("content-type").as_deref(), Some("image/png"));
}

#[test]
fn an_answer_from_memory_carries_one_date_the_time_it_is_sent() {
    let f = Fixture::start_with_files("", "", |root| {
        std::fs::write(root.join("a.txt"), "kept").unwrap();
    });
    assert_eq!(f.get("/a.txt", &[]).text(), "kept");
    for round in 0..2 {
        if round > 0 {
            // Long enough that a Date made when the file was kept would be seen as stale.
            std::thread::sleep(Duration::from_millis(2100));
        }
        for version in ["--http1.1", "--http2"] {
            let before = std::time::SystemTime::now();
            let res = f.get("/a.txt", &[version]);
            let after = std::time::SystemTime::now();
            let dates: Vec<&str> = res
                .head
                .lines()
                .filter_map(|l| l.strip_prefix("date: "))
                .collect();
            assert_eq!(dates.len(), 1, "{version}: {}", res.head);
            let date = httpdate::parse_http_date(dates[0].trim()).expect("an HTTP date");
            // A Date drops the fraction of its second.
            assert!(
                date + Duration::from_millis(1100) >= before && date <= after,
                "round {round} {version}: Date {} sent between {before:?} and {after:?}",
                dates[0]
            );
        }
    }
}
