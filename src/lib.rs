//! candado puts a padlock on any web app.
//!
//! How a connection flows:
//! `listener` accepts (within the connection limit) → `listener::conn` waits for the first
//! byte and the TLS handshake (`tls::front`, with the certificate chosen per SNI by
//! `tls::resolver`), which hands back the stream (`tls::stream`, whose buffers go while the
//! connection waits) and a `tls::Handshake` (SNI, ALPN, version, client identity) → hyper
//! serves HTTP/1.1, or candado's own `http2` HTTP/2, as ALPN says, every response body under
//! the write deadline (`listener::activity`) → `http::Router` checks the Host and picks the
//! site (the same exact-before-wildcard rule as SNI, `certs::NameTable`) → `http::auth` checks
//! credentials → a route sends it to `http::proxy`, anything else to `http::static_files` →
//! the response is compressed as the client accepts (`http::compression`) → the site's
//! security headers are added. Plain HTTP (on the redirect listener or the TLS
//! port) goes to `http::redirect`.
//!
//! HTTP/3 takes a parallel path: `listener::quic` accepts QUIC connections on the UDP port of
//! the same number (within the same connection limit), with a rustls set-up built from the
//! same resolver and client-certificate rules (ALPN `h3`), and hands each request to the same
//! `http::Router`; TCP responses advertise it with Alt-Svc while that port is bound.
//!
//! Tunnels take another path after `listener`: `tls::front` picks the tunnel by SNI and checks
//! the client certificate (`tls::client_auth`) → `tunnel` connects to the upstream and relays
//! bytes (or, in client mode, accepts plain TCP and speaks TLS to the upstream).
//!
//! Which way imports point (no cycles): `config` and `page` (the look of candado's own pages)
//! import no other module; `http2` (the HTTP/2 server: frames, HPACK, streams) only `clock`
//! and `locks`, and `http` (a kept file's encoded head) and `listener` use it; `certs` only `config`; `tls` `certs` and `config`; `observe` (the
//! metrics, as atomics kept beside what they count, and the status page's data) `config`, `tls`
//! and `page`; `acme` publishes into `certs` (`certs::ManagedCert`, `certs::Challenges`) and
//! never touches sockets; `http`, `tunnel`, `listener`, `serve` and `cli` sit above them and
//! count into `observe`. `devca` is the local development CA and `trust` installs it; `lan` is
//! `--lan` (the name-constrained LAN CA, address discovery, the onboarding page, QR codes,
//! mDNS), which `serve::lan` runs; `check` grades any HTTPS server's TLS set-up from the client
//! side (hand-written ClientHello probes, certificate and HTTP checks, SSL Labs-style grade)
//! and uses no server module; `doctor` finds what breaks in an app behind candado (client side,
//! like `check`); `cluster` (only with `cluster:`) shares session-ticket keys with other
//! instances through Redis, sealed with the cluster key (`serve::states` gives its ticketer to
//! the TLS set-ups that ask for no client certificate); `serve` wires it all together, reloads
//! it and runs the admin listener (`serve::admin`: `/metrics`, `/status`); `cli` is the command
//! line (`cli::args` its shape, `cli::serve_flags` flags as a third config dialect).

pub(crate) mod acme;
pub(crate) mod certs;
pub mod check;
pub mod cli;
pub(crate) mod clock;
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod devca;
pub(crate) mod doctor;
#[doc(hidden)]
pub mod hot_paths;
pub(crate) mod http;
pub(crate) mod http2;
pub(crate) mod lan;
pub(crate) mod listener;
pub(crate) mod locks;
pub(crate) mod observe;
pub(crate) mod page;
pub(crate) mod serve;
pub(crate) mod telemetry;
pub(crate) mod tls;
pub(crate) mod trust;
pub(crate) mod tunnel;
