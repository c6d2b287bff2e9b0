//! The pace of a run's ordinary requests ([`Pacer`]): evenly spaced, and slower when the
//! target shows that its limit is lower than the pace asked for.
//!
//! A run must stay under the target's rate limit without being told it: a server that allows
//! 8 requests a second would otherwise answer most of a 30-a-second run with 429s. So the
//! pace comes down to 90% of a limit the RateLimit headers advertise for a short window, and
//! halves (at most once a second) on every unexpected 429. It never rises above the pace the
//! user or the suite asked for.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The slowest pace a run is brought down to, in requests per second.
pub const MIN_RATE: f64 = 0.5;
/// An advertised limit counts only for windows up to this long: a daily quota says nothing
/// about how fast a short run may go.
const SHORT_WINDOW: Duration = Duration::from_secs(60);
/// The share of an advertised limit the run uses.
const HEADROOM: f64 = 0.9;
/// The pace halves at most once per this, however many 429s one overshoot brings.
const BACKOFF_EVERY: Duration = Duration::from_secs(1);

/// Paces requests evenly at a rate that can only come down.
pub struct Pacer {
    state: Mutex<State>,
}

struct State {
    /// What was asked for (`--rate`, or the suite's `requests_per_second`).
    asked: f64,
    rate: f64,
    limiter: Arc<DefaultDirectRateLimiter>,
    last_cut: Option<Instant>,
}

impl Pacer {
    /// A pacer at `rate` requests per second, one request at a time.
    pub fn new(rate: f64) -> Result<Pacer, String> {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err("the pacing rate must be a positive number".into());
        }
        Ok(Pacer {
            state: Mutex::new(State {
                asked: rate,
                rate,
                limiter: Arc::new(limiter(rate)?),
                last_cut: None,
            }),
        })
    }

    /// Wait until the next request may go.
    pub async fn until_ready(&self) {
        let limiter = Arc::clone(&self.lock().limiter);
        limiter.until_ready().await;
    }

    /// The pace now, and the pace asked for.
    pub fn rates(&self) -> (f64, f64) {
        let state = self.lock();
        (state.rate, state.asked)
    }

    /// The target advertises `limit` requests per `window`: keep under it when the window is
    /// short. Returns the new pace when it changed.
    pub fn respect_advertised(&self, limit: u64, window: Duration) -> Option<f64> {
        if limit == 0 || window.is_zero() || window > SHORT_WINDOW {
            return None;
        }
        let allowed = HEADROOM * limit as f64 / window.as_secs_f64();
        self.slow_to(allowed)
    }

    /// An unexpected 429: halve the pace, at most once a second. Returns the new pace when it
    /// changed.
    pub fn back_off(&self) -> Option<f64> {
        let (rate, recent) = {
            let state = self.lock();
            let recent = state
                .last_cut
                .is_some_and(|at| at.elapsed() < BACKOFF_EVERY);
            (state.rate, recent)
        };
        if recent {
            return None;
        }
        let changed = self.slow_to(rate / 2.0);
        self.lock().last_cut = Some(Instant::now());
        changed
    }

    /// Bring the pace down to `rate` (never below [`MIN_RATE`]) if it is faster.
    fn slow_to(&self, rate: f64) -> Option<f64> {
        let rate = rate.max(MIN_RATE);
        let mut state = self.lock();
        if rate >= state.rate * 0.99 {
            return None;
        }
        let new_limiter = limiter(rate).ok()?;
        state.rate = rate;
        state.limiter = Arc::new(new_limiter);
        Some(rate)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Requests evenly spaced at `rate` per second: one at a time, no burst.
fn limiter(rate: f64) -> Result<DefaultDirectRateLimiter, String> {
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_micros(1));
    let quota = Quota::with_period(period)
        .ok_or("the pacing rate is too high")?
        .allow_burst(std::num::NonZeroU32::MIN);
    Ok(RateLimiter::direct(quota))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advertised_short_limit_brings_the_pace_down() {
        let pacer = Pacer::new(30.0).unwrap();
        assert_eq!(
            pacer.respect_advertised(8, Duration::from_secs(1)),
            Some(7.2)
        );
        assert_eq!(pacer.rates(), (7.2, 30.0));
        // Never up again, and a daily quota is no pace.
        assert_eq!(pacer.respect_advertised(40, Duration::from_secs(1)), None);
        assert_eq!(
            pacer.respect_advertised(10_000, Duration::from_secs(86_400)),
            None
        );
        assert_eq!(pacer.rates().0, 7.2);
    }

    #[test]
    fn a_429_halves_the_pace_once_a_second_down_to_the_floor() {
        let pacer = Pacer::new(4.0).unwrap();
        assert_eq!(pacer.back_off(), Some(2.0));
        // The other 429s of the same overshoot change nothing.
        assert_eq!(pacer.back_off(), None);
        assert_eq!(pacer.rates().0, 2.0);
        assert!(pacer.slow_to(0.01).is_some());
        assert_eq!(pacer.rates().0, MIN_RATE);
    }

    #[test]
    fn a_bad_rate_is_refused() {
        assert!(Pacer::new(0.0).is_err());
        assert!(Pacer::new(f64::NAN).is_err());
    }
}
