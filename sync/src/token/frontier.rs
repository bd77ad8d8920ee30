//! Frontiers: what a value has seen, and what "covers" means per type.
//!
//! A session token records, per key, the [`Frontier`] of the value the
//! client last wrote or read. A region's value for that key *covers* the
//! token when its own frontier proves that the value is at least the one
//! the client saw in the lattice order (`seen ⊑ local`): then answering
//! with it is read-your-writes and monotonic reads (Terry et al., "Session
//! Guarantees for Weakly Consistent Replicated Data", PDIS 1994). The test
//! is exact, per type:
//!
//! - **Causal types** (sets, maps, carts, registers, flags, the causal
//!   counter): a state is a dot store and a causal context (Almeida et al.,
//!   JPDC 2018). The frontier keeps, per replica, the context's dots
//!   (`Seen`) and the dots still alive (`Live`). The local value covers it
//!   when (1) its context holds every `Seen` dot, and (2) every dot alive
//!   locally that the token had seen is alive in the token too: a dot the
//!   client saw removed must be removed here. (2) is what a version vector
//!   alone misses: an observed remove issues no dot, so a context-only test
//!   would let a region that never received the remove show the element
//!   again. Dots are unique and their payloads immutable, so (1) and (2)
//!   together are exactly `seen ⊑ local`.
//! - **Counters** ([`GCounter`], [`PNCounter`], [`BoundedCounter`]): per
//!   replica the counts only it raises (increments, decrements, rights
//!   transferred out, see [`accordant::Claims`]). Covered when every local
//!   count is at least the token's. A bounded counter's row grows in every
//!   change, so this is its lattice order too.
//! - **[`LwwRegister`]**: the winning write's stamp `(hlc, replica)`.
//!   Covered when the local stamp is at least the token's: the value is the
//!   client's or one that overwrote it.
//!
//! Replicas are named by their full id: a shortened id could let two
//! replicas share a name, and a token would then be covered by the wrong
//! replica's writes. The token's encoding interns each id once (see
//! [`SessionToken`](super::SessionToken)), so a region costs 16 bytes once
//! per token plus a few bytes per key.
//!
//! ```
//! use accordant::{Lattice, OrSet, ReplicaId};
//! use accordant_sync::token::Versioned;
//!
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut eu_set = OrSet::new();
//! let _ = eu_set.add(eu, "x").unwrap();
//! let mut us_set = eu_set.clone();
//! let _ = eu_set.remove(&"x"); // observed remove: no new dot
//! let seen = eu_set.frontier();
//! // US has the same context but still shows "x": not covered.
//! assert!(!seen.lag(&us_set.frontier()).is_zero());
//! us_set.join(&eu_set);
//! assert!(seen.lag(&us_set.frontier()).is_zero());
//! let _ = us_set.add(us, "y").unwrap(); // newer than what was seen: still covers
//! assert!(seen.lag(&us_set.frontier()).is_zero());
//! ```

use std::collections::BTreeMap;

use accordant::dot_store::DotStore;
use accordant::{
    BoundedCounter, Causal, CausalCounter, CausalCrdt, ClaimKind, Claims, DwFlag, EwFlag, GCounter,
    LwwRegister, MvRegister, OrMap, OrSet, PNCounter, ReplicaId, RwSet, ShoppingCart,
};

use super::spans::Spans;

/// Which set or count of a replica a frontier entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Mark {
    /// Dots in the causal context.
    Seen,
    /// Dots alive in the dot store.
    Live,
    /// A grow-only count of increments.
    Increments,
    /// A grow-only count of decrements.
    Decrements,
    /// A grow-only count of rights transferred out.
    Transfers,
}

impl Mark {
    pub(crate) fn code(self) -> u8 {
        match self {
            Mark::Seen => 0,
            Mark::Live => 1,
            Mark::Increments => 2,
            Mark::Decrements => 3,
            Mark::Transfers => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => Mark::Seen,
            1 => Mark::Live,
            2 => Mark::Increments,
            3 => Mark::Decrements,
            4 => Mark::Transfers,
            _ => return None,
        })
    }

    fn is_count(self) -> bool {
        matches!(self, Mark::Increments | Mark::Decrements | Mark::Transfers)
    }
}

/// An LWW register's winning stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// The hybrid logical clock's physical part (ms).
    pub physical_ms: u64,
    /// Its logical part.
    pub logical: u32,
    /// The writer (full id: it breaks ties between equal clocks).
    pub replica: ReplicaId,
}

/// What a value has seen (see the [module docs](self)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    pub(crate) entries: BTreeMap<(ReplicaId, Mark), Spans>,
    pub(crate) stamp: Option<Stamp>,
}

