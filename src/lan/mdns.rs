//! mDNS (RFC 6762/6763) over the maintained `mdns-sd` crate: answers for `HOSTNAME.local`
//! with the LAN addresses, and announces the site as an `_https._tcp` service, only on the
//! interfaces `--lan` exposes. Networks that isolate clients or filter multicast (guest and
//! corporate Wi-Fi, many mesh systems) drop it: the IP address URL works there.

use anyhow::{Context, Result};
use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

use super::addrs::LanAddr;

const SERVICE_TYPE: &str = "_https._tcp.local.";

/// The running announcement; dropping it says goodbye on the network.
pub(crate) struct Announcer {
    daemon: ServiceDaemon,
    host: String,
    port: u16,
    interfaces: Vec<String>,
    fullname: Option<String>,
}

impl Announcer {
    /// Starts answering for `host.local` on `addrs` (their interfaces only).
    pub(crate) fn start(host: &str, port: u16, addrs: &[LanAddr]) -> Result<Announcer> {
        let daemon = ServiceDaemon::new().context("cannot start mDNS")?;
        daemon
            .disable_interface(IfKind::All)
            .context("cannot choose the mDNS interfaces")?;
        let mut a = Announcer {
            daemon,
            host: host.to_owned(),
            port,
            interfaces: Vec::new(),
            fullname: None,
        };
        a.update(addrs)?;
        Ok(a)
    }

    /// Announces `addrs` instead of the previous ones.
    pub(crate) fn update(&mut self, addrs: &[LanAddr]) -> Result<()> {
        let mut wanted: Vec<String> = addrs.iter().map(|a| a.interface.clone()).collect();
        wanted.dedup();
        for gone in self.interfaces.iter().filter(|i| !wanted.contains(i)) {
            let _ = self.daemon.disable_interface(IfKind::Name(gone.clone()));
        }
        for new in wanted.iter().filter(|i| !self.interfaces.contains(i)) {
            self.daemon
                .enable_interface(IfKind::Name(new.clone()))
                .with_context(|| format!("cannot use mDNS on {new}"))?;
        }
        self.interfaces = wanted;
        if let Some(old) = self.fullname.take() {
            let _ = self.daemon.unregister(&old);
        }
        if addrs.is_empty() {
            return Ok(());
        }
        let ips: Vec<std::net::IpAddr> = addrs.iter().map(|a| a.ip).collect();
        let service = ServiceInfo::new(
            SERVICE_TYPE,
            &format!("candado on {}", self.host),
            &format!("{}.local.", self.host),
            ips.as_slice(),
            self.port,
            [("path", "/")].as_slice(),
        )
        .context("cannot describe the mDNS service")?;
        self.fullname = Some(service.get_fullname().to_owned());
        self.daemon
            .register(service)
            .context("cannot announce over mDNS")?;
        Ok(())
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(name) = self.fullname.take() {
            let _ = self.daemon.unregister(&name);
        }
        let _ = self.daemon.shutdown();
    }
}
