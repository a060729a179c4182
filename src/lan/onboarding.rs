//! The onboarding page: the only plain-HTTP page candado serves. On the LAN addresses it
//! hands over the LAN CA certificate (`.crt` for Android, `.mobileconfig` for iOS and iPadOS,
//! `.cer` for Windows and macOS) with per-OS steps and the fingerprint to compare, then links
//! to the HTTPS site. It never serves app content, accepts only GET and HEAD, and limits each
//! client's requests and everyone's connections.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::defaults;

pub(crate) const CRT: &str = "/candado-lan-ca.crt";
pub(crate) const CER: &str = "/candado-lan-ca.cer";
pub(crate) const MOBILECONFIG: &str = "/candado-lan-ca.mobileconfig";

/// What the page hands out; shared by every onboarding listener.
pub(crate) struct Onboarding {
    pub host: String,
    pub https_port: u16,
    pub ca_pem: Bytes,
    pub ca_der: Bytes,
    pub mobileconfig: Bytes,
    pub fingerprint: String,
    limiter: Limiter,
    connections: Arc<Semaphore>,
}

impl Onboarding {
    pub(crate) fn new(
        host: &str,
        https_port: u16,
        ca: &super::ca::LanCa,
    ) -> anyhow::Result<Onboarding> {
        let fingerprint = ca.fingerprint();
        let mobileconfig = super::mobileconfig::profile(ca.cert_der(), host, &fingerprint)?;
        Ok(Onboarding {
            host: host.to_owned(),
            https_port,
            ca_pem: Bytes::copy_from_slice(ca.cert_pem().as_bytes()),
            ca_der: Bytes::copy_from_slice(ca.cert_der()),
            mobileconfig: mobileconfig.into(),
            fingerprint,
            limiter: Limiter::default(),
            connections: Arc::new(Semaphore::new(defaults::LAN_ONBOARDING_MAX_CONNECTIONS)),
        })
    }
}

/// Serves the page on `listener` until `stop`.
pub(crate) async fn serve(listener: TcpListener, page: Arc<Onboarding>, stop: CancellationToken) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        // Over the limit, the connection is closed at once rather than queued.
        let Ok(permit) = page.connections.clone().try_acquire_owned() else {
            continue;
        };
        let local = tcp.local_addr().ok();
        let page = page.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let page = page.clone();
                async move { Ok::<_, Infallible>(page.respond(&req, peer, local)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(defaults::HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::select! {
                _ = tokio::time::timeout(defaults::LAN_ONBOARDING_CONNECTION_TIMEOUT, conn) => {}
                _ = stop.cancelled() => {}
            }
            drop(permit);
        });
    }
}

impl Onboarding {
    fn respond(
        &self,
        req: &Request<Incoming>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) -> Response<Full<Bytes>> {
        if !self.limiter.allow(peer.ip(), Instant::now()) {
            let mut r = plain(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: wait a minute.",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            return r;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only GET and HEAD are served here.",
            );
            r.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let (body, kind, file) = match req.uri().path() {
            "/" => (
                Bytes::from(self.page(local.map(|a| a.ip()))),
                "text/html; charset=utf-8",
                None,
            ),
            CRT => (
                self.ca_pem.clone(),
                "application/x-x509-ca-cert",
                Some("candado-lan-ca.crt"),
            ),
            CER => (
                self.ca_der.clone(),
                "application/pkix-cert",
                Some("candado-lan-ca.cer"),
            ),
            MOBILECONFIG => (
                self.mobileconfig.clone(),
                "application/x-apple-aspen-config",
                Some("candado-lan-ca.mobileconfig"),
            ),
            _ => {
                return plain(
                    StatusCode::NOT_FOUND,
                    "Only the LAN CA and its instructions are served here.",
                );
            }
        };
        let body = match req.method() == Method::HEAD {
            true => Bytes::new(),
            false => body,
        };
        let mut r = with_headers(Response::new(Full::new(body)), kind);
        if let Some(name) = file
            && let Ok(v) =
                header::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        r
    }

    /// The instructions, linking to the HTTPS site on the address the visitor used (never a
    /// name taken from the request).
    fn page(&self, local: Option<IpAddr>) -> String {
        let https_ip = local.map(|ip| super::url("https", ip, self.https_port));
        let https_name = format!("https://{}.local:{}/", self.host, self.https_port);
        let open = match &https_ip {
            Some(u) => format!(
                r#"<a href="{u}">{u}</a> (or <a href="{https_name}">{https_name}</a> where mDNS works)"#
            ),
            None => format!(r#"<a href="{https_name}">{https_name}</a>"#),
        };
        format!(
            include_str!("onboarding.html"),
            host = self.host,
            fingerprint = self.fingerprint,
            crt = CRT,
            cer = CER,
            mobileconfig = MOBILECONFIG,
            open = open,
        )
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{text}\n"))));
    *r.status_mut() = status;
    with_headers(r, "text/plain; charset=utf-8")
}

fn with_headers(mut r: Response<Full<Bytes>>, kind: &'static str) -> Response<Full<Bytes>> {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    r
}

/// Requests per client per minute (a fixed window), so the page cannot be used to flood.
#[derive(Default)]
struct Limiter {
    seen: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    fn allow(&self, ip: IpAddr, now: Instant) -> bool {
        const WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
        let mut seen = crate::locks::lock(&self.seen);
        // Bounded memory: forget finished windows once many clients were seen.
        if seen.len() > 4096 {
            seen.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = seen.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= defaults::LAN_ONBOARDING_REQUESTS_PER_MINUTE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_over_its_requests_per_minute_is_refused_until_the_window_ends() {
        let l = Limiter::default();
        let (ip, other) = (
            "192.168.1.5".parse().unwrap(),
            "192.168.1.6".parse().unwrap(),
        );
        let t0 = Instant::now();
        for _ in 0..defaults::LAN_ONBOARDING_REQUESTS_PER_MINUTE {
            assert!(l.allow(ip, t0));
        }
        assert!(!l.allow(ip, t0));
        assert!(l.allow(other, t0), "other clients are not held up");
        assert!(l.allow(ip, t0 + std::time::Duration::from_secs(61)));
    }
}
