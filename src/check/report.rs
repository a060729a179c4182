//! The report of `candado check`: one struct, printed as a table for people (ANSI colours only
//! when stdout is a terminal) or as JSON for scripts.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use super::cert::CertFindings;
use super::grade::{Cap, Grade};
use super::hello::Protocol;
use super::http::{HttpFindings, Redirect};
use super::probe::{GroupFinding, ProtocolFinding};
use super::suites::Strength;

#[derive(Debug, Serialize)]
pub struct Report {
    pub host: String,
    pub port: u16,
    pub address: SocketAddr,
    pub grade: Grade,
    /// The findings that capped the grade, worst first.
    pub caps: Vec<Cap>,
    pub fixes: Vec<String>,
    pub protocols: Vec<ProtocolFinding>,
    pub groups: Vec<GroupFinding>,
    pub compression: bool,
    pub certificate: Option<CertFindings>,
    pub certificate_error: Option<String>,
    pub http: HttpFindings,
    pub hsts_preload_ready: bool,
}

impl Report {
    pub fn offered(&self, p: Protocol) -> bool {
        self.protocols.iter().any(|f| f.protocol == p && f.offered)
    }

    /// Accepted suite names for a protocol, in the order found.
    pub fn suites(&self, p: Protocol) -> Vec<&'static str> {
        self.protocols
            .iter()
            .filter(|f| f.protocol == p)
            .flat_map(|f| f.suites.iter().map(|s| s.name))
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Colour {
    Green,
    Yellow,
    Red,
    Bold,
}

struct Painter(bool);

impl Painter {
    fn paint(&self, c: Colour, text: &str) -> String {
        if !self.0 {
            return text.to_owned();
        }
        let code = match c {
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Red => "31",
            Colour::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

fn grade_colour(g: Grade) -> Colour {
    match g {
        Grade::APlus | Grade::A => Colour::Green,
        Grade::AMinus | Grade::B => Colour::Yellow,
        _ => Colour::Red,
    }
}

/// The report as a table; `colour` adds ANSI colours.
pub fn render(r: &Report, colour: bool) -> String {
    let p = Painter(colour);
    let mut o = String::new();
    let _ = writeln!(o, "{}:{} ({})\n", r.host, r.port, r.address);
    let _ = writeln!(
        o,
        "Grade  {}",
        p.paint(
            grade_colour(r.grade),
            &p.paint(Colour::Bold, r.grade.as_str())
        )
    );

    let _ = writeln!(o, "\nProtocols");
    for f in &r.protocols {
        let old = f.protocol < Protocol::Tls12;
        let text = match (f.offered, old) {
            (true, true) => p.paint(Colour::Red, "offered"),
            (true, false) => p.paint(Colour::Green, "offered"),
            (false, _) => format!("not offered ({})", f.answer),
        };
        let _ = writeln!(o, "  {:<9}{text}", f.protocol.label());
    }

    let _ = writeln!(o, "\nCipher suites");
    for f in r.protocols.iter().filter(|f| f.offered).rev() {
        let order = match f.server_order {
            Some(true) => "server's order",
            Some(false) => "client's order: the server follows the client",
            None => "one suite",
        };
        let _ = writeln!(o, "  {} ({order})", f.protocol.label());
        for s in &f.suites {
            let (c, word) = match s.strength {
                Strength::Strong => (Colour::Green, "strong"),
                Strength::Weak => (Colour::Yellow, "weak"),
                Strength::Insecure => (Colour::Red, "INSECURE"),
            };
            let flaws: Vec<&str> = s.flaws.iter().map(|f| f.text()).collect();
            let line = format!(
                "    {:<48} {}  {}",
                s.name,
                p.paint(c, &format!("{word:<8}")),
                flaws.join(", ")
            );
            let _ = writeln!(o, "{}", line.trim_end());
        }
    }

    let _ = writeln!(o, "\nKey exchange groups");
    if r.groups.is_empty() {
        let _ = writeln!(o, "  none found");
    }
    for g in &r.groups {
        let with = match (g.tls13, g.legacy) {
            (true, true) => "TLS 1.3 and ECDHE in TLS 1.2 and older",
            (true, false) => "TLS 1.3",
            _ => "ECDHE in TLS 1.2 and older",
        };
        let _ = writeln!(o, "  {:<22}{with}", g.name);
    }

    let _ = writeln!(o, "\nCertificate");
    match (&r.certificate, &r.certificate_error) {
        (Some(c), _) => render_cert(&mut o, &p, c),
        (None, Some(e)) => {
            let _ = writeln!(o, "  {}", p.paint(Colour::Red, e));
        }
        (None, None) => {}
    }

    let _ = writeln!(o, "\nHTTP");
    render_http(&mut o, &p, r);

    if !r.caps.is_empty() {
        let _ = writeln!(o, "\nWhat capped the grade");
        for c in &r.caps {
            let _ = writeln!(
                o,
                "  {:<3}{}",
                p.paint(grade_colour(c.grade), c.grade.as_str()),
                c.reason
            );
        }
    }
    if !r.fixes.is_empty() {
        let _ = writeln!(o, "\nFixes");
        for f in &r.fixes {
            let _ = writeln!(o, "  - {f}");
        }
    }
    o
}

fn yes_no(p: &Painter, ok: bool, yes: &str, no: &str) -> String {
    match ok {
        true => p.paint(Colour::Green, yes),
        false => p.paint(Colour::Red, no),
    }
}

fn render_cert(o: &mut String, p: &Painter, c: &CertFindings) {
    if let Some(leaf) = c.chain.certificates.first() {
        let left = match c.days_left {
            d if d < 0 => p.paint(Colour::Red, &format!("EXPIRED {} days ago", -d)),
            d if d < 14 => p.paint(Colour::Yellow, &format!("{d} days left")),
            d => format!("{d} days left"),
        };
        let rows = [
            ("subject", leaf.subject.clone()),
            (
                "names",
                match leaf.names.is_empty() {
                    true => p.paint(
                        Colour::Red,
                        "NONE: no subjectAltName, so browsers refuse this certificate",
                    ),
                    false => leaf.names.join(", "),
                },
            ),
            ("issuer", leaf.issuer.clone()),
            (
                "valid",
                format!("{} to {} ({left})", leaf.not_before, leaf.not_after),
            ),
            ("key", leaf.key.clone()),
            ("signature", leaf.signature.clone()),
        ];
        for (k, v) in rows {
            let _ = writeln!(o, "  {k:<12}{v}");
        }
    }
    let n = c.chain.certificates.len();
    let _ = writeln!(
        o,
        "  {:<12}{n} certificate{} sent, {}, {}",
        "chain",
        if n == 1 { "" } else { "s" },
        yes_no(p, c.chain.chain_in_order, "in order", "OUT OF ORDER"),
        yes_no(
            p,
            c.chain_complete,
            "complete",
            "INCOMPLETE (an intermediate is missing)"
        )
    );
    let _ = writeln!(
        o,
        "  {:<12}{}",
        "host name",
        yes_no(p, c.hostname_matches, "matches", "DOES NOT MATCH")
    );
    let trust = match &c.trust_error {
        None => p.paint(Colour::Green, "trusted"),
        Some(e) => p.paint(Colour::Red, &format!("NOT TRUSTED: {e}")),
    };
    let _ = writeln!(o, "  {:<12}{trust}", "trust");
    let leaf_warnings = c.chain.certificates.first().map(|l| l.warnings.as_slice());
    for w in leaf_warnings.unwrap_or_default() {
        let _ = writeln!(o, "  {:<12}{}", "warning", p.paint(Colour::Red, w));
    }
}

/// What the server asked of the client (mutual TLS), in one line.
fn client_certificate(c: &super::ClientCertRequest) -> String {
    let cas = match c.hinted_cas.as_slice() {
        [] => String::new(),
        names => format!(" (CAs it accepts: {})", names.join("; ")),
    };
    match (&c.presented, c.required) {
        (Some(subject), _) => format!("asked for{cas}; presented {subject}"),
        (None, Some(true)) => {
            format!("required{cas}: the HTTP checks need one, pass --cert and --key")
        }
        (None, _) => format!("optional{cas}: none presented"),
    }
}

fn render_http(o: &mut String, p: &Painter, r: &Report) {
    let h = &r.http;
    if let Some(e) = &h.error {
        let _ = writeln!(
            o,
            "  {}",
            p.paint(Colour::Yellow, &format!("HTTPS request: {e}"))
        );
    }
    if let Some(v) = &h.tls_version {
        let _ = writeln!(o, "  {:<12}{v}", "negotiated");
    }
    if let Some(c) = &h.client_certificate {
        let _ = writeln!(o, "  {:<12}{}", "client cert", client_certificate(c));
    }
    if h.error.is_none() {
        let alpn = h.alpn.as_deref().unwrap_or("none (HTTP/1.1)");
        let _ = writeln!(o, "  {:<12}{}", "ALPN", yes_no(p, alpn == "h2", alpn, alpn));
        if let Some(s) = h.status {
            let _ = writeln!(o, "  {:<12}{s}", "GET /");
        }
        let hsts = match &h.hsts {
            None => p.paint(Colour::Yellow, "missing"),
            Some(v) => {
                let mut t = format!("max-age={}", v.max_age);
                if v.include_subdomains {
                    t.push_str("; includeSubDomains");
                }
                if v.preload {
                    t.push_str("; preload");
                }
                let ok = v.max_age >= super::http::HSTS_MIN_MAX_AGE;
                yes_no(p, ok, &t, &format!("{t} (less than six months)"))
            }
        };
        let _ = writeln!(o, "  {:<12}{hsts}", "HSTS");
        let _ = writeln!(
            o,
            "  {:<12}{}",
            "preload",
            if r.hsts_preload_ready {
                "ready for the HSTS preload list"
            } else {
                "not ready (needs max-age ≥ 1 year, includeSubDomains, preload and an http:// redirect)"
            }
        );
        for c in &h.cookies {
            let mut flags = vec![yes_no(p, c.secure, "Secure", "not Secure")];
            if c.http_only {
                flags.push("HttpOnly".into());
            }
            if let Some(s) = &c.same_site {
                flags.push(format!("SameSite={s}"));
            }
            let _ = writeln!(o, "  {:<12}{}: {}", "cookie", c.name, flags.join(", "));
        }
    }
    let redirect = match &h.redirect {
        Some(Redirect::ToHttps { status, location }) => p.paint(
            Colour::Green,
            &format!("redirects to {location} ({status})"),
        ),
        Some(Redirect::NotToHttps { status, location }) => p.paint(
            Colour::Yellow,
            &format!(
                "answers {status} without redirecting to https://{}",
                location
                    .as_deref()
                    .map(|l| format!(" (Location: {l})"))
                    .unwrap_or_default()
            ),
        ),
        Some(Redirect::NoListener) => "nothing listens there".into(),
        Some(Redirect::Failed { reason }) => reason.clone(),
        None => "not checked".into(),
    };
    let _ = writeln!(o, "  {:<12}port {}: {redirect}", "http://", h.http_port);
    let h3 = &h.http3;
    let http3 = match (&h3.advertised_port, h3.status, &h3.error) {
        (None, _, _) => "not advertised (no Alt-Svc: h3)".to_owned(),
        (Some(port), Some(status), _) => p.paint(
            Colour::Green,
            &format!("UDP port {port}: QUIC handshake and GET / ({status}) work"),
        ),
        (Some(port), None, e) => p.paint(
            Colour::Yellow,
            &format!(
                "advertised on UDP port {port}, but {}",
                e.as_deref().unwrap_or("not tried")
            ),
        ),
    };
    let _ = writeln!(o, "  {:<12}{http3}", "HTTP/3");
    let _ = writeln!(
        o,
        "  {:<12}{}",
        "compression",
        yes_no(p, !r.compression, "off", "ON (CRIME)")
    );
}
