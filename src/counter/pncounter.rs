//! `PNCounter`: a counter that goes up and down.
//!
//! Two grow-only counters, increments `P` and decrements `N`; the value is
//! `P - N` (Shapiro et al., INRIA RR-7506, 2011, §3.1.2). Each replica's entry
//! on the wire holds both of its counts, so its id is written once.
//!
//! ```
//! use accordant::{Lattice, PNCounter, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = PNCounter::new();
//! let mut b = PNCounter::new();
//! let d1 = a.add(eu, 10).unwrap();
//! let d2 = b.add(us, -3).unwrap();
//! a.join(&d2);
//! b.join(&d1);
//! assert_eq!(a.value(), 7);
//! assert_eq!(a, b);
//! ```

use crate::codec::{serde_via_wire, strictly_sorted, Budget, Canonical, SeqVec};
use crate::counter::GCounter;
use crate::error::{DecodeError, OverflowError};
use crate::lattice::{Decompose, Lattice};
use crate::replica::ReplicaId;

/// A positive-negative counter.
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct PNCounter {
    p: GCounter,
    n: GCounter,
}

impl PNCounter {
    /// The zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` (negative to subtract) at `replica`; returns the delta.
    ///
    /// Checked: fails with [`OverflowError::Counter`], changing nothing, if
    /// the increments or the decrements would exceed `u64::MAX` in total.
    #[must_use = "the delta is what other replicas need"]
    pub fn add(&mut self, replica: ReplicaId, amount: i64) -> Result<Self, OverflowError> {
        let magnitude = amount.unsigned_abs();
        let mut d = PNCounter::new();
        if amount >= 0 {
            d.p = self.p.increment(replica, magnitude)?;
        } else {
            d.n = self.n.increment(replica, magnitude)?;
        }
        Ok(d)
    }

    /// Adds `amount` at `replica`; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, OverflowError> {
        Ok(PNCounter {
            p: self.p.increment(replica, amount)?,
            n: GCounter::new(),
        })
    }

    /// Subtracts `amount` at `replica`; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn decrement(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, OverflowError> {
        Ok(PNCounter {
            p: GCounter::new(),
            n: self.n.increment(replica, amount)?,
        })
    }

    /// The exact value `P - N` (an `i128` cannot overflow here).
    pub fn value(&self) -> i128 {
        // Each of P and N is a sum of u64 entries; their u128 sums fit in i128
        // for any number of replicas below 2^63.
        self.p.value_u128() as i128 - self.n.value_u128() as i128
    }

    /// The increments.
    pub fn increments(&self) -> &GCounter {
        &self.p
    }

    /// The decrements.
    pub fn decrements(&self) -> &GCounter {
        &self.n
    }
}

impl Lattice for PNCounter {
    fn join(&mut self, other: &Self) {
        self.p.join(&other.p);
        self.n.join(&other.n);
    }
}

impl Decompose for PNCounter {
    fn decompose(&self) -> Vec<Self> {
        let p = self.p.decompose().into_iter().map(|p| PNCounter {
            p,
            n: GCounter::new(),
        });
        let n = self.n.decompose().into_iter().map(|n| PNCounter {
            p: GCounter::new(),
            n,
        });
        p.chain(n).collect()
    }

    fn delta(&self, other: &Self) -> Self {
        PNCounter {
            p: self.p.delta(&other.p),
            n: self.n.delta(&other.n),
        }
    }
}

/// The value.
impl core::fmt::Display for PNCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.value())
    }
}

impl Canonical for PNCounter {
    /// `(replica, increments, decrements)` sorted by replica, never both zero.
    type Wire = SeqVec<(ReplicaId, u64, u64)>;

    fn to_wire(&self) -> Self::Wire {
        let mut out = Vec::new();
        let (mut p, mut n) = (self.p.iter().peekable(), self.n.iter().peekable());
        loop {
            let e = match (p.peek().copied(), n.peek().copied()) {
                (None, None) => break,
                (Some(a), Some(b)) if a.0 == b.0 => {
                    p.next();
                    n.next();
                    (a.0, a.1, b.1)
                }
                (Some(a), Some(b)) if a.0 < b.0 => {
                    p.next();
                    (a.0, a.1, 0)
                }
                (Some(a), None) => {
                    p.next();
                    (a.0, a.1, 0)
                }
                (_, Some(b)) => {
                    n.next();
                    (b.0, 0, b.1)
                }
            };
            out.push(e);
        }
        SeqVec(out)
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !strictly_sorted(&wire.0, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("counter replicas not sorted"));
        }
        if wire.0.iter().any(|(_, p, n)| *p == 0 && *n == 0) {
            return Err(DecodeError::NonCanonical("zero counter entry"));
        }
        let p = wire.0.iter().filter(|e| e.1 > 0).map(|e| (e.0, e.1));
        let n = wire.0.iter().filter(|e| e.2 > 0).map(|e| (e.0, e.2));
        Ok(PNCounter {
            p: GCounter::from_iter_unchecked(p),
            n: GCounter::from_iter_unchecked(n),
        })
    }
}

serde_via_wire!([] PNCounter);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn increments_and_decrements_from_three_replicas() {
        let mut reps = [PNCounter::new(), PNCounter::new(), PNCounter::new()];
        let mut deltas = Vec::new();
        for (i, c) in reps.iter_mut().enumerate() {
            deltas.push(c.add(r(i as u128), 5).unwrap());
            deltas.push(c.add(r(i as u128), -2).unwrap());
        }
        let mut all = PNCounter::new();
        for d in deltas.iter().rev() {
            all.join(d);
            all.join(d);
        }
        assert_eq!(all.value(), 9);
    }

    #[test]
    fn value_is_exact_at_the_extremes() {
        let mut c = PNCounter::new();
        let _ = c.add(r(1), i64::MIN).unwrap();
        let _ = c.add(r(2), i64::MIN + 1).unwrap();
        assert_eq!(c.value(), -i128::from(u64::MAX));
        let before = c.clone();
        assert_eq!(c.add(r(3), -1), Err(OverflowError::Counter));
        assert_eq!(c, before, "a refused add changes nothing");
    }

    #[test]
    fn three_replica_encoding_writes_each_id_once() {
        let mut c = PNCounter::new();
        for i in 0..3 {
            let _ = c.add(r(i), 100).unwrap();
            let _ = c.add(r(i), -100).unwrap();
        }
        assert_eq!(encode(&c).len(), 1 + 3 * (16 + 1 + 1));
    }
}
