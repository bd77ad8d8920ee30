//! What a state claims about the replicas that wrote it: [`Claims`].
//!
//! A replica's writes are numbered. A causal type records them as *dots*
//! `(replica, n)` in its [`CausalContext`]; a [`GCounter`] as the count per
//! replica. A replica never reissues a dot and only ever raises its own
//! count, so every one of these numbers is a claim: "replica `r` issued
//! this much". Between trusted replicas the claims are true by
//! construction. From an untrusted peer they are not, and two lies do
//! lasting damage that a join can never undo (joins only grow):
//!
//! - a claim **for the receiver's own replica** above what it issued: the
//!   receiver would believe it wrote what it did not, and its next write
//!   would reuse a dot or be shadowed by the forged count;
//! - a claim **near `u64::MAX`**: the next local write overflows (a counter
//!   entry at `u64::MAX`, a context holding dot `u64::MAX - 1`), so every
//!   later write on that key fails, on every replica the state reaches.
//!
//! [`Claims::for_each_claim`] lists every claim of a state so that a
//! receiver can refuse such data before joining it (the sync crate's
//! `Admission` does). Each claim has a [`ClaimKind`]: the per-replica
//! sequences (dots, increments, decrements) that only their replica may
//! raise, and magnitudes (a causal counter's per-dot amounts) that are
//! bounded but belong to no sequence.
//!
//! Claims are read through the types' public API only: the causal types
//! through their context (every dot of a causal state is in its context,
//! which decoding checks), counters through their per-replica counts.
//! An [`LwwRegister`] claims the physical time of its hybrid-logical-clock
//! stamp ([`ClaimKind::Stamp`]): not a count, but a receiver bounds it by
//! its own clock plus a maximum offset, as [`LwwRegister::merge_remote`]
//! does, because a stamp from the far future would beat every later write.
//!
//! ```
//! use accordant::{Claim, ClaimKind, Claims, GCounter, ReplicaId};
//!
//! let eu = ReplicaId::from_u128(1);
//! let mut c = GCounter::new();
//! let _ = c.increment(eu, 5).unwrap();
//! let mut claims = Vec::new();
//! c.for_each_claim(&mut |claim| claims.push(claim));
//! assert_eq!(claims, [Claim { kind: ClaimKind::Increments, replica: eu, value: 5 }]);
//! assert_eq!(c.max_claim(ClaimKind::Increments, &eu), 5);
//! ```

use crate::causal::CausalContext;
use crate::causal_state::{Causal, CausalCrdt};
use crate::counter::{BoundedCounter, CausalCounter, GCounter, PNCounter};
use crate::dot_store::DotStore;
use crate::flag::{DwFlag, EwFlag};
use crate::map::{OrMap, ShoppingCart};
use crate::register::{LwwRegister, MvRegister};
use crate::replica::ReplicaId;
use crate::set::{OrSet, RwSet};

/// Which number a [`Claim`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ClaimKind {
    /// The largest dot counter of the replica in a causal context: the
    /// replica issued dots up to this one.
    Dots,
    /// A grow-only count of the replica (a [`GCounter`] entry, a
    /// [`PNCounter`]'s increments).
    Increments,
    /// A [`PNCounter`]'s or a [`BoundedCounter`]'s decrements by the
    /// replica.
    Decrements,
    /// A [`BoundedCounter`]'s rights the replica transferred to others, in
    /// all.
    Transfers,
    /// The absolute amount one dot of the replica carries (a
    /// [`CausalCounter`]'s or a [`ShoppingCart`] line's): no sequence, but
    /// bounded, since sums of them must stay in range.
    Magnitude,
    /// The physical time, in milliseconds since the Unix epoch, of a
    /// last-writer-wins stamp the replica wrote (an [`LwwRegister`]'s
    /// [`Hlc`](crate::Hlc)): no sequence, but bounded by the receiver's own
    /// clock, since a stamp from the far future would win every later
    /// write for as long as it lies ahead.
    Stamp,
}

impl ClaimKind {
    /// Whether only the claim's replica can raise it: a receiver that is
    /// that replica knows the true value (what it issued itself).
    pub fn is_sequence(self) -> bool {
        !matches!(self, ClaimKind::Magnitude | ClaimKind::Stamp)
    }
}

/// One claim of a state: `replica` issued `value` of `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    /// Which number.
    pub kind: ClaimKind,
    /// The replica it is claimed for.
    pub replica: ReplicaId,
    /// The number.
    pub value: u64,
}

