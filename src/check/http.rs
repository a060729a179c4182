//! One real HTTPS request (rustls, HTTP/2 when ALPN picks it) to read what a browser would
//! see on the first response: HSTS, cookie flags, ALPN; and one plain http:// request to see
//! whether it redirects to https://. The TLS connection uses `danger::describing_client` so
//! that an untrusted server can still be described; trust is judged separately (`cert`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::{HOST, LOCATION, SET_COOKIE, STRICT_TRANSPORT_SECURITY};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use tokio::net::TcpStream;
use x509_parser::prelude::FromDer;

use super::danger;

/// Six months, SSL Labs' minimum HSTS max-age for A+.
pub(crate) const HSTS_MIN_MAX_AGE: u64 = 15_552_000;
/// One year, the HSTS preload list's minimum (hstspreload.org).
pub(crate) const HSTS_PRELOAD_MAX_AGE: u64 = 31_536_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cookie {
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Redirect {
    ToHttps {
        status: u16,
        location: String,
    },
    NotToHttps {
        status: u16,
        location: Option<String>,
    },
    /// Nothing listens on the plain HTTP port.
    NoListener,
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpFindings {
    /// The protocol rustls negotiated for this request, and ALPN.
    pub tls_version: Option<String>,
    pub alpn: Option<String>,
    pub status: Option<u16>,
    pub hsts: Option<Hsts>,
    pub cookies: Vec<Cookie>,
    pub http_port: u16,
    pub redirect: Option<Redirect>,
    /// Why the HTTPS request could not be made, if it could not.
    pub error: Option<String>,
    /// Whether the server asked for a client certificate (mutual TLS), and what came of it.
    pub client_certificate: Option<ClientCertRequest>,
    /// HTTP/3: the Alt-Svc this response carried, and whether a real HTTP/3 request worked.
    pub http3: super::http3::Http3Findings,
}

/// A server's CertificateRequest, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientCertRequest {
    /// `Some(true)`: the server refused to go on without one; `Some(false)`: it served the
    /// request without one; `None`: one was presented (`--cert`), so this is not known.
    pub required: Option<bool>,
    /// The CAs the server said it accepts (RFC 8446 §4.2.4), as subject names.
    pub hinted_cas: Vec<String>,
    /// The subject of the certificate presented, if one was.
    pub presented: Option<String>,
}

impl HttpFindings {
    /// HSTS long enough for the preload list, with includeSubDomains and preload, and
    /// http:// redirecting (hstspreload.org's submission rules).
    pub fn preload_ready(&self) -> bool {
        matches!(&self.hsts, Some(h) if h.max_age >= HSTS_PRELOAD_MAX_AGE && h.include_subdomains && h.preload)
            && matches!(self.redirect, Some(Redirect::ToHttps { .. }))
    }
}

/// What the HTTPS request learned, plus the certificate chain the handshake carried.
pub(crate) struct Fetched {
    pub(crate) findings: HttpFindings,
    pub(crate) chain: Vec<CertificateDer<'static>>,
}

/// The HTTPS request to `addr` for `host` (presenting `identity` if the server asks for a
/// client certificate), then the plain request to `http_port`.
pub(crate) async fn fetch(
    addr: SocketAddr,
    host: &str,
    port: u16,
    http_port: u16,
    timeout: Duration,
    identity: Option<Arc<CertifiedKey>>,
) -> Fetched {
    let mut findings = HttpFindings {
        http_port,
        ..Default::default()
    };
    let authority = authority(host, port, 443);
    let mut chain = Vec::new();
    let asked = Arc::new(AskedForCertificate {
        hints: Mutex::new(None),
        identity,
    });
    let https = tokio::time::timeout(
        timeout,
        https_get(
            addr,
            host,
            &authority,
            &mut findings,
            &mut chain,
            asked.clone(),
        ),
    );
    match https.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => findings.error = Some(e),
        Err(_) => findings.error = Some(format!("no HTTPS response in {}s", timeout.as_secs())),
    }
    findings.client_certificate = asked.request(findings.error.is_some());
    if findings.error.is_none() {
        let alt_svc = findings.http3.alt_svc.take();
        findings.http3 = super::http3::probe(alt_svc, addr, host, timeout, asked.clone()).await;
    }
    let plain = SocketAddr::new(addr.ip(), http_port);
    let host_header = authority_for_http(host, http_port);
    findings.redirect = Some(
        tokio::time::timeout(timeout, plain_get(plain, &host_header))
            .await
            .unwrap_or_else(|_| Redirect::Failed {
                reason: format!("no answer on port {http_port} in {}s", timeout.as_secs()),
            }),
    );
    Fetched { findings, chain }
}

