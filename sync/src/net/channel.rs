//! Channels: the stores of a node, typed for the application and erased for
//! the connections.
//!
//! A node holds any number of stores of different key and value types
//! (carts, counters, registers...). Each is a *channel*: the application
//! reads and writes it through a typed [`Channel<K, V>`] handle, and every
//! connection carries all channels at once, each frame tagged with the
//! channel's index. The connection code sees a channel through the
//! object-safe `ErasedChannel`, so it is written once for every type.

use std::sync::{Arc, Mutex};

use accordant::Claims;

use super::commit::{settle, Commits};
use super::divergence::{self, DivergenceEstimate, DivergenceProbe};
use super::shared::{lock, Shared};
use super::wire::Frame;
use crate::admission::Admit;
use crate::delta::{DeltaReplicator, Outbox};
use crate::digest::Digest;
use crate::error::SyncError;
use crate::host::HostedSession;
use crate::message::Bytes;
use crate::peer::PeerId;
use crate::session::{Session, SessionConfig, SessionStats};
use crate::snapshot::encode_store;
use crate::store::db::Fsync;
use crate::store::{StorageError, Store, StoreKey, StoreValue, UpdateError};

/// A channel's state: the store and its delta path, under one lock.
pub(crate) struct ChannelState<K, V> {
    pub(crate) store: Store<K, V>,
    pub(crate) replicator: Box<dyn DeltaReplicator<K, V>>,
    /// Local writes staged so far (the last ticket handed out).
    pub(crate) staged: u64,
    /// Woken whenever peer data is joined (readers waiting on a token).
    pub(crate) changed: Arc<tokio::sync::Notify>,
    /// Keys pulled for session tokens: the only ones a pulled value may carry.
    pub(crate) pulls: super::pull::Pulls,
}

impl<K: StoreKey, V: StoreValue> ChannelState<K, V> {
    pub(crate) fn new(store: Store<K, V>, replicator: Box<dyn DeltaReplicator<K, V>>) -> Self {
        ChannelState {
            store,
            replicator,
            staged: 0,
            changed: Arc::default(),
            pulls: super::pull::Pulls::new(),
        }
    }
}

/// One store of a node.
pub(crate) struct ChannelShared<K, V> {
    pub(crate) name: String,
    pub(crate) index: u16,
    pub(crate) node: Arc<Shared>,
    pub(crate) state: Mutex<ChannelState<K, V>>,
    pub(crate) session: SessionConfig,
    pub(crate) commits: Commits,
    /// The node's admission policy, as its sessions hold it.
    pub(crate) admit: Arc<dyn Admit<K, V> + Send + Sync>,
}

impl<K: StoreKey, V: StoreValue> ChannelShared<K, V> {
    /// Commits what the store has staged before its state can leave the
    /// node (see [`super::commit`]); a failed commit rolls it back.
    pub(crate) fn settle(&self, st: &mut ChannelState<K, V>) {
        if self.commits.durable && st.store.is_dirty() {
            let _ = settle(&self.commits, &mut st.store, st.staged);
        }
    }

    /// A store read failure recorded during a step, as a session error.
    pub(crate) fn fault(&self, st: &ChannelState<K, V>) -> Result<(), SyncError> {
        match st.store.take_fault() {
            Some(e) => Err(SyncError::LocalStorage(e.to_string())),
            None => Ok(()),
        }
    }
}

