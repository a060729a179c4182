//! Automatic certificates from an ACME CA (Let's Encrypt, ZeroSSL, step-ca, pebble).
//!
//! `Acme` is shared by every site whose certificate is `acme`, and survives reloads: it holds
//! the account, the store, the challenge answers the listeners serve, and one renewal loop
//! per site. A loop publishes each new certificate into the site's `ManagedCert` slot, which
//! the TLS resolver reads on every handshake: renewal needs no restart and drops nothing.

mod issuer;
pub(crate) mod peers;
pub(crate) mod schedule;
pub(crate) mod storage;
mod validation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;

pub(crate) use crate::certs::Challenges;
pub(crate) use issuer::{
    AcmeError, ChallengeKind, Issued, Issuer, Progress, RenewalInfo, serve_answer, withdraw_answer,
};
pub(crate) use peers::{Answer, Boxed, Lease, Peers};
use schedule::{Lifetime, Next};
pub(crate) use storage::{FileStorage, Storage, key_part};

use crate::certs::{self, ManagedCert};
use crate::config::{AcmeSettings, ChallengeChoice, defaults};
use crate::locks::lock;

/// The names of a stored certificate's chain and key in its folder of the store.
const CHAIN_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// A stored certificate, loaded and ready to serve.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub key: Arc<CertifiedKey>,
    pub lifetime: Lifetime,
}

impl Stored {
    pub(crate) fn leaf(&self) -> &CertificateDer<'static> {
        &self.key.cert[0]
    }
}

pub(crate) struct Acme {
    settings: AcmeSettings,
    storage: Arc<dyn Storage>,
    challenges: Arc<Challenges>,
    /// `cluster:`: the other instances, with whom orders take turns.
    peers: Option<Arc<dyn Peers>>,
    provider: Arc<CryptoProvider>,
    /// Connected on first use and shared by every site.
    issuer: tokio::sync::Mutex<Option<Arc<Issuer>>>,
    sites: Mutex<HashMap<Vec<String>, Arc<ManagedCert>>>,
}

impl Acme {
    pub(crate) fn new(settings: AcmeSettings, provider: Arc<CryptoProvider>) -> Arc<Acme> {
        let storage = Arc::new(FileStorage::new(&settings.storage));
        Acme::with_storage(settings, storage, Arc::default(), None, provider)
    }

    /// `challenges` is where this instance serves answers from; `peers`, the other
    /// instances of a cluster sharing `storage`.
    pub(crate) fn with_storage(
        settings: AcmeSettings,
        storage: Arc<dyn Storage>,
        challenges: Arc<Challenges>,
        peers: Option<Arc<dyn Peers>>,
        provider: Arc<CryptoProvider>,
    ) -> Arc<Acme> {
        Arc::new(Acme {
            settings,
            storage,
            challenges,
            peers,
            provider,
            issuer: tokio::sync::Mutex::new(None),
            sites: Mutex::default(),
        })
    }

    pub(crate) fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    pub(crate) fn challenges(&self) -> Arc<Challenges> {
        self.challenges.clone()
    }

    fn account_key(&self) -> String {
        format!("{}/account.json", key_part(&self.settings.directory))
    }

    /// Where a certificate for `names` is stored: (chain, key).
    pub(crate) fn cert_keys(&self, names: &[String]) -> (String, String) {
        let base = self.cert_dir(names);
        (format!("{base}/{CHAIN_FILE}"), format!("{base}/{KEY_FILE}"))
    }

    /// The folder of `cert_keys`, whose two values are stored together.
    fn cert_dir(&self, names: &[String]) -> String {
        let first = names.first().map_or("_", String::as_str);
        format!(
            "{}/certificates/{}",
            key_part(&self.settings.directory),
            key_part(first)
        )
    }

