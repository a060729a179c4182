//! `cluster:`: several candado instances behind one name, sharing state through Redis.
//!
//! This module owns the shared secret (`CANDADO_CLUSTER_KEY` or `cluster.key_file`), the
//! sealing of every value written to Redis (AES-256-GCM, a fresh random nonce per value, the
//! Redis key as associated data so a value cannot be moved to another key), and the Redis
//! connection (`rediss://` verified by rustls against `cluster.ca` or the system's roots).
//! What is shared: the session-ticket key ring (`tickets`), and the ACME account,
//! certificates, order locks and challenge answers (`acme`).
//!
//! Without `cluster:` in the config nothing here runs and nothing talks to Redis.

pub(crate) mod acme;
mod lease;
pub(crate) mod tickets;

use std::path::Path;

use anyhow::{Context, Result, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::config::ClusterSettings;

/// The environment variable that carries the shared key (base64 of 32 bytes).
pub(crate) const KEY_ENV: &str = "CANDADO_CLUSTER_KEY";
/// Redis ACL user and password, read from the environment so they stay out of config files
/// and logs (a password in the URL works too).
const REDIS_USERNAME_ENV: &str = "CANDADO_REDIS_USERNAME";
const REDIS_PASSWORD_ENV: &str = "CANDADO_REDIS_PASSWORD";
/// How long the shared key is, in bytes.
const KEY_LEN: usize = 32;

/// The one line printed when no key is given.
const HOW_TO_MAKE_A_KEY: &str = "cluster: no shared key: run `candado cluster keygen` once, then give every instance the same key in CANDADO_CLUSTER_KEY or in cluster.key_file (mode 0600)";

/// `candado cluster keygen`: a new shared key, base64.
pub(crate) fn keygen() -> Result<String> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(BASE64.encode(key))
}

