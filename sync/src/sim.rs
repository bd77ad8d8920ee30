//! A deterministic discrete-event network simulator.
//!
//! The simulator moves opaque byte messages between abstract nodes on
//! virtual time, so that protocol code (anything implementing [`Node`]) can
//! be tested under latency, limited bandwidth, loss, duplication,
//! reordering and partitions, and every run can be replayed exactly. There
//! is no wall clock, no thread and no global RNG: time is a [`SimTime`]
//! counter of microseconds and all randomness comes from a ChaCha8 stream
//! seeded with a `u64`. The same seed, the same nodes and the same calls
//! give the same run, bit for bit.
//!
//! # Event model
//!
//! Everything that happens is an event in one priority queue keyed by
//! `(time, sequence number)`. The sequence number is a counter incremented
//! each time an event is scheduled, so two events due at the same instant
//! run in the order they were scheduled: ties are deterministic, never left
//! to the heap. [`Simulator::step`] pops the earliest event, advances the
//! clock to its time and runs it. There are three kinds:
//!
//! * **start**: [`Simulator::add_node`] schedules [`Node::on_start`] at the
//!   current time, so nodes added before the first step all start in the
//!   order they were added, and can already address one another;
//! * **delivery**: a message arrives and [`Node::on_message`] runs;
//! * **timer**: a timer set by [`Ctx::set_timer`] (or
//!   [`Simulator::set_timer`]) fires and [`Node::on_timer`] runs.
//!
//! A handler reacts through its [`Ctx`]: read the clock, send messages, set
//! timers, draw random numbers. Sends are scheduled immediately, in call
//! order. Tests inject actions from outside with [`Simulator::poke`] (run a
//! closure on a node, with a `Ctx`, at the current time) and
//! [`Simulator::send_from`].
//!
//! # Links
//!
//! Every ordered pair of nodes `(from, to)`, including a node and itself, is
//! a directed link; by default all are connected with
//! [`SimConfig::default_link`]. A message of `len` bytes sent at time `t` on
//! a link with [`LinkConfig`] `c` goes through these stages:
//!
//! 1. **Connectivity.** If the link is disconnected ([`Simulator::disconnect`])
//!    or the endpoints are in different partition groups
//!    ([`Simulator::partition`]), the message is dropped at once.
//! 2. **In-flight cap.** If [`SimConfig::max_in_flight`] messages or
//!    [`SimConfig::max_in_flight_bytes`] bytes are already in flight, the
//!    message is dropped (counted as `overflow`); memory stays bounded.
//! 3. **Serialisation (bandwidth).** Each link is a FIFO pipe: the message
//!    starts transmitting at `start = max(t, busy_until)` and occupies the
//!    pipe for `ceil(len * 1e6 / bandwidth)` µs; `busy_until` moves to the
//!    end of that. Unlimited bandwidth (`None`) takes no time.
//! 4. **Loss.** With probability `c.loss` the message is lost on the wire: it
//!    has still used the pipe, but is never delivered.
//! 5. **Propagation.** It arrives `c.latency + U[0, c.jitter]` after its
//!    transmission ends.
//! 6. **Order.** With probability `c.reorder` the message is *reordered*: it
//!    gets an extra delay `U[1, max(1, c.reorder_delay)]` µs and is exempt from
//!    the FIFO rule, so messages sent after it can overtake it. Otherwise its
//!    arrival is raised, if needed, to that of the previous in-order message
//!    on the link: with `reorder = 0` a link is FIFO, however large the
//!    jitter.
//! 7. **Duplication.** With probability `c.duplicate` a second copy arrives
//!    `U[0, c.jitter]` after the original (the copy does not use the pipe).
//!
//! Probabilities outside `[0, 1]` are clamped, and NaN counts as 0; times
//! saturate at [`SimTime::MAX`]. No input makes the simulator panic: a send to
//! a node that does not exist is dropped and counted.
//!
//! A partition cuts the wire: messages in flight between groups are dropped
//! when [`Simulator::partition`] is called, and new ones when they are sent;
//! [`Simulator::heal`] lets new messages through. [`Simulator::disconnect`]
//! does the same for one pair.
//!
//! # Statistics
//!
//! [`Simulator::stats`] returns a [`Stats`] snapshot: totals, per node
//! (outgoing and incoming) and per directed link [`Counters`] of messages and
//! bytes sent, delivered, dropped and duplicated, drops by cause, and the
//! time of the last delivery. For every set of counters,
//! `messages_sent + messages_duplicated == messages_delivered +
//! messages_dropped + (messages still in flight)`. Round trips are a protocol
//! notion and are left to the nodes; a node reads the send and delivery
//! times off [`Ctx::now`].
//!
//! # Example
//!
//! Three nodes gossip a max-register every 10 ms over a lossy, reordering
//! WAN and converge.
//!
//! ```
//! use accordant_sync::sim::{Ctx, LinkConfig, Node, NodeId, RunOutcome, SimTime, Simulator};
//!
//! struct MaxRegister(u64);
//!
//! impl Node for MaxRegister {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_>) {
//!         ctx.set_timer(SimTime::from_millis(10), 0);
//!     }
//!     fn on_message(&mut self, _ctx: &mut Ctx<'_>, _from: NodeId, msg: Vec<u8>) {
//!         if let Ok(bytes) = <[u8; 8]>::try_from(msg.as_slice()) {
//!             self.0 = self.0.max(u64::from_le_bytes(bytes));
//!         }
//!     }
//!     fn on_timer(&mut self, ctx: &mut Ctx<'_>, _token: u64) {
//!         for peer in ctx.peers() {
//!             ctx.send(peer, self.0.to_le_bytes().to_vec());
//!         }
//!         ctx.set_timer(SimTime::from_millis(10), 0);
//!     }
//! }
//!
//! let mut sim = Simulator::new(42);
//! sim.set_default_link(
//!     LinkConfig::wan(SimTime::from_millis(80))
//!         .with_loss(0.3)
//!         .with_reorder(0.1, SimTime::from_millis(40)),
//! );
//! let ids: Vec<NodeId> = (0..3u64).map(|i| sim.add_node(MaxRegister(i))).collect();
//! // A test injects a write on node 0 and lets the gossip run.
//! sim.poke(ids[0], |node, _ctx| node.0 = 7);
//! let outcome = sim.run_until(SimTime::from_secs(10), |sim| {
//!     sim.nodes().all(|(_, node)| node.0 == 7)
//! });
//! assert_eq!(outcome, RunOutcome::Condition);
//! assert!(sim.now() < SimTime::from_secs(1));
//! assert!(sim.stats().drops.lost > 0);
//! ```

use core::cmp::{Ordering, Reverse};
use core::fmt;
use core::num::NonZeroU64;
use core::ops::{Add, AddAssign, Mul, Sub, SubAssign};
use core::time::Duration;
use std::collections::{BTreeMap, BinaryHeap};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A point in virtual time, or a span of it, in whole microseconds.
///
/// One type serves for instants (`sim.now()`) and durations (`latency`,
/// `run_for(..)`), as a `u64` does. Arithmetic saturates at `0` and
/// [`SimTime::MAX`] instead of panicking.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

impl SimTime {
    /// Time zero, when every simulation starts.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable time.
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// `n` microseconds.
    pub const fn from_micros(n: u64) -> Self {
        SimTime(n)
    }

    /// `n` milliseconds (saturating).
    pub const fn from_millis(n: u64) -> Self {
        SimTime(n.saturating_mul(1_000))
    }

    /// `n` seconds (saturating).
    pub const fn from_secs(n: u64) -> Self {
        SimTime(n.saturating_mul(1_000_000))
    }

