//! Issue 12, item 6: crash-safe files. `cert issue`, `ca init` and `cert obtain` (the ACME
//! store) are killed with strace's fault injection at every rename, write, fsync, symlink and
//! unlink they make; after each kill the folder must hold the old pair or the complete new
//! one, and `cert inspect --key` and `serve` must accept it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::pebble::{Options, Pebble};
use crate::support::server::{BIN, Candado};
use crate::support::{free_port, output_text};

/// The system calls a kill is injected at, one group at a time. A group's occurrences are
/// counted together per thread, as strace does.
const SYSCALL_GROUPS: [&str; 5] = [
    "rename,renameat,renameat2",
    "write",
    "fsync,fdatasync",
    "symlink,symlinkat",
    "unlink,unlinkat,rmdir",
];
/// More occurrences than any group has in one command: the loops end before this.
const MAX_OCCURRENCE: u32 = 60;

/// Runs candado under strace, killed (SIGKILL) at the `n`th call of one of `syscalls`;
/// returns whether it ran to the end instead (there were fewer than `n` calls) and its output.
fn run_killed_at(syscalls: &str, n: u32, data: &Path, args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("90")
        .args(["strace", "-f", "-qq", "-o", "/dev/null", "-e"])
        .arg(format!("trace={syscalls}"))
        .arg("-e")
        .arg(format!("inject={syscalls}:signal=SIGKILL:when={n}"))
        .arg(BIN);
    run(cmd, data, args)
}

/// Runs candado to the end, asserting success.
fn run_whole(data: &Path, args: &[&str]) {
    let (ok, text) = run(Command::new(BIN), data, args);
    assert!(ok, "candado {args:?}: {text}");
}

fn run(mut cmd: Command, data: &Path, args: &[&str]) -> (bool, String) {
    let out = cmd
        .args(args)
        .env("CANDADO_DATA_DIR", data)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

/// `candado cert inspect CERT --key KEY --json`, or None when either file is missing.
fn inspect_pair(cert: &Path, key: &Path) -> Option<Value> {
    match (cert.exists(), key.exists()) {
        (false, false) => return None,
        (true, true) => {}
        (c, k) => panic!(
            "half a pair: {} exists: {c}, {} exists: {k}",
            cert.display(),
            key.display()
        ),
    }
    let out = Command::new(BIN)
        .args(["cert", "inspect"])
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} and {} are not a readable pair: {}",
        cert.display(),
        key.display(),
        output_text(&out)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["key_matches"],
        Value::Bool(true),
        "{} does not belong to {}",
        key.display(),
        cert.display()
    );
    Some(report)
}

/// A candado serving the pair, to prove `serve` accepts it.
fn serve_accepts(cert: &Path, key: &Path) {
    let site = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let args = [
        "-p",
        &port,
        "--http-port",
        "0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    drop(Candado::with_args(
        &args,
        site.path(),
        tempfile::tempdir().unwrap(),
        false,
    ));
}

/// Kills `args` at every occurrence of every syscall group; after each kill, `check` sees the
/// folder. Returns how many kills were made.
fn kill_everywhere(data: &Path, args: &[&str], mut check: impl FnMut(&str, u32, &str)) -> u32 {
    let mut kills = 0;
    for syscalls in SYSCALL_GROUPS {
        for n in 1..=MAX_OCCURRENCE {
            let (finished, text) = run_killed_at(syscalls, n, data, args);
            check(syscalls, n, &text);
            if finished {
                break;
            }
            kills += 1;
            assert!(n < MAX_OCCURRENCE, "{syscalls}: still killed at {n}");
        }
    }
    kills
}

