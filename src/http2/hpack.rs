//! HPACK (RFC 7541): the decoder a client's header blocks need, with its dynamic table, and
//! the encoder for candado's responses.
//!
//! The encoder writes every field as a literal that is never added to the dynamic table, its
//! name by static index where the table has one (§6.2.2). That costs more bytes on the wire
//! than indexing repeated fields, but nothing to look up per field, no table to keep in step
//! with the client, and no Huffman pass: a response head is a handful of copies.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderName;
use http::header::{self, HeaderValue};
use std::collections::VecDeque;

use super::huffman;

/// A decoded field's name: one of the request pseudo-fields, a valid (lowercase) field name,
/// or a name no request may carry (uppercase, an unknown pseudo-field, invalid bytes), which
/// makes the request malformed but must still be kept in the table in step with the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Name {
    Pseudo(Pseudo),
    Field(HeaderName),
    Invalid(Bytes),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pseudo {
    Authority,
    Method,
    Path,
    Scheme,
    Protocol,
    Status,
}

impl Name {
    fn parse(raw: Bytes) -> Name {
        if let Some(pseudo) = raw.strip_prefix(b":") {
            return match pseudo {
                b"authority" => Name::Pseudo(Pseudo::Authority),
                b"method" => Name::Pseudo(Pseudo::Method),
                b"path" => Name::Pseudo(Pseudo::Path),
                b"scheme" => Name::Pseudo(Pseudo::Scheme),
                b"protocol" => Name::Pseudo(Pseudo::Protocol),
                b"status" => Name::Pseudo(Pseudo::Status),
                _ => Name::Invalid(raw),
            };
        }
        // RFC 9113 §8.2.1: field names are lowercase in HTTP/2.
        if raw.iter().any(u8::is_ascii_uppercase) {
            return Name::Invalid(raw);
        }
        match HeaderName::from_bytes(&raw) {
            Ok(name) => Name::Field(name),
            Err(_) => Name::Invalid(raw),
        }
    }

    /// Its length as HPACK counts it (§4.1).
    pub(crate) fn len(&self) -> usize {
        match self {
            Name::Pseudo(p) => match p {
                Pseudo::Authority => 10,
                Pseudo::Method | Pseudo::Scheme => 7,
                Pseudo::Path => 5,
                Pseudo::Protocol => 9,
                Pseudo::Status => 7,
            },
            Name::Field(name) => name.as_str().len(),
            Name::Invalid(raw) => raw.len(),
        }
    }
}

/// Why a header block cannot be decoded: a COMPRESSION_ERROR for the whole connection, since
/// the dynamic table is no longer known to match the client's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    Truncated,
    IntegerOverflow,
    BadIndex(usize),
    Huffman,
    /// A table size update after the first field, or above what candado allows.
    TableSizeUpdate,
}

/// Every field is an entry of this many bytes plus its name and value (§4.1).
const ENTRY_OVERHEAD: usize = 32;

pub(crate) struct Decoder {
    table: VecDeque<(Name, Bytes)>,
    /// The table's size as §4.1 counts it.
    size: usize,
    /// The size the client last set, and the most candado allows (SETTINGS_HEADER_TABLE_SIZE).
    max: usize,
    allowed: usize,
}

