//! A second look at HTTP/1.1 request framing, underneath hyper. hyper resolves a request that
//! carries both Content-Length and Transfer-Encoding by dropping the Content-Length and closing
//! the connection afterwards (RFC 9112 §6.3), so the service never learns of the conflict; it
//! also reads `Transfer-Encoding: chunked, chunked` as chunked, which RFC 9112 §7 forbids a
//! sender to write (front ends disagree on it). A proxy must refuse such requests outright (it is how requests are smuggled past front ends),
//! so this scanner follows the request stream as hyper reads it (heads parsed with httparse,
//! bodies skipped by length or chunk size) and flags the index of any ambiguous request.

use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request heads larger than this are hyper's to refuse (431); the scanner gives up.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

#[derive(Debug)]
enum State {
    Head,
    /// Bytes of a Content-Length body still to come.
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd(u8),
    Trailers,
    /// Past an upgrade, a parse error or an oversized head: nothing more to learn.
    Stopped,
}

pub(crate) struct FramingScanner {
    state: State,
    line: Vec<u8>,
    /// Bytes of a request head (or the blank lines before one) have come, and its end has not.
    in_head: bool,
    index: u64,
    /// 1 + the index of the first ambiguous request, or 0.
    flagged: Arc<AtomicU64>,
}

impl FramingScanner {
    pub(crate) fn new(flagged: Arc<AtomicU64>) -> Self {
        FramingScanner {
            state: State::Head,
            line: Vec::new(),
            in_head: false,
            index: 0,
            flagged,
        }
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            data = match self.state {
                State::Stopped => return,
                State::Head => self.head(data),
                State::Fixed(n) => {
                    let k = n.min(data.len() as u64);
                    self.state = if k == n {
                        State::Head
                    } else {
                        State::Fixed(n - k)
                    };
                    &data[k as usize..]
                }
                State::ChunkData(n) => {
                    let k = n.min(data.len() as u64);
                    self.state = if k == n {
                        State::ChunkEnd(2)
                    } else {
                        State::ChunkData(n - k)
                    };
                    &data[k as usize..]
                }
                State::ChunkEnd(n) => {
                    self.state = if n == 1 {
                        State::ChunkSize
                    } else {
                        State::ChunkEnd(n - 1)
                    };
                    &data[1..]
                }
                State::ChunkSize => self.chunk_size(data),
                State::Trailers => self.trailers(data),
            };
        }
    }

    /// Every byte seen so far belongs to a whole request: nothing of the next one has come,
    /// not even a blank line (a connection parked there would restart its head deadline).
    pub(crate) fn at_boundary(&self) -> bool {
        matches!(self.state, State::Head) && self.line.is_empty() && !self.in_head
    }

    /// A request head has begun and is not yet whole: what `timeouts.header_read` bounds.
    pub(crate) fn mid_head(&self) -> bool {
        self.in_head && matches!(self.state, State::Head)
    }

    /// Gives back the head buffer (kept between requests) while the connection idles.
    pub(crate) fn release(&mut self) {
        if self.at_boundary() {
            self.line = Vec::new();
        }
    }

    /// Accumulates a request head; at its blank line, checks and classifies it.
    fn head<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        // Blank lines count: a client sending only those must not hold a connection forever.
        self.in_head = true;
        if self.line.is_empty() {
            // RFC 9112 §2.2: empty lines before a request line are ignored.
            let blank = data.iter().take_while(|&&b| b == b'\r' || b == b'\n');
            let data = &data[blank.count()..];
            // A head that came whole in one read (the usual case) is classified where it is.
            if let Some(end) = head_end(data, 0) {
                self.state = match end > MAX_HEAD {
                    true => State::Stopped,
                    false => self.classify(&data[..end]),
                };
                self.in_head = false;
                return &data[end..];
            }
            return self.gather(data);
        }
        self.gather(data)
    }

    /// Adds the next bytes of a head that came in pieces; at its end, classifies it.
    fn gather<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let from = self.line.len();
        let take = data.len().min((MAX_HEAD + 1).saturating_sub(from));
        self.line.extend_from_slice(&data[..take]);
        match head_end(&self.line, from) {
            Some(end) => {
                // Classify in place, then keep the buffer (cleared) for the next head.
                let mut head = std::mem::take(&mut self.line);
                head.truncate(end);
                self.state = self.classify(&head);
                head.clear();
                self.line = head;
                self.in_head = false;
                &data[end - from..]
            }
            None if self.line.len() > MAX_HEAD => {
                self.state = State::Stopped;
                &[]
            }
            None => &[],
        }
    }

    fn classify(&mut self, head: &[u8]) -> State {
        if plainly_bodiless(head) {
            self.index += 1;
            return State::Head;
        }
        // Uninitialised: filling 128 empty headers cost more than parsing a short head.
        let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(head, &mut headers);
        if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
            return State::Stopped;
        }
        let index = self.index;
        self.index += 1;
        let named = |name: &'static str| {
            req.headers
                .iter()
                .filter(move |h| h.name.eq_ignore_ascii_case(name))
        };
        let te = named("transfer-encoding").next_back();
        let cl = named("content-length").next();
        let chunked = named("transfer-encoding")
            .flat_map(|h| h.value.split(|&b| b == b','))
            .filter(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            .count();
        if (te.is_some() && cl.is_some()) || chunked > 1 {
            let _ =
                self.flagged
                    .compare_exchange(0, index + 1, Ordering::Relaxed, Ordering::Relaxed);
        }
        let upgrade = named("upgrade").next().is_some() || req.method == Some("CONNECT");
        match (te, cl) {
            _ if upgrade => State::Stopped,
            (Some(te), _) => match te
                .value
                .rsplit(|&b| b == b',')
                .next()
                .map(<[u8]>::trim_ascii)
            {
                Some(v) if v.eq_ignore_ascii_case(b"chunked") => State::ChunkSize,
                _ => State::Stopped,
            },
            (None, Some(cl)) => match std::str::from_utf8(cl.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            {
                Some(0) => State::Head,
                Some(n) => State::Fixed(n),
                None => State::Stopped,
            },
            (None, None) => State::Head,
        }
    }

    fn chunk_size<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Some(rest) = self.take_line(data) else {
            return &[];
        };
        let line = std::mem::take(&mut self.line);
        let hex: Vec<u8> = line
            .iter()
            .copied()
            .take_while(|b| b.is_ascii_hexdigit())
            .collect();
        self.state = match std::str::from_utf8(&hex)
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            Some(0) => State::Trailers,
            Some(n) => State::ChunkData(n),
            None => State::Stopped,
        };
        rest
    }

    fn trailers<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        let Some(rest) = self.take_line(data) else {
            return &[];
        };
        let line = std::mem::take(&mut self.line);
        if line == b"\r\n" || line == b"\n" {
            self.state = State::Head;
        }
        rest
    }

    /// Appends `data` to the current line up to and including '\n'; returns what follows it,
    /// or `None` when the line goes on.
    fn take_line<'a>(&mut self, data: &'a [u8]) -> Option<&'a [u8]> {
        match data.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&data[..=i]);
                Some(&data[i + 1..])
            }
            None => {
                self.line.extend_from_slice(data);
                if self.line.len() > MAX_HEAD {
                    self.state = State::Stopped;
                }
                None
            }
        }
    }
}

