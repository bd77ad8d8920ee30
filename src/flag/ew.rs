//! `EwFlag`: an enable-wins flag.
//!
//! The state is a [`DotSet`] of *enable* dots with a causal context (the
//! enable-wins flag of Almeida, Shoker, Baquero, "Delta State Replicated Data
//! Types", JPDC 2018, §7; AntidoteDB's `flag_ew`, riak_dt's `od_flag`). The
//! flag is on while at least one enable dot survives:
//! - `enable` adds a fresh dot and drops the enable dots it has seen (so a
//!   flag enabled many times holds one dot);
//! - `disable` drops every enable dot it has seen and adds none.
//!
//! An enable concurrent with a disable carries a dot the disable never saw,
//! so it survives: **enable wins**. A disable that saw an enable turns it off
//! for good; redelivering the old enable changes nothing, because the
//! context remembers its dot. A disabled flag is bottom in its store, so
//! inside an [`OrMap`](crate::OrMap) a disabled key takes no room at all.
//!
//! ```
//! use accordant::{EwFlag, Lattice, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = EwFlag::new();
//! let _ = a.enable(eu).unwrap();
//! let mut b = a.clone();
//! let _ = a.disable();              // EU turns it off...
//! let _ = b.enable(us).unwrap();    // ...while US turns it on again
//! a.join(&b);
//! assert!(a.is_enabled(), "the concurrent enable wins");
//! ```

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_store::{DotSet, DotStore};
use crate::error::OverflowError;
use crate::replica::ReplicaId;
use crate::summary::Summarize;

/// An enable-wins flag (off until enabled): an enable concurrent with a
/// disable wins. Its dot store holds the surviving enable dots; a disabled
/// flag holds none.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct EwFlag(Causal<DotSet>);

impl EwFlag {
    /// A flag that is off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns the flag on at `replica`; returns the delta.
    ///
    /// Fails only if `replica` has exhausted its 2^64 dots.
    #[must_use = "the delta is what other replicas need"]
    pub fn enable(&mut self, replica: ReplicaId) -> Result<Self, OverflowError> {
        let (store, ctx) = self.0.parts_mut();
        let dot = ctx.next_dot(replica)?;
        let mut delta_ctx = CausalContext::from_dots([dot]);
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        ctx.insert(dot);
        *store = DotSet::single(dot);
        Ok(EwFlag(Causal::from_parts_unchecked(
            DotSet::single(dot),
            delta_ctx,
        )))
    }

    /// Turns the flag off (drops every enable seen here); returns the delta.
    /// An enable made concurrently elsewhere still wins.
    #[must_use = "the delta is what other replicas need"]
    pub fn disable(&mut self) -> Self {
        let (store, _) = self.0.parts_mut();
        let mut delta_ctx = CausalContext::new();
        store.for_each_dot(&mut |d| delta_ctx.insert(*d));
        *store = DotSet::default();
        EwFlag(Causal::from_parts_unchecked(DotSet::default(), delta_ctx))
    }

    /// Whether the flag is on.
    pub fn is_enabled(&self) -> bool {
        !self.0.store().is_empty()
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        self.0.context()
    }
}

impl CausalCrdt for EwFlag {
    type Store = DotSet;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        EwFlag(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([] EwFlag => DotSet);

/// Summarised by its causal context, like every causal type.
impl Summarize for EwFlag {
    type Summary = CausalContext;

    fn summary(&self) -> CausalContext {
        self.0.context().clone()
    }

    fn delta_for(&self, seen: &CausalContext) -> Self {
        EwFlag(self.0.delta_since(seen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encoded_len;
    use crate::lattice::Lattice;
    use crate::map::OrMap;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn enable_wins_over_a_concurrent_disable_in_both_delivery_orders() {
        let mut a = EwFlag::new();
        let d0 = a.enable(r(1)).unwrap();
        let mut b = EwFlag::new();
        b.join(&d0);
        let off = a.disable();
        let on = b.enable(r(2)).unwrap();
        a.join(&on);
        b.join(&off);
        assert_eq!(a, b);
        assert!(a.is_enabled());
    }

    #[test]
    fn a_disable_that_saw_the_enable_is_final() {
        let mut a = EwFlag::new();
        let on = a.enable(r(1)).unwrap();
        let off = a.disable();
        let mut b = EwFlag::new();
        b.join(&off);
        b.join(&on); // the old enable arrives late
        assert!(!b.is_enabled());
        assert_eq!(a, b);
    }

    #[test]
    fn repeated_enables_hold_one_dot() {
        let mut a = EwFlag::new();
        for _ in 0..100 {
            let _ = a.enable(r(1)).unwrap();
        }
        assert_eq!(a.as_causal().store().len(), 1);
        // context: len + id + one range (gap, 1-byte length); store: len + dot.
        assert_eq!(encoded_len(&a), (1 + 16 + 1 + 1 + 1) + (1 + 1 + 1));
    }

    #[test]
    fn inside_a_map_a_disabled_flag_is_no_entry() {
        let mut m: OrMap<&str, EwFlag> = OrMap::new();
        let _ = m.try_update("dark-mode", |f| f.enable(r(1))).unwrap();
        assert!(m.get_value(&"dark-mode").unwrap().is_enabled());
        let _ = m.update("dark-mode", |f| f.disable());
        assert!(!m.contains_key(&"dark-mode"));
    }
}
