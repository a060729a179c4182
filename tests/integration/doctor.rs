//! `candado doctor` (issue 19) against the real frameworks, each in the form a newcomer writes
//! and in the form doctor's own report turns it into: the fix lines are taken from the JSON
//! report and applied (pasted into the app, added to the settings, or used as the command
//! line), and then doctor must pass. Every app counts the requests it saw.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::python_apps::python;
use crate::support::client;
use crate::support::free_port;
use crate::support::server::{BIN, Candado};

const APPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/apps");
/// `DOCTOR_MAX_REQUESTS` in src/config/defaults.rs.
const MAX_REQUESTS: usize = 12;

/// A Python app, killed when dropped, that logs each request it sees to `log`.
struct App {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for App {
    /// SIGTERM first: gunicorn's master then stops its workers, which would otherwise keep
    /// the port for a while after a SIGKILL.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    fn start(args: &[&str], port: u16, env: &[(&str, &str)]) -> App {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("requests.log");
        let child = Command::new(python())
            .args(args)
            .envs(env.iter().copied())
            .env("DOCTOR_REQUEST_LOG", &log)
            .current_dir(APPS)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let app = App {
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{args:?} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        app
    }

    /// Requests the app saw, per its log.
    fn requests(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }
}

/// Runs `candado doctor --json` with `args`; (exit success, report, stderr).
fn doctor(args: &[&str]) -> (bool, Value, String) {
    let data = tempfile::tempdir().unwrap();
    doctor_in(data.path(), args)
}

/// As `doctor`, with this data folder (where running instances are found).
fn doctor_in(data: &Path, args: &[&str]) -> (bool, Value, String) {
    let mut child = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .arg("--json")
        .env("CANDADO_DATA_DIR", data)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("candado doctor {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON report ({e}):\n{stdout}\n{stderr}"));
    (out.status.success(), report, stderr)
}

fn app_report(report: &Value) -> &Value {
    &report["apps"][0]
}

/// (check, status) of every finding.
fn statuses(report: &Value) -> Vec<(String, String)> {
    app_report(report)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn problems(report: &Value) -> Vec<String> {
    let mut p: Vec<String> = statuses(report)
        .into_iter()
        .filter(|(_, s)| s == "problem")
        .map(|(c, _)| c)
        .collect();
    p.dedup();
    p
}

/// The fix lines for `place`, in report order, each once.
fn fix_lines(report: &Value, place: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for f in app_report(report)["findings"].as_array().unwrap() {
        if f["fix"]["place"] == place {
            for l in f["fix"]["lines"].as_array().unwrap() {
                let l = l.as_str().unwrap().to_owned();
                if !lines.contains(&l) {
                    lines.push(l);
                }
            }
        }
    }
    lines
}

fn write_fix(dir: &Path, lines: &[String]) -> PathBuf {
    let file = dir.join("fix.py");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    file
}

fn assert_bounded(app: &App, report: &Value) {
    let seen = app.requests();
    assert!(seen <= MAX_REQUESTS, "the app saw {seen} requests");
    assert_eq!(
        app_report(report)["requests"].as_u64().unwrap() as usize,
        seen,
        "doctor counts what the app saw"
    );
}

fn assert_passes(ok: bool, report: &Value, stderr: &str) {
    assert!(
        ok && problems(report).is_empty(),
        "{}\n{stderr}",
        serde_json::to_string_pretty(report).unwrap()
    );
}

#[test]
fn flask_without_proxyfix_gets_the_lines_that_make_doctor_pass() {
    let (port, https) = (free_port(), free_port());
    let (p, to, from) = (
        port.to_string(),
        format!("127.0.0.1:{port}"),
        format!("app.test:{https}"),
    );
    let app = App::start(&["doctor_flask.py", &p, "127.0.0.1"], port, &[]);
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from]);
    assert!(!ok, "doctor exits non-zero when something breaks");
    assert_eq!(app_report(&report)["framework"], "flask");
    assert_eq!(app_report(&report)["server"], "werkzeug");
    assert_eq!(
        problems(&report),
        ["http_urls", "cookies", "mixed_content"],
        "{report:#}"
    );
    assert_bounded(&app, &report);
    let lines = fix_lines(&report, "where the app is created");
    assert_eq!(
        lines,
        [
            "from werkzeug.middleware.proxy_fix import ProxyFix",
            "app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)",
            r#"app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")"#,
        ]
    );
    drop(app);
    let dir = tempfile::tempdir().unwrap();
    let fix = write_fix(dir.path(), &lines);
    let app = App::start(
        &["doctor_flask.py", &p, "127.0.0.1", fix.to_str().unwrap()],
        port,
        &[],
    );
    let (ok, report, stderr) = doctor(&["--to", &to, "--from", &from]);
    assert_passes(ok, &report, &stderr);
    // ProxyFix believes anyone who reaches the app: fine while that is only this machine.
    assert!(statuses(&report).contains(&("forwarded_trust".into(), "note".into())));
    assert_bounded(&app, &report);
}

