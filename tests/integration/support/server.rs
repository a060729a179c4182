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
    /// The HTTPS listener; 0.0.0.0:0 for a candado started with `tunnels_*` and no site.
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    /// Each tunnel's name and address, from its `listening kind=tunnel` line, in log order.
    pub tunnels: Vec<(String, SocketAddr)>,
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

    /// Runs `PROGRAM ARGS… candado serve -c <yaml>` (a wrapper such as `prlimit` that execs
    /// candado, so the pid stays the same).
    pub fn from_yaml_wrapped(wrapper: &[&str], yaml: &str) -> Candado {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("candado.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = Command::new(wrapper[0]);
        cmd.args(&wrapper[1..])
            .arg(BIN)
            .args(["serve", "-c", config.to_str().unwrap()])
            .env("CANDADO_DATA_DIR", dir.path().join("data"))
            .env_remove("RUST_LOG");
        Candado::spawn(cmd, dir, false)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many file descriptors the server holds open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// A line of `/proc/PID/status`, such as `VmHWM`, in kB.
    pub fn status_kb(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time used so far (user + system), in clock ticks (1/100 s).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Runs `candado serve -c <yaml>` for a config with `tunnels:` and waits for `count`
    /// `listening kind=tunnel` lines (sites, if any, are not waited for).
    pub fn tunnels_from_yaml(yaml: &str, count: usize) -> Candado {
        Candado::tunnels_from_yaml_env(yaml, &[], count)
    }

    /// As `tunnels_from_yaml`, with extra environment variables.
    pub fn tunnels_from_yaml_env(yaml: &str, env: &[(&str, &str)], count: usize) -> Candado {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("candado.yaml");
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = command(dir.path());
        cmd.args(["serve", "-c", config.to_str().unwrap()])
            .envs(env.iter().copied());
        Candado::spawn_until(cmd, dir, Ready::Tunnels(count))
    }

    /// Runs the binary with `args` (e.g. `tunnel --listen ...`) and waits for `count` tunnel
    /// lines.
    pub fn tunnels_with_args(args: &[&str], count: usize) -> Candado {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = command(dir.path());
        cmd.args(args).current_dir(dir.path());
        Candado::spawn_until(cmd, dir, Ready::Tunnels(count))
    }

    /// The address of the tunnel named `name` in its `listening` line.
    pub fn tunnel(&self, name: &str) -> SocketAddr {
        self.tunnels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no tunnel {name} in:\n{}", self.log()))
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

    fn spawn(cmd: Command, dir: TempDir, expect_http: bool) -> Candado {
        Candado::spawn_until(cmd, dir, Ready::Https { expect_http })
    }

    fn spawn_until(mut cmd: Command, dir: TempDir, ready: Ready) -> Candado {
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
            let tunnels = tunnel_lines(&text);
            let https = match ready {
                Ready::Https { expect_http } => https.filter(|_| !expect_http || http.is_some()),
                Ready::Tunnels(n) => (tunnels.len() >= n)
                    .then(|| https.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))),
            };
            if let Some(https) = https {
                return Candado {
                    child,
                    https,
                    http,
                    tunnels,
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

    /// Waits until one log line contains every one of `needles`.
    pub fn wait_log_line(&self, needles: &[&str], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_line(needles).is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first log line that contains every one of `needles`.
    pub fn log_line(&self, needles: &[&str]) -> Option<String> {
        self.log()
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
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

/// What `spawn_until` waits for.
#[derive(Clone, Copy)]
enum Ready {
    /// The HTTPS listener, and the HTTP one too when `expect_http`.
    Https { expect_http: bool },
    /// This many `listening kind=tunnel` lines.
    Tunnels(usize),
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

/// Every `listening kind=tunnel addr=ADDR tunnel=NAME` line (human log format), in order.
fn tunnel_lines(log: &str) -> Vec<(String, SocketAddr)> {
    let marker = "listening kind=tunnel addr=";
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(marker)? + marker.len()..];
            let addr = rest.split_whitespace().next()?.parse().ok()?;
            let name = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("tunnel="))
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned();
            Some((name, addr))
        })
        .collect()
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

/// `candado proxy --from app.test:HTTPS --to 127.0.0.1:APP` with the given certificate, run in
/// `cwd`, no redirect listener, and `extra` arguments.
pub fn proxy_app_test(
    https: u16,
    app_port: u16,
    (cert, key): (&Path, &Path),
    cwd: &Path,
    extra: &[&str],
) -> Candado {
    let (to, from) = (format!("127.0.0.1:{app_port}"), format!("app.test:{https}"));
    let mut args = vec![
        "proxy",
        "--to",
        &to,
        "--from",
        &from,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--http-port",
        "0",
    ];
    args.extend_from_slice(extra);
    Candado::with_args(&args, cwd, tempfile::tempdir().unwrap(), false)
}
