//! What `doctor` found, per app: each finding says what it saw, why that breaks behind HTTPS
//! and the lines that fix it; printed for a person (colours on a TTY) or as JSON.

use std::fmt::Write;

use serde::Serialize;

use super::framework::{Fix, Framework, Server};

/// The checks, numbered as in the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Check {
    Reach,
    HttpUrls,
    RedirectLoop,
    Cookies,
    Csrf,
    ForwardedTrust,
    Streaming,
    ListenAddress,
    MixedContent,
}

impl Check {
    fn title(self) -> &'static str {
        match self {
            Check::Reach => "reaching the app",
            Check::HttpUrls => "http:// URLs",
            Check::RedirectLoop => "redirect loop",
            Check::Cookies => "cookies",
            Check::Csrf => "form POST (CSRF/Origin)",
            Check::ForwardedTrust => "X-Forwarded-* trust",
            Check::Streaming => "WebSocket / SSE",
            Check::ListenAddress => "listen address",
            Check::MixedContent => "mixed content",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Ok,
    /// Something breaks: the exit code is non-zero.
    Problem,
    /// Worth knowing, nothing breaks.
    Note,
    /// Not checked, and why.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    pub(crate) check: Check,
    pub(crate) status: Status,
    pub(crate) saw: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) why: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<Fix>,
}

impl Finding {
    pub(crate) fn ok(check: Check, saw: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            saw: saw.into(),
            why: None,
            fix: None,
        }
    }

    pub(crate) fn skipped(check: Check, saw: impl Into<String>) -> Finding {
        Finding {
            status: Status::Skipped,
            ..Finding::ok(check, saw)
        }
    }

    pub(crate) fn problem(
        check: Check,
        saw: impl Into<String>,
        why: impl Into<String>,
        fix: Fix,
    ) -> Finding {
        Finding {
            check,
            status: Status::Problem,
            saw: saw.into(),
            why: Some(why.into()),
            fix: Some(fix),
        }
    }
}

/// One app behind one public origin.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AppReport {
    /// `http://127.0.0.1:5000`
    pub(crate) app: String,
    /// `https://app.example:8443/`
    pub(crate) public: String,
    pub(crate) framework: Framework,
    pub(crate) server: Server,
    /// Requests sent to the app, directly and through candado.
    pub(crate) requests: usize,
    pub(crate) findings: Vec<Finding>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) apps: Vec<AppReport>,
    pub(crate) problems: usize,
}

impl Report {
    pub(crate) fn new(apps: Vec<AppReport>) -> Report {
        let problems = apps
            .iter()
            .flat_map(|a| &a.findings)
            .filter(|f| f.status == Status::Problem)
            .count();
        Report { apps, problems }
    }

    /// How many problems were found (the exit code is non-zero when any).
    pub(crate) fn problems(&self) -> usize {
        self.problems
    }
}

/// The report for a terminal; `colour` on a TTY.
pub(crate) fn render(report: &Report, colour: bool) -> String {
    let paint = |code: &str, s: &str| match colour {
        true => format!("\x1b[{code}m{s}\x1b[0m"),
        false => s.to_owned(),
    };
    let mut out = String::new();
    for app in &report.apps {
        let _ = writeln!(
            out,
            "{} behind {}: {} on {} ({} requests)",
            app.app,
            app.public,
            app.framework.name(),
            app.server.name(),
            app.requests
        );
        for f in &app.findings {
            let mark = match f.status {
                Status::Ok => paint("32", "ok     "),
                Status::Problem => paint("31;1", "PROBLEM"),
                Status::Note => paint("33", "note   "),
                Status::Skipped => paint("2", "skipped"),
            };
            let _ = writeln!(out, "  {mark} {}: {}", f.check.title(), f.saw);
            if let Some(why) = &f.why {
                let _ = writeln!(out, "          why: {why}");
            }
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "          fix ({}, {}):", fix.framework, fix.place);
                for line in &fix.lines {
                    let _ = writeln!(out, "            {}", paint("1", line));
                }
            }
        }
    }
    let summary = match report.problems {
        0 => paint("32", "no problems found"),
        1 => paint("31;1", "1 problem found"),
        n => paint("31;1", &format!("{n} problems found")),
    };
    let _ = writeln!(out, "{summary}");
    out
}
