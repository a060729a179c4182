//! Response compression: zstd, brotli or gzip, chosen by the request's Accept-Encoding (RFC 9110
//! §12.5.3) for text, JSON, JavaScript, SVG, XML and wasm above [`defaults::COMPRESS_MIN_BYTES`].
//!
//! The module owns the whole HTTP side of it, on any response path (static files, the proxy,
//! error pages, and whatever serves hyper responses next): [`Negotiation::of`] reads the request
//! before a handler sees it, [`Negotiation::apply`] rewrites the response after. The handlers
//! know nothing of it, except that static files look for precompressed siblings
//! (`app.js.zst`, `.br`, `.gz`) in the order [`Negotiation::codings`] gives and mark what they
//! found with [`Precompressed`], and a file kept in memory asks, with [`KeepCompressed`], for
//! its compressed bytes once they are complete, to serve them as such to the next client.
//!
//! What is never compressed: a response whose upstream set Content-Encoding (left untouched),
//! one with `Cache-Control: no-transform` (RFC 9111 §5.2.2.6), partial content (a Range answer
//! is always cut from the identity bytes, so offsets mean the same for every client), HEAD
//! bodies (their headers still match GET's), upgrades.
//!
//! Streams stay streams: the encoder is flushed whenever the source has nothing more ready, so
//! each event of an event stream (or chunk of a proxied body) leaves as soon as it arrived,
//! while a file read in one go is compressed in one piece.
//!
//! Validators: a compressed representation gets its own weak ETag, the identity one with the
//! coding appended (`W/"abc-zstd"`, as Caddy does); a request's If-None-Match has that suffix
//! removed before the handler compares it with its own tags.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_compression::Level;
use async_compression::tokio::write::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use tokio::io::AsyncWrite;

use super::Body;
use crate::config::defaults;

/// RFC 9530 (not among `http`'s names; a constant spares parsing it per response).
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("content-digest");

/// A content coding candado produces, in the server's order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Zstd,
    Brotli,
    Gzip,
}

impl Coding {
    /// Server preference: zstd (fastest for its size), then brotli, then gzip.
    pub(crate) const ALL: [Coding; 3] = [Coding::Zstd, Coding::Brotli, Coding::Gzip];

    /// The Content-Encoding token (RFC 9110 §8.4.1, RFC 8878, RFC 7932).
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file-name extension of a precompressed sibling (`app.js.br`).
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Coding::Zstd => "zst",
            Coding::Brotli => "br",
            Coding::Gzip => "gz",
        }
    }

    /// Appended to the identity ETag's opaque part.
    fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Zstd => "-zstd",
            Coding::Brotli => "-br",
            Coding::Gzip => "-gzip",
        }
    }
}

/// Set by a handler on a response whose body is already in `Coding` (a precompressed file):
/// its headers get the same treatment as an on-the-fly one, its body is left as it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Precompressed(pub(crate) Coding);

/// Set by a handler on a response whose compressed body it wants once it is whole (a file kept
/// in memory): called with the coding and every compressed byte when the stream has ended
/// without error, never for a body cut short.
#[derive(Clone)]
pub(crate) struct KeepCompressed(pub(crate) Arc<dyn Fn(Coding, Bytes) + Send + Sync>);

/// What the client accepts, read from one request; put in its extensions for the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Negotiation {
    /// Acceptable codings (q > 0), best first: the client's q-values, then server preference;
    /// the first `accepted` of them (no allocation per request).
    codings: [Coding; 3],
    accepted: usize,
    /// The client sent `identity;q=0` (or `*;q=0` without naming identity): then even a small
    /// body is compressed when it can be.
    identity_refused: bool,
    /// The client gave identity a higher q-value than every coding it accepts.
    identity_preferred: bool,
    /// Which coding's suffix was taken off the request's If-None-Match, so that a 304 carries
    /// the tag the client has.
    stripped: Option<Coding>,
}

impl Negotiation {
    /// Reads Accept-Encoding and rewrites If-None-Match for the handler.
    pub(crate) fn of<B>(req: &mut Request<B>) -> Negotiation {
        let mut n = parse_accept_encoding(req.headers());
        if let Some((value, coding)) = strip_if_none_match(req.headers(), n.accepted()) {
            req.headers_mut().insert(header::IF_NONE_MATCH, value);
            n.stripped = Some(coding);
        }
        n
    }

    /// The codings a precompressed file may be in, best first; none when the client prefers
    /// identity.
    pub(crate) fn codings(&self) -> &[Coding] {
        match self.identity_preferred {
            true => &[],
            false => self.accepted(),
        }
    }

