//! The seam through which several instances share ACME work; `cluster` implements it over
//! Redis, and without `cluster:` there is none. It asks for three things: one order per set
//! of names at a time (a lease that the holder keeps renewing and that runs out when the
//! holder dies), challenge answers that every instance serves, and a wake-up when another
//! instance stored a certificate.

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so `Peers` can be a trait object.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A challenge answer, as published to the other instances: the key authorization only. An
/// instance serving a TLS-ALPN-01 validation builds its own certificate from it (RFC 8737 asks
/// only for the digest), so no private key travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Http01 {
        token: String,
        key_authorization: String,
    },
    TlsAlpn01 {
        name: String,
        key_authorization: String,
    },
}

pub(crate) trait Peers: Send + Sync {
    /// Takes the order lock for `names`. `Err` says why not in words (another instance is
    /// ordering, or the shared store is unreachable); the caller waits and looks again.
    fn lock<'a>(&'a self, names: &'a [String]) -> Boxed<'a, Result<Box<dyn Lease>, String>>;
    /// Publishes an answer (`present`) or withdraws it; returns once the others can see it.
    fn answer<'a>(&'a self, answer: &'a Answer, present: bool) -> Boxed<'a, ()>;
    /// Resolves when another instance changed the shared store.
    fn changed(&self) -> Boxed<'_, ()>;
}

/// The order lock for one set of names, held by this instance.
pub(crate) trait Lease: Send {
    /// Resolves when the lease was lost (not renewed in time): the order must stop, since
    /// another instance may take over.
    fn lost(&mut self) -> Boxed<'_, ()>;
    /// Publishes what this instance stored while holding the lease, fenced by it (nothing is
    /// published once the lease is lost), then releases it.
    fn release(self: Box<Self>) -> Boxed<'static, ()>;
}