    /// The stored chain and key, read as one pair.
    fn load_pair(&self, names: &[String]) -> Option<(Vec<u8>, Vec<u8>)> {
        let (cert_key, key_key) = self.cert_keys(names);
        let values = self.storage.load_together(&[&cert_key, &key_key]).ok()??;
        let [chain, key]: [Vec<u8>; 2] = values.try_into().ok()?;
        Some((chain, key))
    }

    /// The account, restored from the store or registered (and then stored).
    pub(crate) async fn issuer(&self, progress: Progress<'_>) -> Result<Arc<Issuer>, AcmeError> {
        let mut slot = self.issuer.lock().await;
        if let Some(i) = slot.as_ref() {
            return Ok(i.clone());
        }
        let key = self.account_key();
        let stored = self.storage.load(&key).map_err(|e| {
            AcmeError::Other(format!("cannot read {}: {e}", self.storage.describe(&key)))
        })?;
        let credentials = match stored {
            None => None,
            Some(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                AcmeError::Other(format!(
                    "{} is not an ACME account ({e}): move it away to register a new account",
                    self.storage.describe(&key)
                ))
            })?),
        };
        let connect = Issuer::connect(
            &self.settings,
            credentials,
            self.challenges.clone(),
            self.peers.clone(),
            self.provider.clone(),
            progress,
        );
        // Bounded, so that a CA that accepts connections and then hangs cannot stall a site's
        // renewal loop forever.
        let (issuer, created) = tokio::time::timeout(defaults::ACME_HTTP_TIMEOUT, connect)
            .await
            .map_err(|_| {
                AcmeError::Other(format!(
                    "{} did not answer within {}s",
                    self.settings.directory,
                    defaults::ACME_HTTP_TIMEOUT.as_secs()
                ))
            })??;
        if let Some(c) = created {
            let json =
                serde_json::to_vec_pretty(&c).map_err(|e| AcmeError::Other(e.to_string()))?;
            self.storage.store(&key, &json).map_err(|e| {
                AcmeError::Other(format!(
                    "cannot store the account in {}: {e}",
                    self.storage.describe(&key)
                ))
            })?;
        }
        let issuer = Arc::new(issuer);
        *slot = Some(issuer.clone());
        Ok(issuer)
    }

    /// The stored certificate for `names`, if there is one that covers them all and has not
    /// expired. A damaged one is reported and treated as missing (a new one is obtained).
    pub(crate) fn load_stored(&self, names: &[String]) -> Option<Stored> {
        let (cert_key, key_key) = self.cert_keys(names);
        let (chain, key) = self.load_pair(names)?;
        let label = |k: &str| std::path::PathBuf::from(self.storage.describe(k));
        let loaded = certs::load_pem(
            (&label(&cert_key), &chain),
            (&label(&key_key), &key),
            &self.provider,
            false,
        );
        let loaded = match loaded {
            Ok(l) => l,
            Err(certs::CertError::Expired(..)) => return None,
            Err(e) => {
                tracing::warn!("ignoring the stored ACME certificate: {e}");
                return None;
            }
        };
        let covers = |n: &String| loaded.names.iter().any(|c| c.eq_ignore_ascii_case(n));
        names.iter().all(covers).then(|| Stored {
            key: loaded.key,
            lifetime: Lifetime {
                not_before: loaded.not_before,
                not_after: loaded.not_after,
            },
        })
    }

    /// The stored chain and key PEM for `names`, as they are.
    pub(crate) fn stored_pem(&self, names: &[String]) -> Option<(Vec<u8>, Vec<u8>)> {
        self.load_pair(names)
    }

    /// Obtains a certificate for `names`, stores it and returns it loaded.
    pub(crate) async fn obtain(
        &self,
        names: &[String],
        kind: ChallengeKind,
        replaces: Option<instant_acme::CertificateIdentifier<'static>>,
        progress: Progress<'_>,
    ) -> Result<Stored, AcmeError> {
        let issuer = self.issuer(progress).await?;
        let issued = tokio::time::timeout(
            defaults::ACME_ORDER_TIMEOUT,
            issuer.obtain(names, kind, replaces, progress),
        )
        .await
        .map_err(|_| {
            AcmeError::Other(format!(
                "no certificate within {}s",
                defaults::ACME_ORDER_TIMEOUT.as_secs()
            ))
        })??;
        self.store(names, &issued)?;
        self.load_stored(names).ok_or_else(|| {
            AcmeError::Other("the CA's certificate does not cover the names asked for".into())
        })
    }

    /// Stores the chain and its key together: a crash leaves the old pair or the new one.
    fn store(&self, names: &[String], issued: &Issued) -> Result<(), AcmeError> {
        let values = [
            (CHAIN_FILE, issued.chain_pem.as_bytes()),
            (KEY_FILE, issued.key_pem.as_bytes()),
        ];
        let dir = self.cert_dir(names);
        self.storage.store_together(&dir, &values).map_err(|e| {
            AcmeError::Other(format!("cannot store {}: {e}", self.storage.describe(&dir)))
        })
    }

    /// Revokes the stored certificate for `names` and removes it from the store.
    pub(crate) async fn revoke(
        &self,
        names: &[String],
        progress: Progress<'_>,
    ) -> Result<(), AcmeError> {
        let (cert_key, key_key) = self.cert_keys(names);
        let stored = self.load_stored(names).ok_or_else(|| {
            AcmeError::Other(format!(
                "no valid stored certificate for {} in {}",
                names.join(", "),
                self.storage.describe(&cert_key)
            ))
        })?;
        let issuer = self.issuer(progress).await?;
        issuer.revoke(stored.leaf()).await?;
        progress("revoked: the CA will no longer vouch for this certificate");
        for k in [&cert_key, &key_key] {
            let _ = self.storage.delete(k);
        }
        Ok(())
    }

    /// The slot serving `names`' certificate. The first call for a set of names fills it from
    /// the store at once (startup never waits for the CA when a valid certificate is stored)
    /// and starts the site's renewal loop. `http01`: the site has an HTTP listener.
    pub(crate) fn managed(
        self: &Arc<Self>,
        names: &[String],
        http01: bool,
        fallback: Option<Arc<CertifiedKey>>,
    ) -> Arc<ManagedCert> {
        let mut sites = lock(&self.sites);
        if let Some(slot) = sites.get(names) {
            return slot.clone();
        }
        let primary = names.first().map_or("", String::as_str);
        let slot = Arc::new(ManagedCert::new(primary, fallback));
        let stored = self.load_stored(names);
        if let Some(s) = &stored {
            slot.publish(s.key.clone());
        }
        sites.insert(names.to_vec(), slot.clone());
        let kind = match (self.settings.challenge, http01) {
            (ChallengeChoice::Http01, _) | (ChallengeChoice::Auto, true) => ChallengeKind::Http01,
            _ => ChallengeKind::TlsAlpn01,
        };
        let site = SiteLoop {
            acme: self.clone(),
            names: names.to_vec(),
            slot: slot.clone(),
            kind,
            alternate: self.settings.challenge == ChallengeChoice::Auto,
        };
        tokio::spawn(site.run(stored));
        slot
    }
}