    /// Every coding the client accepts, best first.
    fn accepted(&self) -> &[Coding] {
        &self.codings[..self.accepted]
    }

    /// The response as the client gets it: compressed when everything allows it, with Vary and
    /// a per-coding ETag whenever the representation depends on Accept-Encoding.
    pub(crate) fn apply(&self, method: &Method, mut res: Response<Body>) -> Response<Body> {
        let status = res.status();
        if method == Method::CONNECT || status.is_informational() {
            return res;
        }
        if status == StatusCode::NOT_MODIFIED {
            add_vary(res.headers_mut());
            if let Some(coding) = self.stripped {
                suffix_etag(res.headers_mut(), coding);
            }
            return res;
        }
        if let Some(Precompressed(coding)) = res.extensions().get::<Precompressed>().copied() {
            finish_precompressed(res.headers_mut(), coding);
            return res;
        }
        if !varies(res.headers()) {
            return res;
        }
        add_vary(res.headers_mut());
        let Some(coding) = self.choose(method, &res) else {
            return res;
        };
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
        h.remove(header::CONTENT_LENGTH);
        h.remove(header::ACCEPT_RANGES);
        suffix_etag(h, coding);
        if method == Method::HEAD {
            return res;
        }
        let keep = res.extensions_mut().remove::<KeepCompressed>();
        res.map(|body| Encoded::new(body, coding).keeping(keep).boxed())
    }

    /// The coding to compress this response with, if any.
    fn choose(&self, method: &Method, res: &Response<Body>) -> Option<Coding> {
        let status = res.status();
        let partial = status == StatusCode::PARTIAL_CONTENT
            || res.headers().contains_key(header::CONTENT_RANGE);
        let no_body = matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::NOT_MODIFIED
        );
        if partial || no_body || self.identity_preferred {
            return None;
        }
        // HEAD has an empty body but the GET's Content-Length: decide on the header alone.
        let length = content_length(res.headers()).or_else(|| match method == Method::HEAD {
            true => None,
            false => http_body::Body::size_hint(res.body()).exact(),
        });
        let small = length.is_some_and(|n| n < defaults::COMPRESS_MIN_BYTES);
        if length == Some(0) || (small && !self.identity_refused) {
            return None;
        }
        self.accepted().first().copied()
    }
}

/// Whether a Content-Type names a type worth compressing: text, JSON, JavaScript, XML (SVG,
/// Atom, RSS), wasm, and newline-delimited JSON (LLM streams).
pub(crate) fn compressible(content_type: &str) -> bool {
    // Bytes, compared in place, case-insensitively (RFC 9110 §8.3.1): this runs on every
    // response (a `str` split by a `char` cost four times as many instructions).
    let bytes = content_type.as_bytes();
    let essence = bytes
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let Some(slash) = essence.iter().position(|&b| b == b'/') else {
        return false;
    };
    let (kind, sub) = (&essence[..slash], &essence[slash + 1..]);
    let ends = |suffix: &[u8]| {
        sub.len() >= suffix.len() && sub[sub.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    };
    let application = [
        "json",
        "javascript",
        "x-javascript",
        "ecmascript",
        "xml",
        "wasm",
        "x-ndjson",
        "graphql",
    ];
    kind.eq_ignore_ascii_case(b"text")
        || ends(b"+json")
        || ends(b"+xml")
        || (kind.eq_ignore_ascii_case(b"application")
            && application
                .iter()
                .any(|a| sub.eq_ignore_ascii_case(a.as_bytes())))
}

/// RFC 9110 §12.5.3. A coding not named takes `*`'s q-value, or is not acceptable; identity
/// not named takes `*`'s, or is acceptable. No header: identity (what every server does,
/// though the RFC would allow any coding). `x-gzip` is gzip (RFC 9110 §8.4.1.3).
fn parse_accept_encoding(h: &HeaderMap) -> Negotiation {
    // q-values in thousandths: `*`, identity, then each of `Coding::ALL`.
    let mut qs: [Option<u16>; 5] = [None; 5];
    for element in h
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = element.split(';');
        let token = parts.next().unwrap_or_default().trim();
        let named = |t: &str| token.eq_ignore_ascii_case(t);
        let slot = match () {
            _ if token == "*" => 0,
            _ if named("identity") => 1,
            _ if named("zstd") => 2,
            _ if named("br") => 3,
            _ if named("gzip") || named("x-gzip") => 4,
            _ => continue,
        };
        // A q-value that cannot be read makes the whole element unreadable: it is skipped.
        let Some(q) = parts.map(str::trim).try_fold(1000, |q, param| {
            match param.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some((k, v)) if k.eq_ignore_ascii_case("q") => qvalue(v),
                _ => Some(q),
            }
        }) else {
            continue;
        };
        qs[slot] = Some(q);
    }
    let [star, identity, named @ ..] = qs;
    // Not acceptable ones get q 0 and sort last; the sort is stable, so equal q-values keep
    // the server's order.
    let mut ranked = [0, 1, 2].map(|i| (Coding::ALL[i], named[i].or(star).unwrap_or(0)));
    ranked.sort_by_key(|&(_, q)| std::cmp::Reverse(q));
    let accepted = ranked.iter().filter(|&&(_, q)| q > 0).count();
    // Identity not named is acceptable but ranks last; named (or by `*`), its q-value counts.
    let identity_q = identity.or(star);
    Negotiation {
        identity_preferred: accepted > 0 && identity_q.is_some_and(|i| i > ranked[0].1),
        codings: ranked.map(|(c, _)| c),
        accepted,
        identity_refused: identity_q == Some(0),
        stripped: None,
    }
}

