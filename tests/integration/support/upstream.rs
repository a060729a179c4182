//! A backend app written with hyper, on 127.0.0.1:0 in its own runtime thread. Its answers
//! show what reached it (method, target, headers, body) so tests can assert byte for byte.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};

type Body = BoxBody<Bytes, Infallible>;

pub struct Upstream {
    pub addr: SocketAddr,
}

impl Upstream {
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Starts the backend; it lives until the test process ends.
pub fn start() -> Upstream {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let addr = tcp.local_addr().unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(req, addr));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
    });
    Upstream {
        addr: rx.recv().unwrap(),
    }
}

fn full(s: impl Into<Bytes>) -> Body {
    Full::new(s.into()).boxed()
}

async fn handle(mut req: Request<Incoming>, me: SocketAddr) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let res = match path.as_str() {
        p if p.ends_with("/cookies") => Response::builder()
            .header("set-cookie", "session=abc; Path=/; HttpOnly")
            .header("set-cookie", "theme=dark; Secure")
            .header("x-app", "kept")
            .body(full("cookies")),
        p if p.ends_with("/redirect") => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", format!("http://{me}/landing?from=%2Fredirect"))
            .body(full("")),
        p if p.ends_with("/slow") => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Response::builder().body(full("late"))
        }
        p if p.ends_with("/complete-body") => {
            // Counts the request bodies that arrived whole (a malformed one must never).
            let whole = req.into_body().collect().await.is_ok();
            if whole {
                COMPLETE_BODIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Response::builder().body(full(if whole { "whole" } else { "cut" }))
        }
        p if p.ends_with("/upload") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Response::builder().body(full(format!("{} {}", body.len(), checksum(&body))))
        }
        p if p.ends_with("/download") => {
            let n: usize = req
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("n="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let chunks = futures_util::stream::iter((0..n).step_by(65536).map(move |start| {
                let len = 65536.min(n - start);
                Ok::<_, Infallible>(Frame::data(Bytes::from(pattern(start, len))))
            }));
            Response::builder().body(BodyExt::boxed(StreamBody::new(chunks)))
        }
        p if p.ends_with("/sse") => {
            let events = futures_util::stream::iter(0..3).then(|i| async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                }
                Ok::<_, Infallible>(Frame::data(Bytes::from(format!("data: {i}\n\n"))))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(BodyExt::boxed(StreamBody::new(events)))
        }
        p if p.ends_with("/forever") => {
            // Streams until the reader goes away; the guard counts how often that happened.
            let guard = DropCounter;
            let ticks = futures_util::stream::unfold(guard, |g| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"tick\n"))),
                    g,
                ))
            });
            Response::builder().body(BodyExt::boxed(StreamBody::new(ticks)))
        }
        p if p.ends_with("/ws") => {
            // Not a WebSocket stack: after 101 it echoes raw bytes, which is all a proxy's
            // tunnel has to carry.
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = upgrade.await {
                    let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(full(""))
        }
        p if p.ends_with("/health") => Response::builder().body(full("ok")),
        _ => echo(req).await,
    };
    let mut res = res.unwrap();
    // Which backend answered, for the balancing tests.
    res.headers_mut().insert("x-upstream", me.port().into());
    Ok(res)
}

/// Describes the request: one line for the method and target, one per header, then the body.
async fn echo(req: Request<Incoming>) -> http::Result<Response<Body>> {
    let mut text = format!(
        "{} {} {:?}\n",
        req.method(),
        req.uri().path_and_query().map_or("", |p| p.as_str()),
        req.version()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    text.push_str(&format!("\n{}", String::from_utf8_lossy(&body)));
    Response::builder().body(full(text))
}

/// How many `/complete-body` requests arrived with their whole body.
pub static COMPLETE_BODIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many `/forever` streams were dropped because their reader went away.
pub static FOREVER_DROPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct DropCounter;

impl Drop for DropCounter {
    fn drop(&mut self) {
        FOREVER_DROPPED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

pub fn pattern(start: usize, len: usize) -> Vec<u8> {
    (start..start + len).map(|i| (i % 253) as u8).collect()
}

pub fn checksum(b: &[u8]) -> u64 {
    b.iter().enumerate().fold(0u64, |acc, (i, &x)| {
        acc.wrapping_mul(31).wrapping_add(x as u64 ^ i as u64)
    })
}
