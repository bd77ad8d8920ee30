//! `Causal<S>`: a dot store with its causal context, the shape of every
//! causal CRDT.
//!
//! The join of two causal states is the dot-store join of
//! [`dot_store`](crate::dot_store) under both contexts, followed by the union
//! of the contexts. Join decomposition (Enes et al., ICDE 2019) is by dot:
//! every dot `d` of the context gives one irreducible, `(s|d, {d})` if the
//! store holds `d` (the write) and `(⊥, {d})` if not (its removal). An
//! irreducible is below a state `b` exactly when `b` has seen `d` and agrees
//! on it: so the minimal delta `Δ(a, b)` holds the dots of `a` that `b` has
//! not seen, plus the removals of dots that `b` still holds.
//!
//! When only `b`'s *context* is known (a peer sends its context, which is a
//! few ranges, instead of its whole state), [`Causal::delta_since`] ships the
//! dots `b` has not seen and `a`'s context minus the live dots `b` has seen
//! (which must stay alive at `b`): removals travel as the context, which is
//! compact.
//!
//! ```
//! use accordant::{Decompose, Lattice, OrSet, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = OrSet::new();
//! for i in 0..100 {
//!     let _ = a.add(eu, i).unwrap();
//! }
//! let mut b = a.clone();
//! let _ = b.add(us, 1000).unwrap();
//! // What a lacks from b is one element, not the whole set.
//! let d = b.delta(&a);
//! assert_eq!(d.len(), 1);
//! assert_eq!(a.joined(&d), b);
//! ```

use crate::causal::{CausalContext, ContextWire};
use crate::codec::{Budget, Canonical};
use crate::dot_store::{DotStore, InContext, WireStore};
use crate::error::DecodeError;
use crate::lattice::{Decompose, Lattice};
use crate::replica::Dot;

/// A dot store `S` and the causal context it lives in.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Causal<S> {
    store: S,
    ctx: CausalContext,
}

impl<S: DotStore> Causal<S> {
    /// Builds a state from its parts, checking the invariant that every dot
    /// of the store is in the context.
    pub fn from_parts(store: S, ctx: CausalContext) -> Result<Self, DecodeError> {
        let mut ok = true;
        store.for_each_dot(&mut |d| ok &= ctx.contains(d));
        if ok {
            Ok(Causal { store, ctx })
        } else {
            Err(DecodeError::Invalid(
                "dot not covered by its causal context",
            ))
        }
    }

    /// Builds a state whose invariant the caller guarantees.
    pub(crate) fn from_parts_unchecked(store: S, ctx: CausalContext) -> Self {
        debug_assert!({
            let mut ok = true;
            store.for_each_dot(&mut |d| ok &= ctx.contains(d));
            ok
        });
        Causal { store, ctx }
    }

    /// The dot store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Splits into store and context.
    pub fn into_parts(self) -> (S, CausalContext) {
        (self.store, self.ctx)
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut S, &mut CausalContext) {
        (&mut self.store, &mut self.ctx)
    }

    /// What a peer whose context is `seen` lacks: the dots it has not seen,
    /// with this state's context (which carries the removals) minus the live
    /// dots the peer has already seen: a dot in the delta's context but not
    /// in its store would remove that dot at the peer.
    #[must_use]
    pub fn delta_since(&self, seen: &CausalContext) -> Self {
        let mut held = Vec::new();
        self.store.for_each_dot(&mut |d| {
            if seen.contains(d) {
                held.push(*d);
            }
        });
        held.sort_unstable();
        let ctx = if held.is_empty() {
            self.ctx.clone()
        } else {
            self.ctx.difference(&CausalContext::from_dots(held))
        };
        Causal {
            store: self.store.filter_dots(&mut |d| !seen.contains(d)),
            ctx,
        }
    }
}

impl<S: DotStore> Lattice for Causal<S> {
    fn join(&mut self, other: &Self) {
        self.store.join_store(&self.ctx, &other.store, &other.ctx);
        self.ctx.join(&other.ctx);
    }

    fn is_bottom(&self) -> bool {
        self.ctx.is_empty()
    }
}

impl<S: DotStore> Decompose for Causal<S> {
    fn decompose(&self) -> Vec<Self> {
        let mut written = Vec::new();
        self.store.split_dots(&mut written);
        written.sort_by_key(|w| w.0);
        let mut out: Vec<Self> = Vec::new();
        for d in self.ctx.dots() {
            let store = match written.binary_search_by(|(x, _)| x.cmp(&d)) {
                Ok(i) => written[i].1.clone(),
                Err(_) => S::default(),
            };
            out.push(Causal {
                store,
                ctx: CausalContext::single(d),
            });
        }
        out
    }

