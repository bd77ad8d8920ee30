//! A token bucket: at most `burst` events at once, refilled at `per_second`
//! (the classic traffic-shaping bound; Turner, "New directions in
//! communications", IEEE Communications Magazine, 1986). The node meters
//! each member's token pulls with one, so a member cannot make a node read
//! and encode keys as fast as it can send requests.
//!
//! With a burst of 2 and 10 per second, two takes pass at once, the
//! third fails, and one more passes 100 ms later.

use std::time::{Duration, Instant};

/// Tokens refilled continuously at `per_second`, at most `burst` held.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Tokens held, in millitokens (integer arithmetic, no drift).
    milli: u64,
    burst_milli: u64,
    per_second: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        let burst_milli = u64::from(burst) * 1000;
        TokenBucket {
            milli: burst_milli,
            burst_milli,
            per_second: u64::from(per_second),
            last: now,
        }
    }

    /// Takes one token if one is held at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        // Refill in whole milliseconds; the remainder stays in `last`.
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if ms > 0 {
            self.milli = self
                .milli
                .saturating_add(ms.saturating_mul(self.per_second))
                .min(self.burst_milli);
            self.last += Duration::from_millis(ms);
        }
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 10, t0);
        assert_eq!((0..5).filter(|_| b.take(t0)).count(), 3, "the burst");
        // 10 per second: one token per 100 ms, none before.
        assert!(!b.take(t0 + Duration::from_millis(99)));
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(150)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 3);
        // Over 10 s at a steady ask, about 10 per second pass.
        let mut passed = 0;
        for ms in (0..10_000).step_by(10) {
            if b.take(later + Duration::from_millis(ms)) {
                passed += 1;
            }
        }
        assert!((99..=101).contains(&passed), "{passed}");
    }

    #[test]
    fn a_zero_rate_allows_only_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, 0, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0 + Duration::from_secs(3600)));
    }
}
