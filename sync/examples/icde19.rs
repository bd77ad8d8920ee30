//! The micro-benchmarks of Enes, Almeida, Baquero and Leitão, "Efficient
//! Synchronization of State-based CRDTs" (ICDE 2019), in the simulator.
//!
//! ```text
//! cargo run --release -p accordant-sync --example icde19 [-- --events N]
//! ```
//!
//! 15 replicas, each with its own copy of one CRDT, in a partial mesh
//! (every replica has 4 neighbours: the ring neighbours 1 and 4 steps away,
//! which is the authors' 15-node mesh) and in a tree (a binary tree: the
//! root has 2 neighbours, inner replicas 3, leaves 1, the degrees of the
//! authors' 15-node tree). Every replica ticks once a second, from a seeded
//! random phase: at each of its first 100 ticks it runs one update event,
//! and at every tick one sync step with each neighbour. A run ends when
//! every replica holds every event; links are a faultless LAN (250 µs).
//!
//! Workloads (after the authors' experiment code, `exp_simulations.erl`):
//!
//! - `gset`: each event adds a new element, `(replica, event)`;
//! - `gcounter`: each event increments the replica's entry;
//! - `gmap10`, `gmap100`: a grow-only map of 1000 keys split evenly between
//!   the replicas (67 each, 62 for the last); each event increments, at
//!   10% or 100% of the replica's own keys (7 or 67 keys, chosen at
//!   random), the replica's entry of the key's counter. The map is
//!   [`GMap<u32, GCounter>`]: grow-only, keys never removed, as in the
//!   paper (an `OrMap` of causal counters would add a dot per increment and
//!   a causal context, which the paper's GMap does not have).
//!
//! Sync modes: `state` ships the whole state to every neighbour at every
//! step; `delta` is classic delta-based synchronisation (delta buffer,
//! delta-intervals, acks); `delta_bp`, `delta_rr`, `delta_bp_rr` add the
//! paper's two optimisations.
//!
//! Output: CSV on stdout, `workload,topology,sync,bytes,messages,cpu_ms`:
//! bytes and messages of every message sent until convergence (headers and
//! acks included), and the CPU time of the whole simulated run (all 15
//! replicas: encoding, decoding, joins, decompositions, the simulator
//! itself). On stderr, per workload and topology, the ratios of classic
//! delta and of state-based bytes to BP+RR bytes, in total bytes and in
//! CRDT payload bytes only (the paper counts the CRDT state transmitted, not
//! headers or acks).

use std::collections::BTreeSet;
use std::time::Instant;

use accordant::codec::{Budget, Canonical, SeqVec};
use accordant::{DecodeError, Decompose, GCounter, Lattice, ReplicaId};
use accordant_sync::delta::{Config, GMap, ReplicaState, Replicator, Strategy};
use accordant_sync::sim::Workload;
use accordant_sync::sim::{DeltaNode, LinkConfig, ProcessId, SimTime, Simulator};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;

const REPLICAS: usize = 15;
const KEYS: usize = 1000;
const SEED: u64 = 2019;

/// The G-Set workload's set: elements are `(replica, event)`.
type Set = GSet<(u32, u32)>;
/// The GMap workload's map.
type Map = GMap<u32, GCounter>;

/// A grow-only set.
#[derive(Clone, PartialEq, Eq, Debug)]
struct GSet<E>(BTreeSet<E>);

impl<E> Default for GSet<E> {
    fn default() -> Self {
        GSet(BTreeSet::new())
    }
}

impl<E: Ord + Clone> GSet<E> {
    /// Adds `e`; returns the delta (`{e}`, or nothing if it was there).
    fn add(&mut self, e: E) -> Self {
        if self.0.insert(e.clone()) {
            GSet(BTreeSet::from([e]))
        } else {
            GSet::default()
        }
    }
}

impl<E: Ord + Clone> Lattice for GSet<E> {
    fn join(&mut self, other: &Self) {
        self.0.extend(other.0.iter().cloned());
    }

    fn join_owned(&mut self, mut other: Self) {
        self.0.append(&mut other.0);
    }
}

impl<E: Ord + Clone> Decompose for GSet<E> {
    fn decompose(&self) -> Vec<Self> {
        self.0
            .iter()
            .map(|e| GSet(BTreeSet::from([e.clone()])))
            .collect()
    }

