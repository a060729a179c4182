//! Basic auth over a whole subtree (static and proxied paths), PyServe's `locations`, and
//! exact-path redirects.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::support::server::{BIN, Candado};
use crate::support::upstream;
use crate::support::{Fixture, client, pki::TestPki};

pub(crate) fn hash(password: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn protected() -> Fixture {
    let up = upstream::start();
    let argon = hash("s3cret");
    assert!(argon.starts_with("$argon2id$"), "{argon}");
    let bcrypt = bcrypt::hash("bobpass", 4).unwrap();
    let site = format!(
        "    proxy:\n      - path: /admin/api\n        to: {}\n    basic_auth:\n      - path: /admin\n        users:\n          alice: '{argon}'\n          bob: '{bcrypt}'\n    redirects:\n      /old: /new?from=old\n",
        up.origin()
    );
    Fixture::start_with_files(&site, "", |root| {
        std::fs::create_dir_all(root.join("admin")).unwrap();
        std::fs::write(root.join("admin/index.html"), "admin page").unwrap();
        std::fs::write(root.join("public.txt"), "public").unwrap();
    })
}

#[test]
fn the_whole_subtree_needs_credentials_static_and_proxied() {
    let f = protected();
    for path in ["/admin/", "/admin/api/users", "/admin"] {
        let res = f.get(path, &[]);
        assert_eq!(res.status, 401, "{path}");
        assert!(
            res.header("www-authenticate")
                .unwrap()
                .starts_with("Basic realm=\"/admin\""),
            "{path}"
        );
    }
    assert_eq!(f.get("/public.txt", &[]).text(), "public");
    assert_eq!(
        f.get("/admin/", &["-u", "alice:s3cret"]).text(),
        "admin page"
    );
    assert_eq!(
        f.get("/admin/", &["-u", "bob:bobpass"]).text(),
        "admin page",
        "bcrypt hash"
    );
    assert_eq!(f.get("/admin/", &["-u", "alice:wrong"]).status, 401);
    assert_eq!(f.get("/admin/", &["-u", "mallory:s3cret"]).status, 401);
}

#[test]
fn credentials_are_not_passed_on_to_the_application() {
    let f = protected();
    let res = f.get("/admin/api/echo", &["-u", "alice:s3cret"]);
    assert_eq!(res.status, 200);
    assert!(
        !res.text().to_ascii_lowercase().contains("authorization"),
        "{}",
        res.text()
    );
}

#[test]
fn encoded_or_dotted_paths_do_not_slip_past_the_prefix() {
    let f = protected();
    for path in [
        "/%61dmin/",
        "/x/../admin/",
        "//admin/",
        "/admin;x=1/",
        "/%2e/admin/",
        "/%61dmin/api/echo",
    ] {
        let res = f.get(path, &[]);
        assert!(
            res.status == 401 || res.status == 400 || res.status == 404,
            "{path}: {} {}",
            res.status,
            res.text()
        );
        assert!(
            !res.text().contains("admin page") && !res.text().contains("GET "),
            "{path} leaked: {}",
            res.text()
        );
    }
}

#[test]
fn exact_redirects_keep_the_query_byte_for_byte() {
    let f = protected();
    let res = f.get("/old?a=%2F&b=x+y", &[]);
    assert_eq!(res.status, 302);
    assert_eq!(
        res.header("location").as_deref(),
        Some("/new?from=old&a=%2F&b=x+y")
    );
    assert_eq!(f.get("/old/sub", &[]).status, 404, "exact paths only");
}

#[test]
fn pyserve_locations_protect_with_plain_credentials_from_the_environment() {
    let pki = TestPki::new();
    let leaf = pki.leaf("py", &["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static/admin")).unwrap();
    std::fs::write(dir.path().join("static/admin/index.html"), "py admin").unwrap();
    let port = crate::support::free_port();
    let config = format!(
        "server:\n  port: {port}\n  redirect_instructions:\n    - /home: /index.html\n  locations:\n    /admin:\n      auth:\n        type: basic\n        username: admin\n        password: ${{CANDADO_TEST_ADMIN_PASS}}\nhttp:\n  static_dir: ./static\nssl:\n  enabled: true\n  cert_file: {}\n  key_file: {}\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = [("CANDADO_TEST_ADMIN_PASS", "from-env")];
    let server = Candado::with_args_env(&["-c", "config.yaml"], &env, dir.path(), data, false);
    let url = |p: &str| format!("https://localhost:{}{p}", server.https.port());
    let ca = pki.ca_path.to_str().unwrap();
    assert_eq!(
        client::curl_raw(&url("/admin/"), &["--cacert", ca]).status,
        401
    );
    assert_eq!(
        client::curl_raw(&url("/admin/"), &["--cacert", ca, "-u", "admin:from-env"]).text(),
        "py admin"
    );
    let res = client::curl_raw(&url("/home?x=%20"), &["--cacert", ca]);
    assert_eq!(
        (res.status, res.header("location")),
        (302, Some("/index.html?x=%20".to_owned()))
    );
}
