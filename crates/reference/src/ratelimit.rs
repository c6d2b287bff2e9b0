//! Per-API-key rate limits: a token bucket (the default) or, under the
//! `sliding-window` variant, a sliding window of the last second's requests.
//!
//! Hand-written rather than `governor` because the response headers need the
//! exact number of requests left and the time until the limit is fully
//! restored, which a GCRA limiter does not expose. Only keys that resolve to a
//! tenant get state, so the maps are bounded by the number of configured keys.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::RateLimitConfig;

/// Upper bound for every "seconds until" value, so a zero refill rate cannot
/// produce absurd headers.
const MAX_WAIT_SECS: u64 = 86_400;

/// Requests per window of the `sliding-window` variant.
pub(crate) const SLIDING_LIMIT: usize = 8;

/// The window of the `sliding-window` variant.
pub(crate) const SLIDING_WINDOW: Duration = Duration::from_secs(1);

/// What one request did to its key's limit, and the numbers the headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The request may proceed.
    pub allowed: bool,
    /// Whole requests left after this request.
    pub remaining: u64,
    /// Exact time until one more request would be allowed (zero when one is).
    pub retry_in: Duration,
    /// Exact time until the limit is fully restored.
    pub reset_in: Duration,
    /// This key has been refused at least once since the server started.
    pub ever_limited: bool,
    /// How many requests in a row were refused, this one included (0 when allowed).
    pub limited_streak: u64,
}

impl Decision {
    /// Whole seconds until one request is allowed, rounded up (at least 1 when
    /// there is anything to wait for), as `Retry-After` sends it.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        if self.retry_in.is_zero() {
            0
        } else {
            secs_ceil(self.retry_in.as_secs_f64()).max(1)
        }
    }

    /// Whole seconds until the limit is fully restored, rounded up.
    pub(crate) fn reset_secs(&self) -> u64 {
        secs_ceil(self.reset_in.as_secs_f64())
    }
}

/// Refusal bookkeeping shared by both limiters.
#[derive(Debug, Default)]
struct Streak {
    ever_limited: bool,
    limited_streak: u64,
}

impl Streak {
    fn record(&mut self, allowed: bool) {
        if allowed {
            self.limited_streak = 0;
        } else {
            self.ever_limited = true;
            self.limited_streak += 1;
        }
    }
}

/// The server's rate limiter, one of two algorithms.
#[derive(Debug)]
pub(crate) enum Limiter {
    Bucket(Buckets),
    Window(Windows),
}

impl Limiter {
    /// Counts `consume` requests of `key` at `now` (a peek when false).
    pub(crate) fn take(&mut self, key: &str, now: Instant, consume: bool) -> Decision {
        match self {
            Limiter::Bucket(b) => b.take(key, now, consume),
            Limiter::Window(w) => w.take(key, now, consume),
        }
    }

    /// Requests allowed per window (the `q` of `RateLimit-Policy`).
    pub(crate) fn limit(&self) -> u64 {
        match self {
            Limiter::Bucket(b) => b.capacity as u64,
            Limiter::Window(w) => w.limit as u64,
        }
    }

