//! Reads and writes under a [session token](crate::token), and the
//! targeted pull that serves them.
//!
//! [`Channel::read_after`] answers a read only once the local value of the
//! key covers what the client's [`SessionToken`] saw of it (see
//! [`crate::token`] for what *covers* means per type). When it does not,
//! the node asks every connected peer for that one key: a
//! [`Frame::Pull`](super::wire::Frame::Pull) carries the key and the
//! local value's [summary](accordant::Summarize) (a causal context, a
//! stamp or the counts), and a peer that has more answers with a
//! [`Frame::Value`](super::wire::Frame::Value): the minimal delta
//! `value.delta_for(summary)`, which passes [admission](crate::admission)
//! and is joined like a delta. The reader is woken by every join (deltas,
//! sessions, pulled values), asks again every [`PULL_RETRY`], and after
//! the caller's wait fails with [`SessionError::NotYetVisible`], carrying
//! how far behind the region is: never a silently stale read.
//!
//! The cost when the data is already there is one frontier of the value
//! computed under the channel's lock (no message): see the crate's
//! `token_read` example for the measured figure. A pull is one small
//! frame to each peer, and an answer is only sent by a peer that has
//! something the requester lacks.
//!
//! [`Channel::update_after`] waits for coverage in the same way, then
//! writes: the write follows what the client read (writes-follow-reads),
//! and the token comes back covering the write (read-your-writes).
//!
//! # Hostile frames
//!
//! Both payloads come from peers. [`decode_pull`] and [`decode_pulled`]
//! parse them whole before anything is read or joined: a length-prefixed
//! key (the prefix is checked against the bytes present, never used to
//! allocate), then one canonical encoding bounded by the session's value
//! [`Limits`] (an overlong varint, trailing bytes, a value of the wrong
//! type or one beyond the limits is a typed [`SyncError`]). A pulled value
//! is joined by [`apply_pulled`] only if its key was pulled by this node
//! within [`PULL_ANSWER_WINDOW`] ([`Pulls`], at most [`MAX_PENDING_PULLS`]
//! keys per channel) and it passes the node's
//! [`Admission`](crate::admission::Admission); anything else is an error
//! that closes the connection and leaves the store as it was.
//!
//! ```
//! use std::time::Instant;
//! use accordant::codec::Limits;
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::admission::Admission;
//! use accordant_sync::delta::NaivePush;
//! use accordant_sync::net::{apply_pulled, Pulls};
//! use accordant_sync::store::Store;
//!
//! let mut store: Store<String, GCounter> = Store::new();
//! let mut pulls = Pulls::new();
//! let mut theirs = GCounter::new();
//! let delta = theirs.increment(ReplicaId::from_u128(7), 3).unwrap();
//! let key = "stock".to_string();
//! let payload = NaivePush::encode(&key, &delta);
//! let admission = Admission::new(Some(ReplicaId::from_u128(1)));
//! let now = Instant::now();
//! // Not asked for: refused, nothing joined.
//! assert!(apply_pulled(&mut store, &pulls, &admission, &payload, &Limits::default(), now).is_err());
//! assert!(store.get(&key).is_none());
//! pulls.asked(&key, now);
//! apply_pulled(&mut store, &pulls, &admission, &payload, &Limits::default(), now).unwrap();
//! assert_eq!(store.get(&key).unwrap().value(), 3);
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use accordant::codec::{self, Canonical, Limits};
use accordant::Claims;
use tokio::time::Instant;
use tracing::debug;

use super::channel::{Channel, ChannelShared, PeerOutbox, WriteError};
use super::shared::lock;
use super::wire::Frame;
use crate::admission::Admission;
use crate::delta::{NaivePush, Outbox};
use crate::error::SyncError;
use crate::key::{decode_key, key_bytes};
use crate::message::Bytes;
use crate::peer::PeerId;
use crate::store::{Store, StoreKey, StoreValue};
use crate::token::{KeyId, Lag, SessionToken, TokenError, Versioned};
use crate::wire::{put_len_prefixed, Reader};

/// How often a waiting reader asks its peers again.
pub const PULL_RETRY: Duration = Duration::from_millis(50);

/// How long after a pull of a key its answers are accepted.
pub const PULL_ANSWER_WINDOW: Duration = Duration::from_secs(30);

/// Keys with a pull outstanding, per channel, at most: beyond it the
/// oldest is forgotten (its late answers are then refused).
pub const MAX_PENDING_PULLS: usize = 4096;

/// The keys a channel pulled recently, by their encoded bytes: a pulled
/// value ([`Frame::Value`](super::wire::Frame::Value)) is joined only for
/// one of them. Bounded by [`MAX_PENDING_PULLS`].
#[derive(Debug, Default, Clone)]
pub struct Pulls {
    asked: HashMap<Vec<u8>, std::time::Instant>,
}

