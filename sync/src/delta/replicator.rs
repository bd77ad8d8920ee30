//! The [`Replicator`]: delta buffer, per-neighbour acks, BP and RR,
//! garbage collection, and the fall-backs (state transfer, Merkle session).
//! See the [parent module](super) for the protocol.

use core::fmt;
use std::collections::{BTreeMap, VecDeque};

use accordant::codec;
use accordant::Lattice;

use std::time::Duration;

use tracing::{debug, info};

use super::holdback::HoldBack;
use super::{wire, Config, ReplicaState, Stats, Strategy, Transmit};
use crate::error::SyncError;
use crate::host::{HostConfig, HostEvent, HostedSession, Outcome, SessionHost};
use crate::session::SessionStats;

mod fallback;
use fallback::*;

/// A buffered delta: its sequence number is its position (the buffer holds
/// the contiguous range `[floor, seq)`).
struct Entry<D, P> {
    seq: u64,
    /// The neighbour and incarnation it came from; `None` for local writes.
    origin: Option<(P, u32)>,
    delta: D,
}

/// What this replica knows about one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Peer {
    /// The neighbour's incarnation, once heard from.
    inc: Option<u32>,
    /// It holds every entry of ours below this (ours, as acknowledged).
    ack: u64,
    /// An entry below this that it needed was dropped: while `ack < hole`,
    /// deltas cannot serve it.
    hole: u64,
    /// We hold every entry of the neighbour's below this (what we ack).
    recv: u64,
    /// Its last incarnations before `inc` (0: none): their messages are
    /// stragglers.
    retired: [u32; 4],
    /// A session established that it holds every entry of ours below this;
    /// sent along with intervals until it acknowledges that far.
    base: Option<u64>,
    /// State transfers sent to it in a row without an ack, and sync steps
    /// to wait before sending another (sessions back off in the host).
    failures: u32,
    wait: u32,
    /// A session changed our state at this generation (0: none since the
    /// last session with this neighbour): run one with it too, started at
    /// this generation or later.
    resync: u64,
    /// Entries below this were sent (pipelining: `Config::resend_after`).
    sent: u64,
    /// Sync steps since the ack last advanced while entries were
    /// outstanding.
    quiet: u32,
}

impl Peer {
    fn new(hole: u64) -> Self {
        Peer {
            inc: None,
            ack: 0,
            hole,
            recv: 0,
            retired: [0; 4],
            failures: 0,
            wait: 0,
            base: None,
            resync: 0,
            sent: 0,
            quiet: 0,
        }
    }
}

/// Whether neighbour `p` (known as `peer`) still needs `entry`.
fn needed<D, P: PartialEq>(entry: &Entry<D, P>, p: &P, peer: &Peer, bp: bool) -> bool {
    if entry.seq < peer.ack {
        return false;
    }
    match (&entry.origin, peer.inc) {
        (Some((from, inc)), Some(now)) if bp => !(from == p && *inc == now),
        _ => true,
    }
}

/// The header of a received delta-interval.
struct Interval {
    /// The sender's incarnation.
    inc: u32,
    start: u64,
    end: u64,
    base: Option<(u32, u64)>,
    /// The encoded size of its delta-group.
    bytes: usize,
}

/// One replica's side of delta replication with its neighbours `P`; see
/// the [module docs](super).
pub struct Replicator<S: ReplicaState, P> {
    config: Config,
    incarnation: u32,
    /// The next sequence number.
    seq: u64,
    /// Entries `[floor, seq)`, oldest first.
    buffer: VecDeque<Entry<S::Delta, P>>,
    peers: BTreeMap<P, Peer>,
    /// Intervals held per neighbour (causal delivery only).
    held: HoldBack<P, S::Delta>,
    /// The fall-back sessions. Its clock is the number of sync steps, one
    /// second per step as the host sees it.
    host: SessionHost<P, Fallback<S>>,
    /// Sync steps so far.
    steps: u64,
    /// Sessions that changed the state so far.
    generation: u64,
    outbox: VecDeque<Transmit<P>>,
    stats: Stats,
    /// Applied to every fall-back session made (the node gives its
    /// sessions its admission policy here).
    session_hook: Option<SessionHook<S>>,
}

