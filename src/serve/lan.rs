//! `--lan` while serving: the LAN site on every LAN address (HTTPS with a certificate from the
//! LAN CA, and the plain-HTTP onboarding page beside it), mDNS, the QR codes, and a watch on
//! the addresses. When they change (a DHCP renewal, another Wi-Fi) a fresh certificate is
//! issued and swapped in, new addresses are bound and vanished ones closed, without a restart.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, Site, defaults};
use crate::http::{Router, SiteHandler};
use crate::lan::addrs::{self, LanAddr};
use crate::lan::ca::LanCa;
use crate::lan::mdns::Announcer;
use crate::lan::onboarding::{self, Onboarding};
use crate::listener::{self, ListenerCtx, ListenerState};
use crate::tls::{self, Offer, SniResolver, TlsFront};

/// A leaf is reissued once two thirds of its life are gone, even when no address changed.
const LEAF_REISSUE_AFTER: std::time::Duration =
    std::time::Duration::from_secs(crate::devca::LEAF_DAYS as u64 * 86_400 * 2 / 3);

/// Starts serving the LAN site; `https_port` is the port its loopback listener got. Reloaded
/// configs sent into the returned channel apply to the LAN listeners too.
pub(super) async fn start(
    config: &Config,
    https_port: u16,
    provider: Arc<CryptoProvider>,
    shutdown: CancellationToken,
) -> Result<watch::Sender<Config>> {
    let settings = config.lan.clone().context("internal: --lan is off")?;
    let site = config
        .sites
        .get(settings.site)
        .context("internal: the LAN site is missing")?
        .clone();
    if site.listen.ip().is_unspecified() {
        bail!(
            "--lan binds the LAN addresses itself: the site must listen on loopback (the default) or one address, not {} (drop -H {})",
            site.listen,
            site.listen.ip()
        );
    }
    let data_dir = config::data_dir();
    let (ca, created) = LanCa::load_or_create(&data_dir, &[])
        .with_context(|| format!("cannot set up the LAN CA in {}", data_dir.display()))?;
    if created {
        tracing::info!(
            "created the LAN CA {} (it can sign only for private addresses and local names)",
            ca.cert_path().display()
        );
    }
    let host = crate::lan::host_name();
    let onboarding = Arc::new(Onboarding::new(&host, https_port, &ca)?);
    let mut lan = LanServer {
        interfaces: addrs::interfaces(&settings.interfaces),
        settings,
        site,
        host,
        ca,
        provider,
        config: config.clone(),
        https_port,
        onboarding,
        ctx: None,
        bound: BTreeMap::new(),
        addrs: Vec::new(),
        mdns: None,
        issued: Instant::now(),
        shutdown,
    };
    let found = lan.discover()?;
    lan.apply(found).await?;
    let (reloads, updates) = watch::channel(config.clone());
    tokio::spawn(lan.watch(updates));
    Ok(reloads)
}

struct LanServer {
    settings: config::Lan,
    interfaces: Vec<String>,
    site: Site,
    host: String,
    ca: LanCa,
    provider: Arc<CryptoProvider>,
    config: Config,
    https_port: u16,
    onboarding: Arc<Onboarding>,
    /// Shared by every LAN HTTPS listener; its state is replaced when the addresses change.
    ctx: Option<Arc<ListenerCtx>>,
    /// Each bound address and what stops its listeners.
    bound: BTreeMap<IpAddr, CancellationToken>,
    addrs: Vec<LanAddr>,
    mdns: Option<Announcer>,
    issued: Instant,
    shutdown: CancellationToken,
}

impl LanServer {
    fn discover(&self) -> Result<Vec<LanAddr>> {
        let found = addrs::discover(&self.interfaces)
            .context("cannot read this machine's network addresses")?;
        // The site's own listener already holds its address.
        Ok(found
            .into_iter()
            .filter(|a| a.ip != self.site.listen.ip())
            .collect())
    }

