//! The answers to ACME challenges in flight, shared by the issuer (which adds and removes
//! them) and the listeners (which serve them): HTTP-01 tokens on the HTTP listener and
//! TLS-ALPN-01 certificates (RFC 8737) chosen by the certificate resolver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ALPN protocol a TLS-ALPN-01 validation connects with (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// Where HTTP-01 tokens are fetched (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

#[derive(Debug, Default)]
pub struct Challenges {
    /// token → key authorization
    http01: Mutex<HashMap<String, String>>,
    /// name → validation certificate
    tls_alpn01: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The body for a request path, if it asks for a token in flight.
    pub fn http01_response(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        lock(&self.http01).get(token).cloned()
    }

    /// The validation certificate for `name`, if a TLS-ALPN-01 challenge for it is in flight.
    pub fn tls_alpn01_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.tls_alpn01)
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    pub(crate) fn add_http01(&self, token: &str, key_authorization: &str) {
        lock(&self.http01).insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(crate) fn remove_http01(&self, token: &str) {
        lock(&self.http01).remove(token);
    }

    pub(crate) fn add_tls_alpn01(&self, name: &str, cert: Arc<CertifiedKey>) {
        lock(&self.tls_alpn01).insert(name.to_ascii_lowercase(), cert);
    }

    pub(crate) fn remove_tls_alpn01(&self, name: &str) {
        lock(&self.tls_alpn01).remove(&name.to_ascii_lowercase());
    }
}

/// A poisoned lock only means another thread panicked mid-insert of a plain map entry:
/// the map itself is still sound.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The self-signed certificate TLS-ALPN-01 asks for: `name` as its only SAN and the SHA-256
/// of the key authorization in the critical acmeIdentifier extension (RFC 8737 §3).
pub(crate) fn tls_alpn01_cert(
    name: &str,
    key_authorization_digest: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(
        key_authorization_digest,
    )];
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_served_only_while_it_is_in_flight() {
        let c = Challenges::default();
        c.add_http01("abc", "abc.thumb");
        assert_eq!(
            c.http01_response("/.well-known/acme-challenge/abc")
                .as_deref(),
            Some("abc.thumb")
        );
        assert_eq!(c.http01_response("/.well-known/acme-challenge/abd"), None);
        assert_eq!(c.http01_response("/abc"), None);
        c.remove_http01("abc");
        assert_eq!(c.http01_response("/.well-known/acme-challenge/abc"), None);
    }

    #[test]
    fn the_validation_certificate_carries_the_critical_acme_identifier() {
        let provider = crate::tls::provider();
        let cert = tls_alpn01_cert("a.test", &[7u8; 32], &provider).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert.cert[0]).unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // An OCTET STRING of the 32-byte digest.
        assert_eq!(&ext.value[..2], &[0x04, 32]);
        assert_eq!(&ext.value[2..], &[7u8; 32]);
    }
}
