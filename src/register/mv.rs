//! `MvRegister`: a multi-value register that keeps every concurrent write.
//!
//! The state is a `DotFun<V>` with a causal context (Almeida, Shoker, Baquero,
//! JPDC 2018, §7.3; the MV-Register of Dynamo's shopping cart, without its
//! version-vector growth). A write tags its value with a fresh dot and removes
//! every dot the writer has seen. Two writes made without seeing each other
//! both survive the join, so the application *sees* the conflict (the seed's
//! address-update example: neither region's address is silently lost); a
//! later write that has seen both replaces them.
//!
//! ```
//! use accordant::{Lattice, MvRegister, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = MvRegister::new();
//! let mut b = MvRegister::new();
//! let _ = a.write(eu, "1 Rue de Rivoli").unwrap();
//! let _ = b.write(us, "5th Avenue").unwrap();
//! a.join(&b);
//! assert_eq!(a.values().count(), 2, "both concurrent writes are kept");
//! let _ = a.write(eu, "5th Avenue").unwrap(); // resolves the conflict
//! assert_eq!(a.values().collect::<Vec<_>>(), vec![&"5th Avenue"]);
//! ```

use core::fmt::Debug;

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_store::{DotFun, DotStore};
use crate::error::OverflowError;
use crate::replica::ReplicaId;

/// A multi-value register.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MvRegister<V>(Causal<DotFun<V>>);

impl<V> Default for MvRegister<V> {
    fn default() -> Self {
        MvRegister(Causal::default())
    }
}

impl<V> MvRegister<V>
where
    V: Clone + Ord + Debug,
{
    /// The empty register.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `value` at `replica`, replacing every value seen; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn write(&mut self, replica: ReplicaId, value: V) -> Result<Self, OverflowError> {
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.issue(replica)?;
        let mut delta_ctx = CausalContext::single(dot);
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        *store = DotFun::single(dot, value.clone());
        Ok(MvRegister(Causal::from_parts_unchecked(
            DotFun::single(dot, value),
            delta_ctx,
        )))
    }

    /// Clears the register (removes every value seen); returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn clear(&mut self) -> Self {
        let (store, _) = self.0.parts_mut();
        let mut delta_ctx = CausalContext::new();
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        *store = DotFun::default();
        MvRegister(Causal::from_parts_unchecked(DotFun::default(), delta_ctx))
    }

    /// The concurrent values, in the order of their dots (deterministic on
    /// every replica). Empty before the first write.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.store().values()
    }

    /// Whether concurrent writes are pending resolution (more than one value).
    pub fn is_conflicted(&self) -> bool {
        self.0.store().len() > 1
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        self.0.context()
    }
}

impl<V> CausalCrdt for MvRegister<V>
where
    V: Clone + Ord + Debug,
{
    type Store = DotFun<V>;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        MvRegister(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([V] MvRegister<V> => DotFun<V>);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::Lattice;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn concurrent_writes_both_survive_then_a_write_that_saw_both_replaces_them() {
        let mut a = MvRegister::new();
        let mut b = MvRegister::new();
        let da = a.write(r(1), 10u32).unwrap();
        let db = b.write(r(2), 20u32).unwrap();
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        let mut vals: Vec<_> = a.values().copied().collect();
        vals.sort();
        assert_eq!(vals, vec![10, 20]);
        assert!(a.is_conflicted());
        let dw = a.write(r(1), 30).unwrap();
        b.join(&dw);
        assert_eq!(b.values().copied().collect::<Vec<_>>(), vec![30]);
        assert!(!b.is_conflicted());
    }

    #[test]
    fn sequential_writes_keep_only_the_last() {
        let mut a = MvRegister::new();
        let d1 = a.write(r(1), 1u8).unwrap();
        let d2 = a.write(r(1), 2u8).unwrap();
        // Delivery out of order at another replica.
        let mut b = MvRegister::new();
        b.join(&d2);
        b.join(&d1);
        assert_eq!(b.values().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(a, b);
    }
}