/// A channel as the connections see it.
pub(crate) trait ErasedChannel: super::pull::ErasedPull + Send + Sync {
    fn name(&self) -> &str;
    /// Whether the channel's delta path is causal (see
    /// [`DeltaReplicator::causal`]): no node sessions or pulls on it.
    fn causal(&self) -> bool;
    fn initiate(self: Arc<Self>) -> Box<dyn ErasedSession>;
    fn respond(self: Arc<Self>) -> Box<dyn ErasedSession>;
    fn receive_delta(&self, from: PeerId, payload: &[u8]) -> Result<(), SyncError>;
    fn connected(&self, peer: PeerId);
    fn disconnected(&self, peer: PeerId);
    fn tick(&self);
    fn encode_section(&self) -> (Vec<u8>, u64);
    fn types(&self) -> String;
    fn root_digest(&self) -> Digest;
    /// Commits whatever is staged (shutdown, `quit`).
    fn flush(&self) -> Result<(), Arc<StorageError>>;
    /// Waits for staged writes and commits them, window by window, until
    /// `stop` (only for durable channels under [`Fsync::Window`]).
    fn committer(
        self: Arc<Self>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>;
    /// This channel's divergence probe (its item sample from key hash
    /// `start` on).
    fn probe(&self, start: u64) -> DivergenceProbe;
    /// This channel compared with a peer's probe.
    fn compare(&self, start: u64, probe: &DivergenceProbe) -> DivergenceEstimate;
    /// Keys in the store.
    #[cfg(feature = "metrics")]
    fn len(&self) -> u64;
}

/// A session as the connections see it.
pub(crate) trait ErasedSession: Send {
    fn handle(&mut self, msg: &[u8]) -> Result<(), SyncError>;
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    fn is_done(&self) -> bool;
    fn stats(&self) -> SessionStats;
}

/// The host runs erased sessions: their store is reached through the
/// channel they hold, so the host lends them nothing.
impl HostedSession for dyn ErasedSession {
    type Store = ();

    fn handle(&mut self, _: &mut (), msg: &[u8]) -> Result<(), SyncError> {
        ErasedSession::handle(self, msg)
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        ErasedSession::poll_transmit(self)
    }

    fn is_done(&self) -> bool {
        ErasedSession::is_done(self)
    }

    fn stats(&self) -> SessionStats {
        ErasedSession::stats(self)
    }
}

struct SessionOn<K, V> {
    channel: Arc<ChannelShared<K, V>>,
    session: Session<K, V>,
}

impl<K: StoreKey + Send, V: StoreValue + Send> ErasedSession for SessionOn<K, V> {
    fn handle(&mut self, msg: &[u8]) -> Result<(), SyncError> {
        let mut guard = lock(&self.channel.state);
        let st = &mut *guard;
        let r = self.session.handle(&mut st.store, msg);
        // What the session staged (joins) and any local write staged
        // meanwhile are committed before its answer can leave.
        self.channel.settle(st);
        st.changed.notify_waiters();
        self.channel.fault(st)?;
        r
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.poll_transmit()
    }

    fn is_done(&self) -> bool {
        self.session.is_done()
    }

    fn stats(&self) -> SessionStats {
        *self.session.stats()
    }
}

impl<K, V> ErasedChannel for ChannelShared<K, V>
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Claims + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn causal(&self) -> bool {
        lock(&self.state).replicator.causal()
    }

    fn initiate(self: Arc<Self>) -> Box<dyn ErasedSession> {
        let session = {
            let mut guard = lock(&self.state);
            self.settle(&mut guard);
            Session::initiate(&guard.store, self.session).with_admission(self.admit.clone())
        };
        Box::new(SessionOn {
            channel: self,
            session,
        })
    }

    fn respond(self: Arc<Self>) -> Box<dyn ErasedSession> {
        let session = Session::respond(self.session).with_admission(self.admit.clone());
        Box::new(SessionOn {
            channel: self,
            session,
        })
    }