    /// Whole microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Whole milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000
    }

    /// Seconds as a float, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// `self + rhs`, saturating at [`SimTime::MAX`].
    pub const fn saturating_add(self, rhs: SimTime) -> SimTime {
        SimTime(self.0.saturating_add(rhs.0))
    }

    /// `self - rhs`, saturating at [`SimTime::ZERO`].
    pub const fn saturating_sub(self, rhs: SimTime) -> SimTime {
        SimTime(self.0.saturating_sub(rhs.0))
    }

    /// `self + rhs`, or `None` on overflow.
    pub const fn checked_add(self, rhs: SimTime) -> Option<SimTime> {
        match self.0.checked_add(rhs.0) {
            Some(t) => Some(SimTime(t)),
            None => None,
        }
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    pub const fn checked_sub(self, rhs: SimTime) -> Option<SimTime> {
        match self.0.checked_sub(rhs.0) {
            Some(t) => Some(SimTime(t)),
            None => None,
        }
    }
}

impl Add for SimTime {
    type Output = SimTime;
    /// Saturating addition.
    fn add(self, rhs: SimTime) -> SimTime {
        self.saturating_add(rhs)
    }
}

impl AddAssign for SimTime {
    fn add_assign(&mut self, rhs: SimTime) {
        *self = *self + rhs;
    }
}

impl Sub for SimTime {
    type Output = SimTime;
    /// Saturating subtraction.
    fn sub(self, rhs: SimTime) -> SimTime {
        self.saturating_sub(rhs)
    }
}

impl SubAssign for SimTime {
    fn sub_assign(&mut self, rhs: SimTime) {
        *self = *self - rhs;
    }
}

impl Mul<u64> for SimTime {
    type Output = SimTime;
    /// Saturating multiplication.
    fn mul(self, rhs: u64) -> SimTime {
        SimTime(self.0.saturating_mul(rhs))
    }
}

impl From<Duration> for SimTime {
    /// Truncates to whole microseconds, saturating at [`SimTime::MAX`].
    fn from(d: Duration) -> Self {
        SimTime(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

impl From<SimTime> for Duration {
    fn from(t: SimTime) -> Self {
        Duration::from_micros(t.0)
    }
}

impl fmt::Display for SimTime {
    /// Seconds with six decimals, e.g. `1.250000s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// The identity of a simulated node: its index in order of
/// [`Simulator::add_node`], from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    fn index(self) -> usize {
        // u32 always fits in usize on the targets this crate supports.
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// Protocol code driven by the simulator.
///
/// Handlers run one at a time, at the virtual time of their event, and act
/// only through the [`Ctx`] they are given.
pub trait Node {
    /// Called once, at the time the node was added (before any message).
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// A message from `from` arrived.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: Vec<u8>);

    /// A timer this node set with `token` fired.
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        let _ = (ctx, token);
    }
}

impl<N: Node + ?Sized> Node for Box<N> {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        (**self).on_start(ctx);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: Vec<u8>) {
        (**self).on_message(ctx, from, msg);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        (**self).on_timer(ctx, token);
    }
}

/// What a node may do while handling an event.
pub struct Ctx<'a> {
    id: NodeId,
    net: &'a mut Net,
}

impl Ctx<'_> {
    /// The current virtual time (the time of the event being handled).
    pub fn now(&self) -> SimTime {
        self.net.now
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// How many nodes exist; their ids are `0..node_count()`.
    pub fn node_count(&self) -> u32 {
        self.net.node_count
    }

    /// Every other node, in id order.
    pub fn peers(&self) -> Peers {
        Peers {
            next: 0,
            end: self.net.node_count,
            skip: Some(self.id.0),
        }
    }

    /// Sends `msg` to `to` over the link `(self.id(), to)`.
    pub fn send(&mut self, to: NodeId, msg: Vec<u8>) {
        self.net.send(self.id, to, msg);
    }

    /// Calls [`Node::on_timer`] with `token` after `after` (zero means "at
    /// this instant, after the events already due").
    pub fn set_timer(&mut self, after: SimTime, token: u64) {
        self.net.set_timer(self.id, after, token);
    }

    /// A deterministic RNG for the nodes' own choices (peer selection,
    /// backoff). It is a different stream from the one that draws network
    /// faults, so changing a link's loss rate does not change the nodes'
    /// draws.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.net.node_rng
    }
}

impl fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("id", &self.id)
            .field("now", &self.net.now)
            .finish_non_exhaustive()
    }
}

/// Iterator over node ids, skipping at most one; see [`Ctx::peers`].
#[derive(Clone, Debug)]
pub struct Peers {
    next: u32,
    end: u32,
    skip: Option<u32>,
}

impl Iterator for Peers {
    type Item = NodeId;

    fn next(&mut self) -> Option<NodeId> {
        while self.next < self.end {
            let id = self.next;
            self.next += 1;
            if Some(id) != self.skip {
                return Some(NodeId(id));
            }
        }
        None
    }
}

/// How a directed link behaves; see the [module docs](self) for the exact
/// model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Fixed propagation delay.
    pub latency: SimTime,
    /// Extra delay drawn uniformly from `[0, jitter]` per message.
    pub jitter: SimTime,
    /// Serialisation rate; `None` is unlimited.
    pub bandwidth_bytes_per_sec: Option<NonZeroU64>,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a delivered message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is delayed out of FIFO order.
    pub reorder: f64,
    /// Upper bound of the extra delay of a reordered message.
    pub reorder_delay: SimTime,
}

impl LinkConfig {
    /// Instant, unlimited and faultless.
    pub const fn ideal() -> Self {
        LinkConfig {
            latency: SimTime::ZERO,
            jitter: SimTime::ZERO,
            bandwidth_bytes_per_sec: None,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: SimTime::ZERO,
        }
    }

    /// A data-centre LAN: 250 µs one way, 50 µs jitter, 1 Gbit/s, no faults.
    pub const fn lan() -> Self {
        LinkConfig {
            latency: SimTime::from_micros(250),
            jitter: SimTime::from_micros(50),
            bandwidth_bytes_per_sec: NonZeroU64::new(125_000_000),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: SimTime::from_micros(500),
        }
    }

    /// A wide-area link with round-trip time `rtt`: one-way latency `rtt/2`,
    /// jitter `rtt/20`, 100 Mbit/s, no faults (add them with the `with_*`
    /// methods).
    pub const fn wan(rtt: SimTime) -> Self {
        LinkConfig {
            latency: SimTime(rtt.0 / 2),
            jitter: SimTime(rtt.0 / 20),
            bandwidth_bytes_per_sec: NonZeroU64::new(12_500_000),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: SimTime(rtt.0 / 2),
        }
    }

    /// Sets the one-way latency.
    pub const fn with_latency(mut self, latency: SimTime) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the jitter bound.
    pub const fn with_jitter(mut self, jitter: SimTime) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the bandwidth in bytes per second; `0` means unlimited.
    pub const fn with_bandwidth(mut self, bytes_per_sec: u64) -> Self {
        self.bandwidth_bytes_per_sec = NonZeroU64::new(bytes_per_sec);
        self
    }

    /// Sets the loss probability.
    pub const fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    /// Sets the duplication probability.
    pub const fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Sets the reordering probability and the maximum extra delay of a
    /// reordered message.
    pub const fn with_reorder(mut self, p: f64, max_delay: SimTime) -> Self {
        self.reorder = p;
        self.reorder_delay = max_delay;
        self
    }

    /// Serialisation time of `len` bytes, rounded up to whole microseconds.
    fn transmit_time(&self, len: usize) -> SimTime {
        match self.bandwidth_bytes_per_sec {
            None => SimTime::ZERO,
            Some(bw) => {
                let micros = (len as u128 * 1_000_000).div_ceil(u128::from(bw.get()));
                SimTime(u64::try_from(micros).unwrap_or(u64::MAX))
            }
        }
    }
}

