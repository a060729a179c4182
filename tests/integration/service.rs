//! Running as a service (issue 14): the sd_notify protocol as systemd reads it, log files that
//! logrotate can rotate, and what `--version`, `completions` and `man` print.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::pki::TestPki;
use crate::support::server::{BIN, Candado, site_yaml};
use crate::support::{client, output_text};

/// The service manager's end of NOTIFY_SOCKET: a datagram socket, one message per datagram.
struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket { socket, path }
    }

    /// The next message that contains `needle`, with every message read on the way.
    fn wait_for(&self, needle: &str, timeout: Duration) -> (String, Vec<String>) {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            let Ok(n) = self.socket.recv(&mut buf) else {
                continue;
            };
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.contains(needle) {
                return (message, seen);
            }
            seen.push(message);
        }
        panic!("no notify message with {needle} within {timeout:?}; got {seen:?}");
    }
}

/// The value of `KEY=` in a notify message.
fn field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let pki = TestPki::new();
    let leaf = pki.leaf("site", &["test.example"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "up").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let notify = NotifySocket::bind(dir.path());
    let config = dir.path().join("candado.yaml");
    let yaml = site_yaml(&leaf.cert, &leaf.key, root.path(), "", "");
    std::fs::write(&config, &yaml).unwrap();
    let mut server = Candado::with_args_env(
        &["serve", "-c", config.to_str().unwrap()],
        &[("NOTIFY_SOCKET", notify.path.to_str().unwrap())],
        root.path(),
        dir,
        false,
    );

    // READY=1 once the listener is bound and the certificate loaded: the site answers.
    let (ready, _) = notify.wait_for("READY=1", Duration::from_secs(10));
    let status = field(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("serving 1 site; 1 certificate, the first to expire: test.example in "),
        "{ready}"
    );
    assert_eq!(
        client::curl(server.https, &pki.ca_path, "/", &[]).text(),
        "up"
    );

    // SIGHUP (ExecReload): RELOADING=1 with the monotonic clock, then READY=1 again.
    server.signal("HUP");
    let (reloading, _) = notify.wait_for("RELOADING=1", Duration::from_secs(10));
    let usec: u64 = field(&reloading, "MONOTONIC_USEC")
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
    let (ready, _) = notify.wait_for("READY=1", Duration::from_secs(10));
    assert!(
        field(&ready, "STATUS")
            .unwrap_or_default()
            .starts_with("serving 1 site")
    );

    // A broken config: the reload fails, the status says so, and the old one keeps serving.
    std::fs::write(&config, format!("{yaml}\nno_such_key: 1\n")).unwrap();
    server.signal("HUP");
    notify.wait_for("RELOADING=1", Duration::from_secs(10));
    let (ready, _) = notify.wait_for("READY=1", Duration::from_secs(10));
    let status = field(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("reload failed, serving the previous configuration"),
        "{ready}"
    );
    assert_eq!(
        client::curl(server.https, &pki.ca_path, "/", &[]).text(),
        "up"
    );

    // SIGTERM (systemctl stop): STOPPING=1, then a clean exit.
    server.signal("TERM");
    notify.wait_for("STOPPING=1", Duration::from_secs(10));
    let exit = server.wait_exit(Duration::from_secs(15));
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}\n{}",
        server.log()
    );
}

