//! `DotPair<A, B>`: two dot stores under one causal context.
//!
//! Some causal CRDTs tag every write with a dot and need to know *what kind*
//! of write each surviving dot was: the disable-wins flag keeps enable dots
//! and disable dots, the remove-wins set keeps, per element, add dots and
//! remove dots. A `DotPair` is the product of two dot stores sharing the
//! context of the state they live in. It is a dot store itself (Almeida,
//! Shoker, Baquero, "Delta State Replicated Data Types", JPDC 2018, §5: a
//! `DotMap` with two fixed keys), so it nests in a [`DotMap`](crate::DotMap)
//! and in an [`OrMap`](crate::OrMap) like any other store.
//!
//! The causal join is the join of each half under the shared contexts: a dot
//! survives if both sides hold it, or one side holds it and the other has
//! never seen it. The pair is empty (bottom) when both halves are; a dot
//! belongs to exactly one half (decoding rejects a dot found in both).
//!
//! ```
//! use accordant::{Causal, CausalContext, Dot, DotPair, DotSet, DotStore, ReplicaId};
//! let eu = ReplicaId::from_u128(1);
//! let (d1, d2) = (Dot::new(eu, 1).unwrap(), Dot::new(eu, 2).unwrap());
//! let pair = DotPair::new(DotSet::single(d1), DotSet::single(d2));
//! let state = Causal::from_parts(pair, CausalContext::from_dots([d1, d2])).unwrap();
//! assert_eq!(state.store().dot_count(), 2);
//! assert!(state.store().first().contains(&d1) && state.store().second().contains(&d2));
//! ```

use crate::causal::CausalContext;
use crate::codec::Budget;
use crate::dot_store::{DotStore, WireStore};
use crate::error::DecodeError;
use crate::replica::Dot;

/// Two dot stores that share one causal context.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct DotPair<A, B> {
    first: A,
    second: B,
}

impl<A, B> DotPair<A, B> {
    /// The pair of `first` and `second`.
    pub fn new(first: A, second: B) -> Self {
        DotPair { first, second }
    }

    /// The first store.
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The second store.
    pub fn second(&self) -> &B {
        &self.second
    }
}

impl<A: DotStore, B: DotStore> DotStore for DotPair<A, B> {
    fn is_empty(&self) -> bool {
        self.first.is_empty() && self.second.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(&Dot)) {
        self.first.for_each_dot(f);
        self.second.for_each_dot(f);
    }

    fn join_store(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        self.first.join_store(ctx, &other.first, other_ctx);
        self.second.join_store(ctx, &other.second, other_ctx);
    }

    fn filter_dots(&self, keep: &mut dyn FnMut(&Dot) -> bool) -> Self {
        DotPair {
            first: self.first.filter_dots(keep),
            second: self.second.filter_dots(keep),
        }
    }

    fn split_dots(&self, out: &mut Vec<(Dot, Self)>) {
        let mut inner = Vec::new();
        self.first.split_dots(&mut inner);
        out.extend(
            inner
                .drain(..)
                .map(|(d, s)| (d, DotPair::new(s, B::default()))),
        );
        let mut inner = Vec::new();
        self.second.split_dots(&mut inner);
        out.extend(
            inner
                .drain(..)
                .map(|(d, s)| (d, DotPair::new(A::default(), s))),
        );
    }

    fn dot_count(&self) -> usize {
        self.first.dot_count() + self.second.dot_count()
    }
}

impl<A: WireStore, B: WireStore> WireStore for DotPair<A, B> {
    /// Both halves, each in its own wire form.
    type Wire = (A::Wire, B::Wire);

    fn to_wire(&self, ctx: &CausalContext) -> Self::Wire {
        (self.first.to_wire(ctx), self.second.to_wire(ctx))
    }

    fn from_wire(
        wire: Self::Wire,
        ctx: &CausalContext,
        dots: &mut Vec<Dot>,
        budget: &mut Budget,
    ) -> Result<Self, DecodeError> {
        Ok(DotPair {
            first: A::from_wire(wire.0, ctx, dots, budget)?,
            second: B::from_wire(wire.1, ctx, dots, budget)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causal_state::Causal;
    use crate::codec::{decode, encode, Canonical, Limits};
    use crate::dot_store::DotSet;
    use crate::lattice::{Decompose, Lattice};
    use crate::replica::ReplicaId;

    type Pair = Causal<DotPair<DotSet, DotSet>>;

    fn dot(n: u64) -> Dot {
        Dot::new(ReplicaId::from_u128(1), n).unwrap()
    }

    fn state(first: &[u64], second: &[u64], ctx: &[u64]) -> Pair {
        // A DotSet holding exactly `xs`, built by joining single-dot sets.
        let set = |xs: &[u64]| {
            xs.iter().fold(DotSet::default(), |mut s, n| {
                let d = dot(*n);
                s.join_store(
                    &CausalContext::new(),
                    &DotSet::single(d),
                    &CausalContext::from_dots([d]),
                );
                s
            })
        };
        Causal::from_parts(
            DotPair::new(set(first), set(second)),
            CausalContext::from_dots(ctx.iter().map(|n| dot(*n))),
        )
        .unwrap()
    }

    #[test]
    fn halves_join_independently_under_the_shared_context() {
        // a saw dots 1..=3 and keeps 1 (first) and 3 (second); b saw 1, 2, 4
        // and keeps 2 (first) and 4 (second).
        let a = state(&[1], &[3], &[1, 2, 3]);
        let b = state(&[2], &[4], &[1, 2, 4]);
        let j = a.clone().joined(&b);
        // 1: b saw it and dropped it; 2: a saw it and dropped it; 3 and 4
        // are unseen by the other side.
        assert_eq!(j, state(&[], &[3, 4], &[1, 2, 3, 4]));
        assert_eq!(j, b.joined(&a));
    }

    #[test]
    fn decomposition_keeps_each_dot_in_its_half() {
        let a = state(&[1, 2], &[3], &[1, 2, 3, 4]);
        let parts = a.decompose();
        assert_eq!(parts.len(), 4, "three written dots and one removal");
        assert_eq!(
            parts.iter().fold(Pair::default(), |acc, p| acc.joined(p)),
            a
        );
        assert!(parts
            .iter()
            .any(|p| p.store().second().contains(&dot(3)) && p.store().first().is_empty()));
    }

    #[test]
    fn a_dot_in_both_halves_is_rejected() {
        let good = state(&[1], &[2], &[1, 2]);
        let mut wire = good.to_wire();
        wire.1 .1 = wire.1 .0.clone(); // the second half now repeats dot 1
        let bytes = postcard::to_allocvec(&wire).unwrap();
        assert_eq!(
            decode::<Pair>(&bytes, &Limits::default()),
            Err(DecodeError::Invalid("a dot appears twice in the store"))
        );
        assert_eq!(
            decode::<Pair>(&encode(&good), &Limits::default()).unwrap(),
            good
        );
    }
}
