//! Small files that are asked for again and again, kept in memory with their response headers
//! ready, so that a hit costs no system call and no formatting.
//!
//! Confinement is unchanged: an entry is only made from a file that the normal path opened
//! inside the root, and it is looked up by the exact request path that led there. At most
//! every `HOT_FILE_VALID` an entry is checked by opening its file again the same confined way
//! and comparing device, inode, size and modification time; anything else drops it, so an
//! edited, replaced or removed file (or a symlink swapped to point elsewhere) is served at
//! most that late.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use bytes::Bytes;

use super::{Facts, FileIdentity, Root};
use crate::config::defaults::{
    HOT_FILE_MAX_BYTES, HOT_FILE_VALID, HOT_FILES_MAX_BYTES, HOT_FILES_MAX_ENTRIES,
};

/// One site's hot files, by request path.
pub(super) struct HotFiles {
    entries: RwLock<HashMap<Box<str>, Arc<HotFile>>>,
    bytes: AtomicUsize,
    /// Entry check times are milliseconds since this instant.
    epoch: Instant,
}

pub(super) struct HotFile {
    /// Where it is inside the root, to open it again for the check.
    rel: PathBuf,
    identity: FileIdentity,
    pub(super) facts: Facts,
    pub(super) body: Bytes,
    /// A fresh precompressed copy (`.zst`, `.br`, `.gz`) is beside it, as of the last check.
    pub(super) precompressed: bool,
    checked_ms: AtomicU64,
    /// Set on every hit, cleared by an eviction sweep: entries nobody asked for since the last
    /// sweep go first.
    used: AtomicBool,
}

impl HotFile {
    pub(super) fn new(rel: PathBuf, identity: FileIdentity, facts: Facts, body: Bytes) -> Self {
        HotFile {
            rel,
            identity,
            facts,
            body,
            precompressed: false,
            checked_ms: AtomicU64::new(0),
            used: AtomicBool::new(true),
        }
    }

    pub(super) fn with_precompressed(mut self, precompressed: bool) -> Self {
        self.precompressed = precompressed;
        self
    }
}

/// Whether a file of this size is worth keeping.
pub(super) fn worth_keeping(len: u64) -> bool {
    len <= HOT_FILE_MAX_BYTES
}

impl HotFiles {
    pub(super) fn new() -> Self {
        HotFiles {
            entries: RwLock::new(HashMap::new()),
            bytes: AtomicUsize::new(0),
            epoch: Instant::now(),
        }
    }

    /// The entry for `path`, checked against the disk if its last check is too old.
    pub(super) fn get(&self, path: &str, root: &Root) -> Option<Arc<HotFile>> {
        let hot = self.read().get(path)?.clone();
        hot.used.store(true, Ordering::Relaxed);
        let now = self.now_ms();
        let checked = hot.checked_ms.load(Ordering::Relaxed);
        if now.saturating_sub(checked) < HOT_FILE_VALID.as_millis() as u64 {
            return Some(hot);
        }
        let same = root
            .open(&hot.rel)
            .is_some_and(|(_, meta)| FileIdentity::of(&meta) == hot.identity);
        // A precompressed copy made or removed since counts as a change too.
        if !same || super::precompressed::any(root, &hot.rel, &hot.facts) != hot.precompressed {
            self.remove(path);
            return None;
        }
        hot.checked_ms.store(now, Ordering::Relaxed);
        Some(hot)
    }

    /// Keeps `hot` for `path` if there is room (after evicting what nobody used lately).
    pub(super) fn insert(&self, path: &str, hot: HotFile) -> Arc<HotFile> {
        hot.checked_ms.store(self.now_ms(), Ordering::Relaxed);
        let hot = Arc::new(hot);
        let size = hot.body.len();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.full(entries.len(), size) {
            self.sweep(&mut entries);
        }
        if !self.full(entries.len(), size) {
            if let Some(old) = entries.insert(path.into(), hot.clone()) {
                self.bytes.fetch_sub(old.body.len(), Ordering::Relaxed);
            }
            self.bytes.fetch_add(size, Ordering::Relaxed);
        }
        hot
    }

    fn full(&self, entries: usize, adding: usize) -> bool {
        entries >= HOT_FILES_MAX_ENTRIES
            || self.bytes.load(Ordering::Relaxed) + adding > HOT_FILES_MAX_BYTES
    }

    /// Drops every entry not used since the last sweep, and starts a new round.
    fn sweep(&self, entries: &mut HashMap<Box<str>, Arc<HotFile>>) {
        entries.retain(|_, hot| {
            let keep = hot.used.swap(false, Ordering::Relaxed);
            if !keep {
                self.bytes.fetch_sub(hot.body.len(), Ordering::Relaxed);
            }
            keep
        });
    }

    fn remove(&self, path: &str) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = entries.remove(path) {
            self.bytes.fetch_sub(old.body.len(), Ordering::Relaxed);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Box<str>, Arc<HotFile>>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which marks "never checked".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}
