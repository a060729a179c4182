//! `candado doctor`: what breaks when an app moves behind HTTPS, found by talking to it
//! directly and through candado, and explained with the exact fix for the framework it shows.
//!
//! `probe` makes the requests (a bounded handful, `DOCTOR_MAX_REQUESTS`); `framework` tells
//! the framework and server apart from their answers and holds the fixes; `checks` judges the
//! page, its redirects, cookies and forms; `network` the listening socket and who the app
//! trusts; `streaming` WebSockets and Server-Sent Events; `report` prints it. Nothing here
//! changes the app: it only reads answers (the one POST is the page's own form, sent as a
//! browser would, with nothing but its hidden fields). It is client-side: no server module is
//! used; the CLI starts a temporary candado when none runs.

mod checks;
pub(crate) mod framework;
mod html;
mod network;
mod probe;
mod report;
mod streaming;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, header};
use http_body_util::Full;

use framework::{Framework, Server};
use probe::{Client, Reply, Via};
use report::{AppReport, Check, Finding};
pub(crate) use report::{Report, render};

/// One app behind one public origin.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The app, on this machine.
    pub(crate) app: SocketAddr,
    /// The public host name and HTTPS port.
    pub(crate) name: String,
    pub(crate) port: u16,
    /// Where candado listens for it on this machine.
    pub(crate) candado: SocketAddr,
    /// The public path of the route (`/`, or `/api/` under a prefix) and the path the app
    /// sees for it (`/` when the prefix is stripped).
    pub(crate) public_path: String,
    pub(crate) app_path: String,
    /// A WebSocket path and a Server-Sent Events path to try through candado, if known.
    pub(crate) ws: Option<String>,
    pub(crate) sse: Option<String>,
}

impl Target {
    /// `app.example` on 443, `app.example:8443` otherwise: the Host a browser sends.
    pub(crate) fn authority(&self) -> String {
        let host = match self.name.contains(':') {
            true => format!("[{}]", self.name),
            false => self.name.clone(),
        };
        match self.port {
            443 => host,
            p => format!("{host}:{p}"),
        }
    }

    /// `https://app.example:8443`
    pub(crate) fn origin(&self) -> String {
        format!("https://{}", self.authority())
    }

    fn via_candado(&self) -> Via {
        Via::Candado {
            addr: self.candado,
            name: self.name.clone(),
        }
    }

    fn direct(&self) -> Via {
        Via::Direct {
            app: self.app,
            from: None,
        }
    }
}

/// Everything the checks look at, gathered once.
pub(crate) struct Seen {
    pub(crate) target: Target,
    pub(crate) framework: Framework,
    pub(crate) server: Server,
    /// `/` as candado forwards it (Host, X-Forwarded-*), sent straight to the app: what the
    /// app itself answers, before candado rewrites Location and cookies.
    pub(crate) forwarded: Reply,
    /// `/` through candado: what the browser gets.
    pub(crate) through: Reply,
}

impl Seen {
    pub(crate) fn fix(&self, need: framework::Need) -> framework::Fix {
        let origin = self.target.origin();
        let cx = framework::Context {
            origin: &origin,
            app_port: self.target.app.port(),
        };
        framework::fix_for(need, self.framework, self.server, &cx)
    }
}

/// Checks every target in turn.
pub(crate) async fn run(targets: &[Target]) -> Result<Report, String> {
    let mut apps = Vec::new();
    for t in targets {
        let client = Client::new()?;
        apps.push(examine(&client, t).await);
    }
    Ok(Report::new(apps))
}

async fn examine(client: &Client, t: &Target) -> AppReport {
    let mut report = AppReport {
        app: format!("http://{}", t.app),
        public: format!("{}{}", t.origin(), t.public_path),
        framework: Framework::Unknown,
        server: Server::Unknown,
        requests: 0,
        findings: Vec::new(),
    };
    match gather(client, t, &mut report).await {
        Ok(seen) => {
            let listen = network::listen_address(&seen);
            let public = listen.status == report::Status::Problem;
            let mut findings = Vec::new();
            findings.extend(checks::http_urls(&seen));
            findings.push(checks::redirect_loop(client, &seen).await);
            findings.extend(checks::cookies(&seen));
            findings.push(checks::csrf(client, &seen).await);
            findings.push(network::forwarded_trust(client, &seen, public).await);
            findings.extend(streaming::check(client, &seen).await);
            findings.push(listen);
            findings.extend(checks::mixed_content(&seen));
            report.findings = findings;
        }
        Err(f) => report.findings.push(f),
    }
    report.requests = client.sent();
    report
}

