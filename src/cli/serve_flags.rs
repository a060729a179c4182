//! Flags as a third config dialect: `candado [serve]` and `candado proxy` turn their flags (and
//! PyServe's `--ssl --cert --key`) into the same validated [`Config`] a file would give.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::args::{LogFormatArg, ProxyArgs, ServeArgs};
use crate::config::{self, CertSource, Config, Hsts, LogFormat, Site, defaults};

pub(super) async fn serve(args: ServeArgs) -> Result<()> {
    if args.ssl_config {
        return write_ssl_config(&args);
    }
    let (config, warnings) = serve_config(&args)?;
    crate::telemetry::init(&config.log, args.debug)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    // A reload reads the same file with the same flags.
    let reload: crate::serve::Reloader = Box::new(move || {
        let (config, warnings) = serve_config(&args)?;
        warnings.iter().for_each(|w| tracing::warn!("{w}"));
        Ok(config)
    });
    crate::serve::run(config, Some(reload)).await
}

/// The config for `serve`: the file (or flags alone), then the logging flags.
pub(super) fn serve_config(args: &ServeArgs) -> Result<(Config, Vec<String>)> {
    let (mut config, warnings) = build_config(args)?;
    if let Some(f) = args.log_format {
        config.log.format = match f {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    if args.no_access_log {
        config.log.access = false;
    }
    if args.no_http3 {
        config.sites.iter_mut().for_each(|s| s.http3 = false);
    }
    if let Some(file) = &args.log_file {
        config.log.file = Some(file.clone());
    }
    args.lan.apply(&mut config)?;
    if let Some(addr) = &args.admin {
        config.admin = admin_flag(addr)?;
    }
    if let Some(url) = &args.cluster_redis {
        config.cluster = Some(cluster_flag(url, config.cluster.take())?);
    }
    if args.no_compression {
        config.sites.iter_mut().for_each(|s| s.compression = false);
    }
    Ok((config, warnings))
}

/// `--cluster-redis URL`: the config's other `cluster:` settings stay.
fn cluster_flag(
    url: &str,
    from_file: Option<config::ClusterSettings>,
) -> Result<config::ClusterSettings> {
    let redis =
        config::cluster_redis_url(url).map_err(|e| anyhow::anyhow!("--cluster-redis: {e}"))?;
    Ok(match from_file {
        Some(c) => config::ClusterSettings { redis, ..c },
        None => config::ClusterSettings {
            redis,
            key_prefix: config::defaults::CLUSTER_KEY_PREFIX.to_owned(),
            instance: None,
            key_file: None,
            ca: None,
            ticket_rotation: config::defaults::TICKET_KEY_ROTATION,
        },
    })
}

/// `--admin ADDR|off`: a loopback admin listener (remote access is configured in a file,
/// with its token).
fn admin_flag(addr: &str) -> Result<Option<config::Admin>> {
    if addr == "off" {
        return Ok(None);
    }
    let Some(listen) = config::admin_address(addr) else {
        bail!("--admin {addr}: not an address (use 127.0.0.1:2019, :2019 or off)");
    };
    if !listen.ip().is_loopback() {
        bail!(
            "--admin {addr}: the admin listener stays on loopback; for remote access set `admin: {{listen: …, allow_remote: true, token: …}}` in the config"
        );
    }
    Ok(Some(config::Admin {
        listen,
        allow_remote: false,
        token: None,
        client_auth: None,
        certificate: CertSource::Local,
    }))
}

pub(super) async fn proxy(args: ProxyArgs) -> Result<()> {
    let config = proxy_config(&args)?;
    crate::telemetry::init(&config.log, args.debug)?;
    let reload: crate::serve::Reloader = Box::new(move || proxy_config(&args));
    crate::serve::run(config, Some(reload)).await
}

pub(super) fn proxy_config(args: &ProxyArgs) -> Result<Config> {
    let (name, port) = match &args.from {
        Some(from) => parse_from(from)?,
        None => (None, None),
    };
    let upstreams = args
        .to
        .iter()
        .map(|t| {
            config::Upstream::parse(t).map_err(|e| {
                anyhow::anyhow!(
                    "--to {t}: {e} (the app's address: --to :5000, --to localhost:5000 or --to https://10.0.0.5:8443)"
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let files = args.cert.clone().zip(args.key.clone());
    // Like Caddy: a public name, or any ACME flag, means a certificate from the ACME CA.
    let acme = files.is_none()
        && name
            .as_deref()
            .is_some_and(|n| config::is_public_name(n) || args.acme.any());
    if files.is_none() && name.is_none() && args.acme.any() {
        bail!("ACME certificates are for a site name: add --from NAME");
    }
    if acme && name.as_deref().is_some_and(|n| n.starts_with("*.")) {
        bail!(
            "--from: wildcard names need the DNS-01 challenge, which candado does not do: name the host, or give --cert and --key"
        );
    }
    // A public site is reached from outside, on the standard ports.
    let (default_ip, default_port, default_http) = match acme {
        true => (IpAddr::from([0, 0, 0, 0]), 443, 80),
        false => (
            IpAddr::from([127, 0, 0, 1]),
            defaults::HTTPS_PORT,
            defaults::REDIRECT_PORT,
        ),
    };
    let ip = args.host.as_deref().map_or(Ok(default_ip), parse_host)?;
    // The app often has the default redirect port itself (Open WebUI: `--to :8080`): then no
    // redirect listener, rather than a start that fails on a busy port.
    let http_port = match args.http_port {
        Some(p) => p,
        None if upstreams.iter().any(|u| on_this_machine(u, default_http)) => 0,
        None => default_http,
    };
    let port = port.unwrap_or(default_port);
    distinct_ports(port, http_port, "--from")?;
    let mut site = local_site(ip, port, http_port, files);
    if let Some(name) = name {
        match acme {
            true => site.names = vec![name],
            false => site.names.insert(0, name),
        }
    }
    let mut route = config::Route::to("/", upstreams);
    if let Some(t) = &args.response_timeout {
        route.response_timeout = config::parse_duration(t).map_err(|e| {
            anyhow::anyhow!("--response-timeout {t}: {e} (e.g. --response-timeout 10m)")
        })?;
    }
    site.routes = vec![route];
    site.client_auth = args.clients.settings()?;
    site.compression = !args.no_compression;
    let mut config = single_site_config(site, false);
    if acme {
        config.sites[0].certificate = CertSource::Acme;
        config.acme = args.acme.settings()?;
    }
    if let Some(LogFormatArg::Json) = args.log_format {
        config.log.format = LogFormat::Json;
    }
    args.lan.apply(&mut config)?;
    config.log.file = args.log_file.clone();
    if let Some(addr) = &args.admin {
        config.admin = admin_flag(addr)?;
    }
    if args.no_http3 {
        config.sites[0].http3 = false;
    }
    Ok(config)
}

/// `--from`, as Caddy reads it: `NAME`, `NAME:PORT`, `:PORT`, `PORT` or `https://NAME[:PORT]`;
/// the site name (checked), if any, and the HTTPS port, if given.
pub(super) fn parse_from(from: &str) -> Result<(Option<String>, Option<u16>)> {
    let example = "e.g. --from app.localhost, --from :9443 or --from https://app.localhost:9443";
    if from.starts_with("http://") {
        bail!(
            "--from {from}: candado serves HTTPS; write https://… or leave the scheme out ({example})"
        );
    }
    let rest = from.strip_prefix("https://").unwrap_or(from);
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let port_of = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .with_context(|| format!("--from {from}: `{p}` is not a port ({example})"))
    };
    if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
        return Ok((None, Some(port_of(rest)?)));
    }
    let (name, port) = match rest.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') => (n, Some(port_of(p)?)),
        _ => (rest, None),
    };
    if name.is_empty() {
        return Ok((None, port));
    }
    let name = config::parse_site_name(name)
        .map_err(|e| anyhow::anyhow!("--from {from}: {e} ({example})"))?;
    Ok((Some(name), port))
}

/// The HTTPS port and the redirect port cannot be one port: found before binding, so the
/// message names the flags instead of blaming "another server".
fn distinct_ports(https: u16, http: u16, https_flag: &str) -> Result<()> {
    if http != 0 && http == https {
        bail!(
            "--http-port {http} is also the HTTPS port ({https_flag}): choose another redirect port, e.g. --http-port 8080, or --http-port 0 for none"
        );
    }
    Ok(())
}

/// The config from a file (with flags overriding it) or from flags alone.
fn build_config(args: &ServeArgs) -> Result<(Config, Vec<String>)> {
    let Some(path) = &args.config else {
        return Ok((config_from_flags(args)?, Vec::new()));
    };
    let loaded = config::load(path)?;
    let mut config = loaded.config;
    let overrides = args.host.is_some()
        || args.port.is_some()
        || args.static_dir.is_some()
        || args.cert.is_some()
        || args.browse;
    if overrides {
        let [site] = config.sites.as_mut_slice() else {
            bail!(
                "-H, -p, -s, --browse and --cert apply to a config with one site; {} has {}",
                path.display(),
                config.sites.len()
            );
        };
        apply_overrides(site, args)?;
    }
    if args.http_port.is_some() {
        bail!("--http-port applies without a config file; in a config, set sites[].http_redirect");
    }
    config.allow_expired = args.allow_expired;
    Ok((config, loaded.warnings))
}

fn apply_overrides(site: &mut Site, args: &ServeArgs) -> Result<()> {
    if let Some(h) = &args.host {
        site.listen.set_ip(parse_host(h)?);
        site.names = config::local_names(site.listen.ip());
    }
    if let Some(p) = args.port {
        site.listen.set_port(p);
    }
    if let Some(dir) = &args.static_dir {
        site.root = Some(existing_dir(dir)?);
    }
    site.static_options.listing |= args.browse;
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        site.certificate = CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
    }
    Ok(())
}

/// Whether `upstream` is on this machine's loopback at `port`.
fn on_this_machine(upstream: &config::Upstream, port: u16) -> bool {
    let authority = upstream.origin.split("://").nth(1).unwrap_or_default();
    authority.rsplit_once(':').is_some_and(|(host, p)| {
        p == port.to_string() && matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    })
}

/// No config file: serve a folder on loopback with the development CA and a redirect listener.
fn config_from_flags(args: &ServeArgs) -> Result<Config> {
    let ip = bind_ip(args.host.as_deref())?;
    let port = args.port.unwrap_or(defaults::HTTPS_PORT);
    let http_port = args.http_port.unwrap_or(defaults::REDIRECT_PORT);
    distinct_ports(port, http_port, "-p")?;
    let files = args.cert.clone().zip(args.key.clone());
    let mut site = local_site(ip, port, http_port, files);
    site.static_options.listing = args.browse;
    site.root = Some(existing_dir(
        args.static_dir.as_deref().unwrap_or(Path::new(".")),
    )?);
    site.welcome_page = true;
    Ok(single_site_config(site, args.allow_expired))
}

/// A site on `ip:port` named after this machine, with a redirect listener unless
/// `http_port` is 0, and the development CA unless certificate files are given.
fn local_site(ip: IpAddr, port: u16, http_port: u16, files: Option<(PathBuf, PathBuf)>) -> Site {
    Site {
        names: config::local_names(ip),
        listen: (ip, port).into(),
        redirect_from: (http_port != 0).then(|| (ip, http_port).into()),
        certificate: match files {
            Some((cert, key)) => CertSource::Files { cert, key },
            None => CertSource::Local,
        },
        root: None,
        static_options: Default::default(),
        welcome_page: false,
        hsts: Some(Hsts::default()),
        headers: Vec::new(),
        routes: Vec::new(),
        max_body_bytes: defaults::MAX_BODY_BYTES,
        secure_cookies: true,
        trusted_proxies: Vec::new(),
        allow_underscore_headers: false,
        auth: Vec::new(),
        redirects: Vec::new(),
        client_auth: None,
        compression: true,
        http3: true,
    }
}

fn single_site_config(site: Site, allow_expired: bool) -> Config {
    Config {
        sites: vec![site],
        allow_expired,
        ..Config::default()
    }
}

/// The address to bind: `-H` when given, loopback otherwise.
fn bind_ip(host: Option<&str>) -> Result<IpAddr> {
    host.map_or(Ok(IpAddr::from([127, 0, 0, 1])), parse_host)
}

fn parse_host(h: &str) -> Result<IpAddr> {
    match h {
        "localhost" => Ok(IpAddr::from([127, 0, 0, 1])),
        _ => h.parse().with_context(|| {
            format!(
                "-H {h}: not an IP address (use e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
            )
        }),
    }
}

fn existing_dir(dir: &Path) -> Result<PathBuf> {
    match dir.is_dir() {
        true => Ok(dir.to_owned()),
        false => bail!("folder not found: {}", dir.display()),
    }
}

/// PyServe's `--ssl-config`: store the flags in the config file and exit.
fn write_ssl_config(args: &ServeArgs) -> Result<()> {
    let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
        bail!("--ssl-config needs --cert FILE and --key FILE");
    };
    let path = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(defaults::PYSERVE_CONFIG_FILE));
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if text.lines().any(|l| l.starts_with("sites:")) {
            bail!(
                "{} is a candado config: set sites[].certificate to {{cert: FILE, key: FILE}} there instead",
                path.display()
            );
        }
    }
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    config::pyserve::write_ssl_settings(&path, &cert, &key)?;
    println!(
        "{}: ssl.enabled = true, ssl.cert_file = {cert}, ssl.key_file = {key} (other settings and comments kept)",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;

    fn proxy_config_of(args: &[&str]) -> Result<Config> {
        let cli = Cli::try_parse_from(["candado", "proxy"].iter().chain(args))?;
        match cli.command {
            Some(Command::Proxy(p)) => proxy_config(&p),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_certificate_flags_give_the_proxied_site_mutual_tls() {
        let c = proxy_config_of(&["--to", "127.0.0.1:5000", "--client-ca", "local"]).unwrap();
        let auth = c.sites[0].client_auth.clone().unwrap();
        assert!(auth.required && auth.ca == config::ClientCa::Local && auth.allow.is_none());
        let c = proxy_config_of(&[
            "--to",
            "127.0.0.1:5000",
            "--client-ca",
            "clients.pem",
            "--client-auth",
            "optional",
            "--allow-cn",
            "alice",
        ])
        .unwrap();
        let auth = c.sites[0].client_auth.clone().unwrap();
        assert!(!auth.required);
        assert_eq!(auth.allow.unwrap().cn, ["alice"]);
        assert!(proxy_config_of(&["--to", "127.0.0.1:5000", "--allow-cn", "alice"]).is_err());
        assert!(
            proxy_config_of(&["--to", "127.0.0.1:5000"]).unwrap().sites[0]
                .client_auth
                .is_none()
        );
    }

    #[test]
    fn lan_flags_turn_the_proxied_site_into_a_lan_site_and_need_lan() {
        let c = proxy_config_of(&["--to", ":8080", "--lan"]).unwrap();
        let lan = c.lan.unwrap();
        assert!(lan.mdns && lan.interfaces.is_empty());
        assert_eq!(lan.onboarding_port, defaults::LAN_ONBOARDING_PORT);
        let c = proxy_config_of(&[
            "--to",
            ":8080",
            "--lan",
            "--no-mdns",
            "--lan-http-port",
            "9000",
            "--lan-interface",
            "wlan0",
        ])
        .unwrap();
        let lan = c.lan.unwrap();
        assert!(!lan.mdns);
        assert_eq!(
            (lan.onboarding_port, lan.interfaces),
            (9000, vec!["wlan0".into()])
        );
        let e = proxy_config_of(&["--to", ":8080", "--no-mdns"]).unwrap_err();
        assert!(e.to_string().contains("go with --lan"), "{e}");
        let e =
            proxy_config_of(&["--to", ":8080", "--lan", "--lan-http-port", "8443"]).unwrap_err();
        assert!(e.to_string().contains("HTTPS port"), "{e}");
        assert!(proxy_config_of(&["--to", ":8080"]).unwrap().lan.is_none());
    }

    #[test]
    fn an_app_on_the_redirect_port_gets_no_redirect_listener_instead_of_a_busy_port() {
        let c = proxy_config_of(&["--to", ":8080"]).unwrap();
        assert_eq!(c.sites[0].redirect_from, None);
        let c = proxy_config_of(&["--to", "localhost:5000"]).unwrap();
        assert_eq!(
            c.sites[0].redirect_from,
            Some("127.0.0.1:8080".parse().unwrap())
        );
        let c = proxy_config_of(&["--to", ":8080", "--http-port", "8081"]).unwrap();
        assert_eq!(
            c.sites[0].redirect_from,
            Some("127.0.0.1:8081".parse().unwrap())
        );
    }

    #[test]
    fn a_public_name_gets_acme_on_the_standard_ports_of_every_interface() {
        let c = proxy_config_of(&[
            "--to",
            "127.0.0.1:5000",
            "--from",
            "app.example.com",
            "--email",
            "me@example.com",
        ])
        .unwrap();
        let site = &c.sites[0];
        assert_eq!(site.certificate, CertSource::Acme);
        assert_eq!(site.names, ["app.example.com"]);
        assert_eq!(site.listen, "0.0.0.0:443".parse().unwrap());
        assert_eq!(site.redirect_from, Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(c.acme.directory, defaults::ACME_DIRECTORY);
        assert_eq!(c.acme.email.as_deref(), Some("me@example.com"));
    }

    #[test]
    fn a_private_name_stays_on_loopback_with_the_local_ca_unless_acme_is_asked_for() {
        let c = proxy_config_of(&["--to", "127.0.0.1:5000", "--from", "app.test"]).unwrap();
        assert_eq!(c.sites[0].certificate, CertSource::Local);
        assert_eq!(c.sites[0].listen, "127.0.0.1:8443".parse().unwrap());
        let c = proxy_config_of(&[
            "--to",
            "127.0.0.1:5000",
            "--from",
            "app.test:9443",
            "--acme-staging",
        ])
        .unwrap();
        assert_eq!(c.sites[0].certificate, CertSource::Acme);
        assert_eq!(c.sites[0].listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(c.acme.directory, defaults::ACME_STAGING_DIRECTORY);
    }

    #[test]
    fn acme_flags_without_a_name_or_with_a_wildcard_are_refused() {
        let e =
            proxy_config_of(&["--to", "127.0.0.1:5000", "--email", "me@example.com"]).unwrap_err();
        assert!(e.to_string().contains("add --from NAME"), "{e}");
        let e =
            proxy_config_of(&["--to", "127.0.0.1:5000", "--from", "*.example.com"]).unwrap_err();
        assert!(e.to_string().contains("DNS-01"), "{e}");
        let e = proxy_config_of(&[
            "--to",
            "127.0.0.1:5000",
            "--from",
            "a.example.com",
            "--acme-directory",
            "http://x/dir",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("https:// URL"), "{e}");
    }
}
