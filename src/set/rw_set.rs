//! `RwSet`: a remove-wins set.
//!
//! Where an [`OrSet`](crate::OrSet) lets a concurrent add survive a remove,
//! the remove-wins set lets the **remove** win: an element removed in one
//! region while another region adds it is absent after the merge; an add
//! that has *seen* the remove brings it back. This is the semantics of
//! AntidoteDB's `set_rw`, for data where a removal must not be undone by a
//! writer that did not know of it (a revoked permission, a blocked account).
//!
//! The state is a `DotMap<E, DotPair<DotSet, DotSet>>` with one causal
//! context: per element, its *add* dots and its *remove* dots (delta CRDT
//! construction of Almeida, Shoker, Baquero, JPDC 2018, §5). Both `add(e)`
//! and `remove(e)` write a fresh dot of their kind for `e` and drop every dot
//! of `e`, of either kind, that the replica has seen. An element is present
//! when it has add dots and no remove dot: a remove concurrent with an add
//! leaves both dots, and the remove dot keeps the element out.
//!
//! **Memory.** Unlike the OR-Set, a removal cannot leave nothing behind: the
//! remove dot must stay to defeat adds that have not arrived yet. A removed
//! element costs its key and one dot per concurrent remove (one, usually),
//! for as long as it stays removed: encoded, the element's bytes plus 4
//! bytes (two empty-or-one-dot lists and the dot) with up to 127 replicas and
//! dots below 128, more for larger counters. A later add of the element
//! replaces the tombstone. To reclaim tombstones for good, the replicas must
//! know that no add concurrent with the remove can still arrive, which is
//! *causal stability* (Baquero, Almeida, Shoker, "Pure Operation-Based
//! Replicated Data Types", 2017): [`RwSet::compact`] drops a removed
//! element once every replica has reported a context holding its remove dots
//! and this replica has delivered everything those reports hold.
//!
//! ```
//! use accordant::{Lattice, ReplicaId, RwSet};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = RwSet::new();
//! let _ = a.add(eu, "alice").unwrap();
//! let mut b = a.clone();
//! let _ = a.remove(eu, "alice").unwrap(); // EU revokes alice...
//! let _ = b.add(us, "alice").unwrap();    // ...while US grants her again
//! a.join(&b);
//! assert!(!a.contains(&"alice"), "the concurrent remove wins");
//! let _ = a.add(us, "alice").unwrap();    // an add that saw the remove
//! assert!(a.contains(&"alice"));
//! ```

use core::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_pair::DotPair;
use crate::dot_store::{DotMap, DotSet, DotStore};
use crate::error::{CompactError, OverflowError};
use crate::replica::ReplicaId;
use crate::summary::Summarize;

/// A remove-wins set: a remove concurrent with an add of the same element
/// wins; an add that saw the remove wins.
///
/// Its dot store maps each element to its add dots (first) and remove dots
/// (second). A removed element keeps its remove dot (a tombstone, counted by
/// [`RwSet::tombstones`]) until [`RwSet::compact`] collects it.
#[derive(Clone, PartialEq, Debug)]
pub struct RwSet<E>(Causal<DotMap<E, DotPair<DotSet, DotSet>>>);

impl<E> Default for RwSet<E> {
    fn default() -> Self {
        RwSet(Causal::default())
    }
}

