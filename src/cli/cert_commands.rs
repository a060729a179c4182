//! `candado ca …` and `candado cert issue|self-signed|inspect`: the local development CA, the
//! certificates it issues, and reading any certificate (file or server).

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::args::{CaCommand, InspectArgs, IssueArgs, KeyArg};
use super::split_host_port;
use crate::config;
use crate::devca::{self, DevCa, KeyKind};

pub(super) fn ca(command: CaCommand) -> Result<()> {
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
        CaCommand::Lan { rotate, names } => lan_ca(&dir, rotate, &names)?,
    }
    Ok(())
}

/// `candado cert issue|self-signed`: writes NAME.crt and NAME.key, prints what it made.
pub(super) fn cert(args: IssueArgs, self_signed: bool) -> Result<()> {
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
pub(super) async fn inspect(args: InspectArgs) -> Result<()> {
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

/// `candado ca lan [--rotate] [--name NAME]...`.
fn lan_ca(dir: &std::path::Path, rotate: bool, names: &[String]) -> Result<()> {
    use crate::lan::ca::LanCa;
    let ca = match rotate {
        true => LanCa::rotate(dir, names)?,
        false => {
            let (ca, created) = LanCa::load_or_create(dir, names)
                .with_context(|| format!("cannot set up the LAN CA in {}", dir.display()))?;
            if !created && !names.is_empty() {
                bail!(
                    "the LAN CA exists and its permitted names are part of it: add --rotate to make a new one with --name (devices must install it again)"
                );
            }
            ca
        }
    };
    if rotate {
        println!(
            "new LAN CA: devices that trusted the previous one must install this one (restart a running `--lan` to serve from it)"
        );
    }
    println!("LAN CA: {}", ca.cert_path().display());
    println!("SHA-256 fingerprint: {}", ca.fingerprint());
    println!(
        "may sign only for: 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 127.0.0.0/8, fc00::/7, fe80::/10, ::1 and {}",
        ca.permitted_names().join(", ")
    );
    Ok(())
}
