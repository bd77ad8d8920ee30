//! The sans-IO anti-entropy session.
//!
//! Two replicas that may have diverged (a partition, a restart, a lost delta
//! buffer, a brand-new replica) run one `Session` each. The session never
//! touches a socket or a clock, in the style of quinn-proto's `Connection`:
//!
//! - the initiator is made by [`Session::initiate`], which queues the first
//!   message; the responder by [`Session::respond`];
//! - the caller takes outgoing messages with [`Session::poll_transmit`] and
//!   delivers them to the peer however it likes (the simulator, TCP, a test
//!   loop), and feeds each message received with [`Session::handle`], which
//!   reads and updates the [`Store`];
//! - [`Session::is_done`] says when both sides have verified equal roots;
//!   [`Session::stats`] counts bytes, messages and round trips.
//!
//! # The protocol
//!
//! 1. **Roots.** The initiator sends its root digest and key count. Equal
//!    roots: the responder answers `Verified` and the pass is over — one
//!    round trip, under 64 bytes each way.
//! 2. **Localise, then reconcile.** Where roots differ, the responder sends
//!    fingerprints of every descendant of the root one or two levels down
//!    (256 of them for a large store: two levels, to save a round trip).
//!    Fingerprints are 2 bytes when a turn carries at most 1024 of them, 3
//!    or 4 bytes beyond, so that a collision (a differing node taken for an
//!    equal one) stays rare; it is caught by the root check and costs a
//!    pass. The initiator compares them with its own; the fraction `q` of
//!    nodes left equal estimates the number of changed keys (`-n ln q`:
//!    changes fall into nodes like balls into bins), and it answers with
//!    one *invertible Bloom lookup table* ([`crate::sketch`], Eppstein et
//!    al., "What's the Difference?", SIGCOMM 2011) of its items under the
//!    differing nodes, sized for that estimate plus a margin. The responder
//!    subtracts its own items there and peels the table: what remains is
//!    exactly the keys the two disagree on, found in one message whatever
//!    the size of the nodes. This replaces a level-by-level descent (one
//!    round trip per level, 16 fingerprints per level per change, then
//!    key lists of whole leaves) by a cost of about 1.5 cells of 10 bytes
//!    per item of difference. When every node differs (the count cannot be
//!    estimated) the side descends further, two levels at once where
//!    differences are dense, and estimates again one level down; a node with
//!    at most [`SessionConfig::list_max`] keys is listed instead (32 bits of
//!    key hash below the node's prefix and an item fingerprint, 8 bytes per
//!    key); a table that does not peel (more changes than estimated, all in
//!    a few nodes) makes the receiver descend those nodes instead; a node
//!    one side has nothing under is shipped or asked for whole.
//! 3. **Values.** A side that peels a table or receives a key list knows
//!    every key of those nodes the two disagree on. Keys the peer lacks travel as full values;
//!    keys it lacks are requested; for keys both hold with different
//!    values, it sends the full value when that is small (the peer joins it
//!    and answers with the exact minimal delta `Δ(peer, value)`), or else a
//!    *summary* (a causal context, a stamp): the peer answers with
//!    `delta_for(summary)` and its own summary, and gets back the delta it
//!    lacks. Both replicas end with the join of both states.
//! 4. **Verification.** A turn that asks for nothing back carries its
//!    sender's full root digest; a receiver that then has nothing to send
//!    compares roots and answers `Verified`. A side with nothing to send in
//!    answer to a turn that did ask says `Done` with its root, and the other
//!    compares and answers `Verified`. If the
//!    roots differ (a truncated-fingerprint collision, or writes during the
//!    session), a new pass starts; after [`SyncLimits::max_passes`] the
//!    session fails with [`SyncError::NotConverged`].
//!
//! A turn larger than half of [`SyncLimits::max_message_bytes`] travels as
//! several messages (chunks); the receiver applies each chunk as it comes
//! and answers after the last. Round trips count turns, not chunks.
//!
//! Every message is decoded and validated whole before any of it is applied;
//! a malformed, oversized or out-of-order message fails the session with a
//! typed error, and a pass that exceeds [`SyncLimits::max_turns`] messages
//! fails rather than looping.
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::session::Session;
//! use accordant_sync::store::Store;
//!
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a: Store<u32, GCounter> = Store::new();
//! let mut b: Store<u32, GCounter> = Store::new();
//! for k in 0..1000 {
//!     let _ = a.update(k, |c| c.increment(eu, 1)).unwrap();
//!     let _ = b.update(k, |c| c.increment(eu, 1)).unwrap();
//! }
//! let _ = a.update(7, |c| c.increment(eu, 1)).unwrap(); // diverge on both sides
//! let _ = b.update(9, |c| c.increment(us, 1)).unwrap();
//!
//! let mut sa = Session::initiate(&a, Default::default());
//! let mut sb = Session::respond(Default::default());
//! while !(sa.is_done() && sb.is_done()) {
//!     let mut progressed = false;
//!     while let Some(m) = sa.poll_transmit() {
//!         sb.handle(&mut b, &m).unwrap();
//!         progressed = true;
//!     }
//!     while let Some(m) = sb.poll_transmit() {
//!         sa.handle(&mut a, &m).unwrap();
//!         progressed = true;
//!     }
//!     assert!(progressed);
//! }
//! assert_eq!(a.root_digest(), b.root_digest());
//! assert!(sa.stats().round_trips() <= 5);
//! ```

