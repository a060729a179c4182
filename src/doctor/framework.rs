//! Which framework and server an app is, from what it shows over HTTP (Server header, cookie
//! names, error pages), never from its files; and the exact lines that fix each problem for
//! it. Pure functions: `doctor` uses them, and so does the proxy for its run-time hints.

use http::{HeaderMap, header};
use serde::Serialize;

/// The web framework, as far as the app's answers tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Framework {
    Flask,
    Django,
    FastApi,
    /// Starlette, or FastAPI without its OpenAPI document.
    Starlette,
    OpenWebUi,
    Unknown,
}

/// The HTTP server in front of the framework, from its `Server` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Server {
    /// Werkzeug's development server (`app.run()`, `flask run`).
    Werkzeug,
    Gunicorn,
    Uvicorn,
    Hypercorn,
    /// `manage.py runserver` (wsgiref's WSGIServer).
    DjangoRunserver,
    Unknown,
}

impl Framework {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Framework::Flask => "Flask",
            Framework::Django => "Django",
            Framework::FastApi => "FastAPI",
            Framework::Starlette => "Starlette",
            Framework::OpenWebUi => "Open WebUI",
            Framework::Unknown => "unknown",
        }
    }
}

impl Server {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Server::Werkzeug => "Werkzeug",
            Server::Gunicorn => "gunicorn",
            Server::Uvicorn => "uvicorn",
            Server::Hypercorn => "hypercorn",
            Server::DjangoRunserver => "Django runserver",
            Server::Unknown => "unknown",
        }
    }

    /// From the `Server` header: `Werkzeug/3.1.3 Python/3.11.2`, `uvicorn`, `gunicorn`,
    /// `hypercorn-h11`, `WSGIServer/0.2 CPython/3.11.2`.
    pub(crate) fn from_headers(h: &HeaderMap) -> Server {
        let value = h
            .get(header::SERVER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        match value {
            v if v.starts_with("werkzeug") => Server::Werkzeug,
            v if v.starts_with("gunicorn") => Server::Gunicorn,
            v if v.starts_with("uvicorn") => Server::Uvicorn,
            v if v.starts_with("hypercorn") => Server::Hypercorn,
            v if v.starts_with("wsgiserver") => Server::DjangoRunserver,
            _ => Server::Unknown,
        }
    }
}

/// The names of the cookies a response sets.
pub(crate) fn cookie_names(h: &HeaderMap) -> Vec<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split_once('=').map(|(n, _)| n.trim().to_owned()))
        .collect()
}

/// A best guess from one response's headers alone (the proxy's view): Django's cookies, then
/// the server.
pub(crate) fn guess_from_headers(h: &HeaderMap) -> (Framework, Server) {
    let server = Server::from_headers(h);
    let cookies = cookie_names(h);
    let framework = if cookies.iter().any(|c| c == "csrftoken" || c == "sessionid") {
        Framework::Django
    } else {
        match server {
            Server::Werkzeug => Framework::Flask,
            Server::DjangoRunserver => Framework::Django,
            _ => Framework::Unknown,
        }
    };
    (framework, server)
}

/// What one response body says about the framework (error pages, form fields, titles).
pub(crate) fn framework_from_body(body: &str) -> Option<Framework> {
    if body.contains("csrfmiddlewaretoken")
        || body.contains("The requested resource was not found on this server.")
    {
        return Some(Framework::Django);
    }
    // Open WebUI's single-page app (every unknown path serves it too) and its /api/config.
    if body.contains("<title>Open WebUI</title>") || body.contains(r#""name":"Open WebUI""#) {
        return Some(Framework::OpenWebUi);
    }
    if body.contains("If you entered the URL manually please check your spelling") {
        return Some(Framework::Flask);
    }
    if body.trim() == r#"{"detail":"Not Found"}"# {
        return Some(Framework::Starlette);
    }
    None
}

/// The problems whose fix depends on the framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Trust X-Forwarded-Proto (and -Host, -For) from candado.
    ProxyHeaders,
    /// Mark cookies Secure, HttpOnly, SameSite at the source.
    CookieFlags,
    /// Accept the public https:// origin on form posts.
    TrustedOrigin,
    /// Listen on loopback only.
    Loopback,
    /// Trust forwarding headers only from candado's address.
    TrustOnlyCandado,
}

/// A fix: where it goes and the lines to paste.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Fix {
    pub(crate) framework: &'static str,
    /// Where the lines go: "where the app is created", "settings.py", "the command line".
    pub(crate) place: &'static str,
    pub(crate) lines: Vec<String>,
}

/// The public origin (`https://app.example:8443`) and the app's port, for the fixes that
/// name them.
pub(crate) struct Context<'a> {
    pub(crate) origin: &'a str,
    pub(crate) app_port: u16,
}

fn fix(framework: &'static str, place: &'static str, lines: &[&str]) -> Fix {
    Fix {
        framework,
        place,
        lines: lines.iter().map(|l| (*l).to_owned()).collect(),
    }
}

const PROXY_FIX: [&str; 2] = [
    "from werkzeug.middleware.proxy_fix import ProxyFix",
    "app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)",
];

