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
//! Causal types (OR-Set, MV-Register, OR-Map, causal counter, shopping cart)
//! are a dot store plus a [`CausalContext`]: removal leaves no tombstone.
//!
//! ## Semantics at a glance
//!
//! | type | concurrent writes | removal |
//! |---|---|---|
//! | [`GCounter`], [`PNCounter`] | increments add up, none lost | — |
//! | [`LwwRegister`] | the larger (HLC timestamp, replica) wins; the other write is dropped | — |
//! | [`MvRegister`] | all concurrent values kept until a write that saw them | — |
//! | [`OrSet`] | union | add-wins: a concurrent add survives a remove |
//! | [`OrMap`] | values merge recursively | observed-remove, reset: a concurrent update survives alone |
//! | [`ShoppingCart`] | quantities add up | an item removed without a concurrent add never comes back |
//!
//! Encodings are canonical and decoding from untrusted bytes is bounded and
//! validating: see [`codec`].

#![forbid(unsafe_code)]

pub mod causal;
pub mod causal_state;
pub mod claims;
pub mod clock;
pub mod codec;
pub mod counter;
pub mod dot_store;
pub mod error;
pub mod lattice;
pub mod map;
pub mod register;
pub mod replica;
pub mod set;
pub mod summary;

pub use causal::CausalContext;
pub use causal_state::{Causal, CausalCrdt};
pub use claims::{Claim, ClaimKind, Claims};
pub use clock::{Clock, Hlc, HlcClock, ManualClock, SystemClock};
pub use counter::{CausalCounter, GCounter, PNCounter};
pub use dot_store::{DotFun, DotMap, DotSet, DotStore, WireStore};
pub use error::{ClockError, DecodeError, OverflowError};
pub use lattice::{Decompose, Lattice};
pub use map::{OrMap, ShoppingCart};
pub use register::{LwwRegister, MvRegister};
pub use replica::{Dot, ReplicaId};
pub use set::OrSet;
pub use summary::{LwwStamp, Summarize};
