//! The real candado binary, started on 127.0.0.1 with port 0 and found again through its
//! "listening" log lines.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_candado");

pub struct Candado {
    child: Child,
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    log: Arc<Mutex<String>>,
    /// Holds the config file and CANDADO_DATA_DIR.
    pub dir: TempDir,
}

impl Candado {
    /// Runs `candado serve -c <yaml>` with extra arguments; waits for its listeners.
    pub fn from_yaml(yaml: &str, args: &[&str]) -> Candado {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("candado.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = command(dir.path());
        cmd.args(["serve", "-c", config.to_str().unwrap()])
            .args(args);
        Candado::spawn(cmd, dir, yaml.contains("http_redirect:"))
    }

    /// Runs the binary with `args` in `cwd`; `expect_http` says whether a redirect listener
    /// will come up too.
    pub fn with_args(args: &[&str], cwd: &Path, dir: TempDir, expect_http: bool) -> Candado {
        Candado::with_args_env(args, &[], cwd, dir, expect_http)
    }

    /// As `with_args`, with extra environment variables.
    pub fn with_args_env(
        args: &[&str],
        env: &[(&str, &str)],
        cwd: &Path,
        dir: TempDir,
        expect_http: bool,
    ) -> Candado {
        let mut cmd = command(dir.path());
        cmd.args(args).envs(env.iter().copied()).current_dir(cwd);
        Candado::spawn(cmd, dir, expect_http)
    }

    fn spawn(mut cmd: Command, dir: TempDir, expect_http: bool) -> Candado {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = log.lock().unwrap().clone();
            let https = listening(&text, "https");
            let http = listening(&text, "http");
            if let Some(https) = https.filter(|_| !expect_http || http.is_some()) {
                return Candado {
                    child,
                    https,
                    http,
                    log,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("candado exited ({status}) before listening:\n{text}");
            }
            assert!(Instant::now() < deadline, "candado did not start:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Candado {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("CANDADO_DATA_DIR", dir.join("data"))
        .env_remove("RUST_LOG");
    cmd
}

/// The address in a "listening" line, in the human or the JSON log format.
fn listening(log: &str, kind: &str) -> Option<SocketAddr> {
    for marker in [
        format!("listening kind={kind} addr="),
        format!("\"kind\":\"{kind}\",\"addr\":\""),
    ] {
        if let Some(i) = log.find(&marker) {
            let rest = &log[i + marker.len()..];
            return rest
                .split(|c: char| c.is_whitespace() || c == '"')
                .next()?
                .parse()
                .ok();
        }
    }
    None
}

/// Runs candado to completion (for start-up failures): exit status, stderr, time taken.
pub fn run_to_exit(args: &[&str], cwd: &Path) -> (ExitStatus, String, Duration) {
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = command(data.path())
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = started + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("candado {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    let text = crate::support::output_text(&out);
    (out.status, text, started.elapsed())
}

/// A one-site config on 127.0.0.1:0 with the given certificate files and root, plus any extra
/// YAML lines for the site (indented by the caller to 4 spaces) and top-level sections.
pub fn site_yaml(
    cert: &Path,
    key: &Path,
    root: &Path,
    site_extra: &str,
    top_extra: &str,
) -> String {
    format!(
        "{top_extra}\nsites:\n  - names: [test.example, '*.wild.example', 127.0.0.1]\n    listen: 127.0.0.1:0\n    certificate: {{cert: {}, key: {}}}\n    root: {}\n{site_extra}\n",
        cert.display(),
        key.display(),
        root.display()
    )
}
