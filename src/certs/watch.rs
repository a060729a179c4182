//! Certificate files (and client CAs and CRLs) are watched: their size and modification time are compared at every
//! tick, so a renewed certificate (certbot, an operator's `cp`) is served without a signal.
//! Polling is deliberate: it sees files replaced through symlinks and renames alike.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::Config;

/// Modification time, size and inode: a pair swapped in by `certs::files` is new files
/// (new inodes), seen even when the time and size happen to match.
type Fingerprint = Option<(SystemTime, u64, u64)>;

pub(crate) struct FileWatch {
    files: Vec<(PathBuf, Fingerprint)>,
}

impl FileWatch {
    /// Watches the certificate, key, CA and CRL files `config` names.
    pub(crate) fn of(config: &Config) -> Self {
        let files = config
            .watched_files()
            .into_iter()
            .map(|p| {
                let f = fingerprint(&p);
                (p, f)
            })
            .collect();
        FileWatch { files }
    }

    /// Whether any file changed since the last call (or since `of`).
    pub(crate) fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let now = fingerprint(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }
}

fn fingerprint(path: &PathBuf) -> Fingerprint {
    // metadata() follows symlinks, so a re-pointed `live/` link counts as a change.
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), meta.ino()))
}
