//! `OrSet`: an add-wins observed-remove set without tombstones.
//!
//! The state is a [`SetStore`] (each element with its dots) and a causal
//! context: the "AWSet" of Almeida, Shoker, Baquero ("Delta State Replicated
//! Data Types", JPDC 2018, §7.1), the optimised OR-Set of Bieniusa et al.,
//! 2012. Adding `e` tags it
//! with a fresh dot and forgets the element's older dots; removing `e` forgets
//! all dots of `e` the replica has seen. A concurrent add carries a dot the
//! remover never saw, so it survives: **add wins**. Removed dots stay only as
//! ranges of the causal context, so memory and encoded size grow with live
//! elements and replicas, not with history.
//!
//! ```
//! use accordant::{Lattice, OrSet, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = OrSet::new();
//! let _ = a.add(eu, "milk").unwrap();
//! let mut b = a.clone();
//! // Partition: EU removes milk while US adds it again.
//! let _ = a.remove(&"milk");
//! let _ = b.add(us, "milk").unwrap();
//! a.join(&b);
//! assert!(a.contains(&"milk"), "the concurrent add wins");
//! ```

use core::fmt::Debug;
use core::hash::Hash;
use std::borrow::Borrow;

use smallvec::SmallVec;

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_store::DotStore;
use crate::error::OverflowError;
use crate::replica::{Dot, ReplicaId};
use crate::set::{Elements, SetStore};

/// An add-wins observed-remove set.
///
/// Elements need `Eq + Hash` (the store is hash-indexed: an add is one
/// probe and an append); lookups take any borrowed form of the element, as
/// `HashSet`'s do.
#[derive(Clone, Debug)]
pub struct OrSet<E>(Causal<SetStore<E>>);

impl<E> Default for OrSet<E> {
    fn default() -> Self {
        OrSet(Causal::default())
    }
}

impl<E> OrSet<E>
where
    E: Clone + Eq + Hash + Debug,
{
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `elem` at `replica`; returns the delta.
    ///
    /// One hash probe and an append; the delta (one element, its dot and
    /// the dots it replaces) is built inline, without allocating, in the
    /// usual case of an element with at most one older dot.
    ///
    /// Fails only if `replica` has exhausted its 2^64 dots.
    #[must_use = "the delta is what other replicas need"]
    pub fn add(&mut self, replica: ReplicaId, elem: E) -> Result<Self, OverflowError> {
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.issue(replica)?;
        let mut delta_ctx = CausalContext::single(dot);
        store.replace(elem.clone(), dot, |old| delta_ctx.insert(old));
        Ok(OrSet(Causal::from_parts_unchecked(
            SetStore::single(elem, dot),
            delta_ctx,
        )))
    }

    /// Removes `elem` (all of its dots this replica has seen); returns the
    /// delta, which is empty-stored but carries the removed dots.
    ///
    /// ```
    /// use accordant::{OrSet, ReplicaId};
    /// let mut tags = OrSet::new();
    /// let _ = tags.add(ReplicaId::from_u128(1), "urgent".to_string()).unwrap();
    /// let _ = tags.remove("urgent"); // a `&str` finds a `String`
    /// assert!(!tags.contains("urgent"));
    /// ```
    #[must_use = "the delta is what other replicas need"]
    pub fn remove<Q>(&mut self, elem: &Q) -> Self
    where
        E: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (store, _) = self.0.parts_mut();
        let mut dots: SmallVec<[Dot; 2]> = SmallVec::new();
        store.remove(elem, |d| dots.push(d));
        // Usually one dot: a context built inline, no search.
        let delta_ctx = match dots[..] {
            [one] => CausalContext::single(one),
            _ => CausalContext::from_dots(dots),
        };
        OrSet(Causal::from_parts_unchecked(SetStore::default(), delta_ctx))
    }

    /// Removes every element; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn clear(&mut self) -> Self {
        let (store, _) = self.0.parts_mut();
        let mut dots = Vec::with_capacity(store.dot_count());
        store.for_each_dot(&mut |d| dots.push(*d));
        dots.sort_unstable();
        *store = SetStore::default();
        OrSet(Causal::from_parts_unchecked(
            SetStore::default(),
            CausalContext::from_dots(dots),
        ))
    }

    /// Whether `elem` is in the set.
    pub fn contains<Q>(&self, elem: &Q) -> bool
    where
        E: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.store().contains(elem)
    }

    /// The elements, in no particular order (sort them for a stable one).
    pub fn iter(&self) -> Elements<'_, E> {
        self.0.store().elements()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.store().len()
    }

    /// Whether the set has no element.
    pub fn is_empty(&self) -> bool {
        self.0.store().is_empty()
    }

    /// What a replica that has seen `ctx` lacks (see [`Causal::delta_since`]).
    #[must_use]
    pub fn delta_since(&self, ctx: &CausalContext) -> Self {
        OrSet(self.0.delta_since(ctx))
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        self.0.context()
    }
}

