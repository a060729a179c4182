//! rustls configuration: which versions and suites, ALPN, resumption, client certificates.
//! One `ServerConfig` per listener, or per site or tunnel when they differ in what they ask of
//! clients ([`front`] picks one from the ClientHello); all share the crypto provider.

pub(crate) mod client_auth;
pub(crate) mod front;
mod key_schedule;
pub(crate) mod resolver;
pub(crate) mod stream;

pub(crate) use client_auth::ClientIdentity;
pub(crate) use front::TlsFront;
pub(crate) use resolver::SniResolver;

/// The ALPN protocol a TLS-ALPN-01 validation connects with (RFC 8737 §6.2): an ALPN
/// identifier like `h2`.
pub(crate) const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

use std::path::Path;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::TlsPolicy;

/// ALPN identifiers, in the server's order of preference.
pub(crate) const ALPN_H2: &[u8] = b"h2";
pub(crate) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The aws-lc-rs provider. Every suite it offers is an AEAD with ECDHE key exchange, so all
/// are forward-secret; this is asserted in the tests rather than filtered at run time.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    // Its key exchanges include the X25519MLKEM768 hybrid; a rustls server takes the client's
    // first choice it supports, so browsers (hybrid first) get it and X25519-only clients get
    // X25519 in one round trip (tls::tests checks both; benches/hot_paths measures the cost).
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    // TLS 1.3 suites derive their keys with each secret's HMAC key set up once.
    let suites = provider.cipher_suites.into_iter();
    provider.cipher_suites = suites.map(key_schedule::prepared).collect();
    provider.cipher_suites.sort_by_key(suite_rank);
    Arc::new(provider)
}

/// The suite order, in each protocol version: AES-128-GCM, AES-256-GCM, then ChaCha20-Poly1305
/// (Mozilla's order, and every browser's first choice). The AES-256 suites' key schedule and
/// handshake hashes are SHA-384, which most x86 CPUs have no instructions for (and aws-lc
/// picks its AVX SHA-512 code on Intel only), where SHA-256 has the SHA extensions: on an AMD
/// server a fifth of a resumed handshake went to SHA-512 blocks. AES-128 also takes 10 rounds a
/// block to AES-256's 14.
fn suite_rank(suite: &rustls::SupportedCipherSuite) -> u8 {
    use rustls::CipherSuite::*;
    match suite.suite() {
        TLS13_AES_128_GCM_SHA256
        | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        TLS13_AES_256_GCM_SHA384
        | TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    }
}

/// What one `ServerConfig` offers beyond the policy and the certificates.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    /// ALPN protocols, most preferred first; empty negotiates none.
    pub alpn: Vec<Vec<u8>>,
    /// Also accept the `acme-tls/1` ALPN of TLS-ALPN-01 validations (its certificate is chosen
    /// by the resolver, and the connection is closed right after the handshake).
    pub acme: bool,
    /// Ask for client certificates and verify them (mutual TLS).
    pub client_auth: Option<Arc<dyn ClientCertVerifier>>,
}

impl Offer {
    /// HTTPS: h2, then http/1.1.
    pub(crate) fn http(acme: bool) -> Self {
        Offer {
            alpn: vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()],
            acme,
            client_auth: None,
        }
    }
}

pub(crate) fn server_config(
    policy: TlsPolicy,
    provider: Arc<CryptoProvider>,
    resolver: Arc<dyn ResolvesServerCert>,
    offer: Offer,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    server_config_with_tickets(policy, provider, resolver, offer, None)
}