/// What a [`Replicator`] applies to each fall-back session it makes.
pub type SessionHook<S> = std::sync::Arc<
    dyn Fn(<S as ReplicaState>::Session) -> <S as ReplicaState>::Session + Send + Sync,
>;

impl<S: ReplicaState, P: Copy + Ord + fmt::Debug> fmt::Debug for Replicator<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replicator")
            .field("strategy", &self.config.strategy)
            .field("incarnation", &self.incarnation)
            .field("seq", &self.seq)
            .field("buffered", &self.buffer.len())
            .field("peers", &self.peers)
            .field("sessions", &self.host.sessions())
            .finish_non_exhaustive()
    }
}

impl<S: ReplicaState, P: Copy + Ord + fmt::Debug> Replicator<S, P> {
    /// A replicator for `state`, with no neighbour yet. `incarnation`
    /// identifies this run of the replica (0 counts as 1): draw it at
    /// random, and draw a new one after a restart.
    ///
    /// If `state` is not bottom (a replica restarted from a snapshot), no
    /// neighbour can be served from the buffer at first: each is repaired by
    /// the fall-back once.
    pub fn new(config: Config, incarnation: u32, state: &S) -> Self {
        let seq = u64::from(!state.is_empty());
        Replicator {
            config,
            incarnation: incarnation.max(1),
            seq,
            buffer: VecDeque::new(),
            peers: BTreeMap::new(),
            held: HoldBack::new(),
            host: SessionHost::new(host_config(&config), u64::from(incarnation)),
            steps: 0,
            generation: 0,
            outbox: VecDeque::new(),
            stats: Stats::default(),
            session_hook: None,
        }
    }

    /// Applies `hook` to every fall-back session this replicator makes
    /// from now on: the node passes
    /// [`Session::with_admission`](crate::session::Session::with_admission)
    /// here, so values a fall-back session carries pass the same admission
    /// as deltas do.
    pub fn set_session_hook(&mut self, hook: SessionHook<S>) {
        self.session_hook = Some(hook);
    }

    /// A fresh replicator with the same settings and neighbours, for the
    /// replica restarted with `state` and a new `incarnation`.
    pub fn restarted(&self, incarnation: u32, state: &S) -> Self {
        let mut r = Self::new(self.config, incarnation, state);
        r.session_hook = self.session_hook.clone();
        for p in self.peers.keys() {
            r.add_neighbour(*p);
        }
        r
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// This replica's incarnation.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// The next sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Entries in the delta buffer.
    pub fn buffer_len(&self) -> usize {
        self.buffer.len()
    }

    /// What this replicator sent, received and did.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The neighbours, in order.
    pub fn neighbours(&self) -> impl Iterator<Item = P> + '_ {
        self.peers.keys().copied()
    }

    /// The sequence number below which `p` acknowledged everything.
    pub fn acked(&self, p: P) -> Option<u64> {
        self.peers.get(&p).map(|x| x.ack)
    }

    /// Whether `p` is waiting for a fall-back (state transfer or session).
    pub fn needs_fallback(&self, p: P) -> bool {
        self.peers
            .get(&p)
            .is_some_and(|x| x.ack < x.hole || x.resync > 0)
    }

    /// Anti-entropy sessions in progress.
    pub fn sessions(&self) -> usize {
        self.host.sessions()
    }

    /// Delta-intervals held (causal delivery), over all neighbours.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// Bytes of the delta-intervals held, over all neighbours.
    pub fn held_bytes(&self) -> usize {
        self.held.bytes()
    }

    /// Drops every interval held for `p` (they were not acknowledged: the
    /// sender sends them again).
    fn drop_held(&mut self, p: P) {
        self.held.drop_peer(p, &mut self.stats);
    }