impl<E: Eq + Hash> PartialEq for OrSet<E> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<E: Eq + Hash> Eq for OrSet<E> {}

impl<E> CausalCrdt for OrSet<E>
where
    E: Clone + Eq + Hash + Debug,
{
    type Store = SetStore<E>;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        OrSet(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([E] OrSet<E> => SetStore<E>);

impl<E> FromIterator<(ReplicaId, E)> for OrSet<E>
where
    E: Clone + Eq + Hash + Debug,
{
    /// Adds each element at its replica; panics never: an exhausted replica's
    /// adds are skipped (2^64 adds from one replica cannot happen in practice).
    fn from_iter<I: IntoIterator<Item = (ReplicaId, E)>>(iter: I) -> Self {
        let mut s = OrSet::new();
        for (r, e) in iter {
            let _ = s.add(r, e);
        }
        s
    }
}

impl<'a, E> IntoIterator for &'a OrSet<E>
where
    E: Clone + Eq + Hash + Debug,
{
    type Item = &'a E;
    type IntoIter = Elements<'a, E>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode, encoded_len, Limits};
    use crate::lattice::{Decompose, Lattice};

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn add_remove_readd() {
        let mut s = OrSet::new();
        let _ = s.add(r(1), 5u32).unwrap();
        assert!(s.contains(&5));
        let _ = s.remove(&5);
        assert!(!s.contains(&5));
        let _ = s.add(r(1), 5).unwrap();
        assert!(s.contains(&5));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn add_wins_over_concurrent_remove() {
        let mut a = OrSet::new();
        let _ = a.add(r(1), "x").unwrap();
        let mut b = a.clone();
        let rm = a.remove(&"x");
        let add = b.add(r(2), "x").unwrap();
        a.join(&add);
        b.join(&rm);
        assert_eq!(a, b);
        assert!(a.contains(&"x"));
    }

    #[test]
    fn observed_remove_does_not_resurrect() {
        let mut a = OrSet::new();
        let add = a.add(r(1), 1u8).unwrap();
        let mut b = OrSet::new();
        b.join(&add);
        let rm = b.remove(&1);
        // Redelivering the old add after the remove changes nothing.
        b.join(&add);
        assert!(!b.contains(&1));
        a.join(&rm);
        assert!(!a.contains(&1));
    }

    #[test]
    fn size_tracks_live_elements_not_history() {
        let mut s = OrSet::new();
        for round in 0..50u32 {
            for e in 0..100u32 {
                let _ = s.add(r(1), e + round * 1000).unwrap();
            }
            let _ = s.clear();
        }
        let _ = s.add(r(1), 7u32).unwrap();
        // One element, one replica, one contiguous range of 5001 dots.
        assert!(encoded_len(&s) < 40, "{} bytes", encoded_len(&s));
        assert_eq!(s.context().range_count(), 1);
    }

    #[test]
    fn delta_of_one_new_element_is_one_element() {
        let mut a = OrSet::new();
        for e in 0..1000u32 {
            let _ = a.add(r(1), e).unwrap();
        }
        let mut b = a.clone();
        let _ = b.add(r(2), 5000).unwrap();
        let d = b.delta(&a);
        assert_eq!(d.len(), 1);
        assert!(encoded_len(&d) < 60);
        assert_eq!(a.clone().joined(&d), a.joined(&b));
    }

    #[test]
    fn decode_rejects_dot_outside_context() {
        // Build a valid set, then shrink the context in the wire form.
        let mut s = OrSet::new();
        let _ = s.add(r(1), 1u8).unwrap();
        let _ = s.add(r(1), 2u8).unwrap();
        let mut wire = crate::codec::Canonical::to_wire(&s);
        // context: replica 1, span (gap 0, len-1 = 1) -> make it length 1
        (wire.0).0[0].1 .0[0].1 = 0;
        let bytes = postcard::to_allocvec(&wire).unwrap();
        assert_eq!(
            decode::<OrSet<u8>>(&bytes, &Limits::default()),
            Err(crate::DecodeError::Invalid(
                "dot not covered by its causal context"
            ))
        );
        assert_eq!(
            decode::<OrSet<u8>>(&encode(&s), &Limits::default()).unwrap(),
            s
        );
    }
}
