//! # accordant-sync
//!
//! Converge replicas of [`accordant`] CRDTs across regions: a keyed store
//! under a Merkle digest tree, a sans-IO anti-entropy session that
//! reconciles two stores in few round trips and few bytes, delta
//! replication while peers are connected, and (feature `tokio`) a TCP node
//! that runs both between regions.
//!
//! ## Quickstart
//!
//! Two replicas diverge, then one session makes them equal again:
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::{sync_pair, SessionConfig, Store};
//!
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a: Store<String, GCounter> = Store::new();
//! let mut b: Store<String, GCounter> = Store::new();
//! let _ = a.update("views".into(), |c| c.increment(eu, 3)).unwrap();
//! let _ = b.update("views".into(), |c| c.increment(us, 2)).unwrap();
//! let (stats, _) = sync_pair(&mut a, &mut b, SessionConfig::default()).unwrap();
//! assert_eq!(a.root_digest(), b.root_digest());
//! assert_eq!(b.get(&"views".to_string()).unwrap().value(), 5);
//! assert!(stats.round_trips() <= 3);
//! ```
//!
//! Over real sockets, the TCP node of [`net`] (feature `tokio`) does the same
//! between regions: see its module docs for a two-node example.
//!
//! ## Layers
//!
//! Each layer depends only on the ones below it.
//!
//! | layer | modules |
//! |---|---|
//! | transports | `net` (feature `tokio`): TCP nodes, a delaying proxy; `sim` (feature `sim`): a deterministic network simulator and simulated processes |
//! | delta path | [`delta`]: the delta-interval replicator (BP+RR) with its anti-entropy fall-back, and the delta paths a node plugs in |
//! | session host | [`host`]: per-peer session slots, session ids, in-order delivery, the tie-break, aborts, timeouts and backoff, for every transport |
//! | protocol | [`session`]: the sans-IO anti-entropy session; [`message`]: its wire format; [`sketch`]: rateless invertible Bloom lookup tables and the difference estimator |
//! | state | [`store`]: `Store<K, V>` under the digest [`tree`] of blake3 [`digest`]s; [`snapshot`]: backup files |
//! | bytes | [`wire`]: the one bounded reader and framing every decoder uses; [`key`]: keys' canonical bytes; [`peer`]: peer ids; [`error`] |
//!
//! A protocol never touches a socket or a clock: time comes in through
//! `handle_timeout(now)`, bytes through `handle(..)`, and goes out through
//! `poll_transmit()`, as in quinn-proto. The simulator, the TCP node and
//! the fuzzers drive the same host and session, so what is tested in the
//! simulator is what runs on the wire.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `tokio` | `net`: the TCP node, its binary `accordant-node`, and the proxy |
//! | `sim` | `sim`: the network simulator, for tests, examples and fuzzing |
//! | `arbitrary` | `Arbitrary` impls of the CRDT crate's types, for fuzzing |
//!
//! Every module logs through `tracing` (connections, sessions, refusals);
//! nothing is printed unless the application installs a subscriber.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admission;
pub mod delta;
pub mod digest;
pub mod error;
pub mod host;
pub mod key;
pub use session::message;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod net;
pub mod peer;
mod rng;
pub mod session;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;
pub mod sketch;
pub mod snapshot;
pub mod store;
pub mod token;
pub mod tree;
pub mod wire;

pub use delta::Replicator;
pub use error::SyncError;
pub use host::{HostConfig, SessionHost};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use net::{Node, NodeBuilder, NodeConfig};
pub use session::{sync_pair, Session, SessionConfig, SessionStats};
pub use store::Store;

/// The README's examples, compiled and run as doc-tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
