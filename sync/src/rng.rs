//! A small seeded pseudo-random generator for the sans-IO state machines
//! and the simulator: SplitMix64 (Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014).
//!
//! Randomness here only spreads retries and ticks apart and breaks ties;
//! nothing depends on it being unpredictable. It is passed in as a seed, so
//! a run is reproducible from its seed (quinn-proto's rule: no global RNG
//! inside a state machine), and no RNG crate's types appear in this crate's
//! API.

/// SplitMix64: a 64-bit state advanced by a Weyl sequence and mixed by a
/// variant of the MurmurHash3 finaliser. Passes BigCrush; period 2^64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from `seed` (any value, zero included).
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..n` (`0` when `n` is 0), without modulo bias:
    /// Lemire's multiply-shift with rejection ("Fast random integer
    /// generation in an interval", ACM TOMACS 2019).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// A uniform value in `lo..=hi` (`lo` if `hi < lo`).
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A uniform `f64` in `[0, 1)` (53 random bits).
    #[cfg(any(feature = "sim", feature = "tokio", test))]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_spread() {
        let (mut a, mut b) = (SplitMix64::new(42), SplitMix64::new(42));
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(SplitMix64::new(43).next_u64(), xs[0]);
        // Ten buckets of 10 000 draws each stay within 5% of their mean.
        let mut r = SplitMix64::new(7);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            buckets[r.below(10) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&c| (9_500..=10_500).contains(&c)),
            "{buckets:?}"
        );
        for _ in 0..1000 {
            let x = r.between(5, 9);
            assert!((5..=9).contains(&x));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.between(3, 3), 3);
        let _ = r.between(0, u64::MAX);
    }
}