use std::collections::{BTreeMap, VecDeque};

use accordant::codec;
use accordant::Summarize;

use crate::digest::{Aggregate, KeyHash};
use crate::error::SyncError;
use crate::key::{decode_key, key_bytes};
use crate::message::{
    self, Bytes, Fingerprints, ItemList, Message, NodeSketch, RootBytes, SyncLimits, Turn,
    ITEM_BYTES,
};
use crate::sketch::{Sketch, CELL_BYTES, MAX_CELLS};
use crate::store::{Store, StoreKey, StoreValue};
use crate::tree::{NodeId, MAX_LEVEL};

/// Tuning of the protocol; the defaults suit most stores.
///
/// With the defaults, a store of a million keys converges in four round
/// trips whatever the number of changes: Hello, fingerprints, one IBLT,
/// then values and summaries (see the `convergence` example).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Bounds on what the peer may send.
    pub limits: SyncLimits,
    /// A node with at most this many keys is listed instead of descended.
    pub list_max: u64,
    /// A node with more keys than this is descended two levels at once.
    pub double_step_min: u64,
    /// Send a full value instead of a summary when the value's encoding is
    /// at most this many times the summary's.
    pub full_value_ratio: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: SyncLimits::default(),
            list_max: 24,
            double_step_min: 2048,
            full_value_ratio: 2,
        }
    }
}

/// What a session has sent and received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Bytes this side sent.
    pub bytes_sent: u64,
    /// Bytes this side received.
    pub bytes_received: u64,
    /// Messages this side sent.
    pub messages_sent: u64,
    /// Messages this side received.
    pub messages_received: u64,
    /// Passes run (1 unless a pass ended with differing roots).
    pub passes: u8,
    /// Keys whose state this side sent (values, deltas, summaries).
    pub keys_sent: u64,
    /// Turns this side sent (a turn may span several messages).
    pub turns_sent: u64,
    /// Turns this side received.
    pub turns_received: u64,
}