/// How far a local value is behind a frontier: zero means it covers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lag {
    /// Per replica, the dots and counted units the local value lacks, plus
    /// the removes it has not applied.
    pub missing: Vec<(ReplicaId, u64)>,
    /// Whether the local LWW stamp is older than the token's.
    pub stamp_behind: bool,
}

impl Lag {
    /// Whether the local value covers the frontier.
    pub fn is_zero(&self) -> bool {
        self.missing.is_empty() && !self.stamp_behind
    }

    /// The units missing in all (saturated).
    pub fn total(&self) -> u64 {
        self.missing
            .iter()
            .fold(0u64, |a, (_, n)| a.saturating_add(*n))
    }
}

impl core::fmt::Display for Lag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} update(s) behind", self.total())?;
        for (t, n) in &self.missing {
            write!(f, ", {n} from replica {t}")?;
        }
        if self.stamp_behind {
            write!(f, ", an older last write")?;
        }
        Ok(())
    }
}

impl Frontier {
    /// The empty frontier (the bottom value's; covered by every value).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing was seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.stamp.is_none()
    }

    /// The entries, by replica tag and mark.
    pub fn entries(&self) -> impl Iterator<Item = (ReplicaId, Mark, &Spans)> {
        self.entries.iter().map(|((t, m), s)| (*t, *m, s))
    }

    /// The LWW stamp, if any.
    pub fn stamp(&self) -> Option<Stamp> {
        self.stamp
    }

    /// How far `local` is behind `self` (zero: `local` covers `self`).
    pub fn lag(&self, local: &Frontier) -> Lag {
        let mut missing: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        let empty = Spans::new();
        let mut add = |t: ReplicaId, n: u64| {
            if n > 0 {
                let e = missing.entry(t).or_default();
                *e = e.saturating_add(n);
            }
        };
        for (&(tag, mark), want) in &self.entries {
            let have = local.entries.get(&(tag, mark)).unwrap_or(&empty);
            match mark {
                Mark::Seen => {
                    add(tag, want.missing_from(have));
                    // Removes: what is alive here among what the token
                    // saw must be alive in the token.
                    let token_live = self.entries.get(&(tag, Mark::Live)).unwrap_or(&empty);
                    let local_live = local.entries.get(&(tag, Mark::Live)).unwrap_or(&empty);
                    add(tag, local_live.intersection(want).missing_from(token_live));
                }
                Mark::Live => {}
                _ => add(tag, want.max().saturating_sub(have.max())),
            }
        }
        Lag {
            missing: missing.into_iter().collect(),
            stamp_behind: self.stamp.is_some() && local.stamp < self.stamp,
        }
    }

    /// Sets `spans` of `mark` for `replica` (a count keeps its largest
    /// value: a replica may appear more than once among a type's claims).
    pub(crate) fn put(&mut self, replica: ReplicaId, mark: Mark, spans: Spans) {
        if spans.is_empty() {
            return;
        }
        match self.entries.get_mut(&(replica, mark)) {
            None => {
                self.entries.insert((replica, mark), spans);
            }
            Some(old) if mark.is_count() => {
                *old = Spans::up_to(old.max().max(spans.max()));
            }
            Some(old) => *old = old.union(&spans),
        }
    }

    /// The frontier of a causal state: its context and its live dots.
    pub fn of_causal<S: DotStore>(state: &Causal<S>) -> Self {
        let mut f = Frontier::new();
        let ctx = state.context();
        let mut live: BTreeMap<ReplicaId, Vec<u64>> = BTreeMap::new();
        state
            .store()
            .for_each_dot(&mut |d| live.entry(d.replica()).or_default().push(d.counter()));
        for r in ctx.replicas() {
            let mut seen = Spans::new();
            for range in ctx.ranges(r) {
                seen.insert(*range.start(), *range.end());
            }
            let mut alive = Spans::new();
            if let Some(mut v) = live.remove(&r) {
                v.sort_unstable();
                for n in v {
                    alive.insert(n, n);
                }
            }
            f.put(r, Mark::Seen, seen);
            if !alive.is_empty() {
                f.put(r, Mark::Live, alive);
            }
        }
        f
    }

    /// The frontier of a counter: its per-replica counts (its
    /// [claims](accordant::Claims) that are sequences).
    pub fn of_counts<C: Claims>(c: &C) -> Self {
        let mut f = Frontier::new();
        c.for_each_claim(&mut |claim| {
            let mark = match claim.kind {
                ClaimKind::Increments => Mark::Increments,
                ClaimKind::Decrements => Mark::Decrements,
                ClaimKind::Transfers => Mark::Transfers,
                _ => return,
            };
            f.put(claim.replica, mark, Spans::up_to(claim.value));
        });
        f
    }
}

