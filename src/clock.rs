//! The kernel's coarse monotonic clock, for the stamps taken on every request and frame.
//!
//! `CLOCK_MONOTONIC_COARSE` is the time of the kernel's last tick: a few milliseconds behind
//! `Instant::now()` and several times cheaper to read (no clock source read, through the
//! vDSO). Clock reads were 2–3 % of a small request's CPU (bench/README.md). Everything that
//! reads it here compares with timeouts of half a second and more. The coarse wall clock
//! gives the Date that kept files' HTTP/2 answers carry, to the second.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use http::HeaderValue;

use hyper::rt::{Sleep, Timer};
use hyper_util::rt::TokioTimer;

/// The coarse clock since the machine started.
fn coarse() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Milliseconds on the coarse clock.
pub(crate) fn coarse_ms() -> u64 {
    coarse().as_millis() as u64
}

/// An `Instant` read from the coarse clock: within one kernel tick of `Instant::now()`.
pub(crate) fn coarse_instant() -> Instant {
    // Both clocks count from the same boot; one pair read together lines them up.
    static BASE: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (at, then) = *BASE.get_or_init(|| (Instant::now(), coarse()));
    at + coarse().saturating_sub(then)
}

/// The `Date` header value for now (RFC 9110 §6.6.1), made once a second on each thread from
/// the coarse wall clock; a clone shares its bytes. hyper makes its own the same way, but its
/// HTTP/2 side inserts it after the response is made, which grows a cloned head.
pub(crate) fn http_date() -> HeaderValue {
    thread_local!(static DATE: RefCell<Option<(i64, HeaderValue)>> = const { RefCell::new(None) });
    let secs = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse).tv_sec;
    DATE.with(|date| {
        let mut date = date.borrow_mut();
        match &*date {
            Some((at, value)) if *at == secs => value.clone(),
            _ => {
                let then = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
                let value = HeaderValue::from_str(&httpdate::fmt_http_date(then))
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                *date = Some((secs, value.clone()));
                value
            }
        }
    })
}

/// hyper's timer with the coarse clock for `now()`: its deadlines are compared only with
/// timeouts of seconds. Sleeps are tokio's, as they were.
#[derive(Clone, Debug, Default)]
pub(crate) struct CoarseTimer(TokioTimer);

impl Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.0.sleep(duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.0.sleep_until(deadline)
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        self.0.reset(sleep, new_deadline)
    }

    fn now(&self) -> Instant {
        coarse_instant()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_instant_stays_within_a_tick_of_the_precise_one_and_never_goes_back() {
        let mut last = coarse_instant();
        for _ in 0..1000 {
            let (before, coarse, after) = (Instant::now(), coarse_instant(), Instant::now());
            // A tick is at most 10 ms (HZ=100), and the coarse instant is within one of the
            // precise clock either way: its lag, or the lag it had when the two were lined up.
            assert!(
                coarse + Duration::from_millis(20) >= before,
                "{coarse:?} lags {before:?}"
            );
            assert!(
                coarse <= after + Duration::from_millis(20),
                "{coarse:?} leads {after:?}"
            );
            assert!(coarse >= last, "went back from {last:?} to {coarse:?}");
            last = coarse;
        }
    }

    #[test]
    fn the_date_is_the_wall_clock_second_in_http_form() {
        let before = std::time::SystemTime::now();
        let date = http_date();
        let parsed =
            httpdate::parse_http_date(date.to_str().expect("ascii")).expect("an HTTP date");
        // The coarse clock is at most a tick behind; the date drops the fraction of a second.
        let behind = before.duration_since(parsed).unwrap_or_default();
        assert!(
            behind < Duration::from_millis(1100),
            "{date:?} is {behind:?} behind"
        );
        assert!(parsed <= std::time::SystemTime::now(), "{date:?} is ahead");
        let again = httpdate::parse_http_date(http_date().to_str().expect("ascii")).expect("date");
        assert!(
            again == parsed || again == parsed + Duration::from_secs(1),
            "{again:?}"
        );
    }

    #[test]
    fn the_timer_sleeps_for_as_long_as_asked() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let timer = CoarseTimer::default();
            let started = Instant::now();
            timer.sleep(Duration::from_millis(50)).await;
            assert!(started.elapsed() >= Duration::from_millis(50));
            let mut sleep = timer.sleep_until(Instant::now() + Duration::from_secs(60));
            timer.reset(&mut sleep, Instant::now() + Duration::from_millis(20));
            tokio::time::timeout(Duration::from_secs(5), sleep)
                .await
                .expect("a reset sleep ends at its new deadline");
        });
    }
}