    fn receive_delta(&self, from: PeerId, payload: &[u8]) -> Result<(), SyncError> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut out = PeerOutbox::new(&self.node, self.index);
        // Every value of the payload passes the node's admission policy
        // before any is joined.
        self.settle(st);
        let admission = &self.node.config.admission;
        let r = st
            .replicator
            .on_receive(from, payload, &mut st.store, admission, &mut out);
        st.changed.notify_waiters();
        self.fault(st)?;
        r
    }

    fn connected(&self, peer: PeerId) {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        self.settle(st);
        let mut out = PeerOutbox::new(&self.node, self.index);
        st.replicator.on_connect(peer, &st.store, &mut out);
    }

    fn disconnected(&self, peer: PeerId) {
        lock(&self.state).replicator.on_disconnect(peer);
    }

    fn tick(&self) {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        // Commits what joins staged since the last tick (bounding what is
        // held in memory), and anything a replicator could resend.
        self.settle(st);
        let mut out = PeerOutbox::new(&self.node, self.index);
        st.replicator.on_tick(&st.store, &mut out);
    }

    fn encode_section(&self) -> (Vec<u8>, u64) {
        let st = lock(&self.state);
        (encode_store(&st.store), st.store.len() as u64)
    }

    fn types(&self) -> String {
        crate::snapshot::store_types::<K, V>()
    }

    fn root_digest(&self) -> Digest {
        lock(&self.state).store.root_digest()
    }

    fn flush(&self) -> Result<(), Arc<StorageError>> {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if !self.commits.durable {
            return Ok(());
        }
        settle(&self.commits, &mut st.store, st.staged)
    }

    fn committer(
        self: Arc<Self>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        let Fsync::Window(window) = self.commits.policy else {
            return None;
        };
        if !self.commits.durable {
            return None;
        }
        Some(Box::pin(async move {
            loop {
                tokio::select! {
                    _ = self.commits.kick.notified() => {}
                    _ = stop.changed() => return,
                }
                if !window.is_zero() {
                    tokio::time::sleep(window).await;
                }
                let mut guard = lock(&self.state);
                let st = &mut *guard;
                let _ = settle(&self.commits, &mut st.store, st.staged);
            }
        }))
    }

    fn probe(&self, start: u64) -> DivergenceProbe {
        divergence::probe(&lock(&self.state).store, start)
    }

    fn compare(&self, start: u64, probe: &DivergenceProbe) -> DivergenceEstimate {
        divergence::compare_store(&lock(&self.state).store, start, probe)
    }

    #[cfg(feature = "metrics")]
    fn len(&self) -> u64 {
        lock(&self.state).store.len() as u64
    }
}

/// The typed handle on one store of a [`Node`](super::Node): local reads
/// and writes. Cheap to clone; every clone is the same store.
///
/// A write through [`Channel::update`] is *acknowledged* when `update`
/// returns `Ok`. On a node with a data directory it is then durable: it
/// was committed (with the replica's counters, which live in the values)
/// under the node's [`Fsync`] policy, so a crash of the process does not
/// lose it (see [`super::commit`]). On an in-memory node
/// ([`NodeConfig::in_memory`](super::NodeConfig::in_memory)) it is only
/// applied.
///
/// Local reads ([`Channel::get`], [`Channel::read`]) see the store as it
/// is, staged writes included: a write whose `update` has not returned yet
/// may be visible, and is gone after a crash if its commit had not
/// happened (it was never acknowledged). Nothing staged is sent to a peer.
pub struct Channel<K, V> {
    pub(crate) inner: Arc<ChannelShared<K, V>>,
}

impl<K, V> Clone for Channel<K, V> {
    fn clone(&self) -> Self {
        Channel {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> core::fmt::Debug for Channel<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.inner.name)
            .field("index", &self.inner.index)
            .finish()
    }
}