impl Pulls {
    /// No key pulled yet.
    pub fn new() -> Self {
        Pulls::default()
    }

    /// Records that `key` was pulled at `now`.
    pub fn asked<K: StoreKey>(&mut self, key: &K, now: std::time::Instant) {
        self.asked
            .retain(|_, at| now.saturating_duration_since(*at) <= PULL_ANSWER_WINDOW);
        if self.asked.len() >= MAX_PENDING_PULLS {
            let oldest = self
                .asked
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.asked.remove(&k);
            }
        }
        self.asked.insert(key_bytes(key), now);
    }

    /// Whether `key` (encoded) was pulled within the window before `now`.
    pub fn is_asked(&self, key: &[u8], now: std::time::Instant) -> bool {
        self.asked
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) <= PULL_ANSWER_WINDOW)
    }

    /// Keys recorded (some may have expired).
    pub fn len(&self) -> usize {
        self.asked.len()
    }

    /// Whether no key is recorded.
    pub fn is_empty(&self) -> bool {
        self.asked.is_empty()
    }
}

/// The payload of a [`Frame::Pull`](super::wire::Frame::Pull): the key,
/// length-prefixed, then the canonical encoding of the local summary.
pub fn encode_pull<K: StoreKey, S: Canonical>(key: &K, summary: &S) -> Vec<u8> {
    let mut payload = Vec::new();
    put_len_prefixed(&mut payload, &key_bytes(key));
    payload.extend_from_slice(&codec::encode(summary));
    payload
}

/// Parses a peer's pull payload: the key and the summary it holds,
/// within `limits`. Nothing is read from the store.
pub fn decode_pull<K: StoreKey, S: Canonical>(
    payload: &[u8],
    limits: &Limits,
) -> Result<(K, S), SyncError> {
    let mut r = Reader::new(payload);
    let key: K = decode_key(r.len_prefixed()?, limits).map_err(|source| SyncError::Value {
        what: "key",
        source,
    })?;
    let seen: S = codec::decode(r.rest(), limits).map_err(|source| SyncError::Value {
        what: "summary",
        source,
    })?;
    Ok((key, seen))
}

/// Parses a pulled value's payload (the delta path's encoding, see
/// [`NaivePush::encode`]) within `limits`.
pub fn decode_pulled<K: StoreKey, V: StoreValue>(
    payload: &[u8],
    limits: &Limits,
) -> Result<(K, V), SyncError> {
    NaivePush { limits: *limits }.decode::<K, V>(payload)
}

/// Joins a pulled value into `store` if it parses, its key was pulled
/// ([`Pulls::is_asked`]) and it passes `admission`; otherwise returns the
/// typed error and changes nothing.
pub fn apply_pulled<K: StoreKey, V: StoreValue + Claims>(
    store: &mut Store<K, V>,
    pulls: &Pulls,
    admission: &Admission,
    payload: &[u8],
    limits: &Limits,
    now: std::time::Instant,
) -> Result<(), SyncError> {
    let (key, value) = decode_pulled::<K, V>(payload, limits)?;
    if !pulls.is_asked(&key_bytes(&key), now) {
        return Err(SyncError::Unexpected(
            "a pulled value for a key not asked for",
        ));
    }
    let current = store.get(&key);
    admission.admit_value(current.as_ref(), &value)?;
    store.join(key, &value);
    Ok(())
}

/// Why a read or write under a token did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError<E = Infallible> {
    /// The region's value did not cover the token within the wait: the
    /// read would have been stale, so nothing is returned (and nothing was
    /// written).
    #[error("not yet visible after {waited:?}: {lag}")]
    NotYetVisible {
        /// How far behind the region's value was at the end.
        lag: Lag,
        /// How long the call waited.
        waited: Duration,
    },
    /// The token cannot track this key (nothing was done).
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The write was refused or not stored.
    #[error(transparent)]
    Write(WriteError<E>),
}

