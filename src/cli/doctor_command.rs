//! `candado doctor --to ADDR [--from NAME[:PORT]]` and `candado doctor -c FILE`: find the
//! targets (each route's app and public origin), start a temporary candado for them when none
//! is running, run `doctor` and print its report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::config::{self, defaults};
use crate::doctor::Target;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The app's address, as for `candado proxy`: 127.0.0.1:5000, :5000, http://localhost:5000.
    #[arg(
        long,
        value_name = "ADDR",
        conflicts_with = "config",
        required_unless_present = "config"
    )]
    pub(crate) to: Option<String>,
    /// The public site name and HTTPS port, as for `candado proxy` [default: localhost:8443;
    /// port 443 for a public name].
    #[arg(long, value_name = "NAME[:PORT]", conflicts_with = "config")]
    pub(crate) from: Option<String>,
    /// Check every proxied route of this config file instead.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// A WebSocket path to try through candado (e.g. /ws).
    #[arg(long, value_name = "PATH")]
    pub(crate) ws: Option<String>,
    /// A Server-Sent Events path to follow through candado (e.g. /events).
    #[arg(long, value_name = "PATH")]
    pub(crate) sse: Option<String>,
    /// Print JSON for scripts.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn doctor(args: DoctorArgs) -> Result<()> {
    use std::io::IsTerminal;
    let (targets, _temporary) = match &args.config {
        Some(file) => from_config(file, &args).await?,
        None => from_flags(&args).await?,
    };
    if targets.is_empty() {
        bail!("no route proxies to an http:// app: nothing to check");
    }
    let report = crate::doctor::run(&targets)
        .await
        .map_err(anyhow::Error::msg)?;
    match args.json {
        true => println!("{}", serde_json::to_string_pretty(&report)?),
        false => print!(
            "{}",
            crate::doctor::render(&report, std::io::stdout().is_terminal())
        ),
    }
    match report.problems() {
        0 => Ok(()),
        n => bail!("{n} problem(s) found: each comes with the lines that fix it"),
    }
}

/// `--to` and `--from`: one target; candado on 127.0.0.1 at the public port.
async fn from_flags(args: &DoctorArgs) -> Result<(Vec<Target>, Option<Temporary>)> {
    let to = args.to.as_deref().unwrap_or_default();
    let upstream = config::Upstream::parse(to)
        .map_err(|e| anyhow::anyhow!("--to {to}: {e} (e.g. --to 127.0.0.1:5000)"))?;
    let app = app_address(&upstream).await?;
    let (name, port) = match &args.from {
        Some(from) => super::serve_flags::parse_from(from)?,
        None => (None, None),
    };
    let name = name.unwrap_or_else(|| "localhost".to_owned());
    // Where `candado proxy --from NAME` listens: 443 for a public name, 8443 otherwise.
    let port = port.unwrap_or(match config::is_public_name(&name) {
        true => 443,
        false => defaults::HTTPS_PORT,
    });
    let candado = SocketAddr::from(([127, 0, 0, 1], port));
    let temporary = match answers(candado).await {
        true => None,
        false => Some(Temporary::proxy(to, &name, port).await?),
    };
    let target = Target {
        app,
        name,
        port,
        candado,
        public_path: "/".to_owned(),
        app_path: "/".to_owned(),
        ws: args.ws.clone(),
        sse: args.sse.clone(),
    };
    Ok((vec![target], temporary))
}

