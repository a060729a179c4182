//! Chooses the certificate for a TLS handshake from the SNI name: exact names first, then
//! `*.parent` wildcards, then the listener's default: always for clients that send no SNI (such
//! as those connecting to an IP address), and for unknown names unless they are rejected.
//! A name may have several certificates (say ECDSA and RSA): the first one the client can
//! verify is chosen.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SignatureAlgorithm, SignatureScheme};

type Candidates = Arc<[Arc<CertifiedKey>]>;

#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Candidates>,
    wildcard: HashMap<String, Candidates>,
    default: Option<Candidates>,
    reject_unknown: bool,
}

impl SniResolver {
    /// `reject_unknown`: a name no site serves gets a handshake failure, not the default.
    pub fn new(reject_unknown: bool) -> Self {
        SniResolver {
            reject_unknown,
            ..Default::default()
        }
    }

    /// Adds a site's names with its certificates, in order of preference; the first site added
    /// also becomes the default.
    pub fn add(&mut self, names: &[String], keys: Vec<Arc<CertifiedKey>>) {
        let keys: Candidates = keys.into();
        for n in names {
            match n.strip_prefix("*.") {
                Some(parent) => self.wildcard.insert(parent.to_owned(), keys.clone()),
                None => self.exact.insert(n.clone(), keys.clone()),
            };
        }
        self.default.get_or_insert(keys);
    }

    fn candidates(&self, sni: Option<&str>) -> Option<&Candidates> {
        let Some(name) = sni else {
            return self.default.as_ref();
        };
        let name = name.to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
            .or(self.default.as_ref().filter(|_| !self.reject_unknown))
    }
}

/// Whether the client can use a certificate with this key: it must offer a signature scheme
/// for it and, if it only speaks TLS 1.2, a cipher suite for its algorithm (in TLS 1.2 the
/// suite names the key type).
fn usable(key: &CertifiedKey, schemes: &[SignatureScheme], suites: &[CipherSuite]) -> bool {
    if key.key.choose_scheme(schemes).is_none() {
        return false;
    }
    let algorithm = key.key.algorithm();
    suites.iter().any(|s| match suite_auth(*s) {
        None => true, // TLS 1.3 suites are independent of the key type
        Some(a) => a == algorithm,
    })
}

fn suite_auth(suite: CipherSuite) -> Option<SignatureAlgorithm> {
    use CipherSuite::*;
    match suite {
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => Some(SignatureAlgorithm::ECDSA),
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        | TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Some(SignatureAlgorithm::RSA),
        _ => None,
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let candidates = self.candidates(hello.server_name())?;
        let (schemes, suites) = (hello.signature_schemes(), hello.cipher_suites());
        candidates
            .iter()
            .find(|k| usable(k, schemes, suites))
            // Nothing fits: offer the first and let the handshake say why.
            .or(candidates.first())
            .cloned()
    }
}
