//! Reloads: SIGHUP (`candado reload`) or a changed certificate file builds the whole new state
//! off to the side and swaps it in only when all of it loads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use rustls::crypto::CryptoProvider;

use super::states::{Certificates, Kept, States, build_states, load_certificates};
use super::{
    ListenerKey, QuicStarted, Reloader, conn_settings, local_ca, notify, observe_served,
    served_certs, uses_acme,
};
use crate::acme::Acme;
use crate::certs::expiry::Served;
use crate::certs::watch::FileWatch;
use crate::cluster::tickets::SharedTicketer;
use crate::config::{Config, defaults};
use crate::listener::ListenerCtx;

/// SIGHUP (`candado reload`) or a changed certificate file re-reads the config and every
/// certificate. The new state is built off to the side and swapped in only when all of it
/// loads: new connections get it at once, open ones keep what they started with, and a broken
/// file leaves everything as it was.
pub(super) struct Reloading {
    pub(super) reload: Reloader,
    pub(super) fixed: FixedAtStart,
    pub(super) listeners: Vec<(ListenerKey, Arc<ListenerCtx>)>,
    pub(super) quic: QuicStarted,
    pub(super) ports: HashMap<SocketAddr, SocketAddr>,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) expiry: tokio::sync::watch::Sender<Vec<Served>>,
    pub(super) acme: Option<Arc<Acme>>,
    /// `cluster:`: the shared session-ticket keys, kept across reloads.
    pub(super) tickets: Option<Arc<SharedTicketer>>,
    /// `--lan`: the LAN listeners take each reloaded config.
    pub(super) lan: Option<tokio::sync::watch::Sender<Config>>,
    /// Requested → bound addresses of HTTPS and redirect listeners, for the status page.
    pub(super) all_ports: HashMap<SocketAddr, SocketAddr>,
}

pub(super) fn spawn_reloads(reloading: Arc<Reloading>, watch: FileWatch) {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hup) => drop(tokio::spawn(reload_on_hangup(reloading, hup, watch))),
        Err(e) => tracing::warn!("cannot listen for SIGHUP ({e}): reloads are off"),
    }
}

async fn reload_on_hangup(
    r: Arc<Reloading>,
    mut hup: tokio::signal::unix::Signal,
    mut watch: FileWatch,
) {
    let mut tick = tokio::time::interval(defaults::CERT_WATCH_INTERVAL);
    loop {
        let why = tokio::select! {
            _ = hup.recv() => "SIGHUP received",
            _ = tick.tick() => match watch.changed() {
                true => "a certificate, key, CA or CRL file changed",
                false => continue,
            },
        };
        notify::reloading(why);
        // Reading the config and every certificate file is blocking work: off the runtime.
        let job = r.clone();
        let done = tokio::task::spawn_blocking(move || job.once())
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the reload stopped: {e}")));
        match done {
            Ok((config, served, certs)) => {
                crate::observe::metrics().reloaded(true);
                observe_served(&config, &certs, &r.all_ports);
                watch = FileWatch::of(&config);
                r.fixed.warn_unapplied(&config);
                if let Some(lan) = &r.lan {
                    let _ = lan.send(config.clone());
                }
                let now = std::time::SystemTime::now();
                let status = notify::status(config.sites.len(), config.tunnels.len(), &served, now);
                let _ = r.expiry.send(served);
                tracing::info!(
                    sites = config.sites.len(),
                    "{why}: reloaded the configuration and certificates"
                );
                notify::ready(&status);
            }
            Err(e) => {
                crate::observe::metrics().reloaded(false);
                crate::observe::metrics().error("reload", why, format!("{e:#}"));
                tracing::error!(
                    "{why}: reload failed, still serving the previous configuration: {e:#}"
                );
                notify::ready(&format!(
                    "reload failed, serving the previous configuration: {e:#}"
                ));
            }
        }
    }
}

