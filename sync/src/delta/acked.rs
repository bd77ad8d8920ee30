//! [`AckedDeltas`]: the delta path of a channel run by
//! [`delta::Replicator`](crate::delta::Replicator) — delta-intervals with
//! sequence numbers and acks, back-propagation avoidance (BP) and redundancy
//! removal (RR), and a Merkle-session fall-back for a peer the buffer can
//! no longer serve — instead of [`NaivePush`](super::NaivePush). A TCP
//! node (`net`, feature `tokio`) takes it as a channel's delta path.
//!
//! It maps the [`DeltaReplicator`] hooks onto the sans-IO replicator:
//!
//! - `on_connect` / `on_disconnect` add and remove the peer as a neighbour;
//! - `on_local_write` records the write's delta (the store already holds
//!   it) as a one-key delta-group;
//! - `on_receive` hands the payload to [`Replicator::receive_checked`],
//!   which decodes it whole and passes every `(key, value)` of the group
//!   through the node's [`Admit`] check before joining anything, and acks;
//! - `on_tick` runs a [`Replicator::sync_step`] every
//!   [`AckedConfig::sync_every`] ticks: each peer gets the join of what it
//!   has not acknowledged yet, one message per step whatever the number of
//!   writes (writes are batched by the tick).
//!
//! After each call, every queued message goes to [`Outbox::send`]. A message
//! that the outbox drops (queue full, peer gone) is not lost: an interval
//! not acknowledged is sent again, extended, at the next step.
//!
//! The replicator's [`Stats`] are published after every call through a
//! shared [`AckedStats`] handle, since the node owns the replicator.
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::delta::{AckedConfig, AckedDeltas, DeltaReplicator, Outbox};
//! use accordant_sync::peer::PeerId;
//! use accordant_sync::store::Store;
//!
//! struct Wire(Vec<(PeerId, Vec<u8>)>);
//! impl Outbox for Wire {
//!     fn peers(&self) -> Vec<PeerId> { vec![PeerId(2)] }
//!     fn send(&mut self, peer: PeerId, payload: &[u8]) -> bool {
//!         self.0.push((peer, payload.to_vec()));
//!         true
//!     }
//! }
//!
//! let mut store: Store<String, GCounter> = Store::new();
//! let mut acked = AckedDeltas::new(AckedConfig::default().with_sync_every(1), &store);
//! let stats = acked.stats_handle();
//! let mut wire = Wire(Vec::new());
//! acked.on_connect(PeerId(2), &store, &mut wire);
//! let key = "views".to_string();
//! let delta = store.update(key.clone(), |c| c.increment(ReplicaId::from_u128(1), 1)).unwrap();
//! acked.on_local_write(&key, &delta, &mut store, &mut wire);
//! acked.on_tick(&store, &mut wire); // one sync step: the interval goes out
//! assert_eq!(stats.get().groups_sent, 1);
//! assert_eq!(wire.0.len(), 1);
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use super::path::{DeltaReplicator, Outbox};
use super::{CausalDelivery, Config, GMap, Replicator, Stats, Strategy};
use crate::admission::Admit;
use crate::error::SyncError;
use crate::peer::PeerId;
use crate::session::Session;
use crate::store::{Store, StoreKey, StoreValue};

/// Settings of [`AckedDeltas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckedConfig {
    /// Leave out of a peer's interval what came from it (default on).
    pub bp: bool,
    /// Buffer only the part of a received group that inflates the store
    /// (default on).
    pub rr: bool,
    /// Run a sync step every this many node ticks (default 1; 0 counts
    /// as 1).
    pub sync_every: u32,
    /// The replicator's other settings (buffer cap, limits, fall-back
    /// sessions); its strategy is replaced by `bp` and `rr`. The default
    /// pipelines intervals over the in-order connection
    /// ([`Config::resend_after`] = 8 sync steps: 200 ms at the node's
    /// default 25 ms tick, above a cross-region round trip), so a delta
    /// crosses a link once, not once per tick until acknowledged.
    pub replicator: Config,
}

impl Default for AckedConfig {
    fn default() -> Self {
        AckedConfig {
            bp: true,
            rr: true,
            sync_every: 1,
            replicator: Config::default().with_resend_after(8),
        }
    }
}

impl AckedConfig {
    /// Returns these settings with BP and RR set.
    pub fn with_bp_rr(mut self, bp: bool, rr: bool) -> Self {
        self.bp = bp;
        self.rr = rr;
        self
    }

    /// Returns these settings with `sync_every` set.
    pub fn with_sync_every(mut self, ticks: u32) -> Self {
        self.sync_every = ticks;
        self
    }

    /// Returns these settings with the replicator's settings replaced.
    pub fn with_replicator(mut self, config: Config) -> Self {
        self.replicator = config;
        self
    }