impl SessionStats {
    /// Round trips: turns in both directions, two per round trip.
    pub fn round_trips(&self) -> u64 {
        (self.turns_sent + self.turns_received).div_ceil(2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a Hello (responder before its first message).
    AwaitHello,
    /// Exchanging turns.
    Running,
    /// Sent Done; waiting for Verified (or a new pass).
    AwaitVerdict,
    /// Roots verified equal.
    Finished,
    /// Failed; see the error returned then.
    Failed,
}

/// One side of an anti-entropy session. See the [module docs](self).
#[derive(Debug)]
pub struct Session<K, V> {
    phase: Phase,
    config: SessionConfig,
    outbox: VecDeque<Vec<u8>>,
    stats: SessionStats,
    pass: u8,
    turns: u32,
    messages: u32,
    /// The reply being built while a chunked turn arrives.
    pending: Turn,
    /// Turns sent and received in this pass (their sequence numbers).
    seq_sent: u32,
    seq_received: u32,
    _types: core::marker::PhantomData<fn() -> (K, V)>,
}

/// A decoded turn, validated whole before anything is applied.
struct Work<K, V: Summarize> {
    fps: Vec<(NodeId, u8, usize, Vec<u32>)>,
    lists: Vec<(NodeId, Vec<(u32, u32)>)>,
    sketches: Vec<(NodeId, Vec<NodeId>, Sketch)>,
    want: Vec<(NodeId, u32)>,
    joins: Vec<(K, V)>,
    fulls: Vec<(K, V)>,
    summaries: Vec<(K, V::Summary)>,
    replies: Vec<(K, V, V::Summary)>,
}

/// Mixes the pass number into a 64-bit digest prefix (SplitMix64's
/// finaliser), so that truncated fingerprints that collide in one pass are
/// drawn afresh in the next: without it a collision between two unchanged
/// nodes would repeat in every pass and the session could never converge.
fn salted(x: u64, pass: u8) -> u64 {
    let mut z = x ^ u64::from(pass).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A node's 4-byte fingerprint in pass `pass`; 0 means empty.
fn fp(agg: &Aggregate, pass: u8) -> u32 {
    if agg.is_empty() {
        0
    } else {
        ((salted(agg.short(8), pass) >> 32) as u32).max(1)
    }
}

/// The number of differing items to size an IBLT for, when `differing` of
/// `total` sibling nodes differ. Changed keys fall into siblings like balls
/// into bins, so the fraction `q` of siblings left equal estimates the
/// number of changed keys as `-total * ln(q)`, with a standard deviation
/// near `sqrt(total * (1 - q) / q)` (the delta method on the binomial count
/// of equal siblings). The table's own margin already covers a Poisson
/// spread (about `sqrt(keys)`); what the estimate's deviation adds beyond
/// that (large only when most siblings differ) is added here. Each changed
/// key counts as two items of difference (its item on each side). `None`
/// when every sibling differs: the count cannot be told from the
/// fingerprints.
fn expected_items(differing: usize, total: usize) -> Option<f64> {
    if differing == 0 || differing >= total {
        return None;
    }
    let n = total as f64;
    let q = 1.0 - differing as f64 / n;
    let keys = -n * q.ln();
    let sd = (n * (1.0 - q) / q).sqrt();
    Some(2.0 * (keys + (sd - keys.sqrt()).max(0.0)))
}

/// A node fingerprint cut to its top `width` bytes, still 0 only for an
/// empty node.
fn narrow(fp: u32, width: usize) -> u32 {
    if fp == 0 {
        0
    } else {
        (fp >> (8 * (4 - width.clamp(1, 4)))).max(1)
    }
}

/// Bytes per node fingerprint in a turn carrying `count` of them: a
/// differing node whose fingerprints collide costs one more pass, so the
/// width grows with the count to keep that rare (under 1024 fingerprints,
/// 2 bytes: below 1.6% even if every one differed).
fn fp_width(count: usize) -> usize {
    match count {
        0..=1024 => 2,
        1025..=262_144 => 3,
        _ => 4,
    }
}

/// Re-packs every fingerprint of a turn (built 4 bytes wide) at the
/// width its count calls for.
fn narrow_turn(turn: &mut Turn) {
    let count: usize = turn.fps.0.iter().map(|f| f.fps.0.len() / 4).sum();
    let width = fp_width(count);
    if width == 4 {
        return;
    }
    for f in &mut turn.fps.0 {
        let packed = f
            .fps
            .0
            .chunks_exact(4)
            .flat_map(|c| {
                let v = narrow(u32::from_be_bytes([c[0], c[1], c[2], c[3]]), width);
                v.to_be_bytes()[4 - width..].to_vec()
            })
            .collect();
        f.fps.0 = packed;
    }
}

/// An item's 4-byte fingerprint in pass `pass`.
fn item_fp(item: crate::digest::ItemHash, pass: u8) -> u32 {
    (salted((item.0 >> 64) as u64, pass) >> 32) as u32
}

/// The 32 bits of a key hash just below the prefix of a node at `level`.
fn key_bits(h: KeyHash, level: u8) -> u32 {
    let shift = 4 * u32::from(level);
    (h.0.checked_shl(shift).unwrap_or(0) >> 32) as u32
}

/// How many descendants `node` has at `level`, when a peer may name that
/// level (one or two below the node, within the tree's levels).
fn descendants(node: NodeId, level: u8) -> Option<usize> {
    let depth = level.checked_sub(node.level())?;
    ((1..=2).contains(&depth) && level <= MAX_LEVEL).then(|| 1usize << (4 * depth))
}

/// The key hashes under `node` whose 32 bits below its prefix are `bits`.
fn bits_range(node: NodeId, bits: u32) -> core::ops::RangeInclusive<u64> {
    let r = node.key_range();
    let width = 64 - 4 * u32::from(node.level());
    if width >= 32 {
        let lo = *r.start() | (u64::from(bits) << (width - 32));
        let low = u64::MAX.checked_shr(64 - (width - 32)).unwrap_or(0);
        lo..=lo | low
    } else {
        let lo = *r.start() | u64::from(bits).checked_shr(32 - width).unwrap_or(0);
        lo..=lo
    }
}

/// Moves every entry of `from` into `into`.
fn merge_turn(into: &mut Turn, from: Turn) {
    into.fps.0.extend(from.fps.0);
    into.lists.0.extend(from.lists.0);
    into.sketches.0.extend(from.sketches.0);
    into.want.0.extend(from.want.0);
    into.joins.0.extend(from.joins.0);
    into.fulls.0.extend(from.fulls.0);
    into.summaries.0.extend(from.summaries.0);
    into.replies.0.extend(from.replies.0);
}

/// Splits a turn into chunks whose encodings stay near `max` bytes (one
/// entry larger than `max` gets a chunk of its own); all but the last say
/// `more`.
fn split_turn(turn: Turn, max: usize) -> Vec<Turn> {
    fn size<T: serde::Serialize>(x: &T) -> usize {
        postcard::experimental::serialized_size(x).unwrap_or(0)
    }
    if size(&turn) <= max {
        return vec![turn];
    }
    let mut chunks: Vec<Turn> = vec![Turn::default()];
    let mut used = 0usize;
    macro_rules! spread {
        ($field:ident) => {
            for e in turn.$field.0 {
                let n = size(&e);
                if used + n > max && used > 0 {
                    chunks.push(Turn::default());
                    used = 0;
                }
                used += n;
                if let Some(c) = chunks.last_mut() {
                    c.$field.0.push(e);
                }
            }
        };
    }
    spread!(fps);
    spread!(lists);
    spread!(sketches);
    spread!(want);
    spread!(joins);
    spread!(fulls);
    spread!(summaries);
    spread!(replies);
    let last = chunks.len() - 1;
    for c in &mut chunks[..last] {
        c.more = true;
    }
    chunks
}

impl<K: StoreKey, V: StoreValue> Session<K, V> {
    fn new(config: SessionConfig, phase: Phase) -> Self {
        Session {
            phase,
            config,
            outbox: VecDeque::new(),
            stats: SessionStats::default(),
            pass: 0,
            turns: 0,
            messages: 0,
            pending: Turn::default(),
            seq_sent: 0,
            seq_received: 0,
            _types: core::marker::PhantomData,
        }
    }

    /// Starts a session as the initiator; the first message is queued.
    pub fn initiate(store: &Store<K, V>, config: SessionConfig) -> Self {
        let mut s = Self::new(config, Phase::Running);
        s.stats.passes = 1;
        s.send_hello(store);
        s
    }

    /// Starts a session as the responder, waiting for the peer's first message.
    pub fn respond(config: SessionConfig) -> Self {
        Self::new(config, Phase::AwaitHello)
    }

    /// The next message to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.pop_front()
    }

    /// Whether the session has verified that both sides hold equal roots.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// Whether the session failed.
    pub fn is_failed(&self) -> bool {
        self.phase == Phase::Failed
    }

    /// Traffic so far.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    fn send(&mut self, msg: &Message) {
        let bytes = message::encode(msg);
        self.stats.bytes_sent += bytes.len() as u64;
        self.stats.messages_sent += 1;
        if !matches!(msg, Message::Turn(t) if t.more) {
            self.stats.turns_sent += 1;
        }
        self.outbox.push_back(bytes);
    }

    fn send_hello(&mut self, store: &Store<K, V>) {
        self.turns = 0;
        self.messages = 0;
        self.seq_sent = 0;
        self.seq_received = 0;
        let msg = Message::Hello {
            pass: self.pass,
            root: *store.root_digest().as_bytes(),
            count: store.len() as u64,
        };
        self.send(&msg);
    }

    fn fail(&mut self, e: SyncError) -> SyncError {
        self.phase = Phase::Failed;
        e
    }

    /// Handles one message from the peer. On error the session is failed
    /// and nothing of the message was applied.
    pub fn handle(&mut self, store: &mut Store<K, V>, bytes: &[u8]) -> Result<(), SyncError> {
        match self.phase {
            Phase::Finished => return Err(SyncError::Finished),
            Phase::Failed => return Err(SyncError::Finished),
            _ => {}
        }
        self.stats.bytes_received += bytes.len() as u64;
        self.stats.messages_received += 1;
        self.messages += 1;
        if self.messages > self.config.limits.max_messages {
            let n = self.config.limits.max_messages;
            return Err(self.fail(SyncError::TooManyTurns(n)));
        }
        let msg = match message::decode(bytes, &self.config.limits) {
            Ok(Message::Turn(t)) if t.more => Ok(Message::Turn(t)),
            Ok(m) => {
                self.turns += 1;
                self.stats.turns_received += 1;
                if self.turns > self.config.limits.max_turns {
                    let n = self.config.limits.max_turns;
                    return Err(self.fail(SyncError::TooManyTurns(n)));
                }
                Ok(m)
            }
            Err(e) => Err(e),
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return Err(self.fail(e)),
        };
        match self.on_message(store, msg) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn on_message(&mut self, store: &mut Store<K, V>, msg: Message) -> Result<(), SyncError> {
        let mine: RootBytes = *store.root_digest().as_bytes();
        match (self.phase, msg) {
            (Phase::AwaitHello | Phase::AwaitVerdict, Message::Hello { pass, root, count }) => {
                if pass > self.config.limits.max_passes {
                    return Err(SyncError::NotConverged(pass));
                }
                self.pass = pass;
                self.stats.passes = pass + 1;
                self.turns = 1;
                self.messages = 1;
                self.seq_sent = 0;
                self.seq_received = 0;
                self.pending = Turn::default();
                if root == mine {
                    self.send(&Message::Verified { root: mine });
                    self.phase = Phase::Finished;
                    return Ok(());
                }
                self.phase = Phase::Running;
                let turn = self.first_turn(store, count);
                self.send_turn_or_done(store, turn);
                Ok(())
            }
            (Phase::Running, Message::Turn(turn)) => {
                if turn.seq != self.seq_received {
                    return Err(SyncError::Unexpected("turn out of sequence"));
                }
                let their_root = turn.root;
                let more = turn.more;
                let work = self.decode_work(turn)?;
                let part = self.apply(store, work);
                merge_turn(&mut self.pending, part);
                if more {
                    return Ok(());
                }
                self.seq_received += 1;
                let reply = core::mem::take(&mut self.pending);
                let now: RootBytes = *store.root_digest().as_bytes();
                if reply.is_empty() && their_root == Some(now) {
                    self.send(&Message::Verified { root: now });
                    self.phase = Phase::Finished;
                } else {
                    self.send_turn_or_done(store, reply);
                }
                Ok(())
            }
            (Phase::Running, Message::Done { root }) => {
                if root == mine {
                    self.send(&Message::Verified { root: mine });
                    self.phase = Phase::Finished;
                    Ok(())
                } else {
                    self.new_pass(store)
                }
            }
            (Phase::Running | Phase::AwaitVerdict, Message::Verified { root }) => {
                if root == mine {
                    self.phase = Phase::Finished;
                    Ok(())
                } else {
                    self.new_pass(store)
                }
            }
            (Phase::AwaitHello, _) => Err(SyncError::Unexpected("expected Hello")),
            (Phase::AwaitVerdict, _) => Err(SyncError::Unexpected("expected Verified or Hello")),
            (_, Message::Hello { .. }) => {
                Err(SyncError::Unexpected("Hello in the middle of a pass"))
            }
            (_, _) => Err(SyncError::Unexpected("message out of order")),
        }
    }

    fn new_pass(&mut self, store: &Store<K, V>) -> Result<(), SyncError> {
        if self.pass + 1 >= self.config.limits.max_passes {
            return Err(SyncError::NotConverged(self.pass + 1));
        }
        self.pass += 1;
        self.stats.passes = self.pass + 1;
        self.phase = Phase::Running;
        self.send_hello(store);
        Ok(())
    }

    fn send_turn_or_done(&mut self, store: &Store<K, V>, turn: Turn) {
        if turn.is_empty() {
            self.send(&Message::Done {
                root: *store.root_digest().as_bytes(),
            });
            self.phase = Phase::AwaitVerdict;
        } else {
            let is_final = turn.is_final();
            let mut turn = turn;
            narrow_turn(&mut turn);
            let mut chunks = split_turn(turn, self.config.limits.max_message_bytes / 2);
            if is_final {
                if let Some(last) = chunks.last_mut() {
                    last.root = Some(*store.root_digest().as_bytes());
                }
            }
            let seq = self.seq_sent;
            self.seq_sent += 1;
            for mut c in chunks {
                c.seq = seq;
                self.send(&Message::Turn(c));
            }
        }
    }

    /// The responder's first turn, knowing the initiator's key count.
    fn first_turn(&mut self, store: &Store<K, V>, their_count: u64) -> Turn {
        let mut out = Turn::default();
        if their_count == 0 {
            // A brand-new replica: everything it lacks is everything.
            self.push_all_values(store, NodeId::ROOT, &mut out);
        } else {
            self.open_node(store, NodeId::ROOT, their_count, true, &mut out);
        }
        out
    }

    /// Decides how to continue on a node known to differ: list it, descend,
    /// or (when empty here) ask for everything under it.
    fn open_node(
        &mut self,
        store: &Store<K, V>,
        node: NodeId,
        their_hint: u64,
        dense: bool,
        out: &mut Turn,
    ) {
        let mine = store.aggregate(node).count;
        if mine == 0 {
            out.lists.0.push(ItemList {
                node,
                items: Bytes::default(),
            });
        } else if mine <= self.config.list_max || node.level() >= MAX_LEVEL {
            out.lists.0.push(self.list(store, node));
        } else {
            let step = if dense
                && mine.max(their_hint) > self.config.double_step_min
                && node.level() + 2 <= MAX_LEVEL
            {
                2
            } else {
                1
            };
            out.fps
                .0
                .push(self.fingerprints(store, node, node.level() + step));
        }
    }

    fn fingerprints(&self, store: &Store<K, V>, node: NodeId, level: u8) -> Fingerprints {
        let n = 1usize << (4 * (level - node.level()));
        let mut fps = Vec::with_capacity(4 * n);
        for i in 0..n as u64 {
            let child = NodeId::new(level, (node.index() << (4 * (level - node.level()))) | i);
            let f = child.map_or(0, |c| fp(&store.aggregate(c), self.pass));
            fps.extend_from_slice(&f.to_be_bytes());
        }
        Fingerprints {
            node,
            level,
            fps: Bytes(fps),
        }
    }

    fn list(&self, store: &Store<K, V>, node: NodeId) -> ItemList {
        let mut items = Vec::new();
        for (h, _, _, item) in store.items_in(node) {
            items.extend_from_slice(&key_bits(h, node.level()).to_be_bytes());
            items.extend_from_slice(&item_fp(item, self.pass).to_be_bytes());
        }
        ItemList {
            node,
            items: Bytes(items),
        }
    }

    fn push_all_values(&mut self, store: &Store<K, V>, node: NodeId, out: &mut Turn) {
        for (_, k, v, _) in store.items_in(node) {
            out.joins
                .0
                .push((Bytes(key_bytes(&k)), Bytes(codec::encode(&v))));
            self.stats.keys_sent += 1;
        }
    }

    fn decode_work(&self, turn: Turn) -> Result<Work<K, V>, SyncError> {
        let lim = &self.config.limits.value;
        let key = |b: &Bytes| -> Result<K, SyncError> {
            decode_key(&b.0, lim).map_err(|source| SyncError::Value {
                what: "key",
                source,
            })
        };
        let val = |b: &Bytes, what| {
            codec::decode::<V>(&b.0, lim).map_err(|source| SyncError::Value { what, source })
        };
        let sum = |b: &Bytes| {
            codec::decode::<V::Summary>(&b.0, lim).map_err(|source| SyncError::Value {
                what: "summary",
                source,
            })
        };
        let mut fps = Vec::with_capacity(turn.fps.0.len());
        for f in turn.fps.0 {
            let n =
                descendants(f.node, f.level).ok_or(SyncError::Malformed("fingerprint level"))?;
            let width = f.fps.0.len() / n;
            if f.fps.0.len() % n != 0 || !(2..=4).contains(&width) {
                return Err(SyncError::Malformed("fingerprint count"));
            }
            let v = f
                .fps
                .0
                .chunks_exact(width)
                .map(|c| c.iter().fold(0u32, |a, b| a << 8 | u32::from(*b)))
                .collect();
            fps.push((f.node, f.level, width, v));
        }
        let mut lists = Vec::with_capacity(turn.lists.0.len());
        for l in turn.lists.0 {
            if l.items.0.len() % ITEM_BYTES != 0 {
                return Err(SyncError::Malformed("item list length"));
            }
            let items = l
                .items
                .0
                .chunks_exact(ITEM_BYTES)
                .map(|c| {
                    (
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                        u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                    )
                })
                .collect();
            lists.push((l.node, items));
        }
        let mut sketches = Vec::with_capacity(turn.sketches.0.len());
        for sk in turn.sketches.0 {
            let n = descendants(sk.node, sk.level).ok_or(SyncError::Malformed("sketch level"))?;
            if sk.children.0.len() != n / 8 {
                return Err(SyncError::Malformed("sketch bitmap length"));
            }
            let shift = 4 * (sk.level - sk.node.level());
            let children: Vec<NodeId> = (0..n)
                .filter(|i| sk.children.0[i / 8] >> (i % 8) & 1 == 1)
                .filter_map(|i| NodeId::new(sk.level, (sk.node.index() << shift) | i as u64))
                .collect();
            sketches.push((sk.node, children, Sketch::from_bytes(&sk.cells.0)?));
        }
        let want = turn.want.0;
        let joins = turn
            .joins
            .0
            .iter()
            .map(|(k, v)| Ok((key(k)?, val(v, "value")?)))
            .collect::<Result<_, SyncError>>()?;
        let fulls = turn
            .fulls
            .0
            .iter()
            .map(|(k, v)| Ok((key(k)?, val(v, "value")?)))
            .collect::<Result<_, SyncError>>()?;
        let summaries = turn
            .summaries
            .0
            .iter()
            .map(|(k, s)| Ok((key(k)?, sum(s)?)))
            .collect::<Result<_, SyncError>>()?;
        let replies = turn
            .replies
            .0
            .iter()
            .map(|(k, d, s)| Ok((key(k)?, val(d, "delta")?, sum(s)?)))
            .collect::<Result<_, SyncError>>()?;
        Ok(Work {
            fps,
            lists,
            sketches,
            want,
            joins,
            fulls,
            summaries,
            replies,
        })
    }

    fn push_join(&mut self, out: &mut Turn, k: &K, v: &V) {
        out.joins
            .0
            .push((Bytes(key_bytes(k)), Bytes(codec::encode(v))));
        self.stats.keys_sent += 1;
    }

    /// Applies a validated turn and builds the reply.
    fn apply(&mut self, store: &mut Store<K, V>, work: Work<K, V>) -> Turn {
        let mut out = Turn::default();
        for (k, v) in work.joins {
            store.join(k, &v);
        }
        for (k, v) in work.fulls {
            // What the peer lacks: our irreducibles not below its value.
            let lacks = store.get(&k).map(|mine| mine.delta(&v));
            store.join(k.clone(), &v);
            if let Some(lacks) = lacks.filter(|l| !l.is_bottom()) {
                self.push_join(&mut out, &k, &lacks);
            }
        }
        for (k, d, s) in work.replies {
            // Computed before joining `d`: what we had that the peer lacks,
            // not what it just sent us.
            let lacks = store.get(&k).map(|mine| mine.delta_for(&s));
            store.join(k.clone(), &d);
            if let Some(lacks) = lacks.filter(|l| !l.is_bottom()) {
                self.push_join(&mut out, &k, &lacks);
            }
        }
        for (k, s) in work.summaries {
            let (lacks, summary) = match store.get(&k) {
                Some(mine) => (mine.delta_for(&s), mine.summary()),
                None => (V::default(), V::default().summary()),
            };
            out.replies.0.push((
                Bytes(key_bytes(&k)),
                Bytes(codec::encode(&lacks)),
                Bytes(codec::encode(&summary)),
            ));
            self.stats.keys_sent += 1;
        }
        for (node, bits) in work.want {
            let items: Vec<(K, V)> = store
                .items_in_hashes(bits_range(node, bits))
                .filter(|(h, _, _, _)| key_bits(*h, node.level()) == bits)
                .map(|(_, k, v, _)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in items {
                self.push_join(&mut out, &k, &v);
            }
        }
        for (node, level, width, theirs) in work.fps {
            let shift = 4 * (level - node.level());
            let mut differing = Vec::new();
            for (i, their_fp) in theirs.iter().enumerate() {
                let Some(child) = NodeId::new(level, (node.index() << shift) | i as u64) else {
                    continue;
                };
                if narrow(fp(&store.aggregate(child), self.pass), width) != *their_fp {
                    differing.push((child, *their_fp));
                }
            }
            // Dense differences: descending two levels at once saves a round trip.
            let dense = differing.len() * 8 >= theirs.len();
            let items = expected_items(differing.len(), theirs.len());
            let mut sketched = Vec::new();
            for (child, their_fp) in differing {
                if their_fp == 0 {
                    self.push_all_values(store, child, &mut out);
                } else if items.is_some() && store.aggregate(child).count > 0 {
                    sketched.push(child);
                } else {
                    self.open_node(store, child, 0, dense, &mut out);
                }
            }
            if let Some(e) = items {
                self.sketch_children(store, node, level, &sketched, e, &mut out);
            }
        }
        for (node, theirs) in work.lists {
            self.compare_list(store, node, theirs, &mut out);
        }
        for (node, children, sketch) in work.sketches {
            self.compare_sketch(store, node, children, sketch, &mut out);
        }
        out
    }

    /// Sends one IBLT of our items under `children` (descendants of `node`
    /// at `level` known to differ), sized for `items` expected items of
    /// difference, when it is smaller than the key lists and not too large;
    /// otherwise lists or descends each child.
    fn sketch_children(
        &mut self,
        store: &Store<K, V>,
        node: NodeId,
        level: u8,
        children: &[NodeId],
        items: f64,
        out: &mut Turn,
    ) {
        if children.is_empty() {
            return;
        }
        let cells = Sketch::cells_for(items);
        let held: u64 = children.iter().map(|c| store.aggregate(*c).count).sum();
        let list_bytes = usize::try_from(held)
            .unwrap_or(usize::MAX)
            .saturating_mul(ITEM_BYTES);
        if cells > MAX_CELLS || cells * CELL_BYTES >= list_bytes {
            for c in children {
                self.open_node(store, *c, 0, false, out);
            }
            return;
        }
        let n = 1usize << (4 * (level - node.level()));
        let mut bitmap = vec![0u8; n / 8];
        let mut sk = Sketch::with_cells(cells);
        for c in children {
            let i = (c.index() & (n as u64 - 1)) as usize;
            bitmap[i / 8] |= 1 << (i % 8);
            for (h, _, _, item) in store.items_in(*c) {
                sk.insert(key_bits(h, node.level()), item_fp(item, self.pass));
            }
        }
        out.sketches.0.push(NodeSketch {
            node,
            level,
            children: Bytes(bitmap),
            cells: Bytes(sk.to_bytes()),
        });
    }

    /// Subtracts our items under `node` from the peer's IBLT and acts on
    /// the difference as on a key list; when the table does not peel,
    /// falls back to descending the node.
    fn compare_sketch(
        &mut self,
        store: &Store<K, V>,
        node: NodeId,
        children: Vec<NodeId>,
        mut sk: Sketch,
        out: &mut Turn,
    ) {
        for c in &children {
            for (h, _, _, item) in store.items_in(*c) {
                sk.remove(key_bits(h, node.level()), item_fp(item, self.pass));
            }
        }
        let Some(diff) = sk.decode() else {
            for c in children {
                self.open_node(store, c, 0, false, out);
            }
            return;
        };
        let mask = (1u32 << crate::sketch::FP_BITS) - 1;
        let theirs: Vec<u32> = diff.senders.iter().map(|x| x.0).collect();
        let mut mine_bits: Vec<u32> = Vec::new();
        for &(bits, f) in &diff.receivers {
            // Ours: found by its key bits, a range of one key hash or a few.
            let they_hold = theirs.binary_search(&bits).is_ok();
            for (h, k, v, item) in store.items_in_hashes(bits_range(node, bits)) {
                if key_bits(h, node.level()) == bits && item_fp(item, self.pass) & mask == f {
                    mine_bits.push(bits);
                    self.offer(&k, &v, they_hold, out);
                }
            }
        }
        mine_bits.sort_unstable();
        let mut last = None;
        for b in theirs {
            if mine_bits.binary_search(&b).is_err() && last != Some(b) {
                out.want.0.push((node, b));
                last = Some(b);
            }
        }
    }

    /// Sends what the peer needs of one of our keys: the value when it
    /// lacks the key; when it holds another value, the full value if small,
    /// else a summary.
    fn offer(&mut self, k: &K, v: &V, they_hold: bool, out: &mut Turn) {
        if they_hold {
            let summary = v.summary();
            let vlen = codec::encoded_len(v);
            let slen = codec::encoded_len(&summary);
            if vlen <= slen.saturating_mul(self.config.full_value_ratio) + 16 {
                out.fulls
                    .0
                    .push((Bytes(key_bytes(k)), Bytes(codec::encode(v))));
            } else {
                out.summaries
                    .0
                    .push((Bytes(key_bytes(k)), Bytes(codec::encode(&summary))));
            }
        } else {
            out.joins
                .0
                .push((Bytes(key_bytes(k)), Bytes(codec::encode(v))));
        }
        self.stats.keys_sent += 1;
    }

    /// Compares the peer's items under `node` with ours and queues values,
    /// requests, full values or summaries for every key that differs.
    fn compare_list(
        &mut self,
        store: &Store<K, V>,
        node: NodeId,
        theirs: Vec<(u32, u32)>,
        out: &mut Turn,
    ) {
        let mut their_map: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (b, f) in theirs {
            their_map.entry(b).or_default().push(f);
        }
        let mut seen: Vec<u32> = Vec::new();
        for (h, k, v, item) in store.items_in(node) {
            let bits = key_bits(h, node.level());
            seen.push(bits);
            match their_map.get(&bits) {
                Some(fs) if fs.contains(&item_fp(item, self.pass)) => {}
                // Both hold the key with different values.
                Some(_) => self.offer(&k, &v, true, out),
                None => self.offer(&k, &v, false, out),
            }
        }
        seen.sort_unstable();
        for b in their_map.keys() {
            if seen.binary_search(b).is_err() {
                out.want.0.push((node, *b));
            }
        }
    }
}

/// Runs a session between two stores in memory until both are done (or one
/// fails), delivering every message at once. Returns the initiator's and the
/// responder's statistics.
pub fn sync_pair<K: StoreKey, V: StoreValue>(
    a: &mut Store<K, V>,
    b: &mut Store<K, V>,
    config: SessionConfig,
) -> Result<(SessionStats, SessionStats), SyncError> {
    let mut sa = Session::initiate(a, config);
    let mut sb = Session::respond(config);
    loop {
        let mut progressed = false;
        while let Some(m) = sa.poll_transmit() {
            sb.handle(b, &m)?;
            progressed = true;
        }
        while let Some(m) = sb.poll_transmit() {
            sa.handle(a, &m)?;
            progressed = true;
        }
        if sa.is_done() && sb.is_done() {
            return Ok((*sa.stats(), *sb.stats()));
        }
        if !progressed {
            return Err(SyncError::Unexpected("session stalled"));
        }
    }
}
