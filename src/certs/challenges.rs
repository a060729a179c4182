//! The answers to ACME challenges in flight: a store that `acme` publishes into (like
//! [`super::ManagedCert`]) and the listeners read: HTTP-01 tokens on the HTTP listener and
//! TLS-ALPN-01 certificates (RFC 8737) chosen by the certificate resolver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::sign::CertifiedKey;

use crate::locks::lock;

/// Where HTTP-01 tokens are fetched (RFC 8555 §8.3).
pub(crate) const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

#[derive(Debug, Default)]
pub(crate) struct Challenges {
    /// token → key authorization
    http01: Mutex<HashMap<String, String>>,
    /// name → validation certificate
    tls_alpn01: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    /// The body for a request path, if it asks for a token in flight.
    pub(crate) fn http01_response(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        lock(&self.http01).get(token).cloned()
    }

    /// The validation certificate for `name`, if a TLS-ALPN-01 challenge for it is in flight.
    pub(crate) fn tls_alpn01_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
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
}
