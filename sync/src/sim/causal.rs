//! A causal-cut checker for the delta path: runs [`DeltaNode`]s of a
//! keyed [`Store`] on a faulty network (loss, duplication, reordering,
//! partitions) and checks, after **every** event that changed a replica's
//! state, that the state is causally closed: for every write it shows,
//! it shows every write that happened before it (Lamport's happens-before:
//! program order at a replica, plus "was visible to the writer"), across
//! keys and across origins. The example of the brief is the canonical
//! violation: region A writes key `x` then key `y`, and region C shows
//! the new `y` without the new `x`; or, transitively, B sees A's `x` and
//! writes `z`, and C shows `z` without `x`.
//!
//! Each write `(origin, n)` creates a key of its own (holding a
//! [`GCounter`]), so a write is *visible* at a replica exactly when its
//! key is in the replica's store, and every dependency is across keys.
//! When a replica writes, the checker
//! records the write's dependency vector: the pointwise maximum of the
//! vectors of every write visible to the writer, and of its own previous
//! write (Fidge/Mattern vector clocks). A state is causally closed when,
//! with `P[o]` the longest prefix `1..=P[o]` of origin `o`'s writes it
//! shows, every write it shows has a vector below `P`. A write above `P`
//! is a [`CausalViolation`], naming the write shown and the one missing.
//!
//! The run also measures what causal delivery costs
//! ([`CausalReport`]): intervals held per replica (maximum and 99th
//! percentile, sampled after every event at the replica it touched), bytes
//! sent per write, and how long a write takes to become visible at each
//! other replica (`examples/causal_delivery.rs` prints them).
//!
//! With a small delta buffer ([`Config::max_buffer`]) and partitions,
//! neighbours fall behind the buffer and are repaired by Merkle sessions,
//! whose joins are in no buffer: without causal delivery a replica then
//! forwards a write without what it depends on, and the checker catches
//! it; with [`Config::with_causal_delivery`] every run is closed.
//!
//! ```
//! use accordant_sync::delta::CausalDelivery;
//! use accordant_sync::sim::causal::{check_causal, CausalCheckConfig};
//! let report = check_causal(&CausalCheckConfig::new(3).with_causal(Some(CausalDelivery::default())));
//! assert!(report.violations.is_empty(), "{:?}", report.violations);
//! assert!(report.converged);
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use accordant::{GCounter, ReplicaId};

use super::{DeltaNode, Event, LinkConfig, ProcessId, SimTime, Simulator};
use crate::delta::{CausalDelivery, Config, GMap, Replicator, Stats, Strategy};
use crate::rng::SplitMix64;
use crate::store::Store;

/// The replicas' state: one key per write (its id), holding a counter.
type State = Store<u32, GCounter>;
type Node = DeltaNode<State>;

/// One run's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CausalCheckConfig {
    /// Seeds the network, the nodes and the writes.
    pub seed: u64,
    /// Replicas, in a full mesh (at least 3 make relaying matter).
    pub replicas: usize,
    /// Writes per replica (below 2^16), each to a key of its own.
    pub writes: u64,
    /// Time between a replica's ticks (one write, one sync step).
    pub tick: SimTime,
    /// Message loss on every link.
    pub loss: f64,
    /// Message duplication on every link.
    pub duplicate: f64,
    /// Probability of delaying a message by up to 200 ms (reordering).
    pub reorder: f64,
    /// Probability, per 100 ms, of a new partition (one replica cut off)
    /// or of healing.
    pub partition: f64,
    /// The replicators' buffer cap ([`Config::max_buffer`]).
    pub max_buffer: usize,
    /// Pipelining ([`Config::resend_after`]).
    pub resend_after: u32,
    /// Causal delivery, or `None` for the plain replicator.
    pub causal: Option<CausalDelivery>,
}

impl CausalCheckConfig {
    /// Defaults: 4 replicas writing 30 times each, a tick of
    /// 50 ms, a WAN of 60 ms round trip with 10% loss, 5% duplication, 20%
    /// reordering, a partition change every second on average, a buffer
    /// of 6 entries, pipelining after 4 steps, causal delivery off.
    pub fn new(seed: u64) -> Self {
        CausalCheckConfig {
            seed,
            replicas: 4,
            writes: 30,
            tick: SimTime::from_millis(50),
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.2,
            partition: 0.1,
            max_buffer: 6,
            resend_after: 4,
            causal: None,
        }
    }

