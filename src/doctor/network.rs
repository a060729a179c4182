//! The checks about who can reach the app and whom it believes: its listening socket (check
//! 7) and whether it takes X-Forwarded-* from a peer that is not candado (check 5).
//!
//! Only loopback addresses are ever contacted. Check 7 reads the app's listening socket from
//! the kernel's table (`/proc/net/tcp`, `/proc/net/tcp6`) instead of connecting from another
//! interface: a socket bound to 0.0.0.0, `::` or a LAN address answers everyone on the
//! network, whatever this machine's firewall happens to say today. Check 5 connects from
//! 127.0.0.2, another loopback address that is not the one candado uses, and sends forged
//! headers: an app that believes them would believe anyone who reaches it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::{HeaderValue, header};

use super::framework::Need;
use super::probe::{Client, Reply, Via};
use super::report::{Check, Finding, Status};
use super::{Seen, chain, get};

/// The peer check 5 connects from: loopback, but not candado's 127.0.0.1.
const OTHER_PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// Forged values (RFC 5737 documentation address, an `.invalid` name: RFC 2606).
const FORGED_IP: &str = "203.0.113.77";
const FORGED_HOST: &str = "forged.doctor.invalid";

/// Check 7: the addresses the app's port is bound to.
pub(crate) fn listen_address(seen: &Seen) -> Finding {
    let port = seen.target.app.port();
    let mut bound = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        if let Ok(table) = std::fs::read_to_string(file) {
            bound.extend(listening(&table, v6).filter(|a| a.port() == port));
        }
    }
    if bound.is_empty() {
        return Finding::skipped(
            Check::ListenAddress,
            format!(
                "no listening socket for port {port} in this machine's /proc/net/tcp (in a container or another network namespace?)"
            ),
        );
    }
    let public: Vec<String> = bound
        .iter()
        .filter(|a| !a.ip().is_loopback())
        .map(|a| match a.ip().is_unspecified() {
            true => format!("{a} (every interface)"),
            false => a.to_string(),
        })
        .collect();
    if public.is_empty() {
        return Finding::ok(
            Check::ListenAddress,
            format!("the app's port {port} is bound to loopback only"),
        );
    }
    Finding::problem(
        Check::ListenAddress,
        format!(
            "the app's port {port} is bound to {} (per /proc/net/tcp)",
            public.join(", ")
        ),
        "anyone on the network can reach the app at http:// around candado: no TLS, no HSTS, and whatever X-Forwarded-* headers they care to send",
        seen.fix(Need::Loopback),
    )
}

/// The LISTEN sockets of a `/proc/net/tcp{,6}` table.
fn listening(table: &str, v6: bool) -> impl Iterator<Item = SocketAddr> + '_ {
    table.lines().skip(1).filter_map(move |line| {
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        let state = fields.nth(1)?;
        (state == "0A").then_some(())?;
        let (ip, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::new(parse_ip(ip, v6)?, port))
    })
}