/// What a site does when its certificate is due (see `SiteLoop::take_turn`).
enum Turn {
    /// Order now, holding this lease when in a cluster.
    Order(Option<Box<dyn Lease>>),
    /// Another instance just stored this one: serve it.
    Served(Stored),
    /// Another instance is ordering, or the cluster cannot be asked: why, in words.
    Wait(String),
}

/// One site's certificate over time: obtain, wait, renew; back off after failures.
struct SiteLoop {
    acme: Arc<Acme>,
    names: Vec<String>,
    slot: Arc<ManagedCert>,
    kind: ChallengeKind,
    /// `acme.challenge: auto`: after a failure, try the other challenge.
    alternate: bool,
}

impl SiteLoop {
    async fn run(mut self, mut stored: Option<Stored>) {
        let site = self.names.join(", ");
        let progress = |step: &str| tracing::info!(site = %site, "ACME {step}");
        let mut failures = 0u32;
        let observed = crate::observe::metrics().acme(&site);
        let mut waiting_for: Option<String> = None;
        if let Some(s) = &stored {
            self.observe_served(s);
        }
        loop {
            let ari = match &stored {
                Some(s) => self.renewal_info(s).await,
                None => None,
            };
            let next = match &stored {
                None => Next::Renew,
                Some(s) => schedule::next(
                    SystemTime::now(),
                    s.lifetime,
                    ari.as_ref().map(|a| a.window),
                    schedule::random_unit(self.acme.provider.secure_random),
                ),
            };
            if let Next::WaitUntil(at) = next {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                let wait = ari.map_or(wait, |a| wait.min(a.recheck));
                observed.next_renewal(SystemTime::now() + wait);
                tracing::debug!(site = %site, "next ACME renewal check in {}s", wait.as_secs());
                self.wait_or_changed(wait).await;
                // Another instance sharing the store may have renewed it meanwhile.
                stored = self.reload(stored);
                continue;
            }
            // With `cluster:`, only the instance holding the names' lock orders.
            let mut lease = match self.take_turn(&stored).await {
                Turn::Order(lease) => lease,
                Turn::Served(fresher) => {
                    stored = Some(fresher);
                    continue;
                }
                Turn::Wait(why) => {
                    if waiting_for.as_ref() != Some(&why) {
                        tracing::info!(site = %site, "ACME: not ordering here: {why}; waiting");
                        waiting_for = Some(why);
                    }
                    self.wait_or_changed(defaults::CLUSTER_SYNC_INTERVAL).await;
                    stored = self.reload(stored);
                    continue;
                }
            };
            waiting_for = None;
            let replaces = ari.map(|a| a.replaces);
            observed.next_renewal(SystemTime::now());
            observed.attempt();
            let result = self
                .obtain_under(lease.as_deref_mut(), replaces, &progress)
                .await;
            match result {
                Ok(new) => {
                    failures = 0;
                    if let Some(l) = lease {
                        l.release().await;
                    }
                    self.slot.publish(new.key.clone());
                    self.observe_served(&new);
                    tracing::info!(
                        site = %site,
                        "ACME certificate obtained and now served, valid until {}",
                        humantime::format_rfc3339_seconds(new.lifetime.not_after)
                    );
                    stored = Some(new);
                }
                Err(e) => {
                    failures += 1;
                    observed.failure();
                    crate::observe::metrics().error("acme", &site, e.to_string());
                    let delay = schedule::retry_delay(
                        failures,
                        schedule::random_unit(self.acme.provider.secure_random),
                    );
                    self.log_failure(&e, failures, delay, stored.as_ref());
                    if self.alternate {
                        self.kind = self.kind.other();
                    }
                    // The lock is kept through the back-off, so the other instances do not
                    // each try again at once and multiply the failures the CA counts.
                    tokio::time::sleep(delay).await;
                    if let Some(l) = lease {
                        l.release().await;
                    }
                }
            }
        }
    }

