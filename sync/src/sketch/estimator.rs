//! A difference-size estimator that fits in the opening message: sixteen
//! tug-of-war counters, maintained per write.
//!
//! Counter `j` is the sum, over the replica's items, of a sign `±1` drawn
//! from the item's id (Alon, Matias and Szegedy, "The Space Complexity of
//! Approximating the Frequency Moments", STOC 1996: the "tug of war"
//! sketch). Items both replicas hold add the same sign on both sides, so
//! the difference of two replicas' counters is a sum of independent signs
//! over the items of their symmetric difference alone: its square has mean
//! `d`, the number of those items, and the mean of sixteen squares has a
//! relative standard deviation of `sqrt(2/16)`, about 35%. Counters travel
//! modulo 2^12 (24 bytes in all); the difference is read back centred, so
//! it is exact while `|difference| < 2048`, that is for `d` up to about
//! 400,000 items (five standard deviations); beyond, the estimate stays
//! large, which is all the session needs to know there.
//!
//! ```
//! use accordant_sync::sketch::{Estimator, ItemId};
//! let (mut a, mut b) = (Estimator::default(), Estimator::default());
//! for i in 0..10_000u64 {
//!     a.add(ItemId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
//!     b.add(ItemId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
//! }
//! for i in 0..400u64 {
//!     a.add(ItemId(!i));
//! }
//! let d = b.estimate(&a.to_bytes());
//! assert!((100.0..1600.0).contains(&d), "{d}");
//! ```

use super::ItemId;

/// Counters kept.
pub const COUNTERS: usize = 16;

/// Bits of each counter on the wire.
pub const COUNTER_BITS: u32 = 12;

/// Bytes of an estimator on the wire.
pub const ESTIMATOR_BYTES: usize = COUNTERS * COUNTER_BITS as usize / 8;

const MODULUS: i64 = 1 << COUNTER_BITS;

/// Sixteen tug-of-war counters of a set of items (Alon, Matias and
/// Szegedy, STOC 1996).
///
/// Counter `j` sums a sign `±1` drawn from each item's id. Items both sets
/// hold add the same sign on both sides, so the difference of two sets'
/// counters is a sum of independent signs over their symmetric difference
/// alone: its square has mean `d`, the number of items there, and the mean
/// of sixteen squares has a relative standard deviation of about 35%.
/// Counters travel modulo 2^12 ([`to_bytes`](Self::to_bytes), 24 bytes),
/// read back centred: exact while a difference stays under 2,048 in
/// magnitude, that is for `d` up to about 400,000 items.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Estimator {
    counters: [i32; COUNTERS],
}

impl Estimator {
    fn apply(&mut self, id: ItemId, sign: i32) {
        let bits = id.signs();
        for (j, c) in self.counters.iter_mut().enumerate() {
            let s = 2 * i32::from((bits >> j) & 1) - 1;
            *c = c.wrapping_add(sign * s);
        }
    }

    /// Adds an item.
    pub fn add(&mut self, id: ItemId) {
        self.apply(id, 1);
    }

    /// Removes an item added before.
    pub fn remove(&mut self, id: ItemId) {
        self.apply(id, -1);
    }

    /// Removes `old`, added before, and adds `new`, in one pass: counter
    /// `j` moves by `2 (bit_j(new) - bit_j(old))`, the sum of the two
    /// signs.
    pub fn replace(&mut self, old: ItemId, new: ItemId) {
        let (o, n) = (old.signs(), new.signs());
        for (j, c) in self.counters.iter_mut().enumerate() {
            let d = i32::from((n >> j) & 1) - i32::from((o >> j) & 1);
            *c = c.wrapping_add(2 * d);
        }
    }

    /// The wire form: each counter modulo 2^12, two counters in three
    /// bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; ESTIMATOR_BYTES] {
        let mut out = [0u8; ESTIMATOR_BYTES];
        for (pair, bytes) in self.counters.chunks_exact(2).zip(out.chunks_exact_mut(3)) {
            // Truncations intended: the low 12 bits of each counter.
            let (x, y) = (pair[0] as u32 & 0xfff, pair[1] as u32 & 0xfff);
            let w = (x << 12) | y;
            bytes.copy_from_slice(&w.to_be_bytes()[1..]);
        }
        out
    }

    fn unpack(bytes: &[u8; ESTIMATOR_BYTES]) -> [i64; COUNTERS] {
        let mut out = [0i64; COUNTERS];
        for (pair, b) in out.chunks_exact_mut(2).zip(bytes.chunks_exact(3)) {
            let w = u32::from_be_bytes([0, b[0], b[1], b[2]]);
            pair[0] = i64::from(w >> 12);
            pair[1] = i64::from(w & 0xfff);
        }
        out
    }

    /// The expected number of items in the symmetric difference between
    /// this set and the one whose counters are `theirs` (any bytes are
    /// valid counters).
    #[must_use]
    pub fn estimate(&self, theirs: &[u8; ESTIMATOR_BYTES]) -> f64 {
        let theirs = Self::unpack(theirs);
        let sum: f64 = self
            .counters
            .iter()
            .zip(theirs)
            .map(|(&mine, t)| {
                let d = (t - i64::from(mine)).rem_euclid(MODULUS);
                let centred = if d >= MODULUS / 2 { d - MODULUS } else { d };
                (centred * centred) as f64
            })
            .sum();
        sum / COUNTERS as f64
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ids;
    use super::*;

    #[test]
    fn equal_sets_estimate_zero_and_one_item_one() {
        let (mut a, mut b) = (Estimator::default(), Estimator::default());
        for id in ids(1, 5000) {
            a.add(id);
            b.add(id);
        }
        assert_eq!(a.estimate(&b.to_bytes()), 0.0);
        b.add(ItemId(77));
        assert_eq!(a.estimate(&b.to_bytes()), 1.0);
        b.remove(ItemId(77));
        assert_eq!(a, b);
    }

    #[test]
    fn estimates_are_unbiased_with_the_stated_spread() {
        for &d in &[10usize, 100, 1000, 100_000] {
            let trials = 60;
            let mut ratios = Vec::new();
            for t in 0..trials {
                let (mut a, b) = (Estimator::default(), Estimator::default());
                for id in ids(t * 31 + d as u64, d) {
                    a.add(id);
                }
                ratios.push(b.estimate(&a.to_bytes()) / d as f64);
            }
            let mean = ratios.iter().sum::<f64>() / trials as f64;
            let var = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / trials as f64;
            eprintln!("d = {d}: mean ratio {mean:.3}, sd {:.3}", var.sqrt());
            assert!((mean - 1.0).abs() < 0.2, "d = {d}: mean {mean}");
            assert!(var.sqrt() < 0.5, "d = {d}: sd {}", var.sqrt());
        }
    }

    #[test]
    fn wire_form_packs_twelve_bits_per_counter() {
        let e = Estimator {
            counters: [
                -1,
                0,
                1,
                2047,
                -2048,
                4095,
                4096,
                i32::MIN,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                5,
            ],
        };
        let b = e.to_bytes();
        assert_eq!(b.len(), 24);
        let u = Estimator::unpack(&b);
        assert_eq!(&u[..8], &[4095, 0, 1, 2047, 2048, 4095, 0, 0]);
        assert_eq!(u[15], 5);
        // Any bytes are counters: no error path.
        let _ = Estimator::default().estimate(&[0xff; ESTIMATOR_BYTES]);
    }
}
