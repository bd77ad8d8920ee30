//! Periodic anti-entropy between replicas in the [simulator](crate::sim).
//!
//! [`AntiEntropyNode`] is a [`sim::Node`](crate::sim::Node) that holds one
//! [`Store`] and runs the sans-IO [`Session`] with the other nodes. It is the
//! glue a real transport would be: who starts a session and when, which
//! session a message belongs to, what happens when a message is lost,
//! duplicated or reordered, and what it all cost.
//!
//! # What a node does
//!
//! - **Periodic anti-entropy.** Every [`DriverConfig::interval`] (plus a
//!   seeded jitter, so nodes do not tick in lock step) the node initiates a
//!   session with one peer it has no session with: each peer in turn
//!   ([`PeerChoice::RoundRobin`]) or a random one ([`PeerChoice::Random`]).
//!   Anti-entropy is idempotent (a session only ever *joins* states), so
//!   starting one more session, or restarting one, is always safe.
//! - **One session per peer at a time**, as initiator or responder. When two
//!   nodes open a session with each other at the same moment, the session
//!   initiated by the node with the lower id wins: the other node drops its
//!   own initiator session and responds. A `Hello` from a peer that already
//!   answered our session means the peer dropped it: the new session
//!   replaces ours.
//! - **A cap on sessions at once** ([`DriverConfig::max_sessions`], off by
//!   default): a node at the cap starts none and refuses new ones with an
//!   `Abort`, so a replica far behind is not sent the same values by every
//!   peer at once.
//! - **Timeouts.** A session that receives nothing it accepts for
//!   [`DriverConfig::timeout`] (a lost message, a partition, a crashed peer)
//!   is abandoned (the timeout must exceed a round trip plus the time to
//!   send the largest turn). An initiator retries the same peer after
//!   [`DriverConfig::retry_after`], doubling the delay after each
//!   consecutive failure up to the tick interval, plus a random half again
//!   so that peers that collided do not retry in step.
//! - **Errors.** A session that fails with a [`SyncError`] (a malformed or
//!   hostile message, a message out of order, too many turns or passes) is
//!   dropped, the peer is told with an `Abort`, and the initiator retries as
//!   after a timeout. Nothing a peer sends makes the node panic, and a
//!   message that fails a session has changed nothing in the store (see
//!   [`Session::handle`]); what earlier messages joined stays, which is
//!   safe because joins only add information.
//!
//! # The driver's header
//!
//! The simulator carries opaque byte strings between nodes, so each one
//! starts with a small driver header, then the [`Session`] message bytes
//! unchanged (the header is not part of the session's wire format):
//!
//! ```text
//! session id : u64 varint   (initiator node id << 32 | initiator's counter)
//! kind       : u8           1 = to the responder, 2 = to the initiator, 3 = abort
//! seq        : u32 varint   index of the message in its direction, from 0
//! payload    : the session message (empty for an abort)
//! ```
//!
//! A session id names its initiator, so the two sessions of a pair of nodes
//! never mix, and a responder can tell that a late copy of an old `Hello`
//! (ids only grow per initiator) is stale rather than a new session. With
//! [`DriverConfig::dedupe`] (the default) the session sees its messages
//! exactly once and in order: a duplicate is dropped, and a message that
//! overtook another (a session sends several in a row when it splits a
//! large turn into chunks) is held until the ones before it arrive (up to
//! 64 messages and [`SyncLimits::max_message_bytes`] bytes per session), so
//! duplication and reordering cost nothing. Without it, the session sees
//! them as they come, fails (a duplicate `Hello` or verdict is
//! [`SyncError::Unexpected`]), and is retried, which is what a transport
//! without sequence numbers gets.
//!
//! [`SyncLimits::max_message_bytes`]: crate::message::SyncLimits::max_message_bytes
//!
//! # Statistics
//!
//! [`AntiEntropyNode::stats`] counts what the node sent and received
//! (headers included), messages ignored, deduplicated or held back, the
//! sessions it initiated, accepted, completed, failed (and how many of those
//! only because the stores kept changing), timed out, superseded or refused,
//! and the round trips of the completed sessions it initiated (so a sum of
//! those over all nodes counts each session once; the other session counts
//! are per side).
//!
//! # Example
//!
//! Two regions 100 ms apart, on a lossy link, each with writes of its own:
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::driver::{AntiEntropyNode, DriverConfig};
//! use accordant_sync::sim::{LinkConfig, RunOutcome, SimTime, Simulator};
//! use accordant_sync::store::Store;
//!
//! let mut sim = Simulator::new(7);
//! sim.set_default_link(LinkConfig::wan(SimTime::from_millis(100)).with_loss(0.1));
//! let config = DriverConfig::default()
//!     .with_interval(SimTime::from_millis(300))
//!     .with_timeout(SimTime::from_millis(500));
//! let eu = sim.add_node(AntiEntropyNode::<String, GCounter>::new(Store::new(), config));
//! let us = sim.add_node(AntiEntropyNode::new(Store::new(), config));
//! for (node, replica) in [(eu, 1), (us, 2)] {
//!     sim.poke(node, |n, _ctx| {
//!         let _ = n.store_mut().update("views".to_string(), |c| {
//!             c.increment(ReplicaId::from_u128(replica), 5)
//!         });
//!     });
//! }
//! let outcome = sim.run_until(SimTime::from_secs(30), |s| {
//!     s.nodes().all(|(_, n)| n.store().get(&"views".to_string()).map(|c| c.value()) == Some(10))
//! });
//! assert_eq!(outcome, RunOutcome::Condition);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use rand::RngExt;