impl Decoder {
    pub(crate) fn new(allowed: usize) -> Self {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max: allowed,
            allowed,
        }
    }

    /// Decodes a whole header block, giving each field to `field` in order.
    pub(crate) fn decode(
        &mut self,
        mut block: Bytes,
        mut field: impl FnMut(Name, Bytes),
    ) -> Result<(), DecodeError> {
        let mut first = true;
        while let Some(&byte) = block.first() {
            if byte & 0x80 != 0 {
                // §6.1 Indexed.
                let index = integer(&mut block, 7)?;
                let (name, value) = self.get(index)?;
                field(name, value);
            } else if byte & 0x40 != 0 {
                // §6.2.1 Literal with incremental indexing.
                let (name, value) = self.literal(&mut block, 6)?;
                // The table keeps its own copy: a slice would hold the whole block (and the
                // read buffer under it) for as long as the entry lives.
                self.insert(name.clone(), Bytes::copy_from_slice(&value));
                field(name, value);
            } else if byte & 0x20 != 0 {
                // §6.3 Dynamic table size update, only before the first field (§4.2).
                let size = integer(&mut block, 5)?;
                if !first || size > self.allowed {
                    return Err(DecodeError::TableSizeUpdate);
                }
                self.max = size;
                self.evict(0);
                continue;
            } else {
                // §6.2.2 without indexing, §6.2.3 never indexed: a 4-bit prefix both.
                let (name, value) = self.literal(&mut block, 4)?;
                field(name, value);
            }
            first = false;
        }
        Ok(())
    }

    fn literal(&self, block: &mut Bytes, prefix: u8) -> Result<(Name, Bytes), DecodeError> {
        let index = integer(block, prefix)?;
        let name = if index == 0 {
            Name::parse(string(block)?)
        } else {
            self.get(index)?.0
        };
        Ok((name, string(block)?))
    }

    fn get(&self, index: usize) -> Result<(Name, Bytes), DecodeError> {
        if index == 0 {
            return Err(DecodeError::BadIndex(index));
        }
        if let Some((name, value)) = STATIC.get(index - 1) {
            return Ok((name.clone(), Bytes::from_static(value)));
        }
        self.table
            .get(index - 1 - STATIC.len())
            .cloned()
            .ok_or(DecodeError::BadIndex(index))
    }

    fn insert(&mut self, name: Name, value: Bytes) {
        let name = match name {
            Name::Invalid(raw) => Name::Invalid(Bytes::copy_from_slice(&raw)),
            other => other,
        };
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        // An entry larger than the table empties it and is not added (§4.4).
        self.evict(size);
        if size <= self.max {
            self.size += size;
            self.table.push_front((name, value));
        }
    }

    /// Evicts the oldest entries until `room` more bytes fit.
    fn evict(&mut self, room: usize) {
        while self.size + room > self.max {
            match self.table.pop_back() {
                Some((name, value)) => self.size -= name.len() + value.len() + ENTRY_OVERHEAD,
                None => break,
            }
        }
    }
}

/// An integer with an N-bit prefix (§5.1). Bounded well below `usize`: no field, index or
/// size candado accepts comes near 2^28.
fn integer(block: &mut Bytes, prefix: u8) -> Result<usize, DecodeError> {
    let mask = (1u8 << prefix) - 1;
    let first = block.first().ok_or(DecodeError::Truncated)? & mask;
    block.advance(1);
    if first < mask {
        return Ok(usize::from(first));
    }
    let mut value = usize::from(mask);
    for shift in (0..28).step_by(7) {
        let byte = *block.first().ok_or(DecodeError::Truncated)?;
        block.advance(1);
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::IntegerOverflow)
}

/// A string literal (§5.2): shared from the block when sent as is, decoded when Huffman-coded.
fn string(block: &mut Bytes) -> Result<Bytes, DecodeError> {
    let huffman = block.first().ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = integer(block, 7)?;
    if len > block.len() {
        return Err(DecodeError::Truncated);
    }
    let raw = block.split_to(len);
    if !huffman {
        return Ok(raw);
    }
    let mut out = Vec::new();
    huffman::decode(&raw, &mut out).map_err(|_| DecodeError::Huffman)?;
    Ok(Bytes::from(out))
}

/// A response's fields (Date aside) encoded once, to be sent as they are by every answer that
/// carries them in its extensions: a kept file's head. Such an answer's own map holds only
/// what was added after (nothing, for a kept file).
#[derive(Clone, Debug)]
pub(crate) struct EncodedFields(Bytes);

