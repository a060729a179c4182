//! Validation of `tunnels:` and of mutual TLS (`client_auth:`, `allow_clients:`), which
//! sites and tunnels share.

use std::path::Path;

use serde_saphyr::Spanned;

use super::parse::{host_of, parse_host_port};
use super::raw::{RawTlsClient, RawTunnel};
use super::tls::{validate_alpn, validate_client_auth};
use super::{
    Problems, Site, Tunnel, TunnelClient, TunnelMode, TunnelServer, cert_source, defaults, line_of,
    parse_duration, parse_listen, parse_site_name,
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
            let versions = [("v2", true), ("off", false)];
            let hint = ("version", "`v2` (or `off`)");
            let proxy_protocol = raw
                .proxy_protocol
                .and_then(|v| p.choose(&v, key("proxy_protocol"), hint, &versions))
                .unwrap_or(false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientCa;
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
}
