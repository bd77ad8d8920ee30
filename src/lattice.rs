//! Join-semilattices, delta mutators and join decompositions.
//!
//! A state-based CRDT is a join-semilattice: a partial order in which any two
//! states have a least upper bound, their *join* `a ⊔ b`. Join is commutative,
//! associative and idempotent, so replicas that exchange states in any order,
//! any number of times, end in the same state (Shapiro, Preguiça, Baquero,
//! Zawirski, "Conflict-free Replicated Data Types", SSS 2011). The bottom
//! element `⊥` is [`Default::default`].
//!
//! **Delta mutators** (Almeida, Shoker, Baquero, "Delta State Replicated Data
//! Types", JPDC 2018): every mutator of this crate applies the change locally
//! *and returns a delta*, a small state of the same type such that
//! `old ⊔ delta == new`. Shipping deltas instead of whole states is what makes
//! replication cheap; deltas are `#[must_use]` because dropping one silently
//! means the write never leaves the replica.
//!
//! **Join decomposition** (Enes, Almeida, Baquero, Leitão, "Efficient
//! Synchronization of State-based CRDTs", ICDE 2019): every state is the join
//! of join-irreducible states, and the *minimal delta*
//! `Δ(a, b) = ⊔ { x ∈ ⇓a | x ⋢ b }` is the smallest state with
//! `Δ(a, b) ⊔ b == a ⊔ b`: exactly what `b` lacks from `a`.
//!
//! ```
//! use accordant::{GCounter, Lattice, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a = GCounter::new();
//! let mut b = GCounter::new();
//! let d1 = a.increment(eu, 3).unwrap();
//! let d2 = b.increment(us, 4).unwrap();
//! a.join(&d2); // deltas are states: join them like states
//! b.join(&d1);
//! assert_eq!(a, b);
//! assert_eq!(a.value(), 7);
//! ```

/// A join-semilattice: the state space of a state-based CRDT.
///
/// Laws (checked for every type by the property tests in `tests/laws.rs`):
/// `join` is commutative, associative and idempotent, and `Self::default()`
/// is the bottom element (`⊥ ⊔ a == a`).
pub trait Lattice: Clone + Default + PartialEq {
    /// Joins `other` into `self`: `self := self ⊔ other`.
    fn join(&mut self, other: &Self);

    /// Joins an owned state; types override it when moving saves clones.
    fn join_owned(&mut self, other: Self) {
        self.join(&other);
    }

    /// Returns `self ⊔ other`.
    #[must_use]
    fn joined(mut self, other: &Self) -> Self {
        self.join(other);
        self
    }

    /// `self ⊑ other`: joining `self` into `other` changes nothing.
    fn leq(&self, other: &Self) -> bool {
        other.clone().joined(self) == *other
    }

    /// Whether this is the bottom state.
    fn is_bottom(&self) -> bool {
        *self == Self::default()
    }
}

/// Join decomposition and minimal deltas (Enes et al., ICDE 2019).
///
/// Laws (checked by the property tests): the join of `decompose()` is the
/// state itself; every element of `decompose()` is join-irreducible and not
/// bottom; `delta(b) ⊔ b == self ⊔ b`; no irreducible of `delta(b)` is below
/// `b`.
pub trait Decompose: Lattice {
    /// Splits the state into join-irreducible states whose join is `self`.
    ///
    /// The decomposition of bottom is empty. This materialises one state per
    /// irreducible, so it is meant for tests and analysis, not hot paths; use
    /// [`Decompose::delta`] to compute what a peer lacks.
    fn decompose(&self) -> Vec<Self>;

    /// The minimal delta `Δ(self, other)`: the join of the irreducibles of
    /// `self` that are not below `other`.
    #[must_use]
    fn delta(&self, other: &Self) -> Self;
}
