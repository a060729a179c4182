//! `candado serve`: turns a validated config into running listeners. Certificates are loaded
//! first (a bad one stops the start within a second), then every address is bound (a busy
//! port stops it too), and only then is anything served.

mod admin;
pub(crate) mod instance;
mod lan;
mod notify;
mod reload;
mod states;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::acme::Acme;
use crate::certs::expiry::{ExpiryWatch, Served};
use crate::certs::watch::FileWatch;
use crate::cluster::acme::AcmeShare;
use crate::cluster::tickets::SharedTicketer;
use crate::config::{
    CertSource, ClientAuth, ClientCa, Config, Tunnel, TunnelMode, WhilePending, defaults,
};
use crate::devca::DevCa;
use crate::http::Router;
use crate::listener::{self, ConnSettings, ListenerCtx, ListenerState};
use crate::tls::SniResolver;
use crate::tls::{self, Offer, TlsFront};
use reload::{FixedAtStart, Reloading, spawn_reloads};
use states::{Certificates, Kept, build_states, load_certificates};

/// A listener is known by its role and the address the config asks for (two `:0` addresses,
/// an HTTPS one and a redirect one, are different listeners).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Https,
    Redirect,
    Tunnel,
}

type ListenerKey = (Role, SocketAddr);

/// Rebuilds the configuration for a reload (re-reads the config file, same flags).
pub(crate) type Reloader = Box<dyn Fn() -> Result<Config> + Send + Sync>;

pub(crate) async fn run(config: Config, reload: Option<Reloader>) -> Result<()> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!(error = %e, "cannot raise the open-file limit");
    }
    let provider = tls::provider();
    let ca = local_ca(&config)?;
    let certs = load_certificates(&config, ca.as_ref(), &provider)?;
    let bound = Bound::all(&config).await?;
    let quic = bind_quic(&config, &bound.ports);
    let quic_addrs = quic.keys().copied().collect();
    // Made once and kept across reloads.
    let (acme, tickets) = start_shared(&config, &provider).await?;
    let mut states = build_states(
        &config,
        &certs,
        &bound.ports,
        &quic_addrs,
        &provider,
        Kept {
            acme: acme.as_ref(),
            tickets: tickets.as_ref(),
        },
        ca.as_ref(),
    )?;
    // Once nothing can fail any more, and before "listening" is announced, so that
    // `candado reload` works as soon as the server is up.
    let https: Vec<SocketAddr> = bound.ports.values().copied().collect();
    let instance = instance::Instance::start(&config, &https);
    let ports = bound.ports.clone();
    let mut all_ports = ports.clone();
    all_ports.extend(bound.redirect_ports.iter().map(|(r, a)| (*r, *a)));
    observe_served(&config, &certs, &all_ports);
    if tracing::enabled!(tracing::Level::DEBUG) {
        spawn_self_check(&config, &ports, &bound.redirect_ports, ca.as_ref());
    }
    let listeners = start_listeners(&config, bound, states.listeners);
    let quic = start_quic(quic, &mut states.quic, &listeners);
    announce_sources(acme.as_ref(), ca.as_ref());

    // Signal handlers are in place before READY=1: a SIGHUP or SIGTERM right after it must
    // find them (both signals' default action ends the process).
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(
        shutdown.clone(),
        ShutdownSignals::register(),
    ));
    let lan = start_beside(&config, &ports, &provider, &shutdown).await?;
    let served = served_certs(&config, &certs);
    let status = notify::status(
        config.sites.len(),
        config.tunnels.len(),
        &served,
        std::time::SystemTime::now(),
    );
    let (expiry, expiry_rx) = tokio::sync::watch::channel(served);
    tokio::spawn(watch_expiry(expiry_rx, instance.metrics.clone()));
    if let Some(reload) = reload {
        let reloading = Reloading {
            reload,
            fixed: FixedAtStart::of(&config),
            lan,
            listeners: listeners.iter().map(|(r, _, c)| (*r, c.clone())).collect(),
            quic: quic.clone(),
            ports,
            provider,
            expiry,
            acme,
            tickets,
            all_ports,
        };
        spawn_reloads(Arc::new(reloading), FileWatch::of(&config));
    }
    notify::ready(&status);
    let listeners = listeners
        .into_iter()
        .map(|(_, tcp, ctx)| (tcp, ctx))
        .collect();
    let quic = quic.into_iter().map(|(_, l)| l).collect();
    let left = serve_until_stopped(&config, listeners, quic, shutdown).await;
    instance.stop();
    match left {
        0 => tracing::info!("stopped"),
        n => tracing::warn!(
            connections = n,
            "stopped; connections still busy after the shutdown timeout were closed"
        ),
    }
    Ok(())
}

