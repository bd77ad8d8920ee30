//! Summaries: what a state has seen, in a few bytes, so a peer can compute
//! what it lacks without receiving the whole state.
//!
//! [`Decompose::delta`] needs both states. Over a
//! network, one side first sends a *summary* of its state; the other answers
//! with [`Summarize::delta_for`], a state `δ` such that `δ ⊔ b == a ⊔ b` for
//! every `b` with that summary. This is the digest-driven synchronisation of
//! Enes et al. (ICDE 2019, §IV): for causal types the summary is the causal
//! context (a few ranges per replica); for an LWW register it is the winning
//! write's stamp; a counter is its own summary (it is already small).
//!
//! ```
//! use accordant::{Lattice, OrSet, ReplicaId, Summarize};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = OrSet::new();
//! for i in 0..1000u32 {
//!     let _ = a.add(eu, i).unwrap();
//! }
//! let mut b = a.clone();
//! let _ = b.add(us, 5000).unwrap();
//! let _ = b.remove(&7);
//! let d = b.delta_for(&a.summary()); // a sends ~20 bytes, b answers with ~2 elements' worth
//! assert!(accordant::codec::encoded_len(&d) < 80);
//! assert_eq!(a.clone().joined(&d), a.joined(&b));
//! ```

use core::fmt::Debug;

use crate::causal::CausalContext;
use crate::causal_state::CausalCrdt;
use crate::clock::Hlc;
use crate::codec::{serde_via_wire, Budget, Canonical};
use crate::counter::{CausalCounter, GCounter, PNCounter};
use crate::dot_store::WireStore;
use crate::error::DecodeError;
use crate::lattice::Decompose;
use crate::map::{OrMap, ShoppingCart};
use crate::register::{LwwRegister, MvRegister};
use crate::replica::ReplicaId;
use crate::set::OrSet;

/// A state that can summarise what it has seen.
///
/// Law (checked by the property tests): for all states `a`, `b`,
/// `b ⊔ a.delta_for(&b.summary()) == a ⊔ b`.
pub trait Summarize: Decompose + Canonical {
    /// The summary.
    type Summary: Canonical + Clone + PartialEq + Debug;

    /// This state's summary.
    fn summary(&self) -> Self::Summary;

    /// What a state with summary `seen` lacks from `self`.
    #[must_use]
    fn delta_for(&self, seen: &Self::Summary) -> Self;
}

/// Counters are their own summaries: a few bytes per replica already.
macro_rules! self_summary {
    ($ty:ty) => {
        impl Summarize for $ty {
            type Summary = $ty;
            fn summary(&self) -> Self {
                self.clone()
            }
            fn delta_for(&self, seen: &Self) -> Self {
                self.delta(seen)
            }
        }
    };
}
self_summary!(GCounter);
self_summary!(PNCounter);

/// Causal types are summarised by their causal context.
macro_rules! context_summary {
    ([$($g:tt)*] $ty:ty) => {
        impl<$($g)*> Summarize for $ty
        where
            $ty: CausalCrdt + Decompose + Canonical,
            <$ty as CausalCrdt>::Store: WireStore,
        {
            type Summary = CausalContext;
            fn summary(&self) -> CausalContext {
                self.as_causal().context().clone()
            }
            fn delta_for(&self, seen: &CausalContext) -> Self {
                Self::from_causal(self.as_causal().delta_since(seen))
            }
        }
    };
}
context_summary!([] CausalCounter);
context_summary!([E] OrSet<E>);
context_summary!([V] MvRegister<V>);
context_summary!([K, V: CausalCrdt] OrMap<K, V>);
context_summary!([Item] ShoppingCart<Item>);

/// The stamp of an LWW register's winning write (none before the first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub struct LwwStamp(pub Option<(Hlc, ReplicaId)>);

impl Canonical for LwwStamp {
    type Wire = Option<(Hlc, ReplicaId)>;
    fn to_wire(&self) -> Self::Wire {
        self.0
    }
    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        budget.take(1)?;
        Ok(LwwStamp(wire))
    }
}

serde_via_wire!([] LwwStamp);

impl<V> Summarize for LwwRegister<V>
where
    V: Clone + Ord + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    type Summary = LwwStamp;

    fn summary(&self) -> LwwStamp {
        LwwStamp(self.stamp())
    }

    /// The whole register if its stamp is at least the peer's (equal stamps
    /// with different values can only come from a replica reusing a
    /// timestamp; sending the value lets the join's tie break settle it).
    fn delta_for(&self, seen: &LwwStamp) -> Self {
        match self.stamp() {
            Some(mine) if Some(mine) >= seen.0 => self.clone(),
            _ => Self::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::Lattice;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn causal_delta_for_keeps_dots_both_sides_hold() {
        // Regression: shipping the whole context made the receiver drop the
        // dots both sides hold.
        let mut a = OrSet::new();
        let _ = a.add(r(1), 1u8).unwrap();
        let mut b = a.clone();
        let _ = a.add(r(1), 2).unwrap();
        let d = a.delta_for(&b.summary());
        b.join(&d);
        assert!(b.contains(&1) && b.contains(&2));
        assert_eq!(b, a);
    }

    #[test]
    fn causal_delta_for_carries_removals() {
        let mut a = OrSet::new();
        for i in 0..10u8 {
            let _ = a.add(r(1), i).unwrap();
        }
        let mut b = a.clone();
        let _ = a.remove(&3);
        let _ = a.remove(&8);
        let d = a.delta_for(&b.summary());
        assert!(d.is_empty(), "removals carry no element");
        b.join(&d);
        assert_eq!(b, a);
    }

    #[test]
    fn lww_delta_for_sends_the_value_only_when_newer() {
        let mut a = LwwRegister::new();
        let mut b = LwwRegister::new();
        let _ = a.write_at(Hlc::new(5, 0), r(1), 1u8);
        let _ = b.write_at(Hlc::new(4, 0), r(1), 2u8);
        assert!(b.delta_for(&a.summary()).is_bottom());
        let d = a.delta_for(&b.summary());
        b.join(&d);
        assert_eq!(b, a);
    }
}