/// A qvalue (RFC 9110 §12.4.2) in thousandths: `0`, `0.5`, `1`, `1.000`.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac.bytes().chain(std::iter::repeat(b'0')).take(3);
    let frac = thousandths.fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// If-None-Match with the tags candado made for an acceptable coding turned back into the
/// handler's own (`W/"abc-br"` → `W/"abc"`), and the first coding whose suffix was removed.
/// `None` when nothing changes.
fn strip_if_none_match(h: &HeaderMap, accepted: &[Coding]) -> Option<(HeaderValue, Coding)> {
    let value = h.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let mut first = None;
    let tags: Vec<String> = entity_tags(value)
        .map(|tag| {
            let stripped = accepted.iter().find_map(|&c| {
                let opaque = tag.trim_start_matches("W/");
                let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
                Some((format!("W/\"{}\"", inner.strip_suffix(c.etag_suffix())?), c))
            });
            match stripped {
                Some((t, c)) => {
                    first.get_or_insert(c);
                    t
                }
                None => tag.to_owned(),
            }
        })
        .collect();
    let coding = first?;
    Some((HeaderValue::from_str(&tags.join(", ")).ok()?, coding))
}

/// The entity tags of an If-None-Match value: `*`, `"x"`, `W/"x"` (commas may sit inside the
/// quotes, RFC 9110 §8.8.3).
fn entity_tags(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return None;
        }
        let start = usize::from(rest.starts_with("W/")) * 2;
        let end = match rest[start..].strip_prefix('"') {
            Some(after) => after.find('"').map_or(rest.len(), |i| start + i + 2),
            None => rest.find(',').unwrap_or(rest.len()),
        };
        let (tag, tail) = rest.split_at(end);
        rest = tail;
        Some(tag.trim())
    })
}

/// `W/"abc-zstd"` from `"abc"` or `W/"abc"`. A tag that is not one is removed: it would
/// otherwise name two representations.
fn suffix_etag(h: &mut HeaderMap, coding: Coding) {
    let Some(tag) = h.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
        h.remove(header::ETAG);
        return;
    };
    let opaque = tag.trim_start_matches("W/");
    let tagged = opaque
        .strip_prefix('"')
        .and_then(|o| o.strip_suffix('"'))
        .and_then(|inner| {
            HeaderValue::from_str(&format!("W/\"{inner}{}\"", coding.etag_suffix())).ok()
        });
    match tagged {
        Some(v) => h.insert(header::ETAG, v),
        None => h.remove(header::ETAG),
    };
}

/// Whether the response's representation would depend on Accept-Encoding: a compressible
/// type that nobody has encoded yet and that may be transformed. (A Content-Digest, RFC
/// 9530, vouches for the bytes as they are: compressing would make it a lie.)
fn varies(h: &HeaderMap) -> bool {
    // One pass over the fields instead of four hashed lookups: this runs on every response.
    let mut content_type = None;
    for (name, value) in h {
        if name == header::CONTENT_ENCODING || name == CONTENT_DIGEST {
            return false;
        }
        if name == header::CACHE_CONTROL && names_token(std::iter::once(value), "no-transform") {
            return false;
        }
        if name == header::CONTENT_TYPE {
            content_type.get_or_insert(value);
        }
    }
    content_type
        .and_then(|v| v.to_str().ok())
        .is_some_and(compressible)
}

