//! Which addresses `--lan` exposes: the private IPv4 addresses (RFC 1918) and IPv6
//! unique-local addresses (RFC 4193) of interfaces that are up. Never loopback, link-local
//! (a URL cannot carry its zone) or public addresses, and never the bridges of containers and
//! virtual machines unless named: their private ranges are not the Wi-Fi the phone is on.

use std::net::IpAddr;

/// One exposed address and the interface that carries it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct LanAddr {
    pub interface: String,
    pub ip: IpAddr,
}

/// Interface name prefixes of container and VM networks, skipped unless named.
const VIRTUAL_PREFIXES: &[&str] = &[
    "docker",
    "br-",
    "virbr",
    "veth",
    "cni",
    "flannel",
    "podman",
    "lxc",
    "lxd",
    "vboxnet",
    "vmnet",
    "tun",
    "tap",
    "wg",
    "tailscale",
    "zt",
];

/// The LAN addresses now, sorted. `only` names the interfaces to use (empty: all but the
/// virtual ones).
pub(crate) fn discover(only: &[String]) -> std::io::Result<Vec<LanAddr>> {
    let mut found: Vec<LanAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .filter(|i| match only.is_empty() {
            true => !is_virtual(&i.name),
            false => only.contains(&i.name),
        })
        .filter(|i| is_lan_ip(i.ip()))
        .map(|i| LanAddr {
            ip: i.ip(),
            interface: i.name,
        })
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

fn is_virtual(name: &str) -> bool {
    VIRTUAL_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A private IPv4 address (10/8, 172.16/12, 192.168/16) or an IPv6 unique-local one (fc00::/7).
pub(crate) fn is_lan_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// `CANDADO_LAN_INTERFACES=a,b` (tests, and a quick override) or the configured list.
pub(crate) fn interfaces(configured: &[String]) -> Vec<String> {
    match std::env::var("CANDADO_LAN_INTERFACES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        _ => configured.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_and_unique_local_addresses_are_lan_addresses() {
        for lan in [
            "192.168.1.20",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.1",
            "fd12::1",
        ] {
            assert!(is_lan_ip(lan.parse().unwrap()), "{lan}");
        }
        for other in [
            "8.8.8.8",
            "172.32.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "2001:db8::1",
        ] {
            assert!(!is_lan_ip(other.parse().unwrap()), "{other}");
        }
    }

    #[test]
    fn container_bridges_are_not_the_wifi() {
        assert!(is_virtual("docker0") && is_virtual("br-1a2b") && is_virtual("veth12"));
        assert!(!is_virtual("wlan0") && !is_virtual("eth0") && !is_virtual("enp3s0"));
    }
}
