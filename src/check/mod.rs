//! `candado check`: grades any HTTPS server's TLS set-up, like SSL Labs or testssl.sh, from the
//! client side only (no server module is used).
//!
//! `hello` writes ClientHello bytes for every protocol from SSL 3.0 to TLS 1.3, `reply` reads
//! the ServerHello or alert from untrusted bytes, `suites` names and rates cipher suites,
//! `probe` enumerates protocols, suites (in the server's order) and groups with them;
//! `http` makes one real HTTPS request (HSTS, cookies, ALPN) and one http:// request
//! (redirect); `http3` reads its Alt-Svc and makes a real HTTP/3 request; `cert` judges the chain with webpki; `grade` turns it all into a letter;
//! `report` prints it. `danger` holds the one verifier that accepts any certificate: it is
//! only for describing what a server presents, never for trusting it.

mod cert;
mod danger;
mod grade;
mod hello;
mod http;
mod http3;
mod probe;
mod reply;
mod report;
mod suites;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, ServerName};

pub use cert::CertFindings;
/// For `doctor`, which talks to a candado on this machine to judge the app behind it, not the
/// certificate (that is `check`'s job).
pub(crate) use danger::describing_client;
pub use grade::{Cap, Grade, Grading};
pub use hello::Protocol;
pub use http::{ClientCertRequest, Cookie, Hsts, HttpFindings, Redirect};
pub use http3::Http3Findings;
pub use probe::{GroupFinding, Probes, ProtocolFinding};
pub use reply::{Parsed, Reply, ServerHello, parse_certificates, parse_server_reply};
pub use report::{Report, render};
pub use suites::{Flaw, Strength, Suite};

/// Why a check could not be made at all (findings about the server are not errors).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot resolve {host}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} has no address")]
    NoAddress { host: String },
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} did not accept a connection in time")]
    ConnectTimeout { addr: SocketAddr },
    #[error("{addr}: the probes took longer than {}s in all", .limit.as_secs())]
    Deadline { addr: SocketAddr, limit: Duration },
    #[error("cannot use {path} as CA file: {reason}")]
    Ca { path: PathBuf, reason: String },
}

/// The whole scan may take this many per-answer timeouts (a slow server answering every probe
/// just in time would otherwise take hours).
const SCAN_DEADLINE_FACTOR: u32 = 60;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra trusted roots (PEM), besides the system's.
    pub ca: Option<PathBuf>,
    /// The plain-HTTP port whose redirect is checked [80].
    pub http_port: u16,
    /// Connect here instead of resolving the host (the host is still sent as SNI and Host).
    pub connect: Option<IpAddr>,
    /// Wait for each answer at most this long.
    pub timeout: Duration,
    /// A client certificate for servers that ask for one (mutual TLS).
    pub client_identity: Option<Arc<rustls::sign::CertifiedKey>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ca: None,
            http_port: 80,
            connect: None,
            timeout: Duration::from_secs(5),
            client_identity: None,
        }
    }
}

/// Checks `host:port`: every probe, the certificate, HTTP, and the grade.
pub async fn run(host: &str, port: u16, opts: &Options) -> Result<Report, CheckError> {
    let roots = cert::Roots::load(opts.ca.as_deref())?;
    let addr = match opts.connect {
        Some(ip) => SocketAddr::new(ip, port),
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| CheckError::Resolve {
                host: host.to_owned(),
                source,
            })?
            .next()
            .ok_or_else(|| CheckError::NoAddress {
                host: host.to_owned(),
            })?,
    };
    // SNI carries names only (RFC 6066 §3).
    let server_name = host.parse::<IpAddr>().is_err().then(|| host.to_owned());
    let prober = probe::Prober {
        addr,
        server_name,
        timeout: opts.timeout,
    };
    // Each answer is bounded by `timeout` and the number of probes by the suite registry;
    // this bounds the whole scan too, whatever a slow server does.
    let limit = opts.timeout * SCAN_DEADLINE_FACTOR;
    let probes = tokio::time::timeout(limit, prober.scan())
        .await
        .map_err(|_| CheckError::Deadline { addr, limit })??;
    let identity = opts.client_identity.clone();
    let mut fetched = http::fetch(addr, host, port, opts.http_port, opts.timeout, identity).await;
    if fetched.chain.is_empty()
        && let Ok(chain) = prober.legacy_chain(&probes.protocols).await
    {
        fetched.chain = chain.into_iter().map(CertificateDer::from).collect();
    }
    let (certificate, certificate_error) = match fetched.chain.is_empty() {
        true => (
            None,
            Some(
                fetched
                    .findings
                    .error
                    .clone()
                    .unwrap_or_else(|| "the server sent no certificate".into()),
            ),
        ),
        false => match cert::assess(&fetched.chain, host, &roots) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(e)),
        },
    };
    let grading = grade::grade(&probes, certificate.as_ref(), &fetched.findings);
    Ok(Report {
        host: host.to_owned(),
        port,
        address: addr,
        grade: grading.grade,
        caps: grading.caps,
        fixes: grading.fixes,
        hsts_preload_ready: fetched.findings.preload_ready(),
        protocols: probes.protocols,
        groups: probes.groups,
        compression: probes.compression,
        certificate,
        certificate_error,
        http: fetched.findings,
    })
}

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
            .map_err(|e| {
                format!(
                    "TLS handshake with {host}:{port} failed: {}",
                    cert::io_in_words(&e)
                )
            })?;
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
