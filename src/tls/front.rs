//! The TLS side of a listener. Most listeners have one `ServerConfig`. When the sites or
//! tunnels on a port differ in what they ask of clients (client certificates, ALPN), each has
//! its own, chosen from the ClientHello's SNI before the handshake goes on; the handshake
//! reports which one (the "profile") it used, so the request or tunnel can be matched to it.
//! ACME TLS-ALPN-01 validations get a configuration of their own, which asks the CA for no
//! client certificate.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;

use rustls::server::{Accepted, Acceptor, ClientHello, ServerConfig};
use rustls::{CipherSuite, CommonState, HandshakeKind, NamedGroup, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};

use super::ClientIdentity;
use crate::certs::NameTable;

pub(crate) enum TlsFront {
    /// One configuration for every name on the listener (profile 0).
    Single(TlsAcceptor),
    /// A configuration per profile, looked up by SNI.
    BySni {
        names: NameTable<usize>,
        profiles: Vec<Arc<ServerConfig>>,
        /// For `acme-tls/1` handshakes, when the profiles ask for client certificates.
        acme: Option<Arc<ServerConfig>>,
    },
}

impl TlsFront {
    /// One profile per entry of `profiles`, each serving its names; `acme`: the configuration
    /// for TLS-ALPN-01 validations, needed only when profiles ask for client certificates.
    /// With a single profile and no such need, the ClientHello is not looked at twice.
    pub(crate) fn new(
        profiles: Vec<(Vec<String>, Arc<ServerConfig>)>,
        reject_unknown: bool,
        acme: Option<Arc<ServerConfig>>,
    ) -> Self {
        if let ([(_, config)], None) = (profiles.as_slice(), &acme) {
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
            acme,
        }
    }

    /// Runs the server side of the handshake; returns the stream and what was agreed.
    pub(crate) async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<(TlsStream<IO>, Handshake), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let (stream, profile) = self.handshake(io).await?;
        let session = stream.get_ref().1;
        let agreed = Handshake::of(session, session.server_name().map(str::to_owned), profile);
        Ok((stream, agreed))
    }

    async fn handshake<IO>(&self, io: IO) -> Result<(TlsStream<IO>, usize), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let failed = |profile| move |error| HandshakeError { error, profile };
        match self {
            TlsFront::Single(acceptor) => match acceptor.accept(io).await {
                Ok(stream) => Ok((stream, 0)),
                Err(e) => Err(failed(Some(0))(e)),
            },
            TlsFront::BySni { .. } => {
                let start = LazyConfigAcceptor::new(Acceptor::default(), io)
                    .await
                    .map_err(failed(None))?;
                let (i, config) = self.choose(&start.client_hello()).map_err(failed(None))?;
                let stream = start.into_stream(config).await.map_err(failed(Some(i)))?;
                Ok((stream, i))
            }
        }
    }

    /// Runs the server side of the handshake of an HTTPS connection, on a TLS stream that
    /// can give its buffers back while the connection waits (tunnels use [`Self::accept`]).
    /// The SNI is known when the listener chose a profile by it, or when debug logs are on.
    pub(crate) async fn accept_http<IO>(
        &self,
        mut io: IO,
        first: BytesMut,
    ) -> Result<(super::stream::TlsStream<IO>, Handshake), HandshakeError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let failed = |profile| move |error| HandshakeError { error, profile };
        let (profile, config, sni, received) = match self {
            TlsFront::Single(acceptor) if !tracing::enabled!(tracing::Level::DEBUG) => {
                (0, acceptor.config().clone(), None, first)
            }
            _ => {
                let (accepted, received) = read_client_hello(&mut io, first)
                    .await
                    .map_err(failed(None))?;
                let hello = accepted.client_hello();
                let (i, config) = self.choose(&hello).map_err(failed(None))?;
                (i, config, hello.server_name().map(str::to_owned), received)
            }
        };
        let stream = super::stream::TlsStream::accept(io, config, received)
            .await
            .map_err(failed(Some(profile)))?;
        let agreed = Handshake::of(stream.session(), sni, profile);
        Ok((stream, agreed))
    }

    /// The profile a ClientHello gets: by its SNI, or the validation configuration for an
    /// ACME TLS-ALPN-01 validation when the profiles ask for client certificates.
    fn choose(&self, hello: &ClientHello<'_>) -> io::Result<(usize, Arc<ServerConfig>)> {
        let (names, profiles, acme) = match self {
            TlsFront::Single(acceptor) => return Ok((0, acceptor.config().clone())),
            TlsFront::BySni {
                names,
                profiles,
                acme,
            } => (names, profiles, acme),
        };
        if let Some(acme) = acme
            && super::resolver::is_acme_validation(hello)
        {
            return Ok((0, acme.clone()));
        }
        names
            .get(hello.server_name())
            .and_then(|&i| Some((i, profiles.get(i)?.clone())))
            .ok_or_else(|| {
                let name = hello.server_name().map(str::to_owned);
                io::Error::new(io::ErrorKind::InvalidData, UnknownName(name))
            })
    }
}

