//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte head every frame starts with, and the frames
//! candado writes.

use bytes::{BufMut, BytesMut};

pub(crate) const HEAD_LEN: usize = 9;

/// Frame types (§6).
pub(crate) mod kind {
    pub(crate) const DATA: u8 = 0;
    pub(crate) const HEADERS: u8 = 1;
    pub(crate) const PRIORITY: u8 = 2;
    pub(crate) const RST_STREAM: u8 = 3;
    pub(crate) const SETTINGS: u8 = 4;
    pub(crate) const PUSH_PROMISE: u8 = 5;
    pub(crate) const PING: u8 = 6;
    pub(crate) const GOAWAY: u8 = 7;
    pub(crate) const WINDOW_UPDATE: u8 = 8;
    pub(crate) const CONTINUATION: u8 = 9;
}

/// Flags (§6): ACK shares END_STREAM's bit on SETTINGS and PING.
pub(crate) mod flag {
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const ACK: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PADDED: u8 = 0x8;
    pub(crate) const PRIORITY: u8 = 0x20;
}

/// Error codes (§7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reason(pub(crate) u32);

impl Reason {
    pub(crate) const NO_ERROR: Reason = Reason(0);
    pub(crate) const PROTOCOL_ERROR: Reason = Reason(1);
    pub(crate) const INTERNAL_ERROR: Reason = Reason(2);
    pub(crate) const FLOW_CONTROL_ERROR: Reason = Reason(3);
    pub(crate) const STREAM_CLOSED: Reason = Reason(5);
    pub(crate) const FRAME_SIZE_ERROR: Reason = Reason(6);
    pub(crate) const REFUSED_STREAM: Reason = Reason(7);
    pub(crate) const COMPRESSION_ERROR: Reason = Reason(9);
    pub(crate) const ENHANCE_YOUR_CALM: Reason = Reason(11);
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0 => "NO_ERROR",
            1 => "PROTOCOL_ERROR",
            2 => "INTERNAL_ERROR",
            3 => "FLOW_CONTROL_ERROR",
            4 => "SETTINGS_TIMEOUT",
            5 => "STREAM_CLOSED",
            6 => "FRAME_SIZE_ERROR",
            7 => "REFUSED_STREAM",
            8 => "CANCEL",
            9 => "COMPRESSION_ERROR",
            10 => "CONNECT_ERROR",
            11 => "ENHANCE_YOUR_CALM",
            12 => "INADEQUATE_SECURITY",
            13 => "HTTP_1_1_REQUIRED",
            other => return write!(f, "error code {other:#x}"),
        };
        f.write_str(name)
    }
}

/// Settings (§6.5.2, RFC 8441 §3).
pub(crate) mod setting {
    pub(crate) const ENABLE_PUSH: u16 = 2;
    pub(crate) const MAX_CONCURRENT_STREAMS: u16 = 3;
    pub(crate) const INITIAL_WINDOW_SIZE: u16 = 4;
    pub(crate) const MAX_FRAME_SIZE: u16 = 5;
    pub(crate) const MAX_HEADER_LIST_SIZE: u16 = 6;
    pub(crate) const ENABLE_CONNECT_PROTOCOL: u16 = 8;
}

/// The smallest and largest frame payloads a peer may allow (§6.5.2).
pub(crate) const MIN_MAX_FRAME_SIZE: u32 = 1 << 14;
pub(crate) const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window (§6.9.1).
pub(crate) const MAX_WINDOW: i64 = (1 << 31) - 1;
/// Every window's size until SETTINGS say otherwise (§6.9.2).
pub(crate) const DEFAULT_WINDOW: i64 = 65_535;

/// The connection preface a client starts with (§3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) stream: u32,
}

impl Head {
    /// The head at the start of `src` (at least [`HEAD_LEN`] bytes). The reserved bit is
    /// ignored, as §4.1 says.
    pub(crate) fn parse(src: &[u8]) -> Head {
        Head {
            len: usize::from(src[0]) << 16 | usize::from(src[1]) << 8 | usize::from(src[2]),
            kind: src[3],
            flags: src[4],
            stream: u32::from_be_bytes([src[5], src[6], src[7], src[8]]) & 0x7fff_ffff,
        }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

pub(crate) fn head_bytes(len: usize, kind: u8, flags: u8, stream: u32) -> [u8; HEAD_LEN] {
    debug_assert!(len <= MAX_MAX_FRAME_SIZE as usize);
    let [_, l0, l1, l2] = (len as u32).to_be_bytes();
    let [s0, s1, s2, s3] = stream.to_be_bytes();
    [l0, l1, l2, kind, flags, s0, s1, s2, s3]
}

pub(crate) fn put_head(dst: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    dst.put_slice(&head_bytes(len, kind, flags, stream));
}

pub(crate) fn settings(dst: &mut BytesMut, values: &[(u16, u32)]) {
    put_head(dst, values.len() * 6, kind::SETTINGS, 0, 0);
    for &(id, value) in values {
        dst.put_u16(id);
        dst.put_u32(value);
    }
}

pub(crate) fn settings_ack(dst: &mut BytesMut) {
    put_head(dst, 0, kind::SETTINGS, flag::ACK, 0);
}

pub(crate) fn ping(dst: &mut BytesMut, flags: u8, payload: &[u8; 8]) {
    put_head(dst, 8, kind::PING, flags, 0);
    dst.put_slice(payload);
}

pub(crate) fn window_update(dst: &mut BytesMut, stream: u32, increment: u32) {
    put_head(dst, 4, kind::WINDOW_UPDATE, 0, stream);
    dst.put_u32(increment);
}

pub(crate) fn rst_stream(dst: &mut BytesMut, stream: u32, reason: Reason) {
    put_head(dst, 4, kind::RST_STREAM, 0, stream);
    dst.put_u32(reason.0);
}

pub(crate) fn goaway(dst: &mut BytesMut, last_stream: u32, reason: Reason) {
    put_head(dst, 8, kind::GOAWAY, 0, 0);
    dst.put_u32(last_stream);
    dst.put_u32(reason.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_head_parses_back_without_the_reserved_bit() {
        let mut dst = BytesMut::new();
        put_head(&mut dst, 0x01_02_03, kind::HEADERS, flag::END_HEADERS, 7);
        dst[5] |= 0x80;
        assert_eq!(
            Head::parse(&dst),
            Head {
                len: 0x01_02_03,
                kind: kind::HEADERS,
                flags: flag::END_HEADERS,
                stream: 7
            }
        );
    }
}
