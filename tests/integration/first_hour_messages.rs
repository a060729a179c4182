//! Issue 15, "the first hour": messages that must tell the whole story. Every unknown key in
//! a config at once, PyServe keys candado does not read, and several instances on one data
//! folder (each with its own pid file and metrics file, `candado reload` choosing among them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::output_text;
use crate::support::server::{BIN, Candado, run_to_exit};

/// Three typos in three sections, one of them inside a flow mapping.
const THREE_TYPOS: &str = "timeout: {handshake: 5s}\nlog: {fromat: json}\nsites:\n  - names: [localhost]\n    listen: 127.0.0.1:0\n    hstss: {max_age: 1d}\n";

#[test]
fn config_check_and_serve_report_every_unknown_key_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("candado.yaml");
    std::fs::write(&file, THREE_TYPOS).unwrap();
    let f = file.to_str().unwrap();
    for args in [vec!["config", "check", f], vec!["serve", "-c", f]] {
        let (status, text, _) = run_to_exit(&args, dir.path());
        assert_eq!(status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains("3 problems found"), "{args:?}: {text}");
        for (line, key, hint) in [
            (1, "timeout", "did you mean `timeouts`"),
            (2, "log.fromat", "did you mean `format`"),
            (6, "sites[0].hstss", "did you mean `hsts`"),
        ] {
            let short = key.rsplit(['.', ']']).next().unwrap();
            let want = format!("{f}:{line}: {key}: unknown field `{short}`");
            let found = text.lines().find(|l| l.contains(&want));
            assert!(found.is_some(), "{args:?}: no `{want}` in:\n{text}");
            assert!(found.unwrap().contains(hint), "{args:?}: {text}");
        }
    }
}

#[test]
fn pyserve_logging_keys_candado_does_not_read_are_named_with_what_it_does_instead() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        "server:\n  host: 127.0.0.1\n  port: 0\nlogging:\n  level: INFO\n  log_file: ./logs/pyserve.log\n  use_rotation: true\n",
    )
    .unwrap();
    let (status, text, _) = run_to_exit(&["config", "check", file.to_str().unwrap()], dir.path());
    assert!(status.success(), "{text}");
    assert!(
        text.contains("logging.log_file is not read: candado logs to standard error; use --log-file FILE or `log: {file: …}` in a candado config"),
        "{text}"
    );
    assert!(text.contains("logging.use_rotation is not read"), "{text}");
    assert!(
        !text.contains("logging.level"),
        "INFO needs no warning: {text}"
    );
}

/// `candado reload ARGS` against the data folder `data`.
fn reload(data: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .arg("reload")
        .args(args)
        .env("CANDADO_DATA_DIR", data)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (out.status.code(), output_text(&out))
}

/// An instance serving `name` from its own config file in `configs`, on the shared `data`.
fn instance(configs: &Path, data: &Path, name: &str) -> (Candado, PathBuf) {
    let file = configs.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!("sites:\n  - names: [{name}.localhost]\n    listen: 127.0.0.1:0\n"),
    )
    .unwrap();
    let server = Candado::with_args_env(
        &["serve", "-c", file.to_str().unwrap()],
        &[("CANDADO_DATA_DIR", data.to_str().unwrap())],
        configs,
        tempfile::tempdir().unwrap(),
        false,
    );
    (server, file)
}

/// The text of every `metrics*.prom` file in `data`.
fn all_metrics(data: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(data).unwrap().map_while(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("metrics") && name.ends_with(".prom") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

#[test]
fn instances_on_one_data_folder_each_keep_their_pid_file_and_metrics() {
    let configs = tempfile::tempdir().unwrap();
    let data = configs.path().join("data");
    let (mut a, _) = instance(configs.path(), &data, "a");
    let (b, b_file) = instance(configs.path(), &data, "b");
    let (c, c_file) = instance(configs.path(), &data, "c");

    // Every instance's sites are exported, not only the last writer's.
    let started = Instant::now();
    while !["a", "b", "c"]
        .iter()
        .all(|n| all_metrics(&data).contains(&format!("site=\"{n}.localhost\"")))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            all_metrics(&data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Without -c, three candidates: listed with their config files, nothing signalled.
    let (code, text) = reload(&data, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("3 candado instances"), "{text}");
    for n in ["a", "b", "c"] {
        assert!(text.contains(&format!("{n}.yaml")), "{text}");
    }
    assert!(!b.log().contains("SIGHUP received"), "{}", b.log());

    // One stops: the others' pid files stay.
    a.signal("TERM");
    assert!(
        a.wait_exit(Duration::from_secs(10)).is_some(),
        "{}",
        a.log()
    );
    let (code, text) = reload(&data, &["-c", b_file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        b.wait_log("SIGHUP received: reloaded", Duration::from_secs(5)),
        "{}",
        b.log()
    );
    assert!(!c.log().contains("SIGHUP received"), "{}", c.log());
    let (code, text) = reload(&data, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("2 candado instances"), "{text}");
    assert!(!text.contains("a.yaml"), "a has stopped: {text}");

    // A config no instance runs is named as such.
    let (code, text) = reload(&data, &["-c", "/nowhere/x.yaml"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no running candado uses"), "{text}");
    assert!(text.contains(c_file.to_str().unwrap()), "{text}");
}