use crate::error::SyncError;
use crate::session::{Session, SessionConfig};
use crate::sim::{Ctx, Node, NodeId, SimTime};
use crate::store::{Store, StoreKey, StoreValue};

/// Header kind: a message from the initiator to the responder.
const KIND_TO_RESPONDER: u8 = 1;
/// Header kind: a message from the responder to the initiator.
const KIND_TO_INITIATOR: u8 = 2;
/// Header kind: the sender dropped the session.
const KIND_ABORT: u8 = 3;

/// With dedupe, how far ahead of the next expected message one may arrive
/// and be held (a session sends several messages in a row only when it
/// splits a large turn into chunks).
const REORDER_WINDOW: u32 = 64;

/// Timer token of the periodic tick.
const TOKEN_TICK: u64 = 0;
/// Timer token class of a session timeout check (low 32 bits: the peer).
const TOKEN_TIMEOUT: u64 = 1 << 32;
/// Timer token class of a retry (low 32 bits: the peer).
const TOKEN_RETRY: u64 = 2 << 32;

/// How a node picks the peer of its next periodic session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PeerChoice {
    /// Each other node in turn, skipping peers already in a session.
    #[default]
    RoundRobin,
    /// A random other node (from the simulator's node RNG); the tick is
    /// skipped if a session with it is running.
    Random,
}

/// Settings of an [`AntiEntropyNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverConfig {
    /// Settings of every session.
    pub session: SessionConfig,
    /// Time between periodic sessions; [`SimTime::ZERO`] disables them (the
    /// node still responds, and [`AntiEntropyNode::initiate`] still works).
    pub interval: SimTime,
    /// Extra delay drawn uniformly from `[0, interval_jitter]` per tick.
    pub interval_jitter: SimTime,
    /// A session that accepts no message for this long is abandoned.
    pub timeout: SimTime,
    /// First delay before an initiator retries a peer after a failure or a
    /// timeout; doubles per consecutive failure, up to `interval`.
    pub retry_after: SimTime,
    /// How the periodic session picks its peer.
    pub peer_choice: PeerChoice,
    /// Drop duplicated and out-of-order messages by their header sequence
    /// number instead of letting them fail the session.
    pub dedupe: bool,
    /// Sessions at once, all peers together. A node at the limit starts
    /// none and refuses a peer's new session with an abort (the peer
    /// retries later), so a replica far behind is not sent the same state
    /// by every peer at once.
    pub max_sessions: usize,
}

impl Default for DriverConfig {
    /// Sessions every second (up to 100 ms of jitter), a 2 s timeout, a
    /// 200 ms first retry, round robin, deduplication on.
    fn default() -> Self {
        DriverConfig {
            session: SessionConfig::default(),
            interval: SimTime::from_secs(1),
            interval_jitter: SimTime::from_millis(100),
            timeout: SimTime::from_secs(2),
            retry_after: SimTime::from_millis(200),
            peer_choice: PeerChoice::RoundRobin,
            dedupe: true,
            max_sessions: usize::MAX,
        }
    }
}