/// The shared secret every instance of a cluster holds; seals and opens values in Redis.
pub(crate) struct ClusterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// From the environment first, then `cluster.key_file`; neither is an error saying how to
    /// make one.
    pub(crate) fn load(settings: &ClusterSettings) -> Result<Self> {
        if let Ok(text) = std::env::var(KEY_ENV) {
            return Self::parse(&text).context(KEY_ENV);
        }
        match &settings.key_file {
            Some(path) => Self::from_file(path),
            None => bail!("{HOW_TO_MAKE_A_KEY}"),
        }
    }

    fn from_file(path: &Path) -> Result<Self> {
        check_private(path)?;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cluster.key_file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("cluster.key_file {}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| anyhow::anyhow!("the cluster key is not base64 ({HOW_TO_MAKE_A_KEY})"))?;
        if bytes.len() != KEY_LEN {
            bail!(
                "the cluster key is {} bytes, not {KEY_LEN} ({HOW_TO_MAKE_A_KEY})",
                bytes.len()
            );
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow::anyhow!("the cluster key is not usable for AES-256-GCM"))?;
        Ok(ClusterKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `nonce || ciphertext || tag`, bound to `redis_key` so a value copied under another key
    /// does not open.
    pub(crate) fn seal(&self, redis_key: &str, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut out = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(redis_key.as_bytes()),
                &mut out,
            )
            .ok()?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Some(sealed)
    }

    /// The plain value, or `None` when it was sealed with another key, under another Redis
    /// key, or altered.
    pub(crate) fn open(&self, redis_key: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(redis_key.as_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A key file readable by others would hand the cluster's tickets to any local user.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cluster.key_file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "cluster.key_file {} has mode {mode:o}: make it readable by candado only (chmod 600)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

/// A client for the URL; `rediss://` verifies Redis's certificate (rustls with aws-lc-rs)
/// against `cluster.ca` or the system's roots, and its name against the URL's host.
fn client(settings: &ClusterSettings) -> Result<redis::Client> {
    let info = connection_info(&settings.redis)?;
    let made = match &settings.ca {
        Some(ca) => {
            let pem = std::fs::read(ca).with_context(|| format!("cluster.ca {}", ca.display()))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            redis::Client::build_with_tls(info, certs)
        }
        None => redis::Client::open(info),
    };
    made.map_err(|e| anyhow::anyhow!("cluster.redis: {}", e.category()))
}

/// The URL with the user and password from the environment, when set. Errors name the kind
/// of problem only: the URL may hold a password.
fn connection_info(url: &str) -> Result<redis::ConnectionInfo> {
    use redis::IntoConnectionInfo;
    let info = url
        .into_connection_info()
        .map_err(|e| anyhow::anyhow!("cluster.redis: not a usable Redis URL ({})", e.category()))?;
    let mut auth = info.redis_settings().clone();
    if let Ok(user) = std::env::var(REDIS_USERNAME_ENV) {
        auth = auth.set_username(user);
    }
    if let Ok(password) = std::env::var(REDIS_PASSWORD_ENV) {
        auth = auth.set_password(password);
    }
    Ok(info.set_redis_settings(auth))
}

/// One instance's view of the cluster: its settings, the shared key and a Redis client.
pub(crate) struct Cluster {
    pub(crate) settings: ClusterSettings,
    pub(crate) key: ClusterKey,
    /// This instance's name: `cluster.instance`, or the host name.
    pub(crate) instance: String,
    client: redis::Client,
}

impl Cluster {
    /// Checks the key and the Redis URL; does not connect (an instance starts with Redis down).
    pub(crate) fn open(settings: ClusterSettings) -> Result<Self> {
        let key = ClusterKey::load(&settings)?;
        let client = client(&settings)?;
        let instance = settings
            .instance
            .clone()
            .unwrap_or_else(crate::lan::host_name);
        Ok(Cluster {
            settings,
            key,
            instance,
            client,
        })
    }

    /// `PREFIX:NAME`, the Redis key of a shared value.
    pub(crate) fn redis_key(&self, name: &str) -> String {
        format!("{}:{name}", self.settings.key_prefix)
    }

    /// A connection for notices (pub/sub); the caller reconnects when it ends.
    pub(crate) async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        self.client.get_async_pubsub().await
    }

    /// A connection manager that reconnects by itself after Redis comes back.
    pub(crate) async fn connect(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(crate::config::defaults::CLUSTER_REDIS_TIMEOUT))
            .set_response_timeout(Some(crate::config::defaults::CLUSTER_REDIS_TIMEOUT))
            .set_number_of_retries(1);
        self.client.get_connection_manager_with_config(config).await
    }
}

/// Deletes a lock only while it still holds our token: a holder whose lease ran out must not
/// release the next holder's lock.
pub(crate) const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// 16 random bytes in hex: a lock token no other holder can have.
pub(crate) fn random_hex() -> Option<String> {
    let mut token = [0u8; 16];
    SystemRandom::new().fill(&mut token).ok()?;
    Some(token.iter().map(|b| format!("{b:02x}")).collect())
}

/// `CLUSTER_LOCK_LEASE` in milliseconds, as Redis's `PX` takes it.
pub(crate) fn lease_ms() -> u64 {
    u64::try_from(crate::config::defaults::CLUSTER_LOCK_LEASE.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_under_its_own_key_and_never_contains_the_plain_text() {
        let key = ClusterKey::parse(&keygen().unwrap()).unwrap();
        let plain = b"a private key, say";
        let sealed = key.seal("candado:tickets", plain).unwrap();
        assert!(!sealed.windows(plain.len()).any(|w| w == plain));
        assert_eq!(key.open("candado:tickets", &sealed).unwrap(), plain);
        assert!(key.open("candado:other", &sealed).is_none());
        let other = ClusterKey::parse(&keygen().unwrap()).unwrap();
        assert!(other.open("candado:tickets", &sealed).is_none());
        // A fresh nonce each time: the same value seals differently.
        assert_ne!(sealed, key.seal("candado:tickets", plain).unwrap());
    }

    #[test]
    fn a_key_that_is_not_32_bytes_of_base64_is_refused_with_how_to_make_one() {
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let e = ClusterKey::parse(bad).unwrap_err().to_string();
            assert!(e.contains("candado cluster keygen"), "{e}");
        }
    }
}
