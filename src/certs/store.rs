//! Chooses the certificate for a TLS handshake from the SNI name: exact names first, then
//! `*.parent` wildcards, then the listener's default: always for clients that send no SNI (such
//! as those connecting to an IP address), and for unknown names unless they are rejected.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
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

    /// Adds a site's names; the first site added also becomes the default.
    pub fn add(&mut self, names: &[String], key: Arc<CertifiedKey>) {
        for n in names {
            match n.strip_prefix("*.") {
                Some(parent) => self.wildcard.insert(parent.to_owned(), key.clone()),
                None => self.exact.insert(n.clone(), key.clone()),
            };
        }
        self.default.get_or_insert(key);
    }

    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni else {
            return self.default.clone();
        };
        let name = name.to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, parent)| self.wildcard.get(parent))
            })
            .or(self.default.as_ref().filter(|_| !self.reject_unknown))
            .cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}
