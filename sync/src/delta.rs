//! Continuous delta replication: delta-intervals with acknowledgements,
//! back-propagation avoidance (BP) and redundancy removal (RR).
//!
//! While replicas are connected, each one keeps the others close by
//! shipping deltas rather than states. A [`Replicator`] follows the
//! anti-entropy algorithm with delta-intervals of Almeida, Shoker and
//! Baquero ("Delta State Replicated Data Types", JPDC 2018, Algorithm 2)
//! with the two fixes of Enes, Almeida, Baquero and Leitão ("Efficient
//! Synchronization of State-based CRDTs", ICDE 2019):
//!
//! - every delta that inflates the local state (a local mutation, or a
//!   received delta-group) goes into a **delta buffer** under the next
//!   **sequence number**, tagged with its origin;
//! - at every **sync step**, each neighbour `j` gets one message: the join
//!   of the buffer entries from `ack[j]` on, a *delta-interval*
//!   `[ack[j], seq)`; nothing if `j` already acknowledged everything;
//! - the receiver joins it and answers with an **ack**: the sequence number
//!   below which it now holds everything of the sender. Acks only grow, so
//!   loss, duplication and reordering of either message are harmless: an
//!   interval not acknowledged is sent again, extended, at the next step;
//! - **garbage collection**: an entry that no neighbour still needs is
//!   dropped from the buffer;
//! - **BP** (avoid back-propagation): entries that came from `j` are left
//!   out of `j`'s interval;
//! - **RR** (remove redundant state): of a received delta-group, only the
//!   part that inflates the local state, the minimal delta
//!   `Δ(group, local)` ([`Decompose::delta`]), is buffered; classic delta
//!   replication buffers the whole group whenever any of it is new.
//!
//! The **causal delta-merging condition** of the JPDC paper holds: a replica
//! joins an interval `[a, b)` from `i` only if it holds everything of `i`
//! below `a` (the interval's start is checked against what it has
//! acknowledged; a premature interval is refused and answered with the
//! current ack). BP and RR keep it: what they leave out is already at the
//! receiver (it sent it) or below `a`.
//!
//! Neither BP nor RR changes the states replicas converge to, only the bytes
//! ([`Strategy`] switches them; `Strategy::State` ships the whole state at
//! every step, for comparison).
//!
//! # Falling back
//!
//! A neighbour that needs an entry that is no longer in the buffer — the
//! buffer was capped ([`Config::max_buffer`]) while the neighbour was away,
//! it is a new neighbour, or it restarted — cannot be served by deltas. The
//! replicator then falls back, as the state type decides
//! ([`ReplicaState::new_session`]):
//!
//! - a single CRDT value is shipped whole, as an interval from 0 (a state
//!   transfer; the receiver's RR keeps only what it lacks);
//! - a [`Store`](crate::store::Store) runs a Merkle anti-entropy
//!   [`Session`](crate::session::Session) with the neighbour, carried inside
//!   the replicator's own messages; when both sides have verified equal
//!   roots, each knows the other holds everything it had when the session
//!   started, and deltas resume from there. A session that brought new data
//!   into a store asks for a session with every other neighbour too (the
//!   store cannot tell which deltas the session joined, so it cannot buffer
//!   them); such a wave stops wherever nothing changes. While a session
//!   runs, received delta-groups are held back (not joined, not
//!   acknowledged, so sent again later), or the roots would rarely match
//!   under a steady stream of writes. A session that fails (a lost message,
//!   a timeout of [`Config::session_timeout`] steps, roots still different
//!   after its passes) is started again after a back-off of 2, 4, ... 32
//!   steps; so is a state transfer that is not acknowledged.
//!
//! The replicator is generic over the [`ReplicaState`]: one CRDT value (what
//! the ICDE 2019 micro-benchmarks replicate, and what
//! `examples/icde19.rs` measures), or a keyed store whose delta-groups are
//! [`GMap`]s of per-key deltas (what a multi-key replica runs, with the
//! Merkle session as its fall-back).
//!
//! # Incarnations
//!
//! Acks and sequence numbers are volatile. Each replicator is created with
//! an *incarnation*, a random number passed in by the caller (a restarted
//! replica must use a new one): every message carries its sender's, acks
//! echo the one they answer, and a neighbour seen with a new incarnation is
//! treated as new (its acks are reset, and what it sent back is no longer
//! left out by BP). Acks addressed to an earlier incarnation, and messages
//! from one a neighbour has replaced, are ignored. Neighbours must not share
//! an incarnation (random 32-bit numbers collide with probability 2^-32).
//!
//! # Driving it
//!
//! A `Replicator` never touches a socket or a clock (sans-IO, like
//! [`Session`](crate::session::Session)), and does not own the state: every
//! call that reads or changes it takes it as an argument, and every change
//! to the state must go through the replicator to be replicated.
//!
//! - [`Replicator::add_neighbour`] / [`Replicator::remove_neighbour`] set
//!   the peers it talks to;
//! - [`Replicator::update`] (a delta mutator), [`Replicator::apply`] (a
//!   delta) or [`Replicator::record`] (a delta already joined) for local
//!   writes;
//! - [`Replicator::sync_step`] periodically, [`Replicator::receive`] for
//!   every message that arrives;
//! - [`Replicator::poll_transmit`] after each of those, to take what to
//!   send. `sim::DeltaNode` (feature `sim`) does all this in the
//!   [simulator](crate::sim).
//!
//! Three replicas of a counter in a line, `a — b — c`:
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::delta::{Config, Replicator, Strategy};
//!
//! let strategy = Strategy::Delta { bp: true, rr: true };
//! let mut states = vec![GCounter::new(); 3];
//! let mut reps: Vec<Replicator<GCounter, usize>> = (0..3)
//!     .map(|i| Replicator::new(Config::new(strategy), i as u32 + 1, &states[i]))
//!     .collect();
//! for (i, j) in [(0, 1), (1, 2)] {
//!     reps[i].add_neighbour(j);
//!     reps[j].add_neighbour(i);
//! }
//! for (i, n) in [(0, 3), (2, 4)] {
//!     let r = ReplicaId::from_u128(i as u128);
//!     reps[i].update(&mut states[i], |c| c.increment(r, n)).unwrap();
//! }
//! for _round in 0..4 {
//!     for i in 0..3 {
//!         reps[i].sync_step(&states[i]);
//!     }
//!     // Deliver until quiet.
//!     loop {
//!         let mut moved = false;
//!         for i in 0..3 {
//!             while let Some(t) = reps[i].poll_transmit() {
//!                 reps[t.to].receive(&mut states[t.to], i, &t.bytes).unwrap();
//!                 moved = true;
//!             }
//!         }
//!         if !moved {
//!             break;
//!         }
//!     }
//! }
//! assert!(states.iter().all(|s| s.value() == 7));
//! // Everything was acknowledged: the buffers are empty.
//! assert!(reps.iter().all(|r| r.buffer_len() == 0));
//! ```
//!
//! # Causal delivery
//!
//! What the replicator guarantees without help: the causal delta-merging
//! condition (JPDC 2018, §6) means a replica joins an interval `[a, b)` of
//! a neighbour only when it holds every entry of that neighbour below `a`,
//! and every replica buffers what it joins in the order it joins it. So
//! along **every** path, across keys and across origins, a joined interval
//! brings the sender's whole state as of entry `b`: a state joins only
//! states that are themselves joins of earlier closed states, and a join of
//! causally closed states (down-closed sets of writes) is causally closed.
//! The paper derives causal consistency from this condition. What breaks it
//! here is the **Merkle fall-back**: a [`Session`](crate::session::Session)
//! joins the peer's values a message at a time (the responder takes the
//! Offer, then the Close), and what it joins is in no buffer, so a write
//! made after it is forwarded to the other neighbours by delta without what
//! it depends on (the resync wave comes later). The causal-cut checker
//! ([`sim::causal`](crate::sim::causal), feature `sim`) sees it: 8 of 60
//! seeded runs of `tests/causal_delivery.rs` (3 replicas, buffer of 6,
//! partitions, loss, reordering) show a write without its cause.
//!
//! [`Config::with_causal_delivery`] (or
//! [`AckedConfig::with_causal_delivery`] on a node) closes that gap with
//! the smallest change that keeps the argument above whole:
//!
//! - the fall-back is a **state transfer**, whatever the state type: the
//!   sender's whole state (causally closed) as the interval `[0, seq)`,
//!   joined at once, its inflation buffered like any received group. A
//!   replica with causal delivery runs no Merkle session, and refuses a
//!   neighbour's session message with a typed error (all replicas of a
//!   mesh must agree on the option);
//! - a bounded **hold-back queue** in the manner of Birman, Schiper and
//!   Stephenson ("Lightweight causal and atomic group multicast", TOCS
//!   1991): an interval that arrives ahead of a gap (reordered, or after a
//!   lost one) is held, within [`CausalDelivery`]'s budget per neighbour
//!   (intervals, bytes, sync steps), and joined as soon as the gap is
//!   filled; it is not acknowledged, and the current ack goes back at once
//!   so a pipelining sender resends from the gap. On overflow or after
//!   `max_wait` steps the held intervals are dropped, which loses nothing:
//!   the sender still has them, or (its buffer capped) falls back to a
//!   state transfer. Holding only shortens the wait; a budget of zero is
//!   still causal.
//!
//! No dependency vector is needed: the interval's sequence numbers are the
//! whole dependency, because the sender's buffer already orders other
//! origins' deltas before what depends on them. So causal delivery adds
//! **no byte to a delta**, and the wire format does not change.
//!
//! **Cost** (`cargo run --release -p accordant-sync --example
//! causal_delivery -- 200`: 4 replicas, 30 writes each, 60 ms round trip,
//! 10% loss, 5% duplication, 20% reordering): in the steady state (no
//! partition, a large buffer) held intervals peak at 10 per replica (p99
//! 8; 766 bytes, p99 574), bytes per write are 402 against 421 without
//! it, and a write shows at another replica after a median of 33 ms either
//! way (run p99s: 188 ms against 208 ms). With partitions and a 6-entry
//! buffer, state transfers replace sessions: 864 bytes per write against
//! 341, held at most 5 intervals (1135 bytes), and a median visibility of
//! 82 ms against 350 ms (sessions defer deltas while they run). A state
//! transfer ships the whole state: it must fit in [`Config::limits`], so
//! causal delivery suits stores of up to a few MiB, or a buffer large
//! enough that neighbours rarely fall behind it.
//!
//! **What it does not cover.** Held intervals passed admission when they
//! arrived, against the state of then. Writes made with
//! `DeltaNode::state_mut` bypass the replicator. On the TCP node, a
//! channel whose path is causal ([`DeltaReplicator::causal`]) runs none of
//! the node's own anti-entropy sessions (on connect, every
//! `NodeConfig::ae_interval`, after dropped deltas), refuses its peers'
//! session openings, and pulls no key for a token read (which then waits
//! for the deltas): each would join state outside the causal order. Its
//! replicator's whole-state transfer is the only repair, so every member
//! must configure the channel the same way (a member that does not has its
//! sessions on that channel refused).
//!
//! # Wire format
//!
//! Each message is a version byte, a kind byte, the sender's incarnation
//! and a small header, then the canonical encoding of the delta-group or
//! state (see `wire.rs`). A delta-group costs 9 bytes on top of its
//! encoding plus the varint lengths of its two sequence numbers (and 5 or
//! more for a base after a session); an ack 11 bytes plus a varint; a
//! whole state 6. A message is parsed and its payload decoded (bounded by
//! [`Config::limits`]) before anything is applied; a malformed one is an
//! error and changes nothing.

