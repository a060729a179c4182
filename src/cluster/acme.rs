//! ACME shared by the instances of a cluster.
//!
//! - **Store**: the account and certificates live in one Redis hash whose fields are the file
//!   store's keys (`DIRECTORY/account.json`, `DIRECTORY/certificates/NAME`), each value sealed
//!   with the cluster key. Every instance keeps a local copy in `acme.storage` and serves from
//!   it, so it starts and serves with Redis down; a poll (and a pub/sub notice, sooner) brings
//!   in what others stored, and values Redis lost (restarted empty) are published again.
//! - **Order lock**: `SET lock "INSTANCE TOKEN" NX PX lease`, renewed while the order runs,
//!   released by compare-and-delete. What the holder stored is published only while its lock
//!   still holds its token (checked inside Redis, in the same script as the write): a holder
//!   whose lease ran out cannot overwrite the next holder's certificate.
//! - **Challenges**: answers go into a second hash and a notice; every instance serves them,
//!   whichever one the CA reaches.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use rustls::crypto::CryptoProvider;
use tokio::sync::{Notify, watch};

use super::Cluster;
use super::lease::RedisLease;
use crate::acme::{
    Answer, Boxed, FileStorage, Lease, Peers, Storage, key_part, serve_answer, withdraw_answer,
};
use crate::certs::Challenges;
use crate::config::defaults;
use crate::locks::lock;
use crate::observe::status::LockStatus;

/// Writes a value only while the lock holds the writer's token, then tells the other
/// instances. KEYS: hash, lock; ARGV: field, value, token, channel.
const FENCED_WRITE: &str = "if redis.call('get', KEYS[2]) ~= ARGV[3] then return 0 end \
redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) redis.call('publish', ARGV[4], ARGV[1]) return 1";

/// How long challenge answers stay in Redis after the last one was added: far longer than an
/// order may take, so a crashed holder's answers still go away.
const ANSWERS_TTL: Duration = Duration::from_secs(600);
/// How long an instance that published an answer gives the others to pick it up before it
/// tells the CA to look (the poll is the backstop).
const ANSWER_SETTLE: Duration = Duration::from_millis(250);

/// A value as stored in Redis (before sealing): the files of one store key, base64. A single
/// value has one file named "".
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Shared {
    files: Vec<(String, String)>,
}

/// What this instance knows about the shared store.
#[derive(Default)]
pub(super) struct Book {
    /// Fields in the local copy, with the file names of those stored together (empty for a
    /// single value): published again when Redis lost them.
    known: BTreeMap<String, Vec<String>>,
    /// Fields stored here and not yet in Redis.
    pending: BTreeSet<String>,
    /// Leases this instance holds now: while any is held, pending values wait for its
    /// release, which publishes them fenced.
    pub(super) leases: usize,
    /// Answers other instances published, served here too: field → answer.
    remote_answers: BTreeMap<String, Answer>,
    /// Fields of this instance's own answers.
    own_answers: BTreeSet<String>,
    /// A sealed value that did not open was reported (once).
    foreign_reported: bool,
}

/// The `Storage` and `Peers` of `acme` for an instance of a cluster.
pub(crate) struct AcmeShare {
    /// Itself, for the renewal task and release of each lease.
    me: Weak<AcmeShare>,
    cluster: Arc<Cluster>,
    local: FileStorage,
    challenges: Arc<Challenges>,
    provider: Arc<CryptoProvider>,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    /// Held by the round of `sync_once` in progress.
    syncing: tokio::sync::Mutex<()>,
    book: Mutex<Book>,
    /// Bumped whenever a value from another instance reached the local copy.
    changes: watch::Sender<u64>,
    /// Wakes the poll early (a notice arrived, or a value waits to be published).
    poke: Notify,
}

impl AcmeShare {
    /// `root` is `acme.storage`, the local copy.
    pub(crate) fn new(
        cluster: Arc<Cluster>,
        root: &Path,
        challenges: Arc<Challenges>,
        provider: Arc<CryptoProvider>,
    ) -> Arc<AcmeShare> {
        Arc::new_cyclic(|me| AcmeShare {
            me: me.clone(),
            cluster,
            local: FileStorage::new(root),
            challenges,
            provider,
            conn: tokio::sync::Mutex::new(None),
            syncing: tokio::sync::Mutex::new(()),
            book: Mutex::default(),
            changes: watch::channel(0).0,
            poke: Notify::new(),
        })
    }

