//! TCP TLS tunnels: a plain TCP program (a chat, an echo, a recorder) behind candado, reached
//! with openssl s_client and rustls clients; client certificates required, checked against a
//! CA, an allow list and a CRL; SNI routing, PROXY protocol v2, client mode, reload, idle
//! timeout and the `candado tunnel` command line.

mod client_auth;
mod client_mode;
mod relay;
