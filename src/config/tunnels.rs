//! Validation of `tunnels:` and of mutual TLS (`client_auth:`, `allow_clients:`), which
//! sites and tunnels share.

use std::path::Path;

use serde_saphyr::Spanned;

use super::raw::{RawAllow, RawClientAuth, RawTlsClient, RawTunnel};
use super::{
    AllowList, ClientAuth, ClientCa, Problems, Site, Tunnel, TunnelClient, TunnelMode,
    TunnelServer, cert_source, defaults, line_of, parse_duration, parse_listen, parse_site_name,
};

/// Each valid tunnel with its index in the file (so later checks name the right entry even
/// when an earlier one was refused).
pub(crate) fn validate_tunnels(
    raw: Vec<Spanned<RawTunnel>>,
    base: &Path,
    p: &mut Problems,
) -> Vec<(usize, Tunnel)> {
    raw.into_iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, validate_tunnel(i, t, base, p)?)))
        .collect()
}

fn validate_tunnel(
    i: usize,
    raw: Spanned<RawTunnel>,
    base: &Path,
    p: &mut Problems,
) -> Option<Tunnel> {
    let key = |k: &str| format!("tunnels[{i}].{k}");
    let line = line_of(&raw);
    let raw = raw.value;
    let Some(listen_raw) = raw.listen else {
        p.add(
            line,
            key("listen"),
            "missing: the address to accept connections on, e.g. 127.0.0.1:7443",
        );
        return None;
    };
    let listen = p.check(
        line_of(&listen_raw),
        key("listen"),
        parse_listen(&listen_raw.value),
    );
    let Some(to_raw) = raw.to else {
        p.add(
            line,
            key("to"),
            "missing: where to send the bytes, e.g. 127.0.0.1:5432",
        );
        return None;
    };
    let to = p.check(line_of(&to_raw), key("to"), parse_host_port(&to_raw.value));
    let idle_timeout = match raw.idle_timeout {
        Some(d) => p.check(line_of(&d), key("idle_timeout"), parse_duration(&d.value)),
        None => Some(defaults::TUNNEL_IDLE_TIMEOUT),
    };
    let mode = match raw.tls_client {
        Some(client) => {
            for (present, what) in [
                (raw.certificate.is_some(), "certificate"),
                (raw.client_auth.is_some(), "client_auth"),
                (raw.proxy_protocol.is_some(), "proxy_protocol"),
                (raw.names.is_some(), "names"),
                (raw.alpn.is_some(), "alpn"),
            ] {
                if present {
                    p.add(line_of(&client), key(what), format!("`{what}` is for tunnels that accept TLS; a `tls_client` tunnel accepts plain TCP (set alpn inside tls_client)"));
                }
            }
            let host = to.as_deref().map(host_of).unwrap_or_default();
            TunnelMode::Client(validate_tls_client(
                client,
                host,
                base,
                &key("tls_client"),
                p,
            ))
        }
        None => {
            let mut names = Vec::new();
            for n in raw.names.unwrap_or_default() {
                if let Some(name) = p.check(line_of(&n), key("names"), parse_site_name(&n.value)) {
                    names.push(name);
                }
            }
            let proxy_protocol = match raw.proxy_protocol {
                None => false,
                Some(v) => match v.value.as_str() {
                    "v2" => true,
                    "off" => false,
                    other => {
                        p.add(
                            line_of(&v),
                            key("proxy_protocol"),
                            format!("unknown version `{other}`: use `v2` (or `off`)"),
                        );
                        false
                    }
                },
            };
            TunnelMode::Server(TunnelServer {
                // No names: the local CA's certificate for this machine's names, never ACME.
                certificate: cert_source(raw.certificate, &names, base, &key("certificate"), p),
                names,
                alpn: validate_alpn(raw.alpn, &key("alpn"), p),
                proxy_protocol,
                client_auth: raw
                    .client_auth
                    .map(|c| validate_client_auth(c, base, &key("client_auth"), p)),
            })
        }
    };
    Some(Tunnel {
        name: raw.name.unwrap_or_else(|| listen_raw.value.clone()),
        listen: listen?,
        to: to?,
        idle_timeout: idle_timeout?,
        mode,
    })
}