impl DriverConfig {
    /// Sets the session settings.
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets the tick interval.
    pub fn with_interval(mut self, interval: SimTime) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the tick jitter.
    pub fn with_interval_jitter(mut self, jitter: SimTime) -> Self {
        self.interval_jitter = jitter;
        self
    }

    /// Sets the session timeout.
    pub fn with_timeout(mut self, timeout: SimTime) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the first retry delay.
    pub fn with_retry_after(mut self, retry_after: SimTime) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Sets how peers are chosen.
    pub fn with_peer_choice(mut self, choice: PeerChoice) -> Self {
        self.peer_choice = choice;
        self
    }

    /// Sets the limit of sessions at once.
    pub fn with_max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n;
        self
    }

    /// Turns deduplication by sequence number on or off.
    pub fn with_dedupe(mut self, dedupe: bool) -> Self {
        self.dedupe = dedupe;
        self
    }
}

/// What a node sent, received and ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriverStats {
    /// Messages sent (sessions and aborts).
    pub messages_sent: u64,
    /// Bytes sent, driver headers included.
    pub bytes_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes received, driver headers included.
    pub bytes_received: u64,
    /// Messages dropped before reaching a session: malformed header, unknown
    /// or stale session, wrong sender.
    pub messages_ignored: u64,
    /// Messages dropped as duplicates, or too far ahead (with dedupe).
    pub messages_deduped: u64,
    /// Messages that arrived early and were held until those before them
    /// arrived (with dedupe).
    pub messages_held: u64,
    /// Sessions this node started.
    pub sessions_initiated: u64,
    /// Sessions this node accepted as responder.
    pub sessions_accepted: u64,
    /// Sessions (either role) that verified equal roots here.
    pub sessions_completed: u64,
    /// Completed sessions that this node initiated.
    pub sessions_completed_initiated: u64,
    /// Sessions that failed with an error here.
    pub sessions_failed: u64,
    /// Of those, sessions that ended [`SyncError::NotConverged`]: the
    /// stores kept changing (local writes, other sessions) through every
    /// pass. Not an error of the peer; the next session picks up the rest.
    pub sessions_not_converged: u64,
    /// Sessions the peer aborted.
    pub sessions_aborted_by_peer: u64,
    /// Sessions abandoned after [`DriverConfig::timeout`].
    pub sessions_timed_out: u64,
    /// Sessions dropped for a newer or winning session with the same peer.
    pub sessions_superseded: u64,
    /// Peers' sessions refused at [`DriverConfig::max_sessions`].
    pub sessions_refused: u64,
    /// Round trips of the completed sessions this node initiated.
    pub round_trips: u64,
    /// The most round trips one completed session took (initiated here).
    pub max_round_trips: u64,
    /// Keys whose state this node sent (values, deltas, summaries).
    pub keys_sent: u64,
    /// The last error that failed a session here.
    pub last_error: Option<SyncError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Initiator,
    Responder,
}

/// A running session with one peer.
#[derive(Debug)]
struct Slot<K, V> {
    id: u64,
    role: Role,
    session: Session<K, V>,
    /// Sequence number of the next message we send.
    next_out: u32,
    /// Sequence number of the next message we accept.
    next_in: u32,
    /// Messages that arrived before `next_in` (with dedupe), by sequence.
    ahead: BTreeMap<u32, Vec<u8>>,
    /// When the session last accepted a message (or started).
    last_progress: SimTime,
}

/// A replica that runs anti-entropy with every other node of the simulator.
/// See the [module docs](self).
#[derive(Debug)]
pub struct AntiEntropyNode<K, V> {
    store: Store<K, V>,
    config: DriverConfig,
    sessions: BTreeMap<NodeId, Slot<K, V>>,
    /// Counter of the sessions this node initiated.
    counter: u32,
    /// Highest session id accepted (or aborted) per initiator.
    last_seen: BTreeMap<NodeId, u64>,
    /// Consecutive failed sessions initiated per peer (for the backoff).
    failures: BTreeMap<NodeId, u32>,
    /// Peers with a pending timeout check.
    timeout_armed: BTreeSet<NodeId>,
    /// Peers with a pending retry.
    retry_armed: BTreeSet<NodeId>,
    /// Next peer for round robin.
    rr_next: u32,
    stats: DriverStats,
}

