//! Static files from a site's root folder: index.html, MIME types, ETag/Last-Modified with 304,
//! single byte ranges, HEAD. Nothing outside the root is ever served: the request path is
//! decoded once and refused if any segment is `.`/`..`, hidden, or holds `/`, `\` or NUL; the
//! file is then opened with `openat2(RESOLVE_BENEATH)` relative to the root, so the kernel
//! itself refuses any symlink that leads outside it (one syscall instead of a realpath walk).

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::compression::Coding;
use super::error::{STYLE, escape_html, page, styled_page};
use super::{Body, Outgoing, empty, full};
use crate::config::StaticOptions;

/// Files up to this size are read in one go; larger ones are streamed in chunks.
const READ_WHOLE_LIMIT: u64 = 256 * 1024;
const STREAM_CHUNK: usize = 64 * 1024;

const WELCOME_PAGE: &str = include_str!("welcome.html");

mod chunks;
mod hot;
mod precompressed;

pub(crate) struct StaticFiles {
    root: Arc<Root>,
    welcome: bool,
    hot: Arc<hot::HotFiles>,
}

/// The root folder and how files are opened inside it; shared with the bodies of large files,
/// which open their file again only when the client is ready to take it.
struct Root {
    /// Canonical, so that resolved paths can be compared with it.
    path: PathBuf,
    /// The root folder, opened once: files are opened relative to it.
    dir: std::fs::File,
    options: StaticOptions,
}

impl Root {
    /// Opens `rel` (plain names only) inside the root: a regular file or a folder.
    fn open(&self, rel: &Path) -> Option<(std::fs::File, Metadata)> {
        let file = match self.options.follow_symlinks {
            true => std::fs::File::open(self.path.join(rel)).ok()?,
            false => self.open_beneath(rel)?,
        };
        let meta = file.metadata().ok()?;
        (meta.is_file() || meta.is_dir()).then_some((file, meta))
    }

    fn open_beneath(&self, rel: &Path) -> Option<std::fs::File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // NONBLOCK: a FIFO in the root must not hang the server; regular files ignore it.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(&self.dir, path, flags, Mode::empty(), resolve) {
            Ok(fd) => Some(std::fs::File::from(fd)),
            // NOSYS: kernel before 5.6. XDEV: the kernel saw an absolute symlink or one that
            // leaves the root; an absolute one may still land inside, which the slow path allows.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::XDEV) => self.open_canonical(rel),
            Err(_) => None,
        }
    }

    /// The slow path: resolve every symlink, then check that the result is still inside the
    /// root and not hidden.
    fn open_canonical(&self, rel: &Path) -> Option<std::fs::File> {
        let resolved = self.path.join(rel).canonicalize().ok()?;
        let inside = resolved.strip_prefix(&self.path).ok()?;
        if !self.options.hidden && inside.components().any(|c| is_hidden(c.as_os_str())) {
            return None;
        }
        std::fs::File::open(resolved).ok()
    }
}

/// Why a request path was refused before touching the file system.
#[derive(Debug, PartialEq, Eq)]
enum PathRefusal {
    /// `..`, `.`, encoded slashes, backslashes, NUL: an attempt to leave the root.
    Traversal,
    /// A segment starting with a dot (`.git`, `.env`).
    Hidden,
}

