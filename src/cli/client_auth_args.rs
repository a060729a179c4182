//! The mutual-TLS flags `tunnel` and `proxy` share: which client certificates to ask for.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::config::{self, AllowList, ClientAuth, ClientCa};

#[derive(Debug, Clone, Default, Args)]
pub(super) struct ClientAuthArgs {
    /// Ask for client certificates issued by the CAs in this PEM file (`local`: the development
    /// CA, which `candado cert issue --client NAME` issues from).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<String>,
    /// Whether a client certificate is required or optional [default: required].
    #[arg(long, value_enum, value_name = "MODE", requires = "client_ca")]
    client_auth: Option<ClientAuthArg>,
    /// Let through only certificates with this subject CN (repeatable; any --allow-* matches).
    #[arg(long, value_name = "CN", requires = "client_ca")]
    allow_cn: Vec<String>,
    /// … with this SAN DNS name.
    #[arg(long, value_name = "NAME", requires = "client_ca")]
    allow_dns: Vec<String>,
    /// … with this SAN URI (a SPIFFE ID).
    #[arg(long, value_name = "URI", requires = "client_ca")]
    allow_uri: Vec<String>,
    /// … with this SHA-256 SPKI pin (hex or base64).
    #[arg(long, value_name = "PIN", requires = "client_ca")]
    allow_spki: Vec<String>,
    /// A revocation list (PEM or DER) for client certificates (repeatable).
    #[arg(long, value_name = "FILE", requires = "client_ca")]
    crl: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ClientAuthArg {
    Required,
    Optional,
}

impl ClientAuthArgs {
    pub(super) fn any(&self) -> bool {
        self.client_ca.is_some()
    }

    /// The `client_auth` these flags ask for, if any.
    pub(super) fn settings(&self) -> Result<Option<ClientAuth>> {
        let Some(ca) = &self.client_ca else {
            return Ok(None);
        };
        let spki_sha256 = self
            .allow_spki
            .iter()
            .map(|p| config::parse_spki_pin(p).map_err(|e| anyhow::anyhow!("--allow-spki: {e}")))
            .collect::<Result<_>>()?;
        let allow = AllowList {
            dns: self
                .allow_dns
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            uri: self.allow_uri.clone(),
            cn: self.allow_cn.clone(),
            spki_sha256,
        };
        Ok(Some(ClientAuth {
            required: !matches!(self.client_auth, Some(ClientAuthArg::Optional)),
            ca: match ca.as_str() {
                "local" => ClientCa::Local,
                file => ClientCa::File(file.into()),
            },
            crls: self.crl.clone(),
            allow: (allow != AllowList::default()).then_some(allow),
            forward_pem: false,
        }))
    }
}