impl Reloading {
    fn once(&self) -> Result<(Config, Vec<Served>, Certificates)> {
        reload_once(
            &self.reload,
            &self.listeners,
            &self.quic,
            &self.ports,
            &self.provider,
            self.acme.as_ref(),
            self.tickets.as_ref(),
        )
    }
}

fn reload_once(
    reload: &Reloader,
    listeners: &[(ListenerKey, Arc<ListenerCtx>)],
    quic: &QuicStarted,
    ports: &HashMap<SocketAddr, SocketAddr>,
    provider: &Arc<CryptoProvider>,
    acme: Option<&Arc<Acme>>,
    tickets: Option<&Arc<SharedTicketer>>,
) -> Result<(Config, Vec<Served>, Certificates)> {
    let config = reload()?;
    match acme {
        None if uses_acme(&config) => {
            anyhow::bail!("a site now uses ACME certificates: restart candado to start it")
        }
        Some(a) if a.settings() != &config.acme => tracing::warn!(
            "the acme settings changed: restart candado to apply them (the running ones stay)"
        ),
        _ => {}
    }
    let ca = local_ca(&config)?;
    let certs = load_certificates(&config, ca.as_ref(), provider)?;
    let quic_addrs: std::collections::HashSet<SocketAddr> = quic.iter().map(|(a, _)| *a).collect();
    let unbound: Vec<&str> = config
        .sites
        .iter()
        .filter(|s| s.http3 && !quic_addrs.contains(&s.listen))
        .map(|s| s.primary_name())
        .collect();
    if !unbound.is_empty() {
        tracing::warn!(
            "HTTP/3 needs a UDP port that was not opened at start for {}: restart candado to serve it",
            unbound.join(", ")
        );
    }
    let States {
        listeners: mut states,
        quic: mut quic_states,
    } = build_states(
        &config,
        &certs,
        ports,
        &quic_addrs,
        provider,
        Kept { acme, tickets },
        ca.as_ref(),
    )?;
    let wanted: std::collections::BTreeSet<_> = states.keys().copied().collect();
    let bound: std::collections::BTreeSet<_> = listeners.iter().map(|(r, _)| *r).collect();
    if wanted != bound {
        anyhow::bail!(
            "the listen addresses changed ({wanted:?} instead of {bound:?}): restart candado to apply that"
        );
    }
    let settings = Arc::new(conn_settings(&config));
    for (requested, ctx) in listeners {
        if let Some(state) = states.remove(requested) {
            ctx.state.store(Arc::new(state));
            ctx.settings.store(settings.clone());
        }
    }
    // After the TCP side's settings: the QUIC transport limits are read from them.
    for (requested, l) in quic {
        l.swap(quic_states.remove(requested));
    }
    let served = served_certs(&config, &certs);
    Ok((config, served, certs))
}

/// The settings fixed at start-up: a reload that changes them says so instead of ignoring them.
pub(super) struct FixedAtStart {
    max_connections: usize,
    shutdown: std::time::Duration,
    log_format: crate::config::LogFormat,
    admin: Option<crate::config::Admin>,
    cluster: Option<crate::config::ClusterSettings>,
}

impl FixedAtStart {
    pub(super) fn of(config: &Config) -> Self {
        FixedAtStart {
            max_connections: config.limits.max_connections,
            shutdown: config.timeouts.shutdown,
            log_format: config.log.format,
            admin: config.admin.clone(),
            cluster: config.cluster.clone(),
        }
    }

    fn warn_unapplied(&self, config: &Config) {
        let changed: Vec<&str> = [
            (
                "limits.max_connections",
                self.max_connections != config.limits.max_connections,
            ),
            (
                "timeouts.shutdown",
                self.shutdown != config.timeouts.shutdown,
            ),
            ("log.format", self.log_format != config.log.format),
            ("admin", self.admin != config.admin),
            ("cluster", self.cluster != config.cluster),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        if !changed.is_empty() {
            tracing::warn!(
                "changed settings that need a restart (the running values stay until then): {}",
                changed.join(", ")
            );
        }
    }
}
