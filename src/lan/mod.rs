//! `--lan`: a trusted HTTPS URL for the phone on the same Wi-Fi.
//!
//! The pieces, each on its own: which addresses are exposed (`addrs`), the LAN CA whose name
//! constraints keep it from signing for anything but private addresses and local names
//! (`ca`), the plain-HTTP onboarding page that hands its certificate over (`onboarding`, with
//! the iOS profile from `mobileconfig`), the QR codes printed on the terminal (`qr`) and the
//! mDNS announcement of `HOSTNAME.local` (`mdns`). `serve::lan` binds the listeners and
//! follows address changes.

pub(crate) mod addrs;
pub(crate) mod ca;
pub(crate) mod mdns;
pub(crate) mod mobileconfig;
pub(crate) mod onboarding;
pub(crate) mod qr;

/// This machine's host name as a DNS label (`/etc/hostname`, lower-case), or `candado` when it
/// is not a usable one. Phones reach it as `NAME.local`.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().trim_end_matches(".local").to_ascii_lowercase())
        .and_then(|h| h.split('.').next().map(str::to_owned))
        .filter(|h| is_dns_label(h))
        .unwrap_or_else(|| "candado".into())
}

/// A host name label: letters, digits and inner hyphens, at most 63 bytes (RFC 1123).
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `https://IP:PORT/` with IPv6 addresses in brackets.
pub(crate) fn url(scheme: &str, host: std::net::IpAddr, port: u16) -> String {
    match host {
        std::net::IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}/"),
        std::net::IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_name_labels_are_checked_like_dns_labels() {
        assert!(is_dns_label("my-laptop"));
        assert!(!is_dns_label("-bad"));
        assert!(!is_dns_label("has space"));
        assert!(!is_dns_label(""));
    }

    #[test]
    fn ipv6_urls_put_the_address_in_brackets() {
        assert_eq!(
            url("https", "fd00::5".parse().unwrap(), 8443),
            "https://[fd00::5]:8443/"
        );
        assert_eq!(
            url("http", "192.168.1.20".parse().unwrap(), 8880),
            "http://192.168.1.20:8880/"
        );
    }
}