/// The pull protocol as the connections see a channel.
pub(crate) trait ErasedPull {
    /// Answers a peer's pull: a `Value` payload if this node has something
    /// the peer lacks.
    fn answer_pull(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, SyncError>;
    /// Admits and joins a pulled value.
    fn receive_value(&self, from: PeerId, payload: &[u8]) -> Result<(), SyncError>;
}

impl<K, V> ChannelShared<K, V>
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Send + 'static,
{
    fn limits(&self) -> Limits {
        self.node.config.session.limits.value
    }
}

impl<K, V> ErasedPull for ChannelShared<K, V>
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Claims + Send + 'static,
{
    fn answer_pull(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, SyncError> {
        let (key, seen) = decode_pull::<K, V::Summary>(payload, &self.limits())?;
        let mut guard = lock(&self.state);
        // What leaves the node is committed first (see `commit`).
        self.settle(&mut guard);
        let Some(value) = guard.store.get(&key) else {
            return Ok(None);
        };
        let delta = value.delta_for(&seen);
        Ok((!delta.is_bottom()).then(|| NaivePush::encode(&key, &delta)))
    }

    fn receive_value(&self, _from: PeerId, payload: &[u8]) -> Result<(), SyncError> {
        let limits = self.limits();
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        self.settle(st);
        let now = std::time::Instant::now();
        apply_pulled(
            &mut st.store,
            &st.pulls,
            &self.node.config.admission,
            payload,
            &limits,
            now,
        )?;
        st.changed.notify_waiters();
        self.fault(st)
    }
}

impl<K, V> Channel<K, V>
where
    K: StoreKey + Send + 'static,
    V: StoreValue + Versioned + Send + 'static,
{
    /// The value under `key` once it covers what `token` saw of it (see
    /// [`crate::token`]), waiting up to `wait` while pulling the key
    /// from the peers; the token then records this read. `None` is a key
    /// with no value here, which covers a token that saw nothing of it.
    pub async fn read_after(
        &self,
        key: &K,
        token: &mut SessionToken,
        wait: Duration,
    ) -> Result<Option<V>, SessionError> {
        let id = KeyId::of(self.inner.index, key);
        let value = self
            .wait_covering::<Infallible>(key, id, token, wait)
            .await?;
        let frontier = value.as_ref().map(V::frontier).unwrap_or_default();
        token.record(id, frontier)?;
        Ok(value)
    }

    /// Like [`Channel::update`], once the local value of `key` covers
    /// `token` (waiting up to `wait` as [`Channel::read_after`] does); the
    /// token then covers this write. Returns the write's delta.
    pub async fn update_after<E>(
        &self,
        key: K,
        token: &mut SessionToken,
        wait: Duration,
        f: impl FnOnce(&mut V) -> Result<V, E>,
    ) -> Result<V, SessionError<E>> {
        let id = KeyId::of(self.inner.index, &key);
        self.wait_covering::<E>(&key, id, token, wait).await?;
        let delta = self
            .update(key.clone(), f)
            .await
            .map_err(SessionError::Write)?;
        // The value now holds what was covered and the write.
        let frontier = self.get(&key).as_ref().map(V::frontier).unwrap_or_default();
        token.record(id, frontier)?;
        Ok(delta)
    }

    /// Waits until the local value covers the token's entry for `id`.
    async fn wait_covering<E>(
        &self,
        key: &K,
        id: KeyId,
        token: &SessionToken,
        wait: Duration,
    ) -> Result<Option<V>, SessionError<E>> {
        if !token.has_room_for(id) {
            return Err(SessionError::Token(TokenError::Full));
        }
        let start = Instant::now();
        let deadline = start + wait;
        let mut next_pull = start;
        loop {
            let changed = Arc::clone(&lock(&self.inner.state).changed);
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (lag, summary) = {
                let st = lock(&self.inner.state);
                let local = st.store.get(key);
                let frontier = local.as_ref().map(V::frontier).unwrap_or_default();
                let lag = token.lag(id, &frontier);
                if lag.is_zero() {
                    return Ok(local);
                }
                (lag, local.unwrap_or_default().summary())
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(SessionError::NotYetVisible {
                    lag,
                    waited: now - start,
                });
            }
            if now >= next_pull && !lock(&self.inner.state).replicator.causal() {
                self.pull(key, &summary);
                next_pull = now + PULL_RETRY;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline.min(next_pull)) => {}
            }
        }
    }

    /// Asks every connected peer for what this node lacks of `key`.
    fn pull(&self, key: &K, summary: &V::Summary) {
        let payload = encode_pull(key, summary);
        lock(&self.inner.state)
            .pulls
            .asked(key, std::time::Instant::now());
        let frame: Arc<[u8]> = Frame::Pull {
            channel: self.inner.index,
            payload: Bytes::from(payload),
        }
        .to_wire()
        .into();
        let node = &self.inner.node;
        let peers = PeerOutbox::new(node, self.inner.index).peers();
        let slots = lock(&node.peers);
        let sent = peers
            .iter()
            .filter_map(|p| slots.get(p))
            .filter(|slot| slot.offer(&node.counters, Arc::clone(&frame)))
            .count();
        debug!(channel = %self.inner.name, peers = sent, "pulled a key for a session token");
    }
}