impl<K: StoreKey, V: StoreValue> AntiEntropyNode<K, V> {
    /// A node holding `store`.
    pub fn new(store: Store<K, V>, config: DriverConfig) -> Self {
        AntiEntropyNode {
            store,
            config,
            sessions: BTreeMap::new(),
            counter: 0,
            last_seen: BTreeMap::new(),
            failures: BTreeMap::new(),
            timeout_armed: BTreeSet::new(),
            retry_armed: BTreeSet::new(),
            rr_next: 0,
            stats: DriverStats::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store<K, V> {
        &self.store
    }

    /// The store, for local writes (`sim.poke(id, |n, _| n.store_mut().update(..))`).
    /// A write during a session costs that session another pass, never
    /// correctness.
    pub fn store_mut(&mut self) -> &mut Store<K, V> {
        &mut self.store
    }

    /// The settings.
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// Traffic and session counts so far.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// Number of sessions running now.
    pub fn active_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether a session with `peer` is running.
    pub fn has_session(&self, peer: NodeId) -> bool {
        self.sessions.contains_key(&peer)
    }

    /// Starts a session with `peer` now. Returns `false` (and does nothing)
    /// if `peer` is this node, does not exist, or a session with it runs.
    pub fn initiate(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) -> bool {
        if peer == ctx.id()
            || peer.0 >= ctx.node_count()
            || self.sessions.contains_key(&peer)
            || self.sessions.len() >= self.config.max_sessions
        {
            return false;
        }
        self.counter = self.counter.wrapping_add(1);
        let id = (u64::from(ctx.id().0) << 32) | u64::from(self.counter);
        let session = Session::initiate(&self.store, self.config.session);
        self.sessions.insert(
            peer,
            Slot {
                id,
                role: Role::Initiator,
                session,
                next_out: 0,
                next_in: 0,
                ahead: BTreeMap::new(),
                last_progress: ctx.now(),
            },
        );
        self.stats.sessions_initiated += 1;
        self.flush(ctx, peer);
        self.arm_timeout(ctx, peer, self.config.timeout);
        true
    }

    fn schedule_tick(&mut self, ctx: &mut Ctx<'_>) {
        if self.config.interval == SimTime::ZERO {
            return;
        }
        let jitter = ctx
            .rng()
            .random_range(0..=self.config.interval_jitter.as_micros());
        ctx.set_timer(
            self.config.interval + SimTime::from_micros(jitter),
            TOKEN_TICK,
        );
    }

    fn tick(&mut self, ctx: &mut Ctx<'_>) {
        let n = ctx.node_count();
        let me = ctx.id().0;
        match self.config.peer_choice {
            PeerChoice::RoundRobin => {
                for i in 0..n {
                    let p = (self.rr_next.wrapping_add(i)) % n;
                    let peer = NodeId(p);
                    if p != me && !self.sessions.contains_key(&peer) {
                        self.rr_next = p.wrapping_add(1);
                        self.initiate(ctx, peer);
                        break;
                    }
                }
            }
            PeerChoice::Random => {
                if n >= 2 {
                    let mut p = ctx.rng().random_range(0..n - 1);
                    if p >= me {
                        p += 1;
                    }
                    self.initiate(ctx, NodeId(p));
                }
            }
        }
        self.schedule_tick(ctx);
    }

    fn arm_timeout(&mut self, ctx: &mut Ctx<'_>, peer: NodeId, after: SimTime) {
        if self.timeout_armed.insert(peer) {
            ctx.set_timer(after, TOKEN_TIMEOUT | u64::from(peer.0));
        }
    }

    fn check_timeout(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) {
        self.timeout_armed.remove(&peer);
        let Some(slot) = self.sessions.get(&peer) else {
            return;
        };
        let deadline = slot.last_progress + self.config.timeout;
        if ctx.now() >= deadline {
            self.stats.sessions_timed_out += 1;
            self.close(ctx, peer, true, true);
        } else {
            self.arm_timeout(ctx, peer, deadline - ctx.now());
        }
    }

    /// Schedules a retry with `peer` after a failed session this node
    /// initiated, with exponential backoff.
    fn schedule_retry(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) {
        let n = self.failures.entry(peer).or_insert(0);
        *n = n.saturating_add(1);
        let mut delay = self.config.retry_after * (1u64 << (*n - 1).min(20));
        if self.config.interval != SimTime::ZERO {
            delay = delay.min(self.config.interval);
        }
        // Up to half again, so peers that collided do not retry in step.
        let jitter = ctx.rng().random_range(0..=delay.as_micros() / 2);
        delay += SimTime::from_micros(jitter);
        if self.retry_armed.insert(peer) {
            ctx.set_timer(delay, TOKEN_RETRY | u64::from(peer.0));
        }
    }

    /// Drops the session with `peer`, optionally telling the peer, and
    /// (`retry`) schedules a retry if this node initiated it.
    fn close(&mut self, ctx: &mut Ctx<'_>, peer: NodeId, abort: bool, retry: bool) {
        let Some(slot) = self.sessions.remove(&peer) else {
            return;
        };
        if abort {
            let msg = header(slot.id, KIND_ABORT, slot.next_out);
            self.send(ctx, peer, msg);
        }
        if retry && slot.role == Role::Initiator {
            self.schedule_retry(ctx, peer);
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_>, peer: NodeId, msg: Vec<u8>) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += msg.len() as u64;
        ctx.send(peer, msg);
    }

    /// Sends what the session with `peer` queued.
    fn flush(&mut self, ctx: &mut Ctx<'_>, peer: NodeId) {
        let mut out = Vec::new();
        if let Some(slot) = self.sessions.get_mut(&peer) {
            let kind = match slot.role {
                Role::Initiator => KIND_TO_RESPONDER,
                Role::Responder => KIND_TO_INITIATOR,
            };
            while let Some(payload) = slot.session.poll_transmit() {
                let mut msg = header(slot.id, kind, slot.next_out);
                msg.extend_from_slice(&payload);
                slot.next_out = slot.next_out.wrapping_add(1);
                out.push(msg);
            }
        }
        for msg in out {
            self.send(ctx, peer, msg);
        }
    }

    /// Takes one session message for the session with `peer`: in order (with
    /// dedupe: held back until the messages before it arrived, dropped if
    /// already seen) to [`deliver`](Self::deliver).
    fn feed(&mut self, ctx: &mut Ctx<'_>, peer: NodeId, seq: u32, payload: &[u8]) {
        let Some(slot) = self.sessions.get_mut(&peer) else {
            return;
        };
        if !self.config.dedupe {
            slot.next_in = seq.wrapping_add(1);
            self.deliver(ctx, peer, payload);
            return;
        }
        if seq != slot.next_in {
            let ahead = seq.saturating_sub(slot.next_in);
            let held: usize = slot.ahead.values().map(Vec::len).sum();
            if (1..=REORDER_WINDOW).contains(&ahead)
                && !slot.ahead.contains_key(&seq)
                && held + payload.len() <= self.config.session.limits.max_message_bytes
            {
                slot.ahead.insert(seq, payload.to_vec());
                self.stats.messages_held += 1;
            } else {
                self.stats.messages_deduped += 1;
            }
            return;
        }
        let id = slot.id;
        slot.next_in = seq.wrapping_add(1);
        self.deliver(ctx, peer, payload);
        // Then whatever arrived early, while the session lives.
        loop {
            let Some(slot) = self.sessions.get_mut(&peer).filter(|s| s.id == id) else {
                return;
            };
            let Some(next) = slot.ahead.remove(&slot.next_in) else {
                return;
            };
            slot.next_in = slot.next_in.wrapping_add(1);
            self.deliver(ctx, peer, &next);
        }
    }

    /// Hands one message to the session with `peer` and acts on the result.
    fn deliver(&mut self, ctx: &mut Ctx<'_>, peer: NodeId, payload: &[u8]) {
        let Some(slot) = self.sessions.get_mut(&peer) else {
            return;
        };
        slot.last_progress = ctx.now();
        let keys_before = slot.session.stats().keys_sent;
        let result = slot.session.handle(&mut self.store, payload);
        self.stats.keys_sent += slot.session.stats().keys_sent - keys_before;
        match result {
            Ok(()) => {
                self.flush(ctx, peer);
                let Some(slot) = self.sessions.get(&peer) else {
                    return;
                };
                if slot.session.is_done() {
                    self.stats.sessions_completed += 1;
                    if slot.role == Role::Initiator {
                        let rt = slot.session.stats().round_trips();
                        self.stats.sessions_completed_initiated += 1;
                        self.stats.round_trips += rt;
                        self.stats.max_round_trips = self.stats.max_round_trips.max(rt);
                        self.failures.remove(&peer);
                    }
                    self.sessions.remove(&peer);
                }
            }
            Err(e) => {
                self.stats.sessions_failed += 1;
                if matches!(e, SyncError::NotConverged(_)) {
                    self.stats.sessions_not_converged += 1;
                }
                self.stats.last_error = Some(e);
                self.close(ctx, peer, true, true);
            }
        }
    }

    /// A message for a session initiated by `from`.
    fn on_to_responder(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: NodeId,
        id: u64,
        seq: u32,
        payload: &[u8],
    ) {
        if self.sessions.get(&from).is_some_and(|s| s.id == id) {
            self.feed(ctx, from, seq, payload);
            return;
        }
        // Only the first message of a session newer than every session
        // seen from that initiator opens one.
        if seq != 0 || self.last_seen.get(&from).is_some_and(|&last| last >= id) {
            self.stats.messages_ignored += 1;
            return;
        }
        if let Some(slot) = self.sessions.get(&from) {
            if slot.role == Role::Initiator && slot.next_in == 0 && from.0 > ctx.id().0 {
                // Both opened at once: ours wins, the peer will respond to
                // it. (Had the peer already answered ours, this Hello would
                // mean it dropped our session: then theirs replaces it.)
                self.stats.messages_ignored += 1;
                return;
            }
            // Theirs wins, or it replaces an older session they abandoned.
            self.stats.sessions_superseded += 1;
            self.close(ctx, from, false, false);
        } else if self.sessions.len() >= self.config.max_sessions {
            self.stats.sessions_refused += 1;
            self.last_seen.insert(from, id);
            self.send(ctx, from, header(id, KIND_ABORT, 0));
            return;
        }
        self.last_seen.insert(from, id);
        self.sessions.insert(
            from,
            Slot {
                id,
                role: Role::Responder,
                session: Session::respond(self.config.session),
                next_out: 0,
                next_in: 0,
                ahead: BTreeMap::new(),
                last_progress: ctx.now(),
            },
        );
        self.stats.sessions_accepted += 1;
        self.arm_timeout(ctx, from, self.config.timeout);
        self.feed(ctx, from, seq, payload);
    }

    fn on_abort(&mut self, ctx: &mut Ctx<'_>, from: NodeId, id: u64) {
        let initiator = id >> 32;
        if initiator == u64::from(from.0) {
            let last = self.last_seen.entry(from).or_insert(0);
            *last = (*last).max(id);
        }
        if self.sessions.get(&from).is_some_and(|s| s.id == id) {
            self.stats.sessions_aborted_by_peer += 1;
            self.close(ctx, from, false, true);
        } else {
            self.stats.messages_ignored += 1;
        }
    }
}

impl<K: StoreKey, V: StoreValue> Node for AntiEntropyNode<K, V> {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        if self.config.interval == SimTime::ZERO {
            return;
        }
        // The first tick at a random point of the first interval.
        let first = ctx.rng().random_range(0..=self.config.interval.as_micros());
        ctx.set_timer(SimTime::from_micros(first), TOKEN_TICK);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: Vec<u8>) {
        self.stats.messages_received += 1;
        self.stats.bytes_received += msg.len() as u64;
        let Some((id, kind, seq, payload)) = parse_header(&msg) else {
            self.stats.messages_ignored += 1;
            return;
        };
        if from == ctx.id() {
            self.stats.messages_ignored += 1;
            return;
        }
        let initiator = id >> 32;
        match kind {
            KIND_TO_RESPONDER if initiator == u64::from(from.0) => {
                self.on_to_responder(ctx, from, id, seq, payload);
            }
            KIND_TO_INITIATOR
                if initiator == u64::from(ctx.id().0)
                    && self
                        .sessions
                        .get(&from)
                        .is_some_and(|s| s.id == id && s.role == Role::Initiator) =>
            {
                self.feed(ctx, from, seq, payload);
            }
            KIND_ABORT if payload.is_empty() => self.on_abort(ctx, from, id),
            _ => self.stats.messages_ignored += 1,
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        let peer = NodeId(token as u32);
        match token & !u64::from(u32::MAX) {
            TOKEN_TICK => self.tick(ctx),
            TOKEN_TIMEOUT => self.check_timeout(ctx, peer),
            TOKEN_RETRY => {
                self.retry_armed.remove(&peer);
                self.initiate(ctx, peer);
            }
            _ => {}
        }
    }
}

/// Encodes a driver header.
fn header(id: u64, kind: u8, seq: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    put_varint(&mut out, id);
    out.push(kind);
    put_varint(&mut out, u64::from(seq));
    out
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a canonical LEB128 varint of at most 10 bytes.
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut n: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        let part = u64::from(b & 0x7f);
        if i == 9 && part > 1 {
            return None; // overflows u64
        }
        n |= part << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return None; // overlong
            }
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

/// Splits a message into session id, kind, sequence number and payload.
fn parse_header(msg: &[u8]) -> Option<(u64, u8, u32, &[u8])> {
    let (id, rest) = take_varint(msg)?;
    let (&kind, rest) = rest.split_first()?;
    let (seq, payload) = take_varint(rest)?;
    Some((id, kind, u32::try_from(seq).ok()?, payload))
}

#[cfg(test)]
mod tests {
    use accordant::{GCounter, ReplicaId};

    use super::*;
    use crate::sim::{LinkConfig, RunOutcome, Simulator};

    #[test]
    fn max_sessions_holds_and_refused_peers_retry() {
        let mut sim = Simulator::new(3);
        sim.set_default_link(LinkConfig::wan(SimTime::from_millis(100)));
        let config = DriverConfig::default()
            .with_interval(SimTime::from_millis(100))
            .with_interval_jitter(SimTime::ZERO)
            .with_max_sessions(1);
        let ids: Vec<NodeId> = (0..4)
            .map(|_| sim.add_node(AntiEntropyNode::<u32, GCounter>::new(Store::new(), config)))
            .collect();
        for (i, &id) in ids.iter().enumerate() {
            sim.poke(id, |n, _| {
                for k in 0..50 {
                    let _ = n
                        .store_mut()
                        .update(k, |c| c.increment(ReplicaId::from_u128(i as u128), 1));
                }
            });
        }
        let total = |n: &AntiEntropyNode<u32, GCounter>| -> u64 {
            n.store().iter().map(|(_, c)| c.value()).sum()
        };
        let deadline = SimTime::from_secs(30);
        let mut outcome = RunOutcome::Deadline;
        while sim.now() < deadline {
            if sim.nodes().all(|(_, n)| total(n) == 200) {
                outcome = RunOutcome::Condition;
                break;
            }
            sim.step();
            assert!(sim.nodes().all(|(_, n)| n.active_sessions() <= 1));
        }
        assert_eq!(outcome, RunOutcome::Condition);
        let refused: u64 = sim.nodes().map(|(_, n)| n.stats().sessions_refused).sum();
        assert!(refused > 0, "all four tick together: some must be refused");
    }

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        for (id, kind, seq) in [(0, 1, 0), (u64::MAX, 3, u32::MAX), (7 << 32 | 9, 2, 300)] {
            let mut m = header(id, kind, seq);
            m.extend_from_slice(b"xyz");
            assert_eq!(parse_header(&m), Some((id, kind, seq, &b"xyz"[..])));
        }
        assert_eq!(parse_header(&[]), None);
        assert_eq!(parse_header(&[0x80]), None);
        assert_eq!(parse_header(&[0x80, 0x00, 1, 0]), None, "overlong");
        assert_eq!(parse_header(&[0xff; 11]), None);
        assert_eq!(parse_header(&[5]), None, "no kind");
        let mut big_seq = vec![5, 1];
        put_varint(&mut big_seq, 1 << 40);
        assert_eq!(parse_header(&big_seq), None, "seq beyond u32");
    }
}
