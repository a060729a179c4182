//! Session-ticket keys shared by every instance, so a client resumes on whichever instance the
//! load balancer picks. The ring (current + previous key, with a generation number) lives in
//! Redis sealed with the cluster key; one instance at a time rotates it, under a lease (`SET NX
//! PX` with a random token, released by compare-and-delete). Each instance polls the ring and
//! keeps its last good copy, so a Redis outage only stops rotation, never resumption.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use redis::aio::ConnectionManager;
use rustls::server::ProducesTickets;

use super::{Cluster, RELEASE};
use crate::config::defaults;
use crate::locks::lock;

const KEY_LEN: usize = 32;
/// Generation number before the ring, so a ticket names the key that sealed it.
const GENERATION_LEN: usize = 8;
/// Binds tickets to their purpose (and, after it, to their TLS set-up).
const TICKET_AAD: &[u8] = b"candado session ticket";

/// The key ring as stored: the newest key, the one before it, and when it was rotated.
#[derive(Clone, PartialEq, Debug)]
struct Ring {
    generation: u64,
    rotated_at: u64,
    current: [u8; KEY_LEN],
    previous: Option<[u8; KEY_LEN]>,
}

impl Ring {
    fn fresh(generation: u64, previous: Option<[u8; KEY_LEN]>) -> Option<Ring> {
        let mut current = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut current).ok()?;
        Some(Ring {
            generation,
            rotated_at: unix_now(),
            current,
            previous,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 2 * KEY_LEN);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out.extend_from_slice(&self.rotated_at.to_be_bytes());
        out.extend_from_slice(&self.current);
        if let Some(p) = &self.previous {
            out.extend_from_slice(p);
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Ring> {
        let (generation, rest) = bytes.split_first_chunk::<8>()?;
        let (rotated_at, rest) = rest.split_first_chunk::<8>()?;
        let (current, rest) = rest.split_first_chunk::<KEY_LEN>()?;
        let previous = match rest.len() {
            0 => None,
            KEY_LEN => Some(rest.try_into().ok()?),
            _ => return None,
        };
        Some(Ring {
            generation: u64::from_be_bytes(*generation),
            rotated_at: u64::from_be_bytes(*rotated_at),
            current: *current,
            previous,
        })
    }

    fn due(&self, rotate_every: Duration) -> bool {
        unix_now().saturating_sub(self.rotated_at) >= rotate_every.as_secs()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A ring ready to use: its AEAD keys built once.
struct Keys {
    ring: Ring,
    current: LessSafeKey,
    previous: Option<LessSafeKey>,
}

impl Keys {
    fn of(ring: Ring) -> Option<Keys> {
        let key = |bytes: &[u8; KEY_LEN]| {
            UnboundKey::new(&AES_256_GCM, bytes)
                .ok()
                .map(LessSafeKey::new)
        };
        Some(Keys {
            current: key(&ring.current)?,
            previous: match &ring.previous {
                Some(p) => Some(key(p)?),
                None => None,
            },
            ring,
        })
    }
}

/// The rustls ticketer of every TLS set-up that may be shared across instances.
pub(crate) struct SharedTicketer {
    keys: ArcSwap<Keys>,
    /// `cluster.ticket_rotation`: also how long a ticket is good for.
    rotation: Duration,
}

impl std::fmt::Debug for SharedTicketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let generation = self.keys.load().ring.generation;
        write!(f, "SharedTicketer(generation {generation})")
    }
}

impl SharedTicketer {
    /// Starts with a key ring of this instance only (generation 0) until Redis answers.
    fn new(rotation: Duration) -> Option<Self> {
        Some(SharedTicketer {
            keys: ArcSwap::from_pointee(Keys::of(Ring::fresh(0, None)?)?),
            rotation,
        })
    }

    pub(crate) fn generation(&self) -> u64 {
        self.keys.load().ring.generation
    }

    fn install(&self, ring: Ring) -> bool {
        match Keys::of(ring) {
            Some(keys) => {
                self.keys.store(Arc::new(keys));
                true
            }
            None => false,
        }
    }
}

impl SharedTicketer {
    /// `generation || nonce || ciphertext+tag` under the current key, bound to `label`.
    fn seal(&self, label: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut body = plain.to_vec();
        keys.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label),
                &mut body,
            )
            .ok()?;
        let mut out = keys.ring.generation.to_be_bytes().to_vec();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Some(out)
    }

