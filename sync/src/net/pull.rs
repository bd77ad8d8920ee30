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

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use accordant::codec::{self, Limits};
use accordant::Claims;
use tokio::time::Instant;
use tracing::debug;

use super::channel::{Channel, ChannelShared, PeerOutbox, WriteError};
use super::shared::lock;
use super::wire::Frame;
use crate::delta::{NaivePush, Outbox};
use crate::error::SyncError;
use crate::key::{decode_key, key_bytes};
use crate::message::Bytes;
use crate::peer::PeerId;
use crate::store::{StoreKey, StoreValue};
use crate::token::{KeyId, Lag, SessionToken, TokenError, Versioned};
use crate::wire::{put_len_prefixed, Reader};

/// How often a waiting reader asks its peers again.
pub const PULL_RETRY: Duration = Duration::from_millis(50);

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
        let limits = self.limits();
        let mut r = Reader::new(payload);
        let key: K = decode_key(r.len_prefixed()?, &limits).map_err(|source| SyncError::Value {
            what: "key",
            source,
        })?;
        let seen: V::Summary =
            codec::decode(r.rest(), &limits).map_err(|source| SyncError::Value {
                what: "summary",
                source,
            })?;
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
        let push = NaivePush {
            limits: self.limits(),
        };
        let (key, value) = push.decode::<K, V>(payload)?;
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        self.settle(st);
        let current = st.store.get(&key);
        self.node
            .config
            .admission
            .admit_value(current.as_ref(), &value)?;
        st.store.join(key, &value);
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
            if now >= next_pull {
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
        let mut payload = Vec::new();
        put_len_prefixed(&mut payload, &key_bytes(key));
        payload.extend_from_slice(&codec::encode(summary));
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
