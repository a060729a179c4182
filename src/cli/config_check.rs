//! `candado config check FILE`: the config's problems with their lines, then every file it
//! names read as `serve` would read it (certificates and keys, client CAs, CRLs), so that a
//! config that checks clean also starts.

use std::path::Path;

use anyhow::{Result, bail};
use rustls::crypto::CryptoProvider;

use crate::config::{self, CertSource, ClientAuth, ClientCa, Config, Format, TunnelMode};

pub(super) fn check(file: &Path) -> Result<()> {
    let loaded = config::load(file)?;
    for w in &loaded.warnings {
        eprintln!("warning: {}: {w}", file.display());
    }
    let errors = check_files(&loaded.config);
    if !errors.is_empty() {
        bail!("{}: {}", file.display(), errors.join("\n  "));
    }
    let kind = match loaded.format {
        Format::Candado => "candado config",
        Format::PyServe => "PyServe config",
    };
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let mut counts = vec![count(loaded.config.sites.len(), "site")];
    if !loaded.config.tunnels.is_empty() {
        counts.push(count(loaded.config.tunnels.len(), "tunnel"));
    }
    println!("{}: OK ({kind}, {})", file.display(), counts.join(", "));
    Ok(())
}

/// What failed to load, each with its site or tunnel.
fn check_files(config: &Config) -> Vec<String> {
    let provider = crate::tls::provider();
    let mut errors = Vec::new();
    for site in &config.sites {
        let who = format!("site {}", site.primary_name());
        let failed = accepting(&site.certificate, site.client_auth.as_ref(), &provider);
        errors.extend(failed.into_iter().map(|e| format!("{who}: {e}")));
    }
    for t in &config.tunnels {
        let failed = match &t.mode {
            TunnelMode::Server(s) => accepting(&s.certificate, s.client_auth.as_ref(), &provider),
            TunnelMode::Client(c) => {
                let identity = c.identity.iter().map(|(cert, key)| {
                    crate::certs::load_files(cert, key, &provider, false)
                        .map(drop)
                        .map_err(|e| e.to_string())
                });
                let ca = c.ca.iter().map(|ca| {
                    crate::tls::roots_from_file(ca)
                        .map(drop)
                        .map_err(|e| e.to_string())
                });
                identity.chain(ca).filter_map(Result::err).collect()
            }
        };
        errors.extend(
            failed
                .into_iter()
                .map(|e| format!("tunnel {}: {e}", t.name)),
        );
    }
    errors
}

/// The files of a site or tunnel that accepts TLS: its certificates, and what checks clients'.
fn accepting(
    source: &CertSource,
    auth: Option<&ClientAuth>,
    provider: &std::sync::Arc<CryptoProvider>,
) -> Vec<String> {
    let mut errors = Vec::new();
    for (cert, key) in source.files() {
        match crate::certs::load_files(&cert, &key, provider, false) {
            Ok(c) => c.warnings.iter().for_each(|w| eprintln!("warning: {w}")),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let Some(auth) = auth else {
        return errors;
    };
    // The development CA is made on first use: before that only the CRLs can be read.
    let local = crate::devca::ca_cert_path(&crate::config::data_dir());
    let checked = match (&auth.ca, local.is_file()) {
        (ClientCa::Local, false) => auth
            .crls
            .iter()
            .try_for_each(|c| crate::tls::client_auth::read_crls(c).map(drop))
            .map_err(|e| e.to_string()),
        _ => crate::tls::client_auth::verifier(auth, Some(&local), provider.clone())
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    errors.extend(checked.err());
    errors
}
