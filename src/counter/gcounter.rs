//! `GCounter`: a grow-only counter.
//!
//! One entry per replica holding the number of increments that replica made;
//! the join is the pointwise maximum and the value the sum (Shapiro et al.,
//! "A comprehensive study of Convergent and Commutative Replicated Data
//! Types", INRIA RR-7506, 2011, §3.1.1). An increment's delta is the single
//! entry it changed. Increments never get lost: whatever order entries
//! arrive in, the maximum of each replica's entry is its latest count.
//!
//! Arithmetic is checked: an increment that would take the local value past
//! `u64::MAX` is refused with [`OverflowError::Counter`] and changes nothing.
//!
//! ```
//! use accordant::{GCounter, Lattice, ReplicaId};
//! let eu = ReplicaId::from_u128(1);
//! let mut c = GCounter::new();
//! let d = c.increment(eu, 2).unwrap();
//! assert_eq!(d.value(), 2); // the delta is a GCounter too
//! assert!(c.increment(eu, u64::MAX).is_err());
//! assert_eq!(c.value(), 2);
//! ```

use smallvec::SmallVec;

use crate::codec::{serde_via_wire, strictly_sorted, Budget, Canonical, SeqVec};
use crate::error::{DecodeError, OverflowError};
use crate::lattice::{Decompose, Lattice};
use crate::replica::ReplicaId;

/// A grow-only counter: per-replica counts, sorted by replica, never zero.
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct GCounter(SmallVec<[(ReplicaId, u64); 4]>);

impl GCounter {
    /// The zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` at `replica`; returns the delta (the replica's new entry).
    ///
    /// Every counter spells it the same way: `increment(replica, by)`,
    /// `decrement(replica, by)` where the counter can go down, and a signed
    /// `add(replica, by)`.
    #[must_use = "the delta is what other replicas need"]
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, OverflowError> {
        let total = self.value_u128() + u128::from(amount);
        if total > u128::from(u64::MAX) {
            return Err(OverflowError::Counter);
        }
        let count = self.count(&replica) + amount; // <= total, fits
        if amount == 0 {
            return Ok(GCounter::new());
        }
        self.set(replica, count);
        let mut d = GCounter::new();
        d.set(replica, count);
        Ok(d)
    }

    /// The number of increments `replica` made, as far as this state knows.
    pub fn count(&self, replica: &ReplicaId) -> u64 {
        self.0
            .binary_search_by(|(r, _)| r.cmp(replica))
            .map_or(0, |i| self.0[i].1)
    }

    /// Per-replica counts, in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter().copied()
    }

    fn set(&mut self, replica: ReplicaId, count: u64) {
        match self.0.binary_search_by(|(r, _)| r.cmp(&replica)) {
            Ok(i) => self.0[i].1 = count,
            Err(i) => self.0.insert(i, (replica, count)),
        }
    }

    /// A counter from entries the caller guarantees sorted, unique, non-zero.
    pub(crate) fn from_iter_unchecked(entries: impl IntoIterator<Item = (ReplicaId, u64)>) -> Self {
        GCounter(entries.into_iter().collect())
    }

    pub(crate) fn value_u128(&self) -> u128 {
        self.0.iter().map(|(_, n)| u128::from(*n)).sum()
    }

    /// The value. A merge of states from different replicas can in principle
    /// exceed `u64::MAX` (no single replica can see it coming); the value then
    /// saturates, and [`GCounter::checked_value`] reports it.
    pub fn value(&self) -> u64 {
        self.checked_value().unwrap_or(u64::MAX)
    }

    /// The value, or `None` if it exceeds `u64::MAX`.
    pub fn checked_value(&self) -> Option<u64> {
        u64::try_from(self.value_u128()).ok()
    }
}

impl Lattice for GCounter {
    fn join(&mut self, other: &Self) {
        if self.0 == other.0 {
            return;
        }
        let mut out = SmallVec::with_capacity(self.0.len().max(other.0.len()));
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if j >= b.len() || (i < a.len() && a[i].0 < b[j].0) {
                out.push(a[i]);
                i += 1;
            } else if i >= a.len() || b[j].0 < a[i].0 {
                out.push(b[j]);
                j += 1;
            } else {
                out.push((a[i].0, a[i].1.max(b[j].1)));
                i += 1;
                j += 1;
            }
        }
        self.0 = out;
    }
}

impl Decompose for GCounter {
    /// One irreducible per replica: its entry alone.
    fn decompose(&self) -> Vec<Self> {
        self.0
            .iter()
            .map(|e| {
                let mut v = SmallVec::new();
                v.push(*e);
                GCounter(v)
            })
            .collect()
    }

    /// The entries of `self` larger than `other`'s.
    fn delta(&self, other: &Self) -> Self {
        GCounter(
            self.0
                .iter()
                .copied()
                .filter(|(r, n)| *n > other.count(r))
                .collect(),
        )
    }
}

/// The value.
impl core::fmt::Display for GCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.value_u128())
    }
}

impl Canonical for GCounter {
    /// `(replica, count)` pairs sorted by replica, counts non-zero.
    type Wire = SeqVec<(ReplicaId, u64)>;

    fn to_wire(&self) -> Self::Wire {
        SeqVec(self.0.to_vec())
    }

    fn serialize_wire<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&self.0[..], s)
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !strictly_sorted(&wire.0, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("counter replicas not sorted"));
        }
        if wire.0.iter().any(|(_, n)| *n == 0) {
            return Err(DecodeError::NonCanonical("zero counter entry"));
        }
        Ok(GCounter(wire.0.into_iter().collect()))
    }
}

serde_via_wire!([] GCounter);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode, Limits};

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn no_increment_is_lost_in_any_merge_order() {
        let mut replicas = [GCounter::new(), GCounter::new(), GCounter::new()];
        let mut deltas = Vec::new();
        for round in 0..10u64 {
            for (i, c) in replicas.iter_mut().enumerate() {
                deltas.push(c.increment(r(i as u128), round + 1).unwrap());
            }
        }
        let expected: u64 = 3 * (1..=10).sum::<u64>();
        let mut fwd = GCounter::new();
        deltas.iter().for_each(|d| fwd.join(d));
        let mut back = GCounter::new();
        deltas.iter().rev().for_each(|d| back.join(d));
        assert_eq!(fwd.value(), expected);
        assert_eq!(fwd, back);
    }

    #[test]
    fn zero_increment_changes_nothing() {
        let mut c = GCounter::new();
        let d = c.increment(r(1), 0).unwrap();
        assert!(d.is_bottom());
        assert!(c.is_bottom());
    }

    #[test]
    fn decode_rejects_zero_and_unsorted_entries() {
        for wire in [
            SeqVec(vec![(r(1), 0u64)]),
            SeqVec(vec![(r(2), 1), (r(1), 1)]),
            SeqVec(vec![(r(1), 1), (r(1), 2)]),
        ] {
            let bytes = postcard::to_allocvec(&wire).unwrap();
            assert!(matches!(
                decode::<GCounter>(&bytes, &Limits::default()),
                Err(DecodeError::NonCanonical(_))
            ));
        }
    }

    #[test]
    fn three_replica_encoding_is_small() {
        let mut c = GCounter::new();
        for i in 0..3 {
            let _ = c.increment(r(i), 1000).unwrap();
        }
        // length + 3 * (16-byte id + 2-byte varint)
        assert_eq!(encode(&c).len(), 1 + 3 * 18);
    }
}