    /// The oldest sequence number still buffered (`seq` if none).
    fn floor(&self) -> u64 {
        self.buffer.front().map_or(self.seq, |e| e.seq)
    }

    /// Adds a neighbour; returns `false` if it already was one. If entries
    /// were already dropped from the buffer, it is repaired by the fall-back
    /// first.
    pub fn add_neighbour(&mut self, p: P) -> bool {
        if self.peers.contains_key(&p) {
            return false;
        }
        let floor = self.floor();
        self.peers.insert(p, Peer::new(floor));
        true
    }

    /// Removes a neighbour (and any session with it); returns whether it was
    /// one.
    pub fn remove_neighbour(&mut self, p: P) -> bool {
        self.drop_held(p);
        self.host.forget(p);
        self.after_host();
        let was = self.peers.remove(&p).is_some();
        self.collect();
        was
    }

    /// Applies a delta mutator to `state` and buffers the delta it returns.
    /// On error nothing is buffered (the mutators of `accordant` change
    /// nothing when they fail).
    pub fn update<E>(
        &mut self,
        state: &mut S,
        f: impl FnOnce(&mut S) -> Result<S::Delta, E>,
    ) -> Result<(), E> {
        let delta = f(state)?;
        self.record(delta);
        Ok(())
    }

    /// Joins a local `delta` into `state` and buffers it.
    pub fn apply(&mut self, state: &mut S, delta: S::Delta) {
        state.join_delta(&delta);
        self.record(delta);
    }

    /// Buffers a local delta that the caller has already joined into the
    /// state (for a caller that applies its writes itself, as a transport's
    /// write path does).
    pub fn record(&mut self, delta: S::Delta) {
        if matches!(self.config.strategy, Strategy::Delta { .. }) && !delta.is_bottom() {
            self.push(None, delta);
        }
    }

    fn push(&mut self, origin: Option<(P, u32)>, delta: S::Delta) {
        self.buffer.push_back(Entry {
            seq: self.seq,
            origin,
            delta,
        });
        self.seq += 1;
        self.stats.entries_buffered += 1;
        let bp = self.bp();
        while self.buffer.len() > self.config.max_buffer.max(1) {
            let Some(e) = self.buffer.pop_front() else {
                break;
            };
            self.stats.entries_dropped += 1;
            for (p, peer) in &mut self.peers {
                if needed(&e, p, peer, bp) {
                    peer.hole = peer.hole.max(e.seq + 1);
                }
            }
        }
    }

    fn bp(&self) -> bool {
        matches!(self.config.strategy, Strategy::Delta { bp: true, .. })
    }