    fn delta(&self, other: &Self) -> Self {
        GSet(self.0.difference(&other.0).cloned().collect())
    }
}

impl<E: Ord + Clone + Serialize + DeserializeOwned> Canonical for GSet<E> {
    type Wire = SeqVec<E>;

    fn to_wire(&self) -> Self::Wire {
        SeqVec(self.0.iter().cloned().collect())
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !wire.0.windows(2).all(|w| w[0] < w[1]) {
            return Err(DecodeError::NonCanonical("set elements not sorted"));
        }
        Ok(GSet(wire.0.into_iter().collect()))
    }
}

/// The authors' 15-node partial mesh: ring neighbours 1 and 4 steps away.
fn partial_mesh(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let mut v: Vec<usize> = [1, 4, n - 4, n - 1].iter().map(|d| (i + d) % n).collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// A binary tree in heap order.
fn tree(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let parent = (i > 0).then(|| (i - 1) / 2);
            parent
                .into_iter()
                .chain([2 * i + 1, 2 * i + 2].into_iter().filter(|&c| c < n))
                .collect()
        })
        .collect()
}

fn replica(i: usize) -> ReplicaId {
    ReplicaId::from_u128(i as u128 + 1)
}

/// The keys replica `i` owns: an even split of `KEYS`.
fn owned_keys(i: usize) -> Vec<u32> {
    let per = KEYS.div_ceil(REPLICAS);
    ((i * per).min(KEYS)..((i + 1) * per).min(KEYS))
        .map(|k| k as u32)
        .collect()
}

/// Keys replica `i` touches per event at `pct` percent.
fn keys_per_event(i: usize, pct: usize) -> usize {
    (pct * KEYS.div_ceil(REPLICAS))
        .div_ceil(100)
        .min(owned_keys(i).len())
}

/// The CPU time this thread has used, in nanoseconds (Linux schedstat), or
/// `None` where that is not available. The kernel brings the counter up to
/// date when the thread is switched out, so yield first: without it the
/// reading lags by up to a scheduler tick (4 ms here).
fn thread_cpu_ns() -> Option<u64> {
    std::thread::yield_now();
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Row {
    workload: &'static str,
    topology: &'static str,
    sync: Strategy,
    bytes: u64,
    messages: u64,
    payload: u64,
    cpu_ms: f64,
    converged_at: SimTime,
}

/// Runs one configuration to convergence.
fn run<S, W>(
    topo: &[Vec<usize>],
    strategy: Strategy,
    events: u64,
    workload: impl Fn(usize) -> W,
    complete: impl Fn(&S) -> bool,
) -> (u64, u64, u64, f64, SimTime)
where
    S: ReplicaState + Default + PartialEq + 'static,
    W: FnMut(&mut S, u64) -> S::Delta + 'static,
{
    let cpu0 = thread_cpu_ns();
    let wall0 = Instant::now();
    let mut sim = Simulator::new(SEED);
    sim.set_default_link(LinkConfig::lan());
    let config = Config::new(strategy);
    for (i, adj) in topo.iter().enumerate() {
        let state = S::default();
        let mut rep = Replicator::new(config, i as u32 + 1, &state);
        for &j in adj {
            rep.add_neighbour(ProcessId(j as u32));
        }
        sim.add_node(
            DeltaNode::new(state, rep, SimTime::from_secs(1)).with_workload(events, workload(i)),
        );
    }
    let deadline = SimTime::from_secs(events + 1000);
    loop {
        sim.run_for(SimTime::from_millis(100));
        let done = sim
            .nodes()
            .all(|(_, n)| n.workload_done() && complete(n.state()));
        if done {
            let first = sim.node(ProcessId(0)).map(|n| n.state());
            if sim.nodes().all(|(_, n)| Some(n.state()) == first) {
                break;
            }
        }
        assert!(sim.now() < deadline, "{strategy}: no convergence");
    }
    let cpu_ms = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 / 1e6,
        _ => wall0.elapsed().as_secs_f64() * 1e3,
    };
    let stats = sim.stats();
    let payload = sim
        .nodes()
        .map(|(_, n)| n.replicator().stats().payload_bytes_sent)
        .sum();
    assert!(sim.nodes().all(|(_, n)| n.errors() == 0));
    (
        stats.total.bytes_sent,
        stats.total.messages_sent,
        payload,
        cpu_ms,
        sim.now(),
    )
}

