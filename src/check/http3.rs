//! HTTP/3: reads the `Alt-Svc` a server sent on its HTTPS response and, when it advertises
//! `h3` on a port, makes a QUIC handshake there and one real HTTP/3 GET (quinn + h3, the same
//! stack candado serves with). Like `http`, it describes the server without trusting it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use serde::Serialize;

use super::danger;

/// What the HTTP/3 check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Http3Findings {
    /// The `Alt-Svc` header of the HTTPS response, as sent.
    pub alt_svc: Option<String>,
    /// The UDP port it advertises `h3` on, if any (RFC 7838 §3, RFC 9114 §3.1.1).
    pub advertised_port: Option<u16>,
    /// The status of the HTTP/3 `GET /`, when the handshake and the request succeeded.
    pub status: Option<u16>,
    /// Why the HTTP/3 request failed, when it was tried.
    pub error: Option<String>,
}

impl Http3Findings {
    /// A QUIC handshake and a real HTTP/3 request succeeded.
    pub fn works(&self) -> bool {
        self.status.is_some()
    }
}

/// The port of the first `h3` alternative on the same host (`h3=":443"`), if any. Other
/// hosts and drafts (`h3-29`) are not what this server serves itself.
pub(crate) fn h3_port(alt_svc: &str) -> Option<u16> {
    alt_svc.split(',').find_map(|alt| {
        let (proto, rest) = alt.trim().split_once('=')?;
        if proto.trim() != "h3" {
            return None;
        }
        let authority = rest.split(';').next()?.trim().trim_matches('"');
        authority.strip_prefix(':')?.parse().ok()
    })
}

/// Tries HTTP/3 at `addr`'s host on the advertised port, presenting `client_cert` if asked.
pub(crate) async fn probe(
    alt_svc: Option<String>,
    addr: SocketAddr,
    host: &str,
    timeout: Duration,
    client_cert: Arc<dyn ResolvesClientCert>,
) -> Http3Findings {
    let advertised_port = alt_svc.as_deref().and_then(h3_port);
    let mut findings = Http3Findings {
        alt_svc,
        advertised_port,
        ..Default::default()
    };
    let Some(port) = advertised_port else {
        return findings;
    };
    let target = SocketAddr::new(addr.ip(), port);
    match tokio::time::timeout(timeout, get(target, host, client_cert)).await {
        Ok(Ok(status)) => findings.status = Some(status),
        Ok(Err(e)) => findings.error = Some(e),
        Err(_) => {
            findings.error = Some(format!(
                "no QUIC answer on UDP port {port} in {}s (a firewall may drop UDP)",
                timeout.as_secs()
            ))
        }
    }
    findings
}

async fn get(
    addr: SocketAddr,
    host: &str,
    client_cert: Arc<dyn ResolvesClientCert>,
) -> Result<u16, String> {
    let mut tls = danger::describing_client(crate::tls::provider())?;
    tls.client_auth_cert_resolver = client_cert;
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| format!("QUIC needs TLS 1.3 with AES-128-GCM: {e}"))?;
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let endpoint =
        quinn::Endpoint::client(local).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    let config = quinn::ClientConfig::new(Arc::new(quic));
    let result = async {
        let conn = endpoint
            .connect_with(config, addr, host)
            .map_err(|e| format!("cannot start a QUIC connection: {e}"))?
            .await
            .map_err(|e| format!("QUIC handshake failed: {e}"))?;
        let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
            .await
            .map_err(|e| format!("HTTP/3 set-up failed: {e}"))?;
        let drive = tokio::spawn(async move {
            std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        let authority = match addr.port() {
            443 => host.to_owned(),
            p => format!("{host}:{p}"),
        };
        let req = http::Request::get(format!("https://{authority}/"))
            .body(())
            .map_err(|e| e.to_string())?;
        let mut stream = send
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP/3 GET / failed: {e}"))?;
        stream
            .finish()
            .await
            .map_err(|e| format!("HTTP/3 GET / failed: {e}"))?;
        let res = stream
            .recv_response()
            .await
            .map_err(|e| format!("HTTP/3 GET / got no response: {e}"))?;
        drive.abort();
        Ok::<_, String>(res.status().as_u16())
    }
    .await;
    endpoint.close(0u32.into(), b"");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_h3_port_is_read_from_alt_svc_and_other_entries_are_ignored() {
        assert_eq!(h3_port(r#"h3=":443"; ma=86400"#), Some(443));
        assert_eq!(h3_port(r#"h3-29=":8443", h3=":9443"; ma=60"#), Some(9443));
        assert_eq!(h3_port(r#"h2="alt.example:443""#), None);
        assert_eq!(h3_port(r#"h3="other.example:443""#), None);
        assert_eq!(h3_port("clear"), None);
    }
}
