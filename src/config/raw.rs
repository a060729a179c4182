//! A serde mirror of candado's YAML config. Nothing here is validated beyond its shape:
//! `model.rs` turns it into typed settings. Unknown keys are errors everywhere, so that a
//! typo in a security setting never passes silently.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub tls: Option<RawTls>,
    pub timeouts: Option<RawTimeouts>,
    pub limits: Option<RawLimits>,
    pub log: Option<RawLog>,
    pub acme: Option<RawAcme>,
    pub sites: Option<Spanned<Vec<RawSite>>>,
    pub tunnels: Option<Spanned<Vec<Spanned<RawTunnel>>>>,
    pub admin: Option<Spanned<RawAdmin>>,
    pub cluster: Option<Spanned<RawCluster>>,
}

/// `cluster: {redis: URL, key_prefix: candado, instance: NAME, key_file: PATH, ca: PEM}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub redis: Option<Spanned<String>>,
    pub key_prefix: Option<Spanned<String>>,
    pub instance: Option<String>,
    pub key_file: Option<String>,
    pub ca: Option<Spanned<String>>,
    pub ticket_rotation: Option<Spanned<String>>,
}

/// `admin: 127.0.0.1:2019`, `admin: off`, or a mapping for remote access.
#[derive(Debug)]
pub(crate) enum RawAdmin {
    Address(String),
    Full(Box<RawAdminSettings>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdminSettings {
    pub listen: String,
    pub allow_remote: Option<bool>,
    pub token: Option<String>,
    pub client_auth: Option<Spanned<RawClientAuth>>,
    pub certificate: Option<Spanned<RawCertificate>>,
}

// Hand-written for the same reason as `RawCertificate`'s: a typo inside the mapping is named.
impl<'de> Deserialize<'de> for RawAdmin {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AdminVisitor;
        impl<'de> Visitor<'de> for AdminVisitor {
            type Value = RawAdmin;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an address (127.0.0.1:2019), `off`, or a mapping with `listen`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawAdmin::Address(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawAdmin::Address(v.to_string()))
            }
            // YAML 1.1 reads a bare `off` as false.
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                match v {
                    false => Ok(RawAdmin::Address("off".to_owned())),
                    true => Err(E::invalid_value(de::Unexpected::Bool(v), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawAdminSettings::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|s| RawAdmin::Full(Box::new(s)))
            }
        }
        deserializer.deserialize_any(AdminVisitor)
    }
}

/// `tunnels:` entries: TLS for raw TCP services (server mode) or to them (`tls_client`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTunnel {
    pub name: Option<String>,
    pub listen: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
    pub names: Option<Vec<Spanned<String>>>,
    pub certificate: Option<Spanned<RawCertificate>>,
    pub alpn: Option<Vec<Spanned<String>>>,
    pub proxy_protocol: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub client_auth: Option<Spanned<RawClientAuth>>,
    pub tls_client: Option<Spanned<RawTlsClient>>,
}

/// Mutual TLS: which client certificates a site or tunnel accepts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClientAuth {
    pub mode: Option<Spanned<String>>,
    pub ca: Spanned<String>,
    pub crl: Option<Spanned<OneOrMany>>,
    pub allow: Option<Spanned<RawAllow>>,
    pub forward_pem: Option<bool>,
}

/// Client identities let through; any one match is enough.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAllow {
    pub dns: Option<Vec<String>>,
    pub uri: Option<Vec<String>>,
    pub cn: Option<Vec<String>>,
    pub spki_sha256: Option<Vec<String>>,
}