    /// Brings the local copy up to date once (bounded: an instance starts with Redis down),
    /// then keeps it so: a poll every `CLUSTER_SYNC_INTERVAL`, sooner on a notice.
    pub(crate) async fn start(self: &Arc<Self>) {
        let first = tokio::time::timeout(2 * defaults::CLUSTER_REDIS_TIMEOUT, self.sync_once());
        if let Ok(Ok(n)) = first.await
            && n > 0
        {
            tracing::info!(
                instance = %self.cluster.instance,
                "cluster: {n} ACME value(s) from Redis copied to {}",
                self.local.path("").display()
            );
        }
        tokio::spawn(self.clone().keep_in_step());
        tokio::spawn(self.clone().listen());
    }

    pub(super) fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        lock(&self.book)
    }

    fn hash(&self) -> String {
        self.cluster.redis_key("acme")
    }

    fn answers_hash(&self) -> String {
        self.cluster.redis_key("acme-challenges")
    }

    fn channel(&self) -> String {
        self.cluster.redis_key("acme-events")
    }

    fn lock_key(&self, names: &[String]) -> String {
        let first = names.first().map_or("_", String::as_str);
        self.cluster
            .redis_key(&format!("lock:acme:{}", key_part(first)))
    }

    /// The associated data a field's value is sealed under: the hash and the field.
    fn aad(&self, field: &str) -> String {
        format!("{}/{field}", self.hash())
    }

    /// The same for a challenge answer's field.
    fn answer_aad(&self, field: &str) -> String {
        format!("{}/{field}", self.answers_hash())
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self.cluster.connect().await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn keep_in_step(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(defaults::CLUSTER_SYNC_INTERVAL) => {}
                () = self.poke.notified() => {}
            }
            if let Err(e) = self.sync_once().await {
                tracing::debug!(error = %e.category(), "cluster: ACME poll failed");
            }
        }
    }

    /// The notices of the other instances: each wakes the poll.
    async fn listen(self: Arc<Self>) {
        loop {
            let subscribed = async {
                let mut pubsub = self.cluster.pubsub().await?;
                pubsub.subscribe(self.channel()).await?;
                redis::RedisResult::Ok(pubsub)
            };
            if let Ok(Ok(mut pubsub)) =
                tokio::time::timeout(defaults::CLUSTER_REDIS_TIMEOUT, subscribed).await
            {
                // Whatever changed while not listening.
                self.poke.notify_one();
                let mut notices = pubsub.on_message();
                while notices.next().await.is_some() {
                    self.poke.notify_one();
                }
            }
            tokio::time::sleep(defaults::CLUSTER_SYNC_INTERVAL).await;
        }
    }

    /// One round: publish what waits, copy in what others stored, publish again what Redis
    /// lost, follow the challenge answers and the lock holders. Returns how many values came in.
    async fn sync_once(&self) -> redis::RedisResult<usize> {
        // One round at a time: two rounds writing the same certificate folder at once could
        // let a reader see neither version.
        let _one = self.syncing.lock().await;
        let mut conn = self.connection().await?;
        self.publish_waiting(&mut conn).await?;
        let values: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.hash())
            .query_async(&mut conn)
            .await?;
        let copied = self.copy_in(&values);
        self.publish_lost(&values, &mut conn).await?;
        self.follow_answers(&mut conn).await?;
        self.follow_locks(&mut conn).await?;
        if copied > 0 {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(copied)
    }

    /// Values that need no lease: the account (a single value) at once, so an instance that
    /// dies mid-order leaves its account to the next holder; certificates (stored together)
    /// only while no lease is held, since a lease's release publishes them fenced. Published
    /// unless another instance's value is there already.
    async fn publish_waiting(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let waiting: Vec<String> = {
            let book = self.book();
            let unfenced =
                |f: &&String| book.leases == 0 || book.known.get(*f).is_some_and(Vec::is_empty);
            book.pending.iter().filter(unfenced).cloned().collect()
        };
        for field in waiting {
            self.publish_if_absent(&field, conn).await?;
            self.book().pending.remove(&field);
        }
        Ok(())
    }

    /// Publishes the local value of `field` unless Redis holds one already (HSETNX: another
    /// instance's value wins). True when this one was written.
    async fn publish_if_absent(
        &self,
        field: &str,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<bool> {
        let Some(sealed) = self.sealed_local(field) else {
            return Ok(false);
        };
        redis::cmd("HSETNX")
            .arg(self.hash())
            .arg(field)
            .arg(sealed)
            .query_async(conn)
            .await
    }

    /// Writes into the local copy every value that differs from it, except those of ours
    /// still waiting to be published. Returns how many were written.
    fn copy_in(&self, values: &BTreeMap<String, Vec<u8>>) -> usize {
        let mut written = 0;
        for (field, sealed) in values {
            if self.book().pending.contains(field) {
                continue;
            }
            let Some(shared) = self.open(field, sealed) else {
                continue;
            };
            let Some(files) = decode(&shared) else {
                continue;
            };
            if self.local_files(field, &names_of(&files)).as_ref() == Some(&files) {
                continue;
            }
            match self.write_local(field, &files) {
                Ok(()) => written += 1,
                Err(e) => {
                    tracing::warn!("cluster: cannot write {}: {e}", self.local.describe(field))
                }
            }
        }
        written
    }

    fn open(&self, field: &str, sealed: &[u8]) -> Option<Shared> {
        let plain = self.cluster.key.open(&self.aad(field), sealed);
        let shared = plain.and_then(|p| serde_json::from_slice(&p).ok());
        if shared.is_none() && !std::mem::replace(&mut self.book().foreign_reported, true) {
            tracing::warn!(
                instance = %self.cluster.instance,
                "cluster: the ACME value {field} in Redis ({}) does not open with this instance's cluster key: give every instance the same CANDADO_CLUSTER_KEY",
                self.hash()
            );
        }
        shared
    }

    /// Known values Redis does not have (it restarted empty): published again as they are,
    /// so nobody orders a certificate the cluster already holds.
    async fn publish_lost(
        &self,
        values: &BTreeMap<String, Vec<u8>>,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<()> {
        // Pending values are published by their lease's release (or `publish_waiting`).
        let lost: Vec<String> = {
            let book = self.book();
            book.known
                .keys()
                .filter(|f| !values.contains_key(*f) && !book.pending.contains(*f))
                .cloned()
                .collect()
        };
        let mut published = 0;
        for field in &lost {
            published += usize::from(self.publish_if_absent(field, conn).await?);
        }
        if published > 0 {
            tracing::info!(
                instance = %self.cluster.instance,
                "cluster: Redis had lost {published} ACME value(s); published this instance's copy again"
            );
        }
        Ok(())
    }

    /// Serves the answers other instances published, and stops serving withdrawn ones.
    async fn follow_answers(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let sealed: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(self.answers_hash())
            .query_async(conn)
            .await?;
        let mut current = BTreeMap::new();
        for (field, value) in &sealed {
            let Some(plain) = self.cluster.key.open(&self.answer_aad(field), value) else {
                continue;
            };
            let Ok(key_authorization) = String::from_utf8(plain) else {
                continue;
            };
            if let Some(answer) = answer_of(field, key_authorization) {
                current.insert(field.clone(), answer);
            }
        }
        let mut book = self.book();
        let gone: Vec<String> = book
            .remote_answers
            .keys()
            .filter(|f| !current.contains_key(*f))
            .cloned()
            .collect();
        for field in gone {
            if let Some(a) = book.remote_answers.remove(&field) {
                withdraw_answer(&self.challenges, &a);
            }
        }
        for (field, answer) in current {
            if book.own_answers.contains(&field) || book.remote_answers.contains_key(&field) {
                continue;
            }
            match serve_answer(&self.challenges, &answer, &self.provider) {
                Ok(()) => {
                    tracing::debug!("cluster: serving another instance's ACME answer {field}");
                    book.remote_answers.insert(field, answer);
                }
                Err(e) => tracing::warn!("cluster: cannot serve the ACME answer {field}: {e}"),
            }
        }
        Ok(())
    }

    /// Who holds which order lock, for `candado status` and the metrics.
    async fn follow_locks(&self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let prefix = self.cluster.redis_key("lock:acme:");
        // SCAN, not KEYS: a Redis shared with other applications may hold many keys.
        let (mut cursor, mut keys) = (0u64, Vec::new());
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .arg("COUNT")
                .arg(500)
                .query_async(conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice.
        keys.sort();
        keys.dedup();
        let mut holders = Vec::new();
        for key in keys {
            let value: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
            if let Some(v) = value {
                holders.push(LockStatus {
                    name: key.strip_prefix(&prefix).unwrap_or(&key).to_owned(),
                    holder: holder_of(&v).to_owned(),
                });
            }
        }
        *lock(&crate::observe::metrics().cluster.locks) = holders;
        Ok(())
    }

    /// The local value of `field`, as files (a single value is one file named "").
    fn local_files(&self, field: &str, names: &[String]) -> Option<Vec<(String, Vec<u8>)>> {
        if names.len() == 1 && names[0].is_empty() {
            let v = self.local.load(field).ok()??;
            return Some(vec![(String::new(), v)]);
        }
        let keys: Vec<String> = names.iter().map(|n| format!("{field}/{n}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let values = self.local.load_together(&refs).ok()??;
        Some(names.iter().cloned().zip(values).collect())
    }

    fn write_local(&self, field: &str, files: &[(String, Vec<u8>)]) -> io::Result<()> {
        match files {
            [(name, value)] if name.is_empty() => self.local.store(field, value)?,
            _ => {
                let values: Vec<(&str, &[u8])> = files
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_slice()))
                    .collect();
                self.local.store_together(field, &values)?;
            }
        }
        self.book().known.insert(field.to_owned(), names_of(files));
        Ok(())
    }

    /// The local value of a known field, sealed for Redis.
    fn sealed_local(&self, field: &str) -> Option<Vec<u8>> {
        let names = self.book().known.get(field)?.clone();
        let names = match names.is_empty() {
            true => vec![String::new()],
            false => names,
        };
        let files = self.local_files(field, &names)?;
        let json = serde_json::to_vec(&encode(&files)).ok()?;
        self.cluster.key.seal(&self.aad(field), &json)
    }

    fn waiting(&self, field: &str, names: Vec<String>) {
        let mut book = self.book();
        book.known.insert(field.to_owned(), names);
        book.pending.insert(field.to_owned());
        drop(book);
        self.poke.notify_one();
    }

    /// Publishes every waiting value under the lease `token` of `lock`; values the fence
    /// refused stay local (the next poll copies the holder's in).
    pub(super) async fn publish_fenced(
        &self,
        lock: &str,
        token: &str,
    ) -> redis::RedisResult<usize> {
        let mut conn = self.connection().await?;
        let waiting: Vec<String> = self.book().pending.iter().cloned().collect();
        let mut refused = 0;
        for field in waiting {
            let Some(sealed) = self.sealed_local(&field) else {
                continue;
            };
            let written: i64 = redis::Script::new(FENCED_WRITE)
                .key(self.hash())
                .key(lock)
                .arg(&field)
                .arg(sealed)
                .arg(token)
                .arg(self.channel())
                .invoke_async(&mut conn)
                .await?;
            self.book().pending.remove(&field);
            refused += usize::from(written == 0);
        }
        Ok(refused)
    }
}

fn encode(files: &[(String, Vec<u8>)]) -> Shared {
    Shared {
        files: files
            .iter()
            .map(|(n, v)| (n.clone(), BASE64.encode(v)))
            .collect(),
    }
}

fn decode(shared: &Shared) -> Option<Vec<(String, Vec<u8>)>> {
    shared
        .files
        .iter()
        .map(|(n, v)| {
            let safe = n.is_empty() || key_part(n) == *n;
            safe.then(|| Some((n.clone(), BASE64.decode(v).ok()?)))?
        })
        .collect()
}

/// The file names of a value stored together; empty for a single value.
fn names_of(files: &[(String, Vec<u8>)]) -> Vec<String> {
    match files {
        [(name, _)] if name.is_empty() => Vec::new(),
        _ => files.iter().map(|(n, _)| n.clone()).collect(),
    }
}

/// `http-01/TOKEN` or `tls-alpn-01/NAME`: the field of an answer in the answers hash.
fn field_of(answer: &Answer) -> String {
    match answer {
        Answer::Http01 { token, .. } => format!("http-01/{token}"),
        Answer::TlsAlpn01 { name, .. } => format!("tls-alpn-01/{name}"),
    }
}

fn answer_of(field: &str, key_authorization: String) -> Option<Answer> {
    let (kind, id) = field.split_once('/')?;
    match kind {
        "http-01" => Some(Answer::Http01 {
            token: id.to_owned(),
            key_authorization,
        }),
        "tls-alpn-01" => Some(Answer::TlsAlpn01 {
            name: id.to_owned(),
            key_authorization,
        }),
        _ => None,
    }
}

fn key_authorization(answer: &Answer) -> &str {
    match answer {
        Answer::Http01 {
            key_authorization, ..
        }
        | Answer::TlsAlpn01 {
            key_authorization, ..
        } => key_authorization,
    }
}

/// The instance named in a lock's value (`INSTANCE TOKEN`).
fn holder_of(value: &str) -> &str {
    value.rsplit_once(' ').map_or(value, |(who, _)| who)
}

impl Storage for AcmeShare {
    fn load(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        let v = self.local.load(key)?;
        if v.is_some() {
            self.book().known.entry(key.to_owned()).or_default();
        }
        Ok(v)
    }

    fn store(&self, key: &str, value: &[u8]) -> io::Result<()> {
        self.local.store(key, value)?;
        self.waiting(key, Vec::new());
        Ok(())
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        self.local.delete(key)?;
        let mut book = self.book();
        book.known.remove(key);
        book.pending.remove(key);
        Ok(())
    }

    fn store_together(&self, dir: &str, values: &[(&str, &[u8])]) -> io::Result<()> {
        self.local.store_together(dir, values)?;
        let names = values.iter().map(|(n, _)| (*n).to_owned()).collect();
        self.waiting(dir, names);
        Ok(())
    }

    fn load_together(&self, keys: &[&str]) -> io::Result<Option<Vec<Vec<u8>>>> {
        let v = self.local.load_together(keys)?;
        if v.is_some()
            && let Some((dir, _)) = keys.first().and_then(|k| k.rsplit_once('/'))
        {
            let names = keys
                .iter()
                .filter_map(|k| k.rsplit_once('/').map(|(_, n)| n.to_owned()))
                .collect();
            self.book().known.insert(dir.to_owned(), names);
        }
        Ok(v)
    }

    fn describe(&self, key: &str) -> String {
        format!("{} (shared through Redis)", self.local.describe(key))
    }
}

impl Peers for AcmeShare {
    fn lock<'a>(&'a self, names: &'a [String]) -> Boxed<'a, Result<Box<dyn Lease>, String>> {
        Box::pin(async move {
            let unreachable = |_| {
                "Redis is unreachable, and only the holder of the cluster's order lock orders"
                    .to_owned()
            };
            let lock = self.lock_key(names);
            let random = super::random_hex().ok_or("the system random generator failed")?;
            let token = format!("{} {random}", self.cluster.instance);
            let mut conn = self.connection().await.map_err(unreachable)?;
            let set: Option<String> = redis::cmd("SET")
                .arg(&lock)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(super::lease_ms())
                .query_async(&mut conn)
                .await
                .map_err(unreachable)?;
            if set.is_none() {
                let holder: Option<String> = redis::cmd("GET")
                    .arg(&lock)
                    .query_async(&mut conn)
                    .await
                    .map_err(unreachable)?;
                let holder = holder.as_deref().map_or("another instance", holder_of);
                return Err(format!("instance {holder} holds the cluster's order lock"));
            }
            let Some(share) = self.me.upgrade() else {
                return Err("candado is stopping".to_owned());
            };
            let lease = RedisLease::start(share, lock, token, conn.clone());
            // What the previous holder stored, before deciding to order: without it, this
            // instance might order what the cluster already holds.
            if let Err(e) = self.sync_once().await {
                Box::new(lease).release().await;
                return Err(format!(
                    "Redis did not answer while reading the shared certificates ({})",
                    e.category()
                ));
            }
            Ok(Box::new(lease) as Box<dyn Lease>)
        })
    }

    fn answer<'a>(&'a self, answer: &'a Answer, present: bool) -> Boxed<'a, ()> {
        Box::pin(async move {
            let field = field_of(answer);
            let published = self.publish_answer(&field, answer, present).await;
            match published {
                Ok(listeners) if present && listeners > 1 => {
                    tokio::time::sleep(ANSWER_SETTLE).await;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "cluster: cannot share the ACME answer {field} ({}): only this instance answers it",
                    e.category()
                ),
            }
        })
    }

    fn changed(&self) -> Boxed<'_, ()> {
        let mut changes = self.changes.subscribe();
        Box::pin(async move {
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

impl AcmeShare {
    /// HSET (or HDEL) and a notice; returns how many instances heard the notice.
    async fn publish_answer(
        &self,
        field: &str,
        answer: &Answer,
        present: bool,
    ) -> redis::RedisResult<i64> {
        let mut conn = self.connection().await?;
        let hash = self.answers_hash();
        let mut pipe = redis::pipe();
        if present {
            self.book().own_answers.insert(field.to_owned());
            let sealed = self
                .cluster
                .key
                .seal(
                    &self.answer_aad(field),
                    key_authorization(answer).as_bytes(),
                )
                .ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Client, "random failed"))
                })?;
            pipe.cmd("HSET").arg(&hash).arg(field).arg(sealed).ignore();
            let ttl = u64::try_from(ANSWERS_TTL.as_millis()).unwrap_or(u64::MAX);
            pipe.cmd("PEXPIRE").arg(&hash).arg(ttl).ignore();
        } else {
            self.book().own_answers.remove(field);
            pipe.cmd("HDEL").arg(&hash).arg(field).ignore();
        }
        pipe.cmd("PUBLISH").arg(self.channel()).arg(field);
        let (listeners,): (i64,) = pipe.query_async(&mut conn).await?;
        Ok(listeners)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_encoding_and_names_cannot_climb_out_of_the_folder() {
        let files = vec![
            ("cert.pem".to_owned(), b"chain".to_vec()),
            ("key.pem".to_owned(), b"key".to_vec()),
        ];
        assert_eq!(decode(&encode(&files)), Some(files.clone()));
        assert_eq!(names_of(&files), ["cert.pem", "key.pem"]);
        let single = vec![(String::new(), b"{}".to_vec())];
        assert_eq!(decode(&encode(&single)), Some(single.clone()));
        assert!(names_of(&single).is_empty());
        for bad in ["../key.pem", "a/b", ".."] {
            let shared = encode(&[(bad.to_owned(), b"x".to_vec())]);
            assert_eq!(decode(&shared), None, "{bad}");
        }
    }

    #[test]
    fn an_answer_is_found_again_from_its_field() {
        for answer in [
            Answer::Http01 {
                token: "tok_en-1".into(),
                key_authorization: "tok_en-1.thumb".into(),
            },
            Answer::TlsAlpn01 {
                name: "site.test".into(),
                key_authorization: "t.thumb".into(),
            },
        ] {
            let field = field_of(&answer);
            let back = answer_of(&field, key_authorization(&answer).to_owned());
            assert_eq!(back, Some(answer));
        }
        assert_eq!(answer_of("dns-01/x", "k".into()), None);
    }

    #[test]
    fn a_lock_value_names_its_holder() {
        assert_eq!(holder_of("web-1 0a1b2c"), "web-1");
        assert_eq!(holder_of("lonely"), "lonely");
    }
}
