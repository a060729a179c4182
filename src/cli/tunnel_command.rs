//! `candado tunnel`: one tunnel from flags, no config file (stunnel's one-liner).
//! Server mode: `--listen :7443 --to 127.0.0.1:12345 [--cert F --key F] [--client-ca F]`.
//! Client mode: `--listen 127.0.0.1:5432 --to db.example.com:6432 --tls-client [--ca F]`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::args::LogFormatArg;
use super::client_auth_args::ClientAuthArgs;
use crate::config::{
    self, CertSource, Config, LogFormat, Tunnel, TunnelClient, TunnelMode, TunnelServer, defaults,
};

#[derive(Debug, Clone, Args)]
pub(super) struct TunnelArgs {
    /// Address to accept connections on: 127.0.0.1:7443, or :7443 for every interface.
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// Where the bytes go: HOST:PORT of the TCP service (or of the TLS server with --tls-client).
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Client mode: accept plain TCP and speak verified TLS to --to.
    #[arg(long)]
    tls_client: bool,
    /// SNI name this tunnel answers to (repeatable); also the local-CA certificate's names.
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
    /// The certificate chain (PEM) [default: the local development CA]. With --tls-client: the
    /// client certificate presented to the server.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    #[command(flatten)]
    clients: ClientAuthArgs,
    /// Send a PROXY protocol v2 header first, so the service learns the client's address.
    #[arg(long)]
    proxy_protocol: bool,
    /// ALPN protocol to offer (repeatable, most preferred first).
    #[arg(long, value_name = "PROTOCOL")]
    alpn: Vec<String>,
    /// Close a connection after this long without a byte either way [default: 10m].
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// With --tls-client: trust only the CAs in this PEM file [default: the system's roots].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// With --tls-client: the name the server's certificate must have [default: the host of --to].
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Debug log, including TLS handshake details.
    #[arg(short = 'd', long)]
    debug: bool,
    /// Log format.
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
}

pub(super) async fn tunnel(args: TunnelArgs) -> Result<()> {
    let config = tunnel_config(&args)?;
    crate::telemetry::init(&config.log, args.debug)?;
    let reload: crate::serve::Reloader = Box::new(move || tunnel_config(&args));
    crate::serve::run(config, Some(reload)).await
}

fn tunnel_config(args: &TunnelArgs) -> Result<Config> {
    let listen =
        config::parse_listen(&args.listen).map_err(|e| anyhow::anyhow!("--listen: {e}"))?;
    let to = config::parse_host_port(&args.to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let idle_timeout = match &args.idle_timeout {
        Some(d) => config::parse_duration(d).map_err(|e| anyhow::anyhow!("--idle-timeout: {e}"))?,
        None => defaults::TUNNEL_IDLE_TIMEOUT,
    };
    let alpn = args.alpn.iter().map(|a| a.clone().into_bytes()).collect();
    let mode = match args.tls_client {
        true => client_mode(args, &to, alpn)?,
        false => server_mode(args, alpn)?,
    };
    let mut config = Config {
        tunnels: vec![Tunnel {
            name: args.listen.clone(),
            listen,
            to,
            idle_timeout,
            mode,
        }],
        ..Config::default()
    };
    if let Some(LogFormatArg::Json) = args.log_format {
        config.log.format = LogFormat::Json;
    }
    Ok(config)
}

fn client_mode(args: &TunnelArgs, to: &str, alpn: Vec<Vec<u8>>) -> Result<TunnelMode> {
    if args.clients.any() || args.proxy_protocol || !args.names.is_empty() {
        bail!(
            "--client-ca, --proxy-protocol and --name are for tunnels that accept TLS; with --tls-client the tunnel accepts plain TCP"
        );
    }
    let server_name = match &args.server_name {
        Some(n) => config::parse_site_name(n).map_err(|e| anyhow::anyhow!("--server-name: {e}"))?,
        None => config::host_of(to).to_owned(),
    };
    Ok(TunnelMode::Client(TunnelClient {
        ca: args.ca.clone(),
        server_name,
        identity: args.cert.clone().zip(args.key.clone()),
        alpn,
    }))
}

fn server_mode(args: &TunnelArgs, alpn: Vec<Vec<u8>>) -> Result<TunnelMode> {
    if args.ca.is_some() || args.server_name.is_some() {
        bail!(
            "--ca and --server-name are for --tls-client; to check client certificates use --client-ca"
        );
    }
    let names = args
        .names
        .iter()
        .map(|n| config::parse_site_name(n).map_err(|e| anyhow::anyhow!("--name: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let certificate = match args.cert.clone().zip(args.key.clone()) {
        Some((cert, key)) => CertSource::Files { cert, key },
        None => CertSource::Local,
    };
    Ok(TunnelMode::Server(TunnelServer {
        names,
        certificate,
        alpn,
        proxy_protocol: args.proxy_protocol,
        client_auth: args.clients.settings()?,
    }))
}
