//! Tells the service manager what the server is doing (systemd's `Type=notify`, sd_notify(3)):
//! ready once every listener is bound and every certificate loaded, reloading around a
//! SIGHUP, stopping on SIGTERM, and a one-line status (`systemctl status` shows it). Outside
//! systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::time::SystemTime;

use sd_notify::NotifyState;

use crate::certs::expiry::Served;

/// Startup (or a reload) is done: new connections get the current configuration.
pub(super) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts. systemd ≥ 253 pairs RELOADING=1 with the monotonic time of the request
/// and waits for the READY=1 that follows.
pub(super) fn reloading(why: &str) {
    let status = format!("reloading: {why}");
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status(&status)]),
        Err(e) => {
            tracing::debug!("cannot read the monotonic clock ({e}): RELOADING=1 sent without it");
            send(&[NotifyState::Reloading, NotifyState::Status(&status)]);
        }
    }
}

/// Shutdown starts: no new connections, requests in flight finish.
pub(super) fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing requests in flight"),
    ]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
    }
}

/// `serving 2 sites, 1 tunnel; 3 certificates, the first to expire: localhost in 89 days`.
pub(super) fn status(sites: usize, tunnels: usize, served: &[Served], now: SystemTime) -> String {
    let mut what = vec![plural(sites, "site")];
    if tunnels > 0 {
        what.push(plural(tunnels, "tunnel"));
    }
    let certs = match served.iter().min_by_key(|s| s.not_after) {
        None => "no certificate loaded yet".to_owned(),
        Some(first) => {
            let left = match first.not_after.duration_since(now) {
                Ok(d) => format!("in {} days", d.as_secs() / 86_400),
                Err(_) => "already expired".to_owned(),
            };
            format!(
                "{}, the first to expire: {} {left}",
                plural(served.len(), "certificate"),
                first.site
            )
        }
    };
    format!("serving {}; {certs}", what.join(", "))
}

fn plural(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn status_names_the_certificate_that_expires_first() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let served = [
            Served {
                site: "a.test".into(),
                not_after: now + Duration::from_secs(90 * 86_400),
            },
            Served {
                site: "b.test".into(),
                not_after: now + Duration::from_secs(7 * 86_400 + 5),
            },
        ];
        assert_eq!(
            status(2, 1, &served, now),
            "serving 2 sites, 1 tunnel; 2 certificates, the first to expire: b.test in 7 days"
        );
    }

    #[test]
    fn status_says_when_no_certificate_is_loaded_yet() {
        assert_eq!(
            status(1, 0, &[], SystemTime::UNIX_EPOCH),
            "serving 1 site; no certificate loaded yet"
        );
    }
}
