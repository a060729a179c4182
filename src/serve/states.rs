//! What each listener serves, built from a validated config: certificates loaded and checked,
//! TLS set-ups (one per listener, or per site or tunnel when they differ in what they ask of
//! clients), routers and tunnels. Built off to the side at start and on every reload.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{Context, Result};
use rustls::crypto::CryptoProvider;

use super::{ListenerKey, Role};
use crate::acme::Acme;
use crate::certs::{self, LoadedCert, ManagedCert};
use crate::cluster::tickets::SharedTicketer;
use crate::config::{
    CertSource, ClientAuth, Config, Tunnel, TunnelMode, UnknownSni, WhilePending, defaults,
};
use crate::devca::DevCa;
use crate::http::{Router, SiteHandler};
use crate::listener::ListenerState;
use crate::listener::quic::{ALPN_H3, QuicState};
use crate::tls::SniResolver;
use crate::tls::{self, Offer, TlsFront};
use crate::tunnel::{Endpoint, TunnelListener};

/// Every site's and tunnel's certificates, in config order (ACME ones come from their slot).
pub(super) struct Certificates {
    pub(super) sites: Vec<Vec<LoadedCert>>,
    pub(super) tunnels: Vec<Vec<LoadedCert>>,
}

/// Loads and checks them all; the first failure stops everything.
pub(super) fn load_certificates(
    config: &Config,
    ca: Option<&DevCa>,
    provider: &CryptoProvider,
) -> Result<Certificates> {
    let load = |names: &[String], source: &CertSource| {
        certificate(names, source, ca, provider, config.allow_expired)
    };
    let sites = config
        .sites
        .iter()
        .map(|s| load(&s.names, &s.certificate))
        .collect::<Result<_>>()?;
    let tunnels = config
        .tunnels
        .iter()
        .map(|t| match &t.mode {
            TunnelMode::Server(s) => {
                load(&t.cert_names(), &s.certificate).with_context(|| format!("tunnel {}", t.name))
            }
            TunnelMode::Client(_) => Ok(Vec::new()),
        })
        .collect::<Result<_>>()?;
    Ok(Certificates { sites, tunnels })
}

/// What every listener serves: the TCP ones by role and requested address, and the QUIC
/// (HTTP/3) side of an HTTPS listener by its requested address.
pub(super) struct States {
    pub(super) listeners: HashMap<ListenerKey, ListenerState>,
    pub(super) quic: HashMap<SocketAddr, QuicState>,
}

/// What `run` makes once and every reload builds on: the ACME orders and renewals, and a
/// cluster's shared session-ticket keys.
#[derive(Clone, Copy)]
pub(super) struct Kept<'a> {
    pub(super) acme: Option<&'a Arc<Acme>>,
    pub(super) tickets: Option<&'a Arc<SharedTicketer>>,
}

