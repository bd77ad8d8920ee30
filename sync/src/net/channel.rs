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

use super::shared::{lock, Shared};
use super::wire::Frame;
use crate::delta::{DeltaReplicator, Outbox};
use crate::digest::Digest;
use crate::error::SyncError;
use crate::host::HostedSession;
use crate::message::Bytes;
use crate::peer::PeerId;
use crate::session::{Session, SessionConfig, SessionStats};
use crate::snapshot::encode_store;
use crate::store::{Store, StoreKey, StoreValue};

/// A channel's state: the store and its delta path, under one lock.
pub(crate) struct ChannelState<K, V> {
    pub(crate) store: Store<K, V>,
    pub(crate) replicator: Box<dyn DeltaReplicator<K, V>>,
}

/// One store of a node.
pub(crate) struct ChannelShared<K, V> {
    pub(crate) name: String,
    pub(crate) index: u16,
    pub(crate) node: Arc<Shared>,
    pub(crate) state: Mutex<ChannelState<K, V>>,
    pub(crate) session: SessionConfig,
}

/// A channel as the connections see it.
pub(crate) trait ErasedChannel: Send + Sync {
    fn name(&self) -> &str;
    fn initiate(self: Arc<Self>) -> Box<dyn ErasedSession>;
    fn respond(self: Arc<Self>) -> Box<dyn ErasedSession>;
    fn receive_delta(&self, from: PeerId, payload: &[u8]) -> Result<(), SyncError>;
    fn connected(&self, peer: PeerId);
    fn disconnected(&self, peer: PeerId);
    fn tick(&self);
    fn encode_section(&self) -> (Vec<u8>, u64);
    fn root_digest(&self) -> Digest;
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
        let mut st = lock(&self.channel.state);
        self.session.handle(&mut st.store, msg)
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

    fn initiate(self: Arc<Self>) -> Box<dyn ErasedSession> {
        let session = {
            let st = lock(&self.state);
            Session::initiate(&st.store, self.session)
        };
        Box::new(SessionOn {
            channel: self,
            session,
        })
    }

    fn respond(self: Arc<Self>) -> Box<dyn ErasedSession> {
        let session = Session::respond(self.session);
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
        let admission = &self.node.config.admission;
        st.replicator
            .on_receive(from, payload, &mut st.store, admission, &mut out)
    }

    fn connected(&self, peer: PeerId) {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut out = PeerOutbox::new(&self.node, self.index);
        st.replicator.on_connect(peer, &st.store, &mut out);
    }

    fn disconnected(&self, peer: PeerId) {
        lock(&self.state).replicator.on_disconnect(peer);
    }

    fn tick(&self) {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        let mut out = PeerOutbox::new(&self.node, self.index);
        st.replicator.on_tick(&st.store, &mut out);
    }

    fn encode_section(&self) -> (Vec<u8>, u64) {
        let st = lock(&self.state);
        (encode_store(&st.store), st.store.len() as u64)
    }

    fn root_digest(&self) -> Digest {
        lock(&self.state).store.root_digest()
    }
}

/// The typed handle on one store of a [`Node`](super::Node): local reads
/// and writes. Cheap to clone; every clone is the same store.
///
/// A write through [`Channel::update`] is *acknowledged* when `update`
/// returns `Ok`: it is applied to the local store and its delta is queued
/// for the connected peers. It is durable once a later
/// [`Node::snapshot`](super::Node::snapshot) has returned.
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
    /// [`Store::update`]), then hands the delta to the delta path, which
    /// queues it for every connected peer. Returns the delta. On error
    /// nothing changes and nothing is sent.
    pub fn update<E>(&self, key: K, f: impl FnOnce(&mut V) -> Result<V, E>) -> Result<V, E> {
        let mut guard = lock(&self.inner.state);
        let st = &mut *guard;
        let delta = st.store.update(key.clone(), f)?;
        let mut out = PeerOutbox::new(&self.inner.node, self.inner.index);
        st.replicator
            .on_local_write(&key, &delta, &mut st.store, &mut out);
        self.inner.node.counters.local_writes.add(1);
        Ok(delta)
    }

    /// A copy of the value under `key`.
    pub fn get(&self, key: &K) -> Option<V> {
        lock(&self.inner.state).store.get(key).cloned()
    }

    /// Runs `f` on the store (locked for the duration: keep it short).
    pub fn read<R>(&self, f: impl FnOnce(&Store<K, V>) -> R) -> R {
        f(&lock(&self.inner.state).store)
    }

    /// The store's root digest.
    pub fn root_digest(&self) -> Digest {
        lock(&self.inner.state).store.root_digest()
    }

    /// A copy of the whole store.
    pub fn snapshot_store(&self) -> Store<K, V> {
        lock(&self.inner.state).store.clone()
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
            payload: Bytes(payload.to_vec()),
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
