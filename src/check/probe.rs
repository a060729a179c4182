//! Enumerating what a server accepts, one hand-written ClientHello per question: each
//! protocol, then its suites in the server's order of preference (offer them all, remove the
//! one chosen, repeat), then key exchange groups one at a time, then TLS compression.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::CheckError;
use super::hello::{GROUPS, Hello, Protocol, X25519, group_name, is_legacy_ec_group};
use super::reply::{Reply, ServerHello, alert_name, read_certificates, read_reply};
use super::suites::{self, Suite};

/// More rounds than there are registered suites means the server is not removing choices.
const MAX_ROUNDS: usize = 400;

/// What one protocol version looks like on the server.
#[derive(Debug, Clone, Serialize)]
pub struct ProtocolFinding {
    pub protocol: Protocol,
    pub offered: bool,
    /// Accepted suites, the server's favourite first (when it has a preference).
    pub suites: Vec<Suite>,
    /// Whether the server picks by its own order (`false`: it follows the client's).
    pub server_order: Option<bool>,
    /// How the server answered the first hello for this protocol, when it refused.
    pub answer: String,
}

/// A key exchange group the server accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupFinding {
    pub id: u16,
    pub name: String,
    /// With TLS 1.3 (a key share) or with ECDHE in TLS 1.2 and older.
    pub tls13: bool,
    pub legacy: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Probes {
    pub protocols: Vec<ProtocolFinding>,
    pub groups: Vec<GroupFinding>,
    /// The server accepted DEFLATE compression (CRIME).
    pub compression: bool,
}

/// Sends hand-written hellos to one address.
pub(crate) struct Prober {
    pub(crate) addr: SocketAddr,
    pub(crate) server_name: Option<String>,
    pub(crate) timeout: Duration,
}

