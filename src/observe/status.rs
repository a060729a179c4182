//! The status summary: what is served (sites, listeners, routes and their upstreams' health,
//! tunnels), every certificate's lifetime, and the last errors. One model, three views: JSON
//! (`/status.json`, which `candado status` reads), an HTML page with the certificate timeline
//! as inline SVG (`/status`), and the terminal (`cli`).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{CertInfo, metrics, unix_seconds};
use crate::config::{Config, TunnelMode, defaults};
use crate::page::{escape_html, styled_page};

/// What the configuration serves, recorded at start and on every reload.
#[derive(Debug, Default)]
pub(crate) struct Served {
    sites: Vec<SiteStatus>,
    tunnels: Vec<TunnelStatus>,
}

impl Served {
    /// `bound` gives the address actually bound for a configured one (`:0` in tests).
    pub(crate) fn of(
        config: &Config,
        bound: impl Fn(std::net::SocketAddr) -> std::net::SocketAddr,
    ) -> Self {
        let sites = config
            .sites
            .iter()
            .map(|s| SiteStatus {
                names: s.names.clone(),
                listen: bound(s.listen).to_string(),
                redirect_from: s.redirect_from.map(|a| bound(a).to_string()),
                certificate: None,
                routes: s
                    .routes
                    .iter()
                    .map(|r| RouteStatus {
                        path: r.prefix.clone(),
                        upstreams: r
                            .upstreams
                            .iter()
                            .map(|u| UpstreamStatus {
                                origin: u.origin.clone(),
                                up: true,
                                requests: 0,
                                errors: 0,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let tunnels = config
            .tunnels
            .iter()
            .map(|t| TunnelStatus {
                name: t.name.clone(),
                listen: bound(t.listen).to_string(),
                to: t.to.clone(),
                mode: match t.mode {
                    TunnelMode::Server(_) => "tls-server".to_owned(),
                    TunnelMode::Client(_) => "tls-client".to_owned(),
                },
            })
            .collect();
        Served { sites, tunnels }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Status {
    pub version: String,
    /// Unix seconds when the summary was made.
    pub now: i64,
    pub sites: Vec<SiteStatus>,
    pub tunnels: Vec<TunnelStatus>,
    pub certificates: Vec<CertStatus>,
    pub recent_errors: Vec<ErrorStatus>,
    /// With `cluster:`: the instances, the ticket keys and the order locks.
    #[serde(default)]
    pub cluster: Option<ClusterStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterStatus {
    pub instance: String,
    pub redis_up: bool,
    /// Instances that checked in to Redis lately, this one included.
    pub instances: Vec<String>,
    pub ticket_generation: u64,
    /// ACME orders in progress somewhere in the cluster, and who runs each.
    pub order_locks: Vec<LockStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LockStatus {
    pub name: String,
    pub holder: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SiteStatus {
    pub names: Vec<String>,
    pub listen: String,
    pub redirect_from: Option<String>,
    /// The first certificate served for the site.
    pub certificate: Option<CertStatus>,
    pub routes: Vec<RouteStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RouteStatus {
    pub path: String,
    pub upstreams: Vec<UpstreamStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UpstreamStatus {
    pub origin: String,
    pub up: bool,
    pub requests: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TunnelStatus {
    pub name: String,
    pub listen: String,
    pub to: String,
    pub mode: String,
}

/// Where a certificate is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CertState {
    Ok,
    /// In its renewal window (the last third of its life).
    RenewSoon,
    Expired,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CertStatus {
    pub site: String,
    pub names: Vec<String>,
    pub source: super::CertOrigin,
    pub issuer: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub renew_from: i64,
    /// Whole days left (negative once expired).
    pub days_left: i64,
    pub state: CertState,
}

impl CertStatus {
    fn of(c: &CertInfo, now: SystemTime) -> Self {
        let (not_after, now_s) = (unix_seconds(c.not_after), unix_seconds(now));
        let renew_from = unix_seconds(c.renew_from());
        let state = match now_s {
            n if n >= not_after => CertState::Expired,
            n if n >= renew_from => CertState::RenewSoon,
            _ => CertState::Ok,
        };
        CertStatus {
            site: c.site.clone(),
            names: c.names.clone(),
            source: c.source,
            issuer: c.issuer.clone(),
            not_before: unix_seconds(c.not_before),
            not_after,
            renew_from,
            days_left: (not_after - now_s).div_euclid(86_400),
            state,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ErrorStatus {
    /// Unix seconds.
    pub at: i64,
    pub kind: String,
    pub subject: String,
    pub message: String,
}

/// The summary now, from the registry.
pub(crate) fn snapshot() -> Status {
    let m = metrics();
    let now = SystemTime::now();
    let certificates: Vec<CertStatus> = m
        .certificates()
        .iter()
        .map(|c| CertStatus::of(c, now))
        .collect();
    let upstreams = m.upstream_list();
    let served = m.served();
    let mut sites = served.sites.clone();
    for site in &mut sites {
        let primary = site.names.first().cloned().unwrap_or_default();
        site.certificate = certificates.iter().find(|c| c.site == primary).cloned();
        for route in &mut site.routes {
            for up in &mut route.upstreams {
                let found = upstreams
                    .iter()
                    .find(|u| u.site == primary && u.route == route.path && u.origin == up.origin);
                if let Some(u) = found {
                    up.up = u.is_up();
                    (up.requests, up.errors) = u.totals();
                }
            }
        }
    }
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        now: unix_seconds(now),
        sites,
        tunnels: served.tunnels.clone(),
        certificates,
        recent_errors: m
            .recent_errors()
            .into_iter()
            .map(|e| ErrorStatus {
                at: unix_seconds(e.at),
                kind: e.kind.to_owned(),
                subject: e.subject,
                message: e.message,
            })
            .collect(),
        cluster: m.cluster.status(),
    }
}

impl Status {
    /// What needs a person: certificates expiring within `STATUS_EXPIRY_ALERT` (or expired)
    /// and upstreams out of rotation. Empty when all is well.
    pub(crate) fn problems(&self) -> Vec<String> {
        let soon = defaults::STATUS_EXPIRY_ALERT.as_secs() as i64;
        let certs = self
            .certificates
            .iter()
            .filter(|c| c.not_after - self.now < soon)
            .map(|c| match c.state {
                CertState::Expired => format!("the certificate of {} has expired", c.site),
                _ => format!(
                    "the certificate of {} expires in {} day(s)",
                    c.site, c.days_left
                ),
            });
        let upstreams = self.sites.iter().flat_map(|s| {
            s.routes.iter().flat_map(move |r| {
                r.upstreams.iter().filter(|u| !u.up).map(move |u| {
                    format!(
                        "upstream {} of {}{} is down",
                        u.origin,
                        s.names.first().map_or("", String::as_str),
                        r.path
                    )
                })
            })
        });
        certs.chain(upstreams).collect()
    }
}

fn date(unix: i64) -> String {
    let t = match u64::try_from(unix) {
        Ok(s) => SystemTime::UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => SystemTime::UNIX_EPOCH,
    };
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// Colours of the timeline and the health dots, beside the shared stylesheet.
const STATUS_STYLE: &str = "<style>\nmain { max-width: 66rem; }\n.ok { fill: #2e9d5b; color: #2e9d5b; } .renew_soon { fill: #d99a1e; color: #b77d0c; } .expired { fill: #c8382f; color: #c8382f; }\n.window { fill: #d99a1e; opacity: .35; } .today { stroke: var(--fg); stroke-width: 2; stroke-dasharray: 4 3; }\nsvg text { fill: var(--fg); font: 12px system-ui, sans-serif; } svg .axis { fill: var(--muted); }\n.up::before { content: \"● \"; color: #2e9d5b; } .down::before { content: \"● \"; color: #c8382f; }\nh2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }\n</style>";

/// The status page: works without JavaScript, refreshes itself every 30 s.
pub(crate) fn html(s: &Status) -> String {
    let mut body = String::from(STATUS_STYLE);
    body.push_str("<meta http-equiv=\"refresh\" content=\"30\">\n");
    let problems = s.problems();
    let headline = match problems.is_empty() {
        true => "<p class=\"up\">All sites healthy.</p>".to_owned(),
        false => problems
            .iter()
            .map(|p| format!("<p class=\"down\">{}</p>", escape_html(p)))
            .collect(),
    };
    let _ = write!(
        body,
        "<h1>candado status</h1>\n{headline}\n<p class=\"date\">candado {} · {} UTC · <a href=\"/status.json\">JSON</a> · <a href=\"/metrics\">metrics</a></p>\n",
        escape_html(&s.version),
        escape_html(
            &humantime::format_rfc3339_seconds(
                SystemTime::UNIX_EPOCH + Duration::from_secs(s.now.max(0) as u64)
            )
            .to_string()
        )
    );
    body.push_str("<h2>Certificate timeline</h2>\n");
    body.push_str(&timeline(&s.certificates, s.now));
    sites_table(&mut body, s);
    if !s.tunnels.is_empty() {
        body.push_str("<h2>Tunnels</h2>\n<table><tr><th>name</th><th>listener</th><th>to</th><th>mode</th></tr>\n");
        for t in &s.tunnels {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&t.name),
                escape_html(&t.listen),
                escape_html(&t.to),
                escape_html(&t.mode)
            );
        }
        body.push_str("</table>\n");
    }
    if let Some(c) = &s.cluster {
        cluster_section(&mut body, c);
    }
    body.push_str("<h2>Recent errors</h2>\n");
    match s.recent_errors.is_empty() {
        true => body.push_str("<p class=\"date\">None since start.</p>\n"),
        false => {
            body.push_str(
                "<table><tr><th>when</th><th>what</th><th>where</th><th>error</th></tr>\n",
            );
            for e in &s.recent_errors {
                let when = humantime::format_rfc3339_seconds(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(e.at.max(0) as u64),
                );
                let _ = writeln!(
                    body,
                    "<tr><td class=\"date\">{when}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape_html(&e.kind),
                    escape_html(&e.subject),
                    escape_html(&e.message)
                );
            }
            body.push_str("</table>\n");
        }
    }
    styled_page("candado status", &body)
}

fn cluster_section(body: &mut String, c: &ClusterStatus) {
    let redis = match c.redis_up {
        true => "<span class=\"up\">Redis up</span>",
        false => "<span class=\"down\">Redis unreachable</span>",
    };
    let _ = writeln!(
        body,
        "<h2>Cluster</h2>\n<p>This is instance <b>{}</b> · {redis} · instances seen: {} · session-ticket keys at generation {}</p>",
        escape_html(&c.instance),
        escape_html(&c.instances.join(", ")),
        c.ticket_generation
    );
    if !c.order_locks.is_empty() {
        body.push_str("<table><tr><th>ordering a certificate for</th><th>instance</th></tr>\n");
        for l in &c.order_locks {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape_html(&l.name),
                escape_html(&l.holder)
            );
        }
        body.push_str("</table>\n");
    }
}

fn sites_table(body: &mut String, s: &Status) {
    body.push_str("<h2>Sites</h2>\n<table><tr><th>names</th><th>listener</th><th>certificate</th><th>routes</th></tr>\n");
    for site in &s.sites {
        let cert = match &site.certificate {
            Some(c) => format!(
                "<span class=\"{}\">{} day(s) left</span><br><span class=\"date\">{} · {}</span>",
                state_class(c.state),
                c.days_left,
                escape_html(common_name(&c.issuer)),
                c.source.as_str()
            ),
            None => "<span class=\"date\">-</span>".to_owned(),
        };
        let mut routes = String::new();
        for r in &site.routes {
            let _ = write!(routes, "<code>{}</code> →", escape_html(&r.path));
            for u in &r.upstreams {
                let _ = write!(
                    routes,
                    " <span class=\"{}\">{}</span>",
                    if u.up { "up" } else { "down" },
                    escape_html(&u.origin)
                );
            }
            routes.push_str("<br>");
        }
        if site.routes.is_empty() {
            routes.push_str("<span class=\"date\">files</span>");
        }
        let listen = match &site.redirect_from {
            Some(r) => format!("{} (http {})", site.listen, r),
            None => site.listen.clone(),
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{cert}</td><td>{routes}</td></tr>",
            escape_html(&site.names.join(", ")),
            escape_html(&listen)
        );
    }
    body.push_str("</table>\n");
}

/// The issuer's CN (the readable part of a distinguished name), or the whole name.
fn common_name(dn: &str) -> &str {
    dn.split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or(dn)
}

fn state_class(s: CertState) -> &'static str {
    match s {
        CertState::Ok => "ok",
        CertState::RenewSoon => "renew_soon",
        CertState::Expired => "expired",
    }
}

/// Width of the timeline's drawing area and of the label column, in SVG units.
const TIMELINE_WIDTH: f64 = 900.0;
const LABEL_WIDTH: f64 = 260.0;
const ROW_HEIGHT: f64 = 30.0;

/// One bar per certificate from issuance to expiry, its renewal window shaded, today marked.
pub(crate) fn timeline(certs: &[CertStatus], now: i64) -> String {
    if certs.is_empty() {
        return "<p class=\"date\">No certificates are served.</p>\n".to_owned();
    }
    let start = certs
        .iter()
        .map(|c| c.not_before)
        .min()
        .unwrap_or(now)
        .min(now);
    let end = certs
        .iter()
        .map(|c| c.not_after)
        .max()
        .unwrap_or(now)
        .max(now);
    let span = (end - start).max(1) as f64;
    let x =
        |t: i64| LABEL_WIDTH + (t - start) as f64 / span * (TIMELINE_WIDTH - LABEL_WIDTH - 10.0);
    let height = ROW_HEIGHT * certs.len() as f64 + 40.0;
    let mut svg = format!(
        "<svg class=\"timeline\" role=\"img\" aria-label=\"certificate timeline\" viewBox=\"0 0 {TIMELINE_WIDTH} {height}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">\n"
    );
    for (i, c) in certs.iter().enumerate() {
        let y = 10.0 + ROW_HEIGHT * i as f64;
        let (x0, x1, xr) = (x(c.not_before), x(c.not_after), x(c.renew_from));
        let label = format!("{} ({})", c.site, c.source.as_str());
        let _ = writeln!(
            svg,
            "<text x=\"0\" y=\"{:.1}\">{}</text>",
            y + 15.0,
            escape_html(&label)
        );
        let _ = writeln!(
            svg,
            "<rect class=\"bar {}\" data-site=\"{}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"20\" rx=\"4\"><title>{}: {} to {}, {} day(s) left</title></rect>",
            state_class(c.state),
            escape_html(&c.site),
            (x1 - x0).max(1.0),
            escape_html(&c.names.join(", ")),
            date(c.not_before),
            date(c.not_after),
            c.days_left
        );
        let _ = writeln!(
            svg,
            "<rect class=\"window\" x=\"{xr:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"20\"><title>renewal window from {}</title></rect>",
            (x1 - xr).max(0.0),
            date(c.renew_from)
        );
    }
    let (xt, bottom) = (x(now), ROW_HEIGHT * certs.len() as f64 + 12.0);
    let _ = writeln!(
        svg,
        "<line class=\"today\" x1=\"{xt:.1}\" y1=\"4\" x2=\"{xt:.1}\" y2=\"{bottom:.1}\"/>\n<text class=\"axis\" x=\"{xt:.1}\" y=\"{:.1}\" text-anchor=\"middle\">today</text>",
        bottom + 14.0
    );
    let _ = writeln!(
        svg,
        "<text class=\"axis\" x=\"{LABEL_WIDTH}\" y=\"{:.1}\">{}</text><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n</svg>",
        bottom + 14.0,
        date(start),
        TIMELINE_WIDTH - 10.0,
        bottom + 14.0,
        date(end)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(site: &str, from_days: i64, to_days: i64, now: i64) -> CertStatus {
        let info = CertInfo {
            site: site.into(),
            names: vec![site.into()],
            source: super::super::CertOrigin::File,
            issuer: "CN=test".into(),
            not_before: SystemTime::UNIX_EPOCH
                + Duration::from_secs((now + from_days * 86_400) as u64),
            not_after: SystemTime::UNIX_EPOCH
                + Duration::from_secs((now + to_days * 86_400) as u64),
        };
        CertStatus::of(
            &info,
            SystemTime::UNIX_EPOCH + Duration::from_secs(now as u64),
        )
    }

    #[test]
    fn a_certificate_is_ok_then_in_its_renewal_window_then_expired() {
        let now = 2_000_000_000;
        assert_eq!(cert("a", -10, 80, now).state, CertState::Ok);
        assert_eq!(cert("b", -70, 20, now).state, CertState::RenewSoon);
        let expired = cert("c", -90, -1, now);
        assert_eq!(expired.state, CertState::Expired);
        assert_eq!(expired.days_left, -1);
    }

    #[test]
    fn the_timeline_has_one_bar_per_certificate_and_marks_today() {
        let now = 2_000_000_000;
        let certs = [cert("a.test", -10, 80, now), cert("<b>", -70, 20, now)];
        let svg = timeline(&certs, now);
        assert_eq!(svg.matches("class=\"bar ").count(), 2);
        assert_eq!(svg.matches("class=\"window\"").count(), 2);
        assert!(svg.contains("class=\"today\""));
        assert!(svg.contains("&lt;b&gt;"), "labels are escaped: {svg}");
    }
}
