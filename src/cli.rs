//! The command line: `candado [serve] [flags]` (PyServe's flags included) and
//! `candado config check FILE`, `candado check HOST` and the certificate commands.

mod acme_commands;
mod args;
mod cert_commands;
mod client_auth_args;
mod config_check;
mod doctor_command;
mod lan_args;
mod serve_flags;
mod status_command;
mod tunnel_command;

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

pub use args::Cli;
use args::{CertCommand, CheckArgs, ClusterCommand, Command, ConfigCommand};
use cert_commands::{ca, cert, inspect};
use serve_flags::{proxy, serve};

/// Runs the command line; the error, if any, is printed by `main`.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Config(ConfigCommand::Check { file })) => config_check::check(&file),
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Proxy(args)) => proxy(args).await,
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Reload { config }) => reload(config.as_deref()),
        Some(Command::Ca(c)) => ca(c),
        Some(Command::Cert(CertCommand::Issue(args))) => cert(args, false),
        Some(Command::Cert(CertCommand::SelfSigned(args))) => cert(args, true),
        Some(Command::Cert(CertCommand::Inspect(args))) => inspect(args).await,
        Some(Command::Cert(CertCommand::Obtain(args))) => acme_commands::obtain(args).await,
        Some(Command::Cert(CertCommand::Revoke(args))) => acme_commands::revoke(args).await,
        Some(Command::Check(args)) => tls_check(args).await,
        Some(Command::Tunnel(args)) => tunnel_command::tunnel(args).await,
        Some(Command::Doctor(args)) => doctor_command::doctor(args).await,
        Some(Command::Status(args)) => status_command::status(args).await,
        Some(Command::Cluster(ClusterCommand::Keygen)) => {
            println!("{}", crate::cluster::keygen()?);
            Ok(())
        }
        Some(Command::Completions { shell }) => completions(shell),
        Some(Command::Man { out }) => man(out.as_deref()),
        None => serve(cli.serve).await,
    }
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
pub(super) fn split_host_port(s: &str) -> Result<(String, u16)> {
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

/// `candado reload [-c FILE]`: SIGHUP to the running server, found by its pid file in the
/// data folder. When several run there, `-c` chooses one; without it they are listed and
/// none is signalled (reloading the wrong one would look like success).
fn reload(config: Option<&Path>) -> Result<()> {
    use crate::serve::instance::{self, Running};
    use rustix::process::{Pid, Signal, kill_process};
    let data_dir = crate::config::data_dir();
    let running = instance::running(&data_dir);
    let list = |running: &[Running]| {
        running
            .iter()
            .map(|r| format!("\n  pid {}: {}", r.pid, r.what))
            .collect::<String>()
    };
    let chosen = match (config, running.as_slice()) {
        (_, []) => bail!(
            "no running candado found (no pid file in {}); is it started, with the same CANDADO_DATA_DIR?",
            data_dir.join("run").display()
        ),
        (Some(file), all) => instance::running_with_config(all, file).with_context(|| {
            format!(
                "no running candado uses {}; running on {}:{}",
                file.display(),
                data_dir.display(),
                list(all)
            )
        })?,
        (None, [one]) => one,
        (None, all) => bail!(
            "{} candado instances run on {}: choose one with `candado reload -c FILE` (or `kill -HUP PID`); nothing sent:{}",
            all.len(),
            data_dir.display(),
            list(all)
        ),
    };
    let pid = Pid::from_raw(chosen.pid)
        .with_context(|| format!("{} holds an invalid process id", chosen.pid_file.display()))?;
    kill_process(pid, Signal::HUP)
        .with_context(|| format!("cannot signal candado (pid {})", chosen.pid))?;
    println!(
        "asked candado (pid {}, {}) to reload; its log says whether the new configuration was taken",
        chosen.pid, chosen.what
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
