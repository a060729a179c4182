//! PEM certificate chains and private keys → a rustls `CertifiedKey`, failing closed with a
//! one-line reason that names the file and says how to fix it.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::*;

use crate::config::defaults::EXPIRY_WARNING;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CertError {
    #[error("certificate file not found: {0}")]
    CertNotFound(PathBuf),
    #[error("private key file not found: {0}")]
    KeyNotFound(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{0} is not a PEM file (no '-----BEGIN ...-----' line); convert a DER file with: openssl x509 -inform der -in FILE -out cert.pem"
    )]
    NotPem(PathBuf),
    #[error("{0} is not valid PEM: {1}")]
    BadPem(PathBuf, String),
    #[error("no certificate found in {0}{1}")]
    NoCertificate(PathBuf, &'static str),
    #[error("no private key found in {0}{1}")]
    NoKey(PathBuf, &'static str),
    #[error(
        "{0} holds an encrypted private key and candado does not prompt for passwords; decrypt it once with: openssl pkey -in {0} -out key.pem && chmod 600 key.pem"
    )]
    EncryptedKey(PathBuf),
    #[error(
        "the private key in {key} does not match the certificate in {cert}; use the key the certificate was issued for"
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "unsupported private key in {0}: {1} (RSA, ECDSA P-256/P-384 and Ed25519 keys are supported)"
    )]
    BadKey(PathBuf, String),
    #[error("cannot parse the certificate in {0}: {1}")]
    BadCert(PathBuf, String),
    #[error(
        "the certificate in {0} expired on {1}; renew it, or pass --allow-expired to serve it anyway"
    )]
    Expired(PathBuf, String),
    #[error("the certificate in {0} is not valid before {1}; check the system clock")]
    NotYetValid(PathBuf, String),
}

/// A certificate ready to serve, with facts worth logging.
#[derive(Debug, Clone)]
pub(crate) struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DNS names and IP addresses the leaf covers.
    pub names: Vec<String>,
    pub warnings: Vec<String>,
}

/// Loads a chain (leaf first, intermediates after) and its key, and checks that they match
/// and that the leaf is within its validity period.
pub(crate) fn load_files(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
    allow_expired: bool,
) -> Result<LoadedCert, CertError> {
    // Read as one pair: a certificate replaced together with its key (certs::files, a
    // certbot `live/` swap) is never seen beside the other version's key.
    let mut read = super::files::read_together(&[cert_path, key_path]).into_iter();
    let cert_bytes = read_error(cert_path, read.next(), CertError::CertNotFound)?;
    let key_bytes = read_error(key_path, read.next(), CertError::KeyNotFound)?;
    let mut loaded = load_pem(
        (cert_path, &cert_bytes),
        (key_path, &key_bytes),
        provider,
        allow_expired,
    )?;
    if let Some(w) = key_permission_warning(key_path) {
        loaded.warnings.push(w);
    }
    Ok(loaded)
}

/// As `load_files`, from PEM text already read (the paths name it in messages).
pub(crate) fn load_pem(
    (cert_path, cert_bytes): (&Path, &[u8]),
    (key_path, key_bytes): (&Path, &[u8]),
    provider: &CryptoProvider,
    allow_expired: bool,
) -> Result<LoadedCert, CertError> {
    let chain = parse_chain(cert_path, cert_bytes)?;
    let key = parse_key(key_path, key_bytes)?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => CertError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
        },
        other => CertError::BadKey(key_path.to_owned(), other.to_string()),
    })?;
    let mut warnings = Vec::new();
    let (not_before, not_after, names) =
        check_validity(cert_path, &certified.cert[0], allow_expired, &mut warnings)?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        not_before,
        not_after,
        names,
        warnings,
    })
}

/// The certificates of a PEM file, in file order.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    parse_chain(path, &read(path, CertError::CertNotFound)?)
}

/// The SubjectPublicKeyInfo (DER) of the private key in a PEM file, to compare with a
/// certificate's.
pub(crate) fn read_key_spki(path: &Path, provider: &CryptoProvider) -> Result<Vec<u8>, CertError> {
    let key = parse_key(path, &read(path, CertError::KeyNotFound)?)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::BadKey(path.to_owned(), e.to_string()))?;
    signing
        .public_key()
        .map(|spki| spki.as_ref().to_vec())
        .ok_or_else(|| {
            CertError::BadKey(path.to_owned(), "its public key cannot be derived".into())
        })
}

fn read(path: &Path, not_found: fn(PathBuf) -> CertError) -> Result<Vec<u8>, CertError> {
    read_error(path, Some(std::fs::read(path)), not_found)
}

/// A file's bytes, or the error that names it (`None`: it was not read at all).
fn read_error(
    path: &Path,
    read: Option<std::io::Result<Vec<u8>>>,
    not_found: fn(PathBuf) -> CertError,
) -> Result<Vec<u8>, CertError> {
    let read = read.unwrap_or_else(|| Err(ErrorKind::NotFound.into()));
    read.map_err(|e| match e.kind() {
        ErrorKind::NotFound => not_found(path.to_owned()),
        _ => CertError::Read {
            path: path.to_owned(),
            source: e,
        },
    })
}

