//! The simulator's machinery: the event queue, links, partitions and the
//! draws of network faults.

use core::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use super::link::{LinkConfig, SimConfig};
use super::process::ProcessId;
use super::stats::{Counters, Stats};
use super::time::SimTime;
use crate::rng::SplitMix64;

/// Everything but the nodes, so that a node can hold a `Ctx` borrowing it.
pub(super) struct Net {
    pub(super) now: SimTime,
    pub(super) seq: u64,
    pub(super) queue: BinaryHeap<Reverse<Pending>>,
    pub(super) net_rng: SplitMix64,
    pub(super) node_rng: SplitMix64,
    pub(super) config: SimConfig,
    pub(super) node_count: u32,
    pub(super) links: BTreeMap<(ProcessId, ProcessId), Link>,
    /// Partition group of each node; `None` when not partitioned.
    pub(super) groups: Option<Vec<Option<usize>>>,
    pub(super) in_flight: usize,
    pub(super) in_flight_bytes: usize,
    pub(super) timers: usize,
    /// Totals, drops, per-node counters; links live in `links`.
    pub(super) stats: Stats,
}

/// State of one directed link, created on first use or configuration.
#[derive(Default)]
pub(super) struct Link {
    /// Own configuration; `None` follows the default.
    pub(super) config: Option<LinkConfig>,
    /// Disconnected.
    pub(super) cut: bool,
    /// When the pipe finishes transmitting what is queued.
    pub(super) busy_until: SimTime,
    /// Arrival time of the last in-order message (the FIFO floor).
    pub(super) last_arrival: SimTime,
    pub(super) counters: Counters,
}

/// A scheduled event, ordered by `(at, seq)` only.
pub(super) struct Pending {
    pub(super) at: SimTime,
    pub(super) seq: u64,
    pub(super) what: What,
}

pub(super) enum What {
    Start(ProcessId),
    Timer {
        node: ProcessId,
        token: u64,
    },
    Deliver {
        from: ProcessId,
        to: ProcessId,
        sent_at: SimTime,
        msg: Vec<u8>,
    },
}

#[derive(Clone, Copy)]
pub(super) enum DropCause {
    Lost,
    Partitioned,
    Disconnected,
    Overflow,
    UnknownNode,
}

impl Net {
    pub(super) fn new(seed: u64, config: SimConfig) -> Self {
        let net_rng = SplitMix64::new(seed);
        // A second stream, far from the first one's sequence.
        let node_rng = SplitMix64::new(SplitMix64::new(!seed).next_u64());
        Net {
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
        }
    }

    pub(super) fn known(&self, id: ProcessId) -> bool {
        id.0 < self.node_count
    }

    pub(super) fn schedule(&mut self, at: SimTime, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Pending {
            at,
            seq: self.seq,
            what,
        }));
    }

    pub(super) fn set_timer(&mut self, node: ProcessId, after: SimTime, token: u64) {
        if self.timers >= self.config.max_timers {
            self.stats.timers_dropped += 1;
            return;
        }
        self.timers += 1;
        let at = self.now + after;
        self.schedule(at, What::Timer { node, token });
    }

    /// Whether `from -> to` is open, or why not.
    pub(super) fn connected(&self, from: ProcessId, to: ProcessId) -> Result<(), DropCause> {
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
    pub(super) fn count(&mut self, from: ProcessId, to: ProcessId, f: impl Fn(&mut Counters)) {
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

    pub(super) fn drop_msg(&mut self, from: ProcessId, to: ProcessId, cause: DropCause) {
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
    pub(super) fn drop_in_flight(
        &mut self,
        cut: impl Fn(ProcessId, ProcessId) -> bool,
        cause: DropCause,
    ) {
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

    pub(super) fn has_room(&self, len: usize) -> bool {
        self.in_flight < self.config.max_in_flight
            && self.in_flight_bytes.saturating_add(len) <= self.config.max_in_flight_bytes
    }

    pub(super) fn enqueue(&mut self, at: SimTime, from: ProcessId, to: ProcessId, msg: Vec<u8>) {
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
    pub(super) fn send(&mut self, from: ProcessId, to: ProcessId, msg: Vec<u8>) {
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
pub(super) fn same_group(groups: Option<&[Option<usize>]>, a: ProcessId, b: ProcessId) -> bool {
    let Some(groups) = groups else {
        return true;
    };
    if a == b {
        return true;
    }
    let group = |id: ProcessId| groups.get(id.index()).copied().flatten();
    match (group(a), group(b)) {
        (Some(x), Some(y)) => x == y,
        // Unlisted nodes are alone.
        _ => false,
    }
}

/// A Bernoulli draw with `p` clamped to `[0, 1]` (NaN is 0); certain
/// outcomes draw nothing.
pub(super) fn chance(rng: &mut SplitMix64, p: f64) -> bool {
    if p.is_nan() || p <= 0.0 {
        false
    } else if p >= 1.0 {
        true
    } else {
        rng.unit() < p
    }
}

/// Uniform in `[lo, hi]`; `lo` if the range is empty, with no draw.
pub(super) fn uniform(rng: &mut SplitMix64, lo: SimTime, hi: SimTime) -> SimTime {
    SimTime(rng.between(lo.0, hi.0))
}
