//! The admin listener: plain HTTP/1.1, read-only. `GET /metrics` (Prometheus text), `GET
//! /status` (HTML) and `GET /status.json`. It changes nothing and shows no secret: no keys,
//! no password hashes, no EAB keys, only names, addresses, dates and counts.
//!
//! On loopback by default; a client from anywhere else is refused unless `allow_remote` is
//! set, and then every request needs the bearer token.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{Admin, defaults};
use crate::http::{Body, error, full};

/// Binds the admin listener and serves it until `shutdown`; returns the bound address. With
/// `tls` (the config's `client_auth`), it speaks HTTPS and verifies client certificates.
pub(crate) async fn start(
    admin: &Admin,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> Result<SocketAddr> {
    let tcp = TcpListener::bind(admin.listen).await.with_context(|| {
        format!(
            "cannot listen on {} for the admin listener (admin: in the config, or --admin)",
            admin.listen
        )
    })?;
    let addr = tcp.local_addr().unwrap_or(admin.listen);
    let rules = Arc::new(admin.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(accept_loop(tcp, rules, tls, shutdown));
    tracing::info!(kind = %"admin", addr = %addr, "listening");
    tracing::info!("metrics on {scheme}://{addr}/metrics, status on {scheme}://{addr}/status");
    Ok(addr)
}

async fn accept_loop(
    tcp: TcpListener,
    rules: Arc<Admin>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(defaults::MAX_ADMIN_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            r = tcp.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let (rules, tls) = (rules.clone(), tls.clone());
        tokio::spawn(async move {
            let served = async {
                match tls {
                    None => serve(stream, peer, rules).await,
                    Some(tls) => {
                        match tokio::time::timeout(defaults::ADMIN_TIMEOUT, tls.accept(stream))
                            .await
                        {
                            Ok(Ok(stream)) => serve(stream, peer, rules).await,
                            Ok(Err(e)) => {
                                let refusal = crate::tls::client_auth::refusal_reason(&e);
                                crate::observe::metrics().handshake_failed(
                                    &e,
                                    refusal.as_deref(),
                                    "admin",
                                );
                                tracing::warn!(client = %peer.ip(), "admin listener: TLS handshake refused: {e}");
                            }
                            Err(_) => {
                                tracing::debug!(client = %peer.ip(), "admin listener: TLS handshake timed out")
                            }
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(defaults::ADMIN_TIMEOUT * 6, served).await;
            drop(permit);
        });
    }
}

async fn serve<S>(stream: S, peer: SocketAddr, rules: Arc<Admin>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| {
        let res = answer(&req, peer, &rules);
        std::future::ready(Ok::<_, Infallible>(res))
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(defaults::ADMIN_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc);
    let _ = conn.await;
}

/// Who may ask, then what they asked for.
fn answer(req: &Request<Incoming>, peer: SocketAddr, rules: &Admin) -> Response<Body> {
    if let Some(refused) = refusal(req.headers(), peer, rules) {
        return refused;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = error::page(
            StatusCode::METHOD_NOT_ALLOWED,
            "The admin listener only answers GET: it changes nothing.",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    match req.uri().path() {
        "/metrics" => match crate::observe::encode::exposition() {
            Ok(text) => reply(text, crate::observe::encode::CONTENT_TYPE),
            Err(_) => error::page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The metrics could not be encoded.",
            ),
        },
        "/status.json" => match serde_json::to_string_pretty(&crate::observe::status::snapshot()) {
            Ok(json) => reply(json, "application/json"),
            Err(_) => error::page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The status could not be encoded.",
            ),
        },
        "/status" | "/" => reply(
            crate::observe::status::html(&crate::observe::status::snapshot()),
            "text/html; charset=utf-8",
        ),
        _ => error::page(
            StatusCode::NOT_FOUND,
            "The admin listener serves /metrics, /status and /status.json.",
        ),
    }
}

/// A client from off loopback without `allow_remote`: 403; a missing or wrong token: 401.
fn refusal(headers: &http::HeaderMap, peer: SocketAddr, rules: &Admin) -> Option<Response<Body>> {
    if !rules.allow_remote && !peer.ip().to_canonical().is_loopback() {
        tracing::warn!(client = %peer.ip(), "admin listener: refused a client that is not on loopback (admin.allow_remote is off)");
        return Some(error::page(
            StatusCode::FORBIDDEN,
            "The admin listener answers loopback clients only.",
        ));
    }
    let token = rules.token.as_deref()?;
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(sent.as_bytes().ct_eq(token.as_bytes())) {
        return None;
    }
    tracing::warn!(client = %peer.ip(), "admin listener: refused a request without the right token");
    let mut res = error::page(
        StatusCode::UNAUTHORIZED,
        "The admin listener needs its token: Authorization: Bearer TOKEN.",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"candado admin\""),
    );
    Some(res)
}

fn reply(text: String, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(full(Bytes::from(text)));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow_remote: bool, token: Option<&str>) -> Admin {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            allow_remote,
            token: token.map(str::to_owned),
            client_auth: None,
            certificate: crate::config::CertSource::Local,
        }
    }

    fn status(headers: &http::HeaderMap, peer: &str, rules: &Admin) -> Option<u16> {
        let peer: SocketAddr = peer.parse().unwrap();
        refusal(headers, peer, rules).map(|r| r.status().as_u16())
    }

    #[test]
    fn a_client_off_loopback_is_refused_unless_remote_access_is_allowed() {
        let none = http::HeaderMap::new();
        assert_eq!(status(&none, "127.0.0.1:5000", &rules(false, None)), None);
        assert_eq!(status(&none, "[::1]:5000", &rules(false, None)), None);
        assert_eq!(
            status(&none, "[::ffff:127.0.0.1]:5000", &rules(false, None)),
            None
        );
        assert_eq!(
            status(&none, "192.0.2.7:5000", &rules(false, None)),
            Some(403)
        );
        assert_eq!(
            status(&none, "[2001:db8::1]:5000", &rules(false, None)),
            Some(403)
        );
    }

    #[test]
    fn with_a_token_every_client_must_send_it() {
        let token = "0123456789abcdef0123456789abcdef";
        let remote = rules(true, Some(token));
        let mut h = http::HeaderMap::new();
        assert_eq!(status(&h, "192.0.2.7:5000", &remote), Some(401));
        assert_eq!(status(&h, "127.0.0.1:5000", &remote), Some(401));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert_eq!(status(&h, "192.0.2.7:5000", &remote), Some(401));
        let good = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        h.insert(header::AUTHORIZATION, good);
        assert_eq!(status(&h, "192.0.2.7:5000", &remote), None);
    }
}
