//! The `--lan` flags `serve` and `proxy` share: offer the site to phones on the same network.

use anyhow::{Result, bail};
use clap::Args;

use crate::config::{Config, Lan};

#[derive(Debug, Clone, Default, Args)]
pub(super) struct LanArgs {
    /// Also serve the site on this machine's LAN addresses (private IPv4, IPv6 unique-local),
    /// with a certificate from the name-constrained LAN CA, an onboarding page that hands the
    /// CA to phones, QR codes and mDNS. Public addresses are never bound.
    #[arg(long)]
    lan: bool,
    /// With --lan: do not announce HOSTNAME.local over mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// With --lan: port of the plain-HTTP onboarding page on the LAN addresses [default: 8880].
    #[arg(long, value_name = "PORT")]
    lan_http_port: Option<u16>,
    /// With --lan: only this interface (repeatable) [default: every interface with a private
    /// address, but container and VM bridges].
    #[arg(long, value_name = "NAME")]
    lan_interface: Vec<String>,
}

impl LanArgs {
    /// Turns `--lan` on for the only site of `config` (a config file's `lan: true` site is
    /// already on), and applies the other flags to whichever site is.
    pub(super) fn apply(&self, config: &mut Config) -> Result<()> {
        if self.lan && config.lan.is_none() {
            if config.sites.len() != 1 {
                bail!(
                    "--lan applies to a config with one site; this one has {}: set `lan: true` on the site to offer",
                    config.sites.len()
                );
            }
            config.lan = Some(Lan::for_site(0));
        }
        let Some(lan) = &mut config.lan else {
            if self.no_mdns || self.lan_http_port.is_some() || !self.lan_interface.is_empty() {
                bail!("--no-mdns, --lan-http-port and --lan-interface go with --lan");
            }
            return Ok(());
        };
        lan.mdns &= !self.no_mdns;
        if let Some(p) = self.lan_http_port {
            lan.onboarding_port = p;
        }
        if !self.lan_interface.is_empty() {
            lan.interfaces = self.lan_interface.clone();
        }
        let https = config.sites[lan.site].listen.port();
        if lan.onboarding_port == https && https != 0 {
            bail!(
                "--lan-http-port {}: the HTTPS port is {https} already; choose another",
                lan.onboarding_port
            );
        }
        Ok(())
    }
}