    /// Opens a ticket sealed under the current or the previous generation with the same
    /// label; anything older, from elsewhere or for another TLS set-up is a full handshake.
    fn open(&self, label: &[u8], cipher: &[u8]) -> Option<Vec<u8>> {
        let keys = self.keys.load();
        let (generation, rest) = cipher.split_first_chunk::<GENERATION_LEN>()?;
        let generation = u64::from_be_bytes(*generation);
        let key = if generation == keys.ring.generation {
            &keys.current
        } else if generation.checked_add(1) == Some(keys.ring.generation) {
            keys.previous.as_ref()?
        } else {
            return None;
        };
        let (nonce, body) = rest.split_at_checked(NONCE_LEN)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plain = key.open_in_place(nonce, Aad::from(label), &mut body).ok()?;
        Some(plain.to_vec())
    }

    /// The ticketer of one TLS set-up. Its label (the same on every instance, since they
    /// share the config) keeps a ticket from one set-up out of another, as separate
    /// ticketers did on a single instance.
    pub(crate) fn for_setup(self: &Arc<Self>, label: &str) -> Arc<dyn ProducesTickets> {
        let mut aad = TICKET_AAD.to_vec();
        aad.push(0);
        aad.extend_from_slice(label.as_bytes());
        Arc::new(SetupTicketer {
            ring: self.clone(),
            aad,
        })
    }
}

/// A `SharedTicketer` bound to one TLS set-up.
#[derive(Debug)]
struct SetupTicketer {
    ring: Arc<SharedTicketer>,
    aad: Vec<u8>,
}

impl ProducesTickets for SetupTicketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.ring.rotation.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.ring.seal(&self.aad, plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.ring.open(&self.aad, cipher)
    }
}

/// Starts the ticketer and the task that keeps it in step with Redis.
pub(crate) fn start(cluster: Arc<Cluster>) -> Option<Arc<SharedTicketer>> {
    let ticketer = Arc::new(SharedTicketer::new(cluster.settings.ticket_rotation)?);
    tokio::spawn(keep_in_step(cluster, ticketer.clone()));
    Some(ticketer)
}

/// Polls the ring forever; logs once when Redis goes away and once when it is back.
async fn keep_in_step(cluster: Arc<Cluster>, ticketer: Arc<SharedTicketer>) {
    let mut conn: Option<ConnectionManager> = None;
    let mut health = Health::Sharing;
    let mut seen: Vec<String> = Vec::new();
    let gauges = &crate::observe::metrics().cluster;
    gauges.enabled.store(true, Ordering::Relaxed);
    *lock(&gauges.instance) = cluster.instance.clone();
    loop {
        if conn.is_none() {
            conn = cluster.connect().await.ok();
        }
        let result = match conn.as_mut() {
            Some(c) => match sync_once(&cluster, &ticketer, c).await {
                Ok(()) => heartbeat(&cluster, &ticketer, c, &mut seen).await,
                Err(e) => Err(e),
            },
            None => Err(SyncError::Unreachable),
        };
        let up = !matches!(result, Err(SyncError::Unreachable));
        gauges.redis_up.store(up, Ordering::Relaxed);
        gauges
            .ticket_generation
            .store(ticketer.generation(), Ordering::Relaxed);
        let now = match result {
            Ok(()) => Health::Sharing,
            Err(SyncError::Unreachable) => Health::Down,
            Err(SyncError::Foreign) => Health::Foreign,
        };
        if now != health {
            say(&cluster, &ticketer, now);
            health = now;
        }
        tokio::time::sleep(defaults::CLUSTER_SYNC_INTERVAL).await;
    }
}