/// The kernel prints addresses as 32-bit words in host byte order (little-endian here).
fn parse_ip(hex: &str, v6: bool) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    match (v6, bytes.len()) {
        (false, 4) => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        (true, 16) => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// Check 5: `/` from 127.0.0.2 twice, plain and with forged X-Forwarded-For/-Proto/-Host; an
/// app that shows the forged address, host or scheme believes anyone. That matters when
/// others can reach it (check 7): then it is a problem, otherwise a note.
pub(crate) async fn forwarded_trust(client: &Client, seen: &Seen, reachable: bool) -> Finding {
    let via = Via::Direct {
        app: seen.target.app,
        from: Some(OTHER_PEER),
    };
    let host = seen.target.app.to_string();
    let baseline = match client.fetch(&via, get(&seen.target.app_path, &host)).await {
        Ok(r) => r,
        Err(e) => {
            return Finding::skipped(
                Check::ForwardedTrust,
                format!("cannot reach the app from {OTHER_PEER}: {}", chain(&e)),
            );
        }
    };
    let mut req = get(&seen.target.app_path, &host);
    for (name, value) in [
        ("x-forwarded-for", FORGED_IP.to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
        ("x-forwarded-host", FORGED_HOST.to_owned()),
        ("x-real-ip", FORGED_IP.to_owned()),
        (
            "forwarded",
            format!("for={FORGED_IP};host={FORGED_HOST};proto=https"),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            req.headers_mut().insert(name, v);
        }
    }
    let forged = match client.fetch(&via, req).await {
        Ok(r) => r,
        Err(e) => return Finding::skipped(Check::ForwardedTrust, chain(&e)),
    };
    let Some(believed) = believed(&baseline, &forged) else {
        let visible = text(&baseline).contains("http://") || text(&baseline).contains("127.0.0.2");
        return match visible {
            true => Finding::ok(
                Check::ForwardedTrust,
                format!(
                    "forged X-Forwarded-* headers from {OTHER_PEER} (not candado) change nothing"
                ),
            ),
            false => Finding::skipped(
                Check::ForwardedTrust,
                format!(
                    "cannot tell: GET {} shows neither a URL nor the client's address",
                    seen.target.app_path
                ),
            ),
        };
    };
    let saw = format!(
        "sent straight to the app from {OTHER_PEER} (not candado), forged X-Forwarded-* headers are believed: {believed}"
    );
    match reachable {
        true => Finding::problem(
            Check::ForwardedTrust,
            saw,
            "the app trusts forwarding headers from any peer, and others can reach it (see listen address): anyone can pose as any client address (rate limits, audit logs, IP allow-lists) or make it build URLs on their host",
            seen.fix(Need::TrustOnlyCandado),
        ),
        false => Finding {
            check: Check::ForwardedTrust,
            status: Status::Note,
            saw,
            why: Some(
                "harmless while only this machine can reach the app (it listens on loopback): keep it that way, or trust only 127.0.0.1".to_owned(),
            ),
            fix: None,
        },
    }
}

/// What the forged answer shows that the plain one does not, if anything.
fn believed(baseline: &Reply, forged: &Reply) -> Option<String> {
    let (before, after) = (text(baseline), text(forged));
    let mut what = Vec::new();
    if after.contains(FORGED_IP) && !before.contains(FORGED_IP) {
        what.push(format!("it sees the client as {FORGED_IP}"));
    }
    if after.contains(FORGED_HOST) && !before.contains(FORGED_HOST) {
        what.push(format!("it builds URLs on {FORGED_HOST}"));
    }
    if after.matches("https://").count() > before.matches("https://").count() {
        what.push("it builds https:// URLs for a plain http request".to_owned());
    }
    (!what.is_empty()).then(|| what.join(", "))
}

/// The body and the redirect headers, where an app shows what it believes.
fn text(r: &Reply) -> String {
    let mut s = r.body.clone();
    for name in [header::LOCATION, header::CONTENT_LOCATION, header::REFRESH] {
        if let Some(v) = r.header(name) {
            s.push('\n');
            s.push_str(v);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_read_from_the_kernels_table() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 00000000:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n   2: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n";
        let found: Vec<SocketAddr> = listening(v4, false).collect();
        assert_eq!(
            found,
            [
                "127.0.0.1:8080".parse().unwrap(),
                "0.0.0.0:5000".parse().unwrap()
            ]
        );
        let v6 = "  sl  local_address\n   0: 00000000000000000000000000000000:1388 00000000000000000000000000000000:0000 0A 0\n   1: 00000000000000000000000001000000:1389 00000000000000000000000000000000:0000 0A 0\n";
        let found: Vec<SocketAddr> = listening(v6, true).collect();
        assert_eq!(
            found,
            ["[::]:5000".parse().unwrap(), "[::1]:5001".parse().unwrap()]
        );
    }
}