    /// Returns these settings with causal delivery set.
    pub fn with_causal(mut self, causal: Option<CausalDelivery>) -> Self {
        self.causal = causal;
        self
    }

    /// Returns these settings with the buffer cap set.
    pub fn with_max_buffer(mut self, entries: usize) -> Self {
        self.max_buffer = entries;
        self
    }

    /// Returns these settings with the number of replicas and writes per
    /// replica set.
    pub fn with_size(mut self, replicas: usize, writes: u64) -> Self {
        self.replicas = replicas;
        self.writes = writes;
        self
    }
}

/// A state that was not causally closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CausalViolation {
    /// The replica.
    pub replica: usize,
    /// When (virtual time).
    pub at: SimTime,
    /// The write it showed, `(origin, n)` (`n` counts from 1).
    pub shown: (usize, u64),
    /// A write that happened before it and that it did not show.
    pub missing: (usize, u64),
}

/// What a run observed and measured.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct CausalReport {
    /// Writes made.
    pub writes: u64,
    /// States checked (after every event that changed one).
    pub observations: u64,
    /// Simulator events run.
    pub events: u64,
    /// Virtual time when every replica showed every write (or the
    /// deadline).
    pub end: SimTime,
    /// Every replica shows every write at the end, after the heal.
    pub converged: bool,
    /// The first violations (at most 16 kept) and how many in all.
    pub violations: Vec<CausalViolation>,
    /// Violations in all.
    pub violation_count: u64,
    /// Held intervals at a replica after an event there: maximum and 99th
    /// percentile.
    pub held_max: usize,
    /// See [`held_max`](Self::held_max).
    pub held_p99: usize,
    /// Held bytes at a replica after an event there: maximum and 99th
    /// percentile.
    pub held_bytes_max: usize,
    /// See [`held_bytes_max`](Self::held_bytes_max).
    pub held_bytes_p99: usize,
    /// Milliseconds from a write to its visibility at another replica
    /// (one sample per write and replica): median, 99th percentile, max.
    pub visible_ms: [f64; 3],
    /// The replicators' statistics, added.
    pub stats: Stats,
}

/// Per write: its dependency vector (its own entry included) and when it
/// was made.
#[derive(Debug, Default)]
struct Registry {
    deps: HashMap<u32, Vec<u64>>,
    written: HashMap<u32, SimTime>,
    /// Per replica, the writes its state showed after the last event there
    /// (states only grow, and every event is checked).
    seen: Vec<BTreeSet<u32>>,
    now: SimTime,
    replicas: usize,
}

/// A write's id: its origin (below 2^16) and number (from 1, below 2^16).
fn write_id(origin: usize, n: u64) -> u32 {
    ((origin as u32 + 1) << 16) | (n as u32 & 0xffff)
}

fn split(id: u32) -> (usize, u64) {
    (((id >> 16) - 1) as usize, u64::from(id & 0xffff))
}

/// Every write a state shows: its keys (a counter is never bottom once
/// written). `before` is what it showed earlier (a state only grows):
/// only the other writes made so far are looked up.
fn visible(state: &State, reg: &Registry, before: &BTreeSet<u32>) -> BTreeSet<u32> {
    let mut shown = before.clone();
    if state.len() == before.len() {
        return shown;
    }
    for id in reg.written.keys() {
        if !before.contains(id) && state.get(id).is_some() {
            shown.insert(*id);
        }
    }
    shown
}

/// The write of `origin`'s `n`-th event (from 0): a new key holding a
/// counter, with its dependency vector recorded.
fn write(reg: &RefCell<Registry>, origin: usize, n: u64, state: &mut State) -> GMap<u32, GCounter> {
    let id = write_id(origin, n + 1);
    let mut reg = reg.borrow_mut();
    let mut vc = vec![0u64; reg.replicas];
    if n > 0 {
        if let Some(prev) = reg.deps.get(&write_id(origin, n)) {
            vc.clone_from(prev);
        }
    }
    for seen in &reg.seen[origin] {
        if let Some(d) = reg.deps.get(seen) {
            for (a, b) in vc.iter_mut().zip(d) {
                *a = (*a).max(*b);
            }
        }
    }
    vc[origin] = n + 1;
    reg.deps.insert(id, vc);
    let now = reg.now;
    reg.written.insert(id, now);
    let replica = ReplicaId::from_u128(origin as u128 + 1);
    match state.update(id, |c: &mut GCounter| c.increment(replica, 1)) {
        Ok(d) => GMap::single(id, d),
        Err(_) => GMap::new(),
    }
}

