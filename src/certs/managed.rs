//! The slot a certificate manager (ACME, the local CA's reissue) publishes into and every
//! handshake reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use rustls::sign::CertifiedKey;

/// The slot a certificate manager publishes into; every handshake reads the newest.
#[derive(Debug)]
pub(crate) struct ManagedCert {
    name: String,
    current: ArcSwapOption<CertifiedKey>,
    /// Served until the first certificate arrives (a temporary local-CA certificate), if set.
    fallback: Option<Arc<CertifiedKey>>,
    /// Handshakes refused while there is no certificate (for a rate-limited log line).
    refusals: AtomicU64,
}

impl ManagedCert {
    pub(crate) fn new(name: &str, fallback: Option<Arc<CertifiedKey>>) -> Self {
        ManagedCert {
            name: name.to_owned(),
            current: ArcSwapOption::empty(),
            fallback,
            refusals: AtomicU64::new(0),
        }
    }

    pub(crate) fn publish(&self, key: Arc<CertifiedKey>) {
        self.current.store(Some(key));
    }

    pub(crate) fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// The newest certificate, or the fallback until one arrives.
    pub(crate) fn current(&self) -> Option<Arc<CertifiedKey>> {
        let current = self.current.load_full().or_else(|| self.fallback.clone());
        if current.is_none()
            && self
                .refusals
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(100)
        {
            // Every 100th refusal only: a client cannot flood the log by retrying.
            tracing::info!(
                site = %self.name,
                refused = self.refusals.load(Ordering::Relaxed),
                "TLS handshake refused: the site's certificate is still being obtained from the ACME CA"
            );
        }
        current
    }
}
