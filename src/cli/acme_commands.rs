//! The ACME flags shared by `proxy`, `cert obtain` and `cert revoke`, and the two standalone
//! commands (`cert obtain` replaces `certbot certonly --standalone`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::acme::{Acme, ChallengeKind, schedule};
use crate::config::{self, AcmeSettings, ChallengeChoice, defaults};

#[derive(Debug, Clone, Default, Args)]
pub(super) struct AcmeArgs {
    /// Contact address for the ACME account (expiry notices from the CA).
    #[arg(long, value_name = "ADDRESS")]
    email: Option<String>,
    /// Use Let's Encrypt's staging CA (untrusted certificates, generous limits): for trying out.
    #[arg(long, conflicts_with = "acme_directory")]
    acme_staging: bool,
    /// ACME directory URL of another CA (ZeroSSL, step-ca, pebble) [default: Let's Encrypt].
    #[arg(long, value_name = "URL")]
    acme_directory: Option<String>,
    /// PEM bundle of the roots that the ACME directory's HTTPS certificate chains to.
    #[arg(long, value_name = "FILE")]
    acme_ca: Option<PathBuf>,
    /// External Account Binding key id (ZeroSSL and some private CAs need one).
    #[arg(long, value_name = "KID", requires = "eab_hmac_key")]
    eab_kid: Option<String>,
    /// External Account Binding HMAC key, base64url as the CA shows it.
    #[arg(long, value_name = "KEY", requires = "eab_kid")]
    eab_hmac_key: Option<String>,
    /// Which challenge proves control of the names.
    #[arg(long, value_enum, value_name = "TYPE")]
    acme_challenge: Option<ChallengeArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChallengeArg {
    Auto,
    #[value(name = "http-01")]
    Http01,
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
}

impl AcmeArgs {
    /// Whether any ACME flag was given (then a site uses ACME even for a private name).
    pub(super) fn any(&self) -> bool {
        self.email.is_some()
            || self.acme_staging
            || self.acme_directory.is_some()
            || self.acme_ca.is_some()
            || self.eab_kid.is_some()
            || self.acme_challenge.is_some()
    }

    pub(super) fn settings(&self) -> Result<AcmeSettings> {
        let mut s = AcmeSettings::default();
        if self.acme_staging {
            s.directory = defaults::ACME_STAGING_DIRECTORY.to_owned();
        }
        if let Some(d) = &self.acme_directory {
            s.directory =
                config::acme_directory(d).map_err(|e| anyhow::anyhow!("--acme-directory: {e}"))?;
        }
        s.email = self.email.clone();
        if let Some(ca) = &self.acme_ca {
            if !ca.is_file() {
                bail!("--acme-ca: file not found: {}", ca.display());
            }
            s.ca = Some(ca.clone());
        }
        if let (Some(kid), Some(key)) = (&self.eab_kid, &self.eab_hmac_key) {
            let hmac =
                config::acme_eab_key(key).map_err(|e| anyhow::anyhow!("--eab-hmac-key: {e}"))?;
            s.eab = Some((kid.clone(), hmac));
        }
        s.challenge = match self.acme_challenge {
            None | Some(ChallengeArg::Auto) => ChallengeChoice::Auto,
            Some(ChallengeArg::Http01) => ChallengeChoice::Http01,
            Some(ChallengeArg::TlsAlpn01) => ChallengeChoice::TlsAlpn01,
        };
        Ok(s)
    }
}

#[derive(Debug, Args)]
pub(super) struct ObtainArgs {
    /// Names for the certificate (the first is its subject).
    #[arg(long = "domain", short = 'd', value_name = "NAME", required = true)]
    domains: Vec<String>,
    /// Address to answer challenges on [default: 0.0.0.0, as the CA connects from outside].
    #[arg(short = 'H', long, value_name = "HOST")]
    host: Option<IpAddr>,
    /// Port for HTTP-01 challenges (the CA always connects to port 80; change it only behind
    /// a port forward or for a test CA).
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    http_port: u16,
    /// Port for TLS-ALPN-01 challenges (the CA connects to 443).
    #[arg(long, value_name = "PORT", default_value_t = 443)]
    tls_port: u16,
    /// Folder to write NAME.crt (chain) and NAME.key into.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Ask the CA even when a valid certificate is stored.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    acme: AcmeArgs,
}

#[derive(Debug, Args)]
pub(super) struct RevokeArgs {
    /// Names of the stored certificate to revoke (as given to `cert obtain` or the site).
    #[arg(long = "domain", short = 'd', value_name = "NAME", required = true)]
    domains: Vec<String>,
    #[command(flatten)]
    acme: AcmeArgs,
}

fn names(domains: &[String]) -> Result<Vec<String>> {
    domains
        .iter()
        .map(|d| config::parse_site_name(d).map_err(|e| anyhow::anyhow!("--domain {d}: {e}")))
        .collect()
}

fn say(step: &str) {
    println!("{step}");
}

/// `candado cert obtain`: a certificate from the ACME CA, answering the challenge on our
/// own short-lived listener, written to files; progress on the terminal.
pub(super) async fn obtain(args: ObtainArgs) -> Result<()> {
    let names = names(&args.domains)?;
    let settings = args.acme.settings()?;
    let acme = Acme::new(settings.clone(), crate::tls::provider());
    let now = std::time::SystemTime::now();
    let reusable = acme.load_stored(&names).filter(|s| {
        !args.force && schedule::next(now, s.lifetime, None, 0.0) != schedule::Next::Renew
    });
    match reusable {
        Some(s) => say(&format!(
            "stored: a valid certificate for {} is already in {} (valid until {}; --force asks for a new one)",
            names.join(", "),
            crate::acme::describe_store(&acme, &names),
            humantime::format_rfc3339_seconds(s.lifetime.not_after)
        )),
        None => {
            let kind = match settings.challenge {
                ChallengeChoice::TlsAlpn01 => ChallengeKind::TlsAlpn01,
                _ => ChallengeKind::Http01,
            };
            let ip = args.host.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            let addr = SocketAddr::from((
                ip,
                match kind {
                    ChallengeKind::Http01 => args.http_port,
                    ChallengeKind::TlsAlpn01 => args.tls_port,
                },
            ));
            let responder = crate::serve::answer_challenges(addr, kind, &acme).await?;
            say(&format!("listening: {} challenges on {addr}", kind.name()));
            let got = acme.obtain(&names, kind, None, &say).await;
            responder.cancel();
            got.context("no certificate was issued")?;
        }
    }
    write_out(&args.out, &acme, &names)
}

fn write_out(dir: &std::path::Path, acme: &Acme, names: &[String]) -> Result<()> {
    let (chain, key) = acme
        .stored_pem(names)
        .context("the certificate just stored cannot be read back")?;
    let (cert_out, key_out) = crate::devca::write_pair(
        dir,
        &crate::devca::file_stem(names),
        &String::from_utf8_lossy(&chain),
        &String::from_utf8_lossy(&key),
    )?;
    say(&format!(
        "written: {} (chain) and {} (key, 0600)",
        cert_out.display(),
        key_out.display()
    ));
    Ok(())
}

/// `candado cert revoke`: the stored certificate is revoked at the CA and removed.
pub(super) async fn revoke(args: RevokeArgs) -> Result<()> {
    let names = names(&args.domains)?;
    let acme = Acme::new(args.acme.settings()?, crate::tls::provider());
    acme.revoke(&names, &say)
        .await
        .context("the certificate was not revoked")?;
    Ok(())
}
