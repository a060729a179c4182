//! Mutual TLS. The verifier checks a client certificate against the configured CAs and
//! revocation lists (rustls's webpki verifier) and then against the allow list; every refusal
//! has a reason a person can act on ([`refusal_reason`]) while the client gets only the TLS
//! alert. A verified certificate becomes a [`ClientIdentity`], which HTTP and tunnels read.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

use crate::config::{AllowList, ClientAuth, ClientCa};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientAuthError {
    #[error("cannot read the client CA file {0}")]
    Ca(std::io::Error),
    #[error("cannot read the revocation list {path}: {reason}")]
    Crl { path: PathBuf, reason: String },
    #[error("client_auth.ca `local`: {0}")]
    LocalCa(String),
    #[error("cannot set up client certificate checks: {0}")]
    Verifier(String),
}

/// The verifier for `auth`. `local_ca` is the development CA certificate, for `ca: local`.
pub(crate) fn verifier(
    auth: &ClientAuth,
    local_ca: Option<&Path>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, ClientAuthError> {
    let ca_path = match &auth.ca {
        ClientCa::File(p) => p.clone(),
        ClientCa::Local => local_ca
            .ok_or_else(|| ClientAuthError::LocalCa("the development CA is not set up".into()))?
            .to_owned(),
    };
    let roots = super::roots_from_file(&ca_path).map_err(ClientAuthError::Ca)?;
    let crls = auth
        .crls
        .iter()
        .map(|p| read_crls(p))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten();
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .with_crls(crls)
        // Like nginx: a CRL past its nextUpdate fails closed instead of passing silently.
        .enforce_revocation_expiration();
    if !auth.required {
        builder = builder.allow_unauthenticated();
    }
    let inner = builder
        .build()
        .map_err(|e| ClientAuthError::Verifier(e.to_string()))?;
    Ok(Arc::new(Verifier {
        inner,
        allow: auth.allow.clone(),
    }))
}

/// CRLs in PEM (any number) or one in DER, as `openssl ca -gencrl` writes either.
pub(crate) fn read_crls(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, ClientAuthError> {
    let fail = |reason: String| ClientAuthError::Crl {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if !bytes.starts_with(b"-----BEGIN") {
        // DER is an ASN.1 SEQUENCE: anything else is not a CRL at all.
        return match bytes.first() == Some(&0x30)
            && webpki::OwnedCertRevocationList::from_der(&bytes).is_ok()
        {
            true => Ok(vec![CertificateRevocationListDer::from(bytes)]),
            false => Err(fail(
                "not a CRL: expected PEM (-----BEGIN X509 CRL-----) or DER".into(),
            )),
        };
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    match crls.is_empty() {
        true => Err(fail("no X509 CRL in the file".into())),
        false => Ok(crls),
    }
}

/// webpki's verdict, then the allow list.
#[derive(Debug)]
struct Verifier {
    inner: Arc<dyn ClientCertVerifier>,
    allow: Option<AllowList>,
}

/// A verified certificate whose identity the allow list does not name.
#[derive(Debug)]
struct NotAllowed(String);

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not in the allow list", self.0)
    }
}

impl std::error::Error for NotAllowed {}

impl ClientCertVerifier for Verifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let Some(allow) = &self.allow else {
            return Ok(verified);
        };
        let identity = ClientIdentity::from_der(end_entity).ok_or(
            rustls::Error::InvalidCertificate(CertificateError::BadEncoding),
        )?;
        match allow.permits(&identity) {
            true => Ok(verified),
            false => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(NotAllowed(identity.describe()))),
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a handshake failed, when it failed over the client's certificate; `None` for any other
/// handshake failure.
pub(crate) fn refusal_reason(error: &std::io::Error) -> Option<String> {
    let error = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    use CertificateError as C;
    let cert_error = match error {
        rustls::Error::NoCertificatesPresented => {
            return Some("no client certificate was presented, and this requires one".into());
        }
        rustls::Error::InvalidCertificate(e) => e,
        _ => return None,
    };
    Some(match cert_error {
        C::UnknownIssuer => {
            "unknown CA: the certificate was not issued by a CA in client_auth.ca".into()
        }
        // webpki finds the issuer by name: a signature that does not verify means another CA
        // with the same name issued it.
        #[allow(deprecated)]
        C::BadSignature => "unknown CA: the certificate names a CA in client_auth.ca as its issuer, but that CA did not sign it".into(),
        C::Expired | C::ExpiredContext { .. } => "the certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet".into(),
        C::Revoked => "the certificate is revoked (client_auth.crl)".into(),
        C::UnknownRevocationStatus => {
            "unknown revocation status: no CRL in client_auth.crl covers its issuer".into()
        }
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => {
            "the CRL in client_auth.crl has expired: refresh it".into()
        }
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "not a client certificate (its extended key usage lacks clientAuth)".into()
        }
        C::Other(OtherError(e)) => e.to_string(),
        other => format!("invalid client certificate: {other}"),
    })
}

/// What a verified client certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientIdentity {
    /// The subject as RFC 4514 writes it (`CN=alice,O=Example`, like nginx's
    /// `$ssl_client_s_dn`).
    pub subject: String,
    pub common_names: Vec<String>,
    /// Subject alternative names, each with its kind: `DNS:a.test`, `URI:spiffe://…`.
    pub sans: Vec<String>,
    /// SHA-256 of the whole certificate (DER).
    pub fingerprint: [u8; 32],
    /// SHA-256 of the SubjectPublicKeyInfo (DER), what SPKI pins name.
    pub spki_sha256: [u8; 32],
    der: Vec<u8>,
}

