//! TLS 1.3's key schedule (HKDF, RFC 5869) with each secret's HMAC key set up once.
//!
//! The aws-lc-rs provider derives every secret and key with one call to aws-lc's `HKDF_expand`,
//! which sets up an HMAC key from the secret each time (a hash of its inner and of its outer
//! pad); a secret made by HKDF-Extract is even extracted again for each label derived from it.
//! A handshake derives about two dozen labels from nine secrets. rustls's `HkdfUsingHmac`
//! keeps each secret as a prepared HMAC key and copies it for each label, so a label costs only
//! its own blocks. The outputs are the same bytes (HKDF is HMAC by definition); only the work
//! to reach them differs.

use std::sync::LazyLock;

use aws_lc_rs::hmac;
use rustls::crypto::hash::HashAlgorithm;
use rustls::crypto::hmac::{Hmac, Key, Tag};
use rustls::crypto::tls13::{Hkdf, HkdfUsingHmac};
use rustls::{CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};

/// HMAC over aws-lc-rs, whose keys hold their hashed pads ready to copy.
struct PreparedHmac(&'static hmac::Algorithm);

struct PreparedKey(hmac::Key);

impl Hmac for PreparedHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        Box::new(PreparedKey(hmac::Key::new(*self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

impl Key for PreparedKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(first);
        for part in middle {
            ctx.update(part);
        }
        ctx.update(last);
        Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
    }
}

static HKDF_SHA256: HkdfUsingHmac<'static> = HkdfUsingHmac(&PreparedHmac(&hmac::HMAC_SHA256));
static HKDF_SHA384: HkdfUsingHmac<'static> = HkdfUsingHmac(&PreparedHmac(&hmac::HMAC_SHA384));

/// The aws-lc-rs provider's TLS 1.3 suites, each with the prepared-key HKDF: made once, since a
/// suite is `'static` and providers are made at each reload.
static SUITES: LazyLock<Vec<SupportedCipherSuite>> = LazyLock::new(|| {
    rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES
        .iter()
        .filter_map(SupportedCipherSuite::tls13)
        .filter_map(with_prepared_keys)
        .map(|suite| SupportedCipherSuite::Tls13(Box::leak(Box::new(suite))))
        .collect()
});

fn with_prepared_keys(suite: &Tls13CipherSuite) -> Option<Tls13CipherSuite> {
    let hkdf: &'static dyn Hkdf = match suite.common.hash_provider.algorithm() {
        HashAlgorithm::SHA256 => &HKDF_SHA256,
        HashAlgorithm::SHA384 => &HKDF_SHA384,
        _ => return None,
    };
    Some(Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: suite.common.suite,
            hash_provider: suite.common.hash_provider,
            confidentiality_limit: suite.common.confidentiality_limit,
        },
        hkdf_provider: hkdf,
        aead_alg: suite.aead_alg,
        quic: suite.quic,
    })
}

/// `suite` with the prepared-key key schedule when it is a TLS 1.3 suite of the provider's.
pub(crate) fn prepared(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    SUITES
        .iter()
        .find(|s| s.suite() == suite.suite())
        .copied()
        .unwrap_or(suite)
}

#[cfg(test)]
mod tests {
    use rustls::crypto::tls13::{Hkdf, OkmBlock};

    use super::*;

    /// RFC 5869 appendix A.1 (SHA-256), through rustls's expander as the key schedule uses it.
    #[test]
    fn the_prepared_hkdf_gives_rfc_5869s_output() {
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let expander = HKDF_SHA256.extract_from_secret(Some(&salt), &ikm);
        let mut okm = [0u8; 42];
        expander.expand_slice(&[&info], &mut okm).unwrap();
        let want = "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
                    34007208d5b887185865";
        assert_eq!(hex(&okm), want);
    }

    /// Every label the handshake derives, for both hashes: the same bytes as the provider's own.
    #[test]
    fn each_suite_derives_what_the_providers_own_suite_derives() {
        for suite in rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES {
            let SupportedCipherSuite::Tls13(theirs) = suite else {
                continue;
            };
            let SupportedCipherSuite::Tls13(ours) = prepared(*suite) else {
                panic!("{:?} is no longer TLS 1.3", suite.suite());
            };
            assert!(
                !std::ptr::eq(ours, *theirs),
                "{:?} was not replaced",
                suite.suite()
            );
            let (a, b) = (theirs.hkdf_provider, ours.hkdf_provider);
            let secret = [7u8; 48];
            let salt = [9u8; 48];
            let len = theirs.common.hash_provider.output_len();
            let block = |e: &dyn rustls::crypto::tls13::HkdfExpander| {
                e.expand_block(&[b"tls13 ", b"c hs traffic", &[0u8; 32]])
            };
            let same = |x: OkmBlock, y: OkmBlock| assert_eq!(x.as_ref(), y.as_ref());
            same(
                block(&*a.extract_from_zero_ikm(Some(&salt[..len]))),
                block(&*b.extract_from_zero_ikm(Some(&salt[..len]))),
            );
            same(
                block(&*a.extract_from_secret(None, &secret[..len])),
                block(&*b.extract_from_secret(None, &secret[..len])),
            );
            let okm = OkmBlock::new(&secret[..len]);
            same(
                block(&*a.expander_for_okm(&okm)),
                block(&*b.expander_for_okm(&okm)),
            );
            assert_eq!(
                a.hmac_sign(&okm, b"finished").as_ref(),
                b.hmac_sign(&okm, b"finished").as_ref()
            );
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