    /// Returns these settings with causal delivery on, within `budget`
    /// ([`Config::with_causal_delivery`]; see the
    /// [module docs](crate::delta#causal-delivery) for what it guarantees
    /// on a node and what it costs).
    pub fn with_causal_delivery(mut self, budget: CausalDelivery) -> Self {
        self.replicator = self.replicator.with_causal_delivery(budget);
        self
    }

    fn strategy(&self) -> Strategy {
        Strategy::Delta {
            bp: self.bp,
            rr: self.rr,
        }
    }
}

/// A shared view of an [`AckedDeltas`]' statistics, updated after every
/// call into it.
#[derive(Debug, Clone, Default)]
pub struct AckedStats(Arc<Mutex<Stats>>);

impl AckedStats {
    /// The latest statistics.
    pub fn get(&self) -> Stats {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, stats: &Stats) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = *stats;
    }
}

/// A [`DeltaReplicator`] over [`delta::Replicator`](crate::delta::Replicator):
/// acked delta-intervals with BP and RR. See the [module docs](crate::delta).
pub struct AckedDeltas<K: StoreKey, V: StoreValue> {
    rep: Replicator<Store<K, V>, PeerId>,
    sync_every: u32,
    ticks: u32,
    stats: AckedStats,
}

impl<K: StoreKey, V: StoreValue> core::fmt::Debug for AckedDeltas<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AckedDeltas")
            .field("replicator", &self.rep)
            .field("sync_every", &self.sync_every)
            .finish_non_exhaustive()
    }
}

impl<K: StoreKey, V: StoreValue> AckedDeltas<K, V> {
    /// A replicator for the channel that will hold `store`, with a random
    /// incarnation (drawn anew for every run, as the replicator requires).
    pub fn new(config: AckedConfig, store: &Store<K, V>) -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x6163_6b65_6400_0000);
        Self::with_incarnation(config, h.finish() as u32, store)
    }

    /// As [`new`](Self::new), with an explicit incarnation (distinct per
    /// run and per replica).
    pub fn with_incarnation(config: AckedConfig, incarnation: u32, store: &Store<K, V>) -> Self {
        let rc = Config {
            strategy: config.strategy(),
            ..config.replicator
        };
        AckedDeltas {
            rep: Replicator::new(rc, incarnation, store),
            sync_every: config.sync_every.max(1),
            ticks: 0,
            stats: AckedStats::default(),
        }
    }

    /// A handle on the statistics, usable after the replicator is handed
    /// to the node.
    pub fn stats_handle(&self) -> AckedStats {
        self.stats.clone()
    }

    /// The underlying replicator.
    pub fn replicator(&self) -> &Replicator<Store<K, V>, PeerId> {
        &self.rep
    }

    /// Sends what the replicator queued, and publishes its statistics.
    fn flush(&mut self, out: &mut dyn Outbox) {
        while let Some(t) = self.rep.poll_transmit() {
            // A dropped message is resent (extended) at a later step.
            let _ = out.send(t.to, &t.bytes);
        }
        self.stats.set(self.rep.stats());
    }
}

impl<K, V> DeltaReplicator<K, V> for AckedDeltas<K, V>
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Send + 'static,
{
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
        self.rep.record(GMap::single(key.clone(), delta.clone()));
        self.flush(out);
    }

    fn on_receive(
        &mut self,
        from: PeerId,
        payload: &[u8],
        store: &mut Store<K, V>,
        admit: &dyn Admit<K, V>,
        out: &mut dyn Outbox,
    ) -> Result<(), SyncError> {
        // A frame that raced the connect hook: the peer is connected.
        self.rep.add_neighbour(from);
        let check = |store: &Store<K, V>, group: &GMap<K, V>| {
            group
                .iter()
                .try_for_each(|(k, v)| admit.admit(store, k, v))
                .map_err(SyncError::from)
        };
        let r = self.rep.receive_checked(store, from, payload, check);
        self.flush(out);
        r
    }

    fn causal(&self) -> bool {
        self.rep.config().causal.is_some()
    }

    fn set_session_admission(&mut self, admit: Arc<dyn Admit<K, V> + Send + Sync>) {
        self.rep.set_session_hook(Arc::new(move |s: Session<K, V>| {
            s.with_admission(admit.clone())
        }));
    }

    fn on_connect(&mut self, peer: PeerId, _store: &Store<K, V>, out: &mut dyn Outbox) {
        self.rep.add_neighbour(peer);
        self.flush(out);
    }

    fn on_disconnect(&mut self, peer: PeerId) {
        self.rep.remove_neighbour(peer);
        self.stats.set(self.rep.stats());
    }

    fn on_tick(&mut self, store: &Store<K, V>, out: &mut dyn Outbox) {
        self.ticks += 1;
        if self.ticks >= self.sync_every {
            self.ticks = 0;
            self.rep.sync_step(store);
        }
        self.flush(out);
    }
}
