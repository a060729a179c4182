//! rustls server configuration: which versions and suites, ALPN, resumption. One
//! `ServerConfig` per listener, sharing the crypto provider.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ResolvesServerCert, ServerConfig};
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::TlsPolicy;

/// ALPN identifiers, in the server's order of preference.
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The aws-lc-rs provider. Every suite it offers is an AEAD with ECDHE key exchange, so all
/// are forward-secret; this is asserted in the tests rather than filtered at run time.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// `acme`: also accept the `acme-tls/1` ALPN of TLS-ALPN-01 validations (its certificate is
/// chosen by the resolver, and the connection is closed right after the handshake).
pub fn server_config(
    policy: TlsPolicy,
    provider: Arc<CryptoProvider>,
    resolver: Arc<dyn ResolvesServerCert>,
    acme: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&rustls::SupportedProtocolVersion] = match policy {
        TlsPolicy::Intermediate => &[&TLS13, &TLS12],
        TlsPolicy::Modern => &[&TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    if acme {
        // Last: a client offering h2 or http/1.1 never ends up with it.
        config
            .alpn_protocols
            .push(crate::acme::ACME_TLS_ALPN.to_vec());
    }
    // The server picks the suite, so a client that prefers a weaker one cannot choose it.
    config.ignore_client_order = true;
    // Stateless tickets, rotated by the ticketer; resumption keeps reconnects cheap.
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// A client TLS config that trusts only the CA certificates in `path`.
pub(crate) fn client_trusting(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> std::io::Result<rustls::ClientConfig> {
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
    if roots.is_empty() {
        return Err(invalid("no CA certificate in the file".into()));
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::SupportedCipherSuite;

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