impl StaticFiles {
    pub(crate) fn new(
        root: &Path,
        options: StaticOptions,
        welcome: bool,
        outgoing: Outgoing,
    ) -> std::io::Result<Self> {
        let path = root.canonicalize()?;
        let root = Root {
            dir: std::fs::File::open(&path)?,
            path,
            options,
        };
        Ok(StaticFiles {
            root: Arc::new(root),
            welcome,
            hot: Arc::new(hot::HotFiles::new(outgoing)),
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root.path
    }

    /// A hot file's answer, head finished, for a GET or HEAD with no condition or range: as it
    /// is, or its compressed copy in the client's first coding. `None`: ask [`Self::serve`].
    pub(crate) fn at_once<B>(
        &self,
        req: &Request<B>,
        codings: &[Coding],
    ) -> Option<Response<Body>> {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => return None,
        };
        // One pass over the few names a request has (a lookup by name hashes it).
        let conditional = req.headers().keys().any(|k| {
            k == header::IF_NONE_MATCH || k == header::IF_MODIFIED_SINCE || k == header::RANGE
        });
        if conditional {
            return None;
        }
        let hot = self.hot.get(req.uri().path(), &self.root)?;
        if codings.is_empty() || !hot.type_compressible {
            return hot.at_once(head, None, req.version());
        }
        // A text file the client takes compressed: its copy in the client's first coding, once
        // one was made (not when a precompressed sibling is served from the disk instead).
        let coding = *codings.first()?;
        if !hot.compressible() || hot.precompressed {
            return None;
        }
        hot.at_once(head, Some(coding), req.version())
    }

    /// `codings`: what the client takes a precompressed copy in, best first.
    pub(crate) async fn serve<B>(&self, req: &Request<B>, codings: &[Coding]) -> Response<Body> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut res = page(
                StatusCode::METHOD_NOT_ALLOWED,
                "This address serves files: only GET and HEAD are allowed.",
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return res;
        }
        let raw_path = req.uri().path();
        if let Some(hot) = self.hot.get(raw_path, &self.root)
            // A file with a precompressed copy the client may take is served from the disk.
            && !(hot.precompressed && precompressed::wanted(req, codings))
        {
            return hot::serve(&self.hot, (req, codings), raw_path, hot);
        }
        let segments = match decode_path(raw_path, self.root.options.hidden) {
            Ok(s) => s,
            Err(PathRefusal::Traversal) => {
                return page(StatusCode::BAD_REQUEST, "The path is not allowed.");
            }
            Err(PathRefusal::Hidden) => return not_found(raw_path),
        };
        let rel: PathBuf = segments.iter().map(|s| OsStr::from_bytes(s)).collect();
        let Some((file, meta)) = self.root.open(&rel) else {
            return self.missing(raw_path, segments.is_empty());
        };
        if meta.is_dir() {
            return self
                .serve_dir((req, codings), &rel, raw_path, segments.is_empty())
                .await;
        }
        self.serve_file((req, codings), raw_path, rel, file, &meta)
    }

    /// Answers with `file` (already open) found at `rel` in the root for `raw_path`; `rel`
    /// chooses the MIME type. A small one is kept for the next request.
    fn serve_file<B>(
        &self,
        (req, codings): (&Request<B>, &[Coding]),
        raw_path: &str,
        rel: PathBuf,
        file: std::fs::File,
        meta: &Metadata,
    ) -> Response<Body> {
        let facts = Facts::of(meta, &rel);
        if precompressed::wanted(req, codings)
            && let Some(sibling) = precompressed::choose(codings, &self.root, &rel, &facts)
        {
            return precompressed::serve(req, &self.root, facts, sibling);
        }
        if hot::worth_keeping(meta.len()) {
            let mut body = vec![0u8; meta.len() as usize];
            if std::os::unix::fs::FileExt::read_exact_at(&file, &mut body, 0).is_ok() {
                let siblings = precompressed::any(&self.root, &rel, &facts);
                let identity = FileIdentity::of(meta);
                let hot = hot::HotFile::new(rel, identity, facts, body.into(), self.hot.outgoing())
                    .with_precompressed(siblings);
                let hot = self.hot.insert(raw_path, hot);
                return hot::serve(&self.hot, (req, codings), raw_path, hot);
            }
        }
        respond(req, &facts, |start, count| {
            body_for((&self.root, &rel), file, start, count)
        })
    }

    async fn serve_dir<B>(
        &self,
        (req, codings): (&Request<B>, &[Coding]),
        rel: &Path,
        raw_path: &str,
        is_root: bool,
    ) -> Response<Body> {
        if !raw_path.ends_with('/') {
            // Relative links in the index page need the trailing slash (as nginx does).
            let mut location = format!("{raw_path}/");
            if let Some(q) = req.uri().query() {
                location.push('?');
                location.push_str(q);
            }
            return moved(&location);
        }
        let index = rel.join("index.html");
        if let Some((file, meta)) = self.root.open(&index).filter(|(_, m)| m.is_file()) {
            return self.serve_file((req, codings), raw_path, index, file, &meta);
        }
        if self.root.options.listing {
            // A folder can hold many entries: read it on the blocking pool.
            let (dir, hidden) = (self.root.path.join(rel), self.root.options.hidden);
            let rows = tokio::task::spawn_blocking(move || read_entries(&dir, hidden)).await;
            return match rows {
                Ok(Ok(rows)) => listing(rows, raw_path),
                _ => not_found(raw_path),
            };
        }
        self.missing(raw_path, is_root)
    }

    fn missing(&self, raw_path: &str, is_root: bool) -> Response<Body> {
        if is_root && self.welcome {
            // The folder's path is left out: visitors from elsewhere have no business knowing
            // where on this machine the site lives.
            return html(StatusCode::OK, WELCOME_PAGE.replace("{style}", STYLE));
        }
        not_found(raw_path)
    }
}

