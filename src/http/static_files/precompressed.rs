//! Precompressed copies beside a file (`app.js.zst`, `.br`, `.gz`), served instead of it to a
//! client that accepts their coding, as Caddy's `precompressed` and nginx's `gzip_static` do.
//! A copy counts only while it is a regular file at least as new as the original, so a stale
//! one never hides an edit; it is opened the same confined way as the original. Never for a
//! Range request (ranges are cut from the identity bytes), and only looked for beside types
//! worth compressing: images and videos cost no extra lookups. `http::compression` adds Vary
//! and the per-coding ETag, as for on-the-fly compression.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderValue, Request, Response, StatusCode, header};

use super::{Body, Facts, Root, body_for, respond};
use crate::http::compression::{self, Coding};

pub(super) struct Sibling {
    coding: Coding,
    rel: PathBuf,
    file: std::fs::File,
    len: u64,
}

/// Whether the request could take a precompressed copy: it accepts a coding and asks for no
/// range.
pub(super) fn wanted<B>(req: &Request<B>, codings: &[Coding]) -> bool {
    !codings.is_empty() && !req.headers().contains_key(header::RANGE)
}

/// The fresh copy of `rel` in the coding the client prefers among those that exist.
pub(super) fn choose(
    codings: &[Coding],
    root: &Root,
    rel: &Path,
    facts: &Facts,
) -> Option<Sibling> {
    let modified = worth_looking(facts)?;
    codings
        .iter()
        .find_map(|&coding| sibling(root, rel, coding, modified))
}

/// Whether `rel` has a fresh copy in any coding (kept with a file held in memory).
pub(super) fn any(root: &Root, rel: &Path, facts: &Facts) -> bool {
    worth_looking(facts).is_some_and(|modified| {
        Coding::ALL
            .iter()
            .any(|&c| sibling(root, rel, c, modified).is_some())
    })
}

/// The original's modification time, when its type is worth compressing.
fn worth_looking(facts: &Facts) -> Option<SystemTime> {
    let compressible = facts
        .content_type
        .to_str()
        .is_ok_and(compression::compressible);
    compressible.then_some(facts.validators.modified)
}

fn sibling(root: &Root, rel: &Path, coding: Coding, modified: SystemTime) -> Option<Sibling> {
    let mut name = rel.as_os_str().to_owned();
    name.push(".");
    name.push(coding.extension());
    let rel = PathBuf::from(name);
    let (file, meta) = root.open(&rel)?;
    let fresh = meta.is_file() && meta.len() > 0 && meta.modified().is_ok_and(|m| m >= modified);
    fresh.then_some(Sibling {
        coding,
        rel,
        file,
        len: meta.len(),
    })
}

/// The copy's bytes under the original's type and validators (a 304 is the original's),
/// marked for `http::compression`.
pub(super) fn serve<B>(
    req: &Request<B>,
    root: &Arc<Root>,
    facts: Facts,
    sibling: Sibling,
) -> Response<Body> {
    let Sibling {
        coding,
        rel,
        file,
        len,
    } = sibling;
    let facts = Facts {
        len,
        length: HeaderValue::from(len),
        ..facts
    };
    let res = respond(req, &facts, |start, count| {
        body_for((root, &rel), file, start, count)
    });
    mark(res, coding)
}

/// A response whose body is already in `coding`: a 200 says so, for the client and for
/// `http::compression` (a 304 or 416 is the original's).
pub(super) fn mark(mut res: Response<Body>, coding: Coding) -> Response<Body> {
    if res.status() == StatusCode::OK {
        res.headers_mut().insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
        res.extensions_mut()
            .insert(compression::Precompressed(coding));
    }
    res
}