    /// Reads the addresses every few seconds and follows them, and takes reloaded configs.
    async fn watch(mut self, mut updates: watch::Receiver<Config>) {
        let mut tick = tokio::time::interval(defaults::LAN_ADDRESS_CHECK_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Ok(()) = updates.changed() => {
                    let config = updates.borrow_and_update().clone();
                    self.reload(config);
                    continue;
                }
                _ = self.shutdown.cancelled() => return,
            }
            let found = match self.discover() {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!("--lan: {e:#}; keeping the current addresses");
                    continue;
                }
            };
            if found == self.addrs && self.issued.elapsed() < LEAF_REISSUE_AFTER {
                continue;
            }
            if found != self.addrs {
                tracing::info!(
                    "--lan: the addresses changed ({} → {}): issuing a new certificate",
                    list(&self.addrs),
                    list(&found)
                );
            }
            if let Err(e) = self.apply(found).await {
                tracing::warn!("--lan: {e:#}; still serving the previous certificate");
            }
        }
    }

    /// A reloaded config: the LAN site's routes, files, credentials and client-certificate
    /// rules change with the loopback one's; where and how it is exposed needs a restart.
    fn reload(&mut self, config: Config) {
        let site = match &config.lan {
            Some(l) if *l == self.settings => config.sites.get(l.site).cloned(),
            _ => None,
        };
        let Some(site) = site else {
            tracing::warn!(
                "the --lan settings changed (lan: true, or its flags): restart candado to apply them; the LAN keeps the previous site"
            );
            return;
        };
        let (old_site, old_config) = (
            std::mem::replace(&mut self.site, site),
            std::mem::replace(&mut self.config, config),
        );
        let ips: Vec<IpAddr> = self.addrs.iter().map(|a| a.ip).collect();
        match (self.state(&ips), &self.ctx) {
            (Ok(state), Some(ctx)) => ctx.state.store(Arc::new(state)),
            (Ok(_), None) => {}
            (Err(e), _) => {
                tracing::warn!("--lan: {e:#}; the LAN keeps the previous site");
                self.site = old_site;
                self.config = old_config;
            }
        }
    }

    /// Serves `found`: a certificate for exactly these addresses, listeners on each.
    async fn apply(&mut self, found: Vec<LanAddr>) -> Result<()> {
        let ips: Vec<IpAddr> = found.iter().map(|a| a.ip).collect();
        let state = self.state(&ips)?;
        self.issued = Instant::now();
        let ctx = match &self.ctx {
            Some(ctx) => {
                ctx.state.store(Arc::new(state));
                ctx.clone()
            }
            None => {
                let ctx = Arc::new(ListenerCtx {
                    state: ArcSwap::from_pointee(state),
                    settings: ArcSwap::from_pointee(super::conn_settings(&self.config)),
                    local_port: self.https_port,
                    // One label for every LAN address: they come and go with the network.
                    gauges: crate::observe::metrics().listener("lan"),
                });
                self.ctx = Some(ctx.clone());
                ctx
            }
        };
        let gone: Vec<IpAddr> = (self.bound.keys())
            .filter(|ip| !ips.contains(ip))
            .copied()
            .collect();
        for ip in gone {
            if let Some(stop) = self.bound.remove(&ip) {
                stop.cancel();
                tracing::info!("--lan: {ip} is gone; stopped listening there");
            }
        }
        let mut exposed = Vec::new();
        for a in &found {
            if !self.bound.contains_key(&a.ip) {
                match self.bind(a.ip, ctx.clone()).await {
                    Ok(stop) => drop(self.bound.insert(a.ip, stop)),
                    Err(e) => {
                        tracing::warn!("--lan: not exposed on {} ({}): {e:#}", a.ip, a.interface);
                        continue;
                    }
                }
            }
            exposed.push(a.clone());
        }
        self.addrs = found;
        self.update_mdns(&exposed);
        self.announce(&exposed);
        Ok(())
    }

    /// The TLS set-up and router for `ips`: a new leaf from the LAN CA, and the site answering
    /// to exactly the names that leaf carries.
    fn state(&self, ips: &[IpAddr]) -> Result<ListenerState> {
        let key = self
            .ca
            .leaf(&self.host, ips, &self.site.names, &self.provider)?;
        let names = crate::certs::load::san_names(
            &x509_parser::parse_x509_certificate(&key.cert[0])
                .map_err(|e| anyhow::anyhow!("internal: unreadable LAN certificate: {e}"))?
                .1,
        );
        let mut resolver = SniResolver::new(false);
        resolver.add(&names, vec![key]);
        let client_auth = match &self.site.client_auth {
            Some(auth) => {
                let local = crate::devca::ca_cert_path(&config::data_dir());
                Some(tls::client_auth::verifier(
                    auth,
                    Some(&local),
                    self.provider.clone(),
                )?)
            }
            None => None,
        };
        let offer = Offer {
            client_auth,
            ..Offer::http(false)
        };
        let server = tls::server_config(
            self.config.tls_policy,
            self.provider.clone(),
            Arc::new(resolver),
            offer,
        )?;
        let mut site = self.site.clone();
        site.names = names.clone();
        site.listen = SocketAddr::new(site.listen.ip(), self.https_port);
        let handler =
            SiteHandler::new(site, &self.provider, None).context("cannot set up the LAN site")?;
        let router = Router::new(vec![Arc::new(handler)], self.config.log.access)
            .with_limits(self.config.limits);
        Ok(ListenerState::Https {
            tls: TlsFront::new(vec![(names, server)], false, None),
            router: Arc::new(router),
        })
    }

    /// HTTPS and the onboarding page on `ip`; the token stops both.
    async fn bind(&self, ip: IpAddr, ctx: Arc<ListenerCtx>) -> Result<CancellationToken> {
        let https = listener::bind(SocketAddr::new(ip, self.https_port))?;
        let page = listener::bind(SocketAddr::new(ip, self.settings.onboarding_port))?;
        let stop = self.shutdown.child_token();
        tokio::spawn(listener::serve(
            vec![(https, ctx)],
            self.config.limits.max_connections,
            stop.clone(),
            self.config.timeouts.shutdown,
        ));
        tokio::spawn(onboarding::serve(
            page,
            self.onboarding.clone(),
            stop.clone(),
        ));
        Ok(stop)
    }

    fn update_mdns(&mut self, exposed: &[LanAddr]) {
        if !self.settings.mdns {
            return;
        }
        let result = match &mut self.mdns {
            Some(m) => m.update(exposed),
            None => Announcer::start(&self.host, self.https_port, exposed).map(|m| {
                self.mdns = Some(m);
            }),
        };
        match result {
            Ok(()) => tracing::info!(
                "--lan: announcing {}.local over mDNS (turn off with --no-mdns)",
                self.host
            ),
            Err(e) => tracing::warn!(
                "--lan: mDNS is off ({e:#}): use the address URLs, {}.local will not resolve",
                self.host
            ),
        }
    }

    /// Says what is exposed where, and on a terminal draws the QR codes to scan.
    fn announce(&self, exposed: &[LanAddr]) {
        if exposed.is_empty() {
            tracing::warn!(
                "--lan: no private address found{}: nothing is exposed yet; candado keeps looking",
                match self.interfaces.is_empty() {
                    true => String::new(),
                    false => format!(" on {}", self.interfaces.join(", ")),
                }
            );
            return;
        }
        for a in exposed {
            tracing::warn!(
                "--lan exposes the site on {} ({}): {} (onboarding page: {})",
                a.interface,
                a.ip,
                crate::lan::url("https", a.ip, self.https_port),
                crate::lan::url("http", a.ip, self.settings.onboarding_port),
            );
        }
        tracing::info!(
            "--lan: the LAN CA's SHA-256 fingerprint is {}",
            self.onboarding.fingerprint
        );
        if !std::io::stdout().is_terminal() {
            return;
        }
        let first = exposed[0].ip;
        let page = crate::lan::url("http", first, self.settings.onboarding_port);
        let site = crate::lan::url("https", first, self.https_port);
        let mut out = String::new();
        for (title, url) in [
            ("1. Scan to install the LAN CA (once per device)", &page),
            ("2. Then scan to open the site", &site),
        ] {
            match crate::lan::qr::render(url) {
                Ok(qr) => out.push_str(&format!("\n{title}: {url}\n{qr}")),
                Err(e) => tracing::warn!("--lan: no QR code for {url}: {e:#}"),
            }
        }
        out.push_str(&format!(
            "LAN CA fingerprint (SHA-256), compare on the phone:\n{}\n",
            self.onboarding.fingerprint
        ));
        print!("{out}");
    }
}

fn list(addrs: &[LanAddr]) -> String {
    match addrs.is_empty() {
        true => "none".into(),
        false => addrs
            .iter()
            .map(|a| a.ip.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