/// Reads a connection's ClientHello (`received`: its bytes read already), to choose its
/// configuration before the handshake goes on; the bytes read, which the handshake then
/// starts from. A ClientHello rustls refuses is answered with its alert.
async fn read_client_hello<IO>(
    io: &mut IO,
    mut received: BytesMut,
) -> io::Result<(Accepted, BytesMut)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut acceptor = Acceptor::default();
    let mut fed = 0;
    loop {
        if fed == received.len() {
            if fed >= MAX_CLIENT_HELLO {
                let e = "ClientHello over 64 KiB (rustls's limit on a handshake message)";
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            received.reserve(4096);
            if io.read_buf(&mut received).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        let mut fresh = &received[fed..];
        while !fresh.is_empty() && acceptor.read_tls(&mut fresh)? > 0 {}
        fed = received.len();
        match acceptor.accept() {
            Ok(Some(accepted)) => return Ok((accepted, received)),
            Ok(None) => {}
            Err((e, mut alert)) => {
                let mut out = Vec::new();
                if alert.write(&mut out).is_ok() {
                    let _ = io.write_all(&out).await;
                }
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

/// rustls's limit on a handshake message (64 KiB), with room for its record headers.
const MAX_CLIENT_HELLO: usize = 0xffff + 4096;

/// What a finished handshake agreed on: everything the HTTP and tunnel paths (and later
/// protocols) need to know about the TLS connection, read once.
#[derive(Debug, Clone)]
pub(crate) struct Handshake {
    /// Which profile (site or tunnel set-up) of the listener the client got, by SNI.
    pub profile: usize,
    pub sni: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<ProtocolVersion>,
    pub cipher: Option<CipherSuite>,
    pub group: Option<NamedGroup>,
    pub resumed: bool,
    /// The verified client certificate, when the client presented one.
    pub client: Option<Arc<ClientIdentity>>,
}

impl Handshake {
    fn of(session: &CommonState, sni: Option<String>, profile: usize) -> Self {
        Handshake {
            profile,
            sni,
            alpn: session.alpn_protocol().map(<[u8]>::to_vec),
            version: session.protocol_version(),
            cipher: session.negotiated_cipher_suite().map(|s| s.suite()),
            group: session.negotiated_key_exchange_group().map(|g| g.name()),
            resumed: matches!(session.handshake_kind(), Some(HandshakeKind::Resumed)),
            client: session
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| ClientIdentity::from_der(leaf))
                .map(Arc::new),
        }
    }

    /// An ACME TLS-ALPN-01 validation: the handshake was the whole exchange (RFC 8737 §3).
    pub(crate) fn is_acme_validation(&self) -> bool {
        self.alpn.as_deref() == Some(super::ACME_TLS_ALPN)
    }

    /// The version as OpenSSL and nginx name it ("TLSv1.3").
    pub(crate) fn version_name(&self) -> Option<&'static str> {
        self.version.map(|v| match v {
            ProtocolVersion::TLSv1_3 => "TLSv1.3",
            ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "other",
        })
    }
}

/// The ClientHello named no site or tunnel of the listener (and unknown names are refused).
#[derive(Debug, thiserror::Error)]
#[error("nothing here is named {0:?}")]
pub(crate) struct UnknownName(pub Option<String>);

/// A failed handshake, and the profile it was for when that was known.
#[derive(Debug)]
pub(crate) struct HandshakeError {
    pub error: io::Error,
    pub profile: Option<usize>,
}

impl HandshakeError {
    /// Why the client's certificate was refused, if that is what failed.
    pub(crate) fn refusal(&self) -> Option<String> {
        super::client_auth::refusal_reason(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Offer, provider, server_config};
    use rustls::client::ResolvesClientCert;
    use rustls::sign::CertifiedKey;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Records whether the server sent a CertificateRequest; presents nothing.
    #[derive(Debug, Default)]
    struct Asked(AtomicBool);

    impl ResolvesClientCert for Asked {
        fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            self.0.store(true, Ordering::SeqCst);
            None
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    /// A front with one profile that requires client certificates, and the validation
    /// configuration beside it; a client offering `alpn` to it (trusting the server's
    /// self-signed certificate): the ALPN it got, and whether it was asked for a certificate.
    /// `http`: the HTTPS listener's handshake ([`TlsFront::accept_http`]), else a tunnel's.
    async fn handshake(alpn: &[u8], http: bool) -> (Option<Vec<u8>>, bool) {
        let p = provider();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let served = CertifiedKey::from_der(vec![cert.der().clone()], der, &p).unwrap();
        // The same certificate for every handshake (validations included): what is tested is
        // which configuration answers, not the validation certificate itself.
        let mut resolver = rustls::server::ResolvesServerCertUsingSni::new();
        resolver.add("a.test", served).unwrap();
        let resolver = Arc::new(resolver);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots.clone()),
            p.clone(),
        )
        .build()
        .unwrap();
        let mtls = Offer {
            client_auth: Some(verifier),
            ..Offer::http(true)
        };
        let validations = Offer {
            alpn: Vec::new(),
            acme: true,
            client_auth: None,
        };
        let policy = crate::config::TlsPolicy::Intermediate;
        let profile = server_config(policy, p.clone(), resolver.clone(), mtls).unwrap();
        let acme = server_config(policy, p.clone(), resolver, validations).unwrap();
        let front = TlsFront::new(vec![(vec!["a.test".into()], profile)], false, Some(acme));
        let asked = Arc::new(Asked::default());
        let mut client = rustls::ClientConfig::builder_with_provider(p)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_cert_resolver(asked.clone());
        client.alpn_protocols = vec![alpn.to_vec()];
        let (near, far) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(async move {
            match http {
                true => {
                    // As the listener does: the first bytes are read before the handshake.
                    let mut far = far;
                    let mut first = BytesMut::zeroed(3);
                    far.read_exact(&mut first).await.unwrap();
                    front
                        .accept_http(far, first)
                        .await
                        .map(|(_, agreed)| agreed)
                }
                false => front.accept(far).await.map(|(_, agreed)| agreed),
            }
        });
        let name = rustls_pki_types::ServerName::try_from("a.test").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(name, near)
            .await
            .unwrap();
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        drop(tls);
        // What the server says was agreed is what the client got, SNI included.
        if let Ok(Ok(agreed)) = server.await {
            assert_eq!(agreed.alpn, alpn);
            assert_eq!(agreed.sni.as_deref(), Some("a.test"));
        }
        (alpn, asked.0.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn acme_validations_are_never_asked_for_a_client_certificate() {
        for http in [true, false] {
            let (alpn, asked) = handshake(crate::tls::ACME_TLS_ALPN, http).await;
            assert_eq!(alpn.as_deref(), Some(crate::tls::ACME_TLS_ALPN));
            assert!(!asked, "the validation was asked for a client certificate");
            // The site's own handshakes are.
            let (alpn, asked) = handshake(crate::tls::ALPN_H2, http).await;
            assert_eq!(alpn.as_deref(), Some(crate::tls::ALPN_H2));
            assert!(asked);
        }
    }
}