fn authority(host: &str, port: u16, default: u16) -> String {
    let host = match host.contains(':') {
        true => format!("[{host}]"),
        false => host.to_owned(),
    };
    match port == default {
        true => host,
        false => format!("{host}:{port}"),
    }
}

fn authority_for_http(host: &str, port: u16) -> String {
    authority(host, port, 80)
}

async fn https_get(
    addr: SocketAddr,
    host: &str,
    authority: &str,
    findings: &mut HttpFindings,
    chain: &mut Vec<CertificateDer<'static>>,
    asked: Arc<AskedForCertificate>,
) -> Result<(), String> {
    let mut config = danger::describing_client(crate::tls::provider())?;
    config.client_auth_cert_resolver = asked;
    config.alpn_protocols = vec![
        crate::tls::ALPN_H2.to_vec(),
        crate::tls::ALPN_HTTP11.to_vec(),
    ];
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is not a host name or IP address"))?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS 1.2/1.3 handshake failed: {e}"))?;
    let conn = tls.get_ref().1;
    *chain = conn
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    findings.tls_version = conn
        .protocol_version()
        .map(|v| format!("{v:?}").replace("TLSv1_", "TLS 1."));
    findings.alpn = conn
        .alpn_protocol()
        .map(|a| String::from_utf8_lossy(a).into_owned());
    let h2 = conn.alpn_protocol() == Some(crate::tls::ALPN_H2);
    let io = TokioIo::new(tls);
    let response = match h2 {
        true => {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("HTTP/2 connection failed: {e}"))?;
            tokio::spawn(conn);
            let req = http::Request::get(format!("https://{authority}/"))
                .body(Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            send.send_request(req).await
        }
        false => {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("HTTP/1.1 connection failed: {e}"))?;
            tokio::spawn(conn);
            let req = http::Request::get("/")
                .header(HOST, authority)
                .body(Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            send.send_request(req).await
        }
    }
    .map_err(|e| format!("GET / failed: {e}"))?;
    findings.status = Some(response.status().as_u16());
    findings.http3.alt_svc = response
        .headers()
        .get(http::header::ALT_SVC)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    findings.hsts = response
        .headers()
        .get(STRICT_TRANSPORT_SECURITY)
        .and_then(|v| v.to_str().ok())
        .map(parse_hsts);
    findings.cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(parse_cookie)
        .collect();
    Ok(())
}

/// Notes a server's request for a client certificate (and the CAs it names), and answers with
/// the `--cert` one, if given.
#[derive(Debug)]
struct AskedForCertificate {
    hints: Mutex<Option<Vec<String>>>,
    identity: Option<Arc<CertifiedKey>>,
}

impl AskedForCertificate {
    /// What the server's request came to; `failed`: whether the HTTPS request failed.
    fn request(&self, failed: bool) -> Option<ClientCertRequest> {
        let hinted_cas = self.hints.lock().ok()?.clone()?;
        let presented = self.identity.as_ref().and_then(|k| {
            let leaf = k.cert.first()?;
            let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
            Some(cert.subject().to_string())
        });
        Some(ClientCertRequest {
            required: presented.is_none().then_some(failed),
            hinted_cas,
            presented,
        })
    }
}

