//! A deterministic discrete-event network simulator.
//!
//! The simulator moves opaque byte messages between abstract nodes on
//! virtual time, so that protocol code (anything implementing [`Process`]) can
//! be tested under latency, limited bandwidth, loss, duplication,
//! reordering and partitions, and every run can be replayed exactly. There
//! is no wall clock, no thread and no global RNG: time is a [`SimTime`]
//! counter of microseconds and all randomness comes from two SplitMix64
//! streams seeded from a `u64` (one for the network's faults, one for the
//! processes' own draws). The same seed, the same nodes and the same calls
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
//! * **start**: [`Simulator::add_node`] schedules [`Process::on_start`] at the
//!   current time, so nodes added before the first step all start in the
//!   order they were added, and can already address one another;
//! * **delivery**: a message arrives and [`Process::on_message`] runs;
//! * **timer**: a timer set by [`Ctx::set_timer`] (or
//!   [`Simulator::set_timer`]) fires and [`Process::on_timer`] runs.
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
//! use accordant_sync::sim::{Ctx, LinkConfig, Process, ProcessId, RunOutcome, SimTime, Simulator};
//!
//! struct MaxRegister(u64);
//!
//! impl Process for MaxRegister {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_>) {
//!         ctx.set_timer(SimTime::from_millis(10), 0);
//!     }
//!     fn on_message(&mut self, _ctx: &mut Ctx<'_>, _from: ProcessId, msg: Vec<u8>) {
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
//! let ids: Vec<ProcessId> = (0..3u64).map(|i| sim.add_node(MaxRegister(i))).collect();
//! // A test injects a write on node 0 and lets the gossip run.
//! sim.poke(ids[0], |node, _ctx| node.0 = 7);
//! let outcome = sim.run_until(SimTime::from_secs(10), |sim| {
//!     sim.nodes().all(|(_, node)| node.0 == 7)
//! });
//! assert_eq!(outcome, RunOutcome::Condition);
//! assert!(sim.now() < SimTime::from_secs(1));
//! assert!(sim.stats().drops.lost > 0);
//! ```

use core::fmt;

pub mod anti_entropy;
pub mod causal;
pub mod checker;
pub mod delta_node;
mod link;
mod network;
mod process;
mod stats;
mod time;

pub use anti_entropy::{AntiEntropyConfig, AntiEntropyNode, AntiEntropyStats, PeerChoice};
pub use delta_node::{DeltaNode, Workload};
pub use link::{LinkConfig, SimConfig};
pub use process::{Ctx, Peers, Process, ProcessId};
pub use stats::{Counters, Drops, Event, ProcessStats, RunOutcome, Stats};
pub use time::SimTime;

use core::cmp::Reverse;

use network::{same_group, DropCause, Net, What};

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

impl<N: Process> Simulator<N> {
    /// An empty simulator with [`SimConfig::default`], seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, SimConfig::default())
    }

    /// An empty simulator with `config`, seeded with `seed`.
    pub fn with_config(seed: u64, config: SimConfig) -> Self {
        Simulator {
            nodes: Vec::new(),
            net: Net::new(seed, config),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SimConfig {
        &self.net.config
    }

    /// Adds a node; its [`Process::on_start`] runs at the current time, after
    /// the events already due then.
    ///
    /// # Panics
    ///
    /// If `u32::MAX` nodes already exist.
    pub fn add_node(&mut self, node: N) -> ProcessId {
        let id = ProcessId(u32::try_from(self.nodes.len()).expect("at most u32::MAX nodes"));
        self.nodes.push(node);
        self.net.node_count = id.0 + 1;
        self.net.stats.nodes.push(ProcessStats::default());
        let now = self.net.now;
        self.net.schedule(now, What::Start(id));
        id
    }

    /// The node `id`, if it exists.
    pub fn node(&self, id: ProcessId) -> Option<&N> {
        self.nodes.get(id.index())
    }

    /// The node `id`, mutably, if it exists. To let it send, use
    /// [`poke`](Self::poke).
    pub fn node_mut(&mut self, id: ProcessId) -> Option<&mut N> {
        self.nodes.get_mut(id.index())
    }

    /// All nodes with their ids, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = (ProcessId, &N)> + '_ {
        (0..).map(ProcessId).zip(&self.nodes)
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
    pub fn poke<R>(
        &mut self,
        id: ProcessId,
        f: impl FnOnce(&mut N, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let node = self.nodes.get_mut(id.index())?;
        let mut ctx = Ctx {
            id,
            net: &mut self.net,
        };
        Some(f(node, &mut ctx))
    }

    /// Sends `msg` from `from` to `to` now, as if `from` had sent it.
    pub fn send_from(&mut self, from: ProcessId, to: ProcessId, msg: Vec<u8>) {
        self.net.send(from, to, msg);
    }

    /// Fires [`Process::on_timer`] on `node` with `token` after `after`;
    /// ignored if the node does not exist.
    pub fn set_timer(&mut self, node: ProcessId, after: SimTime, token: u64) {
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
    pub fn link(&self, from: ProcessId, to: ProcessId) -> LinkConfig {
        self.net
            .links
            .get(&(from, to))
            .and_then(|l| l.config)
            .unwrap_or(self.net.config.default_link)
    }

    /// Configures and connects both directions between `a` and `b`.
    pub fn set_link(&mut self, a: ProcessId, b: ProcessId, config: LinkConfig) {
        self.set_link_one_way(a, b, config);
        self.set_link_one_way(b, a, config);
    }

    /// Configures and connects the link `from -> to` only.
    pub fn set_link_one_way(&mut self, from: ProcessId, to: ProcessId, config: LinkConfig) {
        let link = self.net.links.entry((from, to)).or_default();
        link.config = Some(config);
        link.cut = false;
    }

    /// Returns both directions between `a` and `b` to the default
    /// configuration, connected.
    pub fn reset_link(&mut self, a: ProcessId, b: ProcessId) {
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
    pub fn disconnect(&mut self, a: ProcessId, b: ProcessId) {
        self.disconnect_one_way(a, b);
        self.disconnect_one_way(b, a);
    }

    /// Cuts the link `from -> to` only.
    pub fn disconnect_one_way(&mut self, from: ProcessId, to: ProcessId) {
        self.net.links.entry((from, to)).or_default().cut = true;
        self.net
            .drop_in_flight(|f, t| (f, t) == (from, to), DropCause::Disconnected);
    }

    /// Whether a message sent now from `from` to `to` could arrive
    /// (ignoring loss and the in-flight cap).
    pub fn is_connected(&self, from: ProcessId, to: ProcessId) -> bool {
        self.net.known(from) && self.net.known(to) && self.net.connected(from, to).is_ok()
    }

    /// Splits the nodes into `groups`; messages between different groups
    /// are dropped, those in flight now and those sent later, until
    /// [`heal`](Self::heal) or another `partition`. A node listed in no group
    /// (including one added later) is alone in its own group; a node listed
    /// twice belongs to the first group; unknown ids are ignored.
    pub fn partition(&mut self, groups: &[&[ProcessId]]) {
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
    pub fn link_stats(&self, from: ProcessId, to: ProcessId) -> Counters {
        self.net
            .links
            .get(&(from, to))
            .map(|l| l.counters)
            .unwrap_or_default()
    }

    /// The counters of node `id`, if it exists.
    pub fn node_stats(&self, id: ProcessId) -> Option<ProcessStats> {
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

#[cfg(test)]
mod tests;