impl<K: StoreKey + Send + 'static, V: StoreValue + Send + 'static> Channel<K, V> {
    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Applies a delta mutator to the value under `key` (see
    /// [`Store::update`]), commits it (see [`super::commit`]), then hands
    /// the delta to the delta path, which queues it for every connected
    /// peer. Returns the delta once the write is acknowledged.
    ///
    /// On error nothing is acknowledged and nothing is sent: the mutator's
    /// refusal changes nothing, and a write whose commit failed
    /// ([`WriteError::Storage`]: a full disk, a read-only file system) was
    /// rolled back. Reads and sync go on meanwhile.
    pub async fn update<E>(
        &self,
        key: K,
        f: impl FnOnce(&mut V) -> Result<V, E>,
    ) -> Result<V, WriteError<E>> {
        let commits = &self.inner.commits;
        let started = std::time::Instant::now();
        let ticket = {
            let mut guard = lock(&self.inner.state);
            let st = &mut *guard;
            let delta = st.store.update(key.clone(), f).map_err(|e| match e {
                UpdateError::Rejected(e) => WriteError::Rejected(e),
                UpdateError::Storage(e) => WriteError::Storage(Arc::new(e)),
            })?;
            if !commits.durable {
                self.acknowledged(st, &key, &delta, started);
                return Ok(delta);
            }
            st.staged += 1;
            let ticket = st.staged;
            if !matches!(commits.policy, Fsync::Window(_)) {
                // Every write commits on its own (with an fsync, or none
                // under `Fsync::Off`).
                settle(commits, &mut st.store, ticket).map_err(WriteError::Storage)?;
                self.acknowledged(st, &key, &delta, started);
                return Ok(delta);
            }
            (ticket, delta)
        };
        let (ticket, delta) = ticket;
        commits.kick.notify_one();
        commits.wait(ticket).await.map_err(WriteError::Storage)?;
        let mut guard = lock(&self.inner.state);
        self.acknowledged(&mut guard, &key, &delta, started);
        Ok(delta)
    }

    /// Hands an acknowledged write's delta to the delta path, and records
    /// the write's latency from `started`.
    fn acknowledged(
        &self,
        st: &mut ChannelState<K, V>,
        key: &K,
        delta: &V,
        started: std::time::Instant,
    ) {
        let mut out = PeerOutbox::new(&self.inner.node, self.inner.index);
        st.replicator
            .on_local_write(key, delta, &mut st.store, &mut out);
        self.inner.node.counters.local_writes.add(1);
        self.inner
            .node
            .metrics
            .write_seconds
            .observe_duration(started.elapsed());
    }

    /// A copy of the value under `key`, or under any borrowed form of it
    /// that serialises as the key does (see [`Store::get`]).
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: core::borrow::Borrow<Q>,
        Q: serde::Serialize + ?Sized,
    {
        lock(&self.inner.state).store.get(key)
    }

    /// Runs `f` on the store (locked for the duration: keep it short).
    pub fn read<R>(&self, f: impl FnOnce(&Store<K, V>) -> R) -> R {
        f(&lock(&self.inner.state).store)
    }

    /// The store's root digest.
    pub fn root_digest(&self) -> Digest {
        lock(&self.inner.state).store.root_digest()
    }

    /// An in-memory copy of the whole store.
    pub fn snapshot_store(&self) -> Store<K, V> {
        lock(&self.inner.state).store.to_memory()
    }
}

/// Why [`Channel::update`] refused a write: it is not acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError<E> {
    /// The mutator refused the operation; nothing changed.
    #[error("operation refused: {0}")]
    Rejected(E),
    /// The write could not be stored (read or commit failed); it was
    /// rolled back, and nothing of it was sent.
    #[error("write not stored: {0}")]
    Storage(Arc<StorageError>),
}

impl<E> WriteError<E> {
    /// The mutator's error, if that is why the write was refused.
    pub fn rejected(self) -> Option<E> {
        match self {
            WriteError::Rejected(e) => Some(e),
            WriteError::Storage(_) => None,
        }
    }
}

/// The [`Outbox`] of one channel: frames deltas and offers them to the
/// peers' bounded queues, dropping (and counting) when a queue is full.
pub(crate) struct PeerOutbox<'a> {
    node: &'a Shared,
    channel: u16,
}

impl<'a> PeerOutbox<'a> {
    pub(crate) fn new(node: &'a Shared, channel: u16) -> Self {
        PeerOutbox { node, channel }
    }

    fn frame(&self, payload: &[u8]) -> Arc<[u8]> {
        Frame::Delta {
            channel: self.channel,
            payload: Bytes::from(payload.to_vec()),
        }
        .to_wire()
        .into()
    }
}

impl Outbox for PeerOutbox<'_> {
    fn peers(&self) -> Vec<PeerId> {
        lock(&self.node.peers).keys().copied().collect()
    }

    fn send(&mut self, peer: PeerId, payload: &[u8]) -> bool {
        let frame = self.frame(payload);
        let peers = lock(&self.node.peers);
        match peers.get(&peer) {
            Some(slot) => slot.offer(&self.node.counters, frame),
            None => false,
        }
    }

    fn broadcast(&mut self, payload: &[u8]) -> usize {
        let frame = self.frame(payload);
        let peers = lock(&self.node.peers);
        peers
            .values()
            .filter(|slot| !slot.offer(&self.node.counters, Arc::clone(&frame)))
            .count()
    }
}