fn validate_tls_client(
    raw: Spanned<RawTlsClient>,
    host: &str,
    base: &Path,
    key: &str,
    p: &mut Problems,
) -> TunnelClient {
    let line = line_of(&raw);
    let raw = raw.value;
    let ca = raw.ca.and_then(|c| {
        let path = base.join(&c.value);
        match path.is_file() {
            true => Some(path),
            false => {
                p.add(
                    line_of(&c),
                    format!("{key}.ca"),
                    format!("file not found: {}", path.display()),
                );
                None
            }
        }
    });
    let server_name = match raw.server_name {
        Some(n) => p
            .check(
                line_of(&n),
                format!("{key}.server_name"),
                parse_site_name(&n.value),
            )
            .unwrap_or_default(),
        None => host.to_owned(),
    };
    let identity = match (raw.cert, raw.key) {
        (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
        (None, None) => None,
        _ => {
            p.add(
                line,
                key,
                "a client certificate needs both `cert` and `key`",
            );
            None
        }
    };
    TunnelClient {
        ca,
        server_name,
        identity,
        alpn: validate_alpn(raw.alpn, &format!("{key}.alpn"), p),
    }
}

fn validate_alpn(raw: Option<Vec<Spanned<String>>>, key: &str, p: &mut Problems) -> Vec<Vec<u8>> {
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
    let required = match raw.mode {
        None => true,
        Some(m) => match m.value.as_str() {
            "required" => true,
            "optional" => false,
            other => {
                p.add(line_of(&m), format!("{key}.mode"), format!("unknown mode `{other}`: use `required` (no certificate, no connection) or `optional`"));
                true
            }
        },
    };
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

/// A SHA-256 SPKI pin in hex (colons allowed, as `openssl … -sha256` prints) or base64 (as
/// HPKP pins were written).
pub fn parse_spki_pin(s: &str) -> Result<[u8; 32], String> {
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
pub fn parse_host_port(s: &str) -> Result<String, String> {
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
pub fn host_of(to: &str) -> &str {
    let host = to.rsplit_once(':').map_or(to, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Tunnels sharing a port all accept TLS and are told apart by SNI; no tunnel may take an
/// address a site uses.
pub(crate) fn check_tunnel_addresses(
    sites: &[Site],
    tunnels: &[(usize, Tunnel)],
    p: &mut Problems,
) {
    for (n, (i, t)) in tunnels.iter().enumerate() {
        let key = format!("tunnels[{i}].listen");
        let shared: Vec<&Tunnel> = tunnels
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.listen == t.listen)
            .collect();
        if shared.len() > 1 {
            match &t.mode {
                TunnelMode::Client(_) => p.add(None, &key, format!("{} is shared with another tunnel; a tls_client tunnel needs a port of its own", t.listen)),
                TunnelMode::Server(s) if s.names.is_empty() => p.add(None, &key, format!("{} is shared by several tunnels: give each `names` so the client's SNI picks one", t.listen)),
                TunnelMode::Server(s) => {
                    for (j, o) in tunnels.iter().take(n) {
                        if let (true, TunnelMode::Server(os)) = (o.listen == t.listen, &o.mode)
                            && let Some(n) = s.names.iter().find(|n| os.names.contains(n))
                        {
                            p.add(None, format!("tunnels[{i}].names"), format!("`{n}` is already served on {} by tunnels[{j}]", t.listen));
                        }
                    }
                }
            }
        }
        if let Some(j) = sites
            .iter()
            .position(|s| s.listen == t.listen || s.redirect_from == Some(t.listen))
            && t.listen.port() != 0
        {
            p.add(
                None,
                &key,
                format!("{} is already used by sites[{j}]", t.listen),
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Problem, parse_candado};

    fn messages(yaml: &str, base: &Path) -> Vec<String> {
        let problems: Vec<Problem> = parse_candado(yaml, base).expect_err("expected problems");
        problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn a_tunnels_only_file_reads_into_the_model() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clients.pem"), "x").unwrap();
        let yaml = "tunnels:\n  - name: chat\n    listen: 127.0.0.1:7443\n    to: 127.0.0.1:12345\n    names: [Chat.test]\n    proxy_protocol: v2\n    alpn: [chat/1]\n    idle_timeout: 30s\n    client_auth: {ca: clients.pem, allow: {cn: [alice]}}\n  - listen: 127.0.0.1:5432\n    to: db.internal:6432\n    tls_client: {server_name: db.test}\n";
        let c = parse_candado(yaml, dir.path()).expect("valid");
        assert!(c.sites.is_empty());
        let TunnelMode::Server(s) = &c.tunnels[0].mode else {
            panic!("server mode expected");
        };
        assert_eq!(c.tunnels[0].name, "chat");
        assert_eq!(s.names, ["chat.test"]);
        assert_eq!(s.certificate, crate::config::CertSource::Local);
        assert!(s.proxy_protocol);
        assert_eq!(s.alpn, [b"chat/1".to_vec()]);
        let auth = s.client_auth.as_ref().unwrap();
        assert!(auth.required);
        assert_eq!(auth.ca, ClientCa::File(dir.path().join("clients.pem")));
        assert_eq!(auth.allow.as_ref().unwrap().cn, ["alice"]);
        assert_eq!(c.tunnels[0].idle_timeout.as_secs(), 30);
        let TunnelMode::Client(client) = &c.tunnels[1].mode else {
            panic!("client mode expected");
        };
        assert_eq!(c.tunnels[1].name, "127.0.0.1:5432");
        assert_eq!(client.server_name, "db.test");
        assert_eq!(c.tunnels[1].idle_timeout, defaults::TUNNEL_IDLE_TIMEOUT);
        assert_eq!(
            crate::config::detect_format(yaml).unwrap(),
            crate::config::Format::Candado
        );
    }

    #[test]
    fn tunnel_mistakes_are_each_reported_with_their_key() {
        let yaml = "sites:\n  - names: [a.test]\n    listen: 127.0.0.1:8443\n    proxy:\n      - {path: /admin, to: 127.0.0.1:5000, allow_clients: {cn: [root]}}\ntunnels:\n  - {to: 127.0.0.1:1}\n  - {listen: 127.0.0.1:8443, to: 127.0.0.1:2}\n  - {listen: 127.0.0.1:9000, to: nowhere}\n  - {listen: 127.0.0.1:9001, to: 127.0.0.1:3, tls_client: {}, client_auth: {ca: local}}\n  - {listen: 127.0.0.1:9002, to: 127.0.0.1:4, names: [x.test]}\n  - {listen: 127.0.0.1:9002, to: 127.0.0.1:5, names: [x.test]}\n  - {listen: 127.0.0.1:9003, to: 127.0.0.1:6, client_auth: {ca: missing.pem, mode: sometimes, allow: {}}}\n";
        let m = messages(yaml, Path::new("/nonexistent"));
        let has = |key: &str, text: &str| {
            assert!(
                m.iter().any(|p| p.starts_with(key) && p.contains(text)),
                "no `{key}` … `{text}` in {m:#?}"
            )
        };
        has("tunnels[0].listen", "missing");
        has("tunnels[1].listen", "already used by sites[0]");
        has("tunnels[2].to", "is not HOST:PORT");
        has(
            "tunnels[3].client_auth",
            "a `tls_client` tunnel accepts plain TCP",
        );
        has("tunnels[5].names", "`x.test` is already served");
        has("tunnels[6].client_auth.ca", "file not found");
        has("tunnels[6].client_auth.mode", "unknown mode `sometimes`");
        has("tunnels[6].client_auth.allow", "the allow list is empty");
        has(
            "sites[0].proxy[0].allow_clients",
            "add `client_auth` to the site",
        );
    }

    #[test]
    fn tunnels_sharing_a_port_need_names() {
        let yaml = "tunnels:\n  - {listen: 127.0.0.1:9002, to: 127.0.0.1:4}\n  - {listen: 127.0.0.1:9002, to: 127.0.0.1:5, names: [b.test]}\n";
        let m = messages(yaml, Path::new("."));
        assert!(
            m.iter()
                .any(|p| p.starts_with("tunnels[0].listen") && p.contains("give each `names`")),
            "{m:?}"
        );
        assert!(
            messages("tunnels: []\n", Path::new("."))
                .iter()
                .any(|p| p.contains("no site or tunnel"))
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