    /// The window, in whole seconds, over which [`Limiter::limit`] requests
    /// are allowed (what the IETF draft's `w` parameter reports).
    pub(crate) fn window_secs(&self) -> u64 {
        match self {
            Limiter::Bucket(b) => b.window_secs(),
            Limiter::Window(w) => secs_ceil(w.window.as_secs_f64()).max(1),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    streak: Streak,
}

/// Token buckets, keyed by API key.
#[derive(Debug)]
pub(crate) struct Buckets {
    capacity: f64,
    rate: f64,
    map: HashMap<String, Bucket>,
}

impl Buckets {
    pub(crate) fn new(config: &RateLimitConfig) -> Buckets {
        // A zero, negative or NaN rate means "no refill": keep the arithmetic
        // finite and let MAX_WAIT_SECS cap the waits.
        let rate = if config.refill_per_second.is_finite() && config.refill_per_second > 0.0 {
            config.refill_per_second
        } else {
            1e-9
        };
        Buckets {
            capacity: f64::from(config.capacity),
            rate,
            map: HashMap::new(),
        }
    }

    /// The window, in whole seconds, over which `capacity` requests are allowed.
    pub(crate) fn window_secs(&self) -> u64 {
        secs_ceil(self.capacity / self.rate).max(1)
    }

    /// Refill the key's bucket and, when `consume`, take one token from it.
    pub(crate) fn take(&mut self, key: &str, now: Instant, consume: bool) -> Decision {
        let capacity = self.capacity;
        let rate = self.rate;
        let bucket = self.map.entry(key.to_owned()).or_insert(Bucket {
            tokens: capacity,
            last: now,
            streak: Streak::default(),
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;

        let allowed = !consume || bucket.tokens >= 1.0;
        if consume {
            if allowed {
                bucket.tokens -= 1.0;
            }
            bucket.streak.record(allowed);
        }
        let tokens = bucket.tokens.max(0.0);
        let retry_in = if tokens >= 1.0 {
            Duration::ZERO
        } else {
            wait((1.0 - tokens) / rate)
        };
        Decision {
            allowed,
            remaining: tokens.floor() as u64,
            retry_in,
            reset_in: wait((capacity - tokens) / rate),
            ever_limited: bucket.streak.ever_limited,
            limited_streak: bucket.streak.limited_streak,
        }
    }
}

#[derive(Debug, Default)]
struct Window {
    /// When the requests still in the window were allowed, oldest first.
    allowed_at: VecDeque<Instant>,
    streak: Streak,
}

/// Sliding windows, keyed by API key: at most `limit` allowed requests in
/// any `window`.
#[derive(Debug)]
pub(crate) struct Windows {
    limit: usize,
    window: Duration,
    map: HashMap<String, Window>,
}

impl Windows {
    pub(crate) fn new(limit: usize, window: Duration) -> Windows {
        Windows {
            limit,
            window,
            map: HashMap::new(),
        }
    }

    /// Drop requests that left the window and, when `consume`, count one.
    pub(crate) fn take(&mut self, key: &str, now: Instant, consume: bool) -> Decision {
        let window = self.window;
        let entry = self.map.entry(key.to_owned()).or_default();
        let leaves = |at: Instant| (at + window).saturating_duration_since(now);
        while entry
            .allowed_at
            .front()
            .is_some_and(|&at| leaves(at).is_zero())
        {
            entry.allowed_at.pop_front();
        }
        let allowed = !consume || entry.allowed_at.len() < self.limit;
        if consume {
            if allowed {
                entry.allowed_at.push_back(now);
            }
            entry.streak.record(allowed);
        }
        let used = entry.allowed_at.len();
        // A request is allowed again when the oldest one leaves the window,
        // and the whole limit is back when the newest one does.
        let retry_in = if used < self.limit {
            Duration::ZERO
        } else {
            entry
                .allowed_at
                .front()
                .map_or(Duration::ZERO, |&at| leaves(at))
        };
        let reset_in = entry
            .allowed_at
            .back()
            .map_or(Duration::ZERO, |&at| leaves(at));
        Decision {
            allowed,
            remaining: self.limit.saturating_sub(used) as u64,
            retry_in,
            reset_in,
            ever_limited: entry.streak.ever_limited,
            limited_streak: entry.streak.limited_streak,
        }
    }
}

/// `secs` as a duration, capped at [`MAX_WAIT_SECS`].
fn wait(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(secs.min(MAX_WAIT_SECS as f64))
    }
}

fn secs_ceil(secs: f64) -> u64 {
    if secs.is_nan() || secs <= 0.0 {
        0
    } else {
        // Shave float noise (e.g. 1.0000000002) so exact refills stay exact.
        let rounded = (secs - 1e-9).ceil();
        if rounded >= MAX_WAIT_SECS as f64 {
            MAX_WAIT_SECS
        } else {
            rounded.max(0.0) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn buckets(capacity: u32, refill: f64) -> Buckets {
        Buckets::new(&RateLimitConfig {
            capacity,
            refill_per_second: refill,
        })
    }

    #[test]
    fn empties_then_refills() {
        let mut b = buckets(3, 1.0);
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            let d = b.take("k", t0, true);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = b.take("k", t0, true);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs(), 1);
        assert_eq!(d.reset_secs(), 3);
        assert!(d.ever_limited);
        assert_eq!(d.limited_streak, 1);
        assert_eq!(b.take("k", t0, true).limited_streak, 2);
        // Another key has its own bucket.
        assert!(b.take("other", t0, true).allowed);
        // One second later one token is back.
        let d = b.take("k", t0 + Duration::from_secs(1), true);
        assert!(d.allowed);
        assert_eq!(d.limited_streak, 0);
        assert!(d.ever_limited);
    }

    #[test]
    fn zero_rate_and_capacity_stay_finite() {
        let mut b = buckets(0, 0.0);
        let d = b.take("k", Instant::now(), true);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs(), MAX_WAIT_SECS);
        assert_eq!(b.window_secs(), 1);
    }

    #[test]
    fn sliding_window_frees_a_slot_when_the_oldest_leaves() {
        let mut w = Windows::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        for (i, left) in [2, 1, 0].into_iter().enumerate() {
            let d = w.take("k", t0 + ms(100 * i as u64), true);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = w.take("k", t0 + ms(250), true);
        assert!(!d.allowed);
        assert_eq!(d.retry_in, ms(750), "the first request leaves at t0 + 1 s");
        assert_eq!(
            d.reset_in,
            ms(950),
            "the third request leaves at t0 + 1.2 s"
        );
        assert_eq!((d.retry_after_secs(), d.reset_secs()), (1, 1));
        assert_eq!(d.limited_streak, 1);
        // Just before the oldest leaves: still refused; at that instant: allowed.
        assert!(!w.take("k", t0 + ms(999), true).allowed);
        let d = w.take("k", t0 + ms(1000), true);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.limited_streak), (0, 0));
        assert!(d.ever_limited);
        // Another key has its own window.
        assert!(w.take("other", t0, true).allowed);
        let limiter = Limiter::Window(w);
        assert_eq!((limiter.limit(), limiter.window_secs()), (3, 1));
    }

    #[test]
    fn peek_does_not_consume() {
        let mut b = buckets(2, 1.0);
        let t0 = Instant::now();
        for _ in 0..5 {
            let d = b.take("k", t0, false);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2);
        }
    }
}