use core::fmt;

use accordant::codec::{self, Canonical, Limits};
use accordant::{Decompose, Lattice};

use crate::error::SyncError;
use crate::session::{SessionConfig, SessionStats};

pub mod acked;
mod holdback;
mod map;
pub mod path;
mod replicator;
mod store;
mod wire;

pub use acked::{AckedConfig, AckedDeltas, AckedStats};
pub use map::GMap;
pub use path::{decode_value, DeltaReplicator, NaivePush, Outbox};
pub use replicator::{Replicator, SessionHook};

/// How replicas synchronise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Ship the whole state to every neighbour at every step (state-based
    /// synchronisation); no buffer, no acks.
    State,
    /// Delta-intervals with acks. `bp`: leave out of a neighbour's interval
    /// what came from it; `rr`: buffer only the part of a received
    /// delta-group that inflates the local state. Both off is classic delta
    /// replication.
    Delta {
        /// Avoid back-propagation.
        bp: bool,
        /// Remove redundant state from received delta-groups.
        rr: bool,
    },
}

impl Strategy {
    /// The five strategies of the ICDE 2019 comparison.
    pub const ALL: [Strategy; 5] = [
        Strategy::State,
        Strategy::Delta {
            bp: false,
            rr: false,
        },
        Strategy::Delta {
            bp: true,
            rr: false,
        },
        Strategy::Delta {
            bp: false,
            rr: true,
        },
        Strategy::Delta { bp: true, rr: true },
    ];

