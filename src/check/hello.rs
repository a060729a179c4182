//! ClientHello bytes, written by hand so that candado can ask a server about protocols and
//! suites rustls will never speak (SSL 3.0 to TLS 1.1, RC4, export…). Nothing here completes a
//! handshake: the ServerHello or alert that comes back is all a probe needs. Layout per
//! RFC 5246 §7.4.1.2 and RFC 8446 §4.1.2.

use serde::Serialize;

/// A protocol version candado can probe for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    #[serde(rename = "SSLv3")]
    Ssl3,
    #[serde(rename = "TLS 1.0")]
    Tls10,
    #[serde(rename = "TLS 1.1")]
    Tls11,
    #[serde(rename = "TLS 1.2")]
    Tls12,
    #[serde(rename = "TLS 1.3")]
    Tls13,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Ssl3,
        Protocol::Tls10,
        Protocol::Tls11,
        Protocol::Tls12,
        Protocol::Tls13,
    ];

    /// The version number on the wire.
    pub fn wire(self) -> u16 {
        match self {
            Protocol::Ssl3 => 0x0300,
            Protocol::Tls10 => 0x0301,
            Protocol::Tls11 => 0x0302,
            Protocol::Tls12 => 0x0303,
            Protocol::Tls13 => 0x0304,
        }
    }

    pub fn from_wire(v: u16) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.wire() == v)
    }

    pub fn label(self) -> &'static str {
        match self {
            Protocol::Ssl3 => "SSLv3",
            Protocol::Tls10 => "TLS 1.0",
            Protocol::Tls11 => "TLS 1.1",
            Protocol::Tls12 => "TLS 1.2",
            Protocol::Tls13 => "TLS 1.3",
        }
    }
}

/// Named groups (IANA TLS Supported Groups registry) candado asks about, with the names
/// OpenSSL and sslyze use.
pub(crate) const GROUPS: &[(u16, &str)] = &[
    (1, "sect163k1"),
    (2, "sect163r1"),
    (3, "sect163r2"),
    (4, "sect193r1"),
    (5, "sect193r2"),
    (6, "sect233k1"),
    (7, "sect233r1"),
    (8, "sect239k1"),
    (9, "sect283k1"),
    (10, "sect283r1"),
    (11, "sect409k1"),
    (12, "sect409r1"),
    (13, "sect571k1"),
    (14, "sect571r1"),
    (15, "secp160k1"),
    (16, "secp160r1"),
    (17, "secp160r2"),
    (18, "secp192k1"),
    (19, "secp192r1"),
    (20, "secp224k1"),
    (21, "secp224r1"),
    (22, "secp256k1"),
    (23, "secp256r1"),
    (24, "secp384r1"),
    (25, "secp521r1"),
    (26, "brainpoolP256r1"),
    (27, "brainpoolP384r1"),
    (28, "brainpoolP512r1"),
    (29, "X25519"),
    (30, "X448"),
    (31, "brainpoolP256r1tls13"),
    (32, "brainpoolP384r1tls13"),
    (33, "brainpoolP512r1tls13"),
    (256, "ffdhe2048"),
    (257, "ffdhe3072"),
    (258, "ffdhe4096"),
    (259, "ffdhe6144"),
    (260, "ffdhe8192"),
    (0x11eb, "SecP256r1MLKEM768"),
    (0x11ec, "X25519MLKEM768"),
    (0x11ed, "SecP384r1MLKEM1024"),
];

pub(crate) const X25519: u16 = 29;

pub(crate) fn group_name(id: u16) -> String {
    GROUPS
        .iter()
        .find(|g| g.0 == id)
        .map(|g| g.1.to_owned())
        .unwrap_or_else(|| format!("group 0x{id:04x}"))
}

/// Elliptic curves usable with ECDHE in TLS 1.2 and older (RFC 8422).
pub(crate) fn is_legacy_ec_group(id: u16) -> bool {
    (1..=30).contains(&id)
}

/// Signature algorithms offered: everything a server might hold a key for, old ones included,
/// so that the certificate never decides which suites are seen.
const SIGNATURE_SCHEMES: &[u16] = &[
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0809, 0x080a, 0x080b, 0x0401,
    0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602, 0x0203, 0x0201, 0x0202, 0x0101,
    0x0102, 0x0103,
];

/// What one ClientHello offers.
#[derive(Debug, Clone)]
pub(crate) struct Hello {
    pub protocol: Protocol,
    pub suites: Vec<u16>,
    pub groups: Vec<u16>,
    /// SNI; left out for IP addresses (RFC 6066 §3).
    pub server_name: Option<String>,
    /// Offer DEFLATE before "null" compression (TLS 1.2 and older), to see if it is taken.
    pub offer_compression: bool,
    /// TLS 1.3: send an X25519 key share when X25519 is among the groups (otherwise, or when
    /// false, the key_share list is empty and the server answers with a HelloRetryRequest).
    pub x25519_share: bool,
    /// 32 bytes for the random, 32 for the session id, 32 for the key share.
    pub entropy: [u8; 96],
}

