//! The command line's shape: every subcommand and flag, as clap derives them. What each does
//! lives beside it in `cli`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use super::{acme_commands, client_auth_args, doctor_command, lan_args, tunnel_command};

/// `candado --version`: what a bug report needs. build.rs finds the commit and the rustls
/// version; the provider is the one `tls::provider` installs.
pub(super) const LONG_VERSION: &str = concat!(
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
    pub(super) command: Option<Command>,
    #[command(flatten)]
    pub(super) serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    Reload {
        /// The config file of the instance to reload, when several run on the data folder.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The local development CA (like mkcert).
    #[command(subcommand)]
    Ca(CaCommand),
    /// Make certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Grade any HTTPS server's TLS set-up (protocols, suites, certificate, HSTS), A+ to F.
    Check(CheckArgs),
    /// Find what breaks when an app moves behind HTTPS, with the fix for its framework:
    /// `candado doctor --to 127.0.0.1:5000 --from app.example.com`.
    Doctor(doctor_command::DoctorArgs),
    /// TLS for a raw TCP service (like stunnel): `candado tunnel --listen :7443 --to 127.0.0.1:5432`.
    Tunnel(tunnel_command::TunnelArgs),
    /// What the running candado is doing: sites, certificates, upstreams (from its admin
    /// listener); exits non-zero when a certificate expires within 7 days or an upstream is down.
    Status(super::status_command::StatusArgs),
    /// Several instances sharing state through Redis (`cluster:` in the config).
    #[command(subcommand)]
    Cluster(ClusterCommand),
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
pub(super) struct CheckArgs {
    /// HOST[:PORT] (port 443 unless given) or an https:// URL.
    pub(super) target: String,
    /// Also trust the CA certificates in this PEM file (besides the system roots).
    #[arg(long, value_name = "FILE")]
    pub(super) ca: Option<PathBuf>,
    /// Connect to this IP address instead of resolving HOST (HOST is still the name checked).
    #[arg(long, value_name = "IP")]
    pub(super) connect: Option<IpAddr>,
    /// Port of the http:// listener expected to redirect to https://.
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    pub(super) http_port: u16,
    /// Exit with code 1 when the grade is below this one (A+, A, A-, B, C, D, E, F).
    #[arg(long, value_name = "GRADE")]
    pub(super) min_grade: Option<crate::check::Grade>,
    /// Seconds to wait for each answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub(super) timeout: u64,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(super) json: bool,
    /// A client certificate (PEM) to present if the server asks for one (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub(super) cert: Option<PathBuf>,
    /// The private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(super) key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(super) enum ClusterCommand {
    /// Print a new shared key (32 random bytes, base64) for CANDADO_CLUSTER_KEY or
    /// `cluster.key_file`; give every instance of the cluster the same one.
    Keygen,
}

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate a config file (candado's or PyServe's) and print every problem found.
    Check {
        /// The config file.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum CaCommand {
    /// Create the development CA (if there is none yet) and print where it is.
    Init,
    /// Print the path of the CA certificate to trust.
    Path,
    /// Trust the CA: the system store and the browsers' certificate databases.
    Install,
    /// Remove the CA from everything `install` changed.
    Uninstall,
    /// The LAN CA of `--lan` (created if missing): its path, fingerprint and permitted names.
    Lan {
        /// Replace it with a new key and certificate (devices must install the new one).
        #[arg(long)]
        rotate: bool,
        /// Also permit this host or domain and its subdomains (repeatable; with --rotate, or
        /// when the CA is created).
        #[arg(long = "name", value_name = "NAME")]
        names: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum CertCommand {
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
pub(super) struct InspectArgs {
    /// A PEM file, or HOST[:PORT] (port 443 unless given) of a server to ask.
    pub(super) target: String,
    /// A private key file: say whether it matches the leaf certificate.
    #[arg(long, value_name = "FILE")]
    pub(super) key: Option<PathBuf>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct IssueArgs {
    /// Host names the certificate is for, e.g. app.test '*.app.test' localhost.
    #[arg(value_name = "NAME")]
    pub(super) names: Vec<String>,
    /// IP addresses the certificate is for (repeatable).
    #[arg(long = "ip", value_name = "IP")]
    pub(super) ips: Vec<IpAddr>,
    /// Days of validity [default: 365].
    #[arg(long, value_name = "N")]
    pub(super) days: Option<u32>,
    /// Key type.
    #[arg(long, value_enum, default_value = "ecdsa")]
    pub(super) key: KeyArg,
    /// Folder for NAME.crt and NAME.key.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(super) out: PathBuf,
    /// A client certificate (for mutual TLS) for NAME: a user, a host or a SPIFFE ID.
    #[arg(long, conflicts_with = "ips")]
    pub(super) client: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum KeyArg {
    Ecdsa,
    Rsa2048,
    Rsa4096,
    Ed25519,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Clone, Default, Args)]
pub(super) struct ServeArgs {
    /// Config file: candado's YAML format (with `sites:`) or PyServe's config.yaml.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Address to bind [default: 127.0.0.1, loopback only].
    #[arg(short = 'H', long, value_name = "HOST")]
    pub(super) host: Option<String>,
    /// HTTPS port [default: 8443].
    #[arg(short = 'p', long, value_name = "PORT")]
    pub(super) port: Option<u16>,
    /// Folder to serve [default: the current folder].
    #[arg(short = 's', long = "static-dir", value_name = "DIR")]
    pub(super) static_dir: Option<PathBuf>,
    /// List the files of folders that have no index.html (like `caddy file-server --browse`).
    #[arg(long)]
    pub(super) browse: bool,
    /// Debug log, including TLS handshake details.
    #[arg(short = 'd', long)]
    pub(super) debug: bool,
    /// Accepted for PyServe compatibility: candado always serves HTTPS.
    #[arg(long)]
    pub(super) ssl: bool,
    /// Certificate chain (PEM: leaf first, then intermediates) [default: local development CA].
    #[arg(long, value_name = "FILE", requires = "key")]
    pub(super) cert: Option<PathBuf>,
    /// Private key of the certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(super) key: Option<PathBuf>,
    /// Write --cert and --key into the PyServe config's `ssl:` section (keeping its comments) and exit.
    #[arg(long = "ssl-config", requires_all = ["cert", "key"])]
    pub(super) ssl_config: bool,
    /// Serve a certificate even when it has expired.
    #[arg(long)]
    pub(super) allow_expired: bool,
    /// Port of the HTTP→HTTPS redirect listener without a config file; 0 turns it off [default: 8080].
    #[arg(long, value_name = "PORT")]
    pub(super) http_port: Option<u16>,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(super) log_format: Option<LogFormatArg>,
    /// Do not write an access-log line per request.
    #[arg(long)]
    pub(super) no_access_log: bool,
    /// Serve HTTP/1.1 and HTTP/2 only: no HTTP/3 (QUIC) listener, no Alt-Svc.
    #[arg(long)]
    pub(super) no_http3: bool,
    /// Write the log to this file instead of standard error; SIGUSR1 reopens it (logrotate).
    #[arg(long, value_name = "FILE")]
    pub(super) log_file: Option<PathBuf>,
    #[command(flatten)]
    pub(super) lan: lan_args::LanArgs,
    /// Admin listener with /metrics and /status (127.0.0.1:2019, :2019; off turns it off);
    /// overrides `admin:` in the config.
    #[arg(long, value_name = "ADDR")]
    pub(super) admin: Option<String>,
    /// Share session-ticket keys with other instances through this Redis
    /// (redis://HOST:PORT); overrides `cluster.redis` in the config.
    #[arg(long, value_name = "URL")]
    pub(super) cluster_redis: Option<String>,
    /// Never compress responses (zstd, br, gzip), whatever the config file says.
    #[arg(long)]
    pub(super) no_compression: bool,
}

#[derive(Debug, Clone, Args)]
pub(super) struct ProxyArgs {
    /// The app's address (repeat for several, used in turn): 127.0.0.1:5000, http://… or https://…
    #[arg(long, value_name = "ADDR", required = true)]
    pub(super) to: Vec<String>,
    /// Public site name and HTTPS port [default: localhost:8443; a public name gets an ACME
    /// certificate and 0.0.0.0:443, with the HTTP listener on :80].
    #[arg(long, value_name = "NAME[:PORT]")]
    pub(super) from: Option<String>,
    /// How long the app may take to start answering before the client gets 504 (500ms, 90s,
    /// 10m) [default: 5m].
    #[arg(long, value_name = "DURATION")]
    pub(super) response_timeout: Option<String>,
    /// Address to bind [default: 127.0.0.1, loopback only].
    #[arg(short = 'H', long, value_name = "HOST")]
    pub(super) host: Option<String>,
    /// Certificate chain (PEM) [default: local development CA].
    #[arg(long, value_name = "FILE", requires = "key")]
    pub(super) cert: Option<PathBuf>,
    /// Private key of the certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub(super) key: Option<PathBuf>,
    /// Port of the HTTP→HTTPS redirect listener; 0 turns it off [default: 8080].
    #[arg(long, value_name = "PORT")]
    pub(super) http_port: Option<u16>,
    /// Debug log, including TLS handshake details.
    #[arg(short = 'd', long)]
    pub(super) debug: bool,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(super) log_format: Option<LogFormatArg>,
    /// Write the log to this file instead of standard error; SIGUSR1 reopens it (logrotate).
    #[arg(long, value_name = "FILE")]
    pub(super) log_file: Option<PathBuf>,
    /// Admin listener with /metrics and /status (127.0.0.1:2019, :2019; off turns it off).
    #[arg(long, value_name = "ADDR")]
    pub(super) admin: Option<String>,
    /// Never compress responses (zstd, br, gzip) [default: compress text, JSON and JS for
    /// clients that accept it].
    #[arg(long)]
    pub(super) no_compression: bool,
    /// Serve HTTP/1.1 and HTTP/2 only: no HTTP/3 (QUIC) listener, no Alt-Svc.
    #[arg(long)]
    pub(super) no_http3: bool,
    #[command(flatten)]
    pub(super) acme: acme_commands::AcmeArgs,
    #[command(flatten)]
    pub(super) clients: client_auth_args::ClientAuthArgs,
    #[command(flatten)]
    pub(super) lan: lan_args::LanArgs,
}
