//! Small files that are asked for again and again, kept in memory with their response headers
//! ready, so that a hit costs no system call and no formatting.
//!
//! Confinement is unchanged: an entry is only made from a file that the normal path opened
//! inside the root, and it is looked up by the exact request path that led there. At most
//! every `HOT_FILE_VALID` an entry is checked by opening its file again the same confined way
//! and comparing device, inode, size and modification time; anything else drops it, so an
//! edited, replaced or removed file (or a symlink swapped to point elsewhere) is served at
//! most that late.
//!
//! A text file is also kept compressed, in each coding a client has been sent it whole in
//! (`http::compression` hands the bytes back through [`KeepCompressed`]): browsers always ask
//! for compression, and compressing the same file again for each of them was most of the
//! cost of serving it. The copies count against the same byte bound, go with their file, and
//! are served like precompressed siblings: with their own Content-Length and the coding's ETag.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};

use super::{Body, Facts, FileIdentity, Root, empty, full, precompressed, respond, whole_head};
use crate::config::defaults::{
    COMPRESS_MIN_BYTES, HOT_FILE_MAX_BYTES, HOT_FILE_VALID, HOT_FILES_MAX_BYTES,
    HOT_FILES_MAX_ENTRIES,
};
use crate::http::Outgoing;
use crate::http::compression::{self, Coding, KeepCompressed};

/// Kept files by request path. foldhash, not SipHash: asked on every request, while a client
/// can add at most `HOT_FILES_MAX_ENTRIES` keys (paths of files in the root), under a seed
/// drawn at random per process that it never sees: no flood of colliding keys to resist.
type Entries = HashMap<Box<str>, Arc<HotFile>, foldhash::quality::RandomState>;

/// One site's hot files, by request path.
pub(super) struct HotFiles {
    entries: RwLock<Entries>,
    bytes: AtomicUsize,
    /// Entry check times are milliseconds after this, on the coarse clock.
    epoch_ms: u64,
    /// What the site adds to responses: entries keep heads it was applied to.
    outgoing: Outgoing,
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
    /// Its type is worth compressing (whatever its size; see [`Self::compressible`]).
    pub(super) type_compressible: bool,
    /// The whole file's head as the site sends it uncompressed (validators, type, length,
    /// Vary, the site's headers): cloned for each plain GET.
    head: KeptHead,
    /// The file in each coding (in `Coding::ALL` order), once one client was sent it whole.
    compressed: [OnceLock<Compressed>; Coding::ALL.len()],
}

/// A hot file's bytes in one coding, with their own length.
struct Compressed {
    facts: Facts,
    body: Bytes,
    /// Its whole head as the site sends it.
    head: KeptHead,
}

/// A kept answer's head as the site sends it, in the form each HTTP version's writer takes
/// as it is: a map for HTTP/1.1 (and HTTP/3), which writes its own cached Date; for HTTP/2,
/// its fields already in HPACK form, so that an answer copies them as one piece instead of
/// cloning a map and encoding it field by field (the server stamps Date).
struct KeptHead {
    h1: HeaderMap,
    h2: crate::http2::EncodedFields,
}

impl KeptHead {
    fn new(facts: &Facts, outgoing: &Outgoing, coding: Option<Coding>) -> Self {
        let mut h1 = whole_head(facts);
        outgoing.finish_static(&mut h1, coding);
        let h2 = crate::http2::EncodedFields::new(&h1);
        KeptHead { h1, h2 }
    }

    /// Roughly what it holds: each field's slot, index and small value, and the HTTP/2 form.
    fn size(&self) -> usize {
        const FIELD_BYTES: usize = 160;
        self.h1.capacity() * FIELD_BYTES + self.h2.len()
    }

    /// The head of one answer over `version`.
    fn put(&self, res: &mut Response<Body>, version: Version) {
        if version == Version::HTTP_2 {
            res.extensions_mut().insert(self.h2.clone());
        } else {
            *res.headers_mut() = self.h1.clone();
        }
    }
}

impl HotFile {
    pub(super) fn new(
        rel: PathBuf,
        identity: FileIdentity,
        facts: Facts,
        body: Bytes,
        outgoing: &Outgoing,
    ) -> Self {
        let type_compressible = facts
            .content_type
            .to_str()
            .is_ok_and(compression::compressible);
        HotFile {
            type_compressible,
            head: KeptHead::new(&facts, outgoing, None),
            rel,
            identity,
            facts,
            body,
            precompressed: false,
            checked_ms: AtomicU64::new(0),
            used: AtomicBool::new(true),
            compressed: Default::default(),
        }
    }

    /// The bytes it holds: the file and its compressed copies, with their heads.
    fn size(&self) -> usize {
        let copies = self.compressed.iter().filter_map(OnceLock::get);
        let copies = copies.map(|c| c.body.len() + c.head.size());
        self.body.len() + self.head.size() + copies.sum::<usize>()
    }