impl Hello {
    pub(crate) fn new(protocol: Protocol, suites: Vec<u16>, groups: Vec<u16>) -> Hello {
        let mut entropy = [0u8; 96];
        fill_random(&mut entropy);
        Hello {
            protocol,
            suites,
            groups,
            server_name: None,
            offer_compression: false,
            x25519_share: true,
            entropy,
        }
    }

    /// The whole TLS record holding the ClientHello.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let tls13 = self.protocol == Protocol::Tls13;
        let legacy_version = match tls13 {
            true => Protocol::Tls12.wire(),
            false => self.protocol.wire(),
        };
        let mut body = Vec::with_capacity(1024);
        body.extend_from_slice(&legacy_version.to_be_bytes());
        body.extend_from_slice(&self.entropy[..32]);
        // A session id makes TLS 1.3 middlebox-compatibility mode happy (RFC 8446 §D.4).
        match tls13 {
            true => {
                body.push(32);
                body.extend_from_slice(&self.entropy[32..64]);
            }
            false => body.push(0),
        }
        let mut suites: Vec<u8> = self.suites.iter().flat_map(|s| s.to_be_bytes()).collect();
        if !tls13 {
            // TLS_EMPTY_RENEGOTIATION_INFO_SCSV (RFC 5746): old servers answer more readily.
            suites.extend_from_slice(&0x00ffu16.to_be_bytes());
        }
        put_u16_vec(&mut body, &suites);
        match self.offer_compression && !tls13 {
            true => body.extend_from_slice(&[2, 1, 0]),
            false => body.extend_from_slice(&[1, 0]),
        }
        if self.protocol != Protocol::Ssl3 {
            put_u16_vec(&mut body, &self.extensions());
        }
        let mut handshake = vec![1u8];
        put_u24(&mut handshake, body.len());
        handshake.extend_from_slice(&body);
        let record_version = match self.protocol {
            Protocol::Ssl3 => 0x0300u16,
            _ => 0x0301,
        };
        let mut record = vec![22u8];
        record.extend_from_slice(&record_version.to_be_bytes());
        put_u16_vec(&mut record, &handshake);
        record
    }

    fn extensions(&self) -> Vec<u8> {
        let tls13 = self.protocol == Protocol::Tls13;
        let mut ext = Vec::new();
        if let Some(name) = &self.server_name {
            let mut entry = vec![0u8]; // host_name
            put_u16_vec(&mut entry, name.as_bytes());
            let mut list = Vec::new();
            put_u16_vec(&mut list, &entry);
            put_extension(&mut ext, 0x0000, &list);
        }
        let groups: Vec<u8> = self.groups.iter().flat_map(|g| g.to_be_bytes()).collect();
        if !groups.is_empty() {
            let mut data = Vec::new();
            put_u16_vec(&mut data, &groups);
            put_extension(&mut ext, 0x000a, &data);
        }
        // ec_point_formats: uncompressed.
        put_extension(&mut ext, 0x000b, &[1, 0]);
        let schemes: Vec<u8> = SIGNATURE_SCHEMES
            .iter()
            .flat_map(|s| s.to_be_bytes())
            .collect();
        let mut data = Vec::new();
        put_u16_vec(&mut data, &schemes);
        put_extension(&mut ext, 0x000d, &data);
        // extended_master_secret (RFC 7627), empty.
        put_extension(&mut ext, 0x0017, &[]);
        if tls13 {
            put_extension(&mut ext, 0x002b, &[2, 0x03, 0x04]);
            // psk_key_exchange_modes: psk_dhe_ke (some servers insist on seeing it).
            put_extension(&mut ext, 0x002d, &[1, 1]);
            let mut shares = Vec::new();
            if self.x25519_share && self.groups.contains(&X25519) {
                shares.extend_from_slice(&X25519.to_be_bytes());
                // Any 32 bytes are an X25519 public key; the handshake is never finished.
                put_u16_vec(&mut shares, &self.entropy[64..96]);
            }
            let mut data = Vec::new();
            put_u16_vec(&mut data, &shares);
            put_extension(&mut ext, 0x0033, &data);
        }
        ext
    }
}

fn put_extension(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_u16_vec(out, data);
}

/// Lengths here are bounded by what candado itself puts in a hello (a few KiB at most).
fn put_u16_vec(out: &mut Vec<u8>, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data[..usize::from(len)]);
}

fn put_u24(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).unwrap_or(0xff_ffff).min(0xff_ffff);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
}