    /// Drops the oldest entries while no neighbour needs them.
    fn collect(&mut self) {
        let bp = self.bp();
        while let Some(e) = self.buffer.front() {
            if self.peers.iter().any(|(p, peer)| needed(e, p, peer, bp)) {
                break;
            }
            self.buffer.pop_front();
            self.stats.entries_collected += 1;
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<P>> {
        self.outbox.pop_front()
    }

    fn send(&mut self, to: P, bytes: Vec<u8>) {
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.outbox.push_back(Transmit { to, bytes });
    }

    /// One synchronisation step: queues, for every neighbour, its
    /// delta-interval (or the whole state, or a fall-back), and ages the
    /// running sessions.
    pub fn sync_step(&mut self, state: &S) {
        self.steps += 1;
        self.host.handle_timeout(self.now());
        self.after_host();
        if let Some(budget) = self.config.causal {
            let late = self.held.late(self.steps, budget.max_wait);
            for p in late {
                debug!(peer = ?p, "held delta-intervals waited too long: dropped");
                self.drop_held(p);
            }
        }
        match self.config.strategy {
            Strategy::State => {
                if self.peers.is_empty() {
                    return;
                }
                let payload = state.encode_state();
                let peers: Vec<P> = self.peers.keys().copied().collect();
                for p in peers {
                    self.stats.states_sent += 1;
                    self.stats.payload_bytes_sent += payload.len() as u64;
                    self.send(p, wire::state(self.incarnation, &payload));
                }
            }
            Strategy::Delta { bp, .. } => {
                let peers: Vec<P> = self.peers.keys().copied().collect();
                for p in peers {
                    self.step_peer(state, p, bp);
                }
                self.collect();
            }
        }
    }

    /// The host's clock: one second per sync step.
    fn now(&self) -> Duration {
        Duration::from_secs(self.steps)
    }

    fn step_peer(&mut self, state: &S, p: P, bp: bool) {
        let Some(peer) = self.peers.get_mut(&p) else {
            return;
        };
        let waiting = peer.wait > 0;
        peer.wait = peer.wait.saturating_sub(1);
        let peer = *peer;
        let lost = peer.ack < peer.hole;
        if (lost || peer.resync > 0)
            && !waiting
            && !self.host.has_session(p)
            && !self.host.backing_off(p)
        {
            match self.make_session(state, true, self.config.session) {
                Some(session) => self.start_session(p, session),
                None if lost => self.transfer_state(state, p),
                None => {}
            }
        }
        if lost {
            // Deltas cannot serve it until the fall-back is over.
            return;
        }
        if peer.ack >= self.seq {
            return;
        }
        let from = self.interval_start(p);
        if from >= self.seq {
            return;
        }
        let skip = usize::try_from(from.saturating_sub(self.floor())).unwrap_or(usize::MAX);
        let mut group = S::Delta::default();
        for e in self.buffer.iter().skip(skip) {
            if needed(e, &p, &peer, bp) {
                group.join(&e.delta);
            }
        }
        if group.is_bottom() {
            return;
        }
        let payload = codec::encode(&group);
        let base = match (peer.base, peer.inc) {
            (Some(b), Some(inc)) => Some((inc, b)),
            _ => None,
        };
        self.stats.groups_sent += 1;
        self.stats.payload_bytes_sent += payload.len() as u64;
        let msg = wire::delta(self.incarnation, from, self.seq, base, false, &payload);
        self.send(p, msg);
    }

    /// Where the next interval to `p` starts: its ack, or with pipelining
    /// what was not sent yet (back to the ack after `resend_after` quiet
    /// steps). Marks everything up to `seq` as sent.
    fn interval_start(&mut self, p: P) -> u64 {
        let after = self.config.resend_after;
        let seq = self.seq;
        let Some(peer) = self.peers.get_mut(&p) else {
            return seq;
        };
        let mut from = peer.ack;
        if after > 0 && peer.sent > peer.ack {
            peer.quiet += 1;
            if peer.quiet > after {
                peer.quiet = 0;
                self.stats.resends += 1;
            } else {
                from = peer.sent;
            }
        }
        peer.sent = peer.sent.max(seq);
        from
    }

    /// A state transfer: the whole state as the interval `[0, seq)`,
    /// repeated (with back-off) until acknowledged.
    fn transfer_state(&mut self, state: &S, p: P) {
        if let Some(x) = self.peers.get_mut(&p) {
            x.failures = x.failures.saturating_add(1);
            x.wait = 1u32 << x.failures.min(5);
        }
        let payload = state.encode_state();
        debug!(peer = ?p, bytes = payload.len(), "state transfer");
        self.stats.state_transfers += 1;
        self.stats.states_sent += 1;
        self.stats.payload_bytes_sent += payload.len() as u64;
        let msg = wire::delta(self.incarnation, 0, self.seq, None, true, &payload);
        self.send(p, msg);
    }

    /// Handles a message from neighbour `from`. The message is parsed and
    /// its payload decoded whole first: an error (a malformed or hostile
    /// message, a sender that is not a neighbour) leaves `state` and the
    /// replicator as they were, except that a failing anti-entropy session
    /// is dropped (what its earlier messages joined stays: joins only add).
    pub fn receive(&mut self, state: &mut S, from: P, bytes: &[u8]) -> Result<(), SyncError> {
        self.receive_checked(state, from, bytes, |_, _| Ok(()))
    }

    /// [`receive`](Self::receive), with `check` run on every decoded
    /// delta-group or state (with the state it would be joined into)
    /// before anything of it is applied: an error refuses the whole
    /// message, as a malformed one is. The node passes its admission
    /// policy here ([`crate::admission`]). Fall-back session messages are
    /// the session's to check.
    pub fn receive_checked<F>(
        &mut self,
        state: &mut S,
        from: P,
        bytes: &[u8],
        mut check: F,
    ) -> Result<(), SyncError>
    where
        F: FnMut(&S, &S::Delta) -> Result<(), SyncError>,
    {
        self.stats.messages_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let limit = self.config.limits.max_bytes.saturating_add(64);
        if bytes.len() > limit {
            return Err(SyncError::TooLarge {
                len: bytes.len(),
                limit,
            });
        }
        if !self.peers.contains_key(&from) {
            return Err(SyncError::Unexpected(
                "message from a peer that is not a neighbour",
            ));
        }
        match wire::decode(bytes)? {
            wire::Msg::Delta {
                from_inc,
                start,
                end,
                base,
                full,
                payload,
            } => {
                let group =
                    self.decode_payload(payload, if full { "state" } else { "delta-group" })?;
                check(state, &group)?;
                if !self.observe(from, from_inc) {
                    return Ok(());
                }
                let interval = Interval {
                    inc: from_inc,
                    start,
                    end,
                    base,
                    bytes: payload.len(),
                };
                self.on_delta(state, from, interval, group);
            }
            wire::Msg::State { from_inc, payload } => {
                let whole = self.decode_payload(payload, "state")?;
                check(state, &whole)?;
                if !self.observe(from, from_inc) {
                    return Ok(());
                }
                self.on_state(state, from, from_inc, whole);
            }
            wire::Msg::Ack {
                from_inc,
                to_inc,
                have,
            } => {
                if to_inc != self.incarnation {
                    self.stats.stale_ignored += 1;
                    return Ok(());
                }
                if !self.observe(from, from_inc) {
                    return Ok(());
                }
                self.on_ack(from, have);
            }
            wire::Msg::Session {
                from_inc,
                to_inc,
                envelope,
            } => {
                // An opening may not know our incarnation yet (0).
                if to_inc != self.incarnation && to_inc != 0 {
                    self.stats.stale_ignored += 1;
                    return Ok(());
                }
                if !self.observe(from, from_inc) {
                    return Ok(());
                }
                self.on_session(state, from, envelope)?;
            }
        }
        Ok(())
    }

    fn decode_payload(&self, payload: &[u8], what: &'static str) -> Result<S::Delta, SyncError> {
        codec::decode::<S::Delta>(payload, &self.config.limits)
            .map_err(|source| SyncError::Value { what, source })
    }

    /// Notes `from`'s incarnation; a new one means it restarted: it is
    /// treated as a new neighbour. Returns `false` for a message from an
    /// incarnation it already replaced (a straggler), to be ignored.
    fn observe(&mut self, from: P, inc: u32) -> bool {
        let Some(peer) = self.peers.get_mut(&from) else {
            return false;
        };
        match peer.inc {
            Some(known) if known == inc => true,
            None => {
                peer.inc = Some(inc);
                true
            }
            Some(_) if peer.retired.contains(&inc) => {
                self.stats.stale_ignored += 1;
                false
            }
            Some(old) => {
                let mut retired = peer.retired;
                retired.rotate_right(1);
                retired[0] = old;
                self.stats.peer_restarts += 1;
                info!(peer = ?from, old, new = inc, "neighbour restarted: treated as a new neighbour");
                self.host.forget(from);
                self.after_host();
                let mut fresh = Peer::new(self.floor());
                fresh.inc = Some(inc);
                fresh.retired = retired;
                self.peers.insert(from, fresh);
                self.drop_held(from);
                true
            }
        }
    }

    fn on_delta(&mut self, state: &mut S, from: P, x: Interval, group: S::Delta) {
        let me = self.incarnation;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if let Some((inc, b)) = x.base {
            if inc == me {
                peer.recv = peer.recv.max(b);
            }
        }
        if self.host.sessions() > 0 {
            // A fall-back session verifies equal roots: hold remote deltas
            // back until it ends (the sender sends them again, unacked).
            self.stats.groups_deferred += 1;
            return;
        }
        if x.start > peer.recv {
            // The causal merging condition fails: we lack [recv, start).
            let have = peer.recv;
            if !self.hold(from, &x, group) {
                self.stats.groups_refused += 1;
            }
            // Held or refused, it is not acknowledged: the current ack
            // tells a pipelining sender to resend from the gap at once. A
            // held interval is joined as soon as the gap is filled (a
            // reordered message arriving), without waiting for that resend.
            debug!(peer = ?from, have, start = x.start, "delta-interval ahead of a gap");
            self.stats.acks_sent += 1;
            self.send(from, wire::ack(me, x.inc, have));
            return;
        }
        self.join_interval(state, from, x.inc, x.end, group);
        // Intervals held for this neighbour that now follow without a gap.
        loop {
            let recv = self.peers.get(&from).map_or(0, |p| p.recv);
            let Some(g) = self.held.take_ready(from, recv) else {
                break;
            };
            if g.inc != x.inc {
                self.stats.held_dropped += 1;
                continue;
            }
            self.stats.held_applied += 1;
            self.join_interval(state, from, g.inc, g.end, g.group);
        }
        let have = self.peers.get(&from).map_or(0, |p| p.recv);
        self.stats.acks_sent += 1;
        self.send(from, wire::ack(me, x.inc, have));
    }

    /// Holds an interval that arrived ahead of a gap, within the causal
    /// delivery budget. Returns `false` (and drops everything held for
    /// `from`) when causal delivery is off or the budget would be exceeded.
    fn hold(&mut self, from: P, x: &Interval, group: S::Delta) -> bool {
        let Some(budget) = self.config.causal else {
            return false;
        };
        let header = (x.start, x.end, x.inc, x.bytes);
        let held = self
            .held
            .hold(&budget, from, header, group, self.steps, &mut self.stats);
        if !held {
            debug!(peer = ?from, "causal hold-back budget exceeded: dropped");
        }
        held
    }

    /// Joins an interval that meets the causal merging condition, and
    /// buffers what it brought.
    fn join_interval(&mut self, state: &mut S, from: P, inc: u32, end: u64, group: S::Delta) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.recv = peer.recv.max(end);
        self.stats.groups_received += 1;
        let novel = state.inflation(&group);
        if novel.is_bottom() {
            self.stats.groups_redundant += 1;
        } else {
            state.join_delta(&novel);
            if let Strategy::Delta { rr, .. } = self.config.strategy {
                self.push(Some((from, inc)), if rr { novel } else { group });
                self.collect();
            }
        }
    }

    fn on_state(&mut self, state: &mut S, from: P, from_inc: u32, whole: S::Delta) {
        self.stats.groups_received += 1;
        match self.config.strategy {
            Strategy::State => state.join_delta(&whole),
            Strategy::Delta { .. } => {
                let novel = state.inflation(&whole);
                if novel.is_bottom() {
                    self.stats.groups_redundant += 1;
                } else {
                    state.join_delta(&novel);
                    self.push(Some((from, from_inc)), novel);
                }
            }
        }
    }

    fn on_ack(&mut self, from: P, have: u64) {
        let seq = self.seq;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        // Nobody can hold what was never sent.
        let have = have.min(seq);
        if have > peer.ack {
            peer.ack = have;
            peer.quiet = 0;
        } else if have < peer.sent {
            // No progress while intervals are outstanding: the neighbour
            // refused one (a gap); resend from its ack at the next step.
            peer.sent = peer.ack;
        }
        if peer.ack >= peer.hole && peer.resync == 0 {
            peer.failures = 0;
        }
        if peer.base.is_some_and(|b| have >= b) {
            peer.base = None;
        }
        self.collect();
    }
}
