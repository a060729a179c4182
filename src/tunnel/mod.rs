//! Tunnels: TLS for raw TCP services, like stunnel and ghostunnel.
//!
//! Server mode: TLS handshake (the client's SNI picks the tunnel when several share a port,
//! client certificates checked by its verifier) → connect to the upstream → optional PROXY v2
//! header → relay bytes both ways. Client mode: plain TCP in → TLS to the remote, verified
//! (and with a client certificate when configured) → relay.

mod proxy_protocol;
mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{Tunnel, TunnelMode, defaults};
use crate::tls::TlsFront;
pub(crate) use relay::{Ending, Relayed, relay};

/// One tunnel as its connections see it.
pub(crate) struct Endpoint {
    pub name: String,
    /// `HOST:PORT` of the upstream (or of the TLS server, in client mode).
    pub to: String,
    idle_timeout: Duration,
    proxy_protocol: bool,
    /// Client mode: how to speak TLS to `to`.
    originate: Option<(TlsConnector, ServerName<'static>)>,
}

impl Endpoint {
    /// A tunnel that terminates TLS (its `ServerConfig` goes to the listener's front).
    pub(crate) fn terminating(t: &Tunnel) -> Endpoint {
        let proxy_protocol = matches!(&t.mode, TunnelMode::Server(s) if s.proxy_protocol);
        Endpoint {
            name: t.name.clone(),
            to: t.to.clone(),
            idle_timeout: t.idle_timeout,
            proxy_protocol,
            originate: None,
        }
    }

    /// A tunnel that originates TLS with `config` to the server named `server_name`.
    pub(crate) fn originating(
        t: &Tunnel,
        config: rustls::ClientConfig,
        server_name: &str,
    ) -> anyhow::Result<Endpoint> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            anyhow::anyhow!(
                "tunnel {}: `{server_name}` is not a server name to verify",
                t.name
            )
        })?;
        Ok(Endpoint {
            originate: Some((TlsConnector::from(Arc::new(config)), name)),
            ..Endpoint::terminating(t)
        })
    }
}

/// What a tunnel listener serves; replaced whole on reload.
pub(crate) struct TunnelListener {
    /// `None` in client mode: connections arrive in plain TCP.
    front: Option<TlsFront>,
    /// One per profile of the front (one in client mode).
    endpoints: Vec<Endpoint>,
    handshake_timeout: Duration,
    /// A log line per connection, like the access log.
    log_connections: bool,
}

impl TunnelListener {
    /// Tunnels terminating TLS on one port: `tls` picks one of `endpoints` (by its profile).
    pub(crate) fn terminating(
        tls: TlsFront,
        endpoints: Vec<Endpoint>,
        handshake_timeout: Duration,
        log_connections: bool,
    ) -> Self {
        TunnelListener {
            front: Some(tls),
            endpoints,
            handshake_timeout,
            log_connections,
        }
    }

    /// A client-mode tunnel: plain TCP in, TLS out.
    pub(crate) fn originating(
        endpoint: Endpoint,
        handshake_timeout: Duration,
        log_connections: bool,
    ) -> Self {
        TunnelListener {
            front: None,
            endpoints: vec![endpoint],
            handshake_timeout,
            log_connections,
        }
    }
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(tcp: TcpStream, peer: SocketAddr, listener: Arc<TunnelListener>) {
    match (&listener.front, listener.endpoints.first()) {
        (Some(front), _) => terminate(tcp, peer, front, &listener).await,
        (None, Some(endpoint)) => originate(tcp, peer, endpoint, &listener).await,
        (None, None) => {}
    }
}

async fn terminate(tcp: TcpStream, peer: SocketAddr, front: &TlsFront, listener: &TunnelListener) {
    let local = tcp.local_addr().ok();
    let handshake = tokio::time::timeout(listener.handshake_timeout, front.accept(tcp)).await;
    let (tls, agreed) = match handshake {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return log_refusal(listener, peer, &e),
        Err(_) => {
            let timeout = crate::observe::HandshakeFailure::Timeout;
            crate::observe::metrics().handshakes.failed(timeout);
            return tracing::debug!(client = %peer, "TLS handshake timed out");
        }
    };
    let alpn = agreed.alpn.as_deref();
    crate::observe::metrics()
        .handshakes
        .done(agreed.version_name(), alpn, agreed.resumed);
    let Some(endpoint) = listener.endpoints.get(agreed.profile) else {
        return;
    };
    if agreed.is_acme_validation() {
        return;
    }
    let proxy_header = match (endpoint.proxy_protocol, local) {
        (true, Some(local)) => {
            let facts = proxy_protocol::TlsFacts {
                alpn: agreed.alpn.as_deref(),
                sni: agreed.sni.as_deref(),
                version: agreed.version_name(),
                cipher: agreed.cipher.map(|s| format!("{s:?}")),
                client_cert: agreed.client.is_some(),
                client_cn: agreed
                    .client
                    .as_ref()
                    .and_then(|c| c.common_names.first())
                    .map(String::as_str),
            };
            Some(proxy_protocol::header(peer, local, &facts))
        }
        _ => None,
    };
    let certificate = agreed.client.map(|id| id.describe());
    let upstream = match open_upstream(endpoint, proxy_header).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(tunnel = %endpoint.name, upstream = %endpoint.to, client = %peer, "cannot connect to the upstream: {e}; closed the client's TLS connection");
            return close(tls).await;
        }
    };
    let started = Instant::now();
    let done = relay(tls, upstream, endpoint.idle_timeout).await;
    log_closed(listener, endpoint, peer, started, certificate, &done);
}