impl Default for LinkConfig {
    /// [`LinkConfig::lan`].
    fn default() -> Self {
        LinkConfig::lan()
    }
}

/// Simulator-wide settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Configuration of every link not set with [`Simulator::set_link`].
    pub default_link: LinkConfig,
    /// Messages in flight at once; more are dropped as `overflow`.
    pub max_in_flight: usize,
    /// Bytes in flight at once; more are dropped as `overflow`.
    pub max_in_flight_bytes: usize,
    /// Pending timers at once; more are dropped (see [`Stats::timers_dropped`]).
    pub max_timers: usize,
    /// Events one `run_*` call may process before it returns
    /// [`RunOutcome::EventLimit`].
    pub max_events_per_run: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            default_link: LinkConfig::lan(),
            max_in_flight: 1 << 20,
            max_in_flight_bytes: 1 << 30,
            max_timers: 1 << 20,
            max_events_per_run: 100_000_000,
        }
    }
}

/// Why a `run_*` call returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunOutcome {
    /// No event is left: nothing will ever happen again without outside
    /// input.
    Idle,
    /// The deadline was reached with events still pending.
    Deadline,
    /// [`SimConfig::max_events_per_run`] events were processed.
    EventLimit,
    /// The caller's stop condition became true ([`Simulator::run_until`]).
    Condition,
}

/// One processed event, as returned by [`Simulator::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// [`Node::on_start`] ran.
    Started {
        /// Time of the event.
        at: SimTime,
        /// The node.
        node: NodeId,
    },
    /// A message was delivered to [`Node::on_message`].
    Delivered {
        /// Time of delivery.
        at: SimTime,
        /// When it was sent.
        sent_at: SimTime,
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Length in bytes.
        len: usize,
    },
    /// A timer fired, [`Node::on_timer`] ran.
    Timer {
        /// Time of the event.
        at: SimTime,
        /// The node.
        node: NodeId,
        /// The token it set.
        token: u64,
    },
}

impl Event {
    /// The virtual time the event ran at.
    pub fn at(&self) -> SimTime {
        match *self {
            Event::Started { at, .. } | Event::Delivered { at, .. } | Event::Timer { at, .. } => at,
        }
    }
}

/// Message counters for a link, a node or the whole network.
///
/// A duplicated message counts once in `messages_sent`, once in
/// `messages_duplicated` and twice in `messages_delivered` (if both copies
/// arrive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Messages handed to the network.
    pub messages_sent: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
    /// Messages (including copies) delivered.
    pub messages_delivered: u64,
    /// Bytes (including copies) delivered.
    pub bytes_delivered: u64,
    /// Messages (including copies) dropped, for any reason.
    pub messages_dropped: u64,
    /// Extra copies created by duplication.
    pub messages_duplicated: u64,
}

/// Dropped messages by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Drops {
    /// Lost on the wire ([`LinkConfig::loss`]).
    pub lost: u64,
    /// Across a partition, in flight or new.
    pub partitioned: u64,
    /// On a link cut with [`Simulator::disconnect`], in flight or new.
    pub disconnected: u64,
    /// Over the in-flight cap.
    pub overflow: u64,
    /// From or to a node that does not exist.
    pub unknown_node: u64,
}

/// Traffic of one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Messages this node sent, and what became of them.
    pub outgoing: Counters,
    /// Messages sent to this node, and what became of them.
    pub incoming: Counters,
}

/// A snapshot of the simulator's statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Virtual time of the snapshot.
    pub now: SimTime,
    /// Events processed so far.
    pub events: u64,
    /// All traffic.
    pub total: Counters,
    /// Drops by cause (sums to `total.messages_dropped`).
    pub drops: Drops,
    /// Messages in flight now.
    pub in_flight: usize,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Timers not set because [`SimConfig::max_timers`] were pending.
    pub timers_dropped: u64,
    /// Time of the last delivery, if any.
    pub last_delivery: Option<SimTime>,
    /// Per node, indexed by [`NodeId`].
    pub nodes: Vec<NodeStats>,
    /// Per directed link `(from, to)` that carried traffic.
    pub links: BTreeMap<(NodeId, NodeId), Counters>,
}

/// The simulator: nodes, network and clock.
///
/// Drive it with [`step`](Self::step), [`run_until_idle`](Self::run_until_idle),
/// [`run_until`](Self::run_until) or [`run_for`](Self::run_for); inject
/// actions with [`poke`](Self::poke), [`send_from`](Self::send_from) and
/// [`set_timer`](Self::set_timer); shape the network with
/// [`set_link`](Self::set_link), [`disconnect`](Self::disconnect),
/// [`partition`](Self::partition) and [`heal`](Self::heal).
pub struct Simulator<N> {
    nodes: Vec<N>,
    net: Net,
}