/// What runs beside the sites: the `--lan` listeners (whose sender takes reloaded configs)
/// and the admin listener.
async fn start_beside(
    config: &Config,
    ports: &HashMap<SocketAddr, SocketAddr>,
    provider: &Arc<CryptoProvider>,
    shutdown: &CancellationToken,
) -> Result<Option<tokio::sync::watch::Sender<Config>>> {
    let lan = match &config.lan {
        Some(l) => {
            let requested = config.sites[l.site].listen;
            let port = ports.get(&requested).map_or(requested.port(), |a| a.port());
            Some(lan::start(config, port, provider.clone(), shutdown.clone()).await?)
        }
        None => None,
    };
    if let Some(admin) = &config.admin {
        let tls = admin_tls(admin, config, provider)?;
        admin::start(admin, tls, shutdown.clone()).await?;
    }
    Ok(lan)
}

/// Serves TCP and QUIC under one connection limit until shutdown; how many connections were
/// still busy when the shutdown timeout ran out.
async fn serve_until_stopped(
    config: &Config,
    listeners: Vec<(TcpListener, Arc<ListenerCtx>)>,
    quic: Vec<Arc<listener::quic::QuicListener>>,
    shutdown: CancellationToken,
) -> usize {
    let permits = Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections));
    let drain = config.timeouts.shutdown;
    let (left, left_quic) = tokio::join!(
        listener::serve_with_permits(listeners, permits.clone(), shutdown.clone(), drain),
        listener::quic::serve(quic, permits, shutdown, drain),
    );
    left + left_quic
}

/// Every listening socket, bound before anything is served (a busy port stops the start),
/// with the actual address of each requested one (`:0` becomes a real port).
struct Bound {
    https: HashMap<SocketAddr, (TcpListener, SocketAddr)>,
    redirects: HashMap<SocketAddr, (TcpListener, SocketAddr)>,
    tunnels: HashMap<SocketAddr, (TcpListener, SocketAddr)>,
    /// Requested → actual, for the HTTPS listeners (redirects point at them).
    ports: HashMap<SocketAddr, SocketAddr>,
    redirect_ports: HashMap<SocketAddr, SocketAddr>,
}

impl Bound {
    async fn all(config: &Config) -> Result<Bound> {
        let https = bind_all(config.sites.iter().map(|s| s.listen))
            .await
            .context("the HTTPS listener (-p / --from, or sites[].listen in a config)")?;
        let redirects = bind_all(config.sites.iter().filter_map(|s| s.redirect_from))
            .await
            .context(
                "the HTTP→HTTPS redirect listener (--http-port, 0 for none; or sites[].http_redirect in a config)",
            )?;
        let tunnels = bind_all(config.tunnels.iter().map(|t| t.listen))
            .await
            .context("a tunnel's listener (--listen, or tunnels[].listen in a config)")?;
        let actual = |m: &HashMap<SocketAddr, (TcpListener, SocketAddr)>| {
            m.iter().map(|(r, (_, a))| (*r, *a)).collect()
        };
        Ok(Bound {
            ports: actual(&https),
            redirect_ports: actual(&redirects),
            https,
            redirects,
            tunnels,
        })
    }
}

type Started = Vec<(ListenerKey, TcpListener, Arc<ListenerCtx>)>;

/// HTTP/3: a UDP socket on the port of every HTTPS listener one of whose sites serves it
/// (requested address → endpoint). A port that cannot be bound leaves those sites on TCP,
/// without Alt-Svc, and says so.
fn bind_quic(
    config: &Config,
    ports: &HashMap<SocketAddr, SocketAddr>,
) -> HashMap<SocketAddr, quinn::Endpoint> {
    let mut bound = HashMap::new();
    for site in config.sites.iter().filter(|s| s.http3) {
        let Some(&actual) = ports.get(&site.listen) else {
            continue;
        };
        if bound.contains_key(&site.listen) {
            continue;
        }
        match listener::quic::bind(actual) {
            Ok(endpoint) => drop(bound.insert(site.listen, endpoint)),
            Err(e) => tracing::warn!(
                "cannot listen on UDP {actual} for HTTP/3 ({e}): serving HTTPS over TCP only (or set http3: false / --no-http3)"
            ),
        }
    }
    bound
}

