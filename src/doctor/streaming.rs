//! Check 6: a WebSocket upgrade and a Server-Sent Events stream through candado. The upgrade
//! must be accepted (101); events must arrive one by one as the app sends them, not all
//! together when the stream ends (buffering middleware, compression, or an `X-Accel-Buffering`
//! habit that only nginx reads).

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};

use super::framework::{Fix, Framework};
use super::probe::{Client, Via};
use super::report::{Check, Finding};
use super::{Seen, chain, get};

/// Open WebUI's Socket.IO endpoint, the one its chat needs.
const OPEN_WEBUI_WS: &str = "/ws/socket.io/?EIO=4&transport=websocket";
/// Events that all arrive within this of each other, late, came in one piece.
const TOGETHER: Duration = Duration::from_millis(50);
const LATE: Duration = Duration::from_millis(250);

pub(crate) async fn check(client: &Client, seen: &Seen) -> Vec<Finding> {
    let t = &seen.target;
    let ws =
        t.ws.clone()
            .or_else(|| (seen.framework == Framework::OpenWebUi).then(|| OPEN_WEBUI_WS.to_owned()));
    let mut findings = Vec::new();
    if let Some(path) = ws {
        findings.push(websocket(client, seen, &path).await);
    }
    if let Some(path) = &t.sse {
        findings.push(events(client, seen, path).await);
    }
    if findings.is_empty() {
        findings.push(Finding::skipped(
            Check::Streaming,
            "no WebSocket or event-stream path known: give --ws PATH and/or --sse PATH",
        ));
    }
    findings
}

fn via(seen: &Seen) -> Via {
    Via::Candado {
        addr: seen.target.candado,
        name: seen.target.name.clone(),
    }
}

async fn websocket(client: &Client, seen: &Seen, path: &str) -> Finding {
    let mut req = get(path, &seen.target.authority());
    let h = req.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    // Any 16 bytes, base64: the server only hashes it (RFC 6455 §4.1).
    h.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_static("Y2FuZGFkby1kb2N0b3IhIQ=="),
    );
    if let Ok(v) = HeaderValue::from_str(&seen.target.origin()) {
        h.insert(header::ORIGIN, v);
    }
    match client.head(&via(seen), req).await {
        Ok(res) if res.status() == StatusCode::SWITCHING_PROTOCOLS => Finding::ok(
            Check::Streaming,
            format!("the WebSocket upgrade on {path} is accepted through candado (101)"),
        ),
        Ok(res) => Finding::problem(
            Check::Streaming,
            format!(
                "the WebSocket upgrade on {path} through candado gets {} instead of 101",
                res.status().as_u16()
            ),
            "the app refuses the upgrade: a missing WebSocket library (uvicorn without `websockets`), a check of the Origin against http://, or a path that is not a WebSocket",
            refused_upgrade_fix(seen),
        ),
        Err(e) => Finding::problem(
            Check::Streaming,
            format!("the WebSocket upgrade on {path}: {}", chain(&e)),
            "the upgrade did not complete through candado",
            Fix {
                framework: "any",
                place: "the app",
                lines: vec![format!("make {path} accept WebSocket upgrades")],
            },
        ),
    }
}

async fn events(client: &Client, seen: &Seen, path: &str) -> Finding {
    let mut req = get(path, &seen.target.authority());
    req.headers_mut().insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    let (head, times) = match client.events(&via(seen), req).await {
        Ok(r) => r,
        Err(e) => return Finding::skipped(Check::Streaming, format!("GET {path}: {}", chain(&e))),
    };
    let millis: Vec<String> = times
        .iter()
        .map(|t| format!("{} ms", t.as_millis()))
        .collect();
    let buffered = match (times.first(), times.last()) {
        (Some(first), Some(last)) if times.len() > 1 => *last - *first < TOGETHER && *first >= LATE,
        _ => false,
    };
    if times.is_empty() {
        return Finding::problem(
            Check::Streaming,
            format!(
                "GET {path} through candado ({}) delivered no complete event in {} s",
                head.status.as_u16(),
                crate::config::defaults::DOCTOR_SSE_WINDOW.as_secs()
            ),
            "a stream whose events never arrive looks like a hung chat: something holds them back",
            buffering_fix(),
        );
    }
    if !buffered {
        return Finding::ok(
            Check::Streaming,
            format!(
                "events on {path} arrive one by one through candado (at {})",
                millis.join(", ")
            ),
        );
    }
    let encoding = head
        .header(header::CONTENT_ENCODING)
        .map(|e| format!(", Content-Encoding: {e}"))
        .unwrap_or_default();
    Finding::problem(
        Check::Streaming,
        format!(
            "events on {path} arrive all together through candado (at {}{encoding})",
            millis.join(", ")
        ),
        "the app (a middleware that collects the body, or compression) holds the events back and sends them in one piece: users see nothing, then everything; candado streams as it gets, and needs no X-Accel-Buffering header",
        buffering_fix(),
    )
}

fn buffering_fix() -> Fix {
    Fix {
        framework: "any",
        place: "the app's middleware",
        lines: vec![
            "send each event as it is made (a StreamingResponse or generator), with no middleware that reads the whole body, and no compression on text/event-stream".to_owned(),
        ],
    }
}

/// uvicorn answers an upgrade as plain HTTP when it has no WebSocket library (or `--ws none`).
fn refused_upgrade_fix(seen: &Seen) -> Fix {
    match seen.server {
        super::framework::Server::Uvicorn => Fix {
            framework: "uvicorn",
            place: "the command line",
            lines: vec![
                "pip install 'uvicorn[standard]'".to_owned(),
                format!(
                    "uvicorn main:app --host 127.0.0.1 --port {} --ws websockets",
                    seen.target.app.port()
                ),
            ],
        },
        _ => Fix {
            framework: "any",
            place: "the app",
            lines: vec![format!(
                "accept WebSocket upgrades on this path, with the Origin {}",
                seen.target.origin()
            )],
        },
    }
}