impl ResolvesClientCert for AskedForCertificate {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if let Ok(mut hints) = self.hints.lock() {
            *hints = Some(root_hint_subjects.iter().map(|dn| name_of(dn)).collect());
        }
        let key = self.identity.as_ref()?;
        key.key.choose_scheme(schemes).map(|_| key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A distinguished name from a CertificateRequest (DER, RFC 5280 A.1), as text.
fn name_of(dn: &[u8]) -> String {
    x509_parser::x509::X509Name::from_der(dn)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|_| "(an unreadable name)".into())
}

async fn plain_get(addr: SocketAddr, host: &str) -> Redirect {
    let tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Redirect::NoListener,
        Err(e) => {
            return Redirect::Failed {
                reason: format!("cannot connect to {addr}: {e}"),
            };
        }
    };
    let result = async {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let req = http::Request::get("/")
            .header(HOST, host)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap_or_default();
        send.send_request(req).await
    };
    match result.await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match location {
                Some(l) if resp.status().is_redirection() && l.starts_with("https://") => {
                    Redirect::ToHttps {
                        status,
                        location: l,
                    }
                }
                location => Redirect::NotToHttps { status, location },
            }
        }
        Err(e) => Redirect::Failed {
            reason: format!("plain HTTP request to {addr} failed: {e}"),
        },
    }
}

/// `Strict-Transport-Security` (RFC 6797 §6.1): directives are case-insensitive, separated
/// by `;`, max-age may be quoted. A missing or unreadable max-age counts as 0.
pub(crate) fn parse_hsts(value: &str) -> Hsts {
    let mut hsts = Hsts {
        max_age: 0,
        include_subdomains: false,
        preload: false,
    };
    for directive in value.split(';').map(str::trim) {
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "max-age" => hsts.max_age = arg.trim().trim_matches('"').parse().unwrap_or(0),
            "includesubdomains" => hsts.include_subdomains = true,
            "preload" => hsts.preload = true,
            _ => {}
        }
    }
    hsts
}

/// The flags of one `Set-Cookie` (RFC 6265 §5.2); attribute names are case-insensitive.
pub(crate) fn parse_cookie(value: &str) -> Cookie {
    let mut parts = value.split(';');
    let name = parts
        .next()
        .and_then(|p| p.split_once('='))
        .map(|(n, _)| n.trim().to_owned())
        .unwrap_or_default();
    let mut cookie = Cookie {
        name,
        secure: false,
        http_only: false,
        same_site: None,
    };
    for attr in parts {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "secure" => cookie.secure = true,
            "httponly" => cookie.http_only = true,
            "samesite" => cookie.same_site = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_directives_are_read_case_insensitively_with_quoted_max_age() {
        assert_eq!(
            parse_hsts("max-age=\"31536000\"; IncludeSubDomains; preload"),
            Hsts {
                max_age: 31_536_000,
                include_subdomains: true,
                preload: true
            }
        );
        assert_eq!(parse_hsts("includeSubDomains").max_age, 0);
        assert_eq!(parse_hsts("max-age=abc").max_age, 0);
    }

    #[test]
    fn cookie_flags_are_found_whatever_their_case_and_order() {
        let c = parse_cookie("sid=abc; Path=/; HTTPONLY; secure; SameSite=Lax");
        assert_eq!(c.name, "sid");
        assert!(c.secure && c.http_only);
        assert_eq!(c.same_site.as_deref(), Some("Lax"));
        let plain = parse_cookie("theme=dark");
        assert!(!plain.secure && !plain.http_only);
    }

    #[test]
    fn preload_needs_a_year_subdomains_preload_and_a_redirect() {
        let mut f = HttpFindings {
            hsts: Some(parse_hsts("max-age=31536000; includeSubDomains; preload")),
            redirect: Some(Redirect::ToHttps {
                status: 301,
                location: "https://a.test/".into(),
            }),
            ..Default::default()
        };
        assert!(f.preload_ready());
        f.redirect = Some(Redirect::NoListener);
        assert!(!f.preload_ready());
    }
}
