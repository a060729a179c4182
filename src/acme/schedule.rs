//! When to renew, and how long to wait after a failure. Pure functions of the time they are
//! given, so that the tests can move the clock.

use std::time::{Duration, SystemTime};

use crate::config::defaults;

/// A renewal window suggested by the CA (ACME Renewal Information, RFC 9773 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
}

/// The validity of a stored certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lifetime {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// When to renew: at a point in the CA's window when it offers one (RFC 9773 §4.2: uniformly
/// random within it, `jitter` in [0, 1)), otherwise when a third of the lifetime is left.
pub(crate) fn renew_at(lifetime: Lifetime, ari: Option<Window>, jitter: f64) -> SystemTime {
    if let Some(w) = ari {
        let span = w.end.duration_since(w.start).unwrap_or_default();
        return w.start + span.mul_f64(jitter.clamp(0.0, 1.0));
    }
    let total = lifetime
        .not_after
        .duration_since(lifetime.not_before)
        .unwrap_or_default();
    lifetime.not_after - total / 3
}

/// What the renewal loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Renew,
    WaitUntil(SystemTime),
}

/// A CA window that has already opened means now (that is how a CA asks for an early
/// renewal, after a revocation for instance).
pub(crate) fn next(now: SystemTime, lifetime: Lifetime, ari: Option<Window>, jitter: f64) -> Next {
    if ari.is_some_and(|w| w.start <= now) {
        return Next::Renew;
    }
    match renew_at(lifetime, ari, jitter) {
        at if at <= now || lifetime.not_after <= now => Next::Renew,
        at => Next::WaitUntil(at),
    }
}

/// The wait after `failures` failed attempts in a row (1 or more): doubling from
/// `ACME_RETRY_FIRST` up to `ACME_RETRY_MAX`, spread by ±10% (`jitter` in [0, 1)) so that
/// many sites failing together do not retry together.
pub(crate) fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let base = defaults::ACME_RETRY_FIRST
        .saturating_mul(1 << doublings)
        .min(defaults::ACME_RETRY_MAX);
    base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// A uniformly random number in [0, 1) from `random` (the crypto provider's generator).
pub(crate) fn random_unit(random: &dyn rustls::crypto::SecureRandom) -> f64 {
    let mut bytes = [0u8; 8];
    if random.fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn ninety_days(from: SystemTime) -> Lifetime {
        Lifetime {
            not_before: from,
            not_after: from + 90 * DAY,
        }
    }

    #[test]
    fn without_ari_renewal_starts_when_a_third_of_the_lifetime_is_left() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let l = ninety_days(t0);
        assert_eq!(renew_at(l, None, 0.7), t0 + 60 * DAY);
        assert_eq!(
            next(t0 + 59 * DAY, l, None, 0.0),
            Next::WaitUntil(t0 + 60 * DAY)
        );
        assert_eq!(next(t0 + 60 * DAY, l, None, 0.0), Next::Renew);
        assert_eq!(next(t0 + 100 * DAY, l, None, 0.0), Next::Renew);
    }

    #[test]
    fn a_short_lived_certificate_renews_after_two_thirds_of_its_life() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let l = Lifetime {
            not_before: t0,
            not_after: t0 + Duration::from_secs(30),
        };
        assert_eq!(renew_at(l, None, 0.0), t0 + Duration::from_secs(20));
    }

    #[test]
    fn the_ari_window_wins_and_the_point_in_it_is_spread_by_jitter() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let l = ninety_days(t0);
        let w = Window {
            start: t0 + 10 * DAY,
            end: t0 + 12 * DAY,
        };
        assert_eq!(renew_at(l, Some(w), 0.0), w.start);
        assert_eq!(renew_at(l, Some(w), 0.5), t0 + 11 * DAY);
        assert!(renew_at(l, Some(w), 0.999_999) < w.end);
        // Before the window: wait for the chosen point; once it has opened: now.
        assert_eq!(
            next(t0 + 9 * DAY, l, Some(w), 0.5),
            Next::WaitUntil(t0 + 11 * DAY)
        );
        assert_eq!(next(t0 + 10 * DAY, l, Some(w), 0.9), Next::Renew);
        // A window ahead of the lifetime rule still wins (the CA knows better).
        let late = Window {
            start: t0 + 70 * DAY,
            end: t0 + 71 * DAY,
        };
        assert_eq!(
            next(t0 + 65 * DAY, l, Some(late), 0.0),
            Next::WaitUntil(late.start)
        );
        // A window in the past of a backwards one never panics.
        let backwards = Window {
            start: w.end,
            end: w.start,
        };
        assert_eq!(renew_at(l, Some(backwards), 0.5), w.end);
    }

    #[test]
    fn failures_back_off_doubling_within_bounds() {
        let first = defaults::ACME_RETRY_FIRST;
        assert_eq!(retry_delay(1, 0.5), first);
        assert_eq!(retry_delay(2, 0.5), first * 2);
        assert_eq!(retry_delay(3, 0.5), first * 4);
        assert_eq!(retry_delay(1000, 0.5), defaults::ACME_RETRY_MAX);
        for failures in 1..40 {
            for jitter in [0.0, 0.25, 0.999] {
                let d = retry_delay(failures, jitter);
                assert!(d >= first.mul_f64(0.9), "{failures} {jitter} {d:?}");
                assert!(
                    d <= defaults::ACME_RETRY_MAX.mul_f64(1.1),
                    "{failures} {d:?}"
                );
            }
        }
    }

    #[test]
    fn five_failures_fit_in_the_first_hour_as_lets_encrypt_allows() {
        // Worst case: jitter at its low end makes retries come soonest.
        let mut t = Duration::ZERO;
        let mut attempts_in_first_hour = 1; // the first attempt, at 0
        for failures in 1.. {
            t += retry_delay(failures, 0.0);
            if t >= Duration::from_secs(3600) {
                break;
            }
            attempts_in_first_hour += 1;
        }
        assert!(attempts_in_first_hour <= 5, "{attempts_in_first_hour}");
    }

    #[test]
    fn random_units_stay_in_range() {
        for _ in 0..1000 {
            let r = random_unit(crate::tls::provider().secure_random);
            assert!((0.0..1.0).contains(&r));
        }
    }
}