/// The fields that give a request a body or turn its connection into something else.
const FRAMING: [&[u8]; 3] = [b"transfer-encoding", b"content-length", b"upgrade"];

/// A GET or HEAD whose head has no line that could name one of [`FRAMING`]: no body follows
/// it, nothing can be ambiguous, and the next request's head comes next. Most requests are
/// such; this skips parsing them a second time (the parse cost 2.5 times as much,
/// bench/README.md). Anything else, a near miss included, goes to the full parse.
fn plainly_bodiless(head: &[u8]) -> bool {
    if !(head.starts_with(b"GET ") || head.starts_with(b"HEAD ")) {
        return false;
    }
    // httparse starts every field on a line of its own: after a '\n' (a bare one too). A
    // prefix that matches in any letter case is enough to send the head to the full parse.
    !memchr::memchr_iter(b'\n', head).any(|i| {
        let line = &head[i + 1..];
        FRAMING.iter().any(|name| {
            line.get(..name.len())
                .is_some_and(|l| l.eq_ignore_ascii_case(name))
        })
    })
}

/// Where the head in `buf` ends (just past its blank line), if it does, looking only at line
/// ends from `from` on: the blank line may begin up to 3 bytes before them.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    memchr::memchr_iter(b'\n', &buf[start..])
        .map(|p| start + p + 1)
        .find(|&e| e > from && (buf[..e].ends_with(b"\r\n\r\n") || buf[..e].ends_with(b"\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `step` bytes; returns the flagged request index.
    fn flagged(stream: &[u8], step: usize) -> Option<u64> {
        let flag = Arc::new(AtomicU64::new(0));
        let mut s = FramingScanner::new(flag.clone());
        for piece in stream.chunks(step) {
            s.feed(piece);
        }
        flag.load(Ordering::Relaxed).checked_sub(1)
    }

    #[test]
    fn content_length_with_transfer_encoding_is_flagged_at_its_index() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for step in [1, 3, 7, stream.len()] {
            assert_eq!(flagged(stream, step), Some(1), "step {step}");
        }
    }

    #[test]
    fn chunked_twice_is_flagged_in_one_header_or_two() {
        for te in [
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: chunked, Chunked",
        ] {
            let stream = format!("POST / HTTP/1.1\r\nHost: a\r\n{te}\r\n\r\n0\r\n\r\n");
            assert_eq!(flagged(stream.as_bytes(), 4), Some(0), "{te}");
        }
        let once = b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(flagged(once, 4), None);
    }

    #[test]
    fn bodies_are_skipped_so_their_bytes_are_never_read_as_heads() {
        let inner = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = format!(
            "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            inner.len()
        )
        .into_bytes();
        stream.extend_from_slice(inner);
        stream.extend_from_slice(b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        stream.extend_from_slice(format!("{:x};ext=1\r\n", inner.len()).as_bytes());
        stream.extend_from_slice(inner);
        stream.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
        for step in [1, 5, stream.len()] {
            assert_eq!(flagged(&stream, step), None, "step {step}");
        }
    }

    #[test]
    fn a_boundary_is_only_after_a_whole_request() {
        let mut s = FramingScanner::new(Arc::new(AtomicU64::new(0)));
        assert!(s.at_boundary());
        for (piece, whole) in [
            (&b"GET / HTTP/1.1\r\n"[..], false),
            (b"Host: a\r\n\r\n", true),
            // Blank lines before a request line begin its head.
            (b"\r\n", false),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", false),
            (b"c", true),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n",
                false,
            ),
            (b"\r\n", true),
            (b"G", false),
        ] {
            s.feed(piece);
            assert_eq!(s.at_boundary(), whole, "{}", String::from_utf8_lossy(piece));
        }
    }

    #[test]
    fn a_head_is_pending_from_its_first_byte_or_blank_line_to_its_end() {
        let mut s = FramingScanner::new(Arc::new(AtomicU64::new(0)));
        assert!(!s.mid_head());
        for (piece, pending) in [
            (&b"\r\n"[..], true),
            (b"GET / HTTP/1.1\r\n", true),
            (b"Host: a\r\n\r\n", false),
            (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na", false),
            (b"bcGET /next HTTP/1.1\r\n", true),
            (b"\r\nGET /third", true),
            (
                b" HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n",
                false,
            ),
        ] {
            s.feed(piece);
            assert_eq!(s.mid_head(), pending, "{}", String::from_utf8_lossy(piece));
        }
        // A stray blank line is a head begun, not a boundary to park at.
        let mut s = FramingScanner::new(Arc::new(AtomicU64::new(0)));
        s.feed(b"\r\n");
        assert!(s.mid_head() && !s.at_boundary());
    }

    #[test]
    fn a_head_over_the_limit_is_left_to_hyper_whole_or_in_pieces() {
        let filler = format!("X-Fill: {}\r\n", "a".repeat(MAX_HEAD));
        let stream = format!(
            "POST / HTTP/1.1\r\n{filler}Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        for step in [1000, stream.len()] {
            assert_eq!(flagged(stream.as_bytes(), step), None, "step {step}");
        }
    }

    /// The full parse finds a GET or HEAD with no field that frames a body or upgrades.
    fn bodiless_when_parsed(head: &[u8]) -> bool {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(matches!(req.parse(head), Ok(httparse::Status::Complete(_))));
        let named = |n: &&[u8]| {
            req.headers
                .iter()
                .any(|h| h.name.as_bytes().eq_ignore_ascii_case(n))
        };
        matches!(req.method, Some("GET" | "HEAD")) && !FRAMING.iter().any(named)
    }

    #[test]
    fn the_shortcut_takes_only_bodiless_gets_and_heads() {
        let taken: [&[u8]; 4] = [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"HEAD /x HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\nHost: a\nX-Content-Lengths-Unknown: 1\n\n",
            b"GET /upgrade?transfer-encoding=1 HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for head in taken {
            assert!(plainly_bodiless(head), "{}", String::from_utf8_lossy(head));
            assert!(bodiless_when_parsed(head));
            let mut s = FramingScanner::new(Arc::new(AtomicU64::new(0)));
            s.feed(head);
            assert!(s.at_boundary() && s.index == 1);
        }
        let left: [&[u8]; 9] = [
            b"POST / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 4\r\n\r\n",
            b"GET / HTTP/1.1\nTRANSFER-ENCODING: chunked\n\n",
            b"HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgradeable: no\r\n\r\n",
            b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        ];
        for head in left {
            assert!(!plainly_bodiless(head), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn a_get_with_a_body_or_both_lengths_is_still_followed_and_flagged() {
        let stream = b"GET / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        for step in [1, 4, stream.len()] {
            assert_eq!(flagged(stream, step), Some(1), "step {step}");
        }
    }

    #[test]
    fn ordinary_keep_alive_traffic_is_never_flagged() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n";
        assert_eq!(flagged(stream, 2), None);
    }
}
