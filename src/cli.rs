//! The command line: `candado [serve] [flags]` (PyServe's flags included) and
//! `candado config check FILE`, `candado check HOST` and the certificate commands.

mod acme_commands;
mod client_auth_args;
mod config_check;
mod tunnel_command;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{self, CertSource, Config, Hsts, LogFormat, Site, defaults};
use crate::devca::{self, DevCa, KeyKind};

/// `candado --version`: what a bug report needs. build.rs finds the commit and the rustls
/// version; the provider is the one `tls::provider` installs.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("CANDADO_GIT_COMMIT"),
    "\nTLS: rustls ",
    env!("CANDADO_RUSTLS_VERSION"),
    " with the aws-lc-rs crypto provider"
);

#[derive(Debug, Parser)]
#[command(
    name = "candado",
    version,
    long_version = LONG_VERSION,
    about = "Puts a padlock on any web app: HTTPS done right, from one binary.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTPS (what `candado` does when no command is given).
    Serve(ServeArgs),
    /// Put a web app behind HTTPS: `candado proxy --to 127.0.0.1:5000`.
    Proxy(ProxyArgs),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read a password on standard input and print its argon2id hash, for `basic_auth` users.
    HashPassword,
    /// Tell the running candado to reload its config and certificates (SIGHUP).
    Reload,
    /// The local development CA (like mkcert).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Make certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Grade any HTTPS server's TLS set-up (protocols, suites, certificate, HSTS), A+ to F.
    Check(CheckArgs),
    /// TLS for a raw TCP service (like stunnel): `candado tunnel --listen :7443 --to 127.0.0.1:5432`.
    Tunnel(tunnel_command::TunnelArgs),
    /// Print a shell completion script: `candado completions bash > /etc/bash_completion.d/candado`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `candado man | man -l -`.
    Man {
        /// Write candado.1 and a page per command (candado-proxy.1 ...) into this folder instead.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// HOST[:PORT] (port 443 unless given) or an https:// URL.
    target: String,
    /// Also trust the CA certificates in this PEM file (besides the system roots).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Connect to this IP address instead of resolving HOST (HOST is still the name checked).
    #[arg(long, value_name = "IP")]
    connect: Option<IpAddr>,
    /// Port of the http:// listener expected to redirect to https:// [default: 80].
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    http_port: u16,
    /// Exit with code 1 when the grade is below this one (A+, A, A-, B, C, D, E, F).
    #[arg(long, value_name = "GRADE")]
    min_grade: Option<crate::check::Grade>,
    /// Seconds to wait for each answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    timeout: u64,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
    /// A client certificate (PEM) to present if the server asks for one (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file (candado's or PyServe's) and print every problem found.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the development CA (if there is none yet) and print where it is.
    Init,
    /// Print the path of the CA certificate to trust.
    Path,
    /// Trust the CA: the system store and the browsers' certificate databases.
    Install,
    /// Remove the CA from everything `install` changed.
    Uninstall,
}

#[derive(Debug, Subcommand)]
enum CertCommand {
    /// A certificate from the local development CA, for names, wildcards and IP addresses.
    Issue(IssueArgs),
    /// A self-signed certificate (replaces `openssl req -x509 -newkey rsa:4096 -nodes ...`).
    SelfSigned(IssueArgs),
    /// Describe a certificate file or the chain a server presents.
    Inspect(InspectArgs),
    /// Get a certificate from an ACME CA (Let's Encrypt) and write it to files, like
    /// `certbot certonly --standalone`.
    Obtain(acme_commands::ObtainArgs),
    /// Revoke a certificate obtained with ACME and remove it from the store.
    Revoke(acme_commands::RevokeArgs),
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// A PEM file, or HOST[:PORT] (port 443 unless given) of a server to ask.
    target: String,
    /// A private key file: say whether it matches the leaf certificate.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct IssueArgs {
    /// Host names the certificate is for, e.g. app.test '*.app.test' localhost.
    #[arg(value_name = "NAME")]
    names: Vec<String>,
    /// IP addresses the certificate is for (repeatable).
    #[arg(long = "ip", value_name = "IP")]
    ips: Vec<IpAddr>,
    /// Days of validity [default: 365].
    #[arg(long, value_name = "N")]
    days: Option<u32>,
    /// Key type.
    #[arg(long, value_enum, default_value = "ecdsa")]
    key: KeyArg,
    /// Folder for NAME.crt and NAME.key.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// A client certificate (for mutual TLS) for NAME: a user, a host or a SPIFFE ID.
    #[arg(long, conflicts_with = "ips")]
    client: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyArg {
    Ecdsa,
    Rsa2048,
    Rsa4096,
    Ed25519,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Clone, Default, Args)]