/// candado writing its log to a file: the process, the file and the HTTPS address.
struct FileLogged {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for FileLogged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts candado with `log.file` (relative to the config's folder) and waits for its
/// "listening" line in that file.
fn start_logging_to_file(pki: &TestPki, root: &Path) -> FileLogged {
    let leaf = pki.leaf("site", &["test.example"]);
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let config = dir.path().join("candado.yaml");
    let top = "log: {file: logs/candado.log}";
    std::fs::write(&config, site_yaml(&leaf.cert, &leaf.key, root, "", top)).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "-c", config.to_str().unwrap()])
        .env("CANDADO_DATA_DIR", dir.path().join("data"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = logs.join("candado.log");
    let marker = "listening kind=https addr=";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(i) = text.find(marker) {
            let addr = text[i + marker.len()..]
                .split_whitespace()
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no address in:\n{text}"));
            return FileLogged {
                child,
                addr,
                log,
                _dir: dir,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            panic!("candado exited ({status}):\n{stderr}\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no listening line in {log:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn access_lines(path: &Path, marker: &str) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(marker))
        .count()
}

fn wait_for_file_line(path: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("`{needle}` never reached {path:?}");
}

#[test]
fn after_a_rename_and_sigusr1_the_log_goes_to_a_new_file_and_no_line_is_lost() {
    let pki = TestPki::new();
    let root = tempfile::tempdir().unwrap();
    for i in 0..10 {
        std::fs::write(root.path().join(format!("r{i}.txt")), "up").unwrap();
    }
    let server = start_logging_to_file(&pki, root.path());
    let get = |paths: std::ops::Range<usize>| {
        for i in paths {
            let path = format!("/r{i}.txt");
            assert_eq!(
                client::curl(server.addr, &pki.ca_path, &path, &[]).status,
                200
            );
        }
    };
    let marker = "path=/r";
    get(0..3);
    wait_for_file_line(&server.log, "path=/r2.txt");

    // logrotate: rename, then SIGUSR1. Until the signal, lines still go to the renamed file.
    let rotated = server.log.with_extension("log.1");
    std::fs::rename(&server.log, &rotated).unwrap();
    get(3..5);
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-USR1", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for_file_line(&server.log, "reopened the log file");
    get(5..9);
    wait_for_file_line(&server.log, "path=/r8.txt");

    let (old, new) = (
        access_lines(&rotated, marker),
        access_lines(&server.log, marker),
    );
    assert_eq!(
        (old, new),
        (5, 4),
        "every request logged once, in the right file"
    );
    let text = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        !text.contains("listening"),
        "the new file starts at the reopen:\n{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&server.log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "log files name clients: not world-readable");
}

#[test]
fn a_log_file_that_cannot_be_opened_stops_the_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder/candado.log");
    let out = Command::new(BIN)
        .args([
            "proxy",
            "--to",
            "127.0.0.1:9",
            "--http-port",
            "0",
            "--log-file",
        ])
        .arg(&missing)
        .env("CANDADO_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(&format!("cannot open the log file {}", missing.display())),
        "{text}"
    );
}

#[test]
fn version_names_the_commit_and_the_tls_provider() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("candado {}", env!("CARGO_PKG_VERSION")));
    let commit = lines[1]
        .strip_prefix("commit: ")
        .unwrap_or_else(|| panic!("{text}"));
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    assert!(head.is_empty() || commit == head, "{commit} vs HEAD {head}");
    assert!(
        lines[2].starts_with("TLS: rustls 0.23.")
            && lines[2].ends_with("aws-lc-rs crypto provider"),
        "{text}"
    );
}

#[test]
fn bash_completion_offers_the_commands() {
    // bash itself loads the script and asks it, as pressing Tab after `candado ` does.
    let script = "source <(\"$BIN\" completions bash) && COMP_WORDS=(candado '') COMP_CWORD=1 COMP_LINE='candado ' COMP_POINT=8 && _candado candado '' candado && printf '%s\\n' \"${COMPREPLY[@]}\"";
    let out = Command::new("bash")
        .args(["-c", script])
        .env("BIN", BIN)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let words: Vec<&str> = text.lines().collect();
    for command in ["serve", "proxy", "check", "tunnel", "completions"] {
        assert!(words.contains(&command), "{command} missing from {words:?}");
    }
}

#[test]
fn zsh_and_fish_completions_are_scripts_for_those_shells() {
    for (shell, first) in [("zsh", "#compdef candado"), ("fish", "")] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success() && text.starts_with(first),
            "{shell}:\n{text}"
        );
        assert!(
            text.contains("proxy") && text.contains("log-file"),
            "{shell}"
        );
    }
    let fish = Command::new(BIN)
        .args(["completions", "fish"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c candado"));
}

#[test]
fn the_man_page_renders_without_warnings_and_lists_the_commands() {
    let page = Command::new(BIN).arg("man").output().unwrap();
    assert!(page.status.success());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("candado.1");
    std::fs::write(&file, &page.stdout).unwrap();
    // man(1) as a user runs it; --warnings makes groff report any roff mistake on stderr.
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(&file)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_FORMATTING", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (text, warnings) = (
        without_overstrike(&String::from_utf8_lossy(&out.stdout)),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "{warnings}"
    );
    for expected in [
        "candado - Puts a padlock",
        "SUBCOMMANDS",
        "proxy",
        "completions",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }

    let pages = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["man", "--out"])
        .arg(pages.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    for page in ["candado.1", "candado-proxy.1", "candado-cert-issue.1"] {
        assert!(pages.path().join(page).is_file(), "{page} missing");
    }
}

/// man's bold and underline as a terminal gets them (`N\x08N`), as plain text.
fn without_overstrike(text: &str) -> String {
    let mut plain = String::new();
    for c in text.chars() {
        match c {
            '\x08' => {
                plain.pop();
            }
            c => plain.push(c),
        }
    }
    plain
}