#[test]
fn django_without_the_proxy_settings_gets_the_settings_that_make_doctor_pass() {
    let (port, https) = (free_port(), free_port());
    let (p, to, from) = (
        port.to_string(),
        format!("127.0.0.1:{port}"),
        format!("app.test:{https}"),
    );
    let app = App::start(&["doctor_django.py", &p], port, &[]);
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from]);
    assert!(!ok);
    assert_eq!(app_report(&report)["framework"], "django");
    assert_eq!(
        problems(&report),
        ["http_urls", "cookies", "csrf"],
        "{report:#}"
    );
    let lines = fix_lines(&report, "settings.py");
    assert_eq!(
        lines,
        [
            r#"SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")"#.to_owned(),
            format!(r#"CSRF_TRUSTED_ORIGINS = ["https://app.test:{https}"]"#),
            "SESSION_COOKIE_SECURE = True".to_owned(),
            "CSRF_COOKIE_SECURE = True".to_owned(),
            r#"SESSION_COOKIE_SAMESITE = "Lax""#.to_owned(),
        ]
    );
    drop(app);
    let dir = tempfile::tempdir().unwrap();
    let fix = write_fix(dir.path(), &lines);
    let app = App::start(&["doctor_django.py", &p, fix.to_str().unwrap()], port, &[]);
    let (ok, report, stderr) = doctor(&["--to", &to, "--from", &from]);
    assert_passes(ok, &report, &stderr);
    assert!(statuses(&report).contains(&("csrf".into(), "ok".into())));
    assert_bounded(&app, &report);
}

#[test]
fn django_redirecting_to_https_loops_until_it_reads_x_forwarded_proto() {
    let (port, https) = (free_port(), free_port());
    let (p, to, from) = (
        port.to_string(),
        format!("127.0.0.1:{port}"),
        format!("app.test:{https}"),
    );
    let app = App::start(&["doctor_django.py", &p, "--ssl-redirect"], port, &[]);
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from]);
    assert!(!ok);
    assert!(
        problems(&report).contains(&"redirect_loop".to_owned()),
        "{report:#}"
    );
    let lines = fix_lines(&report, "settings.py");
    assert!(
        lines.contains(
            &r#"SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")"#.to_owned()
        )
    );
    drop(app);
    let dir = tempfile::tempdir().unwrap();
    let fix = write_fix(dir.path(), &lines);
    let app = App::start(
        &[
            "doctor_django.py",
            &p,
            fix.to_str().unwrap(),
            "--ssl-redirect",
        ],
        port,
        &[],
    );
    let (_, report, _) = doctor(&["--to", &to, "--from", &from]);
    // The loop hid the page; now that it shows, its cookies are judged too (see the test above).
    assert!(
        statuses(&report).contains(&("redirect_loop".into(), "ok".into())),
        "{report:#}"
    );
    assert!(!problems(&report).contains(&"redirect_loop".to_owned()));
    assert_bounded(&app, &report);
}

/// The uvicorn command line: `--host HOST --port PORT` and any extra flags.
fn uvicorn(port: u16, flags: &[&str], env: &[(&str, &str)]) -> App {
    let mut args = vec![
        "-m",
        "uvicorn",
        "doctor_fastapi:asgi",
        "--log-level",
        "warning",
        "--ws",
        "websockets",
    ];
    args.extend_from_slice(flags);
    App::start(&args, port, env)
}

