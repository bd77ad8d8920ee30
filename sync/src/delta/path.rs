//! The delta path: how each local write reaches the connected peers.
//!
//! A transport's node (the TCP node of `net`, behind the `tokio` feature)
//! keeps replicas close while they are connected by
//! shipping deltas, and repairs whatever that misses by anti-entropy
//! sessions (on every connect and periodically). The delta path is a
//! [`DeltaReplicator`], one per channel, behind this trait so that a
//! smarter one — delta groups with sequence numbers, acks, back-propagation
//! and redundancy avoidance (BP+RR, Enes et al.), as in `crate::delta` — can
//! replace the default without touching the connection code.
//!
//! The default, [`NaivePush`], sends each local write's `(key, delta)` once
//! to every peer connected at that moment, through the peer's bounded
//! queue, and joins what it receives. It keeps no buffer and expects no ack:
//!
//! - a peer that is not connected gets nothing (anti-entropy on reconnect
//!   repairs it);
//! - a peer whose queue is full (a slow link, a stalled peer) gets nothing
//!   either: the delta is **dropped and counted**
//!   (the TCP node counts them in its `deltas_dropped`), and the node starts
//!   an anti-entropy session with that peer soon. Memory stays bounded
//!   whatever the write rate, and no write is lost, only delayed. That is
//!   the backpressure story: bounded queues, drop, repair by digest.
//! - it does not relay: in a full mesh every writer reaches every peer; in
//!   other topologies anti-entropy carries writes across.
//!
//! Payloads are opaque to the connection: a replicator may put sequence
//! numbers, acks or delta groups in them. Every payload received is
//! validated before anything of it is applied, like the session's messages:
//! decoded within limits, then every value it carries passes the node's
//! [`Admit`] check ([`Admission`](crate::admission::Admission): no writes
//! of the receiver's own replica it did not make, nothing above the
//! ceiling). One refused value refuses the whole payload.
//!
//! A sans-IO replicator with acks plugs in by mapping: `on_connect` and
//! `on_disconnect` to adding and removing a neighbour, `on_local_write` to
//! recording the local delta, `on_receive` to its receive, `on_tick` to its
//! periodic sync step (every few ticks), and after each call its queued
//! messages to [`Outbox::send`] ([`AckedDeltas`](super::AckedDeltas) does
//! exactly that). The TCP node takes one per channel (`NodeBuilder::channel_with`).
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::admission::Admission;
//! use accordant_sync::delta::{DeltaReplicator, NaivePush, Outbox};
//! use accordant_sync::peer::PeerId;
//! use accordant_sync::store::Store;
//!
//! /// Collects what the replicator sends.
//! struct Wire(Vec<(PeerId, Vec<u8>)>);
//! impl Outbox for Wire {
//!     fn peers(&self) -> Vec<PeerId> { vec![PeerId(2)] }
//!     fn send(&mut self, peer: PeerId, payload: &[u8]) -> bool {
//!         self.0.push((peer, payload.to_vec()));
//!         true
//!     }
//! }
//!
//! let mut eu: Store<String, GCounter> = Store::new();
//! let mut us: Store<String, GCounter> = Store::new();
//! let mut push = NaivePush::default();
//! let mut wire = Wire(Vec::new());
//! let key = "views".to_string();
//! let delta = eu.update(key.clone(), |c| c.increment(ReplicaId::from_u128(1), 1)).unwrap();
//! push.on_local_write(&key, &delta, &mut eu, &mut wire);
//! let (to, payload) = wire.0.pop().unwrap();
//! assert_eq!(to, PeerId(2));
//! let us_policy = Admission::new(Some(ReplicaId::from_u128(2)));
//! push.on_receive(PeerId(1), &payload, &mut us, &us_policy, &mut wire).unwrap();
//! assert_eq!(us.root_digest(), eu.root_digest());
//! // The same delta sent back to its writer claims nothing it did not make.
//! let eu_policy = Admission::new(Some(ReplicaId::from_u128(1)));
//! push.on_receive(PeerId(2), &payload, &mut eu, &eu_policy, &mut wire).unwrap();
//! ```

use std::sync::Arc;

use accordant::codec::{self, Limits};

use crate::admission::Admit;
use crate::error::SyncError;
use crate::key::{decode_key, key_bytes};
use crate::peer::PeerId;
use crate::store::{Store, StoreKey, StoreValue};
use crate::wire::{put_len_prefixed, Reader};

/// Where a replicator's payloads go: the bounded per-peer queues of one
/// channel.
pub trait Outbox {
    /// The peers connected now.
    fn peers(&self) -> Vec<PeerId>;

    /// Queues `payload` for `peer`. Returns `false` when it was dropped:
    /// the peer is not connected or its queue is full (the node then
    /// schedules anti-entropy with it).
    fn send(&mut self, peer: PeerId, payload: &[u8]) -> bool;