/// Says "I am here" and logs the instances seen whenever they change: a sorted set of names
/// scored by the time each last spoke, where a name silent for three polls drops out.
async fn heartbeat(
    cluster: &Cluster,
    ticketer: &SharedTicketer,
    conn: &mut ConnectionManager,
    seen: &mut Vec<String>,
) -> Result<(), SyncError> {
    let key = cluster.redis_key("instances");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let silent_ms = 3 * u64::try_from(defaults::CLUSTER_SYNC_INTERVAL.as_millis()).unwrap_or(0);
    // The first two replies are ignored: the pipeline answers with ZRANGE's only.
    let (mut names,): (Vec<String>,) = redis::pipe()
        .cmd("ZADD")
        .arg(&key)
        .arg(now_ms)
        .arg(&cluster.instance)
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(&key)
        .arg("-inf")
        .arg(now_ms.saturating_sub(silent_ms))
        .ignore()
        .cmd("ZRANGE")
        .arg(&key)
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    names.sort();
    *lock(&crate::observe::metrics().cluster.instances) = names.clone();
    if names != *seen {
        tracing::info!(
            instance = %cluster.instance,
            generation = ticketer.generation(),
            "cluster: instances seen: {}",
            names.join(", ")
        );
        *seen = names;
    }
    Ok(())
}

/// How the last poll went; each change is logged once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Sharing,
    Down,
    /// A ring sealed with another key is in Redis: this instance keeps its own.
    Foreign,
}

fn say(cluster: &Cluster, ticketer: &SharedTicketer, now: Health) {
    let generation = ticketer.generation();
    match now {
        Health::Sharing => tracing::info!(
            instance = %cluster.instance,
            generation,
            "cluster: Redis is reachable again; sharing session-ticket keys"
        ),
        Health::Down => tracing::warn!(
            instance = %cluster.instance,
            "cluster: Redis is unreachable; serving on with the session-ticket keys held (generation {generation})"
        ),
        Health::Foreign => tracing::warn!(
            instance = %cluster.instance,
            "cluster: the session-ticket keys in Redis ({}) do not open with this instance's cluster key: give every instance the same CANDADO_CLUSTER_KEY",
            cluster.redis_key("tickets")
        ),
    }
}

enum SyncError {
    Unreachable,
    /// A ring sealed with another key: never overwritten, since another cluster may own it.
    Foreign,
}

impl From<redis::RedisError> for SyncError {
    fn from(_: redis::RedisError) -> Self {
        SyncError::Unreachable
    }
}

/// Reads the ring and adopts it; rotates it (or publishes the one held, when Redis lost it)
/// under the lock when it is due or missing.
async fn sync_once(
    cluster: &Cluster,
    ticketer: &SharedTicketer,
    conn: &mut ConnectionManager,
) -> Result<(), SyncError> {
    let key = cluster.redis_key("tickets");
    let stored = read_ring(cluster, &key, conn).await?;
    if let Some(ring) = &stored {
        adopt(cluster, ticketer, ring.clone());
        if !ring.due(cluster.settings.ticket_rotation) {
            return Ok(());
        }
    }
    let lock = cluster.redis_key("lock:tickets");
    let Some(token) = acquire(&lock, conn).await? else {
        return Ok(()); // Another instance is on it; its ring arrives at the next poll.
    };
    let result = rotate_locked(cluster, ticketer, &key, conn).await;
    let _: redis::RedisResult<i64> = redis::Script::new(RELEASE)
        .key(&lock)
        .arg(&token)
        .invoke_async(conn)
        .await;
    result
}