type QuicStarted = Vec<(SocketAddr, Arc<listener::quic::QuicListener>)>;

/// Gives each QUIC endpoint what it serves, beside the TCP listener on the same port.
fn start_quic(
    endpoints: HashMap<SocketAddr, quinn::Endpoint>,
    states: &mut HashMap<SocketAddr, listener::quic::QuicState>,
    tcp: &Started,
) -> QuicStarted {
    let mut started = Vec::new();
    for (requested, endpoint) in endpoints {
        let Some((_, _, ctx)) = tcp.iter().find(|(k, _, _)| *k == (Role::Https, requested)) else {
            continue;
        };
        let state = states.remove(&requested);
        let serving = state.is_some();
        let quic = listener::quic::QuicListener::new(endpoint, state, ctx.clone());
        if let (true, Some(addr)) = (serving, quic.local_addr()) {
            tracing::info!(kind = %"http3", addr = %addr, "listening");
        }
        started.push((requested, quic));
    }
    started
}

/// Gives each bound socket what it serves, and says so in the log.
fn start_listeners(
    config: &Config,
    bound: Bound,
    mut states: HashMap<ListenerKey, ListenerState>,
) -> Started {
    let mut listeners = Vec::new();
    let roles = (bound.https.into_iter().map(|b| (Role::Https, b)))
        .chain(bound.redirects.into_iter().map(|b| (Role::Redirect, b)))
        .chain(bound.tunnels.into_iter().map(|b| (Role::Tunnel, b)));
    for (role, (requested, (tcp, actual))) in roles {
        let Some(state) = states.remove(&(role, requested)) else {
            continue;
        };
        match &state {
            ListenerState::Https { router, .. } => announce_https(router, actual),
            ListenerState::Redirect(_) => {
                tracing::info!(kind = %"http", addr = %actual, "listening");
                tracing::info!("http://{actual}/ redirects to https");
            }
            ListenerState::Tunnel(_) => announce_tunnels(config, requested, actual),
        }
        let ctx = Arc::new(ListenerCtx {
            state: ArcSwap::from_pointee(state),
            settings: ArcSwap::from_pointee(conn_settings(config)),
            local_port: actual.port(),
            gauges: crate::observe::metrics().listener(&actual.to_string()),
        });
        listeners.push(((role, requested), tcp, ctx));
    }
    listeners
}

/// Where certificates come from, and for the local CA the one command that makes browsers
/// trust it.
fn announce_sources(acme: Option<&Arc<Acme>>, ca: Option<&DevCa>) {
    if let Some(acme) = acme {
        tracing::info!(
            "ACME certificates come from {} and are kept in {}",
            acme.settings().directory,
            acme.settings().storage.display()
        );
    }
    if let Some(ca) = ca {
        tracing::info!(
            "certificates come from candado's local development CA; trust it to avoid browser warnings: run `candado ca install` (or give clients {})",
            ca.cert_path().display()
        );
    }
}

/// `-d`: grades the first site's TLS set-up as `candado check` would, once it listens.
fn spawn_self_check(
    config: &Config,
    ports: &HashMap<SocketAddr, SocketAddr>,
    redirect_ports: &HashMap<SocketAddr, SocketAddr>,
    ca: Option<&DevCa>,
) {
    let Some(site) = config.sites.first() else {
        return;
    };
    let Some(&addr) = ports.get(&site.listen) else {
        return;
    };
    let name = site.primary_name().replace("*.", "www.");
    let opts = crate::check::Options {
        ca: ca.map(|c| c.cert_path()),
        http_port: site
            .redirect_from
            .and_then(|r| redirect_ports.get(&r))
            .map_or(80, |a| a.port()),
        connect: Some(match addr.ip().is_unspecified() {
            true => std::net::IpAddr::from([127, 0, 0, 1]),
            false => addr.ip(),
        }),
        ..Default::default()
    };
    tokio::spawn(async move {
        listener::set_self_check_running(true);
        match crate::check::run(&name, addr.port(), &opts).await {
            Ok(r) => {
                let caps: Vec<&str> = r.caps.iter().map(|c| c.reason.as_str()).collect();
                tracing::info!(grade = %r.grade, capped_by = ?caps, "TLS self-check");
            }
            Err(e) => tracing::warn!("TLS self-check failed: {e}"),
        }
        // The server may finish with the last probes' connections after the client is done.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        listener::set_self_check_running(false);
    });
}