    fn delta(&self, other: &Self) -> Self {
        let store = self.store.filter_dots(&mut |d| !other.ctx.contains(d));
        let mut ctx = self.ctx.difference(&other.ctx);
        // Removals here of dots the other side still holds.
        let mut mine: Vec<Dot> = Vec::new();
        self.store.for_each_dot(&mut |d| mine.push(*d));
        mine.sort_unstable();
        other.store.for_each_dot(&mut |d| {
            if self.ctx.contains(d) && mine.binary_search(d).is_err() {
                ctx.insert(*d);
            }
        });
        Causal { store, ctx }
    }
}

impl<S: WireStore> Canonical for Causal<S> {
    type Wire = (ContextWire, S::Wire);

    fn to_wire(&self) -> Self::Wire {
        (self.ctx.to_wire(), self.store.to_wire(&self.ctx))
    }

    fn serialize_wire<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        use serde::Serialize;
        (&self.ctx, InContext(&self.store, &self.ctx)).serialize(s)
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        let ctx = CausalContext::from_wire(wire.0, budget)?;
        let mut dots = Vec::new();
        let store = S::from_wire(wire.1, &ctx, &mut dots, budget)?;
        dots.sort_unstable();
        if dots.windows(2).any(|w| w[0] == w[1]) {
            return Err(DecodeError::Invalid("a dot appears twice in the store"));
        }
        Ok(Causal { store, ctx })
    }
}

/// A causal CRDT: a newtype over [`Causal`] of some dot store.
///
/// [`OrMap`](crate::OrMap) nests any `CausalCrdt` as a value: it keeps the
/// value's store under the key and shares one context for the whole map.
pub trait CausalCrdt: Sized {
    /// The dot store of this type.
    type Store: DotStore;

    /// Wraps a causal state.
    fn from_causal(state: Causal<Self::Store>) -> Self;

    /// The causal state.
    fn as_causal(&self) -> &Causal<Self::Store>;

    /// Unwraps the causal state.
    fn into_causal(self) -> Causal<Self::Store>;
}

/// Implements `Lattice`, `Decompose`, `Canonical` and serde for a newtype
/// `$ty(Causal<$store>)`.
macro_rules! causal_newtype {
    ([$($g:tt)*] $ty:ty => $store:ty) => {
        impl<$($g)*> $crate::lattice::Lattice for $ty
        where
            $store: $crate::dot_store::DotStore,
            Self: Clone + PartialEq,
        {
            fn join(&mut self, other: &Self) {
                $crate::lattice::Lattice::join(&mut self.0, &other.0);
            }
            fn is_bottom(&self) -> bool {
                $crate::lattice::Lattice::is_bottom(&self.0)
            }
        }

        impl<$($g)*> $crate::lattice::Decompose for $ty
        where
            $store: $crate::dot_store::DotStore,
            Self: Clone + PartialEq,
        {
            fn decompose(&self) -> Vec<Self> {
                $crate::lattice::Decompose::decompose(&self.0)
                    .into_iter()
                    .map(Self)
                    .collect()
            }
            fn delta(&self, other: &Self) -> Self {
                Self($crate::lattice::Decompose::delta(&self.0, &other.0))
            }
        }

        impl<$($g)*> $crate::codec::Canonical for $ty
        where
            $store: $crate::dot_store::WireStore,
        {
            type Wire = <$crate::causal_state::Causal<$store> as $crate::codec::Canonical>::Wire;
            fn to_wire(&self) -> Self::Wire {
                $crate::codec::Canonical::to_wire(&self.0)
            }
            fn serialize_wire<Ser: serde::Serializer>(
                &self,
                s: Ser,
            ) -> Result<Ser::Ok, Ser::Error> {
                $crate::codec::Canonical::serialize_wire(&self.0, s)
            }
            fn from_wire(
                wire: Self::Wire,
                budget: &mut $crate::codec::Budget,
            ) -> Result<Self, $crate::error::DecodeError> {
                <$crate::causal_state::Causal<$store> as $crate::codec::Canonical>::from_wire(
                    wire, budget,
                )
                .map(Self)
            }
        }

        $crate::codec::serde_via_wire!([$($g)*] $ty);
    };
}
pub(crate) use causal_newtype;

#[cfg(test)]
mod tests {
    use crate::lattice::Lattice;
    use crate::replica::ReplicaId;
    use crate::set::OrSet;

    #[test]
    fn delta_since_keeps_what_the_peer_already_holds() {
        let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
        let mut a = OrSet::new();
        let _ = a.add(eu, 1u8).unwrap();
        let _ = a.add(eu, 2u8).unwrap();
        let mut b = a.clone();
        let _ = a.remove(&1); // b must lose 1...
        let _ = a.add(eu, 3u8).unwrap(); // ...gain 3...
        let _ = b.add(us, 4u8).unwrap(); // ...and keep 2 and its own 4.
        let d = a.delta_since(b.context());
        assert_eq!(d.len(), 1, "only the element b has not seen travels");
        let mut caught_up = b.clone();
        caught_up.join(&d);
        assert_eq!(caught_up, b.joined(&a));
        let mut elems: Vec<u8> = caught_up.iter().copied().collect();
        elems.sort_unstable();
        assert_eq!(elems, vec![2, 3, 4]);
    }
}
