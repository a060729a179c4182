//! `candado cert inspect`: what a certificate chain says, for people and for scripts. Parsing
//! is x509-parser's; nothing here trusts or verifies a signature, it only describes.

use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;
use serde::Serialize;
use x509_parser::extensions::{DistributionPointName, ParsedExtension};
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::load::{general_name_text, no_san_warning, san_names};

/// The id-ad-ocsp access method (RFC 5280 §4.2.2.1).
const OID_OCSP: &str = "1.3.6.1.5.5.7.48.1";
const OID_ED25519: &str = "1.3.101.112";

#[derive(Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub certificates: Vec<CertInfo>,
    /// Each certificate's issuer is the next one's subject.
    pub chain_in_order: bool,
    /// The chain ends at a self-signed certificate; otherwise `missing_issuer` names what the
    /// client must already have.
    pub ends_at_root: bool,
    pub missing_issuer: Option<String>,
    /// Whether the key file given with --key belongs to the leaf.
    pub key_matches: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub names: Vec<String>,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// Negative once expired.
    pub days_left: i64,
    pub key: String,
    pub signature: String,
    pub is_ca: bool,
    pub ocsp: Vec<String>,
    pub crl: Vec<String>,
    /// What browsers will refuse, one sentence each (a leaf without subjectAltName).
    pub warnings: Vec<String>,
}

/// Describes a chain (leaf first). `key_spki` is the SubjectPublicKeyInfo of a key to match.
pub(crate) fn describe(
    source: &str,
    chain: &[CertificateDer<'_>],
    key_spki: Option<&[u8]>,
) -> Result<Report, String> {
    let parsed = chain
        .iter()
        .enumerate()
        .map(|(i, der)| {
            X509Certificate::from_der(der.as_ref())
                .map(|(_, c)| c)
                .map_err(|e| format!("certificate {} of {source} cannot be parsed: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some(last) = parsed.last() else {
        return Err(format!("no certificate in {source}"));
    };
    let chain_in_order = parsed
        .windows(2)
        .all(|w| w[0].issuer().as_raw() == w[1].subject().as_raw());
    let ends_at_root = last.issuer().as_raw() == last.subject().as_raw();
    let mut certificates: Vec<CertInfo> = parsed.iter().map(info).collect();
    let leaf = &parsed[0];
    if san_names(leaf).is_empty() && !signs_certificates(leaf) {
        certificates[0].warnings.push(no_san_warning(
            &format!("the leaf certificate of {source}"),
            leaf,
        ));
    }
    Ok(Report {
        source: source.to_owned(),
        chain_in_order,
        ends_at_root,
        missing_issuer: (!ends_at_root).then(|| last.issuer().to_string()),
        key_matches: key_spki.map(|spki| parsed[0].public_key().raw == spki),
        certificates,
    })
}

/// A CA certificate proper (keyCertSign), inspected on its own: it needs no host names.
/// `openssl req -x509` marks its certificates CA:TRUE without that key usage.
fn signs_certificates(c: &X509Certificate<'_>) -> bool {
    c.is_ca() && matches!(c.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign())
}

fn info(c: &X509Certificate<'_>) -> CertInfo {
    let not_after = c.validity().not_after.timestamp();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64;
    let (mut ocsp, mut crl, mut names) = (Vec::new(), Vec::new(), Vec::new());
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                names.extend(san.general_names.iter().filter_map(general_name_text))
            }
            ParsedExtension::AuthorityInfoAccess(aia) => ocsp.extend(
                aia.accessdescs
                    .iter()
                    .filter(|d| d.access_method.to_id_string() == OID_OCSP)
                    .filter_map(|d| general_name_text(&d.access_location)),
            ),
            ParsedExtension::CRLDistributionPoints(points) => crl.extend(
                points
                    .points
                    .iter()
                    .flat_map(|p| match &p.distribution_point {
                        Some(DistributionPointName::FullName(n)) => {
                            n.iter().filter_map(general_name_text).collect()
                        }
                        _ => Vec::new(),
                    }),
            ),
            _ => {}
        }
    }
    CertInfo {
        subject: c.subject().to_string(),
        issuer: c.issuer().to_string(),
        names,
        serial: c.raw_serial_as_string(),
        not_before: c.validity().not_before.to_string(),
        not_after: c.validity().not_after.to_string(),
        days_left: (not_after - now).div_euclid(86_400),
        key: key_description(c),
        signature: oid2sn(&c.signature_algorithm.algorithm, oid_registry())
            .map(str::to_owned)
            .unwrap_or_else(|_| c.signature_algorithm.algorithm.to_id_string()),
        is_ca: c.is_ca(),
        ocsp,
        crl,
        warnings: Vec::new(),
    }
}

fn key_description(c: &X509Certificate<'_>) -> String {
    let spki = c.public_key();
    if spki.algorithm.algorithm.to_id_string() == OID_ED25519 {
        return "Ed25519".into();
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {} bits", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => match ec.key_size() {
            256 => "ECDSA P-256".into(),
            384 => "ECDSA P-384".into(),
            521 => "ECDSA P-521".into(),
            n => format!("ECDSA {n} bits"),
        },
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

/// The report as people read it.
pub(crate) fn render(r: &Report) -> String {
    let mut out = format!("{}\n", r.source);
    let n = r.certificates.len();
    for (i, c) in r.certificates.iter().enumerate() {
        let role = match (i, c.is_ca) {
            (0, _) => "leaf",
            (_, true) if i + 1 == n && r.ends_at_root => "root",
            _ => "intermediate",
        };
        let left = match c.days_left {
            d if d < 0 => format!("EXPIRED {} days ago", -d),
            d => format!("{d} days left"),
        };
        out.push_str(&format!("\ncertificate {} of {n} ({role})\n", i + 1));
        let rows = [
            ("subject", c.subject.clone()),
            (
                "names",
                if c.names.is_empty() {
                    "-".into()
                } else {
                    c.names.join(", ")
                },
            ),
            ("issuer", c.issuer.clone()),
            (
                "valid",
                format!("{} to {} ({left})", c.not_before, c.not_after),
            ),
            ("key", c.key.clone()),
            ("signature", c.signature.clone()),
            ("serial", c.serial.clone()),
            (
                "OCSP",
                if c.ocsp.is_empty() {
                    "-".into()
                } else {
                    c.ocsp.join(", ")
                },
            ),
            (
                "CRL",
                if c.crl.is_empty() {
                    "-".into()
                } else {
                    c.crl.join(", ")
                },
            ),
        ];
        for (k, v) in rows {
            out.push_str(&format!("  {k:<10} {v}\n"));
        }
        for w in &c.warnings {
            out.push_str(&format!("  {:<10} {w}\n", "WARNING"));
        }
    }
    out.push_str(&format!(
        "\nchain: {}; {}\n",
        if r.chain_in_order {
            "in order (each certificate is issued by the next)"
        } else {
            "OUT OF ORDER (leaf first, then each issuer)"
        },
        match &r.missing_issuer {
            None => "ends at a self-signed root".to_owned(),
            Some(i) => format!("ends before its issuer {i} (fine when clients trust it as a root)"),
        }
    ));
    if let Some(m) = r.key_matches {
        out.push_str(if m {
            "key: matches the leaf certificate\n"
        } else {
            "key: does NOT match the leaf certificate\n"
        });
    }
    out
}