struct ServeArgs {
    /// Config file: candado's YAML format (with `sites:`) or PyServe's config.yaml.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to bind [default: 127.0.0.1, loopback only].
    #[arg(short = 'H', long, value_name = "HOST")]
    host: Option<String>,
    /// HTTPS port [default: 8443].
    #[arg(short = 'p', long, value_name = "PORT")]
    port: Option<u16>,
    /// Folder to serve [default: the current folder].
    #[arg(short = 's', long = "static-dir", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Debug log, including TLS handshake details.
    #[arg(short = 'd', long)]
    debug: bool,
    /// Accepted for PyServe compatibility: candado always serves HTTPS.
    #[arg(long)]
    ssl: bool,
    /// Certificate chain (PEM: leaf first, then intermediates) [default: local development CA].
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Write --cert and --key into the PyServe config's `ssl:` section (keeping its comments) and exit.
    #[arg(long = "ssl-config", requires_all = ["cert", "key"])]
    ssl_config: bool,
    /// Serve a certificate even when it has expired.
    #[arg(long)]
    allow_expired: bool,
    /// Port of the HTTP→HTTPS redirect listener without a config file; 0 turns it off [default: 8080].
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    /// Do not write an access-log line per request.
    #[arg(long)]
    no_access_log: bool,
    /// Write the log to this file instead of standard error; SIGUSR1 reopens it (logrotate).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct ProxyArgs {
    /// The app's address (repeat for several, used in turn): 127.0.0.1:5000, http://… or https://…
    #[arg(long, value_name = "ADDR", required = true)]
    to: Vec<String>,
    /// Public site name and HTTPS port [default: localhost:8443; a public name gets an ACME
    /// certificate and 0.0.0.0:443, with the HTTP listener on :80].
    #[arg(long, value_name = "NAME[:PORT]")]
    from: Option<String>,
    /// Address to bind [default: 127.0.0.1, loopback only].
    #[arg(short = 'H', long, value_name = "HOST")]
    host: Option<String>,
    /// Certificate chain (PEM) [default: local development CA].
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key of the certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Port of the HTTP→HTTPS redirect listener; 0 turns it off [default: 8080].
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// Debug log, including TLS handshake details.
    #[arg(short = 'd', long)]
    debug: bool,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    /// Write the log to this file instead of standard error; SIGUSR1 reopens it (logrotate).
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    #[command(flatten)]
    acme: acme_commands::AcmeArgs,
    #[command(flatten)]
    clients: client_auth_args::ClientAuthArgs,
}

/// Runs the command line; the error, if any, is printed by `main`.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Config(ConfigCommand::Check { file })) => config_check::check(&file),
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Proxy(args)) => proxy(args).await,
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Reload) => reload(),
        Some(Command::Ca(c)) => ca(c),
        Some(Command::Cert(CertCommand::Issue(args))) => cert(args, false),
        Some(Command::Cert(CertCommand::SelfSigned(args))) => cert(args, true),
        Some(Command::Cert(CertCommand::Inspect(args))) => inspect(args).await,
        Some(Command::Cert(CertCommand::Obtain(args))) => acme_commands::obtain(args).await,
        Some(Command::Cert(CertCommand::Revoke(args))) => acme_commands::revoke(args).await,
        Some(Command::Check(args)) => tls_check(args).await,
        Some(Command::Tunnel(args)) => tunnel_command::tunnel(args).await,
        Some(Command::Completions { shell }) => completions(shell),
        Some(Command::Man { out }) => man(out.as_deref()),
        None => serve(cli.serve).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
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
fn serve_config(args: &ServeArgs) -> Result<(Config, Vec<String>)> {
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
    if let Some(file) = &args.log_file {
        config.log.file = Some(file.clone());
    }
    Ok((config, warnings))
}

