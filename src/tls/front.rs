//! The TLS side of a listener. Most listeners have one `ServerConfig`. When the sites or
//! tunnels on a port differ in what they ask of clients (client certificates, ALPN), each has
//! its own, chosen from the ClientHello's SNI before the handshake goes on; the handshake
//! reports which one (the "profile") it used, so the request or tunnel can be matched to it.

use std::io;
use std::sync::Arc;

use rustls::server::{Acceptor, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use crate::certs::NameTable;

pub enum TlsFront {
    /// One configuration for every name on the listener (profile 0).
    Single(TlsAcceptor),
    /// A configuration per profile, looked up by SNI.
    BySni {
        names: NameTable<usize>,
        profiles: Vec<Arc<ServerConfig>>,
    },
}

impl TlsFront {
    /// One profile per entry of `profiles`, each serving its names. With a single profile
    /// the ClientHello is not looked at twice.
    pub fn new(profiles: Vec<(Vec<String>, Arc<ServerConfig>)>, reject_unknown: bool) -> Self {
        if let [(_, config)] = profiles.as_slice() {
            return TlsFront::Single(TlsAcceptor::from(config.clone()));
        }
        let mut names = NameTable::new(reject_unknown);
        let mut configs = Vec::with_capacity(profiles.len());
        for (i, (n, config)) in profiles.into_iter().enumerate() {
            names.insert(&n, i);
            configs.push(config);
        }
        TlsFront::BySni {
            names,
            profiles: configs,
        }
    }

    /// Runs the server side of the handshake; returns the stream and the profile it used.
    pub async fn accept<IO>(&self, io: IO) -> Result<(TlsStream<IO>, usize), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let failed = |profile| move |error| HandshakeError { error, profile };
        match self {
            TlsFront::Single(acceptor) => match acceptor.accept(io).await {
                Ok(stream) => Ok((stream, 0)),
                Err(e) => Err(failed(Some(0))(e)),
            },
            TlsFront::BySni { names, profiles } => {
                let start = LazyConfigAcceptor::new(Acceptor::default(), io)
                    .await
                    .map_err(failed(None))?;
                let hello = start.client_hello();
                let Some((i, config)) = names
                    .get(hello.server_name())
                    .and_then(|&i| Some((i, profiles.get(i)?.clone())))
                else {
                    let e = io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("nothing here is named {:?}", hello.server_name()),
                    );
                    return Err(failed(None)(e));
                };
                let stream = start.into_stream(config).await.map_err(failed(Some(i)))?;
                Ok((stream, i))
            }
        }
    }
}

/// A failed handshake, and the profile it was for when that was known.
#[derive(Debug)]
pub struct HandshakeError {
    pub error: io::Error,
    pub profile: Option<usize>,
}

impl HandshakeError {
    /// Why the client's certificate was refused, if that is what failed.
    pub fn refusal(&self) -> Option<String> {
        super::client_auth::refusal_reason(&self.error)
    }
}
