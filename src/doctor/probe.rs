//! The few HTTP/1.1 requests `doctor` makes: straight to the app (optionally from another
//! loopback address), or through candado over TLS. One connection per request, every phase
//! under a deadline, bodies read up to a limit, and every request counted against a budget.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};

use crate::config::defaults;

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("cannot connect to {addr}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {addr} from {from}")]
    Bind {
        addr: SocketAddr,
        from: IpAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with candado at {addr} failed")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr} broke off the HTTP exchange")]
    Http {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("{addr} did not answer within {}s", .limit.as_secs())]
    Timeout { addr: SocketAddr, limit: Duration },
    #[error("not sent: doctor sends at most {limit} requests to one app")]
    Budget { limit: usize },
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub(crate) enum Via {
    /// Straight to the app, from `from` (another loopback address) when given.
    Direct {
        app: SocketAddr,
        from: Option<IpAddr>,
    },
    /// Through candado at `addr`, TLS with SNI `name`.
    Candado { addr: SocketAddr, name: String },
}

impl Via {
    fn addr(&self) -> SocketAddr {
        match self {
            Via::Direct { app, .. } => *app,
            Via::Candado { addr, .. } => *addr,
        }
    }
}

/// An answer with its body read (up to `DOCTOR_MAX_BODY_BYTES`, as text).
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Reply {
    pub(crate) fn header(&self, name: http::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The client: a TLS config for candado and the request budget.
pub(crate) struct Client {
    tls: Arc<rustls::ClientConfig>,
    sent: AtomicUsize,
    timeout: Duration,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Client {
    pub(crate) fn new() -> Result<Client, String> {
        let mut tls = crate::check::describing_client(crate::tls::provider())?;
        tls.alpn_protocols = vec![crate::tls::ALPN_HTTP11.to_vec()];
        Ok(Client {
            tls: Arc::new(tls),
            sent: AtomicUsize::new(0),
            timeout: defaults::DOCTOR_REQUEST_TIMEOUT,
        })
    }

    /// How many requests have been sent.
    pub(crate) fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Sends `req` and reads the whole answer.
    pub(crate) async fn fetch(
        &self,
        via: &Via,
        req: Request<Full<Bytes>>,
    ) -> Result<Reply, ProbeError> {
        let addr = via.addr();
        let work = async {
            let res = self.send(via, req).await?;
            let (parts, body) = res.into_parts();
            let body = read_limited(body, addr).await?;
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        self.deadline(addr, work).await
    }

    /// Sends `req` and times each Server-Sent Event (`\n\n`-terminated) as it arrives, until
    /// the stream ends, `DOCTOR_SSE_EVENTS` have come or `DOCTOR_SSE_WINDOW` has passed.
    /// Returns the head and the arrival times, measured from sending the request.
    pub(crate) async fn events(
        &self,
        via: &Via,
        req: Request<Full<Bytes>>,
    ) -> Result<(Reply, Vec<Duration>), ProbeError> {
        let addr = via.addr();
        // From the request, not the head: a middleware that buffers sends the head late too.
        let start = Instant::now();
        let res = self.deadline(addr, self.send(via, req)).await?;
        let (parts, mut body) = res.into_parts();
        let mut times = Vec::new();
        let mut text = String::new();
        let window = tokio::time::sleep(defaults::DOCTOR_SSE_WINDOW);
        tokio::pin!(window);
        while times.len() < defaults::DOCTOR_SSE_EVENTS {
            let frame = tokio::select! {
                f = body.frame() => f,
                _ = &mut window => break,
            };
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|source| ProbeError::Http { addr, source })?;
            if let Some(data) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
                let complete = text.matches("\n\n").count();
                times.resize(complete.max(times.len()), start.elapsed());
            }
        }
        let head = Reply {
            status: parts.status,
            headers: parts.headers,
            body: text,
        };
        Ok((head, times))
    }

    /// Sends `req` and returns the response head (the body unread): for upgrades.
    pub(crate) async fn head(
        &self,
        via: &Via,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ProbeError> {
        self.deadline(via.addr(), self.send(via, req)).await
    }

    async fn deadline<T>(
        &self,
        addr: SocketAddr,
        work: impl Future<Output = Result<T, ProbeError>>,
    ) -> Result<T, ProbeError> {
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| ProbeError::Timeout {
                addr,
                limit: self.timeout,
            })?
    }

    async fn send(
        &self,
        via: &Via,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, ProbeError> {
        let limit = defaults::DOCTOR_MAX_REQUESTS;
        if self.sent.fetch_add(1, Ordering::Relaxed) >= limit {
            self.sent.fetch_sub(1, Ordering::Relaxed);
            return Err(ProbeError::Budget { limit });
        }
        let addr = via.addr();
        let io = self.connect(via).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|source| ProbeError::Http { addr, source })?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender
            .send_request(req)
            .await
            .map_err(|source| ProbeError::Http { addr, source })
    }

    async fn connect(&self, via: &Via) -> Result<Box<dyn Io>, ProbeError> {
        match via {
            Via::Direct { app, from: None } => TcpStream::connect(app)
                .await
                .map(|s| Box::new(s) as Box<dyn Io>)
                .map_err(|source| ProbeError::Connect { addr: *app, source }),
            Via::Direct {
                app,
                from: Some(from),
            } => {
                let bind = |source| ProbeError::Bind {
                    addr: *app,
                    from: *from,
                    source,
                };
                let socket = match app {
                    SocketAddr::V4(_) => TcpSocket::new_v4(),
                    SocketAddr::V6(_) => TcpSocket::new_v6(),
                }
                .map_err(bind)?;
                socket.bind(SocketAddr::new(*from, 0)).map_err(bind)?;
                let stream = socket.connect(*app).await.map_err(bind)?;
                Ok(Box::new(stream))
            }
            Via::Candado { addr, name } => {
                let tcp = TcpStream::connect(addr)
                    .await
                    .map_err(|source| ProbeError::Connect {
                        addr: *addr,
                        source,
                    })?;
                let server_name = ServerName::try_from(name.clone())
                    .unwrap_or_else(|_| ServerName::from(addr.ip()));
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(server_name, tcp)
                    .await
                    .map_err(|source| ProbeError::Tls {
                        addr: *addr,
                        source,
                    })?;
                Ok(Box::new(tls))
            }
        }
    }
}

/// The body as text, cut at `DOCTOR_MAX_BODY_BYTES` (enough to find URLs and forms).
async fn read_limited(mut body: Incoming, addr: SocketAddr) -> Result<String, ProbeError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| ProbeError::Http { addr, source })?;
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
            if bytes.len() >= defaults::DOCTOR_MAX_BODY_BYTES {
                bytes.truncate(defaults::DOCTOR_MAX_BODY_BYTES);
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
