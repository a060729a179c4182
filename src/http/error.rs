//! Error responses, in one place: a status, a short page that escapes whatever it echoes.
//! Every page candado writes itself (errors, folder listings, the welcome page) carries the
//! same small stylesheet, inline so that a page needs no second request (which could fail
//! too) and works under any path.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::{Body, full};

pub(crate) use crate::page::{STYLE, escape_html, styled_page};

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