/// What [`Negotiation::apply`] does to a response whose body was already in `coding` (a
/// precompressed file, or a hot file's compressed copy): Vary, the coding's ETag, and no
/// byte ranges (they would count the compressed bytes).
pub(crate) fn finish_precompressed(h: &mut HeaderMap, coding: Coding) {
    add_vary(h);
    suffix_etag(h, coding);
    h.remove(header::ACCEPT_RANGES);
}

/// What [`Negotiation::apply`] adds to a whole response it chooses no coding for: Vary, when
/// the representation depends on Accept-Encoding. Hot files have it done once, for every
/// request that cannot be compressed (see `Router::handle`).
pub(crate) fn vary_uncompressed(h: &mut HeaderMap) {
    if varies(h) {
        add_vary(h);
    }
}

/// `Vary: Accept-Encoding`, unless Vary already says so (or says `*`).
fn add_vary(h: &mut HeaderMap) {
    let accept_encoding = HeaderValue::from_static("accept-encoding");
    // One lookup: this runs on every compressible response, which rarely has a Vary yet.
    match h.entry(header::VARY) {
        header::Entry::Vacant(vary) => drop(vary.insert(accept_encoding)),
        header::Entry::Occupied(mut vary) => {
            let named = |token| names_token(vary.iter(), token);
            if !named("accept-encoding") && !named("*") {
                vary.append(accept_encoding);
            }
        }
    }
}

/// Whether any of `values` (comma-separated lists) names `token`.
fn names_token<'a>(values: impl Iterator<Item = &'a HeaderValue>, token: &str) -> bool {
    values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.split(['=', ';']).next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case(token)
        })
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// One encoder writing into a buffer that the body hands out as frames. (Brotli's state is
/// over 5 KB: boxed, so the others do not carry its size.)
enum Encoder {
    Zstd(ZstdEncoder<Vec<u8>>),
    Brotli(Box<BrotliEncoder<Vec<u8>>>),
    Gzip(GzipEncoder<Vec<u8>>),
}

impl Encoder {
    fn new(coding: Coding, level: i32) -> Self {
        let (out, level) = (Vec::new(), Level::Precise(level));
        match coding {
            Coding::Zstd => Encoder::Zstd(ZstdEncoder::with_quality(out, level)),
            Coding::Brotli => Encoder::Brotli(Box::new(BrotliEncoder::with_quality(out, level))),
            Coding::Gzip => Encoder::Gzip(GzipEncoder::with_quality(out, level)),
        }
    }