/// The app's identity and the two views of `/` every check shares.
async fn gather(client: &Client, t: &Target, report: &mut AppReport) -> Result<Seen, Finding> {
    let unreachable = |what: &str, e: probe::ProbeError| Finding {
        check: Check::Reach,
        status: report::Status::Problem,
        saw: format!("{what}: {}", chain(&e)),
        why: Some("nothing else can be checked".to_owned()),
        fix: None,
    };
    let app_host = t.app.to_string();
    let plain = client
        .fetch(&t.direct(), get(&t.app_path, &app_host))
        .await
        .map_err(|e| unreachable("the app does not answer", e))?;
    let (framework, server) = detect(client, t, &plain).await;
    report.framework = framework;
    report.server = server;
    let forwarded = client
        .fetch(&t.direct(), as_candado_forwards(t))
        .await
        .map_err(|e| unreachable("the app does not answer", e))?;
    let through = client
        .fetch(&t.via_candado(), get(&t.public_path, &t.authority()))
        .await
        .map_err(|e| unreachable("candado does not answer", e))?;
    Ok(Seen {
        target: t.clone(),
        framework,
        server,
        forwarded,
        through,
    })
}

/// The framework from what the app shows: Server header and cookies of `/`, then a 404 page,
/// then (for an ASGI server) its OpenAPI document, which names FastAPI and Open WebUI.
async fn detect(client: &Client, t: &Target, plain: &Reply) -> (Framework, Server) {
    let (mut framework, server) = framework::guess_from_headers(&plain.headers);
    if let Some(f) = framework::framework_from_body(&plain.body) {
        framework = f;
    }
    let host = t.app.to_string();
    let unsure = framework == Framework::Unknown || server != Server::Werkzeug;
    if unsure
        && let Ok(missing) = client
            .fetch(&t.direct(), get("/candado-doctor-no-such-page", &host))
            .await
        && let Some(f) = framework::framework_from_body(&missing.body)
    {
        framework = f;
    }
    let asgi = matches!(server, Server::Uvicorn | Server::Hypercorn);
    if asgi
        && matches!(framework, Framework::Unknown | Framework::Starlette)
        && let Ok(doc) = client.fetch(&t.direct(), get("/openapi.json", &host)).await
        && doc.status.is_success()
        && doc.body.contains("\"openapi\"")
    {
        framework = match doc.body.contains("\"title\":\"Open WebUI\"") {
            true => Framework::OpenWebUi,
            false => Framework::FastApi,
        };
    }
    (framework, server)
}

/// `GET path` with `Host: host`.
pub(crate) fn get(path: &str, host: &str) -> Request<Full<Bytes>> {
    request(Method::GET, path, host, Bytes::new())
}

pub(crate) fn request(method: Method, path: &str, host: &str, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(host) {
        req.headers_mut().insert(header::HOST, v);
    }
    req.headers_mut().insert(
        header::USER_AGENT,
        HeaderValue::from_static(concat!("candado-doctor/", env!("CARGO_PKG_VERSION"))),
    );
    req
}

/// `GET /` with the headers candado adds (`http::headers::add_forwarding`), as a browser's
/// request reaches the app.
fn as_candado_forwards(t: &Target) -> Request<Full<Bytes>> {
    let authority = t.authority();
    let mut req = get(&t.app_path, &authority);
    let h = req.headers_mut();
    let pairs = [
        ("x-forwarded-for", "127.0.0.1".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
        ("x-forwarded-host", authority.clone()),
        ("x-real-ip", "127.0.0.1".to_owned()),
        (
            "forwarded",
            format!("for=127.0.0.1;host=\"{authority}\";proto=https"),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    req
}

/// An error and its causes, for one line of the report.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}
