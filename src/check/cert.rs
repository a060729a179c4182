//! The certificate chain a server sends, judged: described by `certs::inspect` (order, names,
//! validity, key, signature), verified by webpki against the system roots plus `--ca`, and
//! the host name checked on its own so that every problem is named, not just the first.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::CheckError;
use crate::certs::inspect;

#[derive(Debug, Serialize)]
pub struct CertFindings {
    pub chain: inspect::Report,
    /// webpki accepted the chain for the host name against the roots.
    pub trusted: bool,
    /// Why not, in rustls' words.
    pub trust_error: Option<String>,
    pub hostname_matches: bool,
    pub days_left: i64,
    pub expired: bool,
    pub not_yet_valid: bool,
    /// The server sends every certificate up to one the roots know (or a self-signed one).
    pub chain_complete: bool,
    /// RSA modulus size, when the leaf key is RSA.
    pub rsa_bits: Option<u32>,
    /// The leaf is signed with MD5 or SHA-1.
    pub weak_signature: bool,
}

/// The trust anchors a chain is judged against, with their subjects for completeness checks.
pub(crate) struct Roots {
    store: Arc<rustls::RootCertStore>,
    subjects: Vec<Vec<u8>>,
}

impl Roots {
    /// The system roots, plus every certificate in `ca` when given.
    pub(crate) fn load(ca: Option<&Path>) -> Result<Roots, CheckError> {
        let mut certs: Vec<CertificateDer<'static>> =
            rustls_native_certs::load_native_certs().certs;
        if let Some(path) = ca {
            let bad = |reason: String| CheckError::Ca {
                path: path.to_owned(),
                reason,
            };
            let before = certs.len();
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
                certs.push(cert.map_err(|e| bad(e.to_string()))?);
            }
            if certs.len() == before {
                return Err(bad("no certificate in the file".into()));
            }
        }
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(certs.iter().cloned());
        let subjects = certs
            .iter()
            .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok())
            .map(|(_, c)| c.subject().as_raw().to_vec())
            .collect();
        Ok(Roots {
            store: Arc::new(store),
            subjects,
        })
    }
}

/// Judges `chain` (leaf first) as presented for `host`.
/// A TLS error as a person can act on it: what the server did wrong, not rustls's variant.
pub(crate) fn in_words(error: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E, InvalidMessage as M};
    match error {
        E::InvalidMessage(M::InvalidContentType) => {
            "the server did not answer with TLS (is it plain HTTP on this port? try http://)".into()
        }
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "the server sent something that is not a valid TLS handshake".into()
        }
        E::AlertReceived(alert) => format!("the server refused the handshake (TLS alert {alert:?})"),
        E::NoApplicationProtocol => "the server offers none of the application protocols asked for".into(),
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "it is issued by a CA this machine does not trust (pass --ca FILE for a private CA)".into(),
            // webpki's own variant, passed through as "other".
            C::Other(o) if o.to_string().contains("CaUsedAsEndEntity") => "the server presents a CA certificate (CA:TRUE) as its own; browsers refuse that: issue a server certificate, e.g. `candado cert issue NAME`".into(),
            C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet (check the clock)".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => "the certificate does not cover this host name".into(),
            C::Revoked => "the certificate is revoked".into(),
            #[allow(deprecated)]
            C::BadSignature => "the certificate's signature does not verify (another CA with the same name?)".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => "the certificate is not for servers (its extended key usage lacks serverAuth)".into(),
            other => format!("the certificate is not valid: {other}"),
        },
        other => other.to_string(),
    }
}

/// An I/O error from a TLS connection, in words when rustls says what went wrong.
pub(crate) fn io_in_words(error: &std::io::Error) -> String {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(tls) => in_words(tls),
        None => error.to_string(),
    }
}

pub(crate) fn assess(
    chain: &[CertificateDer<'static>],
    host: &str,
    roots: &Roots,
) -> Result<CertFindings, String> {
    let report = inspect::describe(host, chain, None)?;
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .filter_map(|c| X509Certificate::from_der(c.as_ref()).ok().map(|(_, c)| c))
        .collect();
    let (Some(leaf), Some(last), Some(leaf_der)) = (parsed.first(), parsed.last(), chain.first())
    else {
        return Err("the server sent no certificate".into());
    };
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a host name or IP address"))?;
    let hostname_matches = webpki::EndEntityCert::try_from(leaf_der)
        .map(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
        .unwrap_or(false);
    let verifier =
        WebPkiServerVerifier::builder_with_provider(roots.store.clone(), crate::tls::provider())
            .build();
    let trust_error = match verifier {
        Ok(v) => v
            .verify_server_cert(leaf_der, &chain[1..], &name, &[], UnixTime::now())
            .err()
            .map(|e| in_words(&e)),
        Err(e) => Some(format!("no usable trust anchors: {e}")),
    };
    let self_signed = last.issuer().as_raw() == last.subject().as_raw();
    let chain_complete = self_signed
        || roots
            .subjects
            .iter()
            .any(|s| s.as_slice() == last.issuer().as_raw());
    let rsa_bits = match leaf.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => u32::try_from(rsa.key_size()).ok(),
        _ => None,
    };
    let sig = leaf.signature_algorithm.algorithm.to_id_string();
    // md5WithRSA, sha1WithRSA, ecdsa-with-SHA1, dsa-with-sha1.
    let weak_signature = [
        "1.2.840.113549.1.1.4",
        "1.2.840.113549.1.1.5",
        "1.2.840.10045.4.1",
        "1.2.840.10040.4.3",
    ]
    .contains(&sig.as_str());
    let now = UnixTime::now().as_secs() as i64;
    let days_left = report.certificates.first().map_or(0, |c| c.days_left);
    Ok(CertFindings {
        trusted: trust_error.is_none(),
        trust_error,
        hostname_matches,
        days_left,
        expired: leaf.validity().not_after.timestamp() < now,
        not_yet_valid: leaf.validity().not_before.timestamp() > now,
        chain_complete,
        rsa_bits,
        weak_signature,
        chain: report,
    })
}