/// A state that can list its [claims](self) about replicas.
pub trait Claims {
    /// Calls `f` for every claim of the state (a replica may appear more
    /// than once per kind; the largest value is the claim).
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim));

    /// The largest value claimed of `kind` for `replica` (0 if none).
    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        let mut max = 0;
        self.for_each_claim(&mut |c| {
            if c.kind == kind && c.replica == *replica {
                max = max.max(c.value);
            }
        });
        max
    }
}

impl Claims for CausalContext {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        for replica in self.replicas() {
            f(Claim {
                kind: ClaimKind::Dots,
                replica,
                value: self.max(&replica),
            });
        }
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        match kind {
            ClaimKind::Dots => self.max(replica),
            _ => 0,
        }
    }
}

/// A causal state: its context (which covers every dot of its store).
impl<S: DotStore> Claims for Causal<S> {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        self.context().for_each_claim(f);
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        self.context().max_claim(kind, replica)
    }
}

impl Claims for GCounter {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        for (replica, value) in self.iter() {
            f(Claim {
                kind: ClaimKind::Increments,
                replica,
                value,
            });
        }
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        match kind {
            ClaimKind::Increments => self.count(replica),
            _ => 0,
        }
    }
}

impl Claims for PNCounter {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        self.increments().for_each_claim(f);
        for (replica, value) in self.decrements().iter() {
            f(Claim {
                kind: ClaimKind::Decrements,
                replica,
                value,
            });
        }
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        match kind {
            ClaimKind::Increments => self.increments().count(replica),
            ClaimKind::Decrements => self.decrements().count(replica),
            _ => 0,
        }
    }
}

/// Calls `f` with the magnitude of every amount in a causal counter's dots.
fn amounts<'a>(dots: impl Iterator<Item = (&'a crate::Dot, &'a i64)>, f: &mut dyn FnMut(Claim)) {
    for (dot, amount) in dots {
        f(Claim {
            kind: ClaimKind::Magnitude,
            replica: dot.replica(),
            value: amount.unsigned_abs(),
        });
    }
}

impl Claims for CausalCounter {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        let causal = self.as_causal();
        causal.for_each_claim(f);
        amounts(causal.store().iter(), f);
    }
}

impl<E> Claims for OrSet<E>
where
    E: Clone + Eq + core::hash::Hash + core::fmt::Debug,
{
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        self.context().for_each_claim(f);
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        self.context().max_claim(kind, replica)
    }
}

impl<V> Claims for MvRegister<V>
where
    V: Clone + Ord + core::fmt::Debug,
{
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        self.context().for_each_claim(f);
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        self.context().max_claim(kind, replica)
    }
}

/// An OR-map: its one shared context. The dots of nested values are in
/// it; amounts nested in values are not listed (a [`ShoppingCart`] lists
/// its quantities).
impl<K, V> Claims for OrMap<K, V>
where
    K: Clone + Ord + core::fmt::Debug,
    V: CausalCrdt,
{
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        self.context().for_each_claim(f);
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        self.context().max_claim(kind, replica)
    }
}

/// A cart: the map's context, and every line's amounts.
impl<Item> Claims for ShoppingCart<Item>
where
    Item: Clone + Ord + core::fmt::Debug,
{
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        let map = self.as_map();
        map.for_each_claim(f);
        for (_, line) in map.iter() {
            amounts(line.iter(), f);
        }
    }
}

/// A bounded counter: every row's sequences (increments, decrements,
/// transfers out), which only the row's replica raises, and its backing
/// (the inflow it had seen), a bounded magnitude.
impl Claims for BoundedCounter {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        for (replica, inc, dec, out, backing) in self.row_numbers() {
            for (kind, value) in [
                (ClaimKind::Increments, inc),
                (ClaimKind::Decrements, dec),
                (ClaimKind::Transfers, out),
                (ClaimKind::Magnitude, backing),
            ] {
                f(Claim {
                    kind,
                    replica,
                    value,
                });
            }
        }
    }
}

/// Flags and the remove-wins set: their context.
macro_rules! context_claims {
    ($($t:ty),* $(,)?) => {$(
        impl Claims for $t {
            fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
                self.context().for_each_claim(f);
            }

            fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
                self.context().max_claim(kind, replica)
            }
        }
    )*};
}

context_claims!(EwFlag, DwFlag);

impl<E> Claims for RwSet<E>
where
    E: Clone + Ord + core::fmt::Debug,
{
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        self.context().for_each_claim(f);
    }

    fn max_claim(&self, kind: ClaimKind, replica: &ReplicaId) -> u64 {
        self.context().max_claim(kind, replica)
    }
}

