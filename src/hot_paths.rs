//! The functions every request goes through, reachable from the micro-benchmarks in
//! `benches/` (issue 16) so that a regression shows before a full benchmark run. Not an API:
//! thin wrappers over crate-private code, hidden from the documentation.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use http::{HeaderMap, Request};

/// Host (or SNI) → site, the exact-before-wildcard table both TLS and HTTP use.
pub struct Names(crate::certs::NameTable<usize>);

impl Names {
    pub fn new(sites: &[&[&str]]) -> Self {
        let mut table = crate::certs::NameTable::new(true);
        for (i, names) in sites.iter().enumerate() {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            table.insert(&names, i);
        }
        Names(table)
    }

    pub fn site(&self, host: &str) -> Option<usize> {
        self.0.get(Some(host)).copied()
    }
}

/// The request-side header rules of the proxy.
pub fn proxy_request_headers(h: &mut HeaderMap, peer: IpAddr, host: &str, trusted: bool) {
    crate::http::headers::remove_hop_by_hop(h);
    crate::http::headers::add_forwarding(h, peer, host, trusted);
}

/// The response-side rule that marks cookies Secure.
pub fn secure_cookies(h: &mut HeaderMap) {
    crate::http::headers::secure_cookies(h);
}

/// The HTTP/1.1 framing check that follows every request stream.
pub struct Framing(crate::listener::FramingScanner);

impl Default for Framing {
    fn default() -> Self {
        Framing(crate::listener::FramingScanner::new(Arc::new(
            AtomicU64::new(0),
        )))
    }
}

impl Framing {
    pub fn feed(&mut self, data: &[u8]) {
        self.0.feed(data);
    }
}

/// A static site's lookup: path checks, the hot-file cache or the disk, headers.
pub struct StaticSite(crate::http::static_files::StaticFiles);

impl StaticSite {
    pub fn new(root: &Path) -> std::io::Result<Self> {
        let options = crate::config::StaticOptions::default();
        crate::http::static_files::StaticFiles::new(root, options, false).map(StaticSite)
    }

    /// The status and body length of a GET for `path`.
    pub async fn get(&self, path: &str) -> (u16, Option<u64>) {
        let req = Request::get(path).body(()).unwrap_or_default();
        let res = self.0.serve(&req).await;
        let len = http_body::Body::size_hint(res.body()).exact();
        (res.status().as_u16(), len)
    }
}

/// The size of `data` compressed in one coding (`zstd`, `br` or `gzip`) at `level`, through the
/// same streaming encoder responses go through.
pub async fn compressed_size(coding: &str, level: i32, data: &[u8]) -> usize {
    use crate::http::compression::{Coding, Encoded};
    use http_body_util::BodyExt;
    let Some(coding) = Coding::ALL.into_iter().find(|c| c.token() == coding) else {
        return 0;
    };
    let body = crate::http::full(bytes::Bytes::copy_from_slice(data));
    match Encoded::with_level(body, coding, level).collect().await {
        Ok(done) => done.to_bytes().len(),
        Err(_) => 0,
    }
}
