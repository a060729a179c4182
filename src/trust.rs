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
/// Where Chromium on Linux (and Chrome, Brave, Edge) reads certificates, not /etc/ssl/certs.
const CHROMIUM_DB: &str = ".pki/nssdb";

/// Adds the CA everywhere it can; returns the lines that say what changed and which browsers
/// now trust it. Fails when no browser database could be changed: the system store alone
/// leaves Chromium and Firefox on Linux showing certificate errors, as they read NSS databases.
pub(crate) fn install(ca_cert: &Path) -> Result<Vec<String>> {
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
    match install_in_browsers(ca_cert) {
        Ok(lines) => {
            changes.extend(lines);
            Ok(changes)
        }
        Err(e) => Err(e.context(format!(
            "the system store trusts the development CA ({}), but no browser does",
            changes.join("; ")
        ))),
    }
}

/// A browser certificate database (NSS) and the browser that reads it.
struct BrowserDb {
    path: PathBuf,
    browser: Browser,
}

#[derive(Clone, PartialEq, Eq)]
enum Browser {
    /// Chromium, Google Chrome and the other Chromium-based browsers: ~/.pki/nssdb.
    Chromium,
    /// One Firefox profile, by folder name.
    Firefox(String),
}

impl Browser {
    fn trusts_now(&self) -> String {
        match self {
            Browser::Chromium => "Chromium and Google Chrome now trust the development CA (restart them if they are open)".into(),
            Browser::Firefox(profile) => format!(
                "Firefox (profile {profile}) now trusts the development CA (restart it if it is open)"
            ),
        }
    }
}

/// Adds the CA to Chromium's database (created when Chromium has never run, as it would
/// create it itself) and to each Firefox profile's.
fn install_in_browsers(ca_cert: &Path) -> Result<Vec<String>> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set, so the browser certificate databases cannot be found")?;
    anyhow::ensure!(
        which("certutil").is_some(),
        "Chromium and Firefox read their own certificate databases, which only certutil can change: install it (sudo apt-get install libnss3-tools) and run `candado ca install` again"
    );
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut trusted = Vec::new();
    for db in browser_databases(&home) {
        match add_to(&db, ca_cert) {
            Ok(done) => {
                lines.extend(done);
                trusted.push(db.browser);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if trusted.is_empty() {
        anyhow::bail!("{}", failures.join("; "));
    }
    lines.extend(failures.iter().map(|f| format!("not changed: {f}")));
    lines.extend(trusted.iter().map(Browser::trusts_now));
    if !trusted.iter().any(|b| matches!(b, Browser::Firefox(_)))
        && (which("firefox").is_some() || which("firefox-esr").is_some())
    {
        lines.push(
            "Firefox has no profile yet: start it once, then run `candado ca install` again".into(),
        );
    }
    Ok(lines)
}

/// Chromium's database, whether it exists yet or not, and each Firefox profile's.
fn browser_databases(home: &Path) -> Vec<BrowserDb> {
    let mut dbs = vec![BrowserDb {
        path: home.join(CHROMIUM_DB),
        browser: Browser::Chromium,
    }];
    if let Ok(profiles) = std::fs::read_dir(home.join(".mozilla/firefox")) {
        dbs.extend(
            profiles
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("cert9.db").exists())
                .map(|path| BrowserDb {
                    browser: Browser::Firefox(
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    ),
                    path,
                }),
        );
    }
    dbs
}

/// Creates the database if needed, then adds the CA; returns what changed.
fn add_to(db: &BrowserDb, ca_cert: &Path) -> Result<Vec<String>> {
    let mut done = Vec::new();
    if !db.path.join("cert9.db").exists() {
        create_database(&db.path)?;
        done.push(format!(
            "created the browser database {} (Chromium had not made it yet)",
            db.path.display()
        ));
    }
    done.push(certutil(
        &db.path,
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
    Ok(done)
}

/// An empty NSS database without a password, as Chromium makes on its first run (0700: it
/// will hold the user's own certificates and keys too).
fn create_database(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let out = Command::new("certutil")
        .args(["-N", "--empty-password", "-d", &sql(path)])
        .output()
        .context("cannot run certutil")?;
    anyhow::ensure!(
        out.status.success(),
        "certutil could not create the browser database {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Removes what `install` added; returns the lines that say what changed.
pub(crate) fn uninstall() -> Result<Vec<String>> {
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

/// The browser databases that exist, for `uninstall` (nothing to take out of the others).
fn nss_databases() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    let dbs: Vec<PathBuf> = browser_databases(&home)
        .into_iter()
        .map(|db| db.path)
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
