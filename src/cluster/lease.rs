//! The order lock one instance holds while it orders a certificate: taken by
//! `AcmeShare::lock`, renewed every third of its lease by a task until released, and released
//! by publishing what was stored under it (fenced by its token) and a compare-and-delete.

use std::sync::Arc;
use std::time::Instant;

use redis::aio::ConnectionManager;
use tokio::sync::watch;

use super::RELEASE;
use super::acme::AcmeShare;
use crate::acme::{Boxed, Lease};
use crate::config::defaults;

/// Extends the lease only while it is still ours.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/// The order lock for one set of names, renewed every third of its lease by a task until
/// released; `lost` turns true when a renewal was refused or Redis stayed silent for most of
/// the lease.
pub(super) struct RedisLease {
    share: Arc<AcmeShare>,
    lock: String,
    token: String,
    conn: ConnectionManager,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl RedisLease {
    pub(super) fn start(
        share: Arc<AcmeShare>,
        lock: String,
        token: String,
        conn: ConnectionManager,
    ) -> Self {
        // Counted until dropped: the share holds unfenced writes back meanwhile.
        share.book().leases += 1;
        let (tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(conn.clone(), lock.clone(), token.clone(), tx));
        RedisLease {
            share,
            lock,
            token,
            conn,
            lost,
            renewer,
        }
    }
}

async fn renew(
    mut conn: ConnectionManager,
    lock: String,
    token: String,
    lost: watch::Sender<bool>,
) {
    let lease = defaults::CLUSTER_LOCK_LEASE;
    let every = lease / 3;
    let mut renewed = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let answer: redis::RedisResult<i64> = redis::Script::new(RENEW)
            .key(&lock)
            .arg(&token)
            .arg(super::lease_ms())
            .invoke_async(&mut conn)
            .await;
        match answer {
            Ok(1) => renewed = Instant::now(),
            // Another instance holds it now: our lease ran out.
            Ok(_) => break,
            // Given up one tick before the lease would run out unseen.
            Err(_) if renewed.elapsed() + every < lease => {}
            Err(_) => break,
        }
    }
    tracing::warn!(lock = %lock, "cluster: the order lock was lost");
    let _ = lost.send(true);
}

impl Lease for RedisLease {
    fn lost(&mut self) -> Boxed<'_, ()> {
        Box::pin(async move {
            if self.lost.wait_for(|lost| *lost).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }

    fn release(self: Box<Self>) -> Boxed<'static, ()> {
        Box::pin(async move {
            self.renewer.abort();
            let mut conn = self.conn.clone();
            let work = async {
                let refused = self.share.publish_fenced(&self.lock, &self.token).await?;
                let _: i64 = redis::Script::new(RELEASE)
                    .key(&self.lock)
                    .arg(&self.token)
                    .invoke_async(&mut conn)
                    .await?;
                redis::RedisResult::Ok(refused)
            };
            match tokio::time::timeout(2 * defaults::CLUSTER_REDIS_TIMEOUT, work).await {
                Ok(Ok(0)) => {}
                Ok(Ok(_)) => tracing::warn!(
                    lock = %self.lock,
                    "cluster: this instance's ACME values were not published: its order lock had run out and another instance holds it; that instance's certificate is used"
                ),
                Ok(Err(_)) | Err(_) => tracing::warn!(
                    lock = %self.lock,
                    "cluster: Redis did not answer when the order ended; the values stay local until it does (the lock runs out by itself)"
                ),
            }
        })
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.renewer.abort();
        let mut book = self.share.book();
        book.leases = book.leases.saturating_sub(1);
    }
}
