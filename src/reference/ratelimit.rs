//! Per-API-key token buckets.
//!
//! Hand-written rather than `governor` because the response headers need the
//! exact number of tokens left and the time until the bucket is full again,
//! which a GCRA limiter does not expose. Only keys that resolve to a tenant get
//! a bucket, so the map is bounded by the number of configured keys.

use std::collections::HashMap;
use std::time::Instant;

use super::RateLimitConfig;

/// Upper bound for every "seconds until" value, so a zero refill rate cannot
/// produce absurd headers.
const MAX_WAIT_SECS: u64 = 86_400;

/// What one request did to its bucket, and the numbers the headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// The request may proceed.
    pub allowed: bool,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Whole seconds until one token is available (at least 1 when limited).
    pub retry_after_secs: u64,
    /// Whole seconds until the bucket is full again.
    pub reset_secs: u64,
    /// This key has been refused at least once since the server started.
    pub ever_limited: bool,
    /// How many requests in a row were refused, this one included (0 when allowed).
    pub limited_streak: u64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    ever_limited: bool,
    limited_streak: u64,
}

/// All buckets, keyed by API key.
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

    /// The window, in whole seconds, over which `capacity` requests are allowed
    /// (what the IETF draft's `w` parameter reports).
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
            ever_limited: false,
            limited_streak: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.last = now;

        let allowed = if !consume {
            true
        } else if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.limited_streak = 0;
            true
        } else {
            bucket.ever_limited = true;
            bucket.limited_streak += 1;
            false
        };
        let tokens = bucket.tokens.max(0.0);
        let retry_after_secs = if tokens >= 1.0 {
            0
        } else {
            secs_ceil((1.0 - tokens) / rate).max(1)
        };
        Decision {
            allowed,
            remaining: tokens.floor() as u64,
            retry_after_secs,
            reset_secs: secs_ceil((capacity - tokens) / rate),
            ever_limited: bucket.ever_limited,
            limited_streak: bucket.limited_streak,
        }
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
        assert_eq!(d.retry_after_secs, 1);
        assert_eq!(d.reset_secs, 3);
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
        assert_eq!(d.retry_after_secs, MAX_WAIT_SECS);
        assert_eq!(b.window_secs(), 1);
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