/// As `server_config`, with `tickets` (keys shared by a cluster) instead of this process's
/// own ticketer.
pub(crate) fn server_config_with_tickets(
    policy: TlsPolicy,
    provider: Arc<CryptoProvider>,
    resolver: Arc<dyn ResolvesServerCert>,
    offer: Offer,
    tickets: Option<Arc<dyn rustls::server::ProducesTickets>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match policy {
        TlsPolicy::Intermediate => &[&TLS13, &TLS12],
        TlsPolicy::Modern => &[&TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider).with_protocol_versions(versions)?;
    let builder = match offer.client_auth {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = offer.alpn;
    if offer.acme {
        // Last: a client offering h2 or http/1.1 never ends up with it.
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    // The server picks the suite, so a client that prefers a weaker one cannot choose it.
    config.ignore_client_order = true;
    // Stateless tickets, rotated by the ticketer; resumption keeps reconnects cheap. Each
    // config has its own ticketer, so a session resumed under one site's client-certificate
    // rules can never be resumed under another's.
    config.ticketer = match tickets {
        Some(t) => t,
        None => rustls::crypto::aws_lc_rs::Ticketer::new()?,
    };
    // One ticket per handshake, as Caddy (Go) sends: a TLS 1.3 client uses a ticket once, so
    // each connection leaves it one for the next. rustls's default of two, on resumptions too,
    // costs 3-4 % more instructions per handshake (nginx sends two after a full handshake and
    // one after a resumption; rustls offers no such split).
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// A client TLS config that trusts only the CA certificates in `path`.
pub(crate) fn client_trusting(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> std::io::Result<rustls::ClientConfig> {
    client_config(Some(path), None, provider)
}

/// A client TLS config that trusts the CA certificates in `ca` (the system's roots when
/// `None`) and presents `identity` to servers that ask for a client certificate.
pub(crate) fn client_config(
    ca: Option<&Path>,
    identity: Option<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
) -> std::io::Result<rustls::ClientConfig> {
    let roots = match ca {
        Some(path) => roots_from_file(path)?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots);
    Ok(match identity {
        Some(key) => builder.with_client_cert_resolver(Arc::new(FixedIdentity(key))),
        None => builder.with_no_client_auth(),
    })
}

pub(crate) fn roots_from_file(path: &Path) -> std::io::Result<rustls::RootCertStore> {
    let invalid = |e: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid(e.to_string()))? {
        roots
            .add(cert.map_err(|e| invalid(e.to_string()))?)
            .map_err(|e| invalid(e.to_string()))?;
    }
    match roots.is_empty() {
        true => Err(invalid("no CA certificate in the file".into())),
        false => Ok(roots),
    }
}

/// The one client certificate a tunnel presents.
#[derive(Debug)]
struct FixedIdentity(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // Offered only when the server can check its signature; otherwise none is sent and
        // the server says why.
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_the_post_quantum_hybrid_and_x25519_clients_need_no_retry() {
        use crate::hot_paths::{Offer, TlsHandshakes};
        use rustls::HandshakeKind;
        let tls = TlsHandshakes::new();
        let (group, kind) = tls.handshake(&tls.client(Offer::Hybrid));
        assert_eq!(group, "X25519MLKEM768");
        assert_eq!(kind, Some(HandshakeKind::Full));
        let x25519 = tls.client(Offer::X25519);
        let (group, kind) = tls.handshake(&x25519);
        assert_eq!(group, "X25519");
        assert_eq!(kind, Some(HandshakeKind::Full));
        // A resumption still agrees a fresh key (psk_dhe_ke): forward secrecy holds.
        let (group, kind) = tls.handshake(&x25519);
        assert_eq!(group, "X25519");
        assert_eq!(kind, Some(HandshakeKind::Resumed));
    }
    use rustls::SupportedCipherSuite;

    #[test]
    fn aes_128_gcm_comes_first_then_aes_256_gcm_then_chacha20_in_each_version() {
        let names = |tls13: bool| -> Vec<String> {
            provider()
                .cipher_suites
                .iter()
                .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)) == tls13)
                .map(|s| format!("{:?}", s.suite()))
                .collect()
        };
        assert_eq!(
            names(true),
            [
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_CHACHA20_POLY1305_SHA256"
            ]
        );
        let tls12 = names(false);
        let rank = |n: &String| match n {
            n if n.contains("AES_128_GCM") => 0,
            n if n.contains("AES_256_GCM") => 1,
            _ => 2,
        };
        assert!(tls12.len() >= 6, "{tls12:?}");
        assert!(tls12.is_sorted_by_key(rank), "{tls12:?}");
    }

    #[test]
    fn every_offered_suite_is_forward_secret_aead() {
        for suite in provider().cipher_suites.iter() {
            let name = format!("{:?}", suite.suite());
            match suite {
                SupportedCipherSuite::Tls13(_) => assert!(
                    name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                    "{name}"
                ),
                SupportedCipherSuite::Tls12(_) => {
                    assert!(name.starts_with("TLS_ECDHE_"), "{name}");
                    assert!(
                        name.contains("GCM") || name.contains("CHACHA20_POLY1305"),
                        "{name}"
                    );
                }
            }
        }
    }
}
