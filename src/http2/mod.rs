//! candado's own HTTP/2 server (RFC 9113, HPACK RFC 7541, WebSockets over HTTP/2 RFC 8441).
//!
//! hyper's HTTP/2 server (the `h2` crate) spent about 21,600 instructions on a small request,
//! three fifths of candado's whole cost per request, in parts no setting reaches: an HPACK
//! encoder that hashes every field into its table, a stream store behind a lock shared with
//! a task per stream, and a send queue (bench/README.md, "what static_h2 would take"). This
//! module serves the same connection in the connection's own task: frames are read and
//! checked in [`conn`], a request that is answered at once is answered in the turn that read
//! it, and a response head is written as literals by static index, without a table.
//!
//! `listener::conn` hands it TLS connections that chose `h2` by ALPN; each request goes to
//! the same `http::Router` as HTTP/1.1's and HTTP/3's.

mod body;
mod conn;
pub(crate) mod frame;
mod hpack;
mod huffman;
mod request;
mod server;
mod upgrade;

pub(crate) use body::RecvBody;
pub(crate) use conn::{Config, Conn, Event};
pub(crate) use hpack::EncodedFields;
pub(crate) use server::{ConnError, Quiet, Server};
pub(crate) use upgrade::{OnUpgrade, Upgraded};