impl<N: Node> Simulator<N> {
    /// An empty simulator with [`SimConfig::default`], seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, SimConfig::default())
    }

    /// An empty simulator with `config`, seeded with `seed`.
    pub fn with_config(seed: u64, config: SimConfig) -> Self {
        let net_rng = ChaCha8Rng::seed_from_u64(seed);
        let mut node_rng = net_rng.clone();
        node_rng.set_stream(1);
        Simulator {
            nodes: Vec::new(),
            net: Net {
                now: SimTime::ZERO,
                seq: 0,
                queue: BinaryHeap::new(),
                net_rng,
                node_rng,
                config,
                node_count: 0,
                links: BTreeMap::new(),
                groups: None,
                in_flight: 0,
                in_flight_bytes: 0,
                timers: 0,
                stats: Stats::default(),
            },
        }
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.net.config
    }

    /// Adds a node; its [`Node::on_start`] runs at the current time, after
    /// the events already due then.
    ///
    /// # Panics
    ///
    /// If `u32::MAX` nodes already exist.
    pub fn add_node(&mut self, node: N) -> NodeId {
        let id = NodeId(u32::try_from(self.nodes.len()).expect("at most u32::MAX nodes"));
        self.nodes.push(node);
        self.net.node_count = id.0 + 1;
        self.net.stats.nodes.push(NodeStats::default());
        let now = self.net.now;
        self.net.schedule(now, What::Start(id));
        id
    }

    /// The node `id`, if it exists.
    pub fn node(&self, id: NodeId) -> Option<&N> {
        self.nodes.get(id.index())
    }

    /// The node `id`, mutably, if it exists. To let it send, use
    /// [`poke`](Self::poke).
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut N> {
        self.nodes.get_mut(id.index())
    }

    /// All nodes with their ids, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &N)> + '_ {
        (0..).map(NodeId).zip(&self.nodes)
    }

    /// Every node id, in order.
    pub fn node_ids(&self) -> Peers {
        Peers {
            next: 0,
            end: self.net.node_count,
            skip: None,
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The current virtual time.
    pub fn now(&self) -> SimTime {
        self.net.now
    }

    /// Messages currently in flight.
    pub fn in_flight(&self) -> usize {
        self.net.in_flight
    }

    /// Whether no event is pending.
    pub fn is_idle(&self) -> bool {
        self.net.queue.is_empty()
    }

    /// Time of the next pending event.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.net.queue.peek().map(|Reverse(p)| p.at)
    }

    /// Runs `f` on node `id` now, with a [`Ctx`] through which it may send
    /// and set timers: "node 3 starts a sync with node 1 now". Returns
    /// `None`, without calling `f`, if the node does not exist.
    pub fn poke<R>(&mut self, id: NodeId, f: impl FnOnce(&mut N, &mut Ctx<'_>) -> R) -> Option<R> {
        let node = self.nodes.get_mut(id.index())?;
        let mut ctx = Ctx {
            id,
            net: &mut self.net,
        };
        Some(f(node, &mut ctx))
    }

    /// Sends `msg` from `from` to `to` now, as if `from` had sent it.
    pub fn send_from(&mut self, from: NodeId, to: NodeId, msg: Vec<u8>) {
        self.net.send(from, to, msg);
    }

    /// Fires [`Node::on_timer`] on `node` with `token` after `after`;
    /// ignored if the node does not exist.
    pub fn set_timer(&mut self, node: NodeId, after: SimTime, token: u64) {
        if node.0 < self.net.node_count {
            self.net.set_timer(node, after, token);
        }
    }

    /// Runs the next event, advancing the clock to it. Returns `None` if
    /// no event is pending.
    pub fn step(&mut self) -> Option<Event> {
        let Reverse(pending) = self.net.queue.pop()?;
        let net = &mut self.net;
        // Events are never scheduled in the past, so this is a no-op guard.
        net.now = net.now.max(pending.at);
        let at = net.now;
        net.stats.events += 1;
        // The nodes always exist: ids are checked when an event is scheduled
        // and nodes are never removed.
        match pending.what {
            What::Start(node) => {
                if let Some(n) = self.nodes.get_mut(node.index()) {
                    n.on_start(&mut Ctx { id: node, net });
                }
                Some(Event::Started { at, node })
            }
            What::Timer { node, token } => {
                net.timers -= 1;
                net.stats.timers_fired += 1;
                if let Some(n) = self.nodes.get_mut(node.index()) {
                    n.on_timer(&mut Ctx { id: node, net }, token);
                }
                Some(Event::Timer { at, node, token })
            }
            What::Deliver {
                from,
                to,
                sent_at,
                msg,
            } => {
                let len = msg.len();
                net.in_flight -= 1;
                net.in_flight_bytes -= len;
                net.count(from, to, |c| {
                    c.messages_delivered += 1;
                    c.bytes_delivered = c.bytes_delivered.saturating_add(len as u64);
                });
                net.stats.last_delivery = Some(at);
                if let Some(n) = self.nodes.get_mut(to.index()) {
                    n.on_message(&mut Ctx { id: to, net }, from, msg);
                }
                Some(Event::Delivered {
                    at,
                    sent_at,
                    from,
                    to,
                    len,
                })
            }
        }
    }

    /// Runs until no event is left or the next one is due after `deadline`
    /// (an absolute time) or [`SimConfig::max_events_per_run`] events ran.
    ///
    /// When idle, the clock stays at the last event, so [`now`](Self::now)
    /// tells when the network went quiet; at the deadline it is moved to
    /// `deadline`.
    pub fn run_until_idle(&mut self, deadline: SimTime) -> RunOutcome {
        self.run_until(deadline, |_| false)
    }

    /// Like [`run_until_idle`](Self::run_until_idle), but also stops with
    /// [`RunOutcome::Condition`] as soon as `stop(self)` holds. The
    /// condition is checked before the first event and after each one.
    pub fn run_until(
        &mut self,
        deadline: SimTime,
        mut stop: impl FnMut(&Self) -> bool,
    ) -> RunOutcome {
        let mut budget = self.net.config.max_events_per_run;
        loop {
            if stop(self) {
                return RunOutcome::Condition;
            }
            let Some(next) = self.next_event_time() else {
                return RunOutcome::Idle;
            };
            if next > deadline {
                self.net.now = self.net.now.max(deadline);
                return RunOutcome::Deadline;
            }
            if budget == 0 {
                return RunOutcome::EventLimit;
            }
            budget -= 1;
            self.step();
        }
    }

    /// Runs every event due within `duration` from now and moves the clock
    /// to the end of it (unless the event limit stops it first). Returns
    /// [`RunOutcome::Idle`] if no event is left.
    pub fn run_for(&mut self, duration: SimTime) -> RunOutcome {
        let deadline = self.net.now + duration;
        let outcome = self.run_until(deadline, |_| false);
        if outcome == RunOutcome::Idle {
            self.net.now = self.net.now.max(deadline);
        }
        outcome
    }

    /// The configuration of links without their own.
    pub fn default_link(&self) -> LinkConfig {
        self.net.config.default_link
    }

    /// Sets the configuration of links without their own (messages already
    /// in flight keep theirs).
    pub fn set_default_link(&mut self, config: LinkConfig) {
        self.net.config.default_link = config;
    }

    /// The configuration of the link `from -> to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkConfig {
        self.net
            .links
            .get(&(from, to))
            .and_then(|l| l.config)
            .unwrap_or(self.net.config.default_link)
    }

    /// Configures and connects both directions between `a` and `b`.
    pub fn set_link(&mut self, a: NodeId, b: NodeId, config: LinkConfig) {
        self.set_link_one_way(a, b, config);
        self.set_link_one_way(b, a, config);
    }

    /// Configures and connects the link `from -> to` only.
    pub fn set_link_one_way(&mut self, from: NodeId, to: NodeId, config: LinkConfig) {
        let link = self.net.links.entry((from, to)).or_default();
        link.config = Some(config);
        link.cut = false;
    }

    /// Returns both directions between `a` and `b` to the default
    /// configuration, connected.
    pub fn reset_link(&mut self, a: NodeId, b: NodeId) {
        for key in [(a, b), (b, a)] {
            if let Some(link) = self.net.links.get_mut(&key) {
                link.config = None;
                link.cut = false;
            }
        }
    }

    /// Cuts both directions between `a` and `b`: messages in flight are
    /// dropped, and new ones until [`set_link`](Self::set_link) or
    /// [`reset_link`](Self::reset_link).
    pub fn disconnect(&mut self, a: NodeId, b: NodeId) {
        self.disconnect_one_way(a, b);
        self.disconnect_one_way(b, a);
    }

    /// Cuts the link `from -> to` only.
    pub fn disconnect_one_way(&mut self, from: NodeId, to: NodeId) {
        self.net.links.entry((from, to)).or_default().cut = true;
        self.net
            .drop_in_flight(|f, t| (f, t) == (from, to), DropCause::Disconnected);
    }

    /// Whether a message sent now from `from` to `to` could arrive
    /// (ignoring loss and the in-flight cap).
    pub fn is_connected(&self, from: NodeId, to: NodeId) -> bool {
        self.net.known(from) && self.net.known(to) && self.net.connected(from, to).is_ok()
    }

    /// Splits the nodes into `groups`; messages between different groups
    /// are dropped, those in flight now and those sent later, until
    /// [`heal`](Self::heal) or another `partition`. A node listed in no group
    /// (including one added later) is alone in its own group; a node listed
    /// twice belongs to the first group; unknown ids are ignored.
    pub fn partition(&mut self, groups: &[&[NodeId]]) {
        let n = self.net.node_count as usize;
        let mut of: Vec<Option<usize>> = vec![None; n];
        for (g, members) in groups.iter().enumerate() {
            for id in members.iter() {
                if let Some(slot) = of.get_mut(id.index()) {
                    slot.get_or_insert(g);
                }
            }
        }
        self.net
            .drop_in_flight(|f, t| !same_group(Some(&of), f, t), DropCause::Partitioned);
        self.net.groups = Some(of);
    }

    /// Ends the partition: all groups can talk again (links cut with
    /// [`disconnect`](Self::disconnect) stay cut).
    pub fn heal(&mut self) {
        self.net.groups = None;
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        let mut s = self.net.stats.clone();
        s.now = self.net.now;
        s.in_flight = self.net.in_flight;
        s.links = self
            .net
            .links
            .iter()
            .filter(|(_, l)| l.counters != Counters::default())
            .map(|(&k, l)| (k, l.counters))
            .collect();
        s
    }

    /// The counters of the link `from -> to` (zero if it carried nothing).
    pub fn link_stats(&self, from: NodeId, to: NodeId) -> Counters {
        self.net
            .links
            .get(&(from, to))
            .map(|l| l.counters)
            .unwrap_or_default()
    }

    /// The counters of node `id`, if it exists.
    pub fn node_stats(&self, id: NodeId) -> Option<NodeStats> {
        self.net.stats.nodes.get(id.index()).copied()
    }
}

