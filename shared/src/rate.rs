//! Token buckets: each player's inputs per second, each address's connections per
//! second at a door. A [`Rate`] says how fast buckets refill and how much they hold; a
//! [`TokenBucket`] is just its tokens and when it last refilled, so a door can keep one
//! per address cheaply.

use std::time::Instant;

/// How fast a bucket refills, and how many tokens it holds at most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
}

impl Rate {
    /// `per_sec` tokens a second, at most `burst` saved up.
    pub const fn new(per_sec: f64, burst: f64) -> Self {
        Self { per_sec, burst }
    }

    /// `factor` times as fast, holding `factor` times as much.
    pub fn times(self, factor: f64) -> Self {
        Self { per_sec: self.per_sec * factor, burst: self.burst * factor }
    }

    /// A full bucket, as one never used.
    pub fn full_bucket(&self, now: Instant) -> TokenBucket {
        TokenBucket { tokens: self.burst, last: now }
    }
}

#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Takes one token if there is one, refilling first at `rate` for the time since
    /// the last call.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> bool {
        self.take_many(rate, now, 1)
    }

    /// Takes `count` tokens if there are as many, refilling first as [`Self::take`]
    /// does; none if there are fewer.
    pub fn take_many(&mut self, rate: &Rate, now: Instant, count: u32) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * rate.per_sec;
        self.tokens = (self.tokens + refill).min(rate.burst);
        self.last = now.max(self.last);
        let count = f64::from(count);
        if self.tokens >= count {
            self.tokens -= count;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let rate = Rate::new(2.0, 10.0);
        let start = Instant::now();
        let mut bucket = rate.full_bucket(start);
        assert!((0..10).all(|_| bucket.take(&rate, start)));
        assert!(!bucket.take(&rate, start), "the burst is spent");
        let later = start + Duration::from_millis(500);
        assert!(bucket.take(&rate, later), "half a second at 2 a second is one token");
        assert!(!bucket.take(&rate, later));
        let much_later = later + Duration::from_secs(3600);
        assert_eq!((0..20).filter(|_| bucket.take(&rate, much_later)).count(), 10, "never more than the burst");
    }
}