impl<E> RwSet<E>
where
    E: Clone + Ord + Debug,
{
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `elem` at `replica`; returns the delta. A remove of `elem` made
    /// concurrently elsewhere wins over it; a remove seen here does not.
    ///
    /// Fails only if `replica` has exhausted its 2^64 dots.
    #[must_use = "the delta is what other replicas need"]
    pub fn add(&mut self, replica: ReplicaId, elem: E) -> Result<Self, OverflowError> {
        self.write(replica, elem, true)
    }

    /// Removes `elem` at `replica`; returns the delta. The removal wins over
    /// every add it has not seen, including adds made concurrently elsewhere,
    /// so it writes a dot (the tombstone) even for an element absent here.
    ///
    /// Fails only if `replica` has exhausted its 2^64 dots.
    #[must_use = "the delta is what other replicas need"]
    pub fn remove(&mut self, replica: ReplicaId, elem: E) -> Result<Self, OverflowError> {
        self.write(replica, elem, false)
    }

    fn write(&mut self, replica: ReplicaId, elem: E, add: bool) -> Result<Self, OverflowError> {
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.next_dot(replica)?;
        let mut delta_ctx = CausalContext::from_dots([dot]);
        let written = if add {
            DotPair::new(DotSet::single(dot), DotSet::default())
        } else {
            DotPair::new(DotSet::default(), DotSet::single(dot))
        };
        if let Some(old) = store.replace(elem.clone(), written.clone()) {
            old.for_each_dot(&mut |d| delta_ctx.insert(*d));
        }
        ctx.insert(dot);
        let mut delta_store = DotMap::default();
        delta_store.put(elem, written);
        Ok(RwSet(Causal::from_parts_unchecked(delta_store, delta_ctx)))
    }

    /// Whether `elem` is in the set: added, and no remove survives.
    pub fn contains(&self, elem: &E) -> bool {
        self.0.store().get(elem).is_some_and(is_present)
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.0
            .store()
            .iter()
            .filter(|(_, dots)| is_present(dots))
            .map(|(e, _)| e)
    }

    /// Number of elements (linear: tombstones are skipped).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the set has no element.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Number of removed elements still held to defeat concurrent adds (the
    /// set's tombstones; see [`RwSet::compact`]).
    pub fn tombstones(&self) -> usize {
        self.0
            .store()
            .iter()
            .filter(|(_, dots)| !dots.second().is_empty())
            .count()
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        self.0.context()
    }

    /// What a replica that has seen `ctx` lacks (see [`Causal::delta_since`]).
    #[must_use]
    pub fn delta_since(&self, ctx: &CausalContext) -> Self {
        RwSet(self.0.delta_since(ctx))
    }

    /// Collects the tombstones that can no longer matter; returns the delta.
    ///
    /// `reports` must hold, for **every** replica that writes to this set,
    /// a causal context that replica reported (its context at some point,
    /// for example acknowledged by the sync layer). A dot in all of them has
    /// been seen everywhere: it is *stable*. Once this replica has delivered
    /// everything the reports hold, every operation it has not delivered was
    /// made by a replica that had already seen the stable dots. An element
    /// whose remove dots are all stable is then dropped, with the add dots
    /// it may hold (adds concurrent with those removes, which lost to them):
    /// it reads absent before and after, and any later operation on it
    /// decides alone (a later add was made after the removes and wins; a
    /// later remove wins over those old adds anyway).
    ///
    /// Like every mutator's, the returned delta must reach the other
    /// replicas, in order with this replica's later deltas (or they catch up
    /// by state sync): a later add of the element here does not carry the
    /// dots the compaction dropped.
    ///
    /// Fails with [`CompactError::NotDelivered`], changing nothing, if a
    /// report holds a dot this replica has not seen. A missing replica in
    /// `reports` is not detectable here, and would let an add it made
    /// concurrently with a collected remove come back.
    #[must_use = "the delta is what other replicas need"]
    pub fn compact<'a>(
        &mut self,
        reports: impl IntoIterator<Item = &'a CausalContext>,
    ) -> Result<Self, CompactError> {
        let mut stable: Option<CausalContext> = None;
        for (report, seen) in reports.into_iter().enumerate() {
            if !seen.is_subset(self.0.context()) {
                return Err(CompactError::NotDelivered { report });
            }
            stable = Some(match stable {
                None => seen.clone(),
                // The intersection: what `s` holds that is not outside `seen`.
                Some(s) => s.difference(&s.difference(seen)),
            });
        }
        let mut delta_ctx = CausalContext::new();
        if let Some(stable) = stable {
            let (store, _) = self.0.parts_mut();
            let doomed: Vec<E> = store
                .iter()
                .filter(|(_, dots)| {
                    let removes = dots.second();
                    !removes.is_empty() && removes.iter().all(|d| stable.contains(d))
                })
                .map(|(e, _)| e.clone())
                .collect();
            for e in doomed {
                if let Some(old) = store.take(&e) {
                    old.for_each_dot(&mut |d| delta_ctx.insert(*d));
                }
            }
        }
        Ok(RwSet(Causal::from_parts_unchecked(
            DotMap::default(),
            delta_ctx,
        )))
    }
}