/// Client mode: accept plain TCP, speak verified TLS to `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTlsClient {
    pub ca: Option<Spanned<String>>,
    pub server_name: Option<Spanned<String>>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub alpn: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    pub directory: Option<Spanned<String>>,
    pub email: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
    pub eab: Option<RawEab>,
    pub challenge: Option<Spanned<String>>,
    pub storage: Option<String>,
    pub while_pending: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEab {
    pub kid: String,
    pub hmac_key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub policy: Option<Spanned<String>>,
    pub unknown_sni: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTimeouts {
    pub handshake: Option<Spanned<String>>,
    pub header_read: Option<Spanned<String>>,
    pub idle: Option<Spanned<String>>,
    pub write: Option<Spanned<String>>,
    pub upgrade_idle: Option<Spanned<String>>,
    pub shutdown: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub max_header_bytes: Option<Spanned<u64>>,
    pub max_uri_bytes: Option<Spanned<u64>>,
    pub max_connections: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<Spanned<String>>,
    pub access: Option<bool>,
    pub file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSite {
    pub names: Spanned<Vec<Spanned<String>>>,
    pub listen: Option<Spanned<String>>,
    pub http_redirect: Option<Spanned<String>>,
    pub certificate: Option<Spanned<RawCertificate>>,
    pub root: Option<Spanned<String>>,
    #[serde(rename = "static")]
    pub static_files: Option<RawStatic>,
    pub hsts: Option<RawHsts>,
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    pub proxy: Option<Vec<Spanned<RawRoute>>>,
    pub max_body_bytes: Option<Spanned<u64>>,
    pub secure_cookies: Option<bool>,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    pub allow_underscore_headers: Option<bool>,
    pub basic_auth: Option<Vec<Spanned<RawAuth>>>,
    pub redirects: Option<Spanned<BTreeMap<String, String>>>,
    pub client_auth: Option<Spanned<RawClientAuth>>,
    pub compression: Option<bool>,
    /// `lan: true`: also serve this site on the machine's LAN addresses (see the `lan` module).
    pub lan: Option<Spanned<bool>>,
    pub http3: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub path: String,
    /// User name → bcrypt or argon2 hash.
    pub users: BTreeMap<String, String>,
}

/// `proxy:` entries: a path prefix and where to send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub path: Spanned<String>,
    pub to: Spanned<OneOrMany>,
    pub strip_prefix: Option<bool>,
    pub host_header: Option<Spanned<String>>,
    pub request_headers: Option<RawHeaderOps>,
    pub response_headers: Option<RawHeaderOps>,
    pub timeouts: Option<RawProxyTimeouts>,
    pub balance: Option<Spanned<String>>,
    pub health_check: Option<RawHealthCheck>,
    pub ca: Option<String>,
    pub http2: Option<bool>,
    pub allow_clients: Option<Spanned<RawAllow>>,
    pub compression: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealthCheck {
    pub path: Spanned<String>,
    pub interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderOps {
    pub set: Option<BTreeMap<String, String>>,
    pub remove: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxyTimeouts {
    pub connect: Option<Spanned<String>>,
    pub response: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStatic {
    pub listing: Option<bool>,
    pub hidden: Option<bool>,
    pub follow_symlinks: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHsts {
    pub enabled: Option<bool>,
    pub max_age: Option<Spanned<String>>,
    pub include_subdomains: Option<bool>,
    pub preload: Option<Spanned<bool>>,
}

/// `certificate: local` or `certificate: {cert: FILE, key: FILE}`.
#[derive(Debug)]
pub(crate) enum RawCertificate {
    Keyword(String),
    Files(RawCertFiles),
    /// Several certificates for the same names (e.g. ECDSA and RSA), in order of preference.
    Several(Vec<RawCertFiles>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCertFiles {
    pub cert: String,
    pub key: String,
}

// Hand-written so that a typo inside the mapping is reported as such (an untagged enum
// would only say "did not match any variant").
impl<'de> Deserialize<'de> for RawCertificate {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CertVisitor;
        impl<'de> Visitor<'de> for CertVisitor {
            type Value = RawCertificate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`local`, a mapping with `cert` and `key` file paths, or a list of them",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawCertificate::Keyword(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawCertFiles::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawCertificate::Files)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<RawCertFiles>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawCertificate::Several)
            }
        }
        deserializer.deserialize_any(CertVisitor)
    }
}