async fn rotate_locked(
    cluster: &Cluster,
    ticketer: &SharedTicketer,
    key: &str,
    conn: &mut ConnectionManager,
) -> Result<(), SyncError> {
    // Read again under the lock: another holder may have rotated between our read and lock.
    let stored = read_ring(cluster, key, conn).await?;
    let held = ticketer.keys.load().ring.clone();
    let next = match stored {
        Some(ring) if !ring.due(cluster.settings.ticket_rotation) => {
            adopt(cluster, ticketer, ring);
            return Ok(());
        }
        Some(ring) => Ring::fresh(ring.generation + 1, Some(ring.current)),
        // Redis lost the ring (restarted empty): publish ours so resumption goes on.
        None if held.generation > 0 && !held.due(cluster.settings.ticket_rotation) => Some(held),
        None if held.generation > 0 => Ring::fresh(held.generation + 1, Some(held.current)),
        None => Ring::fresh(1, None),
    };
    let Some(next) = next else {
        return Ok(());
    };
    let Some(sealed) = cluster.key.seal(key, &next.encode()) else {
        return Ok(());
    };
    let () = redis::cmd("SET")
        .arg(key)
        .arg(sealed)
        .query_async(conn)
        .await?;
    adopt(cluster, ticketer, next);
    Ok(())
}

async fn read_ring(
    cluster: &Cluster,
    key: &str,
    conn: &mut ConnectionManager,
) -> Result<Option<Ring>, SyncError> {
    let sealed: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(conn).await?;
    let Some(sealed) = sealed else {
        return Ok(None);
    };
    let ring = cluster
        .key
        .open(key, &sealed)
        .and_then(|plain| Ring::decode(&plain))
        .ok_or(SyncError::Foreign)?;
    Ok(Some(ring))
}

/// The lease: `SET lock TOKEN NX PX lease`; the token is random so only we release it.
async fn acquire(lock: &str, conn: &mut ConnectionManager) -> Result<Option<String>, SyncError> {
    let token = super::random_hex().ok_or(SyncError::Unreachable)?;
    let set: Option<String> = redis::cmd("SET")
        .arg(lock)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(super::lease_ms())
        .query_async(conn)
        .await?;
    Ok(set.map(|_| token))
}

fn adopt(cluster: &Cluster, ticketer: &SharedTicketer, ring: Ring) {
    let held = ticketer.keys.load().ring.generation;
    if ring.generation == held && held != 0 {
        return;
    }
    let generation = ring.generation;
    if ticketer.install(ring) {
        tracing::info!(
            instance = %cluster.instance,
            generation,
            "cluster: session-ticket keys now at generation {generation}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticketer(ring: &Ring) -> Arc<SharedTicketer> {
        Arc::new(SharedTicketer {
            keys: ArcSwap::from_pointee(Keys::of(ring.clone()).unwrap()),
            rotation: defaults::TICKET_KEY_ROTATION,
        })
    }

    #[test]
    fn a_ring_survives_encoding_with_and_without_a_previous_key() {
        let first = Ring::fresh(1, None).unwrap();
        let second = Ring::fresh(2, Some(first.current)).unwrap();
        for ring in [first, second] {
            assert_eq!(Ring::decode(&ring.encode()), Some(ring));
        }
        assert_eq!(Ring::decode(&[0u8; 20]), None);
    }

    #[test]
    fn a_ticket_opens_on_another_instance_with_the_same_ring_and_one_rotation_later() {
        let first = Ring::fresh(1, None).unwrap();
        let ring_b = ticketer(&first);
        let a = ticketer(&first).for_setup("site a");
        let b = ring_b.for_setup("site a");
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        let second = Ring::fresh(2, Some(first.current)).unwrap();
        assert!(ring_b.install(second.clone()));
        assert_eq!(b.decrypt(&ticket).unwrap(), b"session state");
        let third = Ring::fresh(3, Some(second.current)).unwrap();
        assert!(ring_b.install(third));
        assert_eq!(b.decrypt(&ticket), None);
        let stranger = ticketer(&Ring::fresh(1, None).unwrap()).for_setup("site a");
        assert_eq!(stranger.decrypt(&a.encrypt(b"x").unwrap()), None);
    }

    #[test]
    fn a_ticket_from_one_tls_setup_does_not_open_in_another() {
        let ring = ticketer(&Ring::fresh(1, None).unwrap());
        let ticket = ring.for_setup("site a").encrypt(b"state").unwrap();
        assert_eq!(ring.for_setup("site b").decrypt(&ticket), None);
        assert!(ring.for_setup("site a").decrypt(&ticket).is_some());
    }
}
