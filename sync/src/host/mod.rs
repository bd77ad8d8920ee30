//! The sans-IO session host: everything about running anti-entropy
//! sessions with peers that is not the session protocol itself.
//!
//! A [`Session`](crate::session::Session) reconciles two stores, given its
//! messages once each and in order. Between it and a transport sits the
//! [`SessionHost`], in the role quinn-proto's `Endpoint` plays for its
//! connections: one per store (or per connection, keyed by channel), it
//! owns for every peer
//!
//! - the **session slot**: at most one session per peer at a time, as
//!   initiator or responder, and an optional cap on sessions at once (at
//!   the cap, a peer's new session is refused, unless an opening of this
//!   side's is still unanswered: that one yields);
//! - **session ids**: the initiator's session number plus the direction of
//!   the message (an *initiator bit*), so the sessions each side starts
//!   never mix, and a late copy of an old opening message is recognised as
//!   stale (numbers only grow per initiator);
//! - the **in-order window**: every message carries its index in its
//!   direction; a duplicate is dropped, and a message that overtook others
//!   is held (up to [`HostConfig::reorder_window`] messages and
//!   [`HostConfig::reorder_bytes`] bytes) until they arrive, so the session
//!   sees its messages exactly once and in order over any network;
//! - **one tie-break rule**: when both peers open a session with each other
//!   before either hears the other's, each opening message carries a random
//!   32-bit tie-break, and the session with the lower one wins on both
//!   sides (equal draws: both drop theirs and retry after a random delay);
//! - **abort**: a session that fails, times out or is dropped is announced
//!   to the peer, which stops waiting at once; a message for a session that
//!   has ended here is answered by an abort too (once);
//! - **time**, through [`SessionHost::poll_timeout`] and
//!   [`SessionHost::handle_timeout`]: a session that accepts nothing for
//!   [`HostConfig::session_timeout`] is abandoned, and a failed session this
//!   side initiated is retried after a capped, jittered exponential backoff
//!   ([`HostEvent::RetryDue`]).
//!
//! The host never touches a socket or a clock. Time is a [`Duration`] since
//! any fixed epoch the driver picks; randomness comes from a seed.
//!
//! # Driving it
//!
//! - [`SessionHost::initiate`] starts a session with a peer (the driver
//!   decides when: periodically, on connect, on a retry);
//! - [`SessionHost::handle`] takes every envelope a peer sent, with the
//!   store the sessions work on and a closure that makes a responder
//!   session when a peer opens one;
//! - [`SessionHost::poll_transmit`] yields the envelopes to send, each
//!   addressed to a peer; [`SessionHost::poll_event`] yields what happened
//!   (a session started or ended, with its outcome and the session itself,
//!   a peer refused, a retry due);
//! - [`SessionHost::poll_timeout`] says when [`SessionHost::handle_timeout`]
//!   must next be called;
//! - [`SessionHost::forget`] drops a peer that disconnected or restarted.
//!
//! The simulator's `AntiEntropyNode` (feature `sim`), the
//! TCP node's connections and the delta replicator's fall-back all drive
//! this one host, so a behaviour tested in the simulator is the behaviour on
//! the wire.
//!
//! ```
//! use std::time::Duration;
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::host::{HostConfig, HostEvent, Outcome, SessionHost};
//! use accordant_sync::session::{Session, SessionConfig};
//! use accordant_sync::store::Store;
//!
//! let mut stores = [Store::<u32, GCounter>::new(), Store::new()];
//! let _ = stores[0].update(1, |c| c.increment(ReplicaId::from_u128(1), 5)).unwrap();
//! let mut hosts = [
//!     SessionHost::new(HostConfig::default(), 1),
//!     SessionHost::new(HostConfig::default(), 2),
//! ];
//! let now = Duration::ZERO;
//! let opening = Session::initiate(&stores[0], SessionConfig::default());
//! hosts[0].initiate(now, 1usize, opening).unwrap(); // peers are named by any Ord type
//! let mut completed = 0;
//! loop {
//!     let mut moved = false;
//!     for me in 0..2 {
//!         while let Some(t) = hosts[me].poll_transmit() {
//!             let to = t.to;
//!             hosts[to].handle(now, me, &t.bytes, &mut stores[to], || {
//!                 Some(Session::respond(SessionConfig::default()))
//!             }).unwrap();
//!             moved = true;
//!         }
//!         while let Some(e) = hosts[me].poll_event() {
//!             if let HostEvent::Ended(end) = e {
//!                 assert_eq!(end.outcome, Outcome::Completed);
//!                 completed += 1;
//!             }
//!         }
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//! assert_eq!(completed, 2); // both sides saw it verified
//! assert_eq!(stores[0].root_digest(), stores[1].root_digest());
//! ```