/// The flags of the uvicorn line in the report's fix, after `main:app`.
fn uvicorn_fix_flags(report: &Value) -> Vec<String> {
    let lines = fix_lines(report, "the command line");
    let line = lines
        .iter()
        .find(|l| l.starts_with("uvicorn main:app "))
        .unwrap_or_else(|| panic!("no uvicorn fix in {report:#}"));
    line.split_whitespace().skip(2).map(str::to_owned).collect()
}

#[test]
fn fastapi_without_proxy_headers_gets_the_uvicorn_flags_that_make_doctor_pass() {
    let (port, https) = (free_port(), free_port());
    let (p, to, from) = (
        port.to_string(),
        format!("127.0.0.1:{port}"),
        format!("app.test:{https}"),
    );
    let stream = ["--ws", "/ws", "--sse", "/sse"];
    let app = uvicorn(
        port,
        &["--host", "127.0.0.1", "--port", &p, "--no-proxy-headers"],
        &[],
    );
    let mut args = vec!["--to", &to, "--from", &from];
    args.extend_from_slice(&stream);
    let (ok, report, _) = doctor(&args);
    assert!(!ok);
    assert_eq!(app_report(&report)["framework"], "fast_api");
    assert_eq!(app_report(&report)["server"], "uvicorn");
    assert_eq!(problems(&report), ["http_urls"], "{report:#}");
    assert_bounded(&app, &report);
    let flags = uvicorn_fix_flags(&report);
    assert_eq!(
        flags.join(" "),
        format!("--host 127.0.0.1 --port {port} --proxy-headers --forwarded-allow-ips 127.0.0.1")
    );
    drop(app);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = uvicorn(port, &flags, &[]);
    let (ok, report, stderr) = doctor(&args);
    assert_passes(ok, &report, &stderr);
    let streaming: Vec<_> = statuses(&report)
        .into_iter()
        .filter(|(c, _)| c == "streaming")
        .collect();
    assert_eq!(
        streaming,
        [
            ("streaming".to_owned(), "ok".to_owned()),
            ("streaming".to_owned(), "ok".to_owned())
        ],
        "WebSocket upgrade and events one by one"
    );
    assert_bounded(&app, &report);
}

#[test]
fn events_held_back_by_a_buffering_middleware_are_found() {
    let port = free_port();
    let (p, to) = (port.to_string(), format!("127.0.0.1:{port}"));
    let from = format!("app.test:{}", free_port());
    let _app = uvicorn(
        port,
        &["--host", "127.0.0.1", "--port", &p],
        &[("DOCTOR_BUFFER", "1")],
    );
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from, "--sse", "/sse"]);
    assert!(!ok);
    let finding = app_report(&report)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "streaming")
        .unwrap();
    assert_eq!(finding["status"], "problem", "{finding:#}");
    assert!(
        finding["saw"].as_str().unwrap().contains("all together"),
        "{finding:#}"
    );
}

#[test]
fn a_websocket_upgrade_uvicorn_cannot_accept_is_found_with_the_flag_that_enables_it() {
    let port = free_port();
    let (p, to) = (port.to_string(), format!("127.0.0.1:{port}"));
    let from = format!("app.test:{}", free_port());
    // `--ws none` comes after the helper's `--ws websockets`: the last one wins.
    let _app = uvicorn(
        port,
        &["--host", "127.0.0.1", "--port", &p, "--ws", "none"],
        &[],
    );
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from, "--ws", "/ws"]);
    assert!(!ok);
    let finding = app_report(&report)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "streaming")
        .unwrap();
    assert_eq!(finding["status"], "problem", "{finding:#}");
    assert!(
        finding["saw"].as_str().unwrap().contains("instead of 101"),
        "{finding:#}"
    );
    assert_eq!(
        finding["fix"]["lines"][1],
        format!("uvicorn main:app --host 127.0.0.1 --port {port} --ws websockets")
    );
}

