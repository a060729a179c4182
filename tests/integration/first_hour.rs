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

/// The `<style>` block of a page.
fn style_of(page: &str) -> &str {
    let start = page.find("<style>").map(|i| i + "<style>".len());
    let end = page.find("</style>");
    match (start, end) {
        (Some(s), Some(e)) if s < e => &page[s..e],
        _ => "",
    }
}

/// A site with a folder to list and a route to an app that is down.
pub(crate) fn pages_fixture() -> crate::support::Fixture {
    let dead = crate::support::free_port();
    crate::support::Fixture::start_with_files(
        &format!(
            "    static: {{listing: true}}\n    proxy:\n      - path: /app\n        to: http://127.0.0.1:{dead}\n"
        ),
        "",
        |root| {
            std::fs::create_dir_all(root.join("files/photos")).unwrap();
            std::fs::write(root.join("files/notes.txt"), "three").unwrap();
            std::fs::write(root.join("files/big.bin"), vec![0u8; 1536]).unwrap();
        },
    )
}

#[test]
fn error_pages_and_listings_wear_the_same_stylesheet() {
    let f = pages_fixture();
    let not_found = f.get("/nope", &[]);
    let bad_gateway = f.get("/app/", &[]);
    let listing = f.get("/files/", &[]);
    assert_eq!(
        (not_found.status, bad_gateway.status, listing.status),
        (404, 502, 200)
    );
    let style = style_of(&not_found.text()).to_owned();
    assert!(
        style.contains("font"),
        "no stylesheet in the 404 page:\n{}",
        not_found.text()
    );
    assert_eq!(
        style_of(&bad_gateway.text()),
        style,
        "{}",
        bad_gateway.text()
    );
    assert_eq!(style_of(&listing.text()), style, "{}", listing.text());
    assert!(not_found.text().contains("<meta name=\"viewport\""));
}

#[test]
fn listings_show_sizes_dates_and_a_way_up() {
    let f = pages_fixture();
    let page = f.get("/files/", &[]).text();
    assert!(page.contains("<a href=\"../\">../</a>"), "{page}");
    assert!(
        page.contains(">5 B<") && page.contains(">1.5 KiB<"),
        "{page}"
    );
    let today = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    assert!(page.contains(&today[..10]), "no date in:\n{page}");
    // Folders first.
    let (folder, file) = (page.find("photos/").unwrap(), page.find("big.bin").unwrap());
    assert!(folder < file, "{page}");
    // The top of the site has no parent to go to.
    let f = crate::support::Fixture::start_with_files("    static: {listing: true}", "", |root| {
        std::fs::remove_file(root.join("index.html")).unwrap();
    });
    let top = f.get("/", &[]).text();
    assert!(top.contains("Index of /") && !top.contains("../"), "{top}");
}

#[test]
fn the_welcome_page_keeps_the_folder_path_to_itself_and_draws_its_padlock() {
    let site = tempfile::tempdir().unwrap();
    let https = crate::support::free_port();
    let server = crate::support::server::Candado::with_args(
        &["-p", &https.to_string(), "--http-port", "0"],
        site.path(),
        tempfile::tempdir().unwrap(),
        false,
    );
    let ca = server.data_dir().join("ca/ca.crt");
    let page = crate::support::client::curl_raw(
        &format!("https://localhost:{https}/"),
        &["--cacert", ca.to_str().unwrap()],
    )
    .text();
    assert!(page.contains("candado is working"), "{page}");
    let path = site.path().canonicalize().unwrap();
    assert!(!page.contains(path.to_str().unwrap()), "{page}");
    assert!(
        page.contains("<svg") && !page.contains("&#128274;"),
        "{page}"
    );
    assert!(page.contains("candado ca install"), "{page}");
}

/// What `openssl req -x509 -newkey rsa:4096 -nodes -subj /CN=localhost` makes (RSA 2048 here,
/// for speed): a certificate with no subjectAltName, which every current browser refuses.
fn certificate_without_san(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    (cert, key)
}

#[test]
fn a_certificate_without_subject_alt_name_is_warned_about_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate_without_san(dir.path());
    let root = tempfile::tempdir().unwrap();
    let server = crate::support::server::Candado::from_yaml(
        &crate::support::server::site_yaml(&cert, &key, root.path(), "", ""),
        &[],
    );
    let line = server.log_line(&["subjectAltName"]);
    let line = line.unwrap_or_else(|| panic!("no warning in:\n{}", server.log()));
    for needle in [
        "WARN",
        &cert.display().to_string(),
        "CN=localhost",
        "browsers",
        "candado cert issue localhost",
    ] {
        assert!(line.contains(needle), "no `{needle}` in: {line}");
    }
    // A certificate with names draws no such warning.
    let f = crate::support::Fixture::start("", "");
    assert!(
        !f.server.log().contains("subjectAltName"),
        "{}",
        f.server.log()
    );
}

#[test]
fn cert_inspect_and_check_flag_a_certificate_without_subject_alt_name() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate_without_san(dir.path());
    let out = Command::new(BIN)
        .args(["cert", "inspect"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("WARNING") && text.contains("no host in its subjectAltName"),
        "{text}"
    );
    let json = Command::new(BIN)
        .args(["cert", "inspect", "--json"])
        .arg(&cert)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let warnings = v["certificates"][0]["warnings"].to_string();
    assert!(warnings.contains("subjectAltName"), "{v}");

    let root = tempfile::tempdir().unwrap();
    let server = crate::support::server::Candado::from_yaml(
        &crate::support::server::site_yaml(&cert, &key, root.path(), "", ""),
        &[],
    );
    let out = Command::new(BIN)
        .args(["check", &format!("localhost:{}", server.https.port())])
        .args(["--connect", "127.0.0.1", "--http-port", "0", "--ca"])
        .arg(&cert)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(
        text.contains("NONE: no subjectAltName, so browsers refuse this certificate"),
        "{text}"
    );
    assert!(text.contains("candado cert issue localhost"), "{text}");
}
