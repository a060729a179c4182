//! Run-time hints about the app behind a route: when candado has to turn the app's own
//! `http://` redirects into `https://`, or add `Secure` to its cookies, it says once per route
//! which setting the app is missing, with the fix for the framework its answers show
//! (`doctor::framework`). `candado doctor` explains the rest.

use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;

use crate::doctor::framework::{self, Need};

#[derive(Default)]
pub(crate) struct Hints {
    warned_redirect: AtomicBool,
    warned_cookie: AtomicBool,
}

impl Hints {
    /// `upgraded` headers went from `http://` to `https://` and `insecure` cookies got
    /// `Secure` in a response of the app at `app_port`, for the site at `origin`.
    pub(crate) fn note(
        &self,
        route: &str,
        h: &HeaderMap,
        (upgraded, insecure): (usize, usize),
        origin: &str,
        app_port: u16,
    ) {
        if upgraded > 0 && !self.warned_redirect.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                route,
                "the app redirects to http:// on this site's own address, so it does not know it is behind HTTPS; candado rewrites it to https://. Fix it in the app, {} (`candado doctor` explains)",
                framework::hint(Need::ProxyHeaders, h, origin, app_port)
            );
        }
        if insecure > 0 && !self.warned_cookie.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                route,
                cookies = %framework::cookie_names(h).join(","),
                "the app sets cookies without Secure; candado adds it. Fix it in the app too, {}",
                framework::hint(Need::CookieFlags, h, origin, app_port)
            );
        }
    }
}