/// Check 7 needs an app bound to every interface: it is found from the kernel's socket
/// table, and nothing connects to it except on 127.0.0.1/127.0.0.2.
#[test]
fn uvicorn_on_every_interface_trusting_everyone_is_told_to_bind_loopback_and_trust_candado() {
    let (port, https) = (free_port(), free_port());
    let (p, to, from) = (
        port.to_string(),
        format!("127.0.0.1:{port}"),
        format!("app.test:{https}"),
    );
    let app = uvicorn(
        port,
        &[
            "--host",
            "0.0.0.0",
            "--port",
            &p,
            "--proxy-headers",
            "--forwarded-allow-ips",
            "*",
        ],
        &[],
    );
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from]);
    assert!(!ok);
    assert_eq!(
        problems(&report),
        ["forwarded_trust", "listen_address"],
        "{report:#}"
    );
    let log = std::fs::read_to_string(&app.log).unwrap();
    assert!(
        log.lines().any(|l| l.starts_with("127.0.0.2 ")),
        "the forged request came from 127.0.0.2: {log}"
    );
    let flags = uvicorn_fix_flags(&report);
    drop(app);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let app = uvicorn(port, &flags, &[]);
    let (ok, report, stderr) = doctor(&["--to", &to, "--from", &from]);
    assert_passes(ok, &report, &stderr);
    assert_bounded(&app, &report);
}

#[test]
fn the_report_for_a_person_names_the_framework_and_the_fix() {
    let (port, https) = (free_port(), free_port());
    let p = port.to_string();
    let _app = App::start(&["doctor_flask.py", &p, "127.0.0.1"], port, &[]);
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "doctor",
            "--to",
            &format!(":{port}"),
            "--from",
            &format!("app.test:{https}"),
        ])
        .env("CANDADO_DATA_DIR", data.path())
        .output()
        .unwrap();
    let text = crate::support::output_text(&out);
    assert!(!out.status.success());
    assert!(text.contains("Flask on Werkzeug"), "{text}");
    assert!(
        text.contains("app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)"),
        "{text}"
    );
    assert!(!text.contains("\x1b["), "no colours when not on a terminal");
}

/// `candado proxy` for app.test on `https` in front of the app on `app_port`, with a test CA
/// and its admin listener on `admin`.
fn proxy(https: u16, app_port: u16, admin: u16) -> (crate::support::pki::TestPki, Candado) {
    let pki = crate::support::pki::TestPki::new();
    let leaf = pki.leaf("app", &["app.test"]);
    let admin = format!("127.0.0.1:{admin}");
    let cert = (leaf.cert.as_path(), leaf.key.as_path());
    let server = crate::support::server::proxy_app_test(
        https,
        app_port,
        cert,
        pki.dir.path(),
        &["--admin", &admin],
    );
    (pki, server)
}

/// Without being asked: an app's `http://` redirect on the site's own address reaches the
/// browser as `https://`, and the log says once which setting the app is missing, and once
/// that its cookies lack Secure.
#[test]
fn the_apps_http_redirects_become_https_and_the_log_names_the_fix_once() {
    let (port, https) = (free_port(), free_port());
    let _app = App::start(
        &["doctor_flask.py", &port.to_string(), "127.0.0.1"],
        port,
        &[],
    );
    let admin = free_port();
    let (pki, server) = proxy(https, port, admin);
    let resolve = format!("app.test:{https}:127.0.0.1");
    let get = |path: &str| {
        client::curl_raw(
            &format!("https://app.test:{https}{path}"),
            &[
                "--resolve",
                &resolve,
                "--cacert",
                pki.ca_path.to_str().unwrap(),
            ],
        )
    };
    for _ in 0..2 {
        let res = get("/login");
        assert_eq!(res.status, 302);
        assert_eq!(
            res.header("location"),
            Some(format!("https://app.test:{https}/landing"))
        );
        let res = get("/");
        assert!(
            res.head.to_ascii_lowercase().contains("; secure"),
            "{}",
            res.head
        );
    }
    let proxyfix = "app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)";
    assert!(
        server.wait_log_line(&["redirects to http://", proxyfix], Duration::from_secs(5)),
        "{}",
        server.log()
    );
    assert!(server.wait_log_line(
        &["without Secure", "SESSION_COOKIE_SECURE=True"],
        Duration::from_secs(5)
    ));
    let log = server.log();
    assert_eq!(log.matches(proxyfix).count(), 1, "once per route:\n{log}");
    assert_eq!(log.matches("without Secure").count(), 1, "{log}");
    let metrics = client::curl_raw(&format!("http://127.0.0.1:{admin}/metrics"), &[]);
    assert!(
        metrics
            .text()
            .contains("candado_proxy_redirects_upgraded_total{site=\"app.test\",route=\"/\"} 2"),
        "{}",
        metrics.text()
    );
}

