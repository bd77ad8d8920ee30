//! `CausalCounter`: a counter made of dots, so an observed remove can reset it.
//!
//! A [`GCounter`](crate::GCounter) cannot be removed from a map: its
//! per-replica maxima would come back on the next merge. The causal counter
//! stores every change as a dot carrying the amount (a `DotFun<i64>` with a
//! causal context, in the style of Almeida, Shoker, Baquero, JPDC 2018). Its
//! value is the sum of the live dots. A reset (or an [`OrMap`](crate::OrMap)
//! remove) removes the dots it has seen; an increment made concurrently has a
//! dot the reset never saw, so it survives **alone**: the counter comes back
//! with the concurrent increment only, never with its pre-reset total. That is
//! the property the shopping cart needs (Dynamo's cart resurrected deleted
//! items because its merge could not tell these cases apart).
//!
//! Each increment costs one dot until a [`CausalCounter::set`] (or a reset)
//! folds the observed dots into one: a cart line changes a handful of times,
//! so the dots stay few. Counters that take millions of increments belong in
//! a [`PNCounter`](crate::PNCounter).
//!
//! ```
//! use accordant::{CausalCounter, Lattice, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = CausalCounter::new();
//! let _ = a.add(eu, 5).unwrap();
//! let mut b = a.clone();
//! let _ = a.reset();           // EU resets...
//! let _ = b.add(us, 2).unwrap(); // ...while US concurrently adds 2
//! a.join(&b);
//! assert_eq!(a.value(), 2, "only the concurrent increment survives");
//! ```

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_store::{DotFun, DotStore};
use crate::error::OverflowError;
use crate::replica::ReplicaId;

/// A counter of dots, resettable by observed remove.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CausalCounter(Causal<DotFun<i64>>);

/// The value.
impl core::fmt::Display for CausalCounter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.value())
    }
}

impl CausalCounter {
    /// The zero counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `amount` (which may be negative) at `replica`; returns the delta.
    ///
    /// Fails if the value would leave the `i64` range, or the replica has
    /// exhausted its dots; the counter is then unchanged.
    #[must_use = "the delta is what other replicas need"]
    pub fn add(&mut self, replica: ReplicaId, amount: i64) -> Result<Self, OverflowError> {
        if i64::try_from(self.value_i128() + i128::from(amount)).is_err() {
            return Err(OverflowError::Counter);
        }
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.issue(replica)?;
        store.insert(dot, amount);
        Ok(CausalCounter(Causal::from_parts_unchecked(
            DotFun::single(dot, amount),
            CausalContext::single(dot),
        )))
    }

    /// Adds `amount` at `replica`; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, OverflowError> {
        let amount = i64::try_from(amount).map_err(|_| OverflowError::Counter)?;
        self.add(replica, amount)
    }

    /// Subtracts `amount` at `replica`; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn decrement(&mut self, replica: ReplicaId, amount: u64) -> Result<Self, OverflowError> {
        let amount = i64::try_from(amount).map_err(|_| OverflowError::Counter)?;
        self.add(replica, -amount)
    }

    /// Sets the value to `value` at `replica`, folding every observed dot into
    /// one; returns the delta. Concurrent changes elsewhere still add up.
    #[must_use = "the delta is what other replicas need"]
    pub fn set(&mut self, replica: ReplicaId, value: i64) -> Result<Self, OverflowError> {
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.issue(replica)?;
        let mut delta_ctx = CausalContext::single(dot);
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        *store = DotFun::single(dot, value);
        Ok(CausalCounter(Causal::from_parts_unchecked(
            DotFun::single(dot, value),
            delta_ctx,
        )))
    }

    /// Resets to zero by removing every observed dot; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn reset(&mut self) -> Self {
        let (store, _) = self.0.parts_mut();
        let mut delta_ctx = CausalContext::new();
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        *store = DotFun::default();
        CausalCounter(Causal::from_parts_unchecked(DotFun::default(), delta_ctx))
    }

    fn value_i128(&self) -> i128 {
        self.0.store().values().map(|v| i128::from(*v)).sum()
    }

    /// The value, saturated to the `i64` range (only a merge of states that
    /// were each in range can leave it).
    pub fn value(&self) -> i64 {
        let v = self.value_i128();
        i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
    }

    /// Number of live dots (the counter's size).
    pub fn dot_count(&self) -> usize {
        self.0.store().len()
    }
}

impl CausalCrdt for CausalCounter {
    type Store = DotFun<i64>;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        CausalCounter(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([] CausalCounter => DotFun<i64>);

/// Value of a causal counter's store (used by maps that nest counters).
pub(crate) fn store_value(store: &DotFun<i64>) -> i64 {
    let v: i128 = store.values().map(|v| i128::from(*v)).sum();
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::Lattice;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn increments_add_up_across_replicas() {
        let mut a = CausalCounter::new();
        let mut b = CausalCounter::new();
        let da = a.add(r(1), 3).unwrap();
        let db = b.add(r(2), 4).unwrap();
        let db2 = b.add(r(2), -1).unwrap();
        a.join(&db2);
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        assert_eq!(a.value(), 6);
    }

    #[test]
    fn set_folds_dots_and_concurrent_adds_survive() {
        let mut a = CausalCounter::new();
        for _ in 0..5 {
            let _ = a.add(r(1), 1).unwrap();
        }
        assert_eq!(a.dot_count(), 5);
        let mut b = a.clone();
        let ds = a.set(r(1), 10).unwrap();
        assert_eq!(a.dot_count(), 1);
        let db = b.add(r(2), 2).unwrap();
        a.join(&db);
        b.join(&ds);
        assert_eq!(a, b);
        assert_eq!(a.value(), 12);
    }

    #[test]
    fn overflow_is_refused_and_leaves_the_counter_unchanged() {
        let mut a = CausalCounter::new();
        let _ = a.add(r(1), i64::MAX).unwrap();
        let before = a.clone();
        assert_eq!(a.add(r(1), 1), Err(OverflowError::Counter));
        assert_eq!(a, before);
    }
}
