//! The checks that read the page: http:// URLs the app builds, redirect loops, cookie
//! attributes, the form POST a browser would send, and mixed content.

use bytes::Bytes;
use http::{HeaderValue, Method, header};

use super::framework::Need;
use super::html::{self, Tag};
use super::probe::{Client, Via};
use super::report::{Check, Finding};
use super::{Seen, chain, get, request};

/// Redirects followed on the public origin to find a loop (each one is a request).
const MAX_HOPS: usize = 2;

/// Check 1: `http://` URLs on the public authority in the app's own answer (Location,
/// Content-Location, Refresh, or the page).
pub(crate) fn http_urls(seen: &Seen) -> Vec<Finding> {
    let insecure = format!("http://{}", seen.target.authority());
    let mut saw = Vec::new();
    for name in [header::LOCATION, header::CONTENT_LOCATION, header::REFRESH] {
        if let Some(v) = seen.forwarded.header(name.clone())
            && contains_url(v, &insecure)
        {
            saw.push(format!("{name}: {v}"));
        }
    }
    if let Some(url) = first_url(&seen.forwarded.body, &insecure) {
        saw.push(format!("the page contains {url}"));
    }
    if saw.is_empty() {
        return vec![Finding::ok(
            Check::HttpUrls,
            format!(
                "GET {} over https builds no http:// URL of the site",
                seen.target.public_path
            ),
        )];
    }
    vec![Finding::problem(
        Check::HttpUrls,
        format!(
            "reached over https, GET {} answers with {}",
            seen.target.public_path,
            saw.join("; ")
        ),
        "the app believes it is served over http (it ignores X-Forwarded-Proto from candado), so its links, redirects and OAuth callbacks leave HTTPS; candado rewrites Location on the way out, but links in pages and API answers stay http://",
        seen.fix(Need::ProxyHeaders),
    )]
}

/// Whether `v` holds `prefix` followed by the end of an authority.
fn contains_url(v: &str, prefix: &str) -> bool {
    first_url(v, prefix).is_some()
}

/// The first URL in `text` that starts with `prefix` (case-insensitive) and continues with a
/// path, query, fragment or nothing (so `http://app.test` never matches `http://app.test.evil`).
fn first_url(text: &str, prefix: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let needle = prefix.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let start = from + i;
        let rest = &text[start + needle.len()..];
        let continues = rest.chars().next();
        if !matches!(continues, Some(c) if c.is_ascii_alphanumeric() || c == '.' || c == ':' || c == '-')
        {
            let end = rest
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>'))
                .unwrap_or(rest.len());
            return Some(text[start..start + needle.len() + end].to_owned());
        }
        from = start + needle.len();
    }
    None
}

/// Check 2: the public page redirects to itself (the app sends http to https, candado sends
/// the next request as http again), followed for a few hops on the public origin.
pub(crate) async fn redirect_loop(client: &Client, seen: &Seen) -> Finding {
    let origin = seen.target.origin();
    let first = format!("{origin}{}", seen.target.public_path);
    let mut visited = vec![first.clone()];
    let mut reply = seen.through.clone();
    for hop in 0..=MAX_HOPS {
        let Some(location) = reply
            .header(header::LOCATION)
            .filter(|_| reply.status.is_redirection())
        else {
            return Finding::ok(
                Check::RedirectLoop,
                format!(
                    "GET {first} answers {} after {hop} redirect(s)",
                    reply.status.as_u16()
                ),
            );
        };
        let next = absolute(location, &origin);
        let upgraded = next.replacen("http://", "https://", 1);
        if visited.contains(&next) || visited.contains(&upgraded) {
            return Finding::problem(
                Check::RedirectLoop,
                format!(
                    "GET {} answers {} with Location: {location}, a URL already visited: browsers stop with \"too many redirects\"",
                    visited.last().map_or(first.as_str(), String::as_str),
                    reply.status.as_u16()
                ),
                "the app redirects to https because it believes the request came over http (it ignores X-Forwarded-Proto); candado forwards the next request the same way, so the redirect never ends",
                seen.fix(Need::ProxyHeaders),
            );
        }
        let Some(path) = upgraded
            .strip_prefix(&origin)
            .filter(|p| p.starts_with('/'))
        else {
            return Finding::ok(
                Check::RedirectLoop,
                format!("GET {first} redirects off the site, to {location}"),
            );
        };
        if hop == MAX_HOPS {
            break;
        }
        let via = Via::Candado {
            addr: seen.target.candado,
            name: seen.target.name.clone(),
        };
        reply = match client
            .fetch(&via, get(path, &seen.target.authority()))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Finding::skipped(
                    Check::RedirectLoop,
                    format!("could not follow {upgraded}: {}", chain(&e)),
                );
            }
        };
        visited.push(upgraded);
    }
    Finding::ok(
        Check::RedirectLoop,
        format!("GET {first} still redirects after {MAX_HOPS} hops, each to a new URL"),
    )
}