/// Every PEM section of a file with its kind, or why the file is not PEM.
fn sections(path: &Path, bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, CertError> {
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(CertError::NotPem(path.to_owned()));
    }
    let mut reader = bytes;
    let mut out = Vec::new();
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some(section)) => out.push(section),
            Ok(None) => return Ok(out),
            Err(e) => return Err(CertError::BadPem(path.to_owned(), e.to_string())),
        }
    }
}

fn parse_chain(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let sections = sections(path, bytes)?;
    let chain: Vec<_> = sections
        .iter()
        .filter(|(k, _)| *k == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der.clone()))
        .collect();
    if chain.is_empty() {
        let hint = if sections.iter().any(|(k, _)| is_key(*k)) || is_encrypted(bytes) {
            " (it holds a private key: are the certificate and key files swapped?)"
        } else {
            ""
        };
        return Err(CertError::NoCertificate(path.to_owned(), hint));
    }
    Ok(chain)
}

fn is_key(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

fn is_encrypted(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || has(b"Proc-Type: 4,ENCRYPTED")
}

fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, CertError> {
    // Checked first: a PKCS#1 key with Proc-Type headers would otherwise look readable.
    if is_encrypted(bytes) {
        return Err(CertError::EncryptedKey(path.to_owned()));
    }
    let sections = sections(path, bytes)?;
    let key = sections.iter().find_map(|(kind, der)| match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(der.clone().into())),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(der.clone().into())),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(der.clone().into())),
        _ => None,
    });
    key.ok_or_else(|| {
        let hint = if sections.iter().any(|(k, _)| *k == SectionKind::Certificate) {
            " (it holds a certificate: are the certificate and key files swapped?)"
        } else {
            ""
        };
        CertError::NoKey(path.to_owned(), hint)
    })
}

fn key_permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "private key {} is readable by group or others (mode {:o}); restrict it with: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        )
    })
}

fn check_validity(
    path: &Path,
    leaf: &CertificateDer<'_>,
    allow_expired: bool,
    warnings: &mut Vec<String>,
) -> Result<(SystemTime, SystemTime, Vec<String>), CertError> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| CertError::BadCert(path.to_owned(), e.to_string()))?;
    let validity = cert.validity();
    let not_after = to_system_time(validity.not_after.timestamp());
    let not_before = to_system_time(validity.not_before.timestamp());
    let now = SystemTime::now();
    let date = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    if now > not_after {
        if !allow_expired {
            return Err(CertError::Expired(path.to_owned(), date(not_after)));
        }
        warnings.push(format!(
            "serving the EXPIRED certificate {} (expired {})",
            path.display(),
            date(not_after)
        ));
    } else if now + EXPIRY_WARNING > not_after {
        warnings.push(format!(
            "the certificate in {} expires on {}: renew it soon",
            path.display(),
            date(not_after)
        ));
    }
    if now < not_before {
        return Err(CertError::NotYetValid(path.to_owned(), date(not_before)));
    }
    let names = san_names(&cert);
    // Whatever its extensions say (`openssl req -x509` marks it CA:TRUE), it is served as a
    // server's certificate here.
    if names.is_empty() {
        warnings.push(no_san_warning(
            &format!("the certificate in {}", path.display()),
            &cert,
        ));
    }
    Ok((not_before, not_after, names))
}

/// Why browsers refuse a leaf without subjectAltName, and the command that makes a good one;
/// `what` names the certificate (`the certificate in cert.pem`).
/// Browsers match host names against the SAN only (Chrome 58, Firefox 48, Safari; RFC 6125
/// §6.4.4 let them drop the CN fallback); `openssl req -x509 ... -subj /CN=NAME` without
/// `-addext` still makes such certificates, so people meet this often.
pub(crate) fn no_san_warning(what: &str, cert: &X509Certificate<'_>) -> String {
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let name = cn
        .as_deref()
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c))
        })
        .unwrap_or("localhost");
    let subject = cn
        .as_deref()
        .map(|n| format!(" (only CN={n})"))
        .unwrap_or_default();
    format!(
        "{what} names no host in its subjectAltName{subject}, and browsers ignore the CN: they refuse it (NET::ERR_CERT_COMMON_NAME_INVALID, SSL_ERROR_BAD_CERT_DOMAIN); make one they accept with `candado cert issue {name}`, or add -addext \"subjectAltName=DNS:{name}\" to the openssl req command"
    )
}

fn to_system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => SystemTime::UNIX_EPOCH,
    }
}

/// The DNS names and IP addresses a certificate covers (its subjectAltName).
pub(crate) fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(general_name_text)
        .collect()
}

/// A name from a certificate as text: DNS names lower-cased, IP addresses in their usual
/// form, URIs as written; other kinds are left out.
pub(crate) fn general_name_text(g: &GeneralName<'_>) -> Option<String> {
    match g {
        GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
        GeneralName::URI(u) => Some((*u).to_owned()),
        GeneralName::IPAddress(b) => match b.len() {
            4 => <[u8; 4]>::try_from(*b)
                .ok()
                .map(|a| std::net::IpAddr::from(a).to_string()),
            16 => <[u8; 16]>::try_from(*b)
                .ok()
                .map(|a| std::net::IpAddr::from(a).to_string()),
            _ => None,
        },
        _ => None,
    }
}
