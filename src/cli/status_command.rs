//! `candado status [--admin ADDR] [--json]`: the running server's summary from its admin
//! listener (`/status.json`), for a person (colours on a terminal) or a script. The exit code
//! says whether something needs a person: a certificate expiring within 7 days, an upstream
//! out of rotation. Usable from cron or as a container health check.

use std::fmt::Write as _;
use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::defaults;
use crate::observe::status::{CertState, ClusterStatus, Status};

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The admin listener to ask [default: 127.0.0.1:2019].
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// The admin token, when the listener asks for one.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CANDADO_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Print the JSON summary for scripts.
    #[arg(long)]
    json: bool,
}

pub(super) async fn status(args: StatusArgs) -> Result<()> {
    let addr = args.admin.as_deref().unwrap_or(defaults::ADMIN_ADDRESS);
    let listen = crate::config::admin_address(addr)
        .with_context(|| format!("--admin {addr}: not an address (use 127.0.0.1:2019 or :2019)"))?;
    let url = format!("http://{listen}/status.json");
    let body = fetch(&url, args.token.as_deref()).await?;
    let status: Status = serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not answer with candado's status"))?;
    match args.json {
        true => println!("{}", String::from_utf8_lossy(&body).trim_end()),
        false => print!("{}", render(&status, std::io::stdout().is_terminal())),
    }
    let problems = status.problems();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

async fn fetch(url: &str, token: Option<&str>) -> Result<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url);
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req.body(Empty::new()).context("cannot build the request")?;
    let ask = async {
        let res = client.request(req).await?;
        let code = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        anyhow::Ok((code, body))
    };
    let (code, body) = tokio::time::timeout(defaults::ADMIN_TIMEOUT, ask)
        .await
        .map_err(|_| anyhow::anyhow!("{url} did not answer within {}s", defaults::ADMIN_TIMEOUT.as_secs()))?
        .with_context(|| format!("cannot reach candado's admin listener at {url} (is `admin:` set in its config, or --admin given?)"))?;
    match code.as_u16() {
        200 => Ok(body),
        401 => bail!("{url} asks for a token: pass --token or set CANDADO_ADMIN_TOKEN"),
        _ => bail!("{url} answered {code}"),
    }
}

/// ANSI colours, only for a terminal.
struct Paint(bool);

impl Paint {
    fn color(&self, code: &str, s: &str) -> String {
        match self.0 {
            true => format!("\x1b[{code}m{s}\x1b[0m"),
            false => s.to_owned(),
        }
    }
    fn state(&self, s: CertState, text: &str) -> String {
        match s {
            CertState::Ok => self.color("32", text),
            CertState::RenewSoon => self.color("33", text),
            CertState::Expired => self.color("31", text),
        }
    }
}

/// The instance, whether Redis answers, the instances seen, the ticket keys and the ACME
/// orders in progress with who runs them.
fn render_cluster(out: &mut String, c: &ClusterStatus, p: &Paint) {
    let redis = match c.redis_up {
        true => p.color("32", "Redis up"),
        false => p.color("31", "Redis unreachable"),
    };
    let _ = writeln!(
        out,
        "\ncluster: this is instance {} ({redis}); instances seen: {}; session-ticket keys at generation {}",
        c.instance,
        c.instances.join(", "),
        c.ticket_generation
    );
    for l in &c.order_locks {
        let _ = writeln!(
            out,
            "  ordering a certificate for {}: instance {}",
            l.name, l.holder
        );
    }
}

fn render(s: &Status, tty: bool) -> String {
    let p = Paint(tty);
    let mut out = format!(
        "candado {}: {} site(s), {} tunnel(s), {} certificate(s)\n",
        s.version,
        s.sites.len(),
        s.tunnels.len(),
        s.certificates.len()
    );
    for site in &s.sites {
        let _ = writeln!(
            out,
            "\n{} on {}",
            p.color("1", &site.names.join(", ")),
            site.listen
        );
        if let Some(c) = &site.certificate {
            let _ = writeln!(
                out,
                "  certificate: {} ({}, {})",
                p.state(c.state, &format!("{} day(s) left", c.days_left)),
                c.issuer,
                c.source.as_str()
            );
        }
        for r in &site.routes {
            for u in &r.upstreams {
                let health = match u.up {
                    true => p.color("32", "up"),
                    false => p.color("31", "down"),
                };
                let _ = writeln!(
                    out,
                    "  {} → {} {health} ({} requests, {} errors)",
                    r.path, u.origin, u.requests, u.errors
                );
            }
        }
    }
    for t in &s.tunnels {
        let _ = writeln!(
            out,
            "\ntunnel {} on {} → {} ({})",
            t.name, t.listen, t.to, t.mode
        );
    }
    if let Some(c) = &s.cluster {
        render_cluster(&mut out, c, &p);
    }
    if !s.recent_errors.is_empty() {
        let _ = writeln!(out, "\nrecent errors ({}):", s.recent_errors.len());
        for e in s.recent_errors.iter().take(10) {
            let _ = writeln!(out, "  {} {}: {}", e.kind, e.subject, e.message);
        }
    }
    let problems = s.problems();
    match problems.is_empty() {
        true => out.push_str(&format!("\n{}\n", p.color("32", "all healthy"))),
        false => {
            for problem in problems {
                let _ = writeln!(out, "{}", p.color("31", &problem));
            }
        }
    }
    out
}
