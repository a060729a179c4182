//! Plain HTTP → HTTPS. The Location names a configured site, never whatever the client put in
//! its Host header (nginx's `return 301 https://$host$request_uri` is an open redirect), and
//! keeps the path and query byte for byte. No HSTS here: RFC 6797 §7.2 forbids it on HTTP.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::{Body, Router, empty, error, host};

/// Answers a plain-HTTP request with a redirect to the same path on the site's HTTPS port.
pub(crate) fn to_https<B>(router: &Router, req: &Request<B>) -> Response<Body> {
    if let Some(answer) = router.acme_http01(req.uri().path()) {
        return acme_answer(answer);
    }
    if let Some(refused) = router.beyond_limits(req) {
        return refused;
    }
    let host = match host::request_host(req) {
        Ok(h) => h,
        Err(e) => {
            return error::page(
                StatusCode::BAD_REQUEST,
                &format!("{e}. This server speaks HTTPS: use https:// addresses."),
            );
        }
    };
    let Some(site) = router.site_for(&host) else {
        return error::page(
            StatusCode::BAD_REQUEST,
            &format!("This server has no site named {host}. Use https:// with one of its names."),
        );
    };
    // `host` matched one of the site's configured names (or wildcards), so it is safe to send
    // the client there.
    debug_assert!(site.site.matches(&host));
    let location = https_url(
        &host,
        site.site.listen.port(),
        req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
    );
    let mut res = Response::new(empty());
    // 301 keeps old clients happy for GET/HEAD; 308 makes sure a POST stays a POST.
    *res.status_mut() = match *req.method() == Method::GET || *req.method() == Method::HEAD {
        true => StatusCode::MOVED_PERMANENTLY,
        false => StatusCode::PERMANENT_REDIRECT,
    };
    match HeaderValue::from_str(&location) {
        Ok(v) => res.headers_mut().insert(header::LOCATION, v),
        Err(_) => {
            return error::page(
                StatusCode::BAD_REQUEST,
                "The request target cannot be redirected.",
            );
        }
    };
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// Whether `path` has an exact redirect (what [`exact`] answers).
pub(crate) fn is_exact(redirects: &[(String, String)], path: &str) -> bool {
    redirects.iter().any(|(from, _)| from == path)
}

/// PyServe's `redirect_instructions`: an exact path answered with 302 to its target, the
/// query string carried over byte for byte (PyServe re-encoded it).
pub(crate) fn exact(redirects: &[(String, String)], uri: &http::Uri) -> Option<Response<Body>> {
    let (_, target) = redirects.iter().find(|(from, _)| from == uri.path())?;
    let location = match uri.query() {
        Some(q) if target.contains('?') => format!("{target}&{q}"),
        Some(q) => format!("{target}?{q}"),
        None => target.clone(),
    };
    let mut res = Response::new(empty());
    *res.status_mut() = StatusCode::FOUND;
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    Some(res)
}

/// `https://name[:port]/path?query`, with IPv6 literals bracketed and :443 left out.
pub(crate) fn https_url(name: &str, port: u16, path_and_query: &str) -> String {
    let host = match name.contains(':') {
        true => format!("[{name}]"),
        false => name.to_owned(),
    };
    let pq = if path_and_query.starts_with('/') {
        path_and_query
    } else {
        "/"
    };
    match port {
        443 => format!("https://{host}{pq}"),
        p => format!("https://{host}:{p}{pq}"),
    }
}

/// An ACME HTTP-01 token's key authorization (RFC 8555 §8.3): the one plain-HTTP answer.
fn acme_answer(key_authorization: String) -> Response<Body> {
    let mut res = Response::new(super::full(key_authorization.into()));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_keep_the_target_and_bracket_ipv6() {
        assert_eq!(
            https_url("a.test", 443, "/x?y=%20z"),
            "https://a.test/x?y=%20z"
        );
        assert_eq!(https_url("::1", 8443, "/"), "https://[::1]:8443/");
    }
}