/// Checks one replica's state; returns its violations.
fn closed(
    reg: &Registry,
    replica: usize,
    at: SimTime,
    shown: &BTreeSet<u32>,
) -> Vec<CausalViolation> {
    let mut by_origin: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
    for id in shown {
        let (o, n) = split(*id);
        by_origin.entry(o).or_default().insert(n);
    }
    let prefix: Vec<u64> = (0..reg.replicas)
        .map(|o| {
            let ns = by_origin.get(&o);
            let mut p = 0;
            while ns.is_some_and(|s| s.contains(&(p + 1))) {
                p += 1;
            }
            p
        })
        .collect();
    let mut out = Vec::new();
    for id in shown {
        let Some(d) = reg.deps.get(id) else { continue };
        if let Some((o, _)) = d
            .iter()
            .zip(&prefix)
            .enumerate()
            .find(|(_, (need, have))| need > have)
        {
            out.push(CausalViolation {
                replica,
                at,
                shown: split(*id),
                missing: (o, prefix[o] + 1),
            });
        }
    }
    out
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs one check (see the [module docs](self)).
pub fn check_causal(cfg: &CausalCheckConfig) -> CausalReport {
    let n = cfg.replicas.max(1);
    let reg = Rc::new(RefCell::new(Registry {
        replicas: n,
        seen: vec![BTreeSet::new(); n],
        ..Registry::default()
    }));
    let mut sim: Simulator<Node> = Simulator::new(cfg.seed);
    sim.set_default_link(
        LinkConfig::wan(SimTime::from_millis(60))
            .with_loss(cfg.loss)
            .with_duplicate(cfg.duplicate)
            .with_reorder(cfg.reorder, SimTime::from_millis(200)),
    );
    let mut config = Config::new(Strategy::Delta { bp: true, rr: true })
        .with_max_buffer(cfg.max_buffer)
        .with_resend_after(cfg.resend_after);
    if let Some(c) = cfg.causal {
        config = config.with_causal_delivery(c);
    }
    let mut seeds = SplitMix64::new(cfg.seed ^ 0x00ca_05a1);
    for i in 0..n {
        let state = State::new();
        let inc = (seeds.next_u64() as u32) | 1;
        let mut rep = Replicator::new(config, inc, &state);
        for j in (0..n).filter(|&j| j != i) {
            rep.add_neighbour(ProcessId(j as u32));
        }
        let reg = reg.clone();
        let node = DeltaNode::new(state, rep, cfg.tick)
            .with_workload(cfg.writes, move |s: &mut State, e| write(&reg, i, e, s));
        sim.add_node(node);
    }
    let mut report = CausalReport::default();
    let mut faults = SplitMix64::new(cfg.seed ^ 0xfa17);
    let mut latencies = Vec::new();
    let mut held = Vec::new();
    let mut held_bytes = Vec::new();
    let total = cfg.writes * n as u64;
    let round = SimTime::from_millis(100);
    let mut next_fault = round;
    let deadline = cfg.tick * (cfg.writes + 400);
    let mut healed = false;
    while let Some(at) = sim.next_event_time() {
        if at > deadline {
            break;
        }
        let done = sim.nodes().all(|(_, x)| x.workload_done());
        if done && !healed {
            sim.heal();
            healed = true;
        }
        while !healed && at >= next_fault {
            next_fault += round;
            if faults.unit() < cfg.partition {
                let alone = faults.below(n as u64 + 1);
                if alone == n as u64 {
                    sim.heal();
                } else {
                    let me = [ProcessId(alone as u32)];
                    let rest: Vec<ProcessId> = (0..n as u32)
                        .filter(|&j| u64::from(j) != alone)
                        .map(ProcessId)
                        .collect();
                    sim.partition(&[&me, &rest]);
                }
            }
        }
        reg.borrow_mut().now = at;
        let node = match sim.step() {
            Some(Event::Delivered { to, .. }) => to,
            Some(Event::Timer { node, .. }) | Some(Event::Started { node, .. }) => node,
            None => break,
        };
        let i = node.index();
        let Some(x) = sim.node(node) else { continue };
        held.push(x.replicator().held_len() as f64);
        held_bytes.push(x.replicator().held_bytes() as f64);
        let mut reg = reg.borrow_mut();
        if x.state().len() == reg.seen[i].len() {
            continue;
        }
        let shown = visible(x.state(), &reg, &reg.seen[i]);
        report.observations += 1;
        {
            for v in closed(&reg, i, at, &shown) {
                report.violation_count += 1;
                if report.violations.len() < 16 {
                    report.violations.push(v);
                }
            }
            for id in shown.difference(&reg.seen[i]) {
                if split(*id).0 != i {
                    if let Some(t) = reg.written.get(id) {
                        latencies.push(at.0.saturating_sub(t.0) as f64 / 1000.0);
                    }
                }
            }
        }
        reg.seen[i] = shown;
        if healed && reg.seen.iter().all(|s| s.len() as u64 == total) {
            break;
        }
    }
    report.events = sim.stats().events;
    report.end = sim.now();
    report.writes = reg.borrow().deps.len() as u64;
    report.converged =
        report.writes == total && reg.borrow().seen.iter().all(|s| s.len() as u64 == total);
    for (_, x) in sim.nodes() {
        add(&mut report.stats, x.replicator().stats());
    }
    for v in [&mut held, &mut held_bytes, &mut latencies] {
        v.sort_by(f64::total_cmp);
    }
    report.held_max = held.last().copied().unwrap_or(0.0) as usize;
    report.held_p99 = percentile(&held, 0.99) as usize;
    report.held_bytes_max = held_bytes.last().copied().unwrap_or(0.0) as usize;
    report.held_bytes_p99 = percentile(&held_bytes, 0.99) as usize;
    report.visible_ms = [
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0.0),
    ];
    report
}

