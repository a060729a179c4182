//! HPACK's Huffman code (RFC 7541 §5.2, Appendix B), decoding only: candado sends its strings
//! as they are (the encoder never needs Huffman), and reads what clients send.
//!
//! The code is canonical: within each length, codes follow the symbols' order, and every
//! shorter code is numerically smaller once codes are left-aligned. So the table is just each
//! symbol's length, and a code's length is found by comparing the next 32 bits against one
//! bound per length.

/// Bits per symbol, 0–255 and EOS (256), as Appendix B lists them.
const LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //
    28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //
    5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //
    13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //
    15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //
    6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, //
    24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, //
    22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, //
    21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, //
    26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, //
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, //
    20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, //
    26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, //
    30,
];

const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;
const EOS: u16 = 256;

/// The canonical code, derived from [`LENGTHS`] once, at compile time.
struct Code {
    /// Per length, the left-aligned (in 32 bits) bound below which a code is at most that
    /// long.
    limit: [u64; MAX_LEN + 1],
    /// Per length, its first code (right-aligned) and where its symbols start in `sorted`.
    first: [u32; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    /// The symbols in code order (by length, then by symbol).
    sorted: [u16; 257],
}

const CODE: Code = canonical();

const fn canonical() -> Code {
    let mut count = [0u32; MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut code = Code {
        limit: [0; MAX_LEN + 1],
        first: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        sorted: [0; 257],
    };
    let (mut next, mut at) = (0u32, 0u16);
    let mut len = 1;
    while len <= MAX_LEN {
        code.first[len] = next;
        code.offset[len] = at;
        let end = next + count[len];
        code.limit[len] = (end as u64) << (32 - len);
        // Symbols of this length, in order.
        let mut s = 0;
        while s < 257 {
            if LENGTHS[s] as usize == len {
                code.sorted[at as usize] = s as u16;
                at += 1;
            }
            s += 1;
        }
        next = end << 1;
        len += 1;
    }
    code
}

/// A Huffman-coded string that is not one: a code cut short, padding longer than 7 bits or
/// not all ones, or the EOS symbol inside the string (all COMPRESSION_ERROR, §5.2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InvalidHuffman;

/// Appends the decoded `src` to `dst`.
pub(crate) fn decode(src: &[u8], dst: &mut Vec<u8>) -> Result<(), InvalidHuffman> {
    dst.reserve(src.len() * 8 / 5);
    // `acc` holds `bits` not yet decoded, right-aligned.
    let (mut acc, mut bits, mut at) = (0u64, 0u32, 0);
    loop {
        while bits <= 56 && at < src.len() {
            acc = (acc << 8) | u64::from(src[at]);
            bits += 8;
            at += 1;
        }
        if bits == 0 {
            return Ok(());
        }
        // The next 32 bits, with ones past the end (padding is a prefix of EOS's ones).
        let window = if bits >= 32 {
            acc >> (bits - 32)
        } else {
            (acc << (32 - bits)) | ((1u64 << (32 - bits)) - 1)
        } & 0xffff_ffff;
        let mut len = MIN_LEN;
        while len < MAX_LEN && window >= CODE.limit[len] {
            len += 1;
        }
        if len as u32 > bits {
            // What is left is padding: fewer than 8 bits, all ones.
            let ones = (1u64 << bits) - 1;
            return if bits < 8 && acc & ones == ones {
                Ok(())
            } else {
                Err(InvalidHuffman)
            };
        }
        let code = (window >> (32 - len)) as u32;
        let index = CODE.offset[len] as u32 + (code - CODE.first[len]);
        let symbol = CODE.sorted[index as usize];
        if symbol == EOS {
            return Err(InvalidHuffman);
        }
        dst.push(symbol as u8);
        bits -= len as u32;
        acc &= (1u64 << bits) - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn decoded(s: &str) -> Result<String, InvalidHuffman> {
        let mut out = Vec::new();
        decode(&hex(s), &mut out)?;
        Ok(String::from_utf8(out).expect("ascii"))
    }

    /// A canonical encoder from the same lengths, for round trips.
    fn encode(src: &[u8]) -> Vec<u8> {
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &b in src {
            let len = LENGTHS[b as usize] as usize;
            let index = CODE.sorted[CODE.offset[len] as usize..]
                .iter()
                .position(|&s| s == u16::from(b))
                .expect("symbol") as u32;
            acc = (acc << len) | u64::from(CODE.first[len] + index);
            bits += len as u32;
            while bits >= 8 {
                out.push((acc >> (bits - 8)) as u8);
                bits -= 8;
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | ((1u8 << (8 - bits)) - 1));
        }
        out
    }

    #[test]
    fn the_code_is_complete_as_appendix_b_says() {
        // Kraft's sum of a complete prefix code is exactly one.
        let sum: u64 = LENGTHS
            .iter()
            .map(|&l| 1u64 << (MAX_LEN - l as usize))
            .sum();
        assert_eq!(sum, 1 << MAX_LEN);
        assert_eq!(CODE.limit[MAX_LEN], 1 << 32);
    }

    #[test]
    fn rfc_7541_appendix_c_strings_decode() {
        assert_eq!(
            decoded("f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            Ok("www.example.com".into())
        );
        assert_eq!(decoded("a8eb 1064 9cbf"), Ok("no-cache".into()));
        assert_eq!(decoded("25a8 49e9 5ba9 7d7f"), Ok("custom-key".into()));
        assert_eq!(decoded("25a8 49e9 5bb8 e8b4 bf"), Ok("custom-value".into()));
        assert_eq!(decoded("6402"), Ok("302".into()));
        assert_eq!(decoded("aec3 771a 4b"), Ok("private".into()));
        assert_eq!(
            decoded("d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"),
            Ok("Mon, 21 Oct 2013 20:13:21 GMT".into())
        );
        assert_eq!(
            decoded("9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"),
            Ok("https://www.example.com".into())
        );
    }

    #[test]
    fn every_byte_value_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        decode(&encode(&all), &mut out).expect("decodes");
        assert_eq!(out, all);
        let mut out = Vec::new();
        decode(&[], &mut out).expect("empty");
        assert!(out.is_empty());
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits); three pad bits of zeros are not EOS's prefix.
        assert_eq!(decode(&[0b0001_1000], &mut Vec::new()), Err(InvalidHuffman));
        // Eight bits of padding (a whole byte of ones) is too long.
        assert_eq!(
            decode(&[0b0001_1111, 0xff], &mut Vec::new()),
            Err(InvalidHuffman)
        );
        // EOS itself: 30 ones.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xfc], &mut Vec::new()),
            Err(InvalidHuffman)
        );
        assert_eq!(decode(&[0b0001_1111], &mut Vec::new()), Ok(()));
    }
}
