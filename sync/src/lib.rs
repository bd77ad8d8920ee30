//! # accordant-sync
//!
//! Anti-entropy for [`accordant`] CRDTs: Merkle digests over a keyed store,
//! and a deterministic network simulator to measure what convergence costs.
//!
//! - [`digest`]: blake3 digests of keys and values, and the order-independent
//!   aggregate (a sum modulo 2^128 with a count) that Merkle nodes hold.
//! - [`tree`]: the Merkle digest tree over the key-hash space, maintained in
//!   O(depth) per update.
//! - [`sim`]: a discrete-event network simulator on virtual time with a
//!   seeded RNG: latency, bandwidth, loss, duplication, reordering, partitions.

#![forbid(unsafe_code)]

pub mod digest;
pub mod error;
pub mod message;
pub mod session;
pub mod sim;
pub mod store;
pub mod tree;