/// A value whose [`Frontier`] can be taken: every type of `accordant`.
pub trait Versioned {
    /// What this value has seen.
    fn frontier(&self) -> Frontier;
}

macro_rules! causal_versioned {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)*> Versioned for $t where $t: CausalCrdt {
            fn frontier(&self) -> Frontier {
                Frontier::of_causal(self.as_causal())
            }
        }
    )*};
}

causal_versioned!(
    [] CausalCounter,
    [E] OrSet<E>,
    [V] MvRegister<V>,
    [K, V: CausalCrdt] OrMap<K, V>,
    [Item] ShoppingCart<Item>,
);

/// Flags and the remove-wins set are causal types with their own
/// accessors.
macro_rules! context_versioned {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)*> Versioned for $t where $t: CausalCrdt {
            fn frontier(&self) -> Frontier {
                Frontier::of_causal(self.as_causal())
            }
        }
    )*};
}

context_versioned!([] EwFlag, [] DwFlag, [E] RwSet<E>);

macro_rules! count_versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn frontier(&self) -> Frontier {
                Frontier::of_counts(self)
            }
        }
    )*};
}

count_versioned!(GCounter, PNCounter, BoundedCounter);

impl<V: Clone + Ord> Versioned for LwwRegister<V> {
    fn frontier(&self) -> Frontier {
        Frontier {
            stamp: self.stamp().map(|(h, r)| Stamp {
                physical_ms: h.physical_ms(),
                logical: h.logical(),
                replica: r,
            }),
            ..Frontier::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accordant::{Hlc, Lattice};

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    /// `a ⊑ b` by the lattice: `a ⊔ b == b`.
    fn below<T: Lattice + PartialEq + Clone>(a: &T, b: &T) -> bool {
        a.clone().joined(b) == *b
    }

    #[test]
    fn covers_is_the_lattice_order_for_or_sets() {
        // Random OR-set histories over three replicas with partial syncs:
        // `lag == 0` exactly when `seen ⊑ local`.
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        let mut agree = (0, 0);
        for _ in 0..300 {
            let mut reps: Vec<OrSet<u8>> = vec![OrSet::new(); 3];
            for _ in 0..next(12) {
                let i = next(3) as usize;
                match next(4) {
                    0 | 1 => {
                        let _ = reps[i].add(r(i as u128 + 1), next(4) as u8).unwrap();
                    }
                    2 => {
                        let _ = reps[i].remove(&(next(4) as u8));
                    }
                    _ => {
                        let j = next(3) as usize;
                        let other = reps[j].clone();
                        reps[i].join(&other);
                    }
                }
            }
            for a in 0..3 {
                for b in 0..3 {
                    let lattice = below(&reps[a], &reps[b]);
                    let lag = reps[a].frontier().lag(&reps[b].frontier());
                    assert_eq!(lag.is_zero(), lattice, "{:?} vs {:?}", reps[a], reps[b]);
                    agree.0 += usize::from(lattice);
                    agree.1 += usize::from(!lattice);
                }
            }
        }
        // Both outcomes were exercised.
        assert!(agree.0 > 100 && agree.1 > 100, "{agree:?}");
    }

    #[test]
    fn counters_registers_and_bounded_counters() {
        let mut a = PNCounter::new();
        let _ = a.increment(r(1), 3).unwrap();
        let mut b = a.clone();
        let _ = a.decrement(r(2), 1).unwrap();
        let lag = a.frontier().lag(&b.frontier());
        assert_eq!(lag.total(), 1);
        b.join(&a);
        assert!(a.frontier().lag(&b.frontier()).is_zero());

        let mut x = BoundedCounter::new();
        let _ = x.increment(r(1), 10).unwrap();
        let mut y = x.clone();
        let _ = x.transfer(r(1), r(2), 4).unwrap();
        assert_eq!(x.frontier().lag(&y.frontier()).total(), 4);
        y.join(&x);
        assert!(x.frontier().lag(&y.frontier()).is_zero());

        let mut l = LwwRegister::new();
        let _ = l.write_at(Hlc::new(5, 0), r(1), "old");
        let stale = l.clone();
        let _ = l.write_at(Hlc::new(6, 0), r(2), "new");
        assert!(l.frontier().lag(&stale.frontier()).stamp_behind);
        assert!(stale.frontier().lag(&l.frontier()).is_zero());
        // Equal clocks: the replica breaks the tie, as in the join.
        let mut t1 = LwwRegister::new();
        let _ = t1.write_at(Hlc::new(5, 0), r(2), "tie");
        assert!(!t1.frontier().lag(&stale.frontier()).is_zero());
    }
}