/// `location` made absolute against `origin` (root-relative and absolute forms).
fn absolute(location: &str, origin: &str) -> String {
    match location.starts_with('/') && !location.starts_with("//") {
        true => format!("{origin}{location}"),
        false => location.to_owned(),
    }
}

/// Names that carry a login or session (browsers should never let scripts read them).
fn is_session_cookie(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("session")
        || n.contains("sid")
        || n.contains("auth")
        || (n.contains("token") && !n.contains("csrf"))
}

/// Check 3: each cookie the app sets, as the app sets it (candado adds `Secure` on the way out,
/// but the source should say so too): Secure, HttpOnly on session cookies, SameSite, and a
/// Domain and Path the public URL matches.
pub(crate) fn cookies(seen: &Seen) -> Vec<Finding> {
    let all: Vec<html::SetCookie> = seen
        .forwarded
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(html::set_cookie)
        .collect();
    if all.is_empty() {
        return vec![Finding::ok(
            Check::Cookies,
            format!("GET {} sets no cookie", seen.target.public_path),
        )];
    }
    let mut findings = Vec::new();
    for c in &all {
        let flaws = cookie_flaws(c, &seen.target.name, &seen.target.public_path);
        if flaws.is_empty() {
            findings.push(Finding::ok(
                Check::Cookies,
                format!(
                    "cookie {} is Secure, SameSite={}",
                    c.name,
                    c.same_site.as_deref().unwrap_or("?")
                ),
            ));
            continue;
        }
        let (what, why): (Vec<String>, Vec<&str>) = flaws.into_iter().unzip();
        findings.push(Finding::problem(
            Check::Cookies,
            format!("cookie {}: {}", c.name, what.join(", ")),
            why.join("; "),
            seen.fix(Need::CookieFlags),
        ));
    }
    findings
}

fn cookie_flaws(c: &html::SetCookie, host: &str, path: &str) -> Vec<(String, &'static str)> {
    let mut flaws = Vec::new();
    if !c.secure {
        flaws.push((
            "no Secure".to_owned(),
            "without Secure the browser also sends it over plain http:// (candado adds Secure on the way out, but the app should not depend on it)",
        ));
    }
    if is_session_cookie(&c.name) && !c.http_only {
        flaws.push((
            "no HttpOnly".to_owned(),
            "a session cookie without HttpOnly can be read by any script on the page",
        ));
    }
    if c.same_site.is_none() {
        flaws.push((
            "no SameSite".to_owned(),
            "without SameSite, browsers differ in when they send it across sites",
        ));
    }
    if let Some(d) = c
        .domain
        .as_deref()
        .filter(|d| !html::domain_matches(host, d))
    {
        flaws.push((
            format!("Domain={d}, not {host}"),
            "the browser refuses a cookie for another domain, so the session is lost on every request",
        ));
    }
    if let Some(p) = c.path.as_deref().filter(|p| !html::path_matches(path, p)) {
        flaws.push((
            format!("Path={p}, outside {path}"),
            "the browser sends it only below that path, which the public URL is not",
        ));
    }
    flaws
}

