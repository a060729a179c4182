//! Issue 15, "the first hour": what a newcomer trips on. `ca install` on an account where
//! Chromium never ran, certificates without subjectAltName, and the pages people see.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::output_text;
use crate::support::server::BIN;

/// `candado ARGS` with a throwaway HOME, data folder and system store (never the machine's).
pub(crate) fn candado_at_home(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("HOME", home)
        .env("CANDADO_DATA_DIR", home.join("data"))
        .env("CANDADO_SYSTEM_TRUST_DIR", home.join("system-trust"))
        .env("CANDADO_UPDATE_CA_COMMAND", "true")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The trust flags certutil lists for the development CA in an NSS database, if it is there.
pub(crate) fn nss_trust(db: &Path) -> Option<String> {
    let out = Command::new("certutil")
        .args(["-L", "-d", &format!("sql:{}", db.display())])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with("candado development CA"))
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_owned())
}

#[test]
fn ca_install_creates_chromiums_database_when_chromium_never_ran() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let out = candado_at_home(home.path(), &["ca", "install"], &[]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let nssdb = home.path().join(".pki/nssdb");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        format!("created the browser database {}", nssdb.display()),
        format!("added to the browser database {}", nssdb.display()),
        "Chromium and Google Chrome now trust the development CA".to_owned(),
    ] {
        assert!(stdout.contains(&line), "no `{line}` in:\n{stdout}");
    }
    assert_eq!(nss_trust(&nssdb).as_deref(), Some("C,,"), "{text}");
    let mode = std::fs::metadata(&nssdb).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "the database holds the user's own keys too"
    );
    // Running it again changes nothing and still succeeds.
    let again = candado_at_home(home.path(), &["ca", "install"], &[]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(!String::from_utf8_lossy(&again.stdout).contains("created the browser database"));
}

#[test]
fn ca_install_fails_when_no_browser_can_be_told() {
    let home = tempfile::tempdir().unwrap();
    // A PATH without certutil.
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let path = bin.to_str().unwrap();
    let out = candado_at_home(
        home.path(),
        &["ca", "install"],
        &[("PATH", path), ("CANDADO_UPDATE_CA_COMMAND", "/bin/true")],
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    let installed = home.path().join("system-trust/candado-development-ca.crt");
    assert!(installed.exists(), "the system store is still updated");
    for needle in [
        "no browser does",
        &format!("added {}", installed.display()),
        "sudo apt-get install libnss3-tools",
    ] {
        assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    }
}
