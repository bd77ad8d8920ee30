//! `DwFlag`: a disable-wins flag.
//!
//! The state is a [`DotPair`] of *enable* dots and *disable* dots under one
//! causal context (the semantics of AntidoteDB's `flag_dw`, built as a delta
//! CRDT in the style of Almeida, Shoker, Baquero, JPDC 2018, §7). Both
//! operations add a fresh dot of their kind and drop every dot, of either
//! kind, that the replica has seen. The flag is on when some enable dot
//! survives and **no** disable dot does:
//! - an enable and a disable made concurrently both survive the join, and
//!   the surviving disable dot keeps the flag off: **disable wins**;
//! - an enable that saw the disable dropped its dot, and turns the flag on.
//!
//! It starts off (no dot at all). Sequential writes keep one dot; concurrent
//! writes keep one dot each until a write that saw them all.
//!
//! Inside an [`OrMap`](crate::OrMap), removing the key drops the dots seen,
//! as for every value: a concurrent enable brings the key back *on*, and a
//! concurrent disable brings it back *off*. A disabled flag holds a dot, so
//! its key stays in the map; read the flag, not the key's presence.
//!
//! ```
//! use accordant::{DwFlag, Lattice, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = DwFlag::new();
//! let _ = a.enable(eu).unwrap();
//! let mut b = a.clone();
//! let _ = a.disable(eu).unwrap();   // EU turns the feature off...
//! let _ = b.enable(us).unwrap();    // ...while US re-enables it
//! a.join(&b);
//! assert!(!a.is_enabled(), "the concurrent disable wins");
//! let _ = a.enable(us).unwrap();    // an enable that saw the disable
//! assert!(a.is_enabled());
//! ```

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_pair::DotPair;
use crate::dot_store::{DotSet, DotStore};
use crate::error::OverflowError;
use crate::replica::ReplicaId;
use crate::summary::Summarize;

/// A disable-wins flag (off until enabled): a disable concurrent with an
/// enable wins; an enable that saw the disable wins. Its dot store holds the
/// surviving enable dots first and disable dots second.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct DwFlag(Causal<DotPair<DotSet, DotSet>>);

impl DwFlag {
    /// A flag that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns the flag on at `replica`; returns the delta. A disable made
    /// concurrently elsewhere wins over it.
    ///
    /// Fails only if `replica` has exhausted its 2^64 dots.
    #[must_use = "the delta is what other replicas need"]
    pub fn enable(&mut self, replica: ReplicaId) -> Result<Self, OverflowError> {
        self.write(replica, true)
    }

    /// Turns the flag off at `replica`; returns the delta. It wins over any
    /// enable it has not seen.
    ///
    /// Fails only if `replica` has exhausted its 2^64 dots.
    #[must_use = "the delta is what other replicas need"]
    pub fn disable(&mut self, replica: ReplicaId) -> Result<Self, OverflowError> {
        self.write(replica, false)
    }

    fn write(&mut self, replica: ReplicaId, on: bool) -> Result<Self, OverflowError> {
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.next_dot(replica)?;
        let mut delta_ctx = CausalContext::from_dots([dot]);
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        ctx.insert(dot);
        let written = if on {
            DotPair::new(DotSet::single(dot), DotSet::default())
        } else {
            DotPair::new(DotSet::default(), DotSet::single(dot))
        };
        *store = written.clone();
        Ok(DwFlag(Causal::from_parts_unchecked(written, delta_ctx)))
    }

    /// Whether the flag is on: some enable survives and no disable does.
    pub fn is_enabled(&self) -> bool {
        let dots = self.0.store();
        !dots.first().is_empty() && dots.second().is_empty()
    }

    /// Whether concurrent writes disagree (enables and disables both
    /// survive; the flag reads off until a write that saw them all).
    pub fn is_conflicted(&self) -> bool {
        let dots = self.0.store();
        !dots.first().is_empty() && !dots.second().is_empty()
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        self.0.context()
    }
}

impl CausalCrdt for DwFlag {
    type Store = DotPair<DotSet, DotSet>;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        DwFlag(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([] DwFlag => DotPair<DotSet, DotSet>);

/// Summarised by its causal context, like every causal type.
impl Summarize for DwFlag {
    type Summary = CausalContext;

    fn summary(&self) -> CausalContext {
        self.0.context().clone()
    }

    fn delta_for(&self, seen: &CausalContext) -> Self {
        DwFlag(self.0.delta_since(seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lattice::Lattice;
    use crate::map::OrMap;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn disable_wins_over_a_concurrent_enable_in_both_delivery_orders() {
        let mut a = DwFlag::new();
        let mut b = DwFlag::new();
        let off = a.disable(r(1)).unwrap();
        let on = b.enable(r(2)).unwrap();
        a.join(&on);
        b.join(&off);
        assert_eq!(a, b);
        assert!(!a.is_enabled());
        assert!(a.is_conflicted());
        // A write that saw both settles it, either way.
        let mut c = a.clone();
        let _ = a.enable(r(1)).unwrap();
        assert!(a.is_enabled() && !a.is_conflicted());
        let _ = c.disable(r(2)).unwrap();
        assert!(!c.is_enabled() && !c.is_conflicted());
    }

    #[test]
    fn starts_off_and_concurrent_enables_keep_it_on() {
        let mut a = DwFlag::new();
        assert!(!a.is_enabled());
        let mut b = DwFlag::new();
        let da = a.enable(r(1)).unwrap();
        let db = b.enable(r(2)).unwrap();
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        assert!(a.is_enabled());
        assert_eq!(a.as_causal().store().dot_count(), 2);
        // Sequential writes compact to one dot.
        let _ = a.disable(r(1)).unwrap();
        let _ = a.enable(r(1)).unwrap();
        assert_eq!(a.as_causal().store().dot_count(), 1);
    }

    #[test]
    fn a_late_old_enable_does_not_undo_a_disable() {
        let mut a = DwFlag::new();
        let on = a.enable(r(1)).unwrap();
        let off = a.disable(r(1)).unwrap();
        let mut b = DwFlag::new();
        b.join(&off);
        b.join(&on);
        assert!(!b.is_enabled());
        assert_eq!(a, b);
    }

    #[test]
    fn inside_a_map_a_concurrent_disable_survives_the_key_removal() {
        let mut a: OrMap<u8, DwFlag> = OrMap::new();
        let _ = a.try_update(1, |f| f.enable(r(1))).unwrap();
        let mut b = a.clone();
        let rm = a.remove(&1);
        let off = b.try_update(1, |f| f.disable(r(2))).unwrap();
        a.join(&off);
        b.join(&rm);
        assert_eq!(a, b);
        let flag = a.get_value(&1).expect("the disable brings the key back");
        assert!(!flag.is_enabled());
    }
}