fn gset(i: usize) -> impl FnMut(&mut Set, u64) -> Set {
    move |s, n| s.add((i as u32, n as u32))
}

fn gcounter(i: usize) -> impl FnMut(&mut GCounter, u64) -> GCounter {
    let r = replica(i);
    move |c, _| c.increment(r, 1).unwrap_or_default()
}

fn gmap(pct: usize) -> impl Fn(usize) -> Workload<Map> {
    move |i| {
        let r = replica(i);
        let mut keys = owned_keys(i);
        let take = keys_per_event(i, pct);
        let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ i as u64);
        Box::new(move |m, _| {
            keys.shuffle(&mut rng);
            let mut delta = GMap::new();
            for &k in &keys[..take] {
                if let Ok(d) = m.update(k, |c| c.increment(r, 1)) {
                    delta.join_owned(d);
                }
            }
            delta
        })
    }
}

fn main() {
    let mut events: u64 = 100;
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--events" => events = args.next().and_then(|v| v.parse().ok()).unwrap_or(events),
            "--workload" => only = args.next(),
            _ => {
                eprintln!("usage: icde19 [--events N] [--workload gset|gcounter|gmap10|gmap100]");
                std::process::exit(2);
            }
        }
    }
    let topologies: [(&'static str, Vec<Vec<usize>>); 2] = [
        ("partial_mesh", partial_mesh(REPLICAS)),
        ("tree", tree(REPLICAS)),
    ];
    let all_events = REPLICAS as u64 * events;
    let map_total = |pct: usize| -> u64 {
        (0..REPLICAS)
            .map(|i| keys_per_event(i, pct) as u64 * events)
            .sum()
    };

    println!("workload,topology,sync,bytes,messages,cpu_ms");
    let mut rows: Vec<Row> = Vec::new();
    for workload in ["gset", "gcounter", "gmap10", "gmap100"] {
        if only.as_deref().is_some_and(|o| o != workload) {
            continue;
        }
        for (topology, topo) in &topologies {
            for sync in Strategy::ALL {
                let (bytes, messages, payload, cpu_ms, converged_at) = match workload {
                    "gset" => run(topo, sync, events, gset, |s: &Set| {
                        s.0.len() as u64 == all_events
                    }),
                    "gcounter" => run(topo, sync, events, gcounter, |c: &GCounter| {
                        c.value() == all_events
                    }),
                    _ => {
                        let pct = if workload == "gmap10" { 10 } else { 100 };
                        let want = map_total(pct);
                        run(topo, sync, events, gmap(pct), move |m: &Map| {
                            m.iter().map(|(_, c)| c.value()).sum::<u64>() == want
                        })
                    }
                };
                println!("{workload},{topology},{sync},{bytes},{messages},{cpu_ms:.1}");
                rows.push(Row {
                    workload,
                    topology,
                    sync,
                    bytes,
                    messages,
                    payload,
                    cpu_ms,
                    converged_at,
                });
            }
        }
    }

    // Ratios to BP+RR, for the note.
    eprintln!();
    eprintln!(
        "{:<9} {:<13} {:>12} {:>12} {:>14} {:>14} {:>10}",
        "workload",
        "topology",
        "delta/bp_rr",
        "state/bp_rr",
        "payload delta",
        "payload state",
        "converged"
    );
    for chunk in rows.chunks(Strategy::ALL.len()) {
        let find = |s: Strategy| chunk.iter().find(|r| r.sync == s);
        let (Some(state), Some(classic), Some(both)) = (
            find(Strategy::State),
            find(Strategy::Delta {
                bp: false,
                rr: false,
            }),
            find(Strategy::Delta { bp: true, rr: true }),
        ) else {
            continue;
        };
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        eprintln!(
            "{:<9} {:<13} {:>12.2} {:>12.2} {:>14.2} {:>14.2} {:>9.0}s",
            both.workload,
            both.topology,
            ratio(classic.bytes, both.bytes),
            ratio(state.bytes, both.bytes),
            ratio(classic.payload, both.payload),
            ratio(state.payload, both.payload),
            chunk
                .iter()
                .map(|r| r.converged_at)
                .max()
                .unwrap_or_default()
                .as_secs_f64(),
        );
        let _ = (state.messages, state.cpu_ms);
    }
}