impl<N: fmt::Debug> fmt::Debug for Simulator<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("now", &self.net.now)
            .field("nodes", &self.nodes)
            .field("pending_events", &self.net.queue.len())
            .field("in_flight", &self.net.in_flight)
            .finish_non_exhaustive()
    }
}

/// Everything but the nodes, so that a node can hold a `Ctx` borrowing it.
struct Net {
    now: SimTime,
    seq: u64,
    queue: BinaryHeap<Reverse<Pending>>,
    net_rng: ChaCha8Rng,
    node_rng: ChaCha8Rng,
    config: SimConfig,
    node_count: u32,
    links: BTreeMap<(NodeId, NodeId), Link>,
    /// Partition group of each node; `None` when not partitioned.
    groups: Option<Vec<Option<usize>>>,
    in_flight: usize,
    in_flight_bytes: usize,
    timers: usize,
    /// Totals, drops, per-node counters; links live in `links`.
    stats: Stats,
}

/// State of one directed link, created on first use or configuration.
#[derive(Default)]
struct Link {
    /// Own configuration; `None` follows the default.
    config: Option<LinkConfig>,
    /// Disconnected.
    cut: bool,
    /// When the pipe finishes transmitting what is queued.
    busy_until: SimTime,
    /// Arrival time of the last in-order message (the FIFO floor).
    last_arrival: SimTime,
    counters: Counters,
}

/// A scheduled event, ordered by `(at, seq)` only.
struct Pending {
    at: SimTime,
    seq: u64,
    what: What,
}

enum What {
    Start(NodeId),
    Timer {
        node: NodeId,
        token: u64,
    },
    Deliver {
        from: NodeId,
        to: NodeId,
        sent_at: SimTime,
        msg: Vec<u8>,
    },
}

#[derive(Clone, Copy)]
enum DropCause {
    Lost,
    Partitioned,
    Disconnected,
    Overflow,
    UnknownNode,
}

impl Net {
    fn known(&self, id: NodeId) -> bool {
        id.0 < self.node_count
    }

    fn schedule(&mut self, at: SimTime, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            at,
            seq: self.seq,
            what,
        }));
    }

    fn set_timer(&mut self, node: NodeId, after: SimTime, token: u64) {
        if self.timers >= self.config.max_timers {
            self.stats.timers_dropped += 1;
            return;
        }
        self.timers += 1;
        let at = self.now + after;
        self.schedule(at, What::Timer { node, token });
    }

    /// Whether `from -> to` is open, or why not.
    fn connected(&self, from: NodeId, to: NodeId) -> Result<(), DropCause> {
        if !same_group(self.groups.as_deref(), from, to) {
            return Err(DropCause::Partitioned);
        }
        if self.links.get(&(from, to)).is_some_and(|l| l.cut) {
            return Err(DropCause::Disconnected);
        }
        Ok(())
    }

    /// Applies `f` to the total, the endpoints' and the link's counters
    /// (those that exist).
    fn count(&mut self, from: NodeId, to: NodeId, f: impl Fn(&mut Counters)) {
        f(&mut self.stats.total);
        if let Some(n) = self.stats.nodes.get_mut(from.index()) {
            f(&mut n.outgoing);
        }
        if let Some(n) = self.stats.nodes.get_mut(to.index()) {
            f(&mut n.incoming);
        }
        if self.known(from) && self.known(to) {
            f(&mut self.links.entry((from, to)).or_default().counters);
        }
    }

    fn drop_msg(&mut self, from: NodeId, to: NodeId, cause: DropCause) {
        self.count(from, to, |c| c.messages_dropped += 1);
        let d = &mut self.stats.drops;
        match cause {
            DropCause::Lost => d.lost += 1,
            DropCause::Partitioned => d.partitioned += 1,
            DropCause::Disconnected => d.disconnected += 1,
            DropCause::Overflow => d.overflow += 1,
            DropCause::UnknownNode => d.unknown_node += 1,
        }
    }

    /// Removes the in-flight messages for which `cut(from, to)` holds.
    fn drop_in_flight(&mut self, cut: impl Fn(NodeId, NodeId) -> bool, cause: DropCause) {
        let mut dropped = Vec::new();
        self.queue.retain(|Reverse(p)| match &p.what {
            What::Deliver { from, to, msg, .. } if cut(*from, *to) => {
                dropped.push((*from, *to, msg.len()));
                false
            }
            _ => true,
        });
        for (from, to, len) in dropped {
            self.in_flight -= 1;
            self.in_flight_bytes -= len;
            self.drop_msg(from, to, cause);
        }
    }

    fn has_room(&self, len: usize) -> bool {
        self.in_flight < self.config.max_in_flight
            && self.in_flight_bytes.saturating_add(len) <= self.config.max_in_flight_bytes
    }

    fn enqueue(&mut self, at: SimTime, from: NodeId, to: NodeId, msg: Vec<u8>) {
        self.in_flight += 1;
        self.in_flight_bytes += msg.len();
        let sent_at = self.now;
        self.schedule(
            at,
            What::Deliver {
                from,
                to,
                sent_at,
                msg,
            },
        );
    }

    /// The link model of the module docs, stage by stage.
    fn send(&mut self, from: NodeId, to: NodeId, msg: Vec<u8>) {
        let len = msg.len();
        self.count(from, to, |c| {
            c.messages_sent += 1;
            c.bytes_sent = c.bytes_sent.saturating_add(len as u64);
        });
        if !self.known(from) || !self.known(to) {
            return self.drop_msg(from, to, DropCause::UnknownNode);
        }
        if let Err(cause) = self.connected(from, to) {
            return self.drop_msg(from, to, cause);
        }
        if !self.has_room(len) {
            return self.drop_msg(from, to, DropCause::Overflow);
        }
        let default = self.config.default_link;
        let link = self.links.entry((from, to)).or_default();
        let cfg = link.config.unwrap_or(default);
        let rng = &mut self.net_rng;

        let done = link.busy_until.max(self.now) + cfg.transmit_time(len);
        link.busy_until = done;
        if chance(rng, cfg.loss) {
            return self.drop_msg(from, to, DropCause::Lost);
        }
        let mut arrival = done + cfg.latency + uniform(rng, SimTime::ZERO, cfg.jitter);
        if chance(rng, cfg.reorder) {
            let max = cfg.reorder_delay.max(SimTime(1));
            arrival += uniform(rng, SimTime(1), max);
        } else {
            arrival = arrival.max(link.last_arrival);
            link.last_arrival = arrival;
        }
        let copy =
            chance(rng, cfg.duplicate).then(|| arrival + uniform(rng, SimTime::ZERO, cfg.jitter));

        match copy {
            None => self.enqueue(arrival, from, to, msg),
            Some(copy_at) => {
                self.count(from, to, |c| c.messages_duplicated += 1);
                let dup = msg.clone();
                self.enqueue(arrival, from, to, msg);
                if self.has_room(len) {
                    self.enqueue(copy_at, from, to, dup);
                } else {
                    self.drop_msg(from, to, DropCause::Overflow);
                }
            }
        }
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Whether `a` and `b` may talk under the partition `groups`.
fn same_group(groups: Option<&[Option<usize>]>, a: NodeId, b: NodeId) -> bool {
    let Some(groups) = groups else {
        return true;
    };
    if a == b {
        return true;
    }
    let group = |id: NodeId| groups.get(id.index()).copied().flatten();
    match (group(a), group(b)) {
        (Some(x), Some(y)) => x == y,
        // Unlisted nodes are alone.
        _ => false,
    }
}

/// A Bernoulli draw with `p` clamped to `[0, 1]` (NaN is 0); certain
/// outcomes draw nothing.
fn chance(rng: &mut ChaCha8Rng, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.random::<f64>() < p
    }
}

