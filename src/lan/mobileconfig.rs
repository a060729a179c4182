//! The iOS/iPadOS configuration profile (`.mobileconfig`) that installs the LAN CA: an XML
//! property list with one `com.apple.security.root` payload holding the certificate (Apple's
//! Configuration Profile Reference, "Certificates"). Unsigned: iOS shows it as such, and the
//! page asks the user to compare the fingerprint instead.

use anyhow::{Context, Result};
use plist::{Dictionary, Value};

/// The profile for the CA certificate `der` of the machine `host`; `fingerprint` (hex) makes
/// the identifiers and UUIDs stable for one CA and different for the next.
pub(crate) fn profile(der: &[u8], host: &str, fingerprint: &str) -> Result<Vec<u8>> {
    let hex: String = fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    let short = hex.get(..16).unwrap_or(&hex).to_ascii_lowercase();
    let mut cert = Dictionary::new();
    cert.insert(
        "PayloadCertificateFileName".into(),
        "candado-lan-ca.cer".into(),
    );
    cert.insert("PayloadContent".into(), Value::Data(der.to_vec()));
    cert.insert(
        "PayloadDescription".into(),
        "Trusts HTTPS from candado on your local network only".into(),
    );
    cert.insert(
        "PayloadDisplayName".into(),
        format!("candado LAN CA ({host})").into(),
    );
    cert.insert(
        "PayloadIdentifier".into(),
        format!("dev.candado.lan-ca.{short}.certificate").into(),
    );
    cert.insert("PayloadType".into(), "com.apple.security.root".into());
    cert.insert("PayloadUUID".into(), uuid_from(&hex, 1).into());
    cert.insert("PayloadVersion".into(), 1.into());

    let mut top = Dictionary::new();
    top.insert(
        "PayloadContent".into(),
        Value::Array(vec![Value::Dictionary(cert)]),
    );
    top.insert(
        "PayloadDescription".into(),
        format!(
            "Lets this device trust https://{host}.local and this network's private addresses when served by candado. The CA can sign for nothing else (name constraints). SHA-256: {fingerprint}"
        )
        .into(),
    );
    top.insert(
        "PayloadDisplayName".into(),
        format!("candado on {host}").into(),
    );
    top.insert(
        "PayloadIdentifier".into(),
        format!("dev.candado.lan.{short}").into(),
    );
    top.insert("PayloadOrganization".into(), "candado".into());
    top.insert("PayloadRemovalDisallowed".into(), false.into());
    top.insert("PayloadType".into(), "Configuration".into());
    top.insert("PayloadUUID".into(), uuid_from(&hex, 0).into());
    top.insert("PayloadVersion".into(), 1.into());

    let mut out = Vec::new();
    Value::Dictionary(top)
        .to_writer_xml(&mut out)
        .context("writing the configuration profile")?;
    Ok(out)
}

/// A UUID-shaped identifier from the fingerprint's hex digits (version 4 layout), the `n`th of
/// a family: stable for one CA, so installing the profile twice replaces rather than adds.
fn uuid_from(hex: &str, n: u8) -> String {
    let mut digits: Vec<char> = hex.chars().chain("0".repeat(32).chars()).take(32).collect();
    digits[12] = '4';
    digits[16] = '8';
    digits[31] = char::from_digit(u32::from(n) % 16, 16).unwrap_or('0');
    let d: String = digits.into_iter().collect::<String>().to_ascii_uppercase();
    format!(
        "{}-{}-{}-{}-{}",
        &d[0..8],
        &d[8..12],
        &d[12..16],
        &d[16..20],
        &d[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_is_a_plist_carrying_the_certificate_as_a_root_payload() {
        let der = b"not really DER, but bytes all the same".to_vec();
        let xml = profile(
            &der,
            "studio",
            "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
        )
        .unwrap();
        let top = Value::from_reader_xml(xml.as_slice()).unwrap();
        let top = top.as_dictionary().unwrap();
        assert_eq!(top["PayloadType"].as_string(), Some("Configuration"));
        let payload = top["PayloadContent"].as_array().unwrap()[0]
            .as_dictionary()
            .unwrap();
        assert_eq!(
            payload["PayloadType"].as_string(),
            Some("com.apple.security.root")
        );
        assert_eq!(payload["PayloadContent"].as_data(), Some(der.as_slice()));
        assert_ne!(top["PayloadUUID"], payload["PayloadUUID"]);
        assert_eq!(top["PayloadUUID"].as_string().unwrap().len(), 36);
    }
}
