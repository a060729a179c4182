//! What sites and tunnels share about TLS: where the certificate comes from, the ALPN list,
//! client certificates (`client_auth`: CA, CRL, allow lists by name, URI, CN or SPKI pin).

use std::path::Path;

use serde_saphyr::Spanned;

use super::model::*;
use super::parse::*;
use super::raw::{RawAllow, RawCertificate, RawClientAuth};
use super::{Problems, line_of};

/// Where a site's or tunnel's certificate comes from. Like Caddy, when none is given, public
/// names get a public (ACME) certificate and the rest the local CA's.
pub(crate) fn cert_source(
    raw: Option<Spanned<RawCertificate>>,
    names: &[String],
    base: &Path,
    key: &str,
    p: &mut Problems,
) -> CertSource {
    match raw {
        None if !names.is_empty() && names.iter().all(|n| is_public_name(n)) => CertSource::Acme,
        None => CertSource::Local,
        Some(c) => match c.value {
            RawCertificate::Keyword(k) if k == "local" => CertSource::Local,
            RawCertificate::Keyword(k) if k == "acme" => CertSource::Acme,
            RawCertificate::Keyword(k) => {
                p.add(Some(c.referenced.line()), key, format!("unknown certificate source `{k}`: use `local`, `acme` or {{cert: FILE, key: FILE}}"));
                CertSource::Local
            }
            RawCertificate::Files(f) => CertSource::Files {
                cert: base.join(f.cert),
                key: base.join(f.key),
            },
            RawCertificate::Several(list) if list.is_empty() => {
                p.add(
                    Some(c.referenced.line()),
                    key,
                    "the list of certificates is empty",
                );
                CertSource::Local
            }
            RawCertificate::Several(list) => CertSource::Several(
                list.into_iter()
                    .map(|f| (base.join(f.cert), base.join(f.key)))
                    .collect(),
            ),
        },
    }
}

pub(super) fn validate_alpn(
    raw: Option<Vec<Spanned<String>>>,
    key: &str,
    p: &mut Problems,
) -> Vec<Vec<u8>> {
    raw.unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            let ok = (1..=255).contains(&a.value.len());
            let r = ok.then(|| a.value.clone().into_bytes()).ok_or_else(|| {
                "an ALPN protocol name is 1 to 255 bytes, e.g. h2 or imap".to_owned()
            });
            p.check(line_of(&a), key, r)
        })
        .collect()
}

/// `client_auth:` of a site or tunnel.
pub(crate) fn validate_client_auth(
    raw: Spanned<RawClientAuth>,
    base: &Path,
    key: &str,
    p: &mut Problems,
) -> ClientAuth {
    let raw = raw.value;
    let hint = (
        "mode",
        "`required` (no certificate, no connection) or `optional`",
    );
    let required = raw
        .mode
        .and_then(|m| {
            p.choose(
                &m,
                format!("{key}.mode"),
                hint,
                &[("required", true), ("optional", false)],
            )
        })
        .unwrap_or(true);
    let ca = match raw.ca.value.as_str() {
        "local" => ClientCa::Local,
        file => {
            let path = base.join(file);
            if !path.is_file() {
                p.add(line_of(&raw.ca), format!("{key}.ca"), format!("file not found: {} (a PEM file with the CA certificates that issue client certificates, or `local` for candado's development CA)", path.display()));
            }
            ClientCa::File(path)
        }
    };
    let crls = match raw.crl {
        None => Vec::new(),
        Some(c) => {
            let line = line_of(&c);
            let files: Vec<_> = c
                .value
                .into_vec()
                .into_iter()
                .map(|f| base.join(f))
                .collect();
            for f in files.iter().filter(|f| !f.is_file()) {
                p.add(
                    line,
                    format!("{key}.crl"),
                    format!("file not found: {}", f.display()),
                );
            }
            files
        }
    };
    ClientAuth {
        required,
        ca,
        crls,
        allow: raw
            .allow
            .map(|a| validate_allow(a, &format!("{key}.allow"), p)),
        forward_pem: raw.forward_pem.unwrap_or(false),
    }
}

/// An allow list; an empty one would refuse everybody, which is never what was meant.
pub(crate) fn validate_allow(raw: Spanned<RawAllow>, key: &str, p: &mut Problems) -> AllowList {
    let line = line_of(&raw);
    let raw = raw.value;
    let spki_sha256 = raw
        .spki_sha256
        .unwrap_or_default()
        .iter()
        .filter_map(|pin| p.check(line, format!("{key}.spki_sha256"), parse_spki_pin(pin)))
        .collect();
    let allow = AllowList {
        dns: raw
            .dns
            .unwrap_or_default()
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        uri: raw.uri.unwrap_or_default(),
        cn: raw.cn.unwrap_or_default(),
        spki_sha256,
    };
    if allow == AllowList::default() {
        p.add(line, key, "the allow list is empty: list identities under dns, uri, cn or spki_sha256 (or remove it to accept every certificate the CA issued)");
    }
    allow
}

/// `allow_clients` on a route only makes sense when the site asks for certificates.
pub(crate) fn check_route_allow_lists(sites: &[Site], p: &mut Problems) {
    for (i, s) in sites.iter().enumerate() {
        for (j, r) in s.routes.iter().enumerate() {
            if r.allow_clients.is_some() && s.client_auth.is_none() {
                p.add(None, format!("sites[{i}].proxy[{j}].allow_clients"), "the site asks for no client certificate, so nobody would get through: add `client_auth` to the site (mode: optional lets other paths be reached without one)");
            }
        }
    }
}