/// `total += s`, counter by counter (high-water marks: the maximum).
fn add(total: &mut Stats, s: &Stats) {
    total.messages_sent += s.messages_sent;
    total.bytes_sent += s.bytes_sent;
    total.payload_bytes_sent += s.payload_bytes_sent;
    total.groups_sent += s.groups_sent;
    total.states_sent += s.states_sent;
    total.acks_sent += s.acks_sent;
    total.session_messages_sent += s.session_messages_sent;
    total.groups_received += s.groups_received;
    total.groups_refused += s.groups_refused;
    total.state_transfers += s.state_transfers;
    total.sessions_started += s.sessions_started;
    total.sessions_completed += s.sessions_completed;
    total.entries_dropped += s.entries_dropped;
    total.groups_held += s.groups_held;
    total.held_applied += s.held_applied;
    total.held_dropped += s.held_dropped;
    total.held_max_entries = total.held_max_entries.max(s.held_max_entries);
    total.held_max_bytes = total.held_max_bytes.max(s.held_max_bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checker_flags_a_write_shown_without_its_cause() {
        let reg = RefCell::new(Registry {
            replicas: 2,
            seen: vec![BTreeSet::new(); 2],
            ..Registry::default()
        });
        let mut a = State::new();
        // A writes twice; B sees both and writes once.
        let _ = write(&reg, 0, 0, &mut a);
        let _ = write(&reg, 0, 1, &mut a);
        reg.borrow_mut().seen[1] = [write_id(0, 1), write_id(0, 2)].into();
        let mut b = a.clone();
        let _ = write(&reg, 1, 0, &mut b);
        let r = reg.borrow();
        let shown = visible(&b, &r, &BTreeSet::new());
        assert_eq!(shown.len(), 3);
        assert!(closed(&r, 1, SimTime::ZERO, &shown).is_empty());
        assert_eq!(r.deps[&write_id(1, 1)], vec![2, 1]);
        // Only A's second write: its first is missing.
        let only_second: BTreeSet<u32> = [write_id(0, 2)].into();
        assert_eq!(
            closed(&r, 2, SimTime::ZERO, &only_second),
            vec![CausalViolation {
                replica: 2,
                at: SimTime::ZERO,
                shown: (0, 2),
                missing: (0, 1)
            }]
        );
        // B's write without A's: transitively missing.
        let only_b: BTreeSet<u32> = [write_id(1, 1)].into();
        let v = closed(&r, 2, SimTime::ZERO, &only_b);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].missing, (0, 1));
    }
}
