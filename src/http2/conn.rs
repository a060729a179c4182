//! One HTTP/2 connection's protocol state (RFC 9113), without I/O: bytes read go in, requests
//! come out as [`Event`]s, responses go in, and the frames to send gather in [`Conn::out`].
//!
//! It checks everything a client sends (frame sizes, stream states, flow control, header
//! blocks) and answers what breaks the protocol with GOAWAY (a connection error) or
//! RST_STREAM (a stream error), as §5.4 says.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::future::AbortHandle;
use http::header::{self, HeaderMap};
use http::{Request, Response};
use http_body::Body;

use super::body::{Inbox, RecvBody, Releases};
use super::frame::{self, Head, Reason, flag, kind, setting};
use super::hpack::{self, Decoder};
use super::request::{Fields, Refused, is_connection_specific};
use super::upgrade::{self, TunnelBody};

/// What candado allows a client, advertised in its first SETTINGS.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) max_concurrent_streams: u32,
    pub(crate) max_header_list: usize,
    /// Each request body's window, and the connection's (how much a client may send before
    /// the handlers read it).
    pub(crate) stream_window: u32,
    pub(crate) conn_window: u32,
    /// RFC 8441: WebSockets over HTTP/2.
    pub(crate) connect_protocol: bool,
}

/// What the connection asks of its server.
pub(crate) enum Event {
    /// A request to hand to the router.
    Request(u32, Request<RecvBody>),
}

/// A connection error: GOAWAY has been written; the connection ends once it is sent.
#[derive(Debug)]
pub(crate) struct Fatal {
    pub(crate) reason: Reason,
    pub(crate) why: &'static str,
}

impl std::fmt::Display for Fatal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.why, self.reason)
    }
}

fn fatal(reason: Reason, why: &'static str) -> Fatal {
    Fatal { reason, why }
}

/// Payloads smaller than this are copied out of the read buffer. As slices of it, a few bytes
/// kept by a request (a header value, a DATA chunk its handler has not read yet) would hold a
/// whole 16 KiB read buffer: a client sending one byte of DATA per read could make candado hold
/// 16 KiB per byte of window.
const COPY_BELOW: usize = 8 << 10;

fn owned(payload: Bytes) -> Bytes {
    if payload.len() < COPY_BELOW {
        Bytes::copy_from_slice(&payload)
    } else {
        payload
    }
}

/// The payload of candado's own PINGs.
const PING: &[u8; 8] = b"candado!";
/// Our HPACK table size: the default, which clients index into.
const HEADER_TABLE_SIZE: usize = 4096;
/// The largest frame candado reads: the default, never raised.
const MAX_FRAME: usize = frame::MIN_MAX_FRAME_SIZE as usize;
/// How many streams reset by candado are remembered, so that frames the client sent before
/// it saw the reset are ignored rather than taken as protocol errors.
const RECENTLY_RESET: usize = 32;
/// Client resets of streams still being answered that make a connection an attack (CVE-2023-
/// 44487, Rapid Reset) once they outnumber the answers it got.
const RESETS_TOLERATED: u32 = 100;

enum Send<B> {
    /// The handler has not answered yet.
    Waiting,
    /// The body is being sent; `pending` is what the windows held back.
    Body {
        body: Outgoing<B>,
        pending: Bytes,
    },
    Done,
}

struct Stream<B> {
    /// The request's body, while the client may still send DATA.
    inbox: Option<Arc<Inbox>>,
    recv_open: bool,
    /// How much more the client may send, and what was read but not yet given back.
    recv_window: i64,
    unacked: usize,
    declared: Option<u64>,
    received: u64,
    send: Send<B>,
    send_window: i64,
    /// Cancels the handler when the stream goes first.
    abort: Option<AbortHandle>,
    /// A CONNECT stream's tunnel, handed over once its 2xx answer is sent.
    upgrade: Option<upgrade::Pending>,
}

/// What a stream sends after its head: the handler's body, or what its tunnel writes.
enum Outgoing<B> {
    Answer(B),
    Tunnel(TunnelBody),
}

impl<B: Body<Data = Bytes> + Unpin> Outgoing<B> {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, ()>>> {
        match self {
            Outgoing::Answer(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|_| ()))),
            Outgoing::Tunnel(t) => Pin::new(t)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|_| ()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Answer(b) => b.is_end_stream(),
            Outgoing::Tunnel(t) => t.is_end_stream(),
        }
    }
}

/// A header block still waiting for its CONTINUATION frames.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

#[derive(PartialEq, Eq)]
enum Phase {
    Preface,
    Settings,
    Open,
}

pub(crate) struct Conn<B> {
    config: Config,
    phase: Phase,
    decoder: Decoder,
    /// Frames to send, in order.
    pub(crate) out: BytesMut,
    streams: HashMap<u32, Stream<B>, foldhash::fast::RandomState>,
    /// The highest stream the client opened.
    last_id: u32,
    partial: Option<Partial>,
    reset_recently: [u32; RECENTLY_RESET],
    reset_at: usize,
    peer_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_window: i64,
    /// Read but not yet given back, connection-wide.
    unacked: usize,
    releases: Arc<Releases>,
    read: Vec<(u32, usize)>,
    /// GOAWAY sent: no new streams; `Some(reason)` for a connection error.
    going_away: bool,
    failed: bool,
    /// The client said GOAWAY: no more streams from it.
    peer_gone: bool,
    resets: u32,
    answered: u32,
    ids: Vec<u32>,
    ping_unanswered: bool,
}

