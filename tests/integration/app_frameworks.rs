//! "Your app behind candado" (README): the settings it gives for each framework, checked
//! against the real framework behind `candado proxy`. Each test shows the app getting it
//! wrong without the setting and right with it, so the README cannot drift from the truth.

use std::path::PathBuf;

use crate::python_apps::{App, spawn};
use crate::support::client::{self, Response};
use crate::support::free_port;
use crate::support::pki::TestPki;
use crate::support::server::{Candado, proxy_app_test};

/// `candado proxy` for app.test on a known port in front of the app on `app_port`.
struct Front {
    pki: TestPki,
    _server: Candado,
    https: u16,
}

impl Front {
    fn new(https: u16, app_port: u16) -> Front {
        let pki = TestPki::new();
        let leaf = pki.leaf("app", &["app.test"]);
        let cert = (leaf.cert.as_path(), leaf.key.as_path());
        let server = proxy_app_test(https, app_port, cert, pki.dir.path(), &[]);
        Front {
            pki,
            _server: server,
            https,
        }
    }

    fn origin(&self) -> String {
        format!("https://app.test:{}", self.https)
    }

    fn get(&self, path: &str, extra: &[&str]) -> Response {
        let resolve = format!("app.test:{}:127.0.0.1", self.https);
        let mut args = vec![
            "--resolve",
            &resolve,
            "--cacert",
            self.pki.ca_path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        client::curl_raw(&format!("{}{path}", self.origin()), &args)
    }
}

fn flask(kind: &str) -> App {
    let port = free_port();
    spawn(&["frameworks_flask.py", &port.to_string(), kind], port)
}

#[test]
fn flask_builds_https_urls_only_with_proxyfix() {
    let https = free_port();
    let app = flask("plain");
    let front = Front::new(https, app.1);
    let text = front.get("/", &[]).text();
    assert_eq!(
        text,
        format!("url=http://app.test:{https}/ secure=False"),
        "without ProxyFix"
    );
    let app = flask("proxyfix");
    let front = Front::new(free_port(), app.1);
    let text = front.get("/", &[]).text();
    assert_eq!(text, format!("url={}/ secure=True", front.origin()));
}

#[test]
fn gunicorn_trusts_x_forwarded_proto_from_the_addresses_it_is_told() {
    let gunicorn = |allow: &str| {
        let port = free_port();
        let bind = format!("127.0.0.1:{port}");
        spawn(
            &[
                "-m",
                "gunicorn",
                "--bind",
                &bind,
                "--forwarded-allow-ips",
                allow,
                "frameworks_flask:plain",
            ],
            port,
        )
    };
    // Flask without ProxyFix: gunicorn itself reads X-Forwarded-Proto from trusted peers.
    let app = gunicorn("127.0.0.1");
    let front = Front::new(free_port(), app.1);
    assert_eq!(
        front.get("/", &[]).text(),
        format!("url={}/ secure=True", front.origin())
    );
    let app = gunicorn("192.0.2.1");
    let front = Front::new(free_port(), app.1);
    assert_eq!(
        front.get("/", &[]).text(),
        format!("url=http://app.test:{}/ secure=False", front.https),
        "candado's address not in --forwarded-allow-ips"
    );
}

#[test]
fn uvicorn_needs_candados_address_in_forwarded_allow_ips() {
    let uvicorn = |extra: &[&str]| {
        let port = free_port();
        let p = port.to_string();
        let mut args = vec![
            "-m",
            "uvicorn",
            "fastapi_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            &p,
            "--log-level",
            "warning",
        ];
        args.extend_from_slice(extra);
        spawn(&args, port)
    };
    let app = uvicorn(&["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]);
    let front = Front::new(free_port(), app.1);
    assert_eq!(
        front
            .get("/", &["-H", "X-Forwarded-For: 203.0.113.9"])
            .text(),
        format!("url={}/ client=127.0.0.1", front.origin()),
        "candado replaces a client's own X-Forwarded-For with the real peer"
    );
    let app = uvicorn(&["--proxy-headers", "--forwarded-allow-ips", "192.0.2.1"]);
    let front = Front::new(free_port(), app.1);
    assert_eq!(
        front.get("/", &[]).text(),
        format!("url=http://app.test:{}/ client=127.0.0.1", front.https)
    );
}

fn django(kind: &str, origin: &str) -> App {
    let port = free_port();
    spawn(&["django_app.py", &port.to_string(), kind, origin], port)
}

/// GET / then POST /post with the CSRF cookie and token, as a browser form on the site would.
fn django_form_post(front: &Front) -> (String, Response) {
    let jar: PathBuf = front.pki.path("cookies");
    let jar = jar.to_str().unwrap();
    let page = front.get("/", &["-c", jar]).text();
    let token = page
        .split_whitespace()
        .find_map(|w| w.strip_prefix("token="))
        .unwrap()
        .to_owned();
    let origin = format!("Origin: {}", front.origin());
    let referer = format!("Referer: {}/", front.origin());
    let form = format!("csrfmiddlewaretoken={token}&note=hello");
    let res = front.get(
        "/post",
        &["-b", jar, "-H", &origin, "-H", &referer, "--data", &form],
    );
    (page, res)
}

#[test]
fn django_is_secure_and_accepts_its_forms_with_the_two_settings() {
    let https = free_port();
    let origin = format!("https://app.test:{https}");
    let app = django("plain", &origin);
    let front = Front::new(https, app.1);
    let (page, res) = django_form_post(&front);
    assert!(
        page.starts_with(&format!("secure=False url=http://app.test:{https}/")),
        "{page}"
    );
    assert_eq!(res.status, 403, "CSRF refuses the form: {}", res.text());

    let https = free_port();
    let origin = format!("https://app.test:{https}");
    let app = django("proxy", &origin);
    let front = Front::new(https, app.1);
    let (page, res) = django_form_post(&front);
    assert!(
        page.starts_with(&format!("secure=True url={origin}/")),
        "{page}"
    );
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.text(), "posted hello");
}
