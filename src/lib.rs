//! candado puts a padlock on any web app.
//!
//! How a connection flows:
//! `listener` accepts (within the connection limit) → `listener::conn` waits for the first
//! byte and the TLS handshake (rustls, configured by `tls`, certificate chosen per SNI by
//! `certs::store`) → hyper serves HTTP/1.1 or HTTP/2 as ALPN says → `http::Router` checks the
//! Host and picks the site → `http::auth` checks credentials → a route sends it to
//! `http::proxy`, anything else to `http::static_files` → the site's security headers are
//! added. Plain HTTP (on the redirect listener or the TLS port) goes to `http::redirect`.
//!
//! Tunnels take another path after `listener`: `tls::front` picks the tunnel by SNI and checks
//! the client certificate (`tls::client_auth`) → `tunnel` connects to the upstream and relays
//! bytes (or, in client mode, accepts plain TCP and speaks TLS to the upstream).
//!
//! `config` reads and validates both config dialects; `acme` obtains and renews certificates
//! from an ACME CA and publishes them into `certs::store` (its challenge answers are served by
//! the resolver for TLS-ALPN-01 and by `http::redirect` for HTTP-01); `devca` is the local
//! development CA and `trust` installs it; `check` grades any HTTPS server's TLS set-up from
//! the client side (hand-written ClientHello probes, certificate and HTTP checks, SSL Labs-style
//! grade) and uses no server module; `serve` wires it all together and reloads it; `cli` is the
//! command line.

pub(crate) mod acme;
pub(crate) mod certs;
pub mod check;
pub mod cli;
pub(crate) mod config;
pub(crate) mod devca;
pub(crate) mod http;
pub(crate) mod listener;
pub(crate) mod serve;
pub(crate) mod telemetry;
pub(crate) mod tls;
pub(crate) mod trust;
pub(crate) mod tunnel;