/// A failed handshake: a refused client certificate is worth a warning with its reason
/// (the client only got an alert); anything else (scanners, resets) only a debug line.
fn log_refusal(listener: &TunnelListener, peer: SocketAddr, e: &crate::tls::front::HandshakeError) {
    let tunnel = e
        .profile
        .and_then(|i| listener.endpoints.get(i))
        .map_or("-", |t| t.name.as_str());
    let refusal = e.refusal();
    crate::observe::metrics().handshake_failed(
        &e.error,
        refusal.as_deref(),
        &format!("tunnel {tunnel}"),
    );
    match refusal {
        Some(reason) => {
            tracing::warn!(%tunnel, client = %peer, "client certificate refused: {reason}")
        }
        None => {
            tracing::debug!(%tunnel, client = %peer, error = %e.error, "TLS handshake failed")
        }
    }
}

/// Connects to the upstream and sends the PROXY header first, when there is one.
async fn open_upstream(
    endpoint: &Endpoint,
    proxy_header: Option<std::io::Result<Vec<u8>>>,
) -> std::io::Result<TcpStream> {
    let mut upstream = connect(&endpoint.to).await?;
    if let Some(header) = proxy_header {
        upstream.write_all(&header?).await?;
    }
    Ok(upstream)
}

async fn originate(
    tcp: TcpStream,
    peer: SocketAddr,
    endpoint: &Endpoint,
    listener: &TunnelListener,
) {
    let Some((connector, server_name)) = &endpoint.originate else {
        return;
    };
    let upstream = match connect(&endpoint.to).await {
        Ok(u) => u,
        Err(e) => {
            return tracing::warn!(tunnel = %endpoint.name, upstream = %endpoint.to, client = %peer, "cannot connect to the upstream: {e}; closed the client's connection");
        }
    };
    let handshake = tokio::time::timeout(
        listener.handshake_timeout,
        connector.connect(server_name.clone(), upstream),
    )
    .await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            return tracing::warn!(tunnel = %endpoint.name, upstream = %endpoint.to, client = %peer, "TLS to the upstream failed: {e}; closed the client's connection");
        }
        Err(_) => {
            return tracing::warn!(tunnel = %endpoint.name, upstream = %endpoint.to, client = %peer, "TLS to the upstream failed: no handshake within {}; closed the client's connection", humantime::format_duration(listener.handshake_timeout));
        }
    };
    let started = Instant::now();
    let done = relay(tcp, tls, endpoint.idle_timeout).await;
    log_closed(listener, endpoint, peer, started, None, &done);
}

/// The protocol's name as OpenSSL (and so HAProxy's PROXY TLVs) write it.
/// Opens the TCP connection to `to`, resolving its name, within the connect timeout.
async fn connect(to: &str) -> std::io::Result<TcpStream> {
    let tcp = tokio::time::timeout(defaults::PROXY_CONNECT_TIMEOUT, TcpStream::connect(to))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "no answer within {}",
                    humantime::format_duration(defaults::PROXY_CONNECT_TIMEOUT)
                ),
            )
        })??;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Ends a TLS connection with close_notify, bounded: a client that stops reading is dropped.
async fn close<S: AsyncRead + AsyncWrite + Unpin>(mut tls: S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), tls.shutdown()).await;
}

fn log_closed(
    listener: &TunnelListener,
    endpoint: &Endpoint,
    peer: SocketAddr,
    started: Instant,
    certificate: Option<String>,
    done: &Relayed,
) {
    let ending = match done.ending {
        Ending::Closed => "closed",
        Ending::Idle => "idle timeout",
        Ending::Failed => "failed",
    };
    if let Some(e) = &done.error {
        tracing::debug!(tunnel = %endpoint.name, client = %peer, error = %e, "tunnel connection failed");
    }
    if listener.log_connections {
        tracing::info!(
            target: "candado::access",
            tunnel = %endpoint.name,
            client = %peer.ip(),
            bytes_in = done.sent,
            bytes_out = done.received,
            duration_ms = started.elapsed().as_millis() as u64,
            ending,
            certificate = certificate.as_deref().unwrap_or("none"),
            "tunnel closed"
        );
    }
}
