//! Value parsers shared by the YAML config, the PyServe reader and the command-line flags:
//! each turns one string into a checked value or a message that says what to write instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::defaults;
use super::model::*;

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT`, `localhost:PORT`, `*:PORT` or `:PORT`
/// (all interfaces, as in Caddy).
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(|| {
        format!("`{s}` is not an address: write it as IP:PORT, e.g. 127.0.0.1:8443")
    })?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` in `{s}` is not a port number (0-65535)"))?;
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        "[::]" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        other => other.parse().map_err(|_| {
            format!("`{other}` in `{s}` is not an IP address (names other than localhost are not resolved here)")
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Checks a site name: a DNS name (optionally `*.` + name) or an IP address; returns it
/// lower-cased.
pub(crate) fn parse_site_name(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<IpAddr>().is_ok() {
        return Ok(name);
    }
    let dns = name.strip_prefix("*.").unwrap_or(&name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if dns.is_empty() || dns.len() > 253 || !dns.split('.').all(label_ok) {
        return Err(format!(
            "`{s}` is not a host name: use letters, digits, dots and hyphens (a wildcard is `*.example.com`)"
        ));
    }
    Ok(name)
}

/// Parses a duration such as `10s`, `500ms` or `5m`; zero is refused (it would disable the
/// protection the timeout gives).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. 10s, 500ms or 5m"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// Whether a public CA could issue a certificate for `name`: not an IP address, not
/// `localhost`, and not under a name reserved for private use (RFC 2606, RFC 6762, RFC 8375).
pub(crate) fn is_public_name(name: &str) -> bool {
    const PRIVATE_SUFFIXES: [&str; 8] = [
        "localhost",
        "local",
        "internal",
        "test",
        "example",
        "invalid",
        "home.arpa",
        "lan",
    ];
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.contains('.')
        && name.parse::<IpAddr>().is_err()
        && !PRIVATE_SUFFIXES
            .iter()
            .any(|s| name == *s || name.ends_with(&format!(".{s}")))
}

/// `letsencrypt`, `letsencrypt-staging` or an https:// directory URL.
pub(crate) fn acme_directory(s: &str) -> Result<String, String> {
    match s {
        "letsencrypt" => Ok(defaults::ACME_DIRECTORY.to_owned()),
        "letsencrypt-staging" => Ok(defaults::ACME_STAGING_DIRECTORY.to_owned()),
        url if url.starts_with("https://") && url.parse::<http::Uri>().is_ok() => {
            Ok(url.to_owned())
        }
        other => Err(format!(
            "`{other}` is not an ACME directory: use `letsencrypt`, `letsencrypt-staging` or an https:// URL"
        )),
    }
}

/// An EAB HMAC key, given in base64url as the CA shows it.
pub(crate) fn acme_eab_key(s: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "not a base64url key: copy it exactly as the CA shows it".to_owned())
}

pub(crate) fn challenge_choice(s: &str) -> Result<ChallengeChoice, String> {
    match s {
        "auto" => Ok(ChallengeChoice::Auto),
        "http-01" => Ok(ChallengeChoice::Http01),
        "tls-alpn-01" => Ok(ChallengeChoice::TlsAlpn01),
        other => Err(format!(
            "unknown challenge `{other}`: use `auto`, `http-01` or `tls-alpn-01`"
        )),
    }
}

/// A SHA-256 SPKI pin in hex (colons allowed, as `openssl … -sha256` prints) or base64 (as
/// HPKP pins were written).
pub(crate) fn parse_spki_pin(s: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = match hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default())
            .collect(),
        false => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .unwrap_or_default(),
    };
    bytes.try_into().map_err(|_| {
        format!("`{s}` is not a SHA-256 pin: 64 hex digits or 44 base64 characters, e.g. from `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`")
    })
}

/// `HOST:PORT` with a port, where HOST is a name, an IPv4 address or a bracketed IPv6 one.
pub(crate) fn parse_host_port(s: &str) -> Result<String, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not HOST:PORT, e.g. 127.0.0.1:5432 or db.internal:6432");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(bad)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || (bare.parse::<std::net::IpAddr>().is_err() && parse_site_name(bare).is_err())
    {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// The host of a `HOST:PORT` (brackets taken off an IPv6 address): the name a client-mode
/// tunnel verifies unless told otherwise.
pub(crate) fn host_of(to: &str) -> &str {
    let host = to.rsplit_once(':').map_or(to, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_in_every_accepted_form() {
        assert_eq!(parse_listen("127.0.0.1:8443").unwrap().port(), 8443);
        assert!(parse_listen("[::1]:443").unwrap().is_ipv6());
        assert!(parse_listen(":443").unwrap().ip().is_unspecified());
        assert!(parse_listen("localhost:1").unwrap().ip().is_loopback());
        assert!(parse_listen("example.com:443").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:70000").is_err());
    }

    #[test]
    fn site_names_are_checked_and_lowercased() {
        assert_eq!(parse_site_name("Example.COM.").unwrap(), "example.com");
        assert_eq!(parse_site_name("*.a.test").unwrap(), "*.a.test");
        assert!(parse_site_name("a..b").is_err());
        assert!(parse_site_name("evil.com/x").is_err());
        assert!(parse_site_name("a.*.b").is_err());
        assert_eq!(parse_site_name("::1").unwrap(), "::1");
    }

    #[test]
    fn zero_durations_are_refused() {
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_duration("1500ms").unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn spki_pins_are_read_in_hex_with_or_without_colons_and_in_base64() {
        let hex = "ab".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_spki_pin(&hex).unwrap(), [0xab; 32]);
        assert_eq!(parse_spki_pin(&colons).unwrap(), [0xab; 32]);
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_spki_pin(&b64).unwrap(), [7; 32]);
        assert!(parse_spki_pin("abcd").is_err());
    }

    #[test]
    fn upstream_addresses_need_a_host_and_a_port() {
        assert!(parse_host_port("127.0.0.1:5432").is_ok());
        assert!(parse_host_port("db.internal:6432").is_ok());
        assert!(parse_host_port("[::1]:22").is_ok());
        assert!(parse_host_port("db.internal").is_err());
        assert!(parse_host_port(":80").is_err());
        assert!(parse_host_port("a b:80").is_err());
        assert!(parse_host_port("h:0").is_err());
    }
}