    /// `state`, `delta`, `delta_bp`, `delta_rr` or `delta_bp_rr`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::State => "state",
            Strategy::Delta {
                bp: false,
                rr: false,
            } => "delta",
            Strategy::Delta {
                bp: true,
                rr: false,
            } => "delta_bp",
            Strategy::Delta {
                bp: false,
                rr: true,
            } => "delta_rr",
            Strategy::Delta { bp: true, rr: true } => "delta_bp_rr",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings of a [`Replicator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// State-based, classic delta, BP, RR or BP+RR.
    pub strategy: Strategy,
    /// Largest number of buffered entries; beyond it the oldest is dropped
    /// and the neighbours that still needed it fall back.
    pub max_buffer: usize,
    /// Bounds on received delta-groups and states.
    pub limits: Limits,
    /// Settings of fall-back anti-entropy sessions.
    pub session: SessionConfig,
    /// Sync steps a fall-back session may go without receiving anything
    /// before it is abandoned (and, if still needed, started again).
    pub session_timeout: u32,
    /// Pipelining of intervals: 0 (the default, the paper's algorithm)
    /// sends a neighbour everything it has not acknowledged at every sync
    /// step; `n > 0` sends only what was not sent yet, and resends from
    /// the last ack after `n` steps without one (or at once when an ack
    /// shows the neighbour refused an interval). Set it above the round
    /// trip in steps on transports that deliver in order (TCP): each delta
    /// then travels once instead of once per step until acknowledged.
    pub resend_after: u32,
    /// Causal delivery ([`CausalDelivery`]; off by default): every state
    /// the replica exposes is causally closed. See the
    /// [module docs](self#causal-delivery).
    pub causal: Option<CausalDelivery>,
}

/// The budget of causal delivery ([`Config::with_causal_delivery`]): how
/// many delta-intervals that arrived ahead of a gap (reordered, or after a
/// lost one) a replica holds per neighbour, waiting for the gap, instead
/// of refusing them at once. Holding is only a shortcut: an interval held
/// is not acknowledged, so dropping the held ones (on overflow, or after
/// [`max_wait`](Self::max_wait) sync steps) loses nothing, the sender
/// sends them again from the last ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CausalDelivery {
    /// Intervals held per neighbour, at most (0: refuse at once).
    pub max_held: usize,
    /// Bytes of held delta-group encodings per neighbour, at most.
    pub max_held_bytes: usize,
    /// Sync steps the oldest held interval may wait for its gap before
    /// every interval held for that neighbour is dropped.
    pub max_wait: u32,
}

impl CausalDelivery {
    /// A budget of `max_held` intervals and `max_held_bytes` bytes per
    /// neighbour, held at most `max_wait` sync steps.
    pub fn new(max_held: usize, max_held_bytes: usize, max_wait: u32) -> Self {
        CausalDelivery {
            max_held,
            max_held_bytes,
            max_wait,
        }
    }
}

impl Default for CausalDelivery {
    /// 64 intervals and 1 MiB per neighbour, 8 sync steps.
    fn default() -> Self {
        CausalDelivery::new(64, 1 << 20, 8)
    }
}

impl Config {
    /// Settings for `strategy`, otherwise the defaults.
    pub fn new(strategy: Strategy) -> Self {
        Config {
            strategy,
            max_buffer: 4096,
            limits: Limits::new(16 << 20),
            session: SessionConfig::default(),
            session_timeout: 4,
            resend_after: 0,
            causal: None,
        }
    }

    /// Returns these settings with causal delivery on, within `budget`
    /// (see the [module docs](self#causal-delivery)): fall-backs become
    /// state transfers, and out-of-order intervals are held within the
    /// budget until their gap is filled.
    pub fn with_causal_delivery(mut self, budget: CausalDelivery) -> Self {
        self.causal = Some(budget);
        self
    }

    /// Returns these settings with `max_buffer` replaced.
    pub fn with_max_buffer(mut self, entries: usize) -> Self {
        self.max_buffer = entries;
        self
    }

    /// Returns these settings with `limits` replaced.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Returns these settings with the session settings replaced.
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Returns these settings with `resend_after` replaced.
    pub fn with_resend_after(mut self, steps: u32) -> Self {
        self.resend_after = steps;
        self
    }

    /// Returns these settings with `session_timeout` replaced.
    pub fn with_session_timeout(mut self, steps: u32) -> Self {
        self.session_timeout = steps;
        self
    }
}

impl Default for Config {
    /// Delta-intervals with BP and RR.
    fn default() -> Self {
        Config::new(Strategy::Delta { bp: true, rr: true })
    }
}

/// What a replicator sent, received and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Messages queued for sending.
    pub messages_sent: u64,
    /// Bytes of those messages, headers included.
    pub bytes_sent: u64,
    /// Bytes of CRDT encodings (delta-groups and states) in them, headers,
    /// acks and session messages excluded.
    pub payload_bytes_sent: u64,
    /// Delta-intervals sent.
    pub groups_sent: u64,
    /// Whole states sent (state-based steps and state transfers).
    pub states_sent: u64,
    /// Acks sent.
    pub acks_sent: u64,
    /// Anti-entropy session messages sent.
    pub session_messages_sent: u64,
    /// Messages received (well-formed or not).
    pub messages_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Delta-intervals (and state transfers) received and joined.
    pub groups_received: u64,
    /// Of those, the ones that inflated nothing.
    pub groups_redundant: u64,
    /// Intervals refused by the causal merging condition.
    pub groups_refused: u64,
    /// Times a pipelined interval was sent again from the last ack
    /// ([`Config::resend_after`]).
    pub resends: u64,
    /// Intervals held back (not joined, not acknowledged: the sender sends
    /// them again) while a fall-back session was running.
    pub groups_deferred: u64,
    /// Messages ignored as stale (an ack or session message addressed to an
    /// earlier incarnation, a duplicate session message).
    pub stale_ignored: u64,
    /// Entries added to the buffer.
    pub entries_buffered: u64,
    /// Entries garbage-collected (acknowledged by every neighbour that
    /// needed them).
    pub entries_collected: u64,
    /// Entries dropped by the buffer cap.
    pub entries_dropped: u64,
    /// State transfers sent to neighbours the buffer could not serve.
    pub state_transfers: u64,
    /// Anti-entropy sessions started (as initiator or responder).
    pub sessions_started: u64,
    /// Sessions that ended with verified equal roots.
    pub sessions_completed: u64,
    /// Sessions that failed (a malformed or unexpected message, a lost one).
    pub sessions_failed: u64,
    /// Sessions abandoned after [`Config::session_timeout`] silent steps.
    pub sessions_timed_out: u64,
    /// Neighbours seen with a new incarnation.
    pub peer_restarts: u64,
    /// Intervals that arrived ahead of a gap and were held (causal
    /// delivery).
    pub groups_held: u64,
    /// Held intervals joined once their gap was filled.
    pub held_applied: u64,
    /// Held intervals dropped (budget exceeded, waited too long, the
    /// neighbour left or restarted); the sender sends them again.
    pub held_dropped: u64,
    /// The most intervals held for one neighbour at once.
    pub held_max_entries: u64,
    /// The most bytes held for one neighbour at once.
    pub held_max_bytes: u64,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<P> {
    /// The neighbour.
    pub to: P,
    /// The message.
    pub bytes: Vec<u8>,
}

/// The state a [`Replicator`] replicates: what a delta-group is, how one is
/// joined and reduced, and how a neighbour the buffer cannot serve is
/// repaired.
///
/// Every CRDT value (`Lattice + Decompose + Canonical`) is one, repaired by
/// state transfer; so is a [`Store`](crate::store::Store), whose
/// delta-groups are [`GMap`]s of per-key deltas and which is repaired by a
/// Merkle anti-entropy [`Session`](crate::session::Session).
pub trait ReplicaState {
    /// What one message carries: a join of deltas.
    type Delta: Lattice + Canonical;
    /// The anti-entropy session that repairs a neighbour, or [`NoSession`].
    type Session;

    /// `self := self ⊔ delta`.
    fn join_delta(&mut self, delta: &Self::Delta);

    /// The part of `delta` not already below `self`: the minimal delta
    /// `Δ(delta, self)`. Bottom exactly when `delta` inflates nothing.
    fn inflation(&self, delta: &Self::Delta) -> Self::Delta;

    /// Whether the state is bottom.
    fn is_empty(&self) -> bool;

    /// The canonical encoding of the whole state, as a `Self::Delta`.
    fn encode_state(&self) -> Vec<u8>;

    /// Starts an anti-entropy session (as its initiator or responder), or
    /// `None` if this state is repaired by shipping it whole.
    fn new_session(&self, initiator: bool, config: SessionConfig) -> Option<Self::Session> {
        let _ = (initiator, config);
        None
    }

    /// Feeds a session message; returns whether the state changed.
    fn handle_session(
        &mut self,
        session: &mut Self::Session,
        msg: &[u8],
    ) -> Result<bool, SyncError> {
        let _ = (session, msg);
        Err(SyncError::Unexpected(
            "this state has no anti-entropy session",
        ))
    }

    /// The session's next message to send.
    fn poll_session(session: &mut Self::Session) -> Option<Vec<u8>> {
        let _ = session;
        None
    }

    /// Whether the session verified equal states.
    fn session_done(session: &Self::Session) -> bool {
        let _ = session;
        false
    }

    /// What the session sent and received so far.
    fn session_stats(session: &Self::Session) -> SessionStats {
        let _ = session;
        SessionStats::default()
    }
}

/// The session type of states repaired by state transfer: there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {}

impl<V: Lattice + Decompose + Canonical> ReplicaState for V {
    type Delta = V;
    type Session = NoSession;

    fn join_delta(&mut self, delta: &V) {
        self.join(delta);
    }

    fn inflation(&self, delta: &V) -> V {
        delta.delta(self)
    }

    fn is_empty(&self) -> bool {
        self.is_bottom()
    }

    fn encode_state(&self) -> Vec<u8> {
        codec::encode(self)
    }
}