/// A folder's entries, folders first, then files, each by name (the order of ls and of most
/// file managers).
fn read_entries(dir: &Path, hidden: bool) -> std::io::Result<Vec<Entry>> {
    let mut rows: Vec<Entry> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| hidden || !is_hidden(&e.file_name()))
        .map(|e| Entry::of(&e))
        .collect();
    rows.sort_by(|a, b| (!a.is_dir, &a.name).cmp(&(!b.is_dir, &b.name)));
    Ok(rows)
}

fn listing(rows: Vec<Entry>, raw_path: &str) -> Response<Body> {
    let title = format!("Index of {}", percent_decode_lossy(raw_path));
    let mut body = format!(
        "<h1>{}</h1>\n<table>\n<thead><tr><th>Name</th><th class=\"size\">Size</th><th>Modified (UTC)</th></tr></thead>\n<tbody>\n",
        escape_html(&title)
    );
    if raw_path != "/" {
        body.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for row in rows {
        body.push_str(&row.html());
    }
    body.push_str("</tbody>\n</table>");
    html(StatusCode::OK, styled_page(&title, &body))
}

/// One line of a folder listing.
struct Entry {
    name: String,
    is_dir: bool,
    /// `None` for folders and for entries whose metadata cannot be read (a dangling symlink).
    size: Option<u64>,
    modified: Option<SystemTime>,
}

impl Entry {
    fn of(e: &std::fs::DirEntry) -> Entry {
        // Follows symlinks, as opening the link would.
        let meta = std::fs::metadata(e.path()).ok();
        let is_dir = meta.as_ref().is_some_and(Metadata::is_dir);
        Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            is_dir,
            size: meta.as_ref().filter(|m| m.is_file()).map(Metadata::len),
            modified: meta.and_then(|m| m.modified().ok()),
        }
    }

    fn html(&self) -> String {
        let slash = if self.is_dir { "/" } else { "" };
        let href = percent_encoding::utf8_percent_encode(&self.name, HREF_ENCODE);
        let size = self.size.map(human_size).unwrap_or_default();
        let date = self.modified.map(listing_date).unwrap_or_default();
        format!(
            "<tr><td><a href=\"{href}{slash}\">{}{slash}</a></td><td class=\"size\">{size}</td><td class=\"date\">{date}</td></tr>\n",
            escape_html(&self.name)
        )
    }
}

/// A size as people read it: bytes up to 1 KiB, then KiB, MiB, GiB with one decimal.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2025-01-31 14:05`, in UTC (the server's time zone would mean nothing to a visitor).
fn listing_date(t: SystemTime) -> String {
    let iso = humantime::format_rfc3339_seconds(t).to_string();
    match (iso.get(..10), iso.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time}"),
        _ => iso,
    }
}

const HREF_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn is_hidden(name: &OsStr) -> bool {
    name.as_bytes().first() == Some(&b'.')
}

/// Splits and percent-decodes a request path into file-name segments. Empty segments
/// (`//`) are skipped.
fn decode_path(raw: &str, allow_hidden: bool) -> Result<Vec<Vec<u8>>, PathRefusal> {
    let mut out = Vec::new();
    for seg in raw.split('/').filter(|s| !s.is_empty()) {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(seg).collect();
        if decoded == b"."
            || decoded == b".."
            || decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0))
        {
            return Err(PathRefusal::Traversal);
        }
        if decoded.first() == Some(&b'.') && !allow_hidden {
            return Err(PathRefusal::Hidden);
        }
        out.push(decoded);
    }
    // Belt and braces: no component of the result may be anything but a normal name.
    let joined: PathBuf = out.iter().map(|s| OsStr::from_bytes(s)).collect();
    if joined
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(PathRefusal::Traversal);
    }
    Ok(out)
}

fn percent_decode_lossy(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn not_found(raw_path: &str) -> Response<Body> {
    page(
        StatusCode::NOT_FOUND,
        &format!("Nothing is served at {}", percent_decode_lossy(raw_path)),
    )
}

fn moved(location: &str) -> Response<Body> {
    let mut res = Response::new(empty());
    *res.status_mut() = StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res
}

/// Validators for a file: a strong ETag from size and modification time, and Last-Modified.
#[derive(Clone)]
struct Validators {
    etag: String,
    modified: SystemTime,
}

impl Validators {
    fn of(meta: &Metadata) -> Self {
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let nanos = modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Validators {
            etag: format!("\"{:x}-{:x}\"", meta.len(), nanos),
            modified,
        }
    }

    /// RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(inm) = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            return inm
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == self.etag);
        }
        let Some(ims) = headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        httpdate::parse_http_date(ims).is_ok_and(|since| truncate_secs(self.modified) <= since)
    }

    /// RFC 9110 §13.1.5: a Range is honoured only if If-Range (when sent) still matches.
    fn range_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
            None => true,
            Some(v) if v.starts_with('"') => v == self.etag,
            Some(v) => {
                httpdate::parse_http_date(v).is_ok_and(|d| d == truncate_secs(self.modified))
            }
        }
    }
}

