//! # accordant-sync
//!
//! Anti-entropy for [`accordant`] CRDTs: a keyed store under a Merkle digest
//! tree, a sans-IO session that converges two stores, and a deterministic
//! network simulator to measure what convergence costs.
//!
//! - [`store`]: `Store<K, V>`, CRDT values under an incrementally maintained
//!   Merkle digest tree.
//! - [`session`]: the sans-IO anti-entropy `Session` (and [`session::sync_pair`]).
//! - [`sketch`]: invertible Bloom lookup tables, with which the session
//!   names the differing keys under many nodes in one message.
//! - [`message`]: the versioned, bounded wire format; [`error`]: its errors.
//! - [`digest`]: blake3 digests of keys and values, and the order-independent
//!   aggregate (a sum modulo 2^128 with a count) that Merkle nodes hold.
//! - [`tree`]: the Merkle digest tree over the key-hash space, maintained in
//!   O(depth) per update.
//! - [`sim`]: a discrete-event network simulator on virtual time with a
//!   seeded RNG: latency, bandwidth, loss, duplication, reordering, partitions.
//! - [`driver`]: a simulator node that runs sessions with its peers
//!   periodically, with timeouts, retries and deduplication.
//! - [`snapshot`]: atomic, checksummed, versioned snapshot files of stores.
//! - `net` (feature `tokio`): the TCP transport — nodes that accept and dial
//!   peers, push deltas while connected, run sessions on reconnect and
//!   periodically, reconnect with backoff, snapshot and shut down
//!   gracefully — and a delaying, cuttable proxy for tests and demos.

#![forbid(unsafe_code)]

pub mod admission;
pub mod delta;
pub mod digest;
pub mod error;
pub mod host;
pub mod key;
pub mod message;
#[cfg(feature = "tokio")]
pub mod net;
pub mod peer;
mod rng;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sketch;
pub mod snapshot;
pub mod store;
pub mod tree;
pub mod wire;