impl EncodedFields {
    pub(crate) fn new(fields: &header::HeaderMap) -> Self {
        let mut dst = BytesMut::new();
        for (name, value) in fields {
            if name != header::DATE {
                encode_field(&mut dst, name, value);
            }
        }
        EncodedFields(dst.freeze())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Writes a response's `:status` (indexed when the static table has it).
pub(crate) fn encode_status(dst: &mut BytesMut, status: http::StatusCode) {
    let index = match status.as_u16() {
        200 => 8,
        204 => 9,
        206 => 10,
        304 => 11,
        400 => 12,
        404 => 13,
        500 => 14,
        _ => {
            literal(dst, 8, status.as_str().as_bytes(), false);
            return;
        }
    };
    dst.put_u8(0x80 | index);
}

/// Writes one field as a literal never added to the table; sensitive values (credentials,
/// cookies marked so) as never indexed, so no intermediary indexes them either (§7.1.3).
pub(crate) fn encode_field(dst: &mut BytesMut, name: &HeaderName, value: &HeaderValue) {
    let index = static_index(name);
    let sensitive = value.is_sensitive();
    if index != 0 {
        literal(dst, index, value.as_bytes(), sensitive);
    } else {
        dst.put_u8(if sensitive { 0x10 } else { 0 });
        string_raw(dst, name.as_str().as_bytes());
        string_raw(dst, value.as_bytes());
    }
}

fn literal(dst: &mut BytesMut, name_index: u8, value: &[u8], sensitive: bool) {
    let flags = if sensitive { 0x10 } else { 0 };
    put_integer(dst, flags, 4, usize::from(name_index));
    string_raw(dst, value);
}

fn string_raw(dst: &mut BytesMut, s: &[u8]) {
    put_integer(dst, 0, 7, s.len());
    dst.put_slice(s);
}

fn put_integer(dst: &mut BytesMut, flags: u8, prefix: u8, mut value: usize) {
    let mask = (1usize << prefix) - 1;
    if value < mask {
        dst.put_u8(flags | value as u8);
        return;
    }
    dst.put_u8(flags | mask as u8);
    value -= mask;
    while value >= 0x80 {
        dst.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    dst.put_u8(value as u8);
}

/// The static table's index for a response field's name, or 0.
fn static_index(name: &HeaderName) -> u8 {
    match name.as_str() {
        "accept-ranges" => 18,
        "access-control-allow-origin" => 20,
        "age" => 21,
        "allow" => 22,
        "cache-control" => 24,
        "content-disposition" => 25,
        "content-encoding" => 26,
        "content-language" => 27,
        "content-length" => 28,
        "content-location" => 29,
        "content-range" => 30,
        "content-type" => 31,
        "date" => 33,
        "etag" => 34,
        "expires" => 36,
        "last-modified" => 44,
        "link" => 45,
        "location" => 46,
        "proxy-authenticate" => 48,
        "refresh" => 52,
        "retry-after" => 53,
        "server" => 54,
        "set-cookie" => 55,
        "strict-transport-security" => 56,
        "vary" => 59,
        "via" => 60,
        "www-authenticate" => 61,
        _ => 0,
    }
}

const fn field(name: &'static str) -> Name {
    Name::Field(HeaderName::from_static(name))
}

/// The static table (Appendix A).
static STATIC: [(Name, &[u8]); 61] = [
    (Name::Pseudo(Pseudo::Authority), b""),
    (Name::Pseudo(Pseudo::Method), b"GET"),
    (Name::Pseudo(Pseudo::Method), b"POST"),
    (Name::Pseudo(Pseudo::Path), b"/"),
    (Name::Pseudo(Pseudo::Path), b"/index.html"),
    (Name::Pseudo(Pseudo::Scheme), b"http"),
    (Name::Pseudo(Pseudo::Scheme), b"https"),
    (Name::Pseudo(Pseudo::Status), b"200"),
    (Name::Pseudo(Pseudo::Status), b"204"),
    (Name::Pseudo(Pseudo::Status), b"206"),
    (Name::Pseudo(Pseudo::Status), b"304"),
    (Name::Pseudo(Pseudo::Status), b"400"),
    (Name::Pseudo(Pseudo::Status), b"404"),
    (Name::Pseudo(Pseudo::Status), b"500"),
    (Name::Field(header::ACCEPT_CHARSET), b""),
    (Name::Field(header::ACCEPT_ENCODING), b"gzip, deflate"),
    (Name::Field(header::ACCEPT_LANGUAGE), b""),
    (Name::Field(header::ACCEPT_RANGES), b""),
    (Name::Field(header::ACCEPT), b""),
    (Name::Field(header::ACCESS_CONTROL_ALLOW_ORIGIN), b""),
    (Name::Field(header::AGE), b""),
    (Name::Field(header::ALLOW), b""),
    (Name::Field(header::AUTHORIZATION), b""),
    (Name::Field(header::CACHE_CONTROL), b""),
    (Name::Field(header::CONTENT_DISPOSITION), b""),
    (Name::Field(header::CONTENT_ENCODING), b""),
    (Name::Field(header::CONTENT_LANGUAGE), b""),
    (Name::Field(header::CONTENT_LENGTH), b""),
    (Name::Field(header::CONTENT_LOCATION), b""),
    (Name::Field(header::CONTENT_RANGE), b""),
    (Name::Field(header::CONTENT_TYPE), b""),
    (Name::Field(header::COOKIE), b""),
    (Name::Field(header::DATE), b""),
    (Name::Field(header::ETAG), b""),
    (Name::Field(header::EXPECT), b""),
    (Name::Field(header::EXPIRES), b""),
    (Name::Field(header::FROM), b""),
    (Name::Field(header::HOST), b""),
    (Name::Field(header::IF_MATCH), b""),
    (Name::Field(header::IF_MODIFIED_SINCE), b""),
    (Name::Field(header::IF_NONE_MATCH), b""),
    (Name::Field(header::IF_RANGE), b""),
    (Name::Field(header::IF_UNMODIFIED_SINCE), b""),
    (Name::Field(header::LAST_MODIFIED), b""),
    (field("link"), b""),
    (Name::Field(header::LOCATION), b""),
    (Name::Field(header::MAX_FORWARDS), b""),
    (Name::Field(header::PROXY_AUTHENTICATE), b""),
    (Name::Field(header::PROXY_AUTHORIZATION), b""),
    (Name::Field(header::RANGE), b""),
    (Name::Field(header::REFERER), b""),
    (field("refresh"), b""),
    (Name::Field(header::RETRY_AFTER), b""),
    (Name::Field(header::SERVER), b""),
    (Name::Field(header::SET_COOKIE), b""),
    (Name::Field(header::STRICT_TRANSPORT_SECURITY), b""),
    (Name::Field(header::TRANSFER_ENCODING), b""),
    (Name::Field(header::USER_AGENT), b""),
    (Name::Field(header::VARY), b""),
    (Name::Field(header::VIA), b""),
    (Name::Field(header::WWW_AUTHENTICATE), b""),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Bytes {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>()
            .into()
    }

    fn decode(d: &mut Decoder, block: &str) -> Vec<(Name, String)> {
        let mut out = Vec::new();
        d.decode(hex(block), |n, v| {
            out.push((n, String::from_utf8(v.to_vec()).expect("utf-8")))
        })
        .expect("decodes");
        out
    }

    fn f(name: &'static str, value: &str) -> (Name, String) {
        let name = match name.strip_prefix(':') {
            Some(_) => Name::parse(Bytes::from_static(name.as_bytes())),
            None => Name::Field(HeaderName::from_static(name)),
        };
        (name, value.into())
    }

    #[test]
    fn rfc_7541_c_4_requests_with_huffman_share_one_dynamic_table() {
        let mut d = Decoder::new(4096);
        let first = decode(&mut d, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff");
        assert_eq!(
            first,
            [
                f(":method", "GET"),
                f(":scheme", "http"),
                f(":path", "/"),
                f(":authority", "www.example.com"),
            ]
        );
        assert_eq!(d.size, 57);
        let second = decode(&mut d, "8286 84be 5886 a8eb 1064 9cbf");
        assert_eq!(second[3], f(":authority", "www.example.com"));
        assert_eq!(second[4], f("cache-control", "no-cache"));
        assert_eq!(d.size, 110);
        let third = decode(
            &mut d,
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        );
        assert_eq!(third[1], f(":scheme", "https"));
        assert_eq!(third[2], f(":path", "/index.html"));
        assert_eq!(third[3], f(":authority", "www.example.com"));
        assert_eq!(third[4], f("custom-key", "custom-value"));
        assert_eq!(d.size, 164);
    }

    #[test]
    fn rfc_7541_c_5_responses_evict_the_oldest_entries() {
        // C.5 with a 256-byte table: the third block evicts.
        let mut d = Decoder::new(256);
        decode(
            &mut d,
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 \
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 \
             6c65 2e63 6f6d",
        );
        assert_eq!(d.size, 222);
        decode(&mut d, "4803 3330 37c1 c0bf");
        assert_eq!(d.size, 222);
        assert_eq!(d.table.len(), 4);
    }

    #[test]
    fn a_size_update_after_a_field_or_above_the_setting_is_refused() {
        let mut d = Decoder::new(4096);
        assert_eq!(
            d.decode(hex("82 3f e1 1f"), |_, _| ()),
            Err(DecodeError::TableSizeUpdate)
        );
        // 4097 > 4096.
        let mut d = Decoder::new(4096);
        assert_eq!(
            d.decode(hex("3f e2 1f"), |_, _| ()),
            Err(DecodeError::TableSizeUpdate)
        );
        let mut d = Decoder::new(4096);
        assert_eq!(d.decode(hex("20 82"), |_, _| ()), Ok(()));
    }

    #[test]
    fn bad_indexes_and_truncated_blocks_are_compression_errors() {
        let mut d = Decoder::new(4096);
        assert_eq!(
            d.decode(hex("80"), |_, _| ()),
            Err(DecodeError::BadIndex(0))
        );
        assert_eq!(
            d.decode(hex("be"), |_, _| ()),
            Err(DecodeError::BadIndex(62))
        );
        assert_eq!(
            d.decode(hex("4085"), |_, _| ()),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            d.decode(hex("ff ff ff ff ff ff"), |_, _| ()),
            Err(DecodeError::IntegerOverflow)
        );
    }

    #[test]
    fn uppercase_and_unknown_pseudo_names_are_kept_as_invalid() {
        let mut d = Decoder::new(4096);
        let fields = decode(&mut d, "40 03 466f6f 01 78 40 04 3a666f6f 01 78");
        assert!(matches!(fields[0].0, Name::Invalid(_)));
        assert!(matches!(fields[1].0, Name::Invalid(_)));
        assert_eq!(d.table.len(), 2);
    }

    #[test]
    fn encoded_fields_decode_back() {
        let mut dst = BytesMut::new();
        encode_status(&mut dst, http::StatusCode::OK);
        encode_status(&mut dst, http::StatusCode::IM_A_TEAPOT);
        encode_field(
            &mut dst,
            &header::CONTENT_TYPE,
            &HeaderValue::from_static("text/html"),
        );
        let long = "x".repeat(300);
        encode_field(
            &mut dst,
            &HeaderName::from_static("x-long"),
            &HeaderValue::from_str(&long).expect("value"),
        );
        let mut secret = HeaderValue::from_static("s=1");
        secret.set_sensitive(true);
        encode_field(&mut dst, &header::SET_COOKIE, &secret);
        let mut d = Decoder::new(4096);
        let mut out = Vec::new();
        d.decode(dst.freeze(), |n, v| out.push((n, v)))
            .expect("decodes");
        assert_eq!(out[0].1, "200");
        assert_eq!(out[1].1, "418");
        assert_eq!(
            out[2],
            (Name::Field(header::CONTENT_TYPE), "text/html".into())
        );
        assert_eq!(out[3].1, long.as_bytes());
        assert_eq!(out[4].1, "s=1");
        assert_eq!(d.table.len(), 0);
    }
}