impl ClientIdentity {
    pub(crate) fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .collect();
        let sans = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(san_text)
                    .collect()
            })
            .unwrap_or_default();
        Some(ClientIdentity {
            subject: rfc4514(cert.subject()),
            common_names,
            sans,
            fingerprint: Sha256::digest(der).into(),
            spki_sha256: Sha256::digest(cert.public_key().raw).into(),
            der: der.to_owned(),
        })
    }

    /// DNS SANs.
    pub(crate) fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| s.strip_prefix("DNS:"))
    }

    /// URI SANs (SPIFFE IDs among them).
    pub(crate) fn uris(&self) -> impl Iterator<Item = &str> {
        self.sans.iter().filter_map(|s| s.strip_prefix("URI:"))
    }

    pub(crate) fn fingerprint_hex(&self) -> String {
        self.fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub(crate) fn pem(&self) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// For logs: the subject (or the first SAN when it has none) and a short fingerprint.
    pub(crate) fn describe(&self) -> String {
        let who = match (self.subject.is_empty(), self.sans.first()) {
            (true, Some(san)) => san.clone(),
            _ => self.subject.clone(),
        };
        format!("{who} (SHA-256 {}…)", &self.fingerprint_hex()[..16])
    }
}

/// A name as RFC 4514 writes it: the last RDN first, `,` between RDNs, `+` inside one, and
/// special characters escaped (§2.4), so that a value cannot pose as another attribute.
fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let attribute = |atv: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
            .map(str::to_owned)
            .unwrap_or_else(|_| atv.attr_type().to_id_string());
        let value = match atv.as_str() {
            Ok(v) => escape_rfc4514(v),
            // Not a string: its octets in hex, as §2.4 allows.
            Err(_) => format!("#{}", hex(atv.attr_value().data)),
        };
        format!("{key}={value}")
    };
    let mut rdns: Vec<String> = name
        .iter()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.reverse();
    rdns.join(",")
}

fn escape_rfc4514(v: &str) -> String {
    let last = v.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => out.push('\\'),
            '#' | ' ' if i == 0 => out.push('\\'),
            ' ' if i == last => out.push('\\'),
            '\0' => {
                out.push_str("\\00");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn san_text(name: &GeneralName<'_>) -> Option<String> {
    Some(match name {
        GeneralName::DNSName(d) => format!("DNS:{d}"),
        GeneralName::URI(u) => format!("URI:{u}"),
        GeneralName::RFC822Name(e) => format!("email:{e}"),
        GeneralName::IPAddress(b) => match b.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?)
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?)
            ),
            _ => return None,
        },
        _ => return None,
    })
}

