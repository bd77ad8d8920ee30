//! Sets of counters as sorted, disjoint, non-adjacent inclusive ranges: the
//! building block of a [`Frontier`](super::Frontier).
//!
//! A replica's dots `1..=n` are the single range `[1, n]`; a count `n` is
//! the same range (a count is "every unit up to `n`"). Only a replica whose
//! dots arrived out of order, or whose dots were partly removed, needs more
//! than one range.
//!
//! ```
//! use accordant_sync::token::Spans;
//! let mut s = Spans::new();
//! for n in [1, 2, 3, 7] {
//!     s.insert(n, n);
//! }
//! assert_eq!(s.ranges(), &[(1, 3), (7, 7)]);
//! assert_eq!(s.missing_from(&Spans::up_to(5)), 1); // 7 is not in 1..=5
//! ```

use smallvec::SmallVec;

/// A set of `u64` counters (see the [module docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Spans(SmallVec<[(u64, u64); 1]>);

impl Spans {
    /// The empty set.
    pub fn new() -> Self {
        Spans(SmallVec::new())
    }

    /// `1..=n` (empty for 0).
    pub fn up_to(n: u64) -> Self {
        let mut s = Spans::new();
        if n > 0 {
            s.0.push((1, n));
        }
        s
    }

    /// The ranges, sorted, disjoint and non-adjacent.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The largest counter (0 if empty).
    pub fn max(&self) -> u64 {
        self.0.last().map_or(0, |r| r.1)
    }

    /// How many counters the set holds.
    pub fn count(&self) -> u128 {
        self.0.iter().map(|&(a, b)| u128::from(b - a) + 1).sum()
    }

    /// Adds `start..=end` (ignored if `start > end`).
    pub fn insert(&mut self, start: u64, end: u64) {
        if start > end {
            return;
        }
        // Fast path: appending at the end, as sorted inserts do.
        if let Some(last) = self.0.last_mut() {
            if start > last.1 && start - last.1 > 1 {
                self.0.push((start, end));
                return;
            }
            if start >= last.0 {
                last.1 = last.1.max(end);
                return;
            }
        } else {
            self.0.push((start, end));
            return;
        }
        let mut out: SmallVec<[(u64, u64); 1]> = SmallVec::with_capacity(self.0.len() + 1);
        let mut new = (start, end);
        let mut placed = false;
        for &(a, b) in &self.0 {
            if b.saturating_add(1) < new.0 {
                out.push((a, b));
            } else if new.1.saturating_add(1) < a {
                if !placed {
                    out.push(new);
                    placed = true;
                }
                out.push((a, b));
            } else {
                new = (new.0.min(a), new.1.max(b));
            }
        }
        if !placed {
            out.push(new);
        }
        self.0 = out;
    }

    /// Whether `n` is in the set.
    pub fn contains(&self, n: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 < n);
        i < self.0.len() && self.0[i].0 <= n
    }

    /// The union of both sets.
    pub fn union(&self, other: &Spans) -> Spans {
        let mut s = self.clone();
        for &(a, b) in &other.0 {
            s.insert(a, b);
        }
        s
    }

    /// The intersection of both sets.
    pub fn intersection(&self, other: &Spans) -> Spans {
        let mut out = Spans::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = self.0[i];
            let (c, d) = other.0[j];
            let (lo, hi) = (a.max(c), b.min(d));
            if lo <= hi {
                out.0.push((lo, hi));
            }
            if b < d {
                i += 1;
            } else {
                j += 1;
            }
        }
        out
    }

    /// How many counters of `self` are missing from `other`
    /// (`|self \ other|`), saturated to `u64`.
    pub fn missing_from(&self, other: &Spans) -> u64 {
        let both = self.intersection(other).count();
        u64::try_from(self.count() - both).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &Spans) -> Vec<u64> {
        s.ranges().iter().flat_map(|&(a, b)| a..=b).collect()
    }

    fn from(v: &[u64]) -> Spans {
        let mut s = Spans::new();
        for &n in v {
            s.insert(n, n);
        }
        s
    }

    #[test]
    fn set_operations_agree_with_a_naive_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % 24 + 1
        };
        for _ in 0..500 {
            let a: Vec<u64> = (0..next() % 12).map(|_| next()).collect();
            let b: Vec<u64> = (0..next() % 12).map(|_| next()).collect();
            let (sa, sb) = (from(&a), from(&b));
            let set = |v: &[u64]| v.iter().copied().collect::<std::collections::BTreeSet<_>>();
            let (ma, mb) = (set(&a), set(&b));
            assert_eq!(naive(&sa), ma.iter().copied().collect::<Vec<_>>());
            // Normalised: no two ranges touch.
            for w in sa.ranges().windows(2) {
                assert!(w[0].1 + 1 < w[1].0, "{:?}", sa);
            }
            assert_eq!(
                naive(&sa.union(&sb)),
                ma.union(&mb).copied().collect::<Vec<_>>()
            );
            assert_eq!(
                naive(&sa.intersection(&sb)),
                ma.intersection(&mb).copied().collect::<Vec<_>>()
            );
            assert_eq!(sa.missing_from(&sb), ma.difference(&mb).count() as u64);
            for n in 0..26 {
                assert_eq!(sa.contains(n), ma.contains(&n));
            }
            // Ranges inserted out of order merge as the model says.
            let mut r = Spans::new();
            r.insert(10, 12);
            r.insert(1, 3);
            r.insert(4, 9);
            assert_eq!(r.ranges(), &[(1, 12)]);
        }
    }
}