/// Random bytes from the crypto provider; they need not be secret (no handshake completes),
/// only unpredictable enough that a server does not see replays.
fn fill_random(buf: &mut [u8]) {
    if crate::tls::provider().secure_random.fill(buf).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed >> (i % 16 * 8)) as u8 ^ i as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([b[i], b[i + 1]])
    }

    /// The extensions of a ClientHello record: (type, data) pairs.
    fn extensions_of(record: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let body = &record[9..];
        let sid = body[34] as usize;
        let mut i = 35 + sid;
        let suites = u16_at(body, i) as usize;
        i += 2 + suites;
        let comp = body[i] as usize;
        i += 1 + comp;
        if i == body.len() {
            return Vec::new();
        }
        let end = i + 2 + u16_at(body, i) as usize;
        assert_eq!(end, body.len(), "extensions fill the rest of the hello");
        i += 2;
        let mut out = Vec::new();
        while i < end {
            let len = u16_at(body, i + 2) as usize;
            out.push((u16_at(body, i), body[i + 4..i + 4 + len].to_vec()));
            i += 4 + len;
        }
        out
    }

    #[test]
    fn record_and_handshake_lengths_match_the_bytes_that_follow() {
        let mut h = Hello::new(Protocol::Tls12, vec![0xc02f, 0x0005], vec![23, 29]);
        h.server_name = Some("test.example".into());
        let b = h.to_bytes();
        assert_eq!(b[0], 22);
        assert_eq!(u16_at(&b, 1), 0x0301);
        assert_eq!(u16_at(&b, 3) as usize, b.len() - 5);
        assert_eq!(b[5], 1, "client_hello");
        let hs_len = u32::from_be_bytes([0, b[6], b[7], b[8]]) as usize;
        assert_eq!(hs_len, b.len() - 9);
        assert_eq!(
            u16_at(&b, 9),
            0x0303,
            "legacy_version is the probed version"
        );
    }

    #[test]
    fn suites_are_offered_in_order_with_the_renegotiation_scsv_last() {
        let b = Hello::new(Protocol::Tls10, vec![0x000a, 0x0005], vec![]).to_bytes();
        let body = &b[9..];
        assert_eq!(u16_at(body, 0), 0x0301);
        assert_eq!(body[34], 0, "empty session id");
        assert_eq!(u16_at(body, 35), 6);
        assert_eq!(
            [u16_at(body, 37), u16_at(body, 39), u16_at(body, 41)],
            [0x000a, 0x0005, 0x00ff]
        );
    }

    #[test]
    fn sni_names_the_host_and_is_absent_unless_set() {
        let mut h = Hello::new(Protocol::Tls12, vec![0xc02f], vec![29]);
        assert!(!extensions_of(&h.to_bytes()).iter().any(|e| e.0 == 0));
        h.server_name = Some("a.test".into());
        let ext = extensions_of(&h.to_bytes());
        let sni = &ext.iter().find(|e| e.0 == 0).unwrap().1;
        assert_eq!(sni, &[0, 9, 0, 0, 6, b'a', b'.', b't', b'e', b's', b't']);
    }

    #[test]
    fn tls13_hellos_carry_supported_versions_and_an_x25519_key_share() {
        let h = Hello::new(Protocol::Tls13, vec![0x1301], vec![29, 23]);
        let b = h.to_bytes();
        assert_eq!(u16_at(&b, 9), 0x0303, "legacy_version stays TLS 1.2");
        assert_eq!(b[9 + 34], 32, "a 32-byte legacy session id");
        let ext = extensions_of(&b);
        let versions = &ext.iter().find(|e| e.0 == 0x2b).unwrap().1;
        assert_eq!(versions, &[2, 3, 4]);
        let share = &ext.iter().find(|e| e.0 == 0x33).unwrap().1;
        assert_eq!(u16_at(share, 0), 36);
        assert_eq!(u16_at(share, 2), 29);
        assert_eq!(u16_at(share, 4), 32);
        assert_eq!(&share[6..], &h.entropy[64..]);
    }

    #[test]
    fn without_x25519_the_key_share_list_is_empty_to_ask_for_a_retry() {
        let b = Hello::new(Protocol::Tls13, vec![0x1301], vec![0x11ec]).to_bytes();
        let ext = extensions_of(&b);
        assert_eq!(ext.iter().find(|e| e.0 == 0x33).unwrap().1, vec![0, 0]);
        let groups = &ext.iter().find(|e| e.0 == 0x0a).unwrap().1;
        assert_eq!(groups, &[0, 2, 0x11, 0xec]);
    }

    #[test]
    fn sslv3_hellos_have_no_extensions_and_an_sslv3_record() {
        let b = Hello::new(Protocol::Ssl3, vec![0x000a], vec![23]).to_bytes();
        assert_eq!(u16_at(&b, 1), 0x0300);
        assert_eq!(u16_at(&b, 9), 0x0300);
        assert!(extensions_of(&b).is_empty());
    }

    #[test]
    fn compression_is_offered_only_when_asked() {
        let mut h = Hello::new(Protocol::Tls12, vec![0xc02f], vec![]);
        h.offer_compression = true;
        let b = h.to_bytes();
        let i = 9 + 35 + 2 + 4;
        assert_eq!(&b[i..i + 3], &[2, 1, 0]);
    }
}