async fn proxy(args: ProxyArgs) -> Result<()> {
    let config = proxy_config(&args)?;
    crate::telemetry::init(&config.log, args.debug)?;
    let reload: crate::serve::Reloader = Box::new(move || proxy_config(&args));
    crate::serve::run(config, Some(reload)).await
}

fn proxy_config(args: &ProxyArgs) -> Result<Config> {
    let (name, port) = match &args.from {
        Some(from) => parse_from(from)?,
        None => (None, None),
    };
    let upstreams = args
        .to
        .iter()
        .map(|t| config::Upstream::parse(t).map_err(anyhow::Error::msg))
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
    let http_port = args.http_port.unwrap_or(default_http);
    let mut site = local_site(ip, port.unwrap_or(default_port), http_port, files);
    if let Some(name) = name {
        match acme {
            true => site.names = vec![name],
            false => site.names.insert(0, name),
        }
    }
    site.routes = vec![config::Route::to("/", upstreams)];
    site.client_auth = args.clients.settings()?;
    let mut config = single_site_config(site, false);
    if acme {
        config.sites[0].certificate = CertSource::Acme;
        config.acme = args.acme.settings()?;
    }
    if let Some(LogFormatArg::Json) = args.log_format {
        config.log.format = LogFormat::Json;
    }
    config.log.file = args.log_file.clone();
    Ok(config)
}

