//! The SNI resolver: chooses the certificate for a TLS handshake from the SNI name (looked up
//! as [`NameTable`] says: exact, wildcard, default), and answers TLS-ALPN-01 validations. A name may have several certificates (say ECDSA and RSA): the first one the client can
//! verify is chosen.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{CipherSuite, SignatureAlgorithm, SignatureScheme};

use super::ACME_TLS_ALPN;
use crate::certs::{Challenges, ManagedCert, NameTable};

/// A site's certificates: fixed at load time, or managed (ACME) and replaced while serving.
#[derive(Debug, Clone)]
enum Candidates {
    Fixed(Arc<[Arc<CertifiedKey>]>),
    Managed(Arc<ManagedCert>),
}

#[derive(Debug, Default)]
pub(crate) struct SniResolver {
    names: NameTable<Candidates>,
    /// Answers TLS-ALPN-01 validations, when some site on the listener uses ACME.
    challenges: Option<Arc<Challenges>>,
}

impl SniResolver {
    /// `reject_unknown`: a name no site serves gets a handshake failure, not the default.
    pub(crate) fn new(reject_unknown: bool) -> Self {
        SniResolver {
            names: NameTable::new(reject_unknown),
            challenges: None,
        }
    }

    /// Adds a site's names with its certificates, in order of preference; the first site added
    /// also becomes the default.
    pub(crate) fn add(&mut self, names: &[String], keys: Vec<Arc<CertifiedKey>>) {
        self.insert(names, Candidates::Fixed(keys.into()));
    }

    /// Adds a site whose certificate is managed (and replaced) elsewhere.
    pub(crate) fn add_managed(&mut self, names: &[String], slot: Arc<ManagedCert>) {
        self.insert(names, Candidates::Managed(slot));
    }

    /// Lets `acme-tls/1` handshakes get TLS-ALPN-01 validation certificates.
    pub(crate) fn answer_challenges(&mut self, challenges: Arc<Challenges>) {
        self.challenges = Some(challenges);
    }

    fn insert(&mut self, names: &[String], keys: Candidates) {
        self.names.insert(names, keys);
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
        if is_acme_validation(&hello) {
            let challenges = self.challenges.as_ref()?;
            return challenges.tls_alpn01_cert(hello.server_name()?);
        }
        let candidates = match self.names.get(hello.server_name())? {
            Candidates::Managed(slot) => return slot.current(),
            Candidates::Fixed(list) => list,
        };
        let (schemes, suites) = (hello.signature_schemes(), hello.cipher_suites());
        candidates
            .iter()
            .find(|k| usable(k, schemes, suites))
            // Nothing fits: offer the first and let the handshake say why.
            .or(candidates.first())
            .cloned()
    }
}

/// A TLS-ALPN-01 validation offers `acme-tls/1` and nothing else (RFC 8737 §3).
pub(crate) fn is_acme_validation(hello: &ClientHello<'_>) -> bool {
    hello.alpn().is_some_and(|mut protocols| {
        protocols.next() == Some(ACME_TLS_ALPN) && protocols.all(|p| p == ACME_TLS_ALPN)
    })
}
