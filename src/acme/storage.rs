//! Where accounts and certificates are kept between runs. `Storage` is the seam that lets
//! several candado instances share one store later (a database, a shared volume); today
//! `FileStorage` keeps everything in a folder: 0700 folders, 0600 files, atomic writes; a
//! certificate and its key are swapped in together (`certs::files`: `cert.pem` and `key.pem`
//! are links through `versions/live`).

use std::io;
use std::path::{Path, PathBuf};

use crate::certs::files::{self, Member};

/// A key-value store of small blobs. Keys are `/`-separated relative names made only of
/// ASCII letters, digits, `.`, `-` and `_` (see `key_part`).
pub(crate) trait Storage: Send + Sync {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces the value at once: readers see the old value or the new one, never a part.
    fn store(&self, key: &str, value: &[u8]) -> io::Result<()>;
    fn delete(&self, key: &str) -> io::Result<()>;
    /// Replaces several values of the folder `dir` (a certificate and its key) at once:
    /// `load_together` sees all the old values or all the new ones, even after a crash.
    fn store_together(&self, dir: &str, values: &[(&str, &[u8])]) -> io::Result<()>;
    /// Loads values stored together (`dir/name` keys), all from one version; None when one
    /// is missing.
    fn load_together(&self, keys: &[&str]) -> io::Result<Option<Vec<Vec<u8>>>>;
    /// Where a key lives, for messages (a path for files).
    fn describe(&self, key: &str) -> String;
}

#[derive(Debug, Clone)]
pub(crate) struct FileStorage {
    root: PathBuf,
}

impl FileStorage {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        FileStorage { root: root.into() }
    }

    pub(crate) fn path(&self, key: &str) -> PathBuf {
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

    fn store_together(&self, dir: &str, values: &[(&str, &[u8])]) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let path = self.path(dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)?;
        let members: Vec<Member<'_>> = values
            .iter()
            .map(|(name, data)| Member {
                name,
                data,
                private: true,
            })
            .collect();
        files::write_together(&path, "versions", &members)
    }

    fn load_together(&self, keys: &[&str]) -> io::Result<Option<Vec<Vec<u8>>>> {
        let paths: Vec<PathBuf> = keys.iter().map(|k| self.path(k)).collect();
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let mut values = Vec::new();
        for read in files::read_together(&refs) {
            match read {
                Ok(v) => values.push(v),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Ok(Some(values))
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
pub(crate) fn key_part(text: &str) -> String {
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
    fn values_stored_together_are_read_back_together() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStorage::new(dir.path().join("acme"));
        assert_eq!(s.load_together(&["c/cert.pem", "c/key.pem"]).unwrap(), None);
        for v in [&b"1"[..], b"2"] {
            s.store_together("c", &[("cert.pem", v), ("key.pem", v)])
                .unwrap();
            let got = s.load_together(&["c/cert.pem", "c/key.pem"]).unwrap();
            assert_eq!(got, Some(vec![v.to_vec(), v.to_vec()]));
            assert_eq!(s.load("c/key.pem").unwrap().as_deref(), Some(v));
        }
        let mode = std::fs::metadata(s.path("c/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
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
