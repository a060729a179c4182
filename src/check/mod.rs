//! Looking at other servers' TLS set-ups (client side only; no server module is used).
//! `danger` holds the one verifier that accepts any certificate: it is only for describing
//! what a server presents, never for trusting it.

mod danger;

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};

/// The certificate chain a server presents for `host` (SNI) on `port`, unverified.
pub async fn fetch_chain(
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let config = danger::describing_client(crate::tls::provider())?;
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a host name or IP address"))?;
    let connect = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port} failed: {e}"))?;
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        Ok(chain.into_iter().map(CertificateDer::into_owned).collect())
    };
    tokio::time::timeout(timeout, connect).await.map_err(|_| {
        format!(
            "{host}:{port} did not complete a handshake in {}s",
            timeout.as_secs()
        )
    })?
}