/// `-c FILE`: a target per route with an http:// upstream, on each site's first name.
async fn from_config(file: &Path, args: &DoctorArgs) -> Result<(Vec<Target>, Option<Temporary>)> {
    let loaded = config::load(file)?;
    let running = crate::serve::instance::running(&config::data_dir());
    let is_running = crate::serve::instance::running_with_config(&running, file).is_some();
    let temporary = match is_running {
        true => None,
        false => Some(Temporary::serve(file).await?),
    };
    let mut targets = Vec::new();
    for site in &loaded.config.sites {
        let listen = match (site.listen.port(), &temporary) {
            (0, Some(t)) => t.addr,
            (0, None) => bail!(
                "{}: a site listens on port 0 and candado already runs: doctor cannot tell its port",
                file.display()
            ),
            _ => site.listen,
        };
        let candado = match listen.ip().is_unspecified() {
            true => SocketAddr::from(([127, 0, 0, 1], listen.port())),
            false => listen,
        };
        for route in &site.routes {
            let Some(upstream) = route.upstreams.first() else {
                continue;
            };
            if !upstream.origin.starts_with("http://") {
                continue;
            }
            let public_path = match route.prefix.as_str() {
                "/" => "/".to_owned(),
                p => format!("{p}/"),
            };
            let app_path = match route.stripped_prefix() {
                Some(_) => "/".to_owned(),
                None => public_path.clone(),
            };
            targets.push(Target {
                app: app_address(upstream).await?,
                name: site.primary_name().to_owned(),
                port: listen.port(),
                candado,
                public_path,
                app_path,
                ws: args.ws.clone(),
                sse: args.sse.clone(),
            });
        }
    }
    Ok((targets, temporary))
}

/// The app's socket address (a name such as localhost resolved, the first address taken).
async fn app_address(upstream: &config::Upstream) -> Result<SocketAddr> {
    let authority = upstream
        .origin
        .split_once("://")
        .map_or(upstream.origin.as_str(), |(_, a)| a);
    let mut addrs = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("cannot resolve the app's address {authority}"))?;
    addrs
        .next()
        .with_context(|| format!("{authority} has no address"))
}

/// Whether something accepts connections at `addr` (a running candado, presumably).
async fn answers(addr: SocketAddr) -> bool {
    let connect = tokio::net::TcpStream::connect(addr);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
}

/// A candado started for the check and stopped after it (killed on drop), with a throwaway
/// self-signed certificate so that it neither asks an ACME CA nor touches the local CA.
struct Temporary {
    _child: Child,
    addr: SocketAddr,
    dir: Option<PathBuf>,
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Temporary {
    async fn proxy(to: &str, name: &str, port: u16) -> Result<Temporary> {
        let dir = std::env::temp_dir().join(format!("candado-doctor-{}", std::process::id()));
        let (cert, key) = throwaway_certificate(&dir, name)?;
        let from = format!("{name}:{port}");
        let args = [
            "proxy",
            "--to",
            to,
            "--from",
            &from,
            "--http-port",
            "0",
            "--cert",
            &cert,
            "--key",
            &key,
        ];
        let mut t = Temporary::start(&args).await?;
        t.dir = Some(dir);
        Ok(t)
    }

    async fn serve(file: &Path) -> Result<Temporary> {
        let file = file.to_string_lossy();
        Temporary::start(&["serve", "-c", &file]).await
    }

    /// Runs this binary with `args` and waits for its `listening kind=https` line.
    async fn start(args: &[&str]) -> Result<Temporary> {
        let exe = std::env::current_exe().context("cannot find the candado binary")?;
        let mut child = Command::new(exe)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a temporary candado")?;
        let stderr = child
            .stderr
            .take()
            .context("no log from the temporary candado")?;
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + defaults::DOCTOR_START_TIMEOUT;
        let mut log = String::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                Ok(_) => bail!(
                    "the temporary candado (candado {}) stopped:\n{log}",
                    args.join(" ")
                ),
                Err(_) => bail!("the temporary candado did not start listening in time:\n{log}"),
            };
            if let Some(addr) = listening(&line) {
                break addr;
            }
            log.push_str(&line);
            log.push('\n');
        };
        // Its log keeps coming (the hints about the app among it): read it so it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Temporary {
            _child: child,
            addr,
            dir: None,
        })
    }
}

/// The address in a `listening kind=https addr=…` log line.
fn listening(line: &str) -> Option<SocketAddr> {
    let marker = "listening kind=https addr=";
    let rest = &line[line.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A self-signed certificate for `name` in a private folder: (cert path, key path).
fn throwaway_certificate(dir: &Path, name: &str) -> Result<(String, String)> {
    use std::os::unix::fs::DirBuilderExt;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) =
        crate::devca::self_signed(&[name.to_owned()], 1, crate::devca::KeyKind::Ecdsa)?;
    let (cert_path, key_path) = (dir.join("doctor.crt"), dir.join("doctor.key"));
    std::fs::write(&cert_path, cert)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    std::fs::write(&key_path, key)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    Ok((
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
    ))
}
