//! Error responses, in one place: a status, a short page that escapes whatever it echoes.
//! Every page candado writes itself (errors, folder listings, the welcome page) carries the
//! same small stylesheet, inline so that a page needs no second request (which could fail
//! too) and works under any path.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::{Body, full};

/// The stylesheet of candado's own pages, inlined in each one.
pub(crate) const STYLE: &str = include_str!("page.css");

/// A small HTML page for `status`, with `detail` escaped.
pub(crate) fn page(status: StatusCode, detail: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = styled_page(
        &format!("{} {reason}", status.as_u16()),
        &format!(
            "<h1><span class=\"code\">{}</span> {reason}</h1>\n<p>{}</p>",
            status.as_u16(),
            escape_html(detail)
        ),
    );
    let mut res = Response::new(full(Bytes::from(html)));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The error as JSON when the client asked for JSON (an API client), else as a page.
pub(crate) fn page_for(
    accept: Option<&HeaderValue>,
    status: StatusCode,
    detail: &str,
) -> Response<Body> {
    let wants_json = accept
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if !wants_json {
        return page(status, detail);
    }
    let body = format!(
        "{{\"status\":{},\"error\":\"{}\"}}\n",
        status.as_u16(),
        detail.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let mut res = Response::new(full(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A whole page: `title` (escaped here) and `body` (HTML, escaped by the caller) in the shared
/// style.
pub(crate) fn styled_page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>\n{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n",
        escape_html(title)
    )
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_text_cannot_inject_markup() {
        assert_eq!(
            escape_html("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }
}
