//! The certificate a TLS-ALPN-01 validation is answered with (RFC 8737 §3).

use std::sync::Arc;

use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

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