/// Check 4: the page's own form, posted through candado as a browser would (its cookies,
/// hidden fields, and `Origin`/`Referer` of the public https origin).
pub(crate) async fn csrf(client: &Client, seen: &Seen) -> Finding {
    let tags = html::tags(&seen.through.body);
    let Some(form) = tags.iter().position(|t| {
        t.name == "form"
            && t.attr("method")
                .is_some_and(|m| m.eq_ignore_ascii_case("post"))
    }) else {
        return Finding::skipped(
            Check::Csrf,
            format!(
                "GET {} shows no <form method=post>",
                seen.target.public_path
            ),
        );
    };
    let origin = seen.target.origin();
    let action = tags[form].attr("action").unwrap_or("");
    let path = form_path(action, &origin, &seen.target.public_path);
    let fields = hidden_fields(&tags[form + 1..]);
    let cookies: Vec<String> = seen
        .through
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(html::set_cookie)
        .map(|c| format!("{}={}", c.name, c.value))
        .collect();
    let mut req = request(
        Method::POST,
        &path,
        &seen.target.authority(),
        Bytes::from(fields),
    );
    let h = req.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let referer = format!("{origin}{}", seen.target.public_path);
    for (name, value) in [
        (header::ORIGIN, origin.clone()),
        (header::REFERER, referer),
        (header::COOKIE, cookies.join("; ")),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    let via = Via::Candado {
        addr: seen.target.candado,
        name: seen.target.name.clone(),
    };
    let reply = match client.fetch(&via, req).await {
        Ok(r) => r,
        Err(e) => return Finding::skipped(Check::Csrf, format!("POST {path}: {}", chain(&e))),
    };
    let lower = reply.body.to_ascii_lowercase();
    let refused = matches!(reply.status.as_u16(), 400 | 403)
        && ["csrf", "origin", "referer", "referrer"]
            .iter()
            .any(|w| lower.contains(w));
    if !refused {
        return Finding::ok(
            Check::Csrf,
            format!(
                "the form POST {path} a browser sends (Origin: {origin}) gets {}",
                reply.status.as_u16()
            ),
        );
    }
    Finding::problem(
        Check::Csrf,
        format!(
            "the form POST {path} a browser sends (its cookies and token, Origin: {origin}) gets {}: {}",
            reply.status.as_u16(),
            excerpt(&reply.body)
        ),
        "the browser's Origin is https://, but the app compares it with the http:// origin it believes it has (or does not list the public origin as trusted), so every form and login fails",
        seen.fix(Need::TrustedOrigin),
    )
}

/// The form's target as a path on the public origin.
fn form_path(action: &str, origin: &str, page: &str) -> String {
    if action.is_empty() {
        return page.to_owned();
    }
    if let Some(rest) = action
        .strip_prefix(origin)
        .or_else(|| action.strip_prefix(&origin.replacen("https://", "http://", 1)))
    {
        return if rest.is_empty() {
            "/".to_owned()
        } else {
            rest.to_owned()
        };
    }
    if action.starts_with('/') {
        return action.to_owned();
    }
    let dir = &page[..page.rfind('/').map_or(0, |i| i + 1)];
    format!("{}{action}", if dir.is_empty() { "/" } else { dir })
}

/// The form's hidden inputs, URL-encoded: the CSRF token, never user data.
fn hidden_fields(after_form: &[Tag]) -> String {
    let mut pairs = Vec::new();
    for t in after_form.iter().take_while(|t| t.name != "form") {
        if t.name == "input"
            && t.attr("type")
                .is_some_and(|v| v.eq_ignore_ascii_case("hidden"))
        {
            let enc = |s: &str| {
                percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            };
            if let Some(name) = t.attr("name") {
                pairs.push(format!(
                    "{}={}",
                    enc(name),
                    enc(t.attr("value").unwrap_or(""))
                ));
            }
        }
    }
    pairs.join("&")
}

/// The first line of a refusal page's text, for the report.
fn excerpt(body: &str) -> String {
    let text: String = html_text(body);
    let mut s: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.len() > 160 {
        let cut = (0..=160)
            .rev()
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The visible text of a page: tags, and the contents of `<head>`, `<style>` and `<script>`,
/// left out.
fn html_text(body: &str) -> String {
    let mut body = body.to_owned();
    for (open, close) in [
        ("<head", "</head>"),
        ("<style", "</style>"),
        ("<script", "</script>"),
    ] {
        while let Some(start) = body.to_ascii_lowercase().find(open) {
            let lower = body.to_ascii_lowercase();
            let end = lower[start..]
                .find(close)
                .map_or(body.len(), |i| start + i + close.len());
            body.replace_range(start..end, " ");
        }
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Check 8: subresources (scripts, styles, images, frames, media) loaded over `http://` by
/// the page a browser gets: blocked or flagged as mixed content.
pub(crate) fn mixed_content(seen: &Seen) -> Vec<Finding> {
    let own = format!("http://{}", seen.target.authority()).to_ascii_lowercase();
    let mut same = Vec::new();
    let mut other = Vec::new();
    for t in html::tags(&seen.through.body) {
        let attr = match t.name.as_str() {
            "script" | "img" | "iframe" | "audio" | "video" | "source" | "embed" => "src",
            "link"
                if t.attr("rel").is_some_and(|r| {
                    let r = r.to_ascii_lowercase();
                    r.contains("stylesheet") || r.contains("icon") || r.contains("preload")
                }) =>
            {
                "href"
            }
            _ => continue,
        };
        let Some(url) = t
            .attr(attr)
            .filter(|u| u.to_ascii_lowercase().starts_with("http://"))
        else {
            continue;
        };
        match first_url(url, &own).is_some() {
            true => same.push(format!("<{} {attr}=\"{url}\">", t.name)),
            false => other.push(format!("<{} {attr}=\"{url}\">", t.name)),
        }
    }
    let mut findings = Vec::new();
    if !same.is_empty() {
        findings.push(Finding::problem(
            Check::MixedContent,
            format!("the page loads from its own host over http: {}", same.join(", ")),
            "browsers block http:// scripts and styles on an https:// page (and flag images): the app builds these URLs from the scheme it believes in",
            seen.fix(Need::ProxyHeaders),
        ));
    }
    if !other.is_empty() {
        findings.push(Finding::problem(
            Check::MixedContent,
            format!(
                "the page loads from other hosts over http: {}",
                other.join(", ")
            ),
            "browsers block http:// scripts and styles on an https:// page",
            super::framework::Fix {
                framework: "any",
                place: "the page's templates",
                lines: vec!["load these from https:// URLs (or from this site)".to_owned()],
            },
        ));
    }
    if findings.is_empty() {
        findings.push(Finding::ok(
            Check::MixedContent,
            format!("GET {} loads nothing over http://", seen.target.public_path),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_on_the_public_authority_is_found_but_not_a_longer_host() {
        assert_eq!(
            first_url(
                r#"<a href="http://app.test:9443/next">"#,
                "http://app.test:9443"
            ),
            Some("http://app.test:9443/next".to_owned())
        );
        assert_eq!(first_url("http://app.test.evil/", "http://app.test"), None);
        assert_eq!(
            first_url("http://app.test:94430/", "http://app.test:9443"),
            None
        );
        assert_eq!(
            first_url("url=HTTP://APP.TEST/ x", "http://app.test"),
            Some("HTTP://APP.TEST/".to_owned())
        );
    }

    #[test]
    fn a_refusal_page_is_summed_up_by_its_visible_text() {
        let page = "<html><head><title>403</title><style>body { color: red }</style></head><body><h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p></body></html>";
        assert_eq!(
            excerpt(page),
            "Forbidden (403) CSRF verification failed. Request aborted."
        );
    }

    #[test]
    fn form_actions_become_paths_on_the_public_origin() {
        let o = "https://app.test:9443";
        assert_eq!(form_path("", o, "/"), "/");
        assert_eq!(form_path("/post", o, "/"), "/post");
        assert_eq!(form_path("post", o, "/app/"), "/app/post");
        assert_eq!(form_path("http://app.test:9443/login", o, "/"), "/login");
    }

    #[test]
    fn a_session_cookie_without_flags_has_every_flaw_named() {
        let c = html::set_cookie("session=x; Domain=other.example; Path=/admin").unwrap();
        let flaws: Vec<String> = cookie_flaws(&c, "app.test", "/")
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            flaws,
            [
                "no Secure",
                "no HttpOnly",
                "no SameSite",
                "Domain=other.example, not app.test",
                "Path=/admin, outside /"
            ]
        );
        let good = html::set_cookie("csrftoken=x; Path=/; SameSite=Lax; Secure").unwrap();
        assert!(cookie_flaws(&good, "app.test", "/").is_empty());
    }
}