mod config;
mod envelope;
mod event;
mod hosted;
mod stats;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use tracing::{debug, info, warn};

use crate::error::SyncError;
use crate::rng::SplitMix64;

pub use config::HostConfig;
use envelope::{Envelope, Kind};
pub use event::{Busy, HostEvent, Outcome, SessionEnd, SessionId, Transmit};
pub use hosted::HostedSession;
pub use stats::HostStats;

/// A running session.
#[derive(Debug)]
struct Slot<T> {
    sid: u64,
    initiator: bool,
    /// The tie-break this side drew, for its own sessions.
    tiebreak: u32,
    session: T,
    next_out: u32,
    next_in: u32,
    /// Messages that arrived early, by index.
    ahead: BTreeMap<u32, Vec<u8>>,
    ahead_bytes: usize,
    started: Duration,
    last_progress: Duration,
}

impl<T> Slot<T> {
    fn id(&self) -> SessionId {
        SessionId {
            number: self.sid,
            initiated_here: self.initiator,
        }
    }

    fn deadline(&self, timeout: Duration) -> Duration {
        self.last_progress.saturating_add(timeout)
    }
}

/// The last session that ended here with a peer, to answer its stragglers.
#[derive(Debug, Clone, Copy)]
struct EndedRecord {
    sid: u64,
    initiator: bool,
    next_in: u32,
    told: bool,
}

/// What the host remembers about a peer between sessions.
#[derive(Debug, Clone, Default)]
struct PeerRecord {
    /// The highest session number the peer opened (accepted or refused).
    last_open: Option<u64>,
    /// Consecutive failed sessions initiated here.
    failures: u32,
    retry_at: Option<Duration>,
    ended: Option<EndedRecord>,
}

/// Hosts anti-entropy sessions with any number of peers `P`. See the
/// [module docs](self).
#[derive(Debug)]
pub struct SessionHost<P, T> {
    config: HostConfig,
    rng: SplitMix64,
    next_sid: u64,
    slots: BTreeMap<P, Slot<T>>,
    peers: BTreeMap<P, PeerRecord>,
    outbox: VecDeque<Transmit<P>>,
    events: VecDeque<HostEvent<P, T>>,
    stats: HostStats,
    now: Duration,
}

impl<P: Copy + Ord + core::fmt::Debug, T: HostedSession> SessionHost<P, T> {
    /// A host with no session; `seed` draws its tie-breaks and retry
    /// jitter (give each node its own).
    pub fn new(config: HostConfig, seed: u64) -> Self {
        SessionHost {
            config,
            rng: SplitMix64::new(seed),
            next_sid: 0,
            slots: BTreeMap::new(),
            peers: BTreeMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: HostStats::default(),
            now: Duration::ZERO,
        }
    }

    /// The settings.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// What the host did so far.
    pub fn stats(&self) -> &HostStats {
        &self.stats
    }

    /// Sessions running now.
    pub fn sessions(&self) -> usize {
        self.slots.len()
    }

    /// Whether a session with `peer` is running.
    pub fn has_session(&self, peer: P) -> bool {
        self.slots.contains_key(&peer)
    }

    /// The session running with `peer`, and its id.
    pub fn session(&self, peer: P) -> Option<(SessionId, &T)> {
        self.slots.get(&peer).map(|s| (s.id(), &s.session))
    }

    /// Whether a failed session with `peer` waits for its retry
    /// ([`HostEvent::RetryDue`]): a driver's periodic policy should leave
    /// that peer alone until then.
    pub fn backing_off(&self, peer: P) -> bool {
        self.peers.get(&peer).is_some_and(|r| r.retry_at.is_some())
    }

