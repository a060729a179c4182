//! Error responses, in one place: a status, a short page that escapes whatever it echoes.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::{Body, full};

/// A small HTML page for `status`, with `detail` escaped.
pub fn page(status: StatusCode, detail: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\n<p>{detail}</p>\n</body></html>\n",
        code = status.as_u16(),
        detail = escape_html(detail),
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
pub fn page_for(accept: Option<&HeaderValue>, status: StatusCode, detail: &str) -> Response<Body> {
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

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
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
