//! `candado ca install | uninstall`: puts the development CA into the system trust store
//! (Debian's /usr/local/share/ca-certificates + update-ca-certificates) and into the NSS
//! databases Chromium and Firefox read (through `certutil`), and takes it out again. Every
//! change is reported, one line each, so the user knows exactly what was touched.
//!
//! `CANDADO_SYSTEM_TRUST_DIR` and `CANDADO_UPDATE_CA_COMMAND` override the system paths (tests
//! use them so that the machine running them is never changed).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

const SYSTEM_DIR: &str = "/usr/local/share/ca-certificates";
const UPDATE_COMMAND: &str = "update-ca-certificates";
const FILE_NAME: &str = "candado-development-ca.crt";
const NSS_NICKNAME: &str = "candado development CA";

/// Adds the CA everywhere it can; returns the lines that say what changed.
pub fn install(ca_cert: &Path) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    let dir = system_dir();
    let target = dir.join(FILE_NAME);
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create {} (run as root to change the system store)",
            dir.display()
        )
    })?;
    std::fs::copy(ca_cert, &target).with_context(|| {
        format!(
            "cannot write {} (run as root to change the system store)",
            target.display()
        )
    })?;
    changes.push(format!("added {}", target.display()));
    changes.extend(update_system_store()?);
    for db in nss_databases() {
        changes.push(certutil(
            &db,
            &[
                "-A",
                "-t",
                "C,,",
                "-n",
                NSS_NICKNAME,
                "-i",
                &ca_cert.to_string_lossy(),
            ],
        )?);
    }
    Ok(changes)
}

/// Removes what `install` added; returns the lines that say what changed.
pub fn uninstall() -> Result<Vec<String>> {
    let mut changes = Vec::new();
    let target = system_dir().join(FILE_NAME);
    if target.exists() {
        std::fs::remove_file(&target).with_context(|| {
            format!(
                "cannot remove {} (run as root to change the system store)",
                target.display()
            )
        })?;
        changes.push(format!("removed {}", target.display()));
        changes.extend(update_system_store()?);
    }
    for db in nss_databases() {
        let listed = Command::new("certutil")
            .args(["-L", "-d", &sql(&db), "-n", NSS_NICKNAME])
            .output();
        if listed.is_ok_and(|o| o.status.success()) {
            changes.push(certutil(&db, &["-D", "-n", NSS_NICKNAME])?);
        }
    }
    if changes.is_empty() {
        changes.push("nothing to remove: the development CA was not installed".into());
    }
    Ok(changes)
}

fn system_dir() -> PathBuf {
    std::env::var_os("CANDADO_SYSTEM_TRUST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SYSTEM_DIR))
}

/// Runs update-ca-certificates, unless the system directory was overridden without a command.
fn update_system_store() -> Result<Option<String>> {
    let command = match std::env::var("CANDADO_UPDATE_CA_COMMAND") {
        Ok(c) => c,
        Err(_) if std::env::var_os("CANDADO_SYSTEM_TRUST_DIR").is_some() => return Ok(None),
        Err(_) => UPDATE_COMMAND.to_owned(),
    };
    let status = Command::new(&command).status().with_context(|| {
        format!("cannot run {command} (is the ca-certificates package installed?)")
    })?;
    anyhow::ensure!(status.success(), "{command} failed ({status})");
    Ok(Some(format!("ran {command}")))
}

/// NSS databases of the current user: Chromium's ~/.pki/nssdb and each Firefox profile.
fn nss_databases() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    let mut dbs = vec![home.join(".pki/nssdb")];
    if let Ok(profiles) = std::fs::read_dir(home.join(".mozilla/firefox")) {
        dbs.extend(profiles.filter_map(Result::ok).map(|e| e.path()));
    }
    let dbs: Vec<PathBuf> = dbs
        .into_iter()
        .filter(|d| d.join("cert9.db").exists())
        .collect();
    if !dbs.is_empty() && which("certutil").is_none() {
        tracing::warn!(
            "browser certificate databases exist but certutil is missing: apt-get install libnss3-tools"
        );
        return Vec::new();
    }
    dbs
}

fn sql(db: &Path) -> String {
    format!("sql:{}", db.display())
}

fn certutil(db: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("certutil")
        .args(["-d", &sql(db)])
        .args(args)
        .output()
        .context("cannot run certutil")?;
    anyhow::ensure!(
        out.status.success(),
        "certutil failed on {}: {}",
        db.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let verb = if args.contains(&"-A") {
        "added to"
    } else {
        "removed from"
    };
    Ok(format!("{verb} the browser database {}", db.display()))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