fn served_certs(config: &Config, certs: &Certificates) -> Vec<Served> {
    let sites = config.sites.iter().map(|s| s.primary_name().to_owned());
    let tunnels = config.tunnels.iter().map(|t| format!("tunnel {}", t.name));
    sites
        .zip(&certs.sites)
        .chain(tunnels.zip(&certs.tunnels))
        .flat_map(|(name, list)| {
            list.iter().map(move |c| Served {
                site: name.clone(),
                not_after: c.not_after,
            })
        })
        .collect()
}

/// Checks expiry at start, hourly, and whenever a reload brings new certificates.
async fn watch_expiry(
    mut served: tokio::sync::watch::Receiver<Vec<Served>>,
    metrics: std::path::PathBuf,
) {
    let now = std::time::SystemTime::now;
    let mut watch = ExpiryWatch::new(served.borrow_and_update().clone(), &metrics, now());
    let mut tick = tokio::time::interval(defaults::EXPIRY_CHECK_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = served.changed() => match changed {
                Ok(()) => watch = ExpiryWatch::new(served.borrow_and_update().clone(), &metrics, now()),
                Err(_) => return,
            },
        }
        watch.check(now());
    }
}

/// The admin listener's HTTPS set-up when it checks client certificates: its certificate (the
/// development CA's for this machine's local names, or files) and the sites' verifier.
fn admin_tls(
    admin: &crate::config::Admin,
    config: &Config,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(auth) = &admin.client_auth else {
        return Ok(None);
    };
    let needs_ca = admin.certificate == CertSource::Local || auth.ca == ClientCa::Local;
    let ca = match needs_ca {
        true => Some(DevCa::load_or_create(&crate::config::data_dir())?.0),
        false => None,
    };
    let names = crate::config::local_names(admin.listen.ip());
    let (cert, key) = match (&admin.certificate, &ca) {
        (CertSource::Local, Some(ca)) => ca.leaf_for(&names)?,
        (source, _) => source
            .files()
            .into_iter()
            .next()
            .context("admin.certificate names no files")?,
    };
    let loaded = crate::certs::load_files(&cert, &key, provider, false)
        .context("the admin listener's certificate")?;
    let mut resolver = SniResolver::new(false);
    resolver.add(&names, vec![loaded.key]);
    let local = ca.as_ref().map(DevCa::cert_path);
    let verifier = tls::client_auth::verifier(auth, local.as_deref(), provider.clone())
        .context("admin.client_auth")?;
    let offer = Offer {
        alpn: vec![b"http/1.1".to_vec()],
        acme: false,
        client_auth: Some(verifier),
    };
    let server = tls::server_config(
        config.tls_policy,
        provider.clone(),
        Arc::new(resolver),
        offer,
    )?;
    Ok(Some(server))
}

/// Tells the admin listener what is served now: certificates, sites, routes, tunnels.
fn observe_served(config: &Config, certs: &Certificates, ports: &HashMap<SocketAddr, SocketAddr>) {
    use crate::observe::{CertInfo, CertOrigin};
    let origin = |s: &CertSource| match s {
        CertSource::Local => CertOrigin::Local,
        CertSource::Acme => CertOrigin::Acme,
        _ => CertOrigin::File,
    };
    let sites = config.sites.iter().zip(&certs.sites).flat_map(|(s, list)| {
        list.iter().filter_map(|c| {
            CertInfo::of(s.primary_name(), &s.names, origin(&s.certificate), &c.key)
        })
    });
    let tunnels = config
        .tunnels
        .iter()
        .zip(&certs.tunnels)
        .flat_map(|(t, list)| {
            let source = match &t.mode {
                TunnelMode::Server(s) => origin(&s.certificate),
                TunnelMode::Client(_) => CertOrigin::File,
            };
            let site = format!("tunnel {}", t.name);
            let names = t.cert_names();
            list.iter()
                .filter_map(move |c| CertInfo::of(&site, &names, source, &c.key))
        });
    let m = crate::observe::metrics();
    m.set_certificates(sites.chain(tunnels).collect());
    let bound = |a: SocketAddr| ports.get(&a).copied().unwrap_or(a);
    m.set_served(crate::observe::status::Served::of(config, bound));
}