fn is_present(dots: &DotPair<DotSet, DotSet>) -> bool {
    !dots.first().is_empty() && dots.second().is_empty()
}

impl<E> CausalCrdt for RwSet<E>
where
    E: Clone + Ord + Debug,
{
    type Store = DotMap<E, DotPair<DotSet, DotSet>>;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        RwSet(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([E] RwSet<E> => DotMap<E, DotPair<DotSet, DotSet>>);

/// Summarised by its causal context, like every causal type.
impl<E> Summarize for RwSet<E>
where
    E: Clone + Ord + Debug + Serialize + DeserializeOwned,
{
    type Summary = CausalContext;

    fn summary(&self) -> CausalContext {
        self.0.context().clone()
    }

    fn delta_for(&self, seen: &CausalContext) -> Self {
        RwSet(self.0.delta_since(seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode, encoded_len, Limits};
    use crate::lattice::Lattice;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn remove_wins_over_a_concurrent_add_in_both_delivery_orders() {
        let mut a = RwSet::new();
        let d0 = a.add(r(1), 7u8).unwrap();
        let mut b = RwSet::new();
        b.join(&d0);
        let rm = a.remove(r(1), 7).unwrap();
        let add = b.add(r(2), 7).unwrap();
        a.join(&add);
        b.join(&rm);
        assert_eq!(a, b);
        assert!(!a.contains(&7));
        assert_eq!(a.tombstones(), 1);
        // An add that saw the remove wins.
        let _ = b.add(r(2), 7).unwrap();
        assert!(b.contains(&7));
        assert_eq!(b.tombstones(), 0);
    }

    #[test]
    fn a_remove_of_an_element_never_seen_still_wins() {
        let mut a = RwSet::new();
        let mut b = RwSet::new();
        let rm = a.remove(r(1), 3u8).unwrap();
        let add = b.add(r(2), 3).unwrap();
        assert!(!a.contains(&3) && b.contains(&3));
        a.join(&add);
        b.join(&rm);
        assert!(!a.contains(&3) && !b.contains(&3));
    }

    #[test]
    fn iteration_skips_tombstones() {
        let mut s = RwSet::new();
        for e in 0..10u8 {
            let _ = s.add(r(1), e).unwrap();
        }
        for e in (0..10u8).step_by(2) {
            let _ = s.remove(r(1), e).unwrap();
        }
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![1, 3, 5, 7, 9]);
        assert_eq!(s.len(), 5);
        assert_eq!(s.tombstones(), 5);
        assert!(!s.is_empty());
        let back: RwSet<u8> = decode(&encode(&s), &Limits::default()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn compaction_needs_every_report_delivered_and_frees_stable_tombstones() {
        let mut a = RwSet::new();
        for e in 0..4u8 {
            let _ = a.add(r(1), e).unwrap();
        }
        let _ = a.remove(r(1), 0).unwrap();
        let _ = a.remove(r(1), 1).unwrap();
        let mut b = a.clone();
        // b removes 2, which a has not delivered.
        let rm2 = b.remove(r(2), 2).unwrap();
        let reports = [a.context().clone(), b.context().clone()];
        let before = a.clone();
        assert_eq!(
            a.compact(&reports),
            Err(CompactError::NotDelivered { report: 1 })
        );
        assert_eq!(a, before, "a refused compaction changes nothing");
        a.join(&rm2);
        let size = encoded_len(&a);
        let d = a.compact(&reports).unwrap();
        assert_eq!(a.tombstones(), 1, "2 is not yet in a's report");
        assert!(encoded_len(&a) < size);
        assert_eq!(a.iter().copied().collect::<Vec<_>>(), vec![3]);
        // The delta only removes dots: joined anywhere, reads do not change.
        let mut c = b.clone();
        c.join(&d);
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), vec![3]);
        // No report at all: nothing is stable.
        let mut e = a.clone();
        assert!(e.compact([]).unwrap().is_bottom());
        assert_eq!(e, a);
    }
}