impl AllowList {
    /// Whether any of the identity's names, CNs or its key is on the list. DNS names compare
    /// case-insensitively; URIs and CNs exactly.
    pub(crate) fn permits(&self, id: &ClientIdentity) -> bool {
        id.dns_names()
            .any(|d| self.dns.iter().any(|a| a.eq_ignore_ascii_case(d)))
            || id.uris().any(|u| self.uri.iter().any(|a| a == u))
            || id.common_names.iter().any(|c| self.cn.contains(c))
            || self.spki_sha256.contains(&id.spki_sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cn: &str, sans: Vec<rcgen::SanType>) -> (ClientIdentity, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = sans;
        let cert = params.self_signed(&key).unwrap();
        (ClientIdentity::from_der(cert.der()).unwrap(), key)
    }

    #[test]
    fn identities_read_subject_sans_and_fingerprints() {
        let uri = rcgen::SanType::URI("spiffe://example.org/alice".try_into().unwrap());
        let dns = rcgen::SanType::DnsName("alice.test".try_into().unwrap());
        let (id, key) = identity("alice", vec![dns, uri]);
        assert_eq!(id.subject, "CN=alice");
        assert_eq!(id.common_names, ["alice"]);
        assert_eq!(
            id.sans,
            ["DNS:alice.test", "URI:spiffe://example.org/alice"]
        );
        assert_eq!(id.fingerprint_hex().len(), 64);
        assert_eq!(
            id.spki_sha256,
            <[u8; 32]>::from(Sha256::digest(
                rcgen::PublicKeyData::subject_public_key_info(&key)
            ))
        );
        assert!(id.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(id.describe().starts_with("CN=alice (SHA-256 "));
    }

    /// openssl's `-nameopt RFC2253` is the judge: nginx's `$ssl_client_s_dn` prints the same.
    #[test]
    fn subjects_are_written_as_openssl_writes_rfc_2253_names() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        let dn = &mut params.distinguished_name;
        dn.push(rcgen::DnType::CountryName, "ES");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc.");
        dn.push(rcgen::DnType::CommonName, "#alice+admin ");
        let cert = params.self_signed(&key).unwrap();
        let id = ClientIdentity::from_der(cert.der()).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), cert.pem()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(file.path())
            .output()
            .unwrap();
        let judged = String::from_utf8(out.stdout).unwrap();
        assert_eq!(format!("subject={}\n", id.subject), judged);
        assert!(
            id.subject.contains(r"CN=\#alice\+admin\ "),
            "{}",
            id.subject
        );
        assert_eq!(id.common_names, ["#alice+admin "]);
    }

    #[test]
    fn allow_lists_match_by_any_listed_identity_and_deny_the_rest() {
        let uri = rcgen::SanType::URI("spiffe://example.org/alice".try_into().unwrap());
        let dns = rcgen::SanType::DnsName("Alice.Test".try_into().unwrap());
        let (alice, _) = identity("alice", vec![dns, uri]);
        let (mallory, _) = identity("mallory", vec![]);
        let by = |f: fn(&mut AllowList)| {
            let mut a = AllowList::default();
            f(&mut a);
            a
        };
        let lists = [
            by(|a| a.cn = vec!["alice".into()]),
            by(|a| a.dns = vec!["alice.test".into()]),
            by(|a| a.uri = vec!["spiffe://example.org/alice".into()]),
        ];
        for list in &lists {
            assert!(list.permits(&alice), "{list:?}");
            assert!(!list.permits(&mallory), "{list:?}");
        }
        let pinned = AllowList {
            spki_sha256: vec![mallory.spki_sha256],
            ..Default::default()
        };
        assert!(pinned.permits(&mallory) && !pinned.permits(&alice));
        // A CN is compared whole: no prefix or case games.
        assert!(!by(|a| a.cn = vec!["ALICE".into()]).permits(&alice));
        assert!(!by(|a| a.uri = vec!["spiffe://example.org/".into()]).permits(&alice));
    }

    #[test]
    fn refusals_name_their_reason_and_other_failures_are_not_refusals() {
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let reason = |e| refusal_reason(&io(e)).unwrap();
        assert!(reason(rustls::Error::NoCertificatesPresented).contains("no client certificate"));
        let cert = |c| rustls::Error::InvalidCertificate(c);
        assert!(reason(cert(CertificateError::UnknownIssuer)).contains("unknown CA"));
        #[allow(deprecated)]
        let forged = cert(CertificateError::BadSignature);
        assert!(reason(forged).contains("unknown CA"));
        assert!(reason(cert(CertificateError::Expired)).contains("expired"));
        assert!(reason(cert(CertificateError::Revoked)).contains("revoked"));
        let not_allowed = OtherError(Arc::new(NotAllowed("CN=bob".into())));
        assert_eq!(
            reason(cert(CertificateError::Other(not_allowed))),
            "CN=bob is not in the allow list"
        );
        assert!(refusal_reason(&io(rustls::Error::DecryptError)).is_none());
        assert!(refusal_reason(&std::io::Error::other("reset")).is_none());
    }
}