/// `--from NAME[:PORT]`: the site name (checked) and the HTTPS port, if given.
fn parse_from(from: &str) -> Result<(Option<String>, Option<u16>)> {
    let (name, port) = match from.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') => (
            n,
            Some(
                p.parse()
                    .with_context(|| format!("--from {from}: `{p}` is not a port"))?,
            ),
        ),
        _ => (from, None),
    };
    let name = config::parse_site_name(name).map_err(|e| anyhow::anyhow!("--from {from}: {e}"))?;
    Ok((Some(name), port))
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
        || args.cert.is_some();
    if overrides {
        let [site] = config.sites.as_mut_slice() else {
            bail!(
                "-H, -p, -s and --cert apply to a config with one site; {} has {}",
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
    if let (Some(cert), Some(key)) = (&args.cert, &args.key) {
        site.certificate = CertSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        };
    }
    Ok(())
}

/// No config file: serve a folder on loopback with the development CA and a redirect listener.
fn config_from_flags(args: &ServeArgs) -> Result<Config> {
    let ip = bind_ip(args.host.as_deref())?;
    let port = args.port.unwrap_or(defaults::HTTPS_PORT);
    let http_port = args.http_port.unwrap_or(defaults::REDIRECT_PORT);
    let files = args.cert.clone().zip(args.key.clone());
    let mut site = local_site(ip, port, http_port, files);
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

fn ca(command: CaCommand) -> Result<()> {
    let dir = crate::config::data_dir();
    match command {
        CaCommand::Init => {
            let (ca, created) = DevCa::load_or_create(&dir).with_context(|| {
                format!("cannot set up the development CA in {}", dir.display())
            })?;
            let what = if created { "created" } else { "already exists" };
            println!("development CA {what}: {}", ca.cert_path().display());
        }
        CaCommand::Path => {
            let path = devca::ca_cert_path(&dir);
            if !path.exists() {
                bail!(
                    "no development CA yet in {}: create it with `candado ca init`",
                    dir.display()
                );
            }
            println!("{}", path.display());
        }
        CaCommand::Install => {
            let (ca, _) = DevCa::load_or_create(&dir).with_context(|| {
                format!("cannot set up the development CA in {}", dir.display())
            })?;
            crate::trust::install(&ca.cert_path())?
                .iter()
                .for_each(|c| println!("{c}"));
        }
        CaCommand::Uninstall => crate::trust::uninstall()?
            .iter()
            .for_each(|c| println!("{c}")),
    }
    Ok(())
}

/// `candado cert issue|self-signed`: writes NAME.crt and NAME.key, prints what it made.
fn cert(args: IssueArgs, self_signed: bool) -> Result<()> {
    if args.client {
        return client_cert(args, self_signed);
    }
    let mut names = Vec::new();
    for n in &args.names {
        names.push(config::parse_site_name(n).map_err(anyhow::Error::msg)?);
    }
    names.extend(args.ips.iter().map(IpAddr::to_string));
    if names.is_empty() {
        bail!("name at least one host or --ip, e.g. candado cert issue app.test --ip 127.0.0.1");
    }
    let default_days = if self_signed { 365 } else { devca::LEAF_DAYS };
    let days = args.days.map_or(default_days, i64::from);
    if !(1..=3650).contains(&days) {
        bail!("--days {days}: choose between 1 and 3650");
    }
    let kind = key_kind(args.key);
    let (cert_pem, key_pem, trust) = match self_signed {
        true => {
            let (c, k) = devca::self_signed(&names, days, kind)?;
            (c, k, None)
        }
        false => {
            let dir = crate::config::data_dir();
            let (ca, _) = DevCa::load_or_create(&dir).with_context(|| {
                format!("cannot set up the development CA in {}", dir.display())
            })?;
            let (c, k) = ca.issue_with(&names, days, kind)?;
            (c, k, Some(ca.cert_path()))
        }
    };
    let (cert, key) = devca::write_pair(&args.out, &devca::file_stem(&names), &cert_pem, &key_pem)?;
    println!(
        "certificate: {} ({}, {days} days)",
        cert.display(),
        names.join(", ")
    );
    println!("key:         {} (mode 0600)", key.display());
    match trust {
        Some(ca) => println!(
            "clients trust it through the development CA: {}",
            ca.display()
        ),
        None => println!("self-signed: clients must trust this certificate itself"),
    }
    if !self_signed && days > devca::BROWSER_MAX_DAYS {
        eprintln!(
            "warning: browsers refuse leaf certificates valid for more than {} days",
            devca::BROWSER_MAX_DAYS
        );
    } else if days > devca::GRADER_MAX_DAYS {
        eprintln!(
            "warning: TLS graders (Mozilla's intermediate profile, sslyze) fail certificates valid for more than {} days",
            devca::GRADER_MAX_DAYS
        );
    }
    Ok(())
}

/// `candado cert issue --client NAME`: a client certificate from the development CA.
fn client_cert(args: IssueArgs, self_signed: bool) -> Result<()> {
    if self_signed {
        bail!(
            "--client certificates come from the development CA: use `candado cert issue --client NAME`"
        );
    }
    let [name] = args.names.as_slice() else {
        bail!("name one client, e.g. candado cert issue --client alice");
    };
    let days = args.days.map_or(devca::CLIENT_DAYS, i64::from);
    if !(1..=3650).contains(&days) {
        bail!("--days {days}: choose between 1 and 3650");
    }
    let dir = crate::config::data_dir();
    let (ca, _) = DevCa::load_or_create(&dir)
        .with_context(|| format!("cannot set up the development CA in {}", dir.display()))?;
    let (cert_pem, key_pem) = ca.issue_client(name, days, key_kind(args.key))?;
    let stem = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    let (cert, key) = devca::write_pair(&args.out, &stem, &cert_pem, &key_pem)?;
    println!(
        "certificate: {} (client {name}, {days} days)",
        cert.display()
    );
    println!("key:         {} (mode 0600)", key.display());
    println!(
        "servers accept it with `client_auth: {{ca: local}}` (the development CA: {})",
        ca.cert_path().display()
    );
    Ok(())
}

fn key_kind(k: KeyArg) -> KeyKind {
    match k {
        KeyArg::Ecdsa => KeyKind::Ecdsa,
        KeyArg::Rsa2048 => KeyKind::Rsa2048,
        KeyArg::Rsa4096 => KeyKind::Rsa4096,
        KeyArg::Ed25519 => KeyKind::Ed25519,
    }
}

/// `candado cert inspect FILE|HOST[:PORT]`.
async fn inspect(args: InspectArgs) -> Result<()> {
    let provider = crate::tls::provider();
    let file = Path::new(&args.target);
    let chain = match file.is_file() {
        true => crate::certs::load::read_chain(file)?,
        false => {
            let target = args
                .target
                .trim_start_matches("https://")
                .trim_end_matches('/');
            let (host, port) = split_host_port(target)?;
            crate::check::fetch_chain(&host, port, std::time::Duration::from_secs(10))
                .await
                .map_err(anyhow::Error::msg)?
        }
    };
    let spki = args
        .key
        .as_deref()
        .map(|k| crate::certs::load::read_key_spki(k, &provider))
        .transpose()?;
    let report = crate::certs::inspect::describe(&args.target, &chain, spki.as_deref())
        .map_err(anyhow::Error::msg)?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!("{}", crate::certs::inspect::render(&report)),
    }
    Ok(())
}

/// `candado check HOST[:PORT]|URL`.
async fn tls_check(args: CheckArgs) -> Result<()> {
    use std::io::IsTerminal;
    let target = args.target.trim_start_matches("https://");
    let target = target.split('/').next().unwrap_or(target);
    let (host, port) = split_host_port(target)?;
    let client_identity = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            Some(crate::certs::load_files(cert, key, &crate::tls::provider(), false)?.key)
        }
        _ => None,
    };
    let opts = crate::check::Options {
        ca: args.ca,
        http_port: args.http_port,
        connect: args.connect,
        timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        client_identity,
    };
    let report = crate::check::run(&host, port, &opts)
        .await
        .with_context(|| format!("cannot check {host}:{port}"))?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!(
            "{}",
            crate::check::render(&report, std::io::stdout().is_terminal())
        ),
    }
    if let Some(min) = args.min_grade
        && report.grade < min
    {
        bail!("grade {} is below --min-grade {min}", report.grade);
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]:port` → (host, port), port 443 by default.
fn split_host_port(s: &str) -> Result<(String, u16)> {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p
                .parse()
                .with_context(|| format!("`{p}` in {s} is not a port"))?;
            Ok((h.trim_matches(['[', ']']).to_owned(), port))
        }
        _ => Ok((s.trim_matches(['[', ']']).to_owned(), 443)),
    }
}

/// `candado reload`: SIGHUP to the server whose pid file is in the data folder.
fn reload() -> Result<()> {
    use rustix::process::{Pid, Signal, kill_process};
    let path = crate::serve::pid_file();
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no running candado found ({} is missing); is it started, with the same CANDADO_DATA_DIR?", path.display()))?;
    let raw: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a process id", path.display()))?;
    let pid = Pid::from_raw(raw)
        .with_context(|| format!("{} holds an invalid process id", path.display()))?;
    // A stale file may name a process id that now belongs to another program.
    let comm = std::fs::read_to_string(format!("/proc/{raw}/comm")).unwrap_or_default();
    if comm.trim() != "candado" {
        bail!(
            "process {raw} from {} is not candado (it has exited?): nothing sent",
            path.display()
        );
    }
    kill_process(pid, Signal::HUP).with_context(|| format!("cannot signal candado (pid {raw})"))?;
    println!(
        "asked candado (pid {raw}) to reload; its log says whether the new configuration was taken"
    );
    Ok(())
}

/// `candado completions SHELL`: generated from the same clap definitions as the parser.
fn completions(shell: clap_complete::Shell) -> Result<()> {
    use std::io::Write;
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "candado", &mut script);
    std::io::stdout()
        .write_all(&script)
        .context("cannot write the completion script")
}

/// `candado man [--out DIR]`: the manual page(s), from the same clap definitions.
fn man(out: Option<&Path>) -> Result<()> {
    let command = Cli::command();
    let Some(dir) = out else {
        let mut stdout = std::io::stdout().lock();
        return clap_mangen::Man::new(command)
            .render(&mut stdout)
            .context("cannot write the manual page");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
    println!("manual pages written to {}", dir.display());
    Ok(())
}

fn hash_password() -> Result<()> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        bail!(
            "the password is empty: type it on standard input, e.g. candado hash-password <<< 'my password'"
        );
    }
    println!(
        "{}",
        crate::http::auth::hash_password(password).map_err(anyhow::Error::msg)?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
