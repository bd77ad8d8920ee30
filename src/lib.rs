//! # accordant
//!
//! State- and delta-based CRDTs for active-active, multi-region data: every
//! region takes writes, a partition splits the brain, and when it heals the
//! replicas converge by themselves, with no write lost.
//!
//! ## The model
//!
//! Every type here is a join-semilattice ([`Lattice`]): replicas merge states
//! with `join`, which is commutative, associative and idempotent, so any
//! delivery order, duplicated or not, converges (Shapiro et al., SSS 2011).
//! Every mutator is a *delta mutator* (Almeida, Shoker, Baquero, JPDC 2018):
//! it applies the change and returns a small delta of the same type to ship to
//! the other replicas. Every type is also a [`Decompose`]: it splits into
//! join-irreducibles and computes the minimal delta `Δ(a, b)` that a replica
//! `b` lacks from `a` (Enes et al., ICDE 2019); the sync crate uses it to send
//! only what the other side does not have.
//!
//! Causal types (OR-Set, MV-Register, OR-Map, causal counter, shopping cart,
//! flags, remove-wins set) are a dot store plus a [`CausalContext`]: removal
//! leaves no tombstone (except in the remove-wins set, where a removal must
//! outlive the adds it defeats).
//!
//! ## Semantics at a glance
//!
//! | type | concurrent writes | removal |
//! |---|---|---|
//! | [`GCounter`], [`PNCounter`] | increments add up, none lost | — |
//! | [`BoundedCounter`] | increments add up; a decrement spends rights its replica holds, so the value never goes below zero | — |
//! | [`LwwRegister`] | the larger (HLC timestamp, replica) wins; the other write is dropped | — |
//! | [`MvRegister`] | all concurrent values kept until a write that saw them | — |
//! | [`EwFlag`] | enable wins over a concurrent disable | — |
//! | [`DwFlag`] | disable wins over a concurrent enable | — |
//! | [`OrSet`] | union | add-wins: a concurrent add survives a remove |
//! | [`RwSet`] | union | remove-wins: a concurrent remove defeats an add; an add that saw the remove wins |
//! | [`OrMap`] | values merge recursively | observed-remove, reset: a concurrent update survives alone |
//! | [`ShoppingCart`] | quantities add up | an item removed without a concurrent add never comes back |
//!
//! Encodings are canonical and decoding from untrusted bytes is bounded and
//! validating: see [`codec`].

#![forbid(unsafe_code)]

pub mod bytes;
pub mod causal;
pub mod causal_state;
pub mod claims;
pub mod clock;
pub mod codec;
pub mod counter;
pub mod dot_pair;
pub mod dot_store;
pub mod error;
pub mod flag;
pub mod lattice;
pub mod map;
pub mod register;
pub mod replica;
pub mod set;
pub mod summary;

pub use bytes::Bytes;
pub use causal::CausalContext;
pub use causal_state::{Causal, CausalCrdt};
pub use claims::{Claim, ClaimKind, Claims};
pub use clock::{Clock, Hlc, HlcClock, ManualClock, SystemClock};
pub use counter::{BoundedCounter, CausalCounter, GCounter, PNCounter, RightsPolicy};
pub use dot_pair::DotPair;
pub use dot_store::{DotFun, DotMap, DotSet, DotStore, WireStore};
pub use error::{BoundedError, ClockError, CompactError, DecodeError, OverflowError};
pub use flag::{DwFlag, EwFlag};
pub use lattice::{Decompose, Lattice};
pub use map::{OrMap, ShoppingCart};
pub use register::{LwwRegister, MvRegister};
pub use replica::{Dot, ReplicaId};
pub use set::{OrSet, RwSet, SetStore};
pub use summary::{LwwStamp, Summarize};