#[test]
fn gunicorn_trusting_every_address_on_every_interface_gets_its_own_flags() {
    let (port, https) = (free_port(), free_port());
    let bind = format!("0.0.0.0:{port}");
    let (to, from) = (format!("127.0.0.1:{port}"), format!("app.test:{https}"));
    let gunicorn = |bind: &str, allow: &str| {
        App::start(
            &[
                "-m",
                "gunicorn",
                "--bind",
                bind,
                "--forwarded-allow-ips",
                allow,
                "frameworks_flask:plain",
            ],
            port,
            &[],
        )
    };
    let app = gunicorn(&bind, "*");
    let (ok, report, _) = doctor(&["--to", &to, "--from", &from]);
    assert!(!ok);
    assert_eq!(app_report(&report)["server"], "gunicorn");
    assert_eq!(app_report(&report)["framework"], "flask");
    assert_eq!(
        problems(&report),
        ["forwarded_trust", "listen_address"],
        "{report:#}"
    );
    let lines = fix_lines(&report, "the command line");
    assert_eq!(
        lines,
        [format!(
            "gunicorn --bind 127.0.0.1:{port} --forwarded-allow-ips 127.0.0.1 app:app"
        )]
    );
    drop(app);
    let flags: Vec<&str> = lines[0].split_whitespace().collect();
    let app = gunicorn(flags[2], flags[4]);
    let (ok, report, stderr) = doctor(&["--to", &to, "--from", &from]);
    assert_passes(ok, &report, &stderr);
    drop(app);
}

/// A config with one site on `https` proxying `/` to the app on `app_port`.
fn config_yaml(pki: &crate::support::pki::TestPki, https: u16, app_port: u16) -> String {
    let leaf = pki.leaf("app", &["app.test"]);
    format!(
        "sites:\n  - names: [app.test]\n    listen: 127.0.0.1:{https}\n    certificate: {{cert: {}, key: {}}}\n    proxy:\n      - path: /\n        to: http://127.0.0.1:{app_port}\n",
        leaf.cert.display(),
        leaf.key.display()
    )
}

#[test]
fn doctor_c_checks_each_route_of_a_config_starting_candado_only_when_none_runs() {
    let (port, https) = (free_port(), free_port());
    let app = App::start(
        &["doctor_flask.py", &port.to_string(), "127.0.0.1"],
        port,
        &[],
    );
    let pki = crate::support::pki::TestPki::new();
    let yaml = config_yaml(&pki, https, port);
    // Nothing runs for this config: doctor starts candado for it, and stops it after.
    let file = pki.path("candado.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let (ok, report, _) = doctor(&["-c", file.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(
        app_report(&report)["public"],
        format!("https://app.test:{https}/")
    );
    assert_eq!(
        problems(&report),
        ["http_urls", "cookies", "mixed_content"],
        "{report:#}"
    );
    assert_bounded(&app, &report);
    let before = app.requests();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", https)).is_err(),
        "the temporary candado is gone"
    );
    // A candado runs for the config: doctor goes through it (its log shows the app's cookie).
    let server = Candado::from_yaml(&yaml, &[]);
    let file = server.dir.path().join("candado.yaml");
    let (ok, report, stderr) = doctor_in(&server.data_dir(), &["-c", file.to_str().unwrap()]);
    assert!(!ok, "{stderr}");
    assert_eq!(problems(&report), ["http_urls", "cookies", "mixed_content"]);
    assert!(
        server.wait_log("without Secure", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    assert_eq!(
        app.requests() - before,
        app_report(&report)["requests"].as_u64().unwrap() as usize
    );
}
