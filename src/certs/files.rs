//! Files that change together: a certificate and its key. A new pair is written into a new
//! version folder and made current by ONE rename (of the `live` symlink), so a crash at any
//! point leaves the old pair or the whole new one, never a new key beside an old
//! certificate. The paths users point at are stable symlinks through `live` (certbot's
//! `live/` + `archive/` idea, with one swap for the pair). For `cert issue app.test --out d`:
//!
//! ```text
//! d/app.test.crt -> .candado/app.test/live/app.test.crt
//! d/app.test.key -> .candado/app.test/live/app.test.key
//! d/.candado/app.test/live -> v1764556800123456789-4242
//! d/.candado/app.test/v1764556800123456789-4242/app.test.{crt,key}
//! ```
//!
//! Readers (`read_together`) resolve the links before and after reading and read again if a
//! swap happened in between, so they see one version too.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

/// The symlink naming the current version, inside the versions folder.
const LIVE: &str = "live";
/// How often a reader tries again when a pair is replaced while it reads (each swap is one
/// rename, so a second try almost always succeeds).
const READ_ATTEMPTS: usize = 5;

/// One file of a set written together.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member<'a> {
    /// Its name in the folder (the stable path users are given).
    pub name: &'a str,
    pub data: &'a [u8],
    /// 0600 (a private key) rather than 0644.
    pub private: bool,
}

impl Member<'_> {
    fn mode(&self) -> u32 {
        if self.private { 0o600 } else { 0o644 }
    }
}

/// Replaces the `members` of `dir` at once. `versions` is the folder (relative to `dir`, e.g.
/// `.candado/app.test`) that keeps the versions; `dir` must exist.
pub(crate) fn write_together(dir: &Path, versions: &str, members: &[Member<'_>]) -> io::Result<()> {
    let store = dir.join(versions);
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&store)?;
    adopt_old_files(dir, versions, &store, members)?;
    let previous = std::fs::read_link(store.join(LIVE)).ok();
    let fresh = new_version(&store)?;
    for m in members {
        write_new(&store.join(&fresh).join(m.name), m.data, m.mode())?;
    }
    sync_dir(&store.join(&fresh))?;
    // The one rename that replaces the whole set.
    point_live(&store, &fresh)?;
    prune(&store, &fresh, previous.as_deref());
    Ok(())
}

/// Reads files that are replaced together (through `write_together`, or any other way) so
/// that all come from one version: each read is checked against where the paths pointed
/// before it started. One result per path.
pub(crate) fn read_together(paths: &[&Path]) -> Vec<io::Result<Vec<u8>>> {
    let resolve = || -> Vec<Option<PathBuf>> {
        paths
            .iter()
            .map(|p| std::fs::canonicalize(p).ok())
            .collect()
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = resolve();
        let read: Vec<_> = paths.iter().map(std::fs::read).collect();
        if attempt == READ_ATTEMPTS || resolve() == before {
            return read;
        }
    }
}