fn truncate_secs(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// A single `bytes=` range resolved against the file length, per RFC 9110 §14.1.2.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// No usable Range header (absent, malformed or several ranges): send the whole file.
    Whole,
    Part {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

fn parse_range(value: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (num(first), num(last)) {
        (Some(start), _) if start >= len => RangeRequest::Unsatisfiable,
        (Some(start), None) if last.is_empty() => RangeRequest::Part {
            start,
            end: len - 1,
        },
        (Some(start), Some(end)) if end >= start => RangeRequest::Part {
            start,
            end: end.min(len - 1),
        },
        (None, Some(0)) if first.is_empty() => RangeRequest::Unsatisfiable,
        (None, Some(suffix)) if first.is_empty() => match len {
            0 => RangeRequest::Unsatisfiable,
            _ => RangeRequest::Part {
                start: len.saturating_sub(suffix),
                end: len - 1,
            },
        },
        _ => RangeRequest::Whole,
    }
}

fn content_type(path: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let needs_charset = mime.type_() == mime_guess::mime::TEXT
        || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml");
    let value = match needs_charset && mime.get_param("charset").is_none() {
        true => format!("{mime}; charset=utf-8"),
        false => mime.to_string(),
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

/// What a file's responses say about it, ready to send: computed once per file (or once per
/// request for files too large to keep).
#[derive(Clone)]
struct Facts {
    len: u64,
    validators: Validators,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
    content_type: HeaderValue,
    /// Content-Length of the whole file.
    length: HeaderValue,
}

impl Facts {
    fn of(meta: &Metadata, path: &Path) -> Self {
        let validators = Validators::of(meta);
        Facts {
            len: meta.len(),
            etag: HeaderValue::from_str(&validators.etag).ok(),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(validators.modified))
                .ok(),
            validators,
            content_type: content_type(path),
            length: HeaderValue::from(meta.len()),
        }
    }
}

/// The head [`respond`] gives a whole file: its validators, type and length.
fn whole_head(facts: &Facts) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(12);
    validator_headers(&mut h, facts);
    h.insert(header::CONTENT_TYPE, facts.content_type.clone());
    h.insert(header::CONTENT_LENGTH, facts.length.clone());
    h
}

/// ETag, Last-Modified and Accept-Ranges: what a 304 carries too.
fn validator_headers(h: &mut HeaderMap, facts: &Facts) {
    if let Some(etag) = &facts.etag {
        h.insert(header::ETAG, etag.clone());
    }
    if let Some(lm) = &facts.last_modified {
        h.insert(header::LAST_MODIFIED, lm.clone());
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}

/// The response for a file described by `facts`: 304, 416 and HEAD from the facts alone; for
/// the rest `body(start, count)` gives the bytes.
fn respond<B>(
    req: &Request<B>,
    facts: &Facts,
    body: impl FnOnce(u64, u64) -> std::io::Result<Body>,
) -> Response<Body> {
    let (len, v) = (facts.len, &facts.validators);
    let mut res = Response::new(empty());
    let h = res.headers_mut();
    h.reserve(8);
    validator_headers(h, facts);
    if v.not_modified(req.headers()) {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        return res;
    }
    h.insert(header::CONTENT_TYPE, facts.content_type.clone());
    let range = match v.range_allowed(req.headers()) {
        true => parse_range(
            req.headers()
                .get(header::RANGE)
                .and_then(|r| r.to_str().ok()),
            len,
        ),
        false => RangeRequest::Whole,
    };
    let (start, end) = match range {
        RangeRequest::Whole => (0, len.saturating_sub(1)),
        RangeRequest::Part { start, end } => {
            *res.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(cr) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, cr);
            }
            (start, end)
        }
        RangeRequest::Unsatisfiable => {
            let mut res = page(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "The requested range is outside the file.",
            );
            if let Ok(cr) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, cr);
            }
            return res;
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let length = match count == len {
        true => facts.length.clone(),
        false => HeaderValue::from(count),
    };
    res.headers_mut().insert(header::CONTENT_LENGTH, length);
    if req.method() == Method::HEAD || count == 0 {
        return res;
    }
    match body(start, count) {
        Ok(body) => {
            *res.body_mut() = body;
            res
        }
        Err(e) => {
            tracing::warn!(path = req.uri().path(), error = %e, "cannot read file");
            page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The file could not be read.",
            )
        }
    }
}