    /// Its type is worth compressing and it is not too small to.
    pub(super) fn compressible(&self) -> bool {
        self.type_compressible && self.body.len() as u64 >= COMPRESS_MIN_BYTES
    }

    fn compressed(&self, coding: Coding) -> &OnceLock<Compressed> {
        &self.compressed[coding as usize]
    }

    pub(super) fn with_precompressed(mut self, precompressed: bool) -> Self {
        self.precompressed = precompressed;
        self
    }

    /// The whole file (none of it for HEAD) with its finished head for `version`, as it is
    /// or in `coding` (`None` when that copy was not made yet).
    pub(super) fn at_once(
        &self,
        head: bool,
        coding: Option<Coding>,
        version: Version,
    ) -> Option<Response<Body>> {
        let (bytes, fields) = match coding {
            None => (&self.body, &self.head),
            Some(c) => self.compressed(c).get().map(|c| (&c.body, &c.head))?,
        };
        let body = match head || bytes.is_empty() {
            true => empty(),
            false => full(bytes.clone()),
        };
        let mut res = Response::new(body);
        fields.put(&mut res, version);
        Some(res)
    }
}

/// The answer from memory: the file in the coding the client prefers if a client was sent it
/// before; otherwise the file, with a request to keep it once it has been compressed.
pub(super) fn serve<B>(
    files: &Arc<HotFiles>,
    (req, codings): (&Request<B>, &[Coding]),
    path: &str,
    hot: Arc<HotFile>,
) -> Response<Body> {
    let coding = match precompressed::wanted(req, codings) && hot.compressible() {
        true => codings.first().copied(),
        false => None,
    };
    if let Some(coding) = coding
        && let Some(copy) = hot.compressed(coding).get()
    {
        let res = respond(req, &copy.facts, |start, count| {
            Ok(full(
                copy.body.slice(start as usize..(start + count) as usize),
            ))
        });
        return precompressed::mark(res, coding);
    }
    let mut res = respond(req, &hot.facts, |start, count| {
        Ok(full(
            hot.body.slice(start as usize..(start + count) as usize),
        ))
    });
    if coding.is_some() && res.status() == StatusCode::OK {
        let (files, path) = (files.clone(), Box::<str>::from(path));
        let keep = move |coding, bytes| files.keep_compressed(&path, &hot, coding, bytes);
        res.extensions_mut().insert(KeepCompressed(Arc::new(keep)));
    }
    res
}

/// Whether a file of this size is worth keeping.
pub(super) fn worth_keeping(len: u64) -> bool {
    len <= HOT_FILE_MAX_BYTES
}

impl HotFiles {
    pub(super) fn new(outgoing: Outgoing) -> Self {
        HotFiles {
            entries: RwLock::new(Entries::default()),
            bytes: AtomicUsize::new(0),
            epoch_ms: crate::clock::coarse_ms(),
            outgoing,
        }
    }

    pub(super) fn outgoing(&self) -> &Outgoing {
        &self.outgoing
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
        let size = hot.size();
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.full(entries.len(), size) {
            self.sweep(&mut entries);
        }
        if !self.full(entries.len(), size) {
            if let Some(old) = entries.insert(path.into(), hot.clone()) {
                self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
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
    fn sweep(&self, entries: &mut Entries) {
        entries.retain(|_, hot| {
            let keep = hot.used.swap(false, Ordering::Relaxed);
            if !keep {
                self.bytes.fetch_sub(hot.size(), Ordering::Relaxed);
            }
            keep
        });
    }

    fn remove(&self, path: &str) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = entries.remove(path) {
            self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
        }
    }

    /// Keeps `hot`'s bytes compressed in `coding`, if it is still the entry for `path` (a
    /// dropped or replaced entry's bytes are no longer counted), compression paid and there is
    /// room. Under the write lock, like every change of the byte count.
    fn keep_compressed(&self, path: &str, hot: &Arc<HotFile>, coding: Coding, body: Bytes) {
        if body.len() >= hot.body.len() {
            return;
        }
        let facts = Facts {
            len: body.len() as u64,
            length: HeaderValue::from(body.len()),
            ..hot.facts.clone()
        };
        let head = KeptHead::new(&facts, &self.outgoing, Some(coding));
        let size = body.len() + head.size();
        let entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let current = entries.get(path).is_some_and(|e| Arc::ptr_eq(e, hot));
        if !current || self.bytes.load(Ordering::Relaxed) + size > HOT_FILES_MAX_BYTES {
            return;
        }
        if hot
            .compressed(coding)
            .set(Compressed { facts, body, head })
            .is_ok()
        {
            self.bytes.fetch_add(size, Ordering::Relaxed);
        }
        drop(entries);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which marks "never checked".
        crate::clock::coarse_ms().saturating_sub(self.epoch_ms) + 1
    }
}
