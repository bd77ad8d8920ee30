//! # accordant-sync
//!
//! Anti-entropy for [`accordant`] CRDTs: a keyed store under a Merkle digest
//! tree, a sans-IO session that converges two stores, and a deterministic
//! network simulator to measure what convergence costs.
//!
//! - [`store`]: `Store<K, V>`, CRDT values under an incrementally maintained
//!   Merkle digest tree.
//! - [`session`]: the sans-IO anti-entropy `Session` (and [`session::sync_pair`]),
//!   with its versioned, bounded wire format in [`session::message`]
//!   (re-exported as [`message`] for the transports); [`error`]: its errors.
//! - [`sketch`]: rateless invertible Bloom lookup tables, with which the
//!   session names the differing items in about one round trip.
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

pub mod delta;
pub mod digest;
pub mod driver;
pub mod error;
pub mod key;
pub use session::message;
#[cfg(feature = "tokio")]
pub mod net;
pub mod session;
pub mod sim;
pub mod sketch;
pub mod snapshot;
pub mod store;
pub mod tree;
pub mod wire;