    /// Queues `payload` for every connected peer; returns how many dropped it.
    fn broadcast(&mut self, payload: &[u8]) -> usize {
        let mut dropped = 0;
        for p in self.peers() {
            if !self.send(p, payload) {
                dropped += 1;
            }
        }
        dropped
    }
}

/// The delta path of one channel: the seam where a replicator with acks
/// (BP+RR) plugs in. Every method runs with the channel's store locked, so
/// it must not block.
pub trait DeltaReplicator<K, V>: Send + 'static {
    /// A local write changed `key`: `store` already holds it, and `delta`
    /// is what its mutator returned. (A replicator that buffers deltas,
    /// such as `crate::delta::Replicator`, records `delta` here; joining
    /// it into `store` again is harmless, joins being idempotent.)
    fn on_local_write(&mut self, key: &K, delta: &V, store: &mut Store<K, V>, out: &mut dyn Outbox);

    /// `from` sent `payload`. Validate it whole — decode it, and pass
    /// every `(key, value)` it carries through `admit` — then join what it
    /// carries into `store`; answer (acks) through `out`. An error (a
    /// refusal is [`SyncError::Refused`]) closes the connection, and must
    /// leave the store untouched.
    fn on_receive(
        &mut self,
        from: PeerId,
        payload: &[u8],
        store: &mut Store<K, V>,
        admit: &dyn Admit<K, V>,
        out: &mut dyn Outbox,
    ) -> Result<(), SyncError>;

    /// A connection with `peer` was established.
    fn on_connect(&mut self, _peer: PeerId, _store: &Store<K, V>, _out: &mut dyn Outbox) {}

    /// The connection with `peer` ended.
    fn on_disconnect(&mut self, _peer: PeerId) {}

    /// Whether this path delivers deltas in causal order
    /// ([causal delivery](crate::delta#causal-delivery)). The node then
    /// runs no anti-entropy session of its own on the channel, refuses its
    /// peers' session openings there, and pulls no key for a session token:
    /// each of those would join state outside that order. The path's own
    /// fall-back (a whole-state transfer) repairs instead. The default: no.
    fn causal(&self) -> bool {
        false
    }

    /// The node's admission policy, for the anti-entropy sessions this
    /// path runs itself (a fall-back repair); the default runs none.
    fn set_session_admission(&mut self, _admit: Arc<dyn Admit<K, V> + Send + Sync>) {}

    /// Called about every tick of the transport (the TCP node's `NodeConfig::tick`; for
    /// retransmissions, batching, garbage collection).
    fn on_tick(&mut self, _store: &Store<K, V>, _out: &mut dyn Outbox) {}
}

/// The default delta path: push each local write's delta once to every
/// connected peer, no acks, no relay. See the [module docs](crate::delta).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NaivePush {
    /// Bounds on received keys and deltas.
    pub limits: Limits,
}

impl NaivePush {
    /// The payload for one delta: postcard of (key bytes, delta bytes).
    pub fn encode<K: StoreKey, V: StoreValue>(key: &K, delta: &V) -> Vec<u8> {
        let mut out = Vec::new();
        put_len_prefixed(&mut out, &key_bytes(key));
        out.extend_from_slice(&codec::encode(delta));
        out
    }

    /// Decodes and validates a payload.
    pub fn decode<K: StoreKey, V: StoreValue>(&self, payload: &[u8]) -> Result<(K, V), SyncError> {
        let mut r = Reader::new(payload);
        let key =
            decode_key(r.len_prefixed()?, &self.limits).map_err(|source| SyncError::Value {
                what: "key",
                source,
            })?;
        Ok((key, decode_value(r.rest(), &self.limits, "delta")?))
    }
}

impl<K: StoreKey, V: StoreValue + Send> DeltaReplicator<K, V> for NaivePush {
    fn on_local_write(
        &mut self,
        key: &K,
        delta: &V,
        _store: &mut Store<K, V>,
        out: &mut dyn Outbox,
    ) {
        if delta.is_bottom() {
            return;
        }
        out.broadcast(&Self::encode(key, delta));
    }

    fn on_receive(
        &mut self,
        _from: PeerId,
        payload: &[u8],
        store: &mut Store<K, V>,
        admit: &dyn Admit<K, V>,
        _out: &mut dyn Outbox,
    ) -> Result<(), SyncError> {
        let (k, v) = self.decode::<K, V>(payload)?;
        admit.admit(store, &k, &v)?;
        store.join(k, &v);
        Ok(())
    }
}

/// Decodes a value from untrusted bytes with [`codec::decode`].
pub fn decode_value<V: StoreValue>(
    bytes: &[u8],
    limits: &Limits,
    what: &'static str,
) -> Result<V, SyncError> {
    codec::decode::<V>(bytes, limits).map_err(|source| SyncError::Value { what, source })
}