/// Small files are read at once (page-cache reads cost less than a thread hand-off). Larger
/// ones stream in chunks ([`chunks`]) without holding the whole file in memory: their
/// first chunk is read now, and the file is closed and opened again only when the client has
/// taken that chunk. hyper asks an HTTP/2 body for its first chunk before the stream has any
/// window, so a client that never opens its window costs a chunk of memory, not a file
/// descriptor.
fn body_for(
    (root, path): (&Arc<Root>, &Path),
    file: std::fs::File,
    start: u64,
    count: u64,
) -> std::io::Result<Body> {
    let first_len = count.min(match count <= READ_WHOLE_LIMIT {
        true => READ_WHOLE_LIMIT,
        false => STREAM_CHUNK as u64,
    });
    let mut first = vec![0u8; first_len as usize];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut first, start)?;
    if first_len == count {
        return Ok(full(Bytes::from(first)));
    }
    let identity = FileIdentity::of(&file.metadata()?);
    drop(file);
    let (root, path) = (root.clone(), path.to_owned());
    let shown = root.path.join(&path);
    let (rest_start, rest) = (start + first_len, count - first_len);
    let rest = futures_util::stream::once(async move {
        let file = tokio::task::spawn_blocking(move || root.reopen(&path, identity))
            .await
            .map_err(std::io::Error::other)??;
        Ok::<_, std::io::Error>(chunks::FileChunks::new(file, rest_start, rest))
    })
    .try_flatten()
    // Headers are gone by now: the client sees a cut connection, the log says why.
    .inspect_err(move |e| {
        tracing::warn!(file = %shown.display(), error = %e, "cannot read file; its response was cut short")
    });
    let first = futures_util::stream::once(std::future::ready(Ok(Bytes::from(first))));
    Ok(BodyExt::boxed(StreamBody::new(
        first.chain(rest).map_ok(Frame::data),
    )))
}

/// What makes an open file the same file: its device and inode, size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileIdentity {
    fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

impl Root {
    /// Opens `rel` again, the same way as the first time; the headers already sent describe
    /// that file, so anything else (replaced, grown, truncated) ends the response with an error.
    fn reopen(&self, rel: &Path, identity: FileIdentity) -> std::io::Result<std::fs::File> {
        let changed = || std::io::Error::other("the file changed while it was being served");
        let (file, meta) = self.open(rel).ok_or_else(changed)?;
        match FileIdentity::of(&meta) == identity {
            true => Ok(file),
            false => Err(changed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_in_every_encoding_is_refused() {
        for raw in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/..%2fetc",
            "/a%2f..%2f..",
            "/a\\..\\b",
            "/a%5c..",
            "/x%00.html",
            "/./a",
        ] {
            assert_eq!(
                decode_path(raw, false),
                Err(PathRefusal::Traversal),
                "{raw}"
            );
        }
    }

    #[test]
    fn dot_names_are_hidden_unless_allowed() {
        assert_eq!(decode_path("/.git/config", false), Err(PathRefusal::Hidden));
        assert_eq!(decode_path("/a/%2eenv", false), Err(PathRefusal::Hidden));
        assert!(decode_path("/.well-known/x", true).is_ok());
    }

    #[test]
    fn ordinary_paths_decode_to_segments() {
        assert_eq!(
            decode_path("/a%20b//c.txt", false),
            Ok(vec![b"a b".to_vec(), b"c.txt".to_vec()])
        );
        assert_eq!(decode_path("/", false), Ok(vec![]));
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(
            parse_range(Some("bytes=0-9"), 100),
            RangeRequest::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=90-"), 100),
            RangeRequest::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100),
            RangeRequest::Part { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=-500"), 100),
            RangeRequest::Part { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=50-500"), 100),
            RangeRequest::Part { start: 50, end: 99 }
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(Some("lines=1-2"), 100), RangeRequest::Whole);
        assert_eq!(parse_range(None, 100), RangeRequest::Whole);
    }

    #[test]
    fn listing_sizes_and_dates_read_like_ls_h() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(listing_date(t), "2023-11-14 22:13");
    }

    #[test]
    fn text_types_carry_a_charset() {
        assert_eq!(
            content_type(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