/// The lines that fix `need` for this app.
pub(crate) fn fix_for(need: Need, framework: Framework, server: Server, cx: &Context<'_>) -> Fix {
    let port = cx.app_port;
    let origin = cx.origin;
    match (need, framework, server) {
        (Need::CookieFlags, Framework::OpenWebUi, _) => Fix {
            framework: "Open WebUI",
            place: "its environment",
            lines: vec!["WEBUI_SESSION_COOKIE_SECURE=true".to_owned()],
        },
        (_, Framework::OpenWebUi, _) => Fix {
            framework: "Open WebUI",
            place: "its environment",
            lines: vec![
                format!("WEBUI_URL={origin}"),
                format!("CORS_ALLOW_ORIGIN={origin}"),
                "FORWARDED_ALLOW_IPS=127.0.0.1".to_owned(),
                format!("docker run -p 127.0.0.1:{port}:8080 ... ghcr.io/open-webui/open-webui"),
            ],
        },
        (Need::ProxyHeaders | Need::TrustOnlyCandado | Need::Loopback, _, Server::Uvicorn) => {
            uvicorn(port)
        }
        (Need::ProxyHeaders | Need::TrustOnlyCandado | Need::Loopback, _, Server::Gunicorn) => {
            gunicorn(port)
        }
        (Need::ProxyHeaders, Framework::Flask, _) => {
            fix("Flask", "where the app is created", &PROXY_FIX)
        }
        (Need::ProxyHeaders | Need::TrustedOrigin, Framework::Django, _) => Fix {
            framework: "Django",
            place: "settings.py",
            lines: vec![
                r#"SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")"#.to_owned(),
                format!(r#"CSRF_TRUSTED_ORIGINS = ["{origin}"]"#),
            ],
        },
        (Need::CookieFlags, Framework::Django, _) => fix(
            "Django",
            "settings.py",
            &[
                "SESSION_COOKIE_SECURE = True",
                "CSRF_COOKIE_SECURE = True",
                r#"SESSION_COOKIE_SAMESITE = "Lax""#,
            ],
        ),
        (Need::CookieFlags, Framework::Flask, _) => fix(
            "Flask",
            "where the app is created",
            &[
                r#"app.config.update(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")"#,
            ],
        ),
        (Need::CookieFlags, Framework::FastApi | Framework::Starlette, _) => fix(
            "Starlette",
            "where the cookie is set",
            &[r#"response.set_cookie(name, value, secure=True, httponly=True, samesite="lax")"#],
        ),
        (Need::Loopback, Framework::Django, Server::DjangoRunserver) => Fix {
            framework: "Django",
            place: "the command line",
            lines: vec![format!("python manage.py runserver 127.0.0.1:{port}")],
        },
        (Need::Loopback, Framework::Flask, Server::Werkzeug) => Fix {
            framework: "Flask",
            place: "the command line",
            lines: vec![
                format!("app.run(host=\"127.0.0.1\", port={port})"),
                format!("flask run --host 127.0.0.1 --port {port}"),
            ],
        },
        (Need::Loopback, _, _) => Fix {
            framework: "any",
            place: "the app's listen address",
            lines: vec![format!("bind 127.0.0.1:{port}, not 0.0.0.0:{port}")],
        },
        (Need::TrustOnlyCandado, Framework::Flask, _) => Fix {
            framework: "Flask",
            place: "the command line",
            lines: vec![format!(
                "ProxyFix trusts whoever connects: keep the app on 127.0.0.1:{port}, or run it under gunicorn --forwarded-allow-ips 127.0.0.1"
            )],
        },
        _ => fix(
            "any",
            "the app's proxy settings",
            &[
                "trust X-Forwarded-Proto, X-Forwarded-Host and X-Forwarded-For from 127.0.0.1 (candado) only",
            ],
        ),
    }
}

fn uvicorn(port: u16) -> Fix {
    Fix {
        framework: "uvicorn",
        place: "the command line",
        lines: vec![format!(
            "uvicorn main:app --host 127.0.0.1 --port {port} --proxy-headers --forwarded-allow-ips 127.0.0.1"
        )],
    }
}

fn gunicorn(port: u16) -> Fix {
    Fix {
        framework: "gunicorn",
        place: "the command line",
        lines: vec![format!(
            "gunicorn --bind 127.0.0.1:{port} --forwarded-allow-ips 127.0.0.1 app:app"
        )],
    }
}

/// One line for the proxy's log: what the app misses, for its framework.
pub(crate) fn hint(need: Need, h: &HeaderMap, origin: &str, app_port: u16) -> String {
    let (framework, server) = guess_from_headers(h);
    let cx = Context { origin, app_port };
    let f = fix_for(need, framework, server, &cx);
    format!("{} ({}): {}", f.framework, f.place, f.lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn servers_are_told_apart_by_their_server_header() {
        let s = |v| Server::from_headers(&headers(&[("server", v)]));
        assert_eq!(s("Werkzeug/3.1.3 Python/3.11.2"), Server::Werkzeug);
        assert_eq!(s("uvicorn"), Server::Uvicorn);
        assert_eq!(s("gunicorn"), Server::Gunicorn);
        assert_eq!(s("WSGIServer/0.2 CPython/3.11.2"), Server::DjangoRunserver);
        assert_eq!(s("nginx"), Server::Unknown);
    }

    #[test]
    fn django_is_known_by_its_csrf_cookie_whatever_the_server() {
        let h = headers(&[
            ("server", "gunicorn"),
            ("set-cookie", "csrftoken=abc; Path=/; SameSite=Lax"),
        ]);
        assert_eq!(
            guess_from_headers(&h),
            (Framework::Django, Server::Gunicorn)
        );
    }

    #[test]
    fn the_uvicorn_fix_names_the_apps_port_and_candados_address() {
        let cx = Context {
            origin: "https://app.test",
            app_port: 8000,
        };
        let f = fix_for(Need::ProxyHeaders, Framework::FastApi, Server::Uvicorn, &cx);
        assert_eq!(
            f.lines,
            [
                "uvicorn main:app --host 127.0.0.1 --port 8000 --proxy-headers --forwarded-allow-ips 127.0.0.1"
            ]
        );
    }
}