#[test]
fn cert_issue_killed_anywhere_leaves_the_old_pair_or_the_new_one() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let args = ["cert", "issue", "app.test", "--out", dir];
    run_whole(data.path(), &args);
    let (cert, key) = (
        out.path().join("app.test.crt"),
        out.path().join("app.test.key"),
    );
    // Any certificate beside its own key is the old pair or the new one: inspect_pair checks
    // that, and that neither file is missing.
    let kills = kill_everywhere(data.path(), &args, |syscalls, n, text| {
        assert!(
            inspect_pair(&cert, &key).is_some(),
            "killed at {syscalls} #{n}: the pair is gone\n{text}"
        );
    });
    assert!(
        kills >= 5,
        "only {kills} kills: is strace tracing anything?"
    );
    serve_accepts(&cert, &key);
}

#[test]
fn ca_init_killed_anywhere_leaves_no_ca_or_a_whole_one() {
    let data = tempfile::tempdir().unwrap();
    let (cert, key) = (data.path().join("ca/ca.crt"), data.path().join("ca/ca.key"));
    let mut fresh = 0;
    let kills = kill_everywhere(data.path(), &["ca", "init"], |_, _, _| {
        // No CA (the next attempt starts over) or a whole one; after a whole one, the next
        // kill starts from an empty folder again.
        if inspect_pair(&cert, &key).is_some() {
            std::fs::remove_dir_all(data.path()).unwrap();
            fresh += 1;
        }
    });
    assert!(kills >= 3, "only {kills} kills");
    assert!(fresh >= 1, "ca init never finished");
    // A CA made after any number of interrupted attempts issues certificates.
    let out = tempfile::tempdir().unwrap();
    let args = [
        "cert",
        "issue",
        "app.test",
        "--out",
        out.path().to_str().unwrap(),
    ];
    run_whole(data.path(), &args);
    serve_accepts(
        &out.path().join("app.test.crt"),
        &out.path().join("app.test.key"),
    );
}

/// The ACME store's folder for `name` under `data`.
fn stored_cert_dir(data: &Path, name: &str) -> PathBuf {
    let mut stack = vec![data.to_owned()];
    while let Some(dir) = stack.pop() {
        let candidate = dir.join("certificates").join(name);
        if candidate.exists() {
            return candidate;
        }
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    panic!("no certificates/{name} under {}", data.display());
}

#[test]
fn cert_obtain_killed_at_any_rename_or_fsync_leaves_whole_pairs_in_the_store_and_out() {
    let http = free_port();
    let pebble = Pebble::start(Options::ports(http, free_port()));
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (port, ca) = (
        http.to_string(),
        pebble.api_ca().to_str().unwrap().to_owned(),
    );
    let out_dir = out.path().to_str().unwrap().to_owned();
    let args = [
        "cert",
        "obtain",
        "-d",
        "site.test",
        "-H",
        "127.0.0.1",
        "--http-port",
        &port,
        "--out",
        &out_dir,
        "--acme-directory",
        &pebble.directory,
        "--acme-ca",
        &ca,
        "--force",
    ];
    run_whole(data.path(), &args);
    let stored = stored_cert_dir(data.path(), "site.test");
    let (store_cert, store_key) = (stored.join("cert.pem"), stored.join("key.pem"));
    let (out_cert, out_key) = (
        out.path().join("site.test.crt"),
        out.path().join("site.test.key"),
    );
    // Writes are left out: each network write would be another (slow) order.
    let mut kills = 0;
    for syscalls in ["rename,renameat,renameat2", "fsync,fdatasync"] {
        for n in 1..=20 {
            let (finished, text) = run_killed_at(syscalls, n, data.path(), &args);
            let at = format!("killed at {syscalls} #{n}:\n{text}");
            assert!(inspect_pair(&store_cert, &store_key).is_some(), "{at}");
            assert!(inspect_pair(&out_cert, &out_key).is_some(), "{at}");
            if finished {
                break;
            }
            kills += 1;
            assert!(n < 20, "{syscalls}: still killed at {n}");
        }
    }
    assert!(kills >= 2, "only {kills} kills");
    serve_accepts(&out_cert, &out_key);
}
