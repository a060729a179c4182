//! Where accounts and certificates are kept between runs. `Storage` is the seam that lets
//! several candado instances share one store later (a database, a shared volume); today
//! `FileStorage` keeps everything in a folder: 0700 folders, 0600 files, atomic writes.

use std::io;
use std::path::{Path, PathBuf};

/// A key-value store of small blobs. Keys are `/`-separated relative names made only of
/// ASCII letters, digits, `.`, `-` and `_` (see `key_part`).
pub trait Storage: Send + Sync {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the value at once: readers see the old value or the new one, never a part.
    fn store(&self, key: &str, value: &[u8]) -> io::Result<()>;
    fn delete(&self, key: &str) -> io::Result<()>;
    /// Where a key lives, for messages (a path for files).
    fn describe(&self, key: &str) -> String;
}

#[derive(Debug, Clone)]
pub struct FileStorage {
    root: PathBuf,
}

impl FileStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileStorage { root: root.into() }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

impl Storage for FileStorage {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.path(key)) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn store(&self, key: &str, value: &[u8]) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = self.path(key);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("value")
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(value)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn describe(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }
}

/// Turns any text (a directory URL, a host name) into one safe key segment:
/// `https://127.0.0.1:14000/dir` → `127.0.0.1-14000-dir`.
pub fn key_part(text: &str) -> String {
    let text = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .unwrap_or(text);
    let mapped: String = text
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' => c.to_ascii_lowercase(),
            '*' => '_',
            _ => '-',
        })
        .collect();
    let trimmed = mapped.trim_matches(|c| c == '-' || c == '.');
    match trimmed {
        "" => "_".to_owned(),
        t => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stored_values_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path().join("acme"));
        assert_eq!(s.load("a/b/key.pem").unwrap(), None);
        s.store("a/b/key.pem", b"secret").unwrap();
        assert_eq!(
            s.load("a/b/key.pem").unwrap().as_deref(),
            Some(&b"secret"[..])
        );
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(s.path("a/b/key.pem")), 0o600);
        assert_eq!(mode(s.path("a/b")), 0o700);
        assert_eq!(mode(s.path("a")), 0o700);
        s.delete("a/b/key.pem").unwrap();
        s.delete("a/b/key.pem").unwrap();
        assert_eq!(s.load("a/b/key.pem").unwrap(), None);
    }

    #[test]
    fn key_parts_cannot_climb_out_of_the_store() {
        assert_eq!(
            key_part("https://127.0.0.1:14000/dir"),
            "127.0.0.1-14000-dir"
        );
        assert_eq!(
            key_part("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org-directory"
        );
        assert_eq!(key_part(".."), "_");
        assert_eq!(key_part("../../etc"), "etc");
        assert!(!key_part("a/../b").contains('/'));
    }
}
