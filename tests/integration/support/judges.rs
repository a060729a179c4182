//! Servers with chosen TLS set-ups for `candado check` to grade (openssl s_server, nginx), and
//! sslyze as an independent judge of what they accept. Every server binds 127.0.0.1 on a free
//! port, every wait is bounded, and each process is killed when its handle is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::free_port;

/// A test server process listening on `port`.
pub struct Server {
    child: Child,
    pub port: u16,
    _dir: Option<TempDir>,
}

impl Drop for Server {
    /// SIGTERM first, so that nginx's master stops its workers (SIGKILL would leave them
    /// running, orphaned); SIGKILL after 2 s for anything that ignores it.
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw);
        if let Some(pid) = pid {
            let _ = kill_process(pid, Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(child: &mut Child, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 10 s");
}

/// `openssl s_server -www` with a certificate chain file and key, plus `args`
/// (e.g. `-min_protocol TLSv1 -cipher ALL:@SECLEVEL=0`).
pub fn openssl_server(cert: &Path, key: &Path, args: &[&str]) -> Server {
    let port = free_port();
    let mut child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed by scripts/test");
    wait_for_port(&mut child, port, "openssl s_server");
    Server {
        child,
        port,
        _dir: None,
    }
}

/// nginx with a strong configuration (TLS 1.2 and 1.3, ECDHE AEAD suites, HSTS for two
/// years) on an HTTPS port, and an http:// port that redirects to it. Its one flaw: a cookie
/// without the Secure flag.
pub struct Nginx {
    pub https: Server,
    pub http_port: u16,
}

pub fn nginx_strong(cert: &Path, key: &Path) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let (https, http) = (free_port(), free_port());
    let d = dir.path().display();
    let conf = format!(
        r#"worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{http};
        return 301 https://$host:{https}$request_uri;
    }}
    server {{
        listen 127.0.0.1:{https} ssl http2;
        server_name test.example;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
        ssl_prefer_server_ciphers on;
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
        add_header Set-Cookie "session=abc; Path=/; HttpOnly" always;
        location / {{ return 200 "hello\n"; }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(nginx_binary());
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg("stderr")
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // One -g only: nginx keeps the last one it is given, and without `daemon off` it forks a
    // master this handle cannot kill (the cause of nginx processes outliving the tests).
    let mut globals = format!(
        "daemon off; pid {}/nginx.pid; error_log stderr;",
        dir.path().display()
    );
    if is_root() {
        // Workers run as nobody: let them read nothing but what the master opens.
        globals.push_str(" user root;");
    }
    cmd.arg("-g").arg(globals);
    let mut child = cmd.spawn().expect("nginx is installed by scripts/test");
    wait_for_port(&mut child, https, "nginx");
    Nginx {
        https: Server {
            child,
            port: https,
            _dir: Some(dir),
        },
        http_port: http,
    }
}

fn is_root() -> bool {
    rustix::process::getuid().is_root()
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

fn python_bin(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin")).join(name);
    assert!(
        p.exists(),
        "no {} in the venv: run scripts/test, which creates it",
        p.display()
    );
    p
}

/// sslyze's JSON scan result for 127.0.0.1:`port` (about a second per server).
pub fn sslyze(port: u16) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sslyze.json");
    let status = Command::new(python_bin("sslyze"))
        .arg(format!("--json_out={}", out.display()))
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    // Exit code 1 means "not Mozilla-compliant": the scan itself still ran.
    assert!(status.code().is_some(), "sslyze was killed");
    // The full JSON holds RSA moduli as integers too large for serde_json: keep what we
    // compare, with Python's unbounded integers.
    let keep = "import json,sys\n\
        r = json.load(open(sys.argv[1]))['server_scan_results'][0]['scan_result']\n\
        json.dump({k: v for k, v in r.items() if k.endswith('_cipher_suites') or k == 'elliptic_curves'}, sys.stdout)";
    let slim = Command::new(python_bin("python"))
        .args(["-c", keep])
        .arg(&out)
        .output()
        .unwrap();
    assert!(slim.status.success(), "{}", super::output_text(&slim));
    serde_json::from_slice(&slim.stdout).unwrap()
}

/// sslyze's accepted and attempted suite names for a protocol key such as `tls_1_2`.
pub fn sslyze_suites(scan: &Value, key: &str) -> (Vec<String>, Vec<String>) {
    let result = &scan[format!("{key}_cipher_suites")]["result"];
    let names = |field: &str| -> Vec<String> {
        result[field]
            .as_array()
            .unwrap_or_else(|| panic!("sslyze has no {key} {field}: {result}"))
            .iter()
            .map(|s| s["cipher_suite"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let accepted = names("accepted_cipher_suites");
    let mut tried = names("rejected_cipher_suites");
    tried.extend(accepted.clone());
    (accepted, tried)
}

/// sslyze's supported and attempted elliptic curves.
pub fn sslyze_curves(scan: &Value) -> (Vec<String>, Vec<String>) {
    let result = &scan["elliptic_curves"]["result"];
    let names = |field: &str| -> Vec<String> {
        result[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c["name"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let supported = names("supported_curves");
    let mut tried = names("rejected_curves");
    tried.extend(supported.clone());
    (supported, tried)
}

/// h2spec, the HTTP/2 conformance judge, from `../shared/tools/` (Debian has no package).
/// Runs every case (`strict` adds the strict ones) against `127.0.0.1:port` over TLS with
/// `path`; returns its summary line, e.g. `146 tests, 146 passed, 0 skipped, 0 failed`, and
/// its whole output.
pub fn h2spec(port: u16, path: &str, strict: bool) -> (String, String) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/h2spec/h2spec");
    assert!(
        bin.exists(),
        "h2spec is expected at {} (the shared tools beside the repository)",
        bin.display()
    );
    let port = port.to_string();
    let mut args = vec![
        "-t",
        "-k",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-o",
        "5",
        "-P",
        path,
    ];
    if strict {
        args.push("-S");
    }
    let out = Command::new(bin).args(&args).output().unwrap();
    let text = crate::support::output_text(&out);
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains(" tests, "))
        .unwrap_or("")
        .trim()
        .to_owned();
    (summary, text)
}