/// What each listener serves, keyed by the address the config asks for: the TLS front with
/// its SNI table and the router with its sites, or the tunnels. `ports` maps requested to bound
/// addresses, so that redirects name the real port when the config said `:0`; `quic` lists
/// the HTTPS listeners whose UDP port is bound (their routers advertise HTTP/3).
pub(super) fn build_states(
    config: &Config,
    certs: &Certificates,
    ports: &HashMap<SocketAddr, SocketAddr>,
    quic: &HashSet<SocketAddr>,
    provider: &Arc<CryptoProvider>,
    kept: Kept<'_>,
    ca: Option<&DevCa>,
) -> Result<States> {
    let Kept { acme, tickets } = kept;
    let build = Build {
        config,
        provider,
        acme,
        ca,
        tickets,
    };
    // Each HTTPS listener's TLS side first: whether it serves HTTP/3 decides what its sites
    // advertise (Alt-Svc), which their handlers keep with their responses' headers.
    let mut fronts = HashMap::new();
    for site in &config.sites {
        if fronts.contains_key(&site.listen) {
            continue;
        }
        let on_it: Vec<usize> = (0..config.sites.len())
            .filter(|&j| config.sites[j].listen == site.listen)
            .collect();
        let h3 = quic.contains(&site.listen) && on_it.iter().any(|&j| config.sites[j].http3);
        let (tls, quic_tls) = build.https_front(&on_it, &certs.sites, h3)?;
        fronts.insert(site.listen, (on_it, tls, quic_tls));
    }
    let handlers = config
        .sites
        .iter()
        .map(|s| {
            let h3_port = match fronts.get(&s.listen) {
                Some((_, _, Some(_))) if s.http3 => ports.get(&s.listen).map(|b| b.port()),
                _ => None,
            };
            let mut site = s.clone();
            site.listen = ports.get(&s.listen).copied().unwrap_or(s.listen);
            let root = site.root.clone().unwrap_or_default();
            SiteHandler::new(site, provider, h3_port)
                .map(Arc::new)
                .with_context(|| format!("cannot serve the folder {}", root.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut states = HashMap::new();
    let mut quic_states = HashMap::new();
    for (listen, (on_it, tls, quic_tls)) in fronts {
        let router = Router::new(
            on_it.iter().map(|&j| handlers[j].clone()).collect(),
            config.log.access,
        )
        .with_limits(config.limits);
        let router = Arc::new(router);
        if let Some(tls) = quic_tls {
            let router = router.clone();
            quic_states.insert(listen, QuicState { tls, router });
        }
        let state = ListenerState::Https { tls, router };
        states.insert((Role::Https, listen), state);
    }
    for site in &config.sites {
        let Some(from) = site.redirect_from else {
            continue;
        };
        let sites = handlers
            .iter()
            .filter(|h| h.site.redirect_from == Some(from))
            .cloned()
            .collect();
        let mut router = Router::new(sites, config.log.access).with_limits(config.limits);
        if let Some(acme) = acme {
            router = router.with_challenges(acme.challenges());
        }
        states
            .entry((Role::Redirect, from))
            .or_insert(ListenerState::Redirect(Arc::new(router)));
    }
    for t in &config.tunnels {
        if states.contains_key(&(Role::Tunnel, t.listen)) {
            continue;
        }
        let on_it: Vec<usize> = (0..config.tunnels.len())
            .filter(|&j| config.tunnels[j].listen == t.listen)
            .collect();
        let listener = build
            .tunnel_listener(&on_it, &certs.tunnels)
            .with_context(|| format!("tunnel {}", t.name))?;
        states.insert(
            (Role::Tunnel, t.listen),
            ListenerState::Tunnel(Arc::new(listener)),
        );
    }
    Ok(States {
        listeners: states,
        quic: quic_states,
    })
}

/// Names one HTTPS TLS set-up the same way on every instance of a cluster (they share the
/// config): the protocol, the listener's position among the sites and the names it serves.
fn https_label(protocol: &str, on_it: &[usize], names: &[String]) -> String {
    let first = on_it.first().copied().unwrap_or_default();
    format!("{protocol} site {first} {}", names.join(","))
}

/// What building a listener's TLS side needs.
struct Build<'a> {
    config: &'a Config,
    provider: &'a Arc<CryptoProvider>,
    acme: Option<&'a Arc<Acme>>,
    ca: Option<&'a DevCa>,
    /// `cluster:`: session-ticket keys shared with the other instances.
    tickets: Option<&'a Arc<SharedTicketer>>,
}

impl Build<'_> {
    /// The TLS front of an HTTPS listener serving the sites `on_it`. One configuration serves
    /// them all unless some site asks for client certificates: then each site has its own, so
    /// that its rules apply to exactly its names (and the router can refuse a request whose
    /// Host names another site than the handshake did).
    ///
    /// With `h3`, also the QUIC (HTTP/3) set-up: the same resolver and client-certificate
    /// rules with ALPN `h3`, when the listener has one TLS set-up (QUIC cannot choose one by
    /// SNI before its handshake).
    fn https_front(
        &self,
        on_it: &[usize],
        certs: &[Vec<LoadedCert>],
        h3: bool,
    ) -> Result<(TlsFront, Option<Arc<rustls::ServerConfig>>)> {
        let mut resolver = SniResolver::new(self.config.unknown_sni == UnknownSni::Reject);
        let mut answers_acme = false;
        for &j in on_it {
            let site = &self.config.sites[j];
            let http01 = site.redirect_from.is_some();
            answers_acme |= self.add_certificate(
                &mut resolver,
                &site.names,
                &site.certificate,
                &certs[j],
                http01,
            )?;
        }
        let resolver: Arc<SniResolver> = Arc::new(resolver);
        let sites = || on_it.iter().map(|&j| &self.config.sites[j]);
        let profiles = match sites().any(|s| s.client_auth.is_some()) {
            false => {
                let names: Vec<String> = sites().flat_map(|s| s.names.clone()).collect();
                let label = https_label("h2", on_it, &names);
                let offer = Offer::http(answers_acme);
                let config = self.shared_server_config(resolver.clone(), offer, &label)?;
                vec![(names, config)]
            }
            true => sites()
                .map(|s| {
                    let offer = Offer {
                        client_auth: self
                            .verifier(s.client_auth.as_ref())
                            .with_context(|| format!("site {}", s.primary_name()))?,
                        ..Offer::http(answers_acme)
                    };
                    Ok((
                        s.names.clone(),
                        self.server_config(resolver.clone(), offer)?,
                    ))
                })
                .collect::<Result<_>>()?,
        };
        let validations = match answers_acme && sites().any(|s| s.client_auth.is_some()) {
            true => Some(self.acme_validations()?),
            false => None,
        };
        let quic = match (h3, profiles.len()) {
            (false, _) => None,
            (true, 1) => {
                let client_auth = sites().find_map(|s| s.client_auth.as_ref());
                let offer = Offer {
                    alpn: vec![ALPN_H3.to_vec()],
                    acme: false,
                    client_auth: self.verifier(client_auth)?,
                };
                let names: Vec<String> = sites().flat_map(|s| s.names.clone()).collect();
                let label = https_label("h3", on_it, &names);
                Some(self.shared_server_config(resolver, offer, &label)?)
            }
            (true, _) => {
                let names: Vec<&str> = sites().map(|s| s.primary_name()).collect();
                tracing::warn!(
                    "HTTP/3 is off for {}: sites on one port that ask for client certificates each need their own TLS set-up, which QUIC cannot choose by name; give them their own ports to serve HTTP/3",
                    names.join(", ")
                );
                None
            }
        };
        let reject = self.config.unknown_sni == UnknownSni::Reject;
        Ok((TlsFront::new(profiles, reject, validations), quic))
    }

    /// The tunnels `on_it` sharing one listen address: all terminating TLS (told apart by
    /// SNI), or one in client mode.
    fn tunnel_listener(
        &self,
        on_it: &[usize],
        certs: &[Vec<LoadedCert>],
    ) -> Result<TunnelListener> {
        let (timeout, log) = (self.config.timeouts.handshake, self.config.log.access);
        let tunnels = || on_it.iter().map(|&j| (j, &self.config.tunnels[j]));
        if let Some((_, t)) = tunnels().next()
            && let TunnelMode::Client(c) = &t.mode
        {
            let identity = match &c.identity {
                Some((cert, key)) => Some(certs::load_files(cert, key, self.provider, false)?.key),
                None => None,
            };
            let mut client = tls::client_config(c.ca.as_deref(), identity, self.provider.clone())
                .context("cannot set up TLS to the upstream")?;
            client.alpn_protocols = c.alpn.clone();
            let endpoint = Endpoint::originating(t, client, &c.server_name)?;
            return Ok(TunnelListener::originating(endpoint, timeout, log));
        }
        let reject = self.config.unknown_sni == UnknownSni::Reject;
        let profiles = tunnels()
            .filter_map(|(j, t)| match &t.mode {
                TunnelMode::Server(s) => Some((j, t, s)),
                TunnelMode::Client(_) => None,
            })
            .map(|(j, t, s)| {
                let mut resolver = SniResolver::new(reject);
                let http01 = self.config.sites.iter().any(|s| s.redirect_from.is_some());
                let acme = self.add_certificate(
                    &mut resolver,
                    &t.cert_names(),
                    &s.certificate,
                    &certs[j],
                    http01,
                )?;
                let offer = Offer {
                    alpn: s.alpn.clone(),
                    acme,
                    client_auth: self.verifier(s.client_auth.as_ref())?,
                };
                let config = self.server_config(Arc::new(resolver), offer)?;
                Ok(((s.names.clone(), config), Endpoint::terminating(t)))
            })
            .collect::<Result<Vec<_>>>()?;
        let (profiles, endpoints): (Vec<_>, Vec<_>) = profiles.into_iter().unzip();
        let asks = |t: &Tunnel| matches!(&t.mode, TunnelMode::Server(s) if s.certificate == CertSource::Acme && s.client_auth.is_some());
        let validations = match tunnels().any(|(_, t)| asks(t)) {
            true => Some(self.acme_validations()?),
            false => None,
        };
        let tls = TlsFront::new(profiles, reject, validations);
        Ok(TunnelListener::terminating(tls, endpoints, timeout, log))
    }

    /// Adds one site's or tunnel's certificate to `resolver`; returns whether it is an ACME
    /// one (so the listener must answer TLS-ALPN-01 validations).
    fn add_certificate(
        &self,
        resolver: &mut SniResolver,
        names: &[String],
        source: &CertSource,
        loaded: &[LoadedCert],
        http01: bool,
    ) -> Result<bool> {
        match (source, self.acme) {
            (CertSource::Acme, Some(acme)) => {
                let fallback = pending_certificate(self.config, names, self.ca, self.provider)?;
                let slot = acme.managed(names, http01, fallback);
                resolver.add_managed(names, slot);
                resolver.answer_challenges(acme.challenges());
                Ok(true)
            }
            (CertSource::Local, _) if self.ca.is_some() && loaded.len() == 1 => {
                // A slot, so that the leaf can be reissued while serving (`renew_local`).
                let slot = Arc::new(ManagedCert::new(&names.join(", "), None));
                slot.publish(loaded[0].key.clone());
                resolver.add_managed(names, slot.clone());
                tokio::spawn(renew_local(
                    Arc::downgrade(&slot),
                    names.to_vec(),
                    self.provider.clone(),
                ));
                Ok(false)
            }
            _ => {
                resolver.add(names, loaded.iter().map(|c| c.key.clone()).collect());
                Ok(false)
            }
        }
    }

    /// The configuration for TLS-ALPN-01 validations on a listener whose sites or tunnels ask
    /// for client certificates: the validation certificate, and no request for a client's.
    fn acme_validations(&self) -> Result<Arc<rustls::ServerConfig>> {
        let mut resolver = SniResolver::new(true);
        if let Some(acme) = self.acme {
            resolver.answer_challenges(acme.challenges());
        }
        let offer = Offer {
            alpn: Vec::new(),
            acme: true,
            client_auth: None,
        };
        self.server_config(Arc::new(resolver), offer)
    }

    fn server_config(
        &self,
        resolver: Arc<SniResolver>,
        offer: Offer,
    ) -> Result<Arc<rustls::ServerConfig>> {
        Ok(tls::server_config(
            self.config.tls_policy,
            self.provider.clone(),
            resolver,
            offer,
        )?)
    }

    /// With `cluster:`, a set-up that asks for no client certificate takes the shared
    /// session-ticket keys under `label`, so a client resumes on any instance. Set-ups with
    /// client certificates keep this process's own ticketer: resuming skips the client's
    /// certificate check, so such sessions stay where they were verified.
    fn shared_server_config(
        &self,
        resolver: Arc<SniResolver>,
        offer: Offer,
        label: &str,
    ) -> Result<Arc<rustls::ServerConfig>> {
        let Some(tickets) = self.tickets.filter(|_| offer.client_auth.is_none()) else {
            return self.server_config(resolver, offer);
        };
        Ok(tls::server_config_with_tickets(
            self.config.tls_policy,
            self.provider.clone(),
            resolver,
            offer,
            Some(tickets.for_setup(label)),
        )?)
    }

    fn verifier(
        &self,
        auth: Option<&ClientAuth>,
    ) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>> {
        let Some(auth) = auth else {
            return Ok(None);
        };
        let local = self.ca.map(DevCa::cert_path);
        Ok(Some(tls::client_auth::verifier(
            auth,
            local.as_deref(),
            self.provider.clone(),
        )?))
    }
}

/// Reissues a local-CA leaf while serving once a third of its life is left (as at start, in
/// `DevCa::leaf_for`), and publishes it into the slot: new handshakes get it at once, open
/// connections keep theirs, so a long-running dev server never shows an expired certificate.
/// Ends when the slot is gone (a reload made a new one).
async fn renew_local(slot: Weak<ManagedCert>, names: Vec<String>, provider: Arc<CryptoProvider>) {
    let mut tick = tokio::time::interval(local_check_interval());
    tick.tick().await; // the first tick is immediate, and the leaf was just checked
    loop {
        tick.tick().await;
        let Some(slot) = slot.upgrade() else {
            return;
        };
        // Reads the CA and the stored leaf, and may write a new one: off the runtime.
        let (n, p) = (names.clone(), provider.clone());
        let reissued = tokio::task::spawn_blocking(move || reissue_if_due(&n, &p))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the check stopped: {e}")));
        match reissued {
            Ok(None) => {}
            Ok(Some(loaded)) => {
                slot.publish(loaded.key);
                tracing::info!(
                    "reissued the local certificate for {} (valid until {}); now served",
                    names.join(", "),
                    humantime::format_rfc3339_seconds(loaded.not_after)
                );
            }
            Err(e) => tracing::warn!(
                "cannot reissue the local certificate for {}: {e:#}; still serving the current one",
                names.join(", ")
            ),
        }
    }
}

/// The new leaf for `names`, if the stored one is due.
fn reissue_if_due(names: &[String], provider: &CryptoProvider) -> Result<Option<LoadedCert>> {
    let dir = crate::config::data_dir();
    let (ca, _) = DevCa::load_or_create(&dir)
        .with_context(|| format!("cannot read the local development CA in {}", dir.display()))?;
    if !ca.leaf_is_due(names) {
        return Ok(None);
    }
    let (cert, key) = ca.leaf_for(names)?;
    Ok(Some(certs::load_files(&cert, &key, provider, false)?))
}

/// `CANDADO_LOCAL_CERT_CHECK_SECS` (for tests) or the default.
fn local_check_interval() -> Duration {
    std::env::var("CANDADO_LOCAL_CERT_CHECK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&secs| secs > 0)
        .map_or(defaults::LOCAL_CERT_CHECK_INTERVAL, Duration::from_secs)
}

/// What an ACME site serves until its first certificate arrives: nothing (handshakes fail)
/// or, with `acme.while_pending: local`, a certificate from the development CA.
fn pending_certificate(
    config: &Config,
    names: &[String],
    ca: Option<&DevCa>,
    provider: &CryptoProvider,
) -> Result<Option<Arc<rustls::sign::CertifiedKey>>> {
    let (WhilePending::LocalCa, Some(ca)) = (config.acme.while_pending, ca) else {
        return Ok(None);
    };
    let (cert, key) = ca.leaf_for(names)?;
    Ok(Some(certs::load_files(&cert, &key, provider, false)?.key))
}

/// A site's or tunnel's certificates, in order of preference (one, unless several are
/// configured).
fn certificate(
    names: &[String],
    source: &CertSource,
    ca: Option<&DevCa>,
    provider: &CryptoProvider,
    allow_expired: bool,
) -> Result<Vec<LoadedCert>> {
    let files = match (source, ca) {
        // Served from the ACME slot, not from files.
        (CertSource::Acme, _) => return Ok(Vec::new()),
        (CertSource::Local, Some(ca)) => vec![ca.leaf_for(names)?],
        (CertSource::Local, None) => {
            anyhow::bail!("internal: no local CA for {}", names.join(", "))
        }
        (source, _) => source.files(),
    };
    files
        .iter()
        .map(|(cert, key)| {
            let loaded = certs::load_files(cert, key, provider, allow_expired)?;
            for w in &loaded.warnings {
                tracing::warn!("{w}");
            }
            let covered = |n: &String| {
                loaded
                    .names
                    .iter()
                    .any(|c| crate::config::name_matches(c, n) || c == n)
            };
            let uncovered: Vec<&String> = names.iter().filter(|n| !covered(n)).collect();
            if !uncovered.is_empty() && !loaded.names.is_empty() {
                tracing::warn!(
                    "the certificate {} does not cover {:?}: clients will reject those names",
                    cert.display(),
                    uncovered
                );
            }
            Ok(loaded)
        })
        .collect()
}