impl<B> Conn<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    pub(crate) fn new(config: Config, releases: Arc<Releases>) -> Self {
        let mut out = BytesMut::with_capacity(4096);
        let mut values = vec![
            (
                setting::MAX_CONCURRENT_STREAMS,
                config.max_concurrent_streams,
            ),
            (setting::INITIAL_WINDOW_SIZE, config.stream_window),
            (setting::MAX_HEADER_LIST_SIZE, config.max_header_list as u32),
        ];
        if config.connect_protocol {
            values.push((setting::ENABLE_CONNECT_PROTOCOL, 1));
        }
        frame::settings(&mut out, &values);
        let extra = i64::from(config.conn_window) - frame::DEFAULT_WINDOW;
        if extra > 0 {
            frame::window_update(&mut out, 0, extra as u32);
        }
        Conn {
            config,
            phase: Phase::Preface,
            decoder: Decoder::new(HEADER_TABLE_SIZE),
            out,
            streams: HashMap::default(),
            last_id: 0,
            partial: None,
            reset_recently: [0; RECENTLY_RESET],
            reset_at: 0,
            peer_window: frame::DEFAULT_WINDOW,
            peer_max_frame: frame::MIN_MAX_FRAME_SIZE as usize,
            send_window: frame::DEFAULT_WINDOW,
            recv_window: i64::from(config.conn_window.max(frame::DEFAULT_WINDOW as u32)),
            unacked: 0,
            releases,
            read: Vec::new(),
            going_away: false,
            failed: false,
            peer_gone: false,
            resets: 0,
            answered: 0,
            ids: Vec::new(),
            ping_unanswered: false,
        }
    }

    /// Whether the connection has nothing left to do: it failed, or it is going away (either
    /// side said so) and every stream is done.
    pub(crate) fn is_finished(&self) -> bool {
        self.failed || ((self.going_away || self.peer_gone) && self.streams.is_empty())
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.streams.is_empty()
    }

    /// Lets the buffers of a quiet connection go: what it gathered to send (once sent) and
    /// its stream table's room. The HPACK table stays: the client indexes into it.
    pub(crate) fn let_go(&mut self) {
        if self.out.is_empty() {
            self.out = BytesMut::new();
        }
        self.streams.shrink_to_fit();
        self.read = Vec::new();
        self.ids = Vec::new();
    }

    /// Asks the client for a PING answer; `false` if the last one is still unanswered.
    pub(crate) fn send_ping(&mut self) -> bool {
        if self.ping_unanswered {
            return false;
        }
        frame::ping(&mut self.out, 0, PING);
        self.ping_unanswered = true;
        true
    }

    /// Stops taking new streams (GOAWAY with the last one taken) and finishes the others.
    pub(crate) fn go_away(&mut self) {
        if !self.going_away {
            self.going_away = true;
            frame::goaway(&mut self.out, self.last_id, Reason::NO_ERROR);
        }
    }

    /// Reads every whole frame in `buf`. On a connection error, GOAWAY is written and the
    /// connection must end once it is sent.
    pub(crate) fn recv(
        &mut self,
        buf: &mut BytesMut,
        events: &mut Vec<Event>,
    ) -> Result<(), Fatal> {
        if self.failed {
            buf.clear();
            return Ok(());
        }
        let res = self.frames(buf, events);
        if let Err(e) = &res {
            self.fail(e.reason);
            buf.clear();
        }
        res
    }

    fn fail(&mut self, reason: Reason) {
        frame::goaway(&mut self.out, self.last_id, reason);
        self.failed = true;
        self.going_away = true;
        for (_, stream) in self.streams.drain() {
            close(stream);
        }
    }

    fn frames(&mut self, buf: &mut BytesMut, events: &mut Vec<Event>) -> Result<(), Fatal> {
        if self.phase == Phase::Preface {
            let n = buf.len().min(frame::PREFACE.len());
            if buf[..n] != frame::PREFACE[..n] {
                return Err(fatal(Reason::PROTOCOL_ERROR, "not the HTTP/2 preface"));
            }
            if n < frame::PREFACE.len() {
                return Ok(());
            }
            buf.advance(n);
            self.phase = Phase::Settings;
        }
        while buf.len() >= frame::HEAD_LEN {
            let head = Head::parse(buf);
            if head.len > MAX_FRAME {
                return Err(fatal(
                    Reason::FRAME_SIZE_ERROR,
                    "a frame larger than allowed",
                ));
            }
            if buf.len() < frame::HEAD_LEN + head.len {
                buf.reserve(frame::HEAD_LEN + head.len - buf.len());
                break;
            }
            buf.advance(frame::HEAD_LEN);
            let payload = buf.split_to(head.len).freeze();
            if self.phase == Phase::Settings {
                if head.kind != kind::SETTINGS || head.has(flag::ACK) {
                    return Err(fatal(
                        Reason::PROTOCOL_ERROR,
                        "the preface without SETTINGS",
                    ));
                }
                self.phase = Phase::Open;
            }
            self.frame(head, payload, events)?;
        }
        Ok(())
    }

    fn frame(&mut self, head: Head, payload: Bytes, events: &mut Vec<Event>) -> Result<(), Fatal> {
        if let Some(partial) = &self.partial
            && (head.kind != kind::CONTINUATION || head.stream != partial.stream)
        {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "a header block cut by another frame",
            ));
        }
        match head.kind {
            kind::DATA => self.data(head, payload),
            kind::HEADERS => self.headers(head, payload, events),
            kind::PRIORITY => self.priority(head, &payload),
            kind::RST_STREAM => self.rst_stream(head, &payload),
            kind::SETTINGS => self.settings(head, &payload),
            kind::PUSH_PROMISE => Err(fatal(Reason::PROTOCOL_ERROR, "PUSH_PROMISE from a client")),
            kind::PING => self.recv_ping(head, &payload),
            kind::GOAWAY => {
                if head.stream != 0 {
                    return Err(fatal(Reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                if head.len < 8 {
                    return Err(fatal(Reason::FRAME_SIZE_ERROR, "a short GOAWAY"));
                }
                self.peer_gone = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(head, &payload),
            kind::CONTINUATION => self.continuation(head, payload, events),
            // §5.5: unknown frame types are ignored.
            _ => Ok(()),
        }
    }

    fn is_idle_stream(&self, id: u32) -> bool {
        id > self.last_id
    }

    fn was_reset(&self, id: u32) -> bool {
        self.reset_recently.contains(&id)
    }

    fn data(&mut self, head: Head, mut payload: Bytes) -> Result<(), Fatal> {
        if head.stream == 0 {
            return Err(fatal(Reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        let flow = payload.len();
        if flow as i64 > self.recv_window {
            return Err(fatal(
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        self.recv_window -= flow as i64;
        strip_padding(&head, &mut payload)?;
        let id = head.stream;
        let Some(stream) = self.streams.get_mut(&id).filter(|s| s.recv_open) else {
            if self.is_idle_stream(id) {
                return Err(fatal(Reason::PROTOCOL_ERROR, "DATA on an idle stream"));
            }
            self.give_back(0, flow);
            if !self.was_reset(id) {
                self.reset(id, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        if flow as i64 > stream.recv_window {
            self.give_back(0, flow);
            self.reset(id, Reason::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        stream.recv_window -= flow as i64;
        stream.received += payload.len() as u64;
        let end = head.has(flag::END_STREAM);
        let length_ok = match stream.declared {
            Some(n) if end => stream.received == n,
            Some(n) => stream.received <= n,
            None => true,
        };
        if !length_ok {
            self.give_back(0, flow);
            self.reset(id, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        // Padding, empty frames and bodies nobody reads are given back at once.
        let mut unread = flow - payload.len();
        let inbox = stream.inbox.clone();
        if let Some(inbox) = &inbox
            && !payload.is_empty()
            && !inbox.push(owned(payload.clone()))
        {
            unread += payload.len();
        }
        if end {
            self.end_recv(id, None);
        }
        if unread > 0 {
            self.give_back(id, unread);
        }
        Ok(())
    }

    /// The client ended its side of `id` (with trailers, maybe).
    fn end_recv(&mut self, id: u32, trailers: Option<HeaderMap>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.recv_open = false;
        if let Some(inbox) = stream.inbox.take() {
            inbox.finish(trailers);
        }
        if matches!(stream.send, Send::Done) {
            self.remove(id);
        }
    }

    fn headers(
        &mut self,
        head: Head,
        mut payload: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), Fatal> {
        let id = head.stream;
        if id == 0 {
            return Err(fatal(Reason::PROTOCOL_ERROR, "HEADERS on stream 0"));
        }
        strip_padding(&head, &mut payload)?;
        if head.has(flag::PRIORITY) {
            if payload.len() < 5 {
                return Err(fatal(
                    Reason::FRAME_SIZE_ERROR,
                    "a HEADERS priority cut short",
                ));
            }
            let depends = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            payload.advance(5);
            if depends & 0x7fff_ffff == id {
                // §5.3.1 (RFC 7540): a stream cannot depend on itself. The block is still
                // decoded below, to keep the HPACK table in step.
                self.refuse_after_decode(id, head, payload, Reason::PROTOCOL_ERROR)?;
                return Ok(());
            }
        }
        let end_stream = head.has(flag::END_STREAM);
        if !head.has(flag::END_HEADERS) {
            let mut block = BytesMut::with_capacity(payload.len() * 2);
            block.extend_from_slice(&payload);
            self.partial = Some(Partial {
                stream: id,
                end_stream,
                block,
            });
            return Ok(());
        }
        self.header_block(id, end_stream, owned(payload), events)
    }

    fn refuse_after_decode(
        &mut self,
        id: u32,
        head: Head,
        block: Bytes,
        reason: Reason,
    ) -> Result<(), Fatal> {
        if head.has(flag::END_HEADERS) {
            self.decode(block, &mut Fields::new(0))?;
        } else {
            // The CONTINUATIONs still come: decode the whole block then, and refuse.
            self.partial = Some(Partial {
                stream: id,
                end_stream: head.has(flag::END_STREAM),
                block: BytesMut::from(&block[..]),
            });
        }
        self.last_id = self.last_id.max(id);
        self.reset(id, reason);
        Ok(())
    }

    fn continuation(
        &mut self,
        head: Head,
        payload: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), Fatal> {
        let Some(partial) = &mut self.partial else {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS",
            ));
        };
        // A header block is bounded before it is decoded: CONTINUATION floods end here.
        if partial.block.len() + payload.len() > self.config.max_header_list * 2 + MAX_FRAME {
            return Err(fatal(
                Reason::ENHANCE_YOUR_CALM,
                "a header block far over the limit",
            ));
        }
        partial.block.extend_from_slice(&payload);
        if !head.has(flag::END_HEADERS) {
            return Ok(());
        }
        let Some(partial) = self.partial.take() else {
            return Ok(());
        };
        if self.was_reset(partial.stream) {
            return self.decode(partial.block.freeze(), &mut Fields::new(0));
        }
        self.header_block(
            partial.stream,
            partial.end_stream,
            partial.block.freeze(),
            events,
        )
    }

    fn decode(&mut self, block: Bytes, fields: &mut Fields) -> Result<(), Fatal> {
        self.decoder
            .decode(block, |name, value| fields.push(name, value))
            .map_err(|_| {
                fatal(
                    Reason::COMPRESSION_ERROR,
                    "a header block that does not decode",
                )
            })
    }

    /// A whole header block: a new request, or trailers.
    fn header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), Fatal> {
        let mut fields = Fields::new(self.config.max_header_list);
        self.decode(block, &mut fields)?;
        if let Some(stream) = self.streams.get(&id) {
            if !stream.recv_open {
                return Err(fatal(
                    Reason::STREAM_CLOSED,
                    "HEADERS on a half-closed stream",
                ));
            }
            if !end_stream {
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            match fields.into_trailers() {
                Ok(trailers) => self.end_recv(id, Some(trailers)),
                Err(_) => self.reset(id, Reason::PROTOCOL_ERROR),
            }
            return Ok(());
        }
        if self.was_reset(id) {
            return Ok(());
        }
        if id.is_multiple_of(2) || id <= self.last_id {
            return Err(fatal(
                if id.is_multiple_of(2) {
                    Reason::PROTOCOL_ERROR
                } else {
                    Reason::STREAM_CLOSED
                },
                "HEADERS on a stream that cannot open",
            ));
        }
        self.last_id = id;
        if self.going_away || self.peer_gone {
            return Ok(());
        }
        if self.streams.len() >= self.config.max_concurrent_streams as usize {
            self.reset(id, Reason::REFUSED_STREAM);
            return Ok(());
        }
        let mut req = match fields.into_request(self.config.connect_protocol) {
            Ok(req) => req,
            Err(Refused::TooLarge) => {
                self.answer_alone(
                    id,
                    http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    end_stream,
                );
                return Ok(());
            }
            Err(Refused::Malformed(why)) => {
                tracing::debug!(stream = id, why, "refused a malformed HTTP/2 request");
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
        };
        let declared = match content_length(req.headers()) {
            Ok(n) => n,
            Err(()) => {
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
        };
        if end_stream && declared.is_some_and(|n| n != 0) {
            self.reset(id, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        let inbox = (!end_stream).then(|| Inbox::new(id, self.releases.clone()));
        let mut body = match &inbox {
            Some(inbox) => RecvBody::new(inbox.clone(), declared),
            None => RecvBody::empty(),
        };
        // CONNECT: the stream's DATA is the tunnel's, not a body (§8.5).
        let mut tunnel = None;
        if req.method() == http::Method::CONNECT {
            if declared.is_some_and(|n| n != 0) {
                self.reset(id, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            let (pending, on_upgrade) =
                upgrade::pending(std::mem::replace(&mut body, RecvBody::empty()));
            req.extensions_mut().insert(on_upgrade);
            tunnel = Some(pending);
        }
        self.streams.insert(
            id,
            Stream {
                inbox,
                recv_open: !end_stream,
                recv_window: i64::from(self.config.stream_window),
                unacked: 0,
                declared,
                received: 0,
                send: Send::Waiting,
                send_window: self.peer_window,
                abort: None,
                upgrade: tunnel,
            },
        );
        events.push(Event::Request(id, req.map(|()| body)));
        Ok(())
    }

    /// Answers a request the router never sees (its head was too large).
    fn answer_alone(&mut self, id: u32, status: http::StatusCode, end_stream: bool) {
        let mut head = Response::new(()).into_parts().0;
        head.status = status;
        head.headers
            .insert(header::CONTENT_LENGTH, http::HeaderValue::from_static("0"));
        self.write_head(id, &mut head, true);
        if !end_stream {
            self.reset(id, Reason::NO_ERROR);
        }
    }

    fn priority(&mut self, head: Head, payload: &[u8]) -> Result<(), Fatal> {
        if head.stream == 0 {
            return Err(fatal(Reason::PROTOCOL_ERROR, "PRIORITY on stream 0"));
        }
        if payload.len() != 5 {
            self.reset(head.stream, Reason::FRAME_SIZE_ERROR);
            return Ok(());
        }
        let depends = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
        if depends & 0x7fff_ffff == head.stream {
            self.reset(head.stream, Reason::PROTOCOL_ERROR);
        }
        // Priorities are only advice (RFC 9113 §5.3): streams are answered as they come.
        Ok(())
    }

    fn rst_stream(&mut self, head: Head, payload: &[u8]) -> Result<(), Fatal> {
        if head.stream == 0 {
            return Err(fatal(Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
        }
        if payload.len() != 4 {
            return Err(fatal(
                Reason::FRAME_SIZE_ERROR,
                "RST_STREAM of the wrong size",
            ));
        }
        if self.is_idle_stream(head.stream) {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "RST_STREAM on an idle stream",
            ));
        }
        let Some(stream) = self.streams.get(&head.stream) else {
            return Ok(());
        };
        if matches!(stream.send, Send::Waiting) {
            self.resets += 1;
            if self.resets > RESETS_TOLERATED && self.resets > self.answered {
                return Err(fatal(
                    Reason::ENHANCE_YOUR_CALM,
                    "too many requests reset before their answers",
                ));
            }
        }
        self.remove(head.stream);
        Ok(())
    }

    fn settings(&mut self, head: Head, payload: &[u8]) -> Result<(), Fatal> {
        if head.stream != 0 {
            return Err(fatal(Reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
        }
        if head.has(flag::ACK) {
            if !payload.is_empty() {
                return Err(fatal(
                    Reason::FRAME_SIZE_ERROR,
                    "a SETTINGS ACK with a payload",
                ));
            }
            return Ok(());
        }
        if !payload.len().is_multiple_of(6) {
            return Err(fatal(
                Reason::FRAME_SIZE_ERROR,
                "SETTINGS of the wrong size",
            ));
        }
        for entry in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([entry[0], entry[1]]);
            let value = u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]);
            self.setting(id, value)?;
        }
        frame::settings_ack(&mut self.out);
        Ok(())
    }

    fn setting(&mut self, id: u16, value: u32) -> Result<(), Fatal> {
        match id {
            setting::ENABLE_PUSH if value > 1 => Err(fatal(
                Reason::PROTOCOL_ERROR,
                "ENABLE_PUSH other than 0 or 1",
            )),
            setting::INITIAL_WINDOW_SIZE => {
                let value = i64::from(value);
                if value > frame::MAX_WINDOW {
                    return Err(fatal(
                        Reason::FLOW_CONTROL_ERROR,
                        "INITIAL_WINDOW_SIZE too large",
                    ));
                }
                let delta = value - self.peer_window;
                self.peer_window = value;
                for stream in self.streams.values_mut() {
                    stream.send_window += delta;
                    if stream.send_window > frame::MAX_WINDOW {
                        return Err(fatal(
                            Reason::FLOW_CONTROL_ERROR,
                            "a stream window too large",
                        ));
                    }
                }
                Ok(())
            }
            setting::MAX_FRAME_SIZE => {
                if !(frame::MIN_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE).contains(&value) {
                    return Err(fatal(Reason::PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range"));
                }
                self.peer_max_frame = value as usize;
                Ok(())
            }
            setting::ENABLE_CONNECT_PROTOCOL if value > 1 => Err(fatal(
                Reason::PROTOCOL_ERROR,
                "ENABLE_CONNECT_PROTOCOL other than 0 or 1",
            )),
            // Our encoder never uses the dynamic table: HEADER_TABLE_SIZE asks nothing of it.
            // Unknown settings are ignored (§6.5.2).
            _ => Ok(()),
        }
    }

    fn recv_ping(&mut self, head: Head, payload: &[u8]) -> Result<(), Fatal> {
        if head.stream != 0 {
            return Err(fatal(Reason::PROTOCOL_ERROR, "PING on a stream"));
        }
        let Ok(data) = <&[u8; 8]>::try_from(payload) else {
            return Err(fatal(Reason::FRAME_SIZE_ERROR, "PING of the wrong size"));
        };
        if !head.has(flag::ACK) {
            frame::ping(&mut self.out, flag::ACK, data);
        } else if data == PING {
            self.ping_unanswered = false;
        }
        Ok(())
    }

    fn window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), Fatal> {
        let Ok(raw) = <[u8; 4]>::try_from(payload) else {
            return Err(fatal(
                Reason::FRAME_SIZE_ERROR,
                "WINDOW_UPDATE of the wrong size",
            ));
        };
        let increment = i64::from(u32::from_be_bytes(raw) & 0x7fff_ffff);
        let id = head.stream;
        if id == 0 {
            if increment == 0 {
                return Err(fatal(Reason::PROTOCOL_ERROR, "a zero WINDOW_UPDATE"));
            }
            self.send_window += increment;
            if self.send_window > frame::MAX_WINDOW {
                return Err(fatal(
                    Reason::FLOW_CONTROL_ERROR,
                    "the connection window too large",
                ));
            }
            return Ok(());
        }
        if self.is_idle_stream(id) {
            return Err(fatal(
                Reason::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if increment == 0 {
            self.reset(id, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        stream.send_window += increment;
        if stream.send_window > frame::MAX_WINDOW {
            self.reset(id, Reason::FLOW_CONTROL_ERROR);
        }
        Ok(())
    }

    /// Resets `id` (a stream error) and forgets it.
    fn reset(&mut self, id: u32, reason: Reason) {
        frame::rst_stream(&mut self.out, id, reason);
        self.reset_recently[self.reset_at] = id;
        self.reset_at = (self.reset_at + 1) % RECENTLY_RESET;
        self.remove(id);
    }

    /// Forgets `id`: its handler is cancelled, its unread body given back.
    fn remove(&mut self, id: u32) {
        if let Some(stream) = self.streams.remove(&id) {
            let unread = close(stream);
            if unread > 0 {
                self.give_back(0, unread);
            }
        }
    }

    /// Gives `n` bytes of window back to the client: on the connection, and on stream `id`
    /// while it may still send (0: the connection only). Sent once half a window is due.
    fn give_back(&mut self, id: u32, n: usize) {
        self.unacked += n;
        if self.unacked >= self.config.conn_window as usize / 2 {
            frame::window_update(&mut self.out, 0, self.unacked as u32);
            self.recv_window += self.unacked as i64;
            self.unacked = 0;
        }
        let half = self.config.stream_window as usize / 2;
        if let Some(stream) = self.streams.get_mut(&id).filter(|s| s.recv_open) {
            stream.unacked += n;
            if stream.unacked >= half {
                frame::window_update(&mut self.out, id, stream.unacked as u32);
                stream.recv_window += stream.unacked as i64;
                stream.unacked = 0;
            }
        }
    }

    /// Gives back what the handlers read since the last turn.
    pub(crate) fn apply_releases(&mut self) {
        let mut read = std::mem::take(&mut self.read);
        self.releases.take(&mut read);
        for (id, n) in read.drain(..) {
            self.give_back(id, n);
        }
        self.read = read;
    }

    /// Sends the handler's answer for `id` (dropped if the stream is gone).
    pub(crate) fn respond(&mut self, id: u32, res: Response<B>, cx: &mut Context<'_>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        stream.abort = None;
        let tunnel = stream.upgrade.take();
        self.answered = self.answered.saturating_add(1);
        let (mut head, body) = res.into_parts();
        if let Some(tunnel) = tunnel.filter(|_| head.status.is_success()) {
            // The answer opens the tunnel: no length, no end.
            head.headers.remove(header::CONTENT_LENGTH);
            self.write_head(id, &mut head, false);
            let body = Outgoing::Tunnel(tunnel.fulfil());
            if let Some(stream) = self.streams.get_mut(&id) {
                stream.send = Send::Body {
                    body,
                    pending: Bytes::new(),
                };
                self.pump(id, cx);
            }
            return;
        }
        let end = body.is_end_stream();
        if !end
            && head.extensions.get::<hpack::EncodedFields>().is_none()
            && !head.headers.contains_key(header::CONTENT_LENGTH)
            && let Some(n) = body.size_hint().exact()
        {
            head.headers.insert(header::CONTENT_LENGTH, n.into());
        }
        self.write_head(id, &mut head, end);
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if end {
            stream.send = Send::Done;
            self.sent(id);
        } else {
            stream.send = Send::Body {
                body: Outgoing::Answer(body),
                pending: Bytes::new(),
            };
            self.pump(id, cx);
        }
    }

    /// Lets the handler's future for `id` be cancelled if the stream goes first.
    pub(crate) fn set_abort(&mut self, id: u32, abort: AbortHandle) {
        match self.streams.get_mut(&id) {
            Some(stream) => stream.abort = Some(abort),
            None => abort.abort(),
        }
    }

    fn write_head(&mut self, id: u32, head: &mut http::response::Parts, end: bool) {
        strip_connection_fields(&mut head.headers);
        let start = self.out.len();
        self.out.put_bytes(0, frame::HEAD_LEN);
        hpack::encode_status(&mut self.out, head.status);
        if let Some(fields) = head.extensions.get::<hpack::EncodedFields>() {
            hpack::encode_field(&mut self.out, &header::DATE, &crate::clock::http_date());
            self.out.put_slice(fields.as_bytes());
        } else if !head.headers.contains_key(header::DATE) {
            hpack::encode_field(&mut self.out, &header::DATE, &crate::clock::http_date());
        }
        for (name, value) in &head.headers {
            hpack::encode_field(&mut self.out, name, value);
        }
        let flags = if end { flag::END_STREAM } else { 0 };
        self.frame_block(start, id, flags);
    }

    /// Frames the header block written after `start`'s reserved head: one HEADERS frame, or
    /// HEADERS and CONTINUATIONs when it is larger than the client's frame size.
    fn frame_block(&mut self, start: usize, id: u32, flags: u8) {
        let len = self.out.len() - start - frame::HEAD_LEN;
        if len <= self.peer_max_frame {
            let head = frame::head_bytes(len, kind::HEADERS, flags | flag::END_HEADERS, id);
            self.out[start..start + frame::HEAD_LEN].copy_from_slice(&head);
            return;
        }
        let block = self.out.split_off(start + frame::HEAD_LEN).freeze();
        self.out.truncate(start);
        let mut chunks = block.chunks(self.peer_max_frame).peekable();
        let mut first = true;
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            let (k, mut f) = if first {
                (kind::HEADERS, flags)
            } else {
                (kind::CONTINUATION, 0)
            };
            if last {
                f |= flag::END_HEADERS;
            }
            frame::put_head(&mut self.out, chunk.len(), k, f, id);
            self.out.put_slice(chunk);
            first = false;
        }
    }

    /// The response to `id` is all sent.
    fn sent(&mut self, id: u32) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if !stream.recv_open {
            self.remove(id);
        } else if stream.inbox.as_ref().is_none_or(|i| i.is_abandoned()) {
            // §8.1: the answer is whole and nobody reads the rest of the request.
            self.reset(id, Reason::NO_ERROR);
        }
    }

    /// Sends what every body being sent has ready, as the windows allow, while `out` is below
    /// `high_water`.
    pub(crate) fn pump_all(&mut self, cx: &mut Context<'_>, high_water: usize) {
        if self.send_window <= 0 || self.out.len() >= high_water {
            return;
        }
        let mut ids = std::mem::take(&mut self.ids);
        ids.extend(
            self.streams
                .iter()
                .filter(|(_, s)| matches!(s.send, Send::Body { .. }))
                .map(|(id, _)| *id),
        );
        for &id in &ids {
            if self.out.len() >= high_water {
                break;
            }
            self.pump(id, cx);
        }
        ids.clear();
        self.ids = ids;
    }

    /// Sends what the body of `id` has, as far as the windows allow.
    fn pump(&mut self, id: u32, cx: &mut Context<'_>) {
        loop {
            let Some(stream) = self.streams.get_mut(&id) else {
                return;
            };
            let Send::Body { body, pending } = &mut stream.send else {
                return;
            };
            if pending.is_empty() {
                match body.poll_frame(cx) {
                    Poll::Pending => return,
                    Poll::Ready(None) => {
                        frame::put_head(&mut self.out, 0, kind::DATA, flag::END_STREAM, id);
                        stream.send = Send::Done;
                        return self.sent(id);
                    }
                    Poll::Ready(Some(Err(()))) => {
                        tracing::debug!(stream = id, "a response body failed while being sent");
                        return self.reset(id, Reason::INTERNAL_ERROR);
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => *pending = data,
                        Err(frame) => {
                            let trailers = frame.into_trailers().unwrap_or_default();
                            stream.send = Send::Done;
                            self.write_trailers(id, &trailers);
                            return self.sent(id);
                        }
                    },
                }
                if pending.is_empty() {
                    continue;
                }
            }
            let window = stream
                .send_window
                .min(self.send_window)
                .min(self.peer_max_frame as i64);
            if window <= 0 {
                return;
            }
            let n = pending.len().min(window as usize);
            let chunk = pending.split_to(n);
            let last = pending.is_empty() && body.is_end_stream();
            stream.send_window -= n as i64;
            self.send_window -= n as i64;
            let flags = if last { flag::END_STREAM } else { 0 };
            frame::put_head(&mut self.out, n, kind::DATA, flags, id);
            self.out.put_slice(&chunk);
            if last {
                stream.send = Send::Done;
                return self.sent(id);
            }
        }
    }

    fn write_trailers(&mut self, id: u32, trailers: &HeaderMap) {
        let start = self.out.len();
        self.out.put_bytes(0, frame::HEAD_LEN);
        for (name, value) in trailers {
            if !is_connection_specific(name) {
                hpack::encode_field(&mut self.out, name, value);
            }
        }
        self.frame_block(start, id, flag::END_STREAM);
    }
}

/// Ends a stream's side of things; returns its body's unread bytes.
fn close<B>(stream: Stream<B>) -> usize {
    if let Some(abort) = stream.abort {
        abort.abort();
    }
    stream.inbox.map_or(0, |inbox| inbox.break_off())
}

/// Removes a frame's padding (§6.1): the pad length byte and the padding itself.
fn strip_padding(head: &Head, payload: &mut Bytes) -> Result<(), Fatal> {
    if !head.has(flag::PADDED) {
        return Ok(());
    }
    let Some(&pad) = payload.first() else {
        return Err(fatal(
            Reason::FRAME_SIZE_ERROR,
            "a padded frame without its pad length",
        ));
    };
    let pad = usize::from(pad);
    if pad >= payload.len() {
        return Err(fatal(
            Reason::PROTOCOL_ERROR,
            "padding as long as the frame",
        ));
    }
    payload.advance(1);
    payload.truncate(payload.len() - pad);
    Ok(())
}

/// Content-Length as declared (§8.1.1): absent, or one number (repeats must agree).
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut declared = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let n: u64 = value.to_str().map_err(|_| ())?.parse().map_err(|_| ())?;
        if declared.is_some_and(|d| d != n) {
            return Err(());
        }
        declared = Some(n);
    }
    Ok(declared)
}

/// A response's fields that HTTP/2 forbids (§8.2.2), from an HTTP/1.1 upstream say: removed,
/// with whatever Connection names.
fn strip_connection_fields(headers: &mut HeaderMap) {
    if !headers
        .keys()
        .any(|n| is_connection_specific(n) || n == header::TE)
    {
        return;
    }
    if let Some(connection) = headers.remove(header::CONNECTION)
        && let Ok(names) = connection.to_str()
    {
        for name in names.split(',') {
            headers.remove(name.trim());
        }
    }
    for name in [header::TRANSFER_ENCODING, header::UPGRADE, header::TE] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::task::noop_waker_ref;
    use http_body_util::Full;

    const CONFIG: Config = Config {
        max_concurrent_streams: 4,
        max_header_list: 8192,
        stream_window: 65_535,
        conn_window: 65_535,
        connect_protocol: true,
    };

    fn cx() -> Context<'static> {
        Context::from_waker(noop_waker_ref())
    }

    /// A header block of literal fields (new names, without indexing).
    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, value) in fields {
            b.push(0);
            b.push(name.len() as u8);
            b.extend_from_slice(name.as_bytes());
            b.push(value.len() as u8);
            b.extend_from_slice(value.as_bytes());
        }
        b
    }

    fn get(path: &str) -> Vec<u8> {
        block(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", path),
        ])
    }

    fn put(dst: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        frame::put_head(dst, payload.len(), kind, flags, stream);
        dst.put_slice(payload);
    }

    /// A GET for `path` on stream `id`, in one HEADERS frame that ends the stream.
    fn put_get(dst: &mut BytesMut, id: u32, path: &str) {
        put(
            dst,
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            id,
            &get(path),
        );
    }

    /// A connection past its preface and first SETTINGS, with what it wrote so far dropped.
    fn open() -> (Conn<Full<Bytes>>, Vec<Event>) {
        let mut conn = Conn::new(CONFIG, Arc::new(Releases::default()));
        let mut buf = BytesMut::from(frame::PREFACE);
        put(&mut buf, kind::SETTINGS, 0, 0, &[]);
        let mut events = Vec::new();
        conn.recv(&mut buf, &mut events).expect("preface");
        conn.out.clear();
        (conn, events)
    }

    fn send(conn: &mut Conn<Full<Bytes>>, frames: BytesMut) -> Vec<Event> {
        let mut buf = frames;
        let mut events = Vec::new();
        let _ = conn.recv(&mut buf, &mut events);
        events
    }

    /// The frames written, as (kind, flags, stream, payload).
    fn written(conn: &mut Conn<Full<Bytes>>) -> Vec<(u8, u8, u32, Bytes)> {
        let mut out = conn.out.split().freeze();
        let mut frames = Vec::new();
        while out.len() >= frame::HEAD_LEN {
            let head = Head::parse(&out);
            out.advance(frame::HEAD_LEN);
            frames.push((head.kind, head.flags, head.stream, out.split_to(head.len)));
        }
        frames
    }

    fn ok(body: &'static [u8]) -> Response<Full<Bytes>> {
        Response::new(Full::new(Bytes::from_static(body)))
    }

    #[test]
    fn a_get_is_answered_with_headers_and_data_ending_the_stream() {
        let (mut conn, _) = open();
        let mut f = BytesMut::new();
        put_get(&mut f, 1, "/x");
        let events = send(&mut conn, f);
        let [Event::Request(1, req)] = &events[..] else {
            panic!("one request");
        };
        assert_eq!(req.uri(), "https://a.test/x");
        conn.respond(1, ok(b"hello"), &mut cx());
        let frames = written(&mut conn);
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].0, frames[0].1),
            (kind::HEADERS, flag::END_HEADERS)
        );
        assert_eq!((frames[1].0, frames[1].1), (kind::DATA, flag::END_STREAM));
        assert_eq!(frames[1].3, "hello");
        assert!(conn.is_idle());
    }

    #[test]
    fn a_body_larger_than_the_window_waits_for_window_updates() {
        let (mut conn, _) = open();
        let mut f = BytesMut::new();
        // The client allows 10 bytes per stream.
        put(&mut f, kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 10]);
        put_get(&mut f, 1, "/");
        send(&mut conn, f);
        conn.respond(1, ok(b"0123456789abcdef"), &mut cx());
        let data: Vec<_> = written(&mut conn)
            .into_iter()
            .filter(|f| f.0 == kind::DATA)
            .collect();
        assert_eq!(data.len(), 1);
        assert_eq!(data[0].3, "0123456789");
        let mut f = BytesMut::new();
        put(&mut f, kind::WINDOW_UPDATE, 0, 1, &100u32.to_be_bytes());
        send(&mut conn, f);
        conn.pump_all(&mut cx(), usize::MAX);
        let data: Vec<_> = written(&mut conn)
            .into_iter()
            .filter(|f| f.0 == kind::DATA)
            .collect();
        assert_eq!(data.len(), 1);
        assert_eq!(
            (data[0].1, &data[0].3[..]),
            (flag::END_STREAM, &b"abcdef"[..])
        );
    }

    #[test]
    fn streams_beyond_the_limit_are_refused_and_the_rest_still_served() {
        let (mut conn, _) = open();
        let mut f = BytesMut::new();
        for id in [1, 3, 5, 7, 9] {
            put_get(&mut f, id, "/");
        }
        let events = send(&mut conn, f);
        assert_eq!(events.len(), 4);
        let frames = written(&mut conn);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].0, frames[0].2), (kind::RST_STREAM, 9));
        assert_eq!(frames[0].3[..], Reason::REFUSED_STREAM.0.to_be_bytes());
    }

    #[test]
    fn requests_reset_before_their_answers_in_a_flood_end_the_connection() {
        let config = Config {
            max_concurrent_streams: 1000,
            ..CONFIG
        };
        let mut conn = Conn::<Full<Bytes>>::new(config, Arc::new(Releases::default()));
        let mut f = BytesMut::from(frame::PREFACE);
        put(&mut f, kind::SETTINGS, 0, 0, &[]);
        for i in 0..=RESETS_TOLERATED {
            let id = 2 * i + 1;
            put_get(&mut f, id, "/");
            put(&mut f, kind::RST_STREAM, 0, id, &8u32.to_be_bytes());
        }
        let mut events = Vec::new();
        let err = conn.recv(&mut f, &mut events).expect_err("a flood");
        assert_eq!(err.reason, Reason::ENHANCE_YOUR_CALM);
        assert!(conn.is_finished());
        let goaway = written(&mut conn).pop().expect("GOAWAY");
        assert_eq!(goaway.0, kind::GOAWAY);
    }

    #[test]
    fn a_request_body_is_given_back_as_window_once_read() {
        let (mut conn, _) = open();
        let mut f = BytesMut::new();
        let post = block(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", "/up"),
        ]);
        put(&mut f, kind::HEADERS, flag::END_HEADERS, 1, &post);
        for _ in 0..3 {
            put(&mut f, kind::DATA, 0, 1, &[7u8; 13_000]);
        }
        let mut events = send(&mut conn, f);
        let Some(Event::Request(1, req)) = events.pop() else {
            panic!("a request");
        };
        let mut body = req.into_body();
        for _ in 0..3 {
            let frame = Pin::new(&mut body).poll_frame(&mut cx());
            assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        }
        conn.apply_releases();
        let updates: Vec<_> = written(&mut conn)
            .into_iter()
            .filter(|f| f.0 == kind::WINDOW_UPDATE)
            .map(|f| f.2)
            .collect();
        // Over half of both windows was read: both are topped up.
        assert_eq!(updates, [0, 1]);
    }

    #[test]
    fn protocol_errors_end_the_connection_with_goaway() {
        for (kind, flags, stream, payload) in [
            (kind::DATA, 0, 0, &b"x"[..]),
            (kind::SETTINGS, 0, 1, &[][..]),
            (kind::PING, 0, 0, &[0; 7][..]),
            (kind::WINDOW_UPDATE, 0, 0, &[0; 4][..]),
            (kind::HEADERS, flag::END_HEADERS, 2, &[][..]),
            (kind::CONTINUATION, flag::END_HEADERS, 1, &[][..]),
            (kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[][..]),
        ] {
            let (mut conn, _) = open();
            let mut f = BytesMut::new();
            put(&mut f, kind, flags, stream, payload);
            send(&mut conn, f);
            assert!(conn.is_finished(), "frame type {kind} on stream {stream}");
            assert_eq!(written(&mut conn).pop().map(|f| f.0), Some(kind::GOAWAY));
        }
    }

    #[test]
    fn a_header_block_too_large_is_answered_431_without_the_router() {
        let (mut conn, _) = open();
        let mut fields = vec![
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", "/"),
        ];
        let big = "v".repeat(100);
        for _ in 0..160 {
            fields.push(("x-big", &big));
        }
        let b = block(&fields);
        let mut f = BytesMut::new();
        let (first, rest) = b.split_at(MAX_FRAME);
        put(&mut f, kind::HEADERS, flag::END_STREAM, 1, first);
        put(&mut f, kind::CONTINUATION, flag::END_HEADERS, 1, rest);
        assert!(send(&mut conn, f).is_empty());
        let frames = written(&mut conn);
        assert_eq!(frames[0].0, kind::HEADERS);
        let mut d = Decoder::new(4096);
        let mut status = Vec::new();
        d.decode(frames[0].3.clone(), |_, v| status.push(v))
            .expect("decodes");
        assert_eq!(status[0], "431");
    }

    /// Valid frames with bytes flipped, cut and repeated, as a fuzzer would (cargo fuzz runs
    /// `fuzz/fuzz_targets/http2_frames.rs` for longer): nothing may panic.
    #[test]
    fn mangled_frames_never_panic() {
        let mut valid = BytesMut::new();
        put(
            &mut valid,
            kind::SETTINGS,
            0,
            0,
            &[0, 4, 0, 0, 0, 10, 0, 5, 0, 0, 0x40, 0],
        );
        put(&mut valid, kind::HEADERS, flag::END_HEADERS, 1, &get("/a"));
        put(
            &mut valid,
            kind::DATA,
            flag::PADDED,
            1,
            &[3, b'x', b'y', 0, 0, 0],
        );
        put(
            &mut valid,
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &block(&[("x-t", "1")]),
        );
        put(
            &mut valid,
            kind::HEADERS,
            flag::PRIORITY,
            3,
            &[0, 0, 0, 1, 9, 0x82, 0x87],
        );
        put(
            &mut valid,
            kind::CONTINUATION,
            flag::END_HEADERS,
            3,
            &[0x84, 0x41, 0x81, 0x1f],
        );
        put(&mut valid, kind::WINDOW_UPDATE, 0, 3, &[0, 0, 1, 0]);
        put(&mut valid, kind::RST_STREAM, 0, 3, &[0, 0, 0, 8]);
        put(&mut valid, kind::PING, 0, 0, &[1; 8]);
        put(&mut valid, kind::GOAWAY, 0, 0, &[0; 8]);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut data = valid.to_vec();
            for _ in 0..(next() % 8) {
                let at = next() as usize % data.len();
                match next() % 3 {
                    0 => data[at] = next() as u8,
                    1 => data.truncate(at),
                    _ => {
                        let piece = data[at..].to_vec();
                        data.extend_from_slice(&piece[..piece.len().min(64)]);
                    }
                }
                if data.is_empty() {
                    break;
                }
            }
            crate::hot_paths::http2_feed(&data, next() as usize % (data.len() + 1));
        }
    }

    #[test]
    fn a_kept_head_goes_out_as_encoded_with_date_and_no_second_length() {
        let (mut conn, _) = open();
        let mut f = BytesMut::new();
        put_get(&mut f, 1, "/");
        send(&mut conn, f);
        let mut kept = HeaderMap::new();
        kept.insert(header::CONTENT_TYPE, "text/plain".parse().expect("value"));
        kept.insert(header::CONTENT_LENGTH, "5".parse().expect("value"));
        let mut res = ok(b"hello");
        res.extensions_mut()
            .insert(hpack::EncodedFields::new(&kept));
        conn.respond(1, res, &mut cx());
        let frames = written(&mut conn);
        let mut names = Vec::new();
        Decoder::new(4096)
            .decode(frames[0].3.clone(), |n, _| names.push(n))
            .expect("decodes");
        let field = |h| hpack::Name::Field(h);
        assert_eq!(
            names[1..],
            [
                field(header::DATE),
                field(header::CONTENT_TYPE),
                field(header::CONTENT_LENGTH)
            ]
        );
        assert_eq!(frames[1].3, "hello");
    }

    #[test]
    fn a_ping_is_asked_again_only_once_the_last_one_was_answered() {
        let (mut conn, _) = open();
        assert!(conn.send_ping());
        assert!(!conn.send_ping(), "unanswered");
        let mut f = BytesMut::new();
        put(&mut f, kind::PING, flag::ACK, 0, PING);
        send(&mut conn, f);
        assert!(conn.send_ping(), "answered");
        let pings = written(&mut conn)
            .iter()
            .filter(|f| f.0 == kind::PING)
            .count();
        assert_eq!(pings, 2);
    }

    #[test]
    fn small_pieces_a_request_keeps_do_not_hold_the_read_buffer() {
        let (mut conn, _) = open();
        let mut f = BytesMut::with_capacity(16 << 10);
        let post = block(&[
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "a.test"),
            (":path", "/up"),
            ("x-kept", "v"),
        ]);
        put(&mut f, kind::HEADERS, flag::END_HEADERS, 1, &post);
        put(&mut f, kind::DATA, 0, 1, b"tiny");
        let read = f.as_ptr() as usize..f.as_ptr() as usize + f.capacity();
        let mut events = send(&mut conn, f);
        let Some(Event::Request(1, req)) = events.pop() else {
            panic!("a request");
        };
        let outside = |p: *const u8| !read.contains(&(p as usize));
        assert!(outside(req.headers()["x-kept"].as_bytes().as_ptr()));
        let mut body = req.into_body();
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx()) else {
            panic!("data");
        };
        let data = frame.into_data().expect("data");
        assert_eq!(data, "tiny");
        assert!(outside(data.as_ptr()));
    }
}
