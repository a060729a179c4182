//! The `acme:` section: which CA, which account, which challenge, and the checks that sites
//! and tunnels asking for ACME certificates can get them.

use std::path::Path;

use super::model::*;
use super::parse::*;
use super::raw::RawAcme;
use super::{Problems, line_of};

pub(super) fn validate_acme(raw: RawAcme, base: &Path, p: &mut Problems) -> AcmeSettings {
    let mut acme = AcmeSettings::default();
    if let Some(d) = raw.directory
        && let Some(url) = p.check(line_of(&d), "acme.directory", acme_directory(&d.value))
    {
        acme.directory = url;
    }
    if let Some(e) = raw.email {
        match e.value.split_once('@') {
            Some((user, domain)) if !user.is_empty() && domain.contains('.') => {
                acme.email = Some(e.value.clone())
            }
            _ => p.add(
                line_of(&e),
                "acme.email",
                format!("`{}` is not an email address", e.value),
            ),
        }
    }
    if let Some(c) = raw.ca {
        let path = base.join(&c.value);
        match path.is_file() {
            true => acme.ca = Some(path),
            false => p.add(
                line_of(&c),
                "acme.ca",
                format!("file not found: {}", path.display()),
            ),
        }
    }
    if let Some(eab) = raw.eab {
        let key = &eab.hmac_key;
        if let Some(hmac) = p.check(line_of(key), "acme.eab.hmac_key", acme_eab_key(&key.value)) {
            acme.eab = Some((eab.kid, hmac));
        }
    }
    if let Some(c) = raw.challenge
        && let Some(choice) = p.check(line_of(&c), "acme.challenge", challenge_choice(&c.value))
    {
        acme.challenge = choice;
    }
    if let Some(s) = raw.storage {
        acme.storage = base.join(s);
    }
    let hint = (
        "choice",
        "`refuse` (handshakes fail until the certificate arrives) or `local` (a temporary local-CA certificate)",
    );
    let choices = [
        ("refuse", WhilePending::Refuse),
        ("local", WhilePending::LocalCa),
    ];
    if let Some(w) = raw
        .while_pending
        .and_then(|w| p.choose(&w, "acme.while_pending", hint, &choices))
    {
        acme.while_pending = w;
    }
    acme
}

/// ACME sites need names a CA can issue for, and HTTP-01 needs the site's HTTP listener.
pub(super) fn check_acme_sites(sites: &[Site], acme: &AcmeSettings, p: &mut Problems) {
    for (i, s) in sites.iter().enumerate() {
        if s.certificate != CertSource::Acme {
            continue;
        }
        let key = format!("sites[{i}].certificate");
        if let Some(n) = s
            .names
            .iter()
            .find(|n| n.parse::<std::net::IpAddr>().is_ok())
        {
            p.add(None, &key, format!("ACME certificates are for host names; `{n}` is an IP address: use `local` or certificate files for it"));
        }
        if acme.challenge == ChallengeChoice::Http01 && s.redirect_from.is_none() {
            p.add(None, &key, "acme.challenge is http-01, which needs the site's HTTP listener: set `http_redirect: :80`, or use tls-alpn-01");
        }
        if s.names.iter().any(|n| n.starts_with("*.")) {
            p.add(None, &key, "wildcard names need the DNS-01 challenge, which candado does not do: list the names, or use certificate files");
        }
    }
}

/// ACME tunnels need their host names listed (no wildcards: no DNS-01; no IP addresses).
pub(super) fn check_acme_tunnels(tunnels: &[(usize, Tunnel)], p: &mut Problems) {
    for (i, t) in tunnels {
        let TunnelMode::Server(s) = &t.mode else {
            continue;
        };
        let unfit = |n: &String| n.starts_with("*.") || n.parse::<std::net::IpAddr>().is_ok();
        if s.certificate == CertSource::Acme && (s.names.is_empty() || s.names.iter().any(unfit)) {
            p.add(None, format!("tunnels[{i}].certificate"), "ACME certificates need the tunnel's host names in `names` (no wildcards, no IP addresses): list them, or use `local` or certificate files");
        }
    }
}