/// Makes every member's path a symlink through `live` without changing what it shows: files
/// written by older versions of candado (or by hand) are first copied into a version that
/// `live` points at, then replaced by a link to the same bytes, one at a time. A path that
/// shows nothing yet gets a link that shows nothing until the first swap.
fn adopt_old_files(
    dir: &Path,
    versions: &str,
    store: &Path,
    members: &[Member<'_>],
) -> io::Result<()> {
    let link_target = |m: &Member<'_>| Path::new(versions).join(LIVE).join(m.name);
    let adopted: Vec<&Member<'_>> = members
        .iter()
        .filter(|m| std::fs::read_link(dir.join(m.name)).ok() != Some(link_target(m)))
        .collect();
    if adopted.is_empty() {
        return Ok(());
    }
    let old = new_version(store)?;
    for m in members {
        match std::fs::read(dir.join(m.name)) {
            Ok(bytes) => write_new(&store.join(&old).join(m.name), &bytes, m.mode())?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(&store.join(&old))?;
    point_live(store, &old)?;
    for m in adopted {
        replace_with_symlink(&link_target(m), &dir.join(m.name))?;
    }
    sync_dir(dir)
}

/// A new, empty version folder in `store`; returns its name.
fn new_version(store: &Path) -> io::Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!("v{nanos}-{}", std::process::id());
    DirBuilder::new().mode(0o755).create(store.join(&name))?;
    Ok(name)
}

/// Creates `path` with `mode` from the start (a key is never briefly readable by others),
/// writes and flushes it to disk.
fn write_new(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    // The umask may have narrowed the mode; a certificate must stay readable by others.
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()
}

/// Points `store/live` at `version` with one rename.
fn point_live(store: &Path, version: &str) -> io::Result<()> {
    replace_with_symlink(Path::new(version), &store.join(LIVE))?;
    sync_dir(store)
}

/// Atomically makes `link` a symlink to `target` (a temporary link renamed over it).
fn replace_with_symlink(target: &Path, link: &Path) -> io::Result<()> {
    let name = link.file_name().and_then(|n| n.to_str()).unwrap_or("link");
    let tmp = link.with_file_name(format!(".{name}.tmp"));
    // Left by a crash between its creation and its rename.
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// Makes the folder's entries (new files, renames) durable, not only the files' bytes.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes versions other than the current and the previous one (a reader may have resolved
/// the previous one just before the swap). Failing to clean up is only logged.
fn prune(store: &Path, current: &str, previous: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(store) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let keep = name == current
            || previous.is_some_and(|p| p == Path::new(&name))
            || !name.to_string_lossy().starts_with('v');
        if !keep && let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::debug!(
                "cannot remove the old version {}: {e}",
                entry.path().display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair<'a>(cert: &'a [u8], key: &'a [u8]) -> [Member<'a>; 2] {
        [
            Member {
                name: "a.crt",
                data: cert,
                private: false,
            },
            Member {
                name: "a.key",
                data: key,
                private: true,
            },
        ]
    }

    fn read(dir: &Path) -> (Vec<u8>, Vec<u8>) {
        let [c, k]: [io::Result<Vec<u8>>; 2] =
            read_together(&[&dir.join("a.crt"), &dir.join("a.key")])
                .try_into()
                .expect("two results");
        (c.expect("cert"), k.expect("key"))
    }

    #[test]
    fn a_pair_is_replaced_through_stable_paths_and_old_versions_are_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..4u8 {
            write_together(dir.path(), ".candado/a", &pair(&[i], &[i, i])).expect("write");
            assert_eq!(read(dir.path()), (vec![i], vec![i, i]));
        }
        let mode = std::fs::metadata(dir.path().join("a.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let versions = std::fs::read_dir(dir.path().join(".candado/a"))
            .expect("versions")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('v'))
            .count();
        assert_eq!(versions, 2, "the current and the previous version are kept");
    }

    #[test]
    fn a_reader_never_sees_a_certificate_beside_another_versions_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_together(dir.path(), ".candado/a", &pair(&[0], &[0])).expect("first");
        let path = dir.path().to_owned();
        let writer = std::thread::spawn(move || {
            for i in 1..=200u8 {
                write_together(&path, ".candado/a", &pair(&[i], &[i])).expect("write");
            }
        });
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let (cert, key) = read(dir.path());
            assert_eq!(cert, key, "a mixed pair after {reads} reads");
            reads += 1;
        }
        writer.join().expect("writer");
        assert_eq!(read(dir.path()), (vec![200], vec![200]));
    }

    #[test]
    fn plain_files_from_before_are_adopted_and_then_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.crt"), b"old cert").expect("cert");
        std::fs::write(dir.path().join("a.key"), b"old key").expect("key");
        let store = dir.path().join(".candado/a");
        DirBuilder::new()
            .recursive(true)
            .create(&store)
            .expect("store");
        let members = pair(b"new cert", b"new key");
        adopt_old_files(dir.path(), ".candado/a", &store, &members).expect("adopt");
        assert!(
            std::fs::symlink_metadata(dir.path().join("a.crt"))
                .expect("link")
                .is_symlink()
        );
        assert_eq!(
            read(dir.path()),
            (b"old cert".to_vec(), b"old key".to_vec())
        );
        write_together(dir.path(), ".candado/a", &members).expect("write");
        assert_eq!(
            read(dir.path()),
            (b"new cert".to_vec(), b"new key".to_vec())
        );
    }
}