/// A last-writer-wins register claims no count (see the [module docs](self)).
/// A register: the physical time of its stamp, claimed for the replica
/// that wrote it.
impl<V: Clone + Ord> Claims for LwwRegister<V> {
    fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
        if let Some((stamp, replica)) = self.stamp() {
            f(Claim {
                kind: ClaimKind::Stamp,
                replica,
                value: stamp.physical_ms(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode, encode, Limits};

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    fn all<C: Claims>(c: &C) -> Vec<Claim> {
        let mut v = Vec::new();
        c.for_each_claim(&mut |x| v.push(x));
        v.sort();
        v
    }

    #[test]
    fn counters_claim_their_counts() {
        let mut pn = PNCounter::new();
        let _ = pn.increment(r(1), 7).unwrap();
        let _ = pn.decrement(r(1), 3).unwrap();
        let _ = pn.decrement(r(2), 4).unwrap();
        assert_eq!(pn.max_claim(ClaimKind::Increments, &r(1)), 7);
        assert_eq!(pn.max_claim(ClaimKind::Decrements, &r(1)), 3);
        assert_eq!(pn.max_claim(ClaimKind::Decrements, &r(2)), 4);
        assert_eq!(pn.max_claim(ClaimKind::Dots, &r(1)), 0);
        assert_eq!(all(&pn).len(), 3);
        // The default `max_claim` agrees with the specialised ones.
        struct Plain<'a>(&'a PNCounter);
        impl Claims for Plain<'_> {
            fn for_each_claim(&self, f: &mut dyn FnMut(Claim)) {
                self.0.for_each_claim(f)
            }
        }
        for kind in [ClaimKind::Increments, ClaimKind::Decrements] {
            for rep in [r(1), r(2), r(3)] {
                assert_eq!(Plain(&pn).max_claim(kind, &rep), pn.max_claim(kind, &rep));
            }
        }
    }

    #[test]
    fn causal_types_claim_their_context_and_amounts() {
        let mut c = CausalCounter::new();
        let _ = c.add(r(1), -9).unwrap();
        let _ = c.add(r(1), 2).unwrap();
        let _ = c.add(r(2), 5).unwrap();
        assert_eq!(c.max_claim(ClaimKind::Dots, &r(1)), 2);
        assert_eq!(c.max_claim(ClaimKind::Magnitude, &r(1)), 9);
        assert_eq!(c.max_claim(ClaimKind::Magnitude, &r(2)), 5);

        let mut cart: ShoppingCart<u8> = ShoppingCart::new();
        let _ = cart.add(r(3), 1, 4).unwrap();
        let _ = cart.add(r(3), 2, 6).unwrap();
        assert_eq!(cart.max_claim(ClaimKind::Dots, &r(3)), 2);
        assert_eq!(cart.max_claim(ClaimKind::Magnitude, &r(3)), 6);

        let mut set: OrSet<u8> = OrSet::new();
        for e in 0..5 {
            let _ = set.add(r(4), e).unwrap();
        }
        let _ = set.remove(&3);
        assert_eq!(set.max_claim(ClaimKind::Dots, &r(4)), 5);

        let mut mv: MvRegister<u8> = MvRegister::new();
        let _ = mv.write(r(5), 1).unwrap();
        assert_eq!(
            all(&mv),
            [Claim {
                kind: ClaimKind::Dots,
                replica: r(5),
                value: 1
            }]
        );
        assert!(all(&LwwRegister::<u8>::new()).is_empty());
        let mut lww = LwwRegister::new();
        let _ = lww.write_at(crate::Hlc::new(1_700_000_000_123, 4), r(6), 9u8);
        assert_eq!(
            all(&lww),
            [Claim {
                kind: ClaimKind::Stamp,
                replica: r(6),
                value: 1_700_000_000_123
            }]
        );
        assert!(!ClaimKind::Stamp.is_sequence());
    }

    #[test]
    fn a_forged_context_shows_its_claim() {
        // A hostile state claiming dots 1..=u64::MAX - 1 of a replica
        // decodes (it is well-formed) and its claim is visible.
        let mut ctx = CausalContext::new();
        ctx.insert_range(r(1), 1, u64::MAX - 1);
        let forged: OrSet<u8> = decode(&encode(&ctx_set(ctx)), &Limits::default()).unwrap();
        assert_eq!(forged.max_claim(ClaimKind::Dots, &r(1)), u64::MAX - 1);
    }

    /// An empty OR-set whose context is `ctx` (what a remove of everything
    /// `ctx` covers produces).
    fn ctx_set(ctx: CausalContext) -> OrSet<u8> {
        let mut s = OrSet::new();
        s.join(&OrSet::from_causal(
            Causal::from_parts(Default::default(), ctx).unwrap(),
        ));
        s
    }

    use crate::lattice::Lattice;
}