    /// Peers with a session running, in order.
    pub fn peers(&self) -> impl Iterator<Item = P> + '_ {
        self.slots.keys().copied()
    }

    /// Starts `session` (an initiator) with `peer` and queues its first
    /// messages. Refused while a session with `peer` runs or at
    /// [`HostConfig::max_sessions`].
    pub fn initiate(&mut self, now: Duration, peer: P, session: T) -> Result<SessionId, Busy> {
        let tiebreak = self.rng.next_u64() as u32;
        self.open(now, peer, session, tiebreak)
    }

    /// Like [`initiate`](Self::initiate), with the lowest tie-break: the
    /// session wins over any opening of the peer's that crosses it (one
    /// sent before the peer's side of the link went quiet, say). For a
    /// session one side of a pair must run first, such as the one a dialer
    /// opens when a quiet link resumes; if both sides used it at once, both
    /// openings would be dropped and retried like any equal draw.
    pub fn initiate_first(
        &mut self,
        now: Duration,
        peer: P,
        session: T,
    ) -> Result<SessionId, Busy> {
        self.open(now, peer, session, 0)
    }

    fn open(
        &mut self,
        now: Duration,
        peer: P,
        session: T,
        tiebreak: u32,
    ) -> Result<SessionId, Busy> {
        self.advance(now);
        if self.slots.contains_key(&peer) {
            return Err(Busy::PeerBusy);
        }
        if self.slots.len() >= self.config.max_sessions {
            return Err(Busy::AtCapacity);
        }
        self.next_sid += 1;
        let slot = Slot {
            sid: self.next_sid,
            initiator: true,
            tiebreak,
            session,
            next_out: 0,
            next_in: 0,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            started: self.now,
            last_progress: self.now,
        };
        let id = slot.id();
        self.slots.insert(peer, slot);
        self.peers.entry(peer).or_default().retry_at = None;
        self.stats.sessions_initiated += 1;
        debug!(?peer, session = id.number, "session initiated");
        self.flush(peer);
        self.finish_if_done(peer);
        Ok(id)
    }

    /// Handles one envelope `from` a peer: routes it to its session (in
    /// order, once), opens a responder session (made by `respond`) for a
    /// peer's opening message, and acts on the outcome.
    ///
    /// Fails only when the envelope itself is malformed (the peer's fault;
    /// nothing was applied). A session that fails is ended, the peer told,
    /// and reported as a [`HostEvent::Ended`] with [`Outcome::Failed`]: a
    /// message that fails a session has changed nothing in the store (see
    /// [`Session::handle`](super::Session::handle)).
    pub fn handle(
        &mut self,
        now: Duration,
        from: P,
        bytes: &[u8],
        store: &mut T::Store,
        respond: impl FnOnce() -> Option<T>,
    ) -> Result<(), SyncError> {
        self.advance(now);
        self.stats.messages_received += 1;
        let env = match envelope::decode(bytes) {
            Ok(e) => e,
            Err(e) => {
                self.stats.messages_ignored += 1;
                return Err(e);
            }
        };
        match env.kind {
            Kind::ToResponder => {
                if self
                    .slots
                    .get(&from)
                    .is_some_and(|s| !s.initiator && s.sid == env.sid)
                {
                    self.feed(from, env.seq, env.payload, store);
                } else if env.is_open() {
                    self.on_open(from, &env, store, respond);
                } else {
                    self.straggler(from, env.sid, false, env.seq);
                }
            }
            Kind::ToInitiator => {
                if self
                    .slots
                    .get(&from)
                    .is_some_and(|s| s.initiator && s.sid == env.sid)
                {
                    self.feed(from, env.seq, env.payload, store);
                } else {
                    self.straggler(from, env.sid, true, env.seq);
                }
            }
            Kind::AbortByInitiator => {
                let rec = self.peers.entry(from).or_default();
                rec.last_open = Some(rec.last_open.map_or(env.sid, |l| l.max(env.sid)));
                if self
                    .slots
                    .get(&from)
                    .is_some_and(|s| !s.initiator && s.sid == env.sid)
                {
                    self.end(from, Outcome::AbortedByPeer, false);
                } else {
                    self.stats.messages_ignored += 1;
                }
            }
            Kind::AbortByResponder => {
                if self
                    .slots
                    .get(&from)
                    .is_some_and(|s| s.initiator && s.sid == env.sid)
                {
                    self.end(from, Outcome::AbortedByPeer, false);
                } else {
                    self.stats.messages_ignored += 1;
                }
            }
        }
        Ok(())
    }

    /// Drops the session with `peer`, if any, and tells the peer.
    pub fn abort(&mut self, now: Duration, peer: P) {
        self.advance(now);
        if self.slots.contains_key(&peer) {
            self.end(peer, Outcome::Aborted, true);
        }
    }

    /// Forgets `peer`: it disconnected, or restarted with a new identity of
    /// its session numbers. Its session, if any, ends as
    /// [`Outcome::Aborted`] without a message; what the host remembered
    /// about it (stale session numbers, backoff) is dropped.
    pub fn forget(&mut self, peer: P) {
        if self.slots.contains_key(&peer) {
            self.end(peer, Outcome::Aborted, false);
        }
        self.peers.remove(&peer);
        self.outbox.retain(|t| t.to != peer);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called:
    /// the earliest session deadline or retry.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let timeout = self.config.session_timeout;
        let sessions = self.slots.values().map(|s| s.deadline(timeout));
        let retries = self.peers.values().filter_map(|p| p.retry_at);
        sessions.chain(retries).min()
    }

    /// Abandons sessions past their deadline (telling their peers) and
    /// announces retries that are due.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.advance(now);
        let timeout = self.config.session_timeout;
        let stalled: Vec<P> = self
            .slots
            .iter()
            .filter(|(_, s)| s.deadline(timeout) <= self.now)
            .map(|(p, _)| *p)
            .collect();
        for p in stalled {
            self.end(p, Outcome::TimedOut, true);
        }
        let due: Vec<P> = self
            .peers
            .iter()
            .filter(|(_, r)| r.retry_at.is_some_and(|t| t <= self.now))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            if let Some(r) = self.peers.get_mut(&p) {
                r.retry_at = None;
            }
            self.events.push_back(HostEvent::RetryDue { peer: p });
        }
    }

    /// The next envelope to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.outbox.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<HostEvent<P, T>> {
        self.events.pop_front()
    }

    fn advance(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    fn send(&mut self, to: P, bytes: Vec<u8>) {
        self.stats.messages_sent += 1;
        self.outbox.push_back(Transmit { to, bytes });
    }

    /// A peer's opening message for a session not running here.
    fn on_open(
        &mut self,
        from: P,
        env: &Envelope<'_>,
        store: &mut T::Store,
        respond: impl FnOnce() -> Option<T>,
    ) {
        let theirs = env.tiebreak.unwrap_or(0);
        let rec = self.peers.entry(from).or_default();
        if rec.last_open.is_some_and(|last| last >= env.sid) {
            // A late copy of an opening already handled.
            self.stats.messages_ignored += 1;
            return;
        }
        rec.last_open = Some(env.sid);
        if let Some(slot) = self.slots.get(&from) {
            if slot.initiator {
                // Both opened before hearing the other's opening (the
                // peer's may arrive after it answered ours): the lower
                // tie-break wins on both sides; equal draws drop both and
                // retry.
                match slot.tiebreak.cmp(&theirs) {
                    core::cmp::Ordering::Less => {
                        self.stats.messages_ignored += 1;
                        return;
                    }
                    core::cmp::Ordering::Equal => {
                        self.stats.messages_ignored += 1;
                        self.end(
                            from,
                            Outcome::Failed(SyncError::Unexpected(
                                "both peers opened a session with equal tie-breaks",
                            )),
                            false,
                        );
                        return;
                    }
                    core::cmp::Ordering::Greater => {}
                }
            }
            // Theirs wins, or the peer opened a new session after dropping
            // its previous one. If the peer had answered ours, say it is
            // dropped.
            let answered = self.slots.get(&from).is_some_and(|s| s.next_in > 0);
            self.end(from, Outcome::Superseded, answered);
        } else if self.slots.len() >= self.config.max_sessions {
            // At the cap, an opening this side has sent and nobody has
            // answered yet yields to a session a peer is opening: otherwise
            // a replica that keeps asking busy peers would refuse every
            // peer that asks it, and never sync.
            let unanswered = self
                .slots
                .iter()
                .find(|(_, s)| s.initiator && s.next_in == 0)
                .map(|(p, _)| *p);
            if let Some(p) = unanswered {
                self.end(p, Outcome::Superseded, true);
            }
        }
        if !self.slots.contains_key(&from) && self.slots.len() >= self.config.max_sessions {
            info!(peer = ?from, session = env.sid, "session refused: at the cap on sessions");
            self.stats.sessions_refused += 1;
            let abort = envelope::encode(Kind::AbortByResponder, env.sid, 0, 0, &[]);
            self.send(from, abort);
            self.events.push_back(HostEvent::Refused { peer: from });
            return;
        }
        let Some(session) = respond() else {
            self.stats.sessions_refused += 1;
            let abort = envelope::encode(Kind::AbortByResponder, env.sid, 0, 0, &[]);
            self.send(from, abort);
            self.events.push_back(HostEvent::Refused { peer: from });
            return;
        };
        let slot = Slot {
            sid: env.sid,
            initiator: false,
            tiebreak: theirs,
            session,
            next_out: 0,
            next_in: 0,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            started: self.now,
            last_progress: self.now,
        };
        let id = slot.id();
        self.slots.insert(from, slot);
        self.stats.sessions_accepted += 1;
        debug!(peer = ?from, session = id.number, "session accepted");
        self.events
            .push_back(HostEvent::Accepted { peer: from, id });
        self.feed(from, 0, env.payload, store);
    }

    /// A message for a session not running here: a duplicate or late copy
    /// is dropped; a message that continues a session ended here gets an
    /// abort (once), so the peer stops waiting.
    fn straggler(&mut self, from: P, sid: u64, initiator: bool, seq: u32) {
        self.stats.messages_ignored += 1;
        let Some(rec) = self.peers.get_mut(&from) else {
            return;
        };
        let Some(ended) = rec.ended.as_mut() else {
            return;
        };
        if ended.sid == sid && ended.initiator == initiator && seq >= ended.next_in && !ended.told {
            ended.told = true;
            let abort = envelope::encode(Kind::abort_from(initiator), sid, 0, 0, &[]);
            self.send(from, abort);
        }
    }

    /// Takes message `seq` of the session with `peer`: delivers it in
    /// order (with dedupe: holds it if early, drops it if seen).
    fn feed(&mut self, peer: P, seq: u32, payload: &[u8], store: &mut T::Store) {
        let dedupe = self.config.dedupe;
        let (window, budget) = (self.config.reorder_window, self.config.reorder_bytes);
        let Some(slot) = self.slots.get_mut(&peer) else {
            return;
        };
        if !dedupe {
            slot.next_in = seq.wrapping_add(1);
            self.deliver(peer, payload, store);
            return;
        }
        if seq != slot.next_in {
            let ahead = seq.wrapping_sub(slot.next_in);
            if seq > slot.next_in
                && ahead <= window
                && !slot.ahead.contains_key(&seq)
                && slot.ahead_bytes + payload.len() <= budget
            {
                slot.ahead_bytes += payload.len();
                slot.ahead.insert(seq, payload.to_vec());
                self.stats.messages_held += 1;
            } else {
                self.stats.messages_deduped += 1;
            }
            return;
        }
        let sid = slot.sid;
        slot.next_in = seq.wrapping_add(1);
        self.deliver(peer, payload, store);
        // Then whatever arrived early, while the session lives.
        loop {
            let Some(slot) = self.slots.get_mut(&peer).filter(|s| s.sid == sid) else {
                return;
            };
            let Some(next) = slot.ahead.remove(&slot.next_in) else {
                return;
            };
            slot.ahead_bytes -= next.len();
            slot.next_in = slot.next_in.wrapping_add(1);
            self.deliver(peer, &next, store);
        }
    }

    /// Hands one message to the session with `peer` and acts on the result.
    fn deliver(&mut self, peer: P, payload: &[u8], store: &mut T::Store) {
        let now = self.now;
        let Some(slot) = self.slots.get_mut(&peer) else {
            return;
        };
        slot.last_progress = now;
        match slot.session.handle(store, payload) {
            Ok(()) => {
                self.flush(peer);
                self.finish_if_done(peer);
            }
            Err(e) => self.end(peer, Outcome::Failed(e), true),
        }
    }

    /// Queues what the session with `peer` has to send.
    fn flush(&mut self, peer: P) {
        let Some(slot) = self.slots.get_mut(&peer) else {
            return;
        };
        let kind = Kind::message_from(slot.initiator);
        let mut out = Vec::new();
        while let Some(msg) = slot.session.poll_transmit() {
            out.push(envelope::encode(
                kind,
                slot.sid,
                slot.next_out,
                slot.tiebreak,
                &msg,
            ));
            slot.next_out = slot.next_out.wrapping_add(1);
        }
        for bytes in out {
            self.send(peer, bytes);
        }
    }

    fn finish_if_done(&mut self, peer: P) {
        if self.slots.get(&peer).is_some_and(|s| s.session.is_done()) {
            self.end(peer, Outcome::Completed, false);
        }
    }

    /// Ends the session with `peer`: optionally tells the peer, counts,
    /// schedules a retry for a failed session initiated here, reports.
    fn end(&mut self, peer: P, outcome: Outcome, tell: bool) {
        let Some(slot) = self.slots.remove(&peer) else {
            return;
        };
        if tell {
            let abort = envelope::encode(Kind::abort_from(slot.initiator), slot.sid, 0, 0, &[]);
            self.send(peer, abort);
        }
        let stats = slot.session.stats();
        self.stats.keys_sent += stats.keys_sent;
        let retry = match &outcome {
            Outcome::Completed => {
                self.stats.sessions_completed += 1;
                if slot.initiator {
                    let rt = stats.round_trips();
                    self.stats.sessions_completed_initiated += 1;
                    self.stats.round_trips += rt;
                    self.stats.max_round_trips = self.stats.max_round_trips.max(rt);
                }
                false
            }
            Outcome::Failed(e) => {
                self.stats.sessions_failed += 1;
                if e.is_peer_fault() {
                    self.stats.sessions_failed_peer_fault += 1;
                }
                if matches!(e, SyncError::NotConverged(_)) {
                    self.stats.sessions_not_converged += 1;
                }
                true
            }
            Outcome::TimedOut => {
                self.stats.sessions_timed_out += 1;
                true
            }
            Outcome::AbortedByPeer => {
                self.stats.sessions_aborted_by_peer += 1;
                true
            }
            Outcome::Superseded => {
                self.stats.sessions_superseded += 1;
                false
            }
            Outcome::Aborted => {
                self.stats.sessions_aborted += 1;
                false
            }
        };
        let rec = self.peers.entry(peer).or_default();
        rec.ended = Some(EndedRecord {
            sid: slot.sid,
            initiator: slot.initiator,
            next_in: slot.next_in,
            told: tell,
        });
        if slot.initiator {
            if outcome == Outcome::Completed {
                rec.failures = 0;
            } else if retry {
                rec.failures = rec.failures.saturating_add(1);
                let base = self
                    .config
                    .retry_after
                    .saturating_mul(1u32 << (rec.failures - 1).min(20))
                    .min(self.config.retry_max);
                let jitter_us = self.rng.between(0, base.as_micros() as u64 / 2);
                rec.retry_at = Some(self.now + base + Duration::from_micros(jitter_us));
            }
        }
        let id = slot.id();
        let elapsed = self.now.saturating_sub(slot.started);
        match &outcome {
            Outcome::Failed(e) if e.is_peer_fault() => warn!(
                ?peer, session = id.number, initiator = slot.initiator, error = %e,
                "session failed: the peer broke the protocol; nothing of its message was applied"
            ),
            _ => debug!(
                ?peer,
                session = id.number,
                initiator = slot.initiator,
                ?outcome,
                bytes_sent = stats.bytes_sent,
                bytes_received = stats.bytes_received,
                round_trips = stats.round_trips(),
                elapsed_ms = elapsed.as_millis() as u64,
                "session ended"
            ),
        }
        self.events.push_back(HostEvent::Ended(SessionEnd {
            peer,
            id,
            outcome,
            session: slot.session,
            elapsed,
        }));
    }
}

#[cfg(test)]
mod tests;