    /// Obtains a certificate; under a cluster lease, stops as soon as the lease is lost.
    async fn obtain_under(
        &self,
        lease: Option<&mut (dyn Lease + 'static)>,
        replaces: Option<instant_acme::CertificateIdentifier<'static>>,
        progress: Progress<'_>,
    ) -> Result<Stored, AcmeError> {
        let obtain = self.acme.obtain(&self.names, self.kind, replaces, progress);
        let Some(lease) = lease else {
            return obtain.await;
        };
        tokio::select! {
            r = obtain => r,
            () = lease.lost() => Err(AcmeError::Other(
                "the cluster's order lock ran out (is Redis reachable?): the order stopped so that another instance can take over".into(),
            )),
        }
    }

    /// Whether this instance orders now: always without `cluster:`; with it, only while it
    /// holds the names' lock, and only if no other instance stored a newer certificate.
    async fn take_turn(&self, stored: &Option<Stored>) -> Turn {
        let Some(peers) = &self.acme.peers else {
            return Turn::Order(None);
        };
        let lease = match peers.lock(&self.names).await {
            Ok(lease) => lease,
            Err(why) => return Turn::Wait(why),
        };
        // The holder before us may have just stored one (taking the lock read it).
        match self.fresher(stored) {
            Some(s) => {
                lease.release().await;
                Turn::Served(s)
            }
            None => Turn::Order(Some(lease)),
        }
    }

    /// Sleeps for `wait`, or less when another instance changed the shared store.
    async fn wait_or_changed(&self, wait: Duration) {
        let sleep = tokio::time::sleep(wait);
        match &self.acme.peers {
            None => sleep.await,
            Some(peers) => tokio::select! {
                () = sleep => {}
                () = peers.changed() => {}
            },
        }
    }

    /// What to serve after the store may have changed: its certificate when another instance
    /// renewed it, else what was served.
    fn reload(&self, stored: Option<Stored>) -> Option<Stored> {
        self.fresher(&stored).or(stored)
    }

    /// The stored certificate, now served, when it differs from the one served.
    fn fresher(&self, served: &Option<Stored>) -> Option<Stored> {
        let s = self.acme.load_stored(&self.names)?;
        let same = served.as_ref().is_some_and(|old| old.leaf() == s.leaf());
        if same {
            return None;
        }
        self.slot.publish(s.key.clone());
        self.observe_served(&s);
        tracing::info!(
            site = %self.names.join(", "),
            "ACME certificate from the store now served, valid until {}",
            humantime::format_rfc3339_seconds(s.lifetime.not_after)
        );
        Some(s)
    }

    /// Tells the status page and the expiry gauge which certificate is served now.
    fn observe_served(&self, stored: &Stored) {
        let site = self.names.first().map_or("", String::as_str);
        let origin = crate::observe::CertOrigin::Acme;
        if let Some(info) = crate::observe::CertInfo::of(site, &self.names, origin, &stored.key) {
            crate::observe::metrics().certificate_obtained(info);
        }
    }

    /// The CA's renewal information for the stored certificate, when it offers ARI; without
    /// it (or without the CA) the lifetime rule applies.
    async fn renewal_info(&self, stored: &Stored) -> Option<RenewalInfo> {
        let issuer = self.acme.issuer(&|_| {}).await.ok()?;
        let ask = issuer.renewal_info(stored.leaf());
        let mut info = tokio::time::timeout(defaults::ACME_HTTP_TIMEOUT, ask)
            .await
            .ok()??;
        info.recheck = info
            .recheck
            .clamp(Duration::from_secs(60), defaults::ACME_ARI_RECHECK);
        Some(info)
    }

    fn log_failure(&self, e: &AcmeError, failures: u32, delay: Duration, serving: Option<&Stored>) {
        let what = match (serving, self.slot.has_fallback()) {
            (Some(s), _) => format!(
                "the site keeps its current certificate, valid until {}",
                humantime::format_rfc3339_seconds(s.lifetime.not_after)
            ),
            (None, true) => "a temporary local-CA certificate is served until then".to_owned(),
            (None, false) => "handshakes for it fail until then".to_owned(),
        };
        tracing::error!(
            site = %self.names.join(", "),
            attempt = failures,
            "ACME: could not get a certificate: {e}; retrying in {} ({what})",
            humantime::format_duration(Duration::from_secs(delay.as_secs()))
        );
    }
}

/// Where the certificate for `names` is kept, for messages.
pub(crate) fn describe_store(acme: &Acme, names: &[String]) -> String {
    let (cert, _) = acme.cert_keys(names);
    acme.storage.describe(&cert)
}