fn conn_settings(config: &Config) -> ConnSettings {
    ConnSettings {
        timeouts: config.timeouts,
        limits: config.limits,
    }
}

fn announce_https(router: &Router, addr: SocketAddr) {
    tracing::info!(kind = %"https", addr = %addr, "listening");
    for h in router.sites() {
        let url = crate::http::redirect::https_url(h.site.primary_name(), addr.port(), "/");
        match h.static_root() {
            Some(root) => tracing::info!("serving {url} from {}", root.display()),
            None => tracing::info!("serving {url}"),
        }
    }
}

/// One line per tunnel: machines read the first (`listening kind=tunnel`), people the second.
fn announce_tunnels(config: &Config, requested: SocketAddr, addr: SocketAddr) {
    for t in config.tunnels.iter().filter(|t| t.listen == requested) {
        tracing::info!(kind = %"tunnel", addr = %addr, tunnel = %t.name, "listening");
        tracing::info!("{}", describe_tunnel(t, addr));
    }
}

fn describe_tunnel(t: &Tunnel, addr: SocketAddr) -> String {
    match &t.mode {
        TunnelMode::Client(c) => format!(
            "tunnel {}: plain TCP on {addr} → TLS to {} (verified as {}{})",
            t.name,
            t.to,
            c.server_name,
            if c.identity.is_some() {
                ", with a client certificate"
            } else {
                ""
            }
        ),
        TunnelMode::Server(s) => {
            let clients = match &s.client_auth {
                None => "",
                Some(a) if a.required => ", client certificates required",
                Some(_) => ", client certificates optional",
            };
            let names = match s.names.is_empty() {
                true => String::new(),
                false => format!(" for {}", s.names.join(", ")),
            };
            let proxy = if s.proxy_protocol { ", PROXY v2" } else { "" };
            format!(
                "tunnel {}: TLS on {addr}{names} → {}{clients}{proxy}",
                t.name, t.to
            )
        }
    }
}

/// What lives across reloads: ACME (the account and the renewal loops) and, with `cluster:`,
/// the session-ticket keys, ACME store, order locks and challenge answers shared through
/// Redis. Nothing here talks to Redis without `cluster:`.
async fn start_shared(
    config: &Config,
    provider: &Arc<CryptoProvider>,
) -> Result<(Option<Arc<Acme>>, Option<Arc<SharedTicketer>>)> {
    let cluster = match &config.cluster {
        Some(settings) => Some(Arc::new(crate::cluster::Cluster::open(settings.clone())?)),
        None => None,
    };
    let acme = match (&cluster, uses_acme(config)) {
        (_, false) => None,
        (None, true) => Some(Acme::new(config.acme.clone(), provider.clone())),
        (Some(cluster), true) => {
            let challenges = Arc::<crate::certs::Challenges>::default();
            let share = AcmeShare::new(
                cluster.clone(),
                &config.acme.storage,
                challenges.clone(),
                provider.clone(),
            );
            share.start().await;
            let peers: Arc<dyn crate::acme::Peers> = share.clone();
            Some(Acme::with_storage(
                config.acme.clone(),
                share,
                challenges,
                Some(peers),
                provider.clone(),
            ))
        }
    };
    let Some(cluster) = cluster else {
        return Ok((acme, None));
    };
    let what = match acme.is_some() {
        true => "session-ticket keys and ACME certificates",
        false => "session-ticket keys",
    };
    tracing::info!(
        instance = %cluster.instance,
        prefix = %cluster.settings.key_prefix,
        "cluster: sharing {what} through Redis"
    );
    let tickets = crate::cluster::tickets::start(cluster)
        .context("cluster: the system random generator failed")?;
    Ok((acme, Some(tickets)))
}

fn uses_acme(config: &Config) -> bool {
    let tunnels = config
        .tunnels
        .iter()
        .any(|t| matches!(&t.mode, TunnelMode::Server(s) if s.certificate == CertSource::Acme));
    tunnels
        || config
            .sites
            .iter()
            .any(|s| s.certificate == CertSource::Acme)
}

