//! Build facts for `candado --version`: the git commit the binary was built from and the
//! rustls version it links. Neither is an error when missing: a crates.io package or a wheel
//! source distribution has no `.git`, and then the commit reads "unknown".

use std::process::Command;

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CANDADO_GIT_COMMIT={commit}");
    // Rebuild the version string when HEAD moves (a commit, a checkout), not on every build.
    // A worktree keeps HEAD in its own git dir and the branches in the common one.
    let git_dir = git(&["rev-parse", "--git-dir"]);
    let common_dir = git(&["rev-parse", "--git-common-dir"]);
    let reference = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = [
        git_dir.as_ref().map(|d| format!("{d}/HEAD")),
        common_dir
            .as_ref()
            .zip(reference.as_ref())
            .map(|(d, r)| format!("{d}/{r}")),
        common_dir.as_ref().map(|d| format!("{d}/packed-refs")),
    ];
    // Only files that exist: cargo reruns the script on every build for a missing one.
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let rustls = locked_version("rustls").unwrap_or_else(|| "0.23".into());
    println!("cargo:rustc-env=CANDADO_RUSTLS_VERSION={rustls}");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=build.rs");
}

/// One line of `git …` output, or None outside a checkout or without git.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_owned())
}

/// The version of `name` in Cargo.lock (`name = "…"` followed by `version = "…"`).
fn locked_version(name: &str) -> Option<String> {
    let lock = std::fs::read_to_string("Cargo.lock").ok()?;
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}