impl Prober {
    /// One connection: the hello out, the first answer back.
    pub(crate) async fn ask(&self, mut hello: Hello) -> Result<Reply, CheckError> {
        hello.server_name = self.server_name.clone();
        let connect = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr));
        let mut tcp = match connect.await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                return Err(CheckError::Connect {
                    addr: self.addr,
                    source,
                });
            }
            Err(_) => return Err(CheckError::ConnectTimeout { addr: self.addr }),
        };
        if tcp.write_all(&hello.to_bytes()).await.is_err() {
            return Ok(Reply::Closed);
        }
        Ok(read_reply(&mut tcp, self.timeout).await)
    }

    /// The certificate chain from a TLS 1.2-or-older handshake (sent in the clear), for
    /// servers that rustls, which needs forward-secret AEAD suites, cannot talk to.
    pub(crate) async fn legacy_chain(
        &self,
        protocols: &[ProtocolFinding],
    ) -> Result<Vec<Vec<u8>>, String> {
        let Some(f) = protocols
            .iter()
            .rev()
            .find(|f| f.offered && f.protocol != Protocol::Tls13)
        else {
            return Err("no TLS 1.2-or-older protocol to read the certificate with".into());
        };
        let mut hello = Hello::new(
            f.protocol,
            f.suites.iter().map(|s| s.id).collect(),
            groups_for(f.protocol),
        );
        hello.server_name = self.server_name.clone();
        let connect = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr));
        let mut tcp = match connect.await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(format!("cannot connect to {}: {e}", self.addr)),
            Err(_) => return Err(format!("{} did not accept a connection in time", self.addr)),
        };
        tcp.write_all(&hello.to_bytes())
            .await
            .map_err(|e| format!("cannot send a hello to {}: {e}", self.addr))?;
        read_certificates(&mut tcp, self.timeout).await
    }

    pub(crate) async fn scan(&self) -> Result<Probes, CheckError> {
        let mut protocols = Vec::new();
        for p in Protocol::ALL {
            protocols.push(self.protocol(p).await?);
        }
        let groups = self.groups(&protocols).await?;
        let compression = self.compression(&protocols).await?;
        Ok(Probes {
            protocols,
            groups,
            compression,
        })
    }

    async fn protocol(&self, p: Protocol) -> Result<ProtocolFinding, CheckError> {
        let mut remaining = match p {
            Protocol::Tls13 => suites::tls13_ids(),
            _ => suites::legacy_ids(),
        };
        let groups = groups_for(p);
        let mut accepted: Vec<u16> = Vec::new();
        let mut answer = String::new();
        for _ in 0..MAX_ROUNDS {
            if remaining.is_empty() {
                break;
            }
            let reply = self
                .ask(Hello::new(p, remaining.clone(), groups.clone()))
                .await?;
            if accepted.is_empty() {
                answer = describe(&reply);
            }
            match chosen(&reply, p) {
                Some(suite) if remaining.contains(&suite) => {
                    accepted.push(suite);
                    remaining.retain(|&s| s != suite);
                }
                _ => break,
            }
        }
        let server_order = match accepted.as_slice() {
            [first, second, ..] => {
                let reply = self
                    .ask(Hello::new(p, vec![*second, *first], groups.clone()))
                    .await?;
                chosen(&reply, p).map(|s| s == *first)
            }
            _ => None,
        };
        Ok(ProtocolFinding {
            protocol: p,
            offered: !accepted.is_empty(),
            suites: accepted.into_iter().map(suites::classify).collect(),
            server_order,
            answer,
        })
    }

    async fn groups(&self, protocols: &[ProtocolFinding]) -> Result<Vec<GroupFinding>, CheckError> {
        let mut found: Vec<GroupFinding> = Vec::new();
        let tls13 = protocols
            .iter()
            .any(|f| f.protocol == Protocol::Tls13 && f.offered);
        if tls13 {
            for &(id, name) in GROUPS {
                let mut hello = Hello::new(Protocol::Tls13, suites::tls13_ids(), vec![id]);
                hello.x25519_share = id == X25519;
                let reply = self.ask(hello).await?;
                if let Reply::Hello(h) = &reply
                    && h.version == Protocol::Tls13.wire()
                    && h.group == Some(id)
                {
                    found.push(GroupFinding {
                        id,
                        name: name.to_owned(),
                        tls13: true,
                        legacy: false,
                    });
                }
            }
        }
        // ECDHE with the newest older protocol that has any ECDHE suite.
        let legacy = protocols.iter().rev().find_map(|f| {
            let ecdhe: Vec<u16> = f
                .suites
                .iter()
                .filter(|s| s.name.contains("_ECDHE_") || s.name.contains("_ECDH_anon_"))
                .map(|s| s.id)
                .collect();
            (f.protocol != Protocol::Tls13 && !ecdhe.is_empty()).then_some((f.protocol, ecdhe))
        });
        if let Some((p, ecdhe)) = legacy {
            for &(id, _) in GROUPS.iter().filter(|g| is_legacy_ec_group(g.0)) {
                let reply = self.ask(Hello::new(p, ecdhe.clone(), vec![id])).await?;
                if chosen(&reply, p).is_some() {
                    match found.iter_mut().find(|g| g.id == id) {
                        Some(g) => g.legacy = true,
                        None => found.push(GroupFinding {
                            id,
                            name: group_name(id),
                            tls13: false,
                            legacy: true,
                        }),
                    }
                }
            }
        }
        Ok(found)
    }

    async fn compression(&self, protocols: &[ProtocolFinding]) -> Result<bool, CheckError> {
        let Some(f) = protocols
            .iter()
            .rev()
            .find(|f| f.offered && f.protocol != Protocol::Tls13)
        else {
            return Ok(false);
        };
        let mut hello = Hello::new(
            f.protocol,
            f.suites.iter().map(|s| s.id).collect(),
            groups_for(f.protocol),
        );
        hello.offer_compression = true;
        Ok(matches!(
            self.ask(hello).await?,
            Reply::Hello(ServerHello { compression: 1, .. })
        ))
    }
}

/// Groups offered while enumerating suites: every group that fits the protocol.
fn groups_for(p: Protocol) -> Vec<u16> {
    GROUPS
        .iter()
        .map(|g| g.0)
        .filter(|&id| p == Protocol::Tls13 || is_legacy_ec_group(id))
        .collect()
}

/// The suite the server chose, if it answered with the protocol asked for.
fn chosen(reply: &Reply, p: Protocol) -> Option<u16> {
    match reply {
        Reply::Hello(h) if h.version == p.wire() => Some(h.cipher_suite),
        _ => None,
    }
}

fn describe(reply: &Reply) -> String {
    match reply {
        Reply::Hello(h) => match Protocol::from_wire(h.version) {
            Some(v) => format!("ServerHello for {}", v.label()),
            None => format!("ServerHello for version 0x{:04x}", h.version),
        },
        Reply::Alert { description, .. } => {
            format!("alert {} ({description})", alert_name(*description))
        }
        Reply::Closed => "connection closed".into(),
        Reply::Invalid { reason } => format!("not TLS: {reason}"),
        Reply::Timeout => "no answer in time".into(),
    }
}
