//! `candado serve`: turns a validated config into running listeners. Certificates are loaded
//! first (a bad one stops the start within a second), then every address is bound (a busy
//! port stops it too), and only then is anything served.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::crypto::CryptoProvider;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::certs::{self, LoadedCert, SniResolver};
use crate::config::{CertSource, Config, Site, UnknownSni};
use crate::devca::{self, DevCa};
use crate::http::{Router, SiteHandler};
use crate::listener::{self, ListenerCtx};
use crate::tls;

pub async fn run(config: Config) -> Result<()> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::debug!(error = %e, "cannot raise the open-file limit");
    }
    let provider = tls::provider();
    let ca = local_ca(&config)?;
    let certs = config
        .sites
        .iter()
        .map(|s| site_certificate(s, ca.as_ref(), &provider, config.allow_expired))
        .collect::<Result<Vec<_>>>()?;
    let mut sites = config.sites.clone();
    let https = bind_all(sites.iter().map(|s| s.listen)).await?;
    for s in &mut sites {
        s.listen = https[&s.listen].1;
    }
    let redirects = bind_all(sites.iter().filter_map(|s| s.redirect_from)).await?;
    let handlers = sites
        .into_iter()
        .map(|s| {
            let root = s.root.clone();
            SiteHandler::new(s, &provider)
                .map(Arc::new)
                .with_context(|| {
                    format!(
                        "cannot serve the folder {}",
                        root.unwrap_or_default().display()
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;

    let mut listeners = Vec::new();
    for (requested, (tcp, actual)) in https {
        let on_it: Vec<usize> = (0..handlers.len())
            .filter(|&i| config.sites[i].listen == requested)
            .collect();
        let mut resolver = SniResolver::new(config.unknown_sni == UnknownSni::Reject);
        for &i in &on_it {
            resolver.add(&handlers[i].site.names, certs[i].key.clone());
        }
        let server_config =
            tls::server_config(config.tls_policy, provider.clone(), Arc::new(resolver))?;
        let router = Router::new(
            on_it.iter().map(|&i| handlers[i].clone()).collect(),
            config.log.access,
        );
        announce_https(&router, actual);
        listeners.push((
            tcp,
            ctx(
                &config,
                Some(TlsAcceptor::from(server_config)),
                router,
                actual,
            ),
        ));
    }
    for (requested, (tcp, actual)) in redirects {
        let from_it = handlers
            .iter()
            .filter(|h| h.site.redirect_from == Some(requested))
            .cloned()
            .collect();
        tracing::info!(kind = %"http", addr = %actual, "listening");
        tracing::info!("http://{actual}/ redirects to https");
        listeners.push((
            tcp,
            ctx(
                &config,
                None,
                Router::new(from_it, config.log.access),
                actual,
            ),
        ));
    }
    if let Some(ca) = &ca {
        tracing::info!(
            "certificates come from candado's local development CA; trust it to avoid browser warnings: {}",
            ca.cert_path().display()
        );
    }

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let left = listener::serve(
        listeners,
        config.limits.max_connections,
        shutdown,
        config.timeouts.shutdown,
    )
    .await;
    match left {
        0 => tracing::info!("stopped"),
        n => tracing::warn!(
            connections = n,
            "stopped; connections still busy after the shutdown timeout were closed"
        ),
    }
    Ok(())
}

fn ctx(
    config: &Config,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    addr: SocketAddr,
) -> Arc<ListenerCtx> {
    Arc::new(ListenerCtx {
        acceptor,
        router: Arc::new(router),
        timeouts: config.timeouts,
        limits: config.limits,
        local_port: addr.port(),
    })
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

/// The development CA, loaded (or created on first run) only if some site uses it.
fn local_ca(config: &Config) -> Result<Option<DevCa>> {
    if !config
        .sites
        .iter()
        .any(|s| s.certificate == CertSource::Local)
    {
        return Ok(None);
    }
    let dir = devca::data_dir();
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

fn site_certificate(
    site: &Site,
    ca: Option<&DevCa>,
    provider: &CryptoProvider,
    allow_expired: bool,
) -> Result<LoadedCert> {
    let (cert, key) = match (&site.certificate, ca) {
        (CertSource::Files { cert, key }, _) => (cert.clone(), key.clone()),
        (CertSource::Local, Some(ca)) => ca.leaf_for(&site.names)?,
        (CertSource::Local, None) => {
            anyhow::bail!("internal: no local CA for site {}", site.primary_name())
        }
    };
    let loaded = certs::load_files(&cert, &key, provider, allow_expired)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let uncovered: Vec<&String> = site
        .names
        .iter()
        .filter(|n| {
            !loaded
                .names
                .iter()
                .any(|c| crate::config::name_matches(c, n) || c == *n)
        })
        .collect();
    if !uncovered.is_empty() && !loaded.names.is_empty() {
        tracing::warn!(
            "the certificate {} does not cover {:?}: clients will reject those names",
            cert.display(),
            uncovered
        );
    }
    Ok(loaded)
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
        let tcp = listener::bind(addr).await?;
        let actual = tcp.local_addr().unwrap_or(addr);
        bound.insert(addr, (tcp, actual));
    }
    Ok(bound)
}

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received: no new connections, finishing requests in flight");
    shutdown.cancel();
}