/// Uniform in `[lo, hi]`; `lo` if the range is empty, with no draw.
fn uniform(rng: &mut ChaCha8Rng, lo: SimTime, hi: SimTime) -> SimTime {
    if hi <= lo {
        lo
    } else {
        SimTime(rng.random_range(lo.0..=hi.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every delivery and timer; sends nothing by itself.
    #[derive(Debug, Default)]
    struct Recorder {
        got: Vec<(SimTime, NodeId, Vec<u8>)>,
        timers: Vec<(SimTime, u64)>,
    }

    impl Node for Recorder {
        fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: Vec<u8>) {
            self.got.push((ctx.now(), from, msg));
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
            self.timers.push((ctx.now(), token));
        }
    }

    /// A max-register gossiped to one random peer per period, and pushed
    /// to all peers whenever it grows.
    #[derive(Debug)]
    struct Gossip {
        value: u64,
        period: SimTime,
    }

    impl Gossip {
        fn push_all(&self, ctx: &mut Ctx<'_>) {
            for peer in ctx.peers() {
                ctx.send(peer, self.value.to_le_bytes().to_vec());
            }
        }
    }

    impl Node for Gossip {
        fn on_start(&mut self, ctx: &mut Ctx<'_>) {
            ctx.set_timer(self.period, 0);
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_>, _from: NodeId, msg: Vec<u8>) {
            let Ok(bytes) = <[u8; 8]>::try_from(msg.as_slice()) else {
                return;
            };
            let v = u64::from_le_bytes(bytes);
            if v > self.value {
                self.value = v;
                self.push_all(ctx);
            }
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_>, _token: u64) {
            let n = ctx.node_count();
            let peer = NodeId(ctx.rng().random_range(0..n));
            if peer != ctx.id() {
                ctx.send(peer, self.value.to_le_bytes().to_vec());
            }
            let period = self.period;
            ctx.set_timer(period, 0);
        }
    }

    fn ids(n: u32) -> Vec<NodeId> {
        (0..n).map(NodeId).collect()
    }

    fn recorders(seed: u64, n: u32, link: LinkConfig) -> Simulator<Recorder> {
        let mut sim = Simulator::new(seed);
        sim.set_default_link(link);
        for _ in 0..n {
            sim.add_node(Recorder::default());
        }
        sim
    }

    fn faulty() -> LinkConfig {
        LinkConfig::wan(SimTime::from_millis(40))
            .with_loss(0.1)
            .with_duplicate(0.1)
            .with_reorder(0.1, SimTime::from_millis(30))
    }

    /// `sent + duplicated == delivered + dropped + in_flight`.
    fn assert_conserved(c: &Counters, in_flight: u64) {
        assert_eq!(
            c.messages_sent + c.messages_duplicated,
            c.messages_delivered + c.messages_dropped + in_flight,
            "{c:?}"
        );
    }

    /// Gossip among 5 nodes, every event logged, under faults.
    fn gossip_trace(seed: u64) -> (Vec<Event>, Stats, Vec<u64>) {
        let mut sim = Simulator::new(seed);
        sim.set_default_link(faulty().with_jitter(SimTime::from_millis(5)));
        for i in 0..5 {
            sim.add_node(Gossip {
                value: i,
                period: SimTime::from_millis(10),
            });
        }
        let mut trace = Vec::new();
        while sim.now() < SimTime::from_millis(500) {
            if sim.now() >= SimTime::from_millis(100) && sim.node(NodeId(2)).unwrap().value < 99 {
                sim.poke(NodeId(2), |n, ctx| {
                    n.value = 99;
                    n.push_all(ctx);
                });
            }
            trace.extend(sim.step());
        }
        let values = sim.nodes().map(|(_, n)| n.value).collect();
        (trace, sim.stats(), values)
    }

    #[test]
    fn same_seed_same_run_bit_for_bit() {
        let (t1, s1, v1) = gossip_trace(7);
        let (t2, s2, v2) = gossip_trace(7);
        assert!(t1.len() > 400, "trace too short: {}", t1.len());
        assert!(s1.drops.lost > 0 && s1.total.messages_duplicated > 0);
        assert_eq!(t1, t2);
        assert_eq!(s1, s2);
        assert_eq!(v1, v2);
    }

    #[test]
    fn different_seed_different_run() {
        let (t1, s1, _) = gossip_trace(7);
        let (t2, s2, _) = gossip_trace(8);
        assert_ne!(t1, t2);
        assert_ne!(s1, s2);
    }

    #[test]
    fn latency_and_bandwidth_give_exact_delivery_times() {
        // 1000 B/s: 100 bytes take 100 ms to serialise; then 10 ms latency.
        let link = LinkConfig::ideal()
            .with_latency(SimTime::from_millis(10))
            .with_bandwidth(1000);
        let mut sim = recorders(1, 2, link);
        let [a, b] = [NodeId(0), NodeId(1)];
        for i in 0..3 {
            sim.send_from(a, b, vec![i; 100]);
        }
        // The reverse direction is its own pipe.
        sim.send_from(b, a, vec![9; 100]);
        assert_eq!(sim.run_until_idle(SimTime::MAX), RunOutcome::Idle);
        let times: Vec<u64> = sim
            .node(b)
            .unwrap()
            .got
            .iter()
            .map(|g| g.0.as_millis())
            .collect();
        assert_eq!(times, [110, 210, 310]);
        assert_eq!(sim.node(a).unwrap().got[0].0, SimTime::from_millis(110));
        assert_eq!(sim.now(), SimTime::from_millis(310));
        assert_eq!(sim.stats().last_delivery, Some(SimTime::from_millis(310)));

        // An idle pipe starts at once; 1 byte rounds up to 1000 µs.
        sim.run_for(SimTime::from_secs(1));
        assert_eq!(sim.now(), SimTime::from_millis(1310));
        sim.send_from(a, b, vec![0; 1]);
        assert_eq!(
            sim.step().map(|e| e.at()),
            Some(SimTime::from_micros(1_311_000 + 10_000))
        );

        // Unlimited bandwidth: latency only, whatever the size.
        let mut sim = recorders(
            1,
            2,
            LinkConfig::ideal().with_latency(SimTime::from_micros(250)),
        );
        sim.run_until_idle(SimTime::MAX);
        sim.send_from(a, b, vec![0; 1 << 20]);
        sim.send_from(a, b, vec![0; 3]);
        sim.run_until_idle(SimTime::MAX);
        let got = &sim.node(b).unwrap().got;
        assert_eq!(got[0].0, SimTime::from_micros(250));
        assert_eq!(got[1].0, SimTime::from_micros(250));
        assert_eq!(
            got[0].2.len(),
            1 << 20,
            "same arrival time: FIFO by sequence number"
        );
    }

    #[test]
    fn timers_fire_at_their_time_in_order() {
        let mut sim = recorders(1, 1, LinkConfig::ideal());
        let a = NodeId(0);
        sim.set_timer(a, SimTime::from_millis(5), 2);
        sim.set_timer(a, SimTime::from_millis(1), 1);
        sim.set_timer(a, SimTime::from_millis(5), 3);
        sim.set_timer(NodeId(9), SimTime::ZERO, 4); // unknown: ignored
        sim.run_until_idle(SimTime::MAX);
        let timers = &sim.node(a).unwrap().timers;
        assert_eq!(
            timers,
            &[
                (SimTime::from_millis(1), 1),
                (SimTime::from_millis(5), 2),
                (SimTime::from_millis(5), 3)
            ]
        );
        assert_eq!(sim.stats().timers_fired, 3);
    }

    /// Sends `n` numbered messages from 0 to 1, one every 100 µs.
    fn numbered(sim: &mut Simulator<Recorder>, n: u32) -> Vec<u32> {
        for i in 0..n {
            sim.send_from(NodeId(0), NodeId(1), i.to_le_bytes().to_vec());
            sim.run_for(SimTime::from_micros(100));
        }
        sim.run_until_idle(SimTime::MAX);
        let got = &sim.node(NodeId(1)).unwrap().got;
        got.iter()
            .map(|(_, _, m)| u32::from_le_bytes(m.as_slice().try_into().unwrap()))
            .collect()
    }

    #[test]
    fn fifo_without_reorder_despite_jitter() {
        // Jitter (50 ms) far above the send interval (100 µs).
        let link = LinkConfig::wan(SimTime::from_millis(100)).with_jitter(SimTime::from_millis(50));
        let mut sim = recorders(3, 2, link);
        let got = numbered(&mut sim, 1000);
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn reorder_lets_later_messages_overtake() {
        // No jitter: every inversion comes from the reorder delay.
        let link = LinkConfig::wan(SimTime::from_millis(100))
            .with_jitter(SimTime::ZERO)
            .with_reorder(0.2, SimTime::from_millis(20));
        let mut sim = recorders(3, 2, link);
        let got = numbered(&mut sim, 1000);
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..1000).collect::<Vec<_>>(),
            "nothing lost or duplicated"
        );
        let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
        assert!(inversions > 50, "only {inversions} inversions");
        // At most 20 ms late, so overtaken by at most 200 messages sent
        // 100 µs apart.
        let late = got
            .iter()
            .enumerate()
            .map(|(pos, &v)| pos.saturating_sub(v as usize));
        assert!(late.max() <= Some(201));
    }

    #[test]
    fn loss_rate_matches_configuration() {
        const N: u64 = 10_000;
        let mut sim = recorders(11, 2, LinkConfig::lan().with_loss(0.1));
        for _ in 0..N {
            sim.send_from(NodeId(0), NodeId(1), vec![0; 10]);
        }
        sim.run_until_idle(SimTime::MAX);
        let s = sim.stats();
        let delivered = sim.node(NodeId(1)).unwrap().got.len() as u64;
        // Binomial(10 000, 0.1): sd = 30; allow 5 sd.
        assert!(
            (850..=1150).contains(&s.drops.lost),
            "lost {}",
            s.drops.lost
        );
        assert_eq!(delivered + s.drops.lost, N);
        assert_eq!(s.total.messages_delivered, delivered);
        let link = sim.link_stats(NodeId(0), NodeId(1));
        assert_eq!(link.messages_sent, N);
        assert_eq!(link.bytes_sent, 10 * N);
        assert_eq!(link.messages_dropped, s.drops.lost);
        assert_eq!(sim.node_stats(NodeId(0)).unwrap().outgoing, link);
        assert_eq!(sim.node_stats(NodeId(1)).unwrap().incoming, link);
        assert_conserved(&s.total, 0);
    }

    #[test]
    fn duplication_delivers_twice() {
        let mut sim = recorders(5, 2, LinkConfig::lan().with_duplicate(1.0));
        for i in 0..10u8 {
            sim.send_from(NodeId(0), NodeId(1), vec![i]);
        }
        sim.run_until_idle(SimTime::MAX);
        let got = &sim.node(NodeId(1)).unwrap().got;
        assert_eq!(got.len(), 20);
        for i in 0..10u8 {
            assert_eq!(got.iter().filter(|g| g.2 == [i]).count(), 2);
        }
        let s = sim.stats();
        assert_eq!(s.total.messages_sent, 10);
        assert_eq!(s.total.messages_duplicated, 10);
        assert_eq!(s.total.messages_delivered, 20);
        assert_eq!(s.total.bytes_delivered, 20);
        assert_conserved(&s.total, 0);
    }

    #[test]
    fn partition_drops_across_groups_and_heal_restores() {
        let mut sim = recorders(
            1,
            4,
            LinkConfig::ideal().with_latency(SimTime::from_millis(10)),
        );
        let n = ids(4);
        // In flight when the partition starts: 0->2 is cut, 0->1 is not.
        sim.send_from(n[0], n[2], b"inflight".to_vec());
        sim.send_from(n[0], n[1], b"inflight".to_vec());
        sim.run_for(SimTime::from_millis(5));
        sim.partition(&[&[n[0], n[1]], &[n[2], n[3]]]);
        assert_eq!(sim.in_flight(), 1);
        assert!(!sim.is_connected(n[1], n[3]) && sim.is_connected(n[3], n[2]));
        // New messages across are dropped; within a group they pass.
        sim.send_from(n[1], n[3], b"new".to_vec());
        sim.send_from(n[3], n[2], b"new".to_vec());
        sim.run_until_idle(SimTime::MAX);
        assert_eq!(sim.node(n[1]).unwrap().got.len(), 1);
        assert_eq!(sim.node(n[2]).unwrap().got.len(), 1);
        assert_eq!(sim.node(n[2]).unwrap().got[0].1, n[3]);
        assert!(sim.node(n[3]).unwrap().got.is_empty());
        assert_eq!(sim.stats().drops.partitioned, 2);
        assert_eq!(sim.link_stats(n[0], n[2]).messages_dropped, 1);

        sim.heal();
        sim.send_from(n[1], n[3], b"healed".to_vec());
        sim.run_until_idle(SimTime::MAX);
        assert_eq!(sim.node(n[3]).unwrap().got[0].2, b"healed");
        assert_conserved(&sim.stats().total, 0);

        // A node listed in no group is alone.
        sim.partition(&[&[n[0], n[1], n[2]]]);
        assert!(!sim.is_connected(n[0], n[3]) && sim.is_connected(n[3], n[3]));
    }

    #[test]
    fn disconnect_cuts_one_pair() {
        let mut sim = recorders(
            1,
            3,
            LinkConfig::ideal().with_latency(SimTime::from_millis(1)),
        );
        let n = ids(3);
        sim.send_from(n[0], n[1], vec![1]);
        sim.disconnect(n[0], n[1]);
        sim.send_from(n[1], n[0], vec![2]);
        sim.send_from(n[0], n[2], vec![3]);
        sim.run_until_idle(SimTime::MAX);
        assert_eq!(sim.stats().drops.disconnected, 2);
        assert_eq!(sim.node(n[2]).unwrap().got.len(), 1);
        sim.reset_link(n[0], n[1]);
        sim.send_from(n[0], n[1], vec![4]);
        sim.run_until_idle(SimTime::MAX);
        assert_eq!(sim.node(n[1]).unwrap().got.len(), 1);
    }

    #[test]
    fn gossip_converges_under_faults_and_partition() {
        let mut sim = Simulator::new(2024);
        sim.set_default_link(faulty());
        let n: Vec<NodeId> = (0..5)
            .map(|_| {
                sim.add_node(Gossip {
                    value: 0,
                    period: SimTime::from_millis(20),
                })
            })
            .collect();
        sim.partition(&[&n[..2], &n[2..]]);
        let write = |sim: &mut Simulator<Gossip>, id: NodeId, v: u64| {
            sim.poke(id, |node, ctx| {
                node.value = v;
                node.push_all(ctx);
            })
        };
        write(&mut sim, n[0], 100);
        write(&mut sim, n[3], 50);
        let deadline = SimTime::from_secs(30);
        let agree = |sim: &Simulator<Gossip>, ids: &[NodeId], v: u64| {
            ids.iter().all(|&i| sim.node(i).map(|x| x.value) == Some(v))
        };
        let outcome = sim.run_until(deadline, |s| {
            agree(s, &n[..2], 100) && agree(s, &n[2..], 50)
        });
        assert_eq!(outcome, RunOutcome::Condition);
        // Let it run: nothing crosses the partition.
        sim.run_for(SimTime::from_secs(2));
        assert!(agree(&sim, &n[..2], 100) && agree(&sim, &n[2..], 50));
        assert!(sim.stats().drops.partitioned > 0);

        sim.heal();
        let healed_at = sim.now();
        let outcome = sim.run_until(deadline, |s| agree(s, &n, 100));
        assert_eq!(outcome, RunOutcome::Condition);
        assert!(
            sim.now() - healed_at < SimTime::from_secs(2),
            "took {}",
            sim.now() - healed_at
        );
        let s = sim.stats();
        assert!(s.drops.lost > 0 && s.total.messages_duplicated > 0);
        assert_conserved(&s.total, s.in_flight as u64);
        for c in s.links.values() {
            assert!(c.messages_sent > 0);
        }
    }

    #[test]
    fn in_flight_cap_holds() {
        let config = SimConfig {
            default_link: LinkConfig::ideal().with_bandwidth(100),
            max_in_flight: 10,
            max_in_flight_bytes: 1000,
            ..SimConfig::default()
        };
        let mut sim: Simulator<Recorder> = Simulator::with_config(1, config);
        let n = ids(3);
        for _ in 0..3 {
            sim.add_node(Recorder::default());
        }
        for _ in 0..100 {
            sim.send_from(n[0], n[1], vec![0; 10]);
            assert!(sim.in_flight() <= 10);
        }
        assert_eq!(sim.in_flight(), 10);
        assert_eq!(sim.stats().drops.overflow, 90);
        while sim.step().is_some() {
            assert!(sim.in_flight() <= 10);
        }
        assert_eq!(sim.node(n[1]).unwrap().got.len(), 10);
        // The byte cap: one 2000-byte message never fits.
        sim.send_from(n[0], n[2], vec![0; 2000]);
        assert_eq!(sim.stats().drops.overflow, 91);
        assert_conserved(&sim.stats().total, 0);
    }

    #[test]
    fn timer_cap_holds() {
        let config = SimConfig {
            max_timers: 5,
            ..SimConfig::default()
        };
        let mut sim: Simulator<Recorder> = Simulator::with_config(1, config);
        let a = sim.add_node(Recorder::default());
        for i in 0..8 {
            sim.set_timer(a, SimTime::from_millis(i), i);
        }
        sim.run_until_idle(SimTime::MAX);
        assert_eq!(sim.node(a).unwrap().timers.len(), 5);
        assert_eq!(sim.stats().timers_dropped, 3);
    }

    #[test]
    fn node_rng_is_its_own_stream() {
        use rand::Rng;
        let draws = |loss: f64| {
            let mut sim = recorders(9, 2, LinkConfig::lan().with_loss(loss));
            for _ in 0..100 {
                sim.send_from(NodeId(0), NodeId(1), vec![0]);
            }
            sim.run_until_idle(SimTime::MAX);
            sim.poke(NodeId(0), |_, ctx| {
                [ctx.rng().next_u64(), ctx.rng().next_u64()]
            })
        };
        // Network faults do not shift the nodes' draws...
        assert_eq!(draws(0.5), draws(0.0));
        // ...and the nodes do not see the fault stream.
        let mut net = ChaCha8Rng::seed_from_u64(9);
        assert_ne!(draws(0.0), Some([net.next_u64(), net.next_u64()]));
    }

    /// Replies to every message at once, forever.
    struct Echo;

    impl Node for Echo {
        fn on_message(&mut self, ctx: &mut Ctx<'_>, from: NodeId, msg: Vec<u8>) {
            ctx.send(from, msg);
        }
    }

    #[test]
    fn run_reports_why_it_stopped() {
        let config = SimConfig {
            default_link: LinkConfig::ideal(),
            max_events_per_run: 1000,
            ..SimConfig::default()
        };
        let mut sim = Simulator::with_config(1, config);
        let a = sim.add_node(Echo);
        let b = sim.add_node(Echo);
        sim.send_from(a, b, vec![1]);
        // Zero latency: time never advances; only the event cap stops it.
        assert_eq!(
            sim.run_until_idle(SimTime::from_secs(1)),
            RunOutcome::EventLimit
        );
        assert_eq!(sim.now(), SimTime::ZERO);
        assert_eq!(sim.stats().events, 1000);

        sim.set_default_link(LinkConfig::ideal().with_latency(SimTime::from_millis(1)));
        sim.send_from(a, b, vec![2]);
        sim.disconnect(a, b); // drops the zero-latency ping-pong in flight
        sim.reset_link(a, b);
        sim.send_from(a, b, vec![3]);
        assert_eq!(
            sim.run_until_idle(SimTime::from_millis(10)),
            RunOutcome::Deadline
        );
        assert_eq!(sim.now(), SimTime::from_millis(10));
        let before = sim.stats().events;
        assert_eq!(sim.run_for(SimTime::from_millis(5)), RunOutcome::Deadline);
        assert_eq!(sim.stats().events - before, 5);
        assert_eq!(
            sim.run_until(SimTime::MAX, |s| s.now() >= SimTime::from_millis(20)),
            RunOutcome::Condition
        );
        assert_eq!(sim.now(), SimTime::from_millis(20));
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let weird = LinkConfig {
            latency: SimTime::MAX,
            jitter: SimTime::MAX,
            bandwidth_bytes_per_sec: NonZeroU64::new(1),
            loss: f64::NAN,
            duplicate: 7.0,
            reorder: -1.0,
            reorder_delay: SimTime::MAX,
        };
        let mut sim = recorders(1, 2, weird);
        let [a, b, ghost] = [NodeId(0), NodeId(1), NodeId(u32::MAX)];
        sim.send_from(a, ghost, vec![1]);
        sim.send_from(ghost, a, vec![1]);
        sim.send_from(ghost, ghost, vec![1]);
        assert_eq!(sim.stats().drops.unknown_node, 3);
        assert_eq!(sim.poke(ghost, |_, _| ()), None);
        sim.partition(&[&[ghost, a], &[]]);
        sim.send_from(a, b, vec![0; 1000]);
        sim.send_from(a, a, vec![0; 1000]);
        sim.heal();
        sim.send_from(b, a, vec![0; 1000]);
        assert_eq!(sim.run_for(SimTime::MAX), RunOutcome::Idle);
        assert_eq!(sim.now(), SimTime::MAX);
        // Duplicated (p clamped to 1) and delivered at the end of time.
        assert_eq!(sim.node(a).unwrap().got.len(), 4);
        sim.run_for(SimTime::from_secs(1));
        sim.set_timer(a, SimTime::MAX, 0);
        assert_eq!(sim.run_until_idle(SimTime::MAX), RunOutcome::Idle);
        assert_eq!(SimTime::ZERO - SimTime::from_secs(1), SimTime::ZERO);
        assert_eq!(SimTime::from(Duration::MAX), SimTime::MAX);
        assert_eq!(SimTime::from_millis(1_500).to_string(), "1.500000s");
    }
}