    fn writer(&mut self) -> Pin<&mut (dyn AsyncWrite + Unpin + Send)> {
        match self {
            Encoder::Zstd(e) => Pin::new(e),
            Encoder::Brotli(e) => Pin::new(e.as_mut()),
            Encoder::Gzip(e) => Pin::new(e),
        }
    }

    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Zstd(e) => e.get_mut(),
            Encoder::Brotli(e) => e.get_mut(),
            Encoder::Gzip(e) => e.get_mut(),
        }
    }

    /// Compresses `data` into the buffer. The encoders write into a `Vec`, which never makes
    /// them wait: `Pending` cannot happen, and is an error if it does.
    fn write(&mut self, cx: &mut Context<'_>, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            match ready_now(self.writer().poll_write(cx, data))? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => data = &data[n..],
            }
        }
        Ok(())
    }

    /// Emits everything compressed so far as a complete block the client can decode now.
    fn flush(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        ready_now(self.writer().poll_flush(cx))
    }

    /// Ends the compressed stream (its trailer: gzip's CRC, zstd's end frame).
    fn finish(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        ready_now(self.writer().poll_shutdown(cx))
    }

    fn coding(&self) -> Coding {
        match self {
            Encoder::Zstd(_) => Coding::Zstd,
            Encoder::Brotli(_) => Coding::Brotli,
            Encoder::Gzip(_) => Coding::Gzip,
        }
    }

    fn take(&mut self) -> Option<Bytes> {
        let out = std::mem::take(self.output());
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

fn ready_now<T>(p: Poll<io::Result<T>>) -> io::Result<T> {
    match p {
        Poll::Ready(r) => r,
        Poll::Pending => Err(io::Error::other(
            "a compressor waited on an in-memory buffer",
        )),
    }
}

/// A body compressed as it streams: what the source has ready is compressed together, and the
/// encoder is flushed whenever the source has to wait, so that nothing it sent is held back.
pub(crate) struct Encoded {
    inner: Body,
    encoder: Encoder,
    /// Input taken from the source and not compressed yet (a large frame is compressed a
    /// slice per poll).
    input: Bytes,
    /// Input written since the last flush.
    unflushed: bool,
    /// Trailers from the source, sent after the compressed stream ends.
    trailers: Option<HeaderMap>,
    state: State,
    /// Who wants the whole compressed body, and what has been sent of it so far.
    kept: Option<Kept>,
}

struct Kept {
    keep: KeepCompressed,
    coding: Coding,
    sent: Vec<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    /// The compressed stream is complete; trailers (if any) are still to be sent.
    Finished,
    Done,
}

impl Encoded {
    /// `inner` compressed at the level for on-the-fly compression ([`defaults::ZSTD_LEVEL`]…).
    pub(crate) fn new(inner: Body, coding: Coding) -> Self {
        let level = match coding {
            Coding::Zstd => defaults::ZSTD_LEVEL,
            Coding::Brotli => defaults::BROTLI_LEVEL,
            Coding::Gzip => defaults::GZIP_LEVEL,
        };
        Encoded::with_level(inner, coding, level)
    }

    pub(crate) fn with_level(inner: Body, coding: Coding, level: i32) -> Self {
        Encoded {
            inner,
            encoder: Encoder::new(coding, level),
            input: Bytes::new(),
            unflushed: false,
            trailers: None,
            state: State::Streaming,
            kept: None,
        }
    }

    /// Hands the whole compressed body to `keep` once it has been sent to the end.
    fn keeping(mut self, keep: Option<KeepCompressed>) -> Self {
        let coding = self.encoder.coding();
        self.kept = keep.map(|keep| Kept {
            keep,
            coding,
            sent: Vec::new(),
        });
        self
    }

    /// Notes what `polled` sent for [`KeepCompressed`]; at the end, hands it over.
    fn note(&mut self, polled: &Poll<Option<io::Result<Frame<Bytes>>>>) {
        let Some(kept) = &mut self.kept else { return };
        match polled {
            Poll::Ready(Some(Ok(frame))) => kept.sent.extend(frame.data_ref().cloned()),
            Poll::Ready(Some(Err(_))) => self.kept = None,
            _ => {}
        }
        if self.state != State::Streaming
            && let Some(kept) = self.kept.take()
        {
            (kept.keep.0)(kept.coding, kept.sent.concat().into());
        }
    }

    fn end(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.state = State::Finished;
        if let Err(e) = self.encoder.finish(cx) {
            return Poll::Ready(Some(Err(e)));
        }
        match self.encoder.take() {
            Some(out) => Poll::Ready(Some(Ok(Frame::data(out)))),
            None => self.after_end(),
        }
    }

    fn after_end(&mut self) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.state = State::Done;
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

impl hyper::body::Body for Encoded {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        let polled = this.poll_encoded(cx);
        this.note(&polled);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Encoded {
    fn poll_encoded(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        match self.state {
            State::Finished => return self.after_end(),
            State::Done => return Poll::Ready(None),
            State::Streaming => {}
        }
        // Compression runs on the runtime's threads: a bounded amount per poll keeps a large
        // body from holding one for milliseconds while other connections wait.
        let mut budget = defaults::COMPRESS_POLL_BUDGET;
        loop {
            if !self.input.is_empty() {
                if budget == 0 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                let slice = self.input.split_to(self.input.len().min(budget));
                budget -= slice.len();
                if let Err(e) = self.encoder.write(cx, &slice) {
                    return Poll::Ready(Some(Err(e)));
                }
                self.unflushed = true;
                if let Some(out) = self.encoder.take() {
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                continue;
            }
            match hyper::body::Body::poll_frame(Pin::new(&mut self.inner), cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => self.input = data,
                    Err(frame) => {
                        self.trailers = frame.into_trailers().ok();
                        return self.end(cx);
                    }
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return self.end(cx),
                Poll::Pending if self.unflushed => {
                    self.unflushed = false;
                    if let Err(e) = self.encoder.flush(cx) {
                        return Poll::Ready(Some(Err(e)));
                    }
                    return match self.encoder.take() {
                        Some(out) => Poll::Ready(Some(Ok(Frame::data(out)))),
                        None => Poll::Pending,
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use std::time::Duration;

    fn negotiate(accept: &str) -> Negotiation {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        parse_accept_encoding(&h)
    }

    #[test]
    fn the_server_order_breaks_ties_between_equal_q_values() {
        let n = negotiate("gzip, deflate, br, zstd");
        assert_eq!(n.accepted(), [Coding::Zstd, Coding::Brotli, Coding::Gzip]);
        assert!(!n.identity_refused && !n.identity_preferred);
    }

    #[test]
    fn the_client_q_values_come_before_the_server_order() {
        let n = negotiate("zstd;q=0.2, gzip;q=0.9, br;q=0.5");
        assert_eq!(n.accepted(), [Coding::Gzip, Coding::Brotli, Coding::Zstd]);
        let n = negotiate("br;q=0, gzip");
        assert_eq!(n.accepted(), [Coding::Gzip]);
    }

    #[test]
    fn a_star_covers_the_codings_not_named() {
        let n = negotiate("*;q=0.5, zstd;q=0");
        assert_eq!(n.accepted(), [Coding::Brotli, Coding::Gzip]);
        assert!(!n.identity_refused);
        let n = negotiate("*;q=0");
        assert!(n.accepted().is_empty() && n.identity_refused);
    }

    #[test]
    fn identity_can_be_refused_or_preferred() {
        let n = negotiate("gzip;q=0.5, identity;q=0");
        assert!(n.identity_refused && !n.identity_preferred);
        let n = negotiate("gzip;q=0.5, identity");
        assert!(n.identity_preferred && n.codings().is_empty());
    }

    #[test]
    fn unreadable_q_values_skip_their_element() {
        assert_eq!(negotiate("gzip;q=2, br;q=0.1234, zstd;q=x").accepted(), []);
        assert_eq!(negotiate("GZIP;Q=1.000").accepted(), [Coding::Gzip]);
        assert_eq!(negotiate("x-gzip").accepted(), [Coding::Gzip]);
        assert_eq!(negotiate("").accepted(), []);
        assert!(
            parse_accept_encoding(&HeaderMap::new())
                .accepted()
                .is_empty()
        );
    }

    #[test]
    fn q_values_read_as_thousandths() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.0"), Some(1000));
        assert_eq!(qvalue("1.1"), None);
        assert_eq!(qvalue(".5"), None);
    }

    #[test]
    fn compressible_types_are_text_json_javascript_xml_and_wasm() {
        for t in [
            "text/html; charset=utf-8",
            "text/event-stream",
            "application/json",
            "application/problem+json",
            "Application/JavaScript",
            "image/svg+xml",
            "application/wasm",
            "application/x-ndjson",
        ] {
            assert!(compressible(t), "{t}");
        }
        for t in [
            "image/png",
            "application/octet-stream",
            "video/mp4",
            "garbage",
        ] {
            assert!(!compressible(t), "{t}");
        }
    }

    #[test]
    fn if_none_match_loses_the_suffix_of_an_accepted_coding_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a,b\", W/\"x-br\", \"y-gzip\""),
        );
        let (v, c) = strip_if_none_match(&h, &[Coding::Brotli]).unwrap();
        assert_eq!(v, "\"a,b\", W/\"x\", \"y-gzip\"");
        assert_eq!(c, Coding::Brotli);
        assert!(strip_if_none_match(&h, &[Coding::Zstd]).is_none());
    }

    #[test]
    fn compressed_etags_are_weak_and_name_their_coding() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_static("\"5-abc\""));
        suffix_etag(&mut h, Coding::Zstd);
        assert_eq!(h[header::ETAG], "W/\"5-abc-zstd\"");
        h.insert(header::ETAG, HeaderValue::from_static("garbage"));
        suffix_etag(&mut h, Coding::Gzip);
        assert!(!h.contains_key(header::ETAG));
    }

    /// `data` in 64 KiB frames (as static files stream), with the source making the body wait
    /// between frames as a disk or an upstream would.
    fn framed(data: &[u8]) -> Body {
        let frames: Vec<Bytes> = data.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(frames).then(|b| async move {
            tokio::task::yield_now().await;
            Ok::<_, io::Error>(Frame::data(b))
        });
        BodyExt::boxed(http_body_util::StreamBody::new(stream))
    }

    async fn decode(coding: Coding, compressed: &[u8]) -> Vec<u8> {
        use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let read = match coding {
            Coding::Zstd => ZstdDecoder::new(compressed).read_to_end(&mut out).await,
            Coding::Brotli => BrotliDecoder::new(compressed).read_to_end(&mut out).await,
            Coding::Gzip => GzipDecoder::new(compressed).read_to_end(&mut out).await,
        };
        read.map(|_| out).unwrap()
    }

    #[tokio::test]
    async fn encoded_bodies_decode_to_their_source_in_every_coding() {
        let source: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} of {}\n", i % 977, i % 13).into_bytes())
            .take(300_000)
            .collect();
        for coding in Coding::ALL {
            let body = Encoded::new(framed(&source), coding);
            let compressed = body.collect().await.unwrap().to_bytes();
            assert!(compressed.len() < source.len() / 4, "{coding:?}");
            assert!(decode(coding, &compressed).await == source, "{coding:?}");
        }
    }

    #[tokio::test]
    async fn a_large_frame_is_compressed_a_bounded_slice_per_poll() {
        let source: Vec<u8> = (0..256 * 1024u32)
            .map(|i| b"candado "[(i % 8) as usize])
            .collect();
        for coding in Coding::ALL {
            let whole = http_body_util::Full::new(Bytes::from(source.clone()));
            let mut body = Encoded::new(BodyExt::map_err(whole, |e| match e {}).boxed(), coding);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let (mut sent, mut polls) = (Vec::new(), 0);
            loop {
                let before = body.input.len() + usize::from(polls == 0) * source.len();
                let polled = hyper::body::Body::poll_frame(Pin::new(&mut body), &mut cx);
                polls += 1;
                let compressed = before.saturating_sub(body.input.len());
                assert!(
                    compressed <= defaults::COMPRESS_POLL_BUDGET,
                    "{coding:?}: {compressed}"
                );
                match polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        sent.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..]));
                    }
                    Poll::Ready(None) => break,
                    Poll::Ready(Some(Err(e))) => panic!("{e}"),
                    Poll::Pending => {}
                }
            }
            assert!(
                polls >= source.len() / defaults::COMPRESS_POLL_BUDGET,
                "{coding:?}"
            );
            assert!(decode(coding, &sent).await == source, "{coding:?}");
        }
    }

    type Handed = Arc<std::sync::Mutex<Vec<(Coding, Bytes)>>>;

    /// A keeper that records what it was handed.
    fn keeper() -> (KeepCompressed, Handed) {
        let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = kept.clone();
        let keep = KeepCompressed(Arc::new(move |c, b| sink.lock().unwrap().push((c, b))));
        (keep, kept)
    }

    #[tokio::test]
    async fn the_whole_compressed_body_is_kept_once_and_a_cut_one_never() {
        let source: Vec<u8> = (0..200_000u32)
            .map(|i| b"kept "[(i % 5) as usize])
            .collect();
        for coding in Coding::ALL {
            let (keep, kept) = keeper();
            let body = Encoded::new(framed(&source), coding).keeping(Some(keep));
            let sent = body.collect().await.unwrap().to_bytes();
            let kept = std::mem::take(&mut *kept.lock().unwrap());
            assert_eq!(kept.len(), 1, "{coding:?}");
            assert_eq!(kept[0].0, coding);
            assert_eq!(
                kept[0].1, sent,
                "{coding:?}: kept bytes differ from those sent"
            );

            // A client that goes away mid-body: the body is dropped, nothing is kept.
            let (keep, kept) = keeper();
            let mut body = Encoded::new(framed(&source), coding).keeping(Some(keep));
            let first = body.frame().await.unwrap().unwrap();
            assert!(first.is_data());
            drop(body);
            assert!(kept.lock().unwrap().is_empty(), "{coding:?}");
        }
    }

    /// What a decoder makes of the start of a stream: everything it can before the input ends.
    async fn decode_prefix(coding: Coding, compressed: &[u8]) -> Vec<u8> {
        use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZstdDecoder};
        use tokio::io::{AsyncRead, AsyncReadExt};
        let mut decoder: Pin<Box<dyn AsyncRead>> = match coding {
            Coding::Zstd => Box::pin(ZstdDecoder::new(compressed)),
            Coding::Brotli => Box::pin(BrotliDecoder::new(compressed)),
            Coding::Gzip => Box::pin(GzipDecoder::new(compressed)),
        };
        let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = decoder.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[tokio::test]
    async fn what_a_waiting_source_sent_is_flushed_before_the_wait() {
        for coding in Coding::ALL {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                let data = rx.recv().await?;
                Some((Ok::<_, io::Error>(Frame::data(data)), rx))
            });
            let source = BodyExt::boxed(http_body_util::StreamBody::new(stream));
            let mut body = Encoded::new(source, coding);
            tx.send(Bytes::from_static(b"data: 1\n\n")).await.unwrap();
            // The source now waits: what the body gave so far must decode to the event.
            let mut sent = Vec::new();
            while decode_prefix(coding, &sent).await != b"data: 1\n\n" {
                let frame = tokio::time::timeout(Duration::from_secs(1), body.frame()).await;
                let frame = frame.expect("the event was held back").unwrap().unwrap();
                sent.extend_from_slice(&frame.into_data().unwrap());
            }
            drop(tx);
            let rest = body.collect().await.unwrap().to_bytes();
            sent.extend_from_slice(&rest);
            assert_eq!(decode(coding, &sent).await, b"data: 1\n\n", "{coding:?}");
        }
    }

    /// A response as a handler makes it: `headers`, a body of `len` bytes.
    fn response(status: u16, headers: &[(&str, &str)], len: usize) -> Response<Body> {
        let mut res = Response::new(crate::http::full(Bytes::from(vec![b'a'; len])));
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        for (k, v) in headers {
            let name = header::HeaderName::from_bytes(k.as_bytes()).unwrap();
            res.headers_mut()
                .append(name, HeaderValue::from_str(v).unwrap());
        }
        res
    }

    #[test]
    fn only_whole_untouched_compressible_bodies_are_compressed() {
        let n = negotiate("gzip");
        let js = ("content-type", "text/javascript");
        type Case<'a> = (u16, &'a [(&'a str, &'a str)], usize, Option<&'a str>);
        let cases: [Case; 8] = [
            (200, &[js], 5000, Some("gzip")),
            (404, &[("content-type", "text/html")], 5000, Some("gzip")),
            (200, &[("content-type", "image/png")], 5000, None),
            (200, &[js], 100, None),
            (
                200,
                &[js, ("cache-control", "max-age=60, No-Transform")],
                5000,
                None,
            ),
            (200, &[js, ("content-encoding", "br")], 5000, Some("br")),
            (
                206,
                &[js, ("content-range", "bytes 0-4999/9999")],
                5000,
                None,
            ),
            (204, &[js], 0, None),
        ];
        for (status, headers, len, expected) in cases {
            let res = n.apply(&Method::GET, response(status, headers, len));
            let got = res.headers().get(header::CONTENT_ENCODING);
            assert_eq!(
                got.map(|v| v.to_str().unwrap()),
                expected,
                "{status} {headers:?} {len}"
            );
        }
    }

    #[test]
    fn head_gets_get_headers_and_no_body() {
        let n = negotiate("zstd");
        let js = [
            ("content-type", "text/javascript"),
            ("content-length", "5000"),
            ("etag", "\"1-2\""),
        ];
        let res = n.apply(&Method::HEAD, response(200, &js, 0));
        let h = res.headers();
        assert_eq!(h[header::CONTENT_ENCODING], "zstd");
        assert_eq!(h[header::ETAG], "W/\"1-2-zstd\"");
        assert_eq!(h[header::VARY], "accept-encoding");
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        assert_eq!(http_body::Body::size_hint(res.body()).exact(), Some(0));
    }

    #[test]
    fn vary_is_added_once() {
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        add_vary(&mut h);
        add_vary(&mut h);
        let all: Vec<_> = h.get_all(header::VARY).iter().collect();
        assert_eq!(all, ["Origin", "accept-encoding"]);
        let mut any = HeaderMap::new();
        any.insert(header::VARY, HeaderValue::from_static("*"));
        add_vary(&mut any);
        assert_eq!(
            any.get_all(header::VARY).iter().count(),
            1,
            "Vary: * covers it"
        );
    }

    #[test]
    fn only_a_compressible_type_free_to_transform_varies_by_accept_encoding() {
        let map = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            h
        };
        let json = ("content-type", "application/json");
        assert!(varies(&map(&[json, ("cache-control", "max-age=60")])));
        assert!(!varies(&map(&[("content-type", "image/png")])));
        assert!(!varies(&map(&[])), "no type, nothing to compress");
        // The first Content-Type is the one that counts, as for every other reader.
        assert!(!varies(&map(&[("content-type", "image/png"), json])));
        for no in [
            ("cache-control", "no-transform"),
            ("content-encoding", "br"),
            ("content-digest", "sha-256=:AAAA:"),
        ] {
            assert!(!varies(&map(&[json, no])), "{no:?}");
        }
        // A second Cache-Control field counts as much as the first.
        let split = [
            json,
            ("cache-control", "public"),
            ("cache-control", "No-Transform"),
        ];
        assert!(!varies(&map(&split)));
    }
}