/// Whether any site or tunnel gets its certificate, or checks client certificates, with the
/// local development CA.
fn uses_local_ca(config: &Config) -> bool {
    let local_clients =
        |a: &Option<ClientAuth>| a.as_ref().is_some_and(|a| a.ca == ClientCa::Local);
    config
        .sites
        .iter()
        .any(|s| s.certificate == CertSource::Local || local_clients(&s.client_auth))
        || config.tunnels.iter().any(|t| match &t.mode {
            TunnelMode::Server(s) => {
                s.certificate == CertSource::Local || local_clients(&s.client_auth)
            }
            TunnelMode::Client(_) => false,
        })
}

/// The development CA, loaded (or created on first run) only if some site uses it.
fn local_ca(config: &Config) -> Result<Option<DevCa>> {
    let temporary = config.acme.while_pending == WhilePending::LocalCa && uses_acme(config);
    if !temporary && !uses_local_ca(config) {
        return Ok(None);
    }
    let dir = crate::config::data_dir();
    let (ca, created) = DevCa::load_or_create(&dir).with_context(|| {
        format!(
            "cannot set up the local development CA in {}",
            dir.display()
        )
    })?;
    if created {
        tracing::info!(
            "created a local development CA: {}",
            ca.cert_path().display()
        );
    }
    Ok(Some(ca))
}

/// Binds each distinct address once, in order: requested → (listener, actual address).
async fn bind_all(
    addrs: impl Iterator<Item = SocketAddr>,
) -> Result<HashMap<SocketAddr, (TcpListener, SocketAddr)>> {
    let mut bound = HashMap::new();
    for addr in addrs {
        if bound.contains_key(&addr) {
            continue;
        }
        let tcp = listener::bind(addr)?;
        let actual = tcp.local_addr().unwrap_or(addr);
        bound.insert(addr, (tcp, actual));
    }
    Ok(bound)
}

/// SIGTERM and SIGINT, registered as soon as they are made.
struct ShutdownSignals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl ShutdownSignals {
    fn register() -> ShutdownSignals {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => ShutdownSignals(Some((term, int))),
            _ => {
                tracing::warn!("cannot listen for SIGTERM/SIGINT");
                ShutdownSignals(None)
            }
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken, signals: ShutdownSignals) {
    let Some((mut term, mut int)) = signals.0 else {
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    notify::stopping();
    tracing::info!("{name} received: no new connections, finishing requests in flight");
    shutdown.cancel();
}

/// A listener that only answers ACME challenges (for `candado cert obtain`): plain HTTP for
/// HTTP-01, TLS with the `acme-tls/1` certificates for TLS-ALPN-01. Cancel the token to stop.
pub(crate) async fn answer_challenges(
    addr: SocketAddr,
    kind: crate::acme::ChallengeKind,
    acme: &Acme,
) -> Result<CancellationToken> {
    let tcp = listener::bind(addr)?;
    let local_port = tcp.local_addr().map_or(addr.port(), |a| a.port());
    let router = Arc::new(Router::new(Vec::new(), false).with_challenges(acme.challenges()));
    let state = match kind {
        crate::acme::ChallengeKind::Http01 => ListenerState::Redirect(router),
        crate::acme::ChallengeKind::TlsAlpn01 => {
            let mut resolver = SniResolver::new(true);
            resolver.answer_challenges(acme.challenges());
            let config = tls::server_config(
                crate::config::TlsPolicy::Intermediate,
                tls::provider(),
                Arc::new(resolver),
                Offer::http(true),
            )?;
            ListenerState::Https {
                tls: TlsFront::new(vec![(Vec::new(), config)], true, None),
                router,
            }
        }
    };
    let ctx = Arc::new(ListenerCtx {
        state: ArcSwap::from_pointee(state),
        settings: Default::default(),
        local_port,
        gauges: crate::observe::metrics().listener(&addr.to_string()),
    });
    let stop = CancellationToken::new();
    tokio::spawn(listener::serve(
        vec![(tcp, ctx)],
        defaults::MAX_CONNECTIONS,
        stop.clone(),
        std::time::Duration::ZERO,
    ));
    Ok(stop)
}
