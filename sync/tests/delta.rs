//! Delta replication (`accordant_sync::delta`) in the simulator:
//! convergence in every topology under loss, duplication and reordering;
//! BP and RR change the bytes, never the converged state; the fall-backs
//! (state transfer, Merkle session) after a partition longer than the
//! buffer, a new neighbour, a restart; hostile input.

use std::collections::BTreeSet;

use accordant::codec;
use accordant::{GCounter, Lattice, OrSet, ReplicaId};
use accordant_sync::delta::{Config, GMap, Replicator, Strategy};
use accordant_sync::sim::{DeltaNode, LinkConfig, ProcessId, RunOutcome, SimTime, Simulator};
use accordant_sync::store::Store;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const TICK: SimTime = SimTime::from_millis(20);

fn r(i: usize) -> ReplicaId {
    ReplicaId::from_u128(i as u128 + 1)
}

/// Undirected topologies as adjacency lists.
fn line(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            [i.checked_sub(1), (i + 1 < n).then_some(i + 1)]
                .into_iter()
                .flatten()
                .collect()
        })
        .collect()
}

fn ring(n: usize) -> Vec<Vec<usize>> {
    (0..n).map(|i| vec![(i + n - 1) % n, (i + 1) % n]).collect()
}

fn star(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| if i == 0 { (1..n).collect() } else { vec![0] })
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

/// Each node linked to the nodes 1 and 2 steps away on a ring: 4
/// neighbours, many cycles.
fn mesh(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let mut v: Vec<usize> = [n - 2, n - 1, 1, 2].iter().map(|d| (i + d) % n).collect();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect()
}

fn full(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| (0..n).filter(|&j| j != i).collect())
        .collect()
}

fn topologies() -> Vec<(&'static str, Vec<Vec<usize>>)> {
    vec![
        ("line", line(5)),
        ("ring", ring(6)),
        ("star", star(6)),
        ("tree", tree(7)),
        ("mesh", mesh(8)),
        ("full", full(5)),
    ]
}

fn faulty() -> LinkConfig {
    LinkConfig::lan()
        .with_latency(SimTime::from_millis(5))
        .with_jitter(SimTime::from_millis(2))
        .with_loss(0.15)
        .with_duplicate(0.1)
        .with_reorder(0.2, SimTime::from_millis(30))
}

/// A simulator with one node per vertex of `topo`, each holding `init(i)`
/// and running `workload(i)` for `events` ticks.
fn cluster<S, W>(
    seed: u64,
    link: LinkConfig,
    topo: &[Vec<usize>],
    config: Config,
    init: impl Fn(usize) -> S,
    events: u64,
    workload: impl Fn(usize) -> W,
) -> Simulator<DeltaNode<S>>
where
    S: accordant_sync::delta::ReplicaState + 'static,
    W: FnMut(&mut S, u64) -> S::Delta + 'static,
{
    let mut sim = Simulator::new(seed);
    sim.set_default_link(link);
    for (i, adj) in topo.iter().enumerate() {
        let state = init(i);
        let mut rep = Replicator::new(config, i as u32 + 1, &state);
        for &j in adj {
            rep.add_neighbour(ProcessId(j as u32));
        }
        sim.add_node(DeltaNode::new(state, rep, TICK).with_workload(events, workload(i)));
    }
    sim
}

fn all_equal<S: PartialEq + accordant_sync::delta::ReplicaState>(
    sim: &Simulator<DeltaNode<S>>,
) -> bool {
    let mut states = sim.nodes().map(|(_, n)| n.state());
    let first = states.next();
    states.all(|s| Some(s) == first)
}

fn done<S: accordant_sync::delta::ReplicaState>(sim: &Simulator<DeltaNode<S>>) -> bool {
    sim.nodes().all(|(_, n)| n.workload_done())
}

fn counter_workload(i: usize) -> impl FnMut(&mut GCounter, u64) -> GCounter {
    move |c, _| c.increment(r(i), 1).unwrap()
}

/// Adds `(i, n)` as `1000 i + n`, and every third event removes the element
/// it added just before: the final set depends only on the events.
fn set_workload(i: usize) -> impl FnMut(&mut OrSet<u32>, u64) -> OrSet<u32> {
    move |s, n| {
        if n % 3 == 2 {
            s.remove(&(1000 * i as u32 + n as u32 - 1))
        } else {
            s.add(r(i), 1000 * i as u32 + n as u32).unwrap()
        }
    }
}

fn expected_set(nodes: usize, events: u64) -> BTreeSet<u32> {
    (0..nodes as u32)
        .flat_map(|i| {
            (0..events as u32)
                .filter(|n| n % 3 == 0 || (n % 3 == 1 && *n + 1 == events as u32))
                .map(move |n| 1000 * i + n)
        })
        .collect()
}

#[test]
fn converges_in_every_topology_under_loss_duplication_reordering() {
    const EVENTS: u64 = 12;
    for (name, topo) in topologies() {
        let n = topo.len();
        for (k, strategy) in Strategy::ALL.into_iter().enumerate() {
            let config = Config::new(strategy);
            let mut sim = cluster(
                k as u64 * 31 + n as u64,
                faulty(),
                &topo,
                config,
                |_| GCounter::new(),
                EVENTS,
                counter_workload,
            );
            let want = EVENTS * n as u64;
            let outcome = sim.run_until(SimTime::from_secs(60), |s| {
                done(s) && s.nodes().all(|(_, x)| x.state().value() == want)
            });
            assert_eq!(
                outcome,
                RunOutcome::Condition,
                "GCounter, {name}, {strategy}"
            );
            let stats = sim.stats();
            assert!(stats.drops.lost > 0 && stats.total.messages_duplicated > 0);
            assert!(
                sim.nodes().all(|(_, x)| x.errors() == 0),
                "{name}, {strategy}"
            );

            let mut sim = cluster(
                k as u64 * 17 + n as u64,
                faulty(),
                &topo,
                config,
                |_| OrSet::new(),
                EVENTS,
                set_workload,
            );
            let want = expected_set(n, EVENTS);
            let outcome = sim.run_until(SimTime::from_secs(60), |s| {
                done(s)
                    && all_equal(s)
                    && s.node(ProcessId(0))
                        .is_some_and(|x| x.state().iter().copied().collect::<BTreeSet<_>>() == want)
            });
            assert_eq!(outcome, RunOutcome::Condition, "OrSet, {name}, {strategy}");
        }
    }
}

/// A map of counters over 40 shared keys: every event increments 3 random
/// keys (a seeded choice per node, independent of the network).
fn map_workload(i: usize) -> impl FnMut(&mut GMap<u32, GCounter>, u64) -> GMap<u32, GCounter> {
    let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
    let mut keys: Vec<u32> = (0..40).collect();
    move |m, _| {
        keys.shuffle(&mut rng);
        let mut d = GMap::new();
        for &k in &keys[..3] {
            d.join(&m.update(k, |c| c.increment(r(i), 1)).unwrap());
        }
        d
    }
}

/// Runs `topo` to convergence under `strategy` on a faultless LAN; returns
/// the converged state and the bytes sent.
fn converge_map(topo: &[Vec<usize>], strategy: Strategy) -> (GMap<u32, GCounter>, u64) {
    let mut sim = cluster(
        5,
        LinkConfig::lan(),
        topo,
        Config::new(strategy),
        |_| GMap::new(),
        25,
        map_workload,
    );
    let outcome = sim.run_until(SimTime::from_secs(60), |s| done(s) && all_equal(s));
    assert_eq!(outcome, RunOutcome::Condition, "{strategy}");
    let state = sim
        .node(ProcessId(0))
        .map(|x| x.state().clone())
        .unwrap_or_default();
    (state, sim.stats().total.bytes_sent)
}

#[test]
fn bp_and_rr_change_the_bytes_never_the_converged_state() {
    for (name, topo) in [("mesh", mesh(8)), ("tree", tree(7))] {
        let runs: Vec<(Strategy, GMap<u32, GCounter>, u64)> = Strategy::ALL
            .into_iter()
            .map(|s| {
                let (state, bytes) = converge_map(&topo, s);
                (s, state, bytes)
            })
            .collect();
        let total: u64 = runs[0].1.iter().map(|(_, c)| c.value()).sum();
        assert_eq!(total, 25 * 3 * topo.len() as u64, "no increment lost");
        for (s, state, _) in &runs {
            assert_eq!(state, &runs[0].1, "{name}: {s} converged elsewhere");
        }
        let bytes = |s: Strategy| runs.iter().find(|x| x.0 == s).map_or(0, |x| x.2);
        let classic = bytes(Strategy::Delta {
            bp: false,
            rr: false,
        });
        let bp = bytes(Strategy::Delta {
            bp: true,
            rr: false,
        });
        let rr = bytes(Strategy::Delta {
            bp: false,
            rr: true,
        });
        let both = bytes(Strategy::Delta { bp: true, rr: true });
        let state = bytes(Strategy::State);
        assert!(
            both < classic && both < state,
            "{name}: {runs:?}",
            runs = runs.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>()
        );
        assert!(rr < classic, "{name}");
        if name == "tree" {
            // No cycles: BP alone removes the redundancy.
            assert!(bp < classic);
            assert!(
                bp.abs_diff(both) * 10 < both,
                "{name}: bp {bp}, bp+rr {both}"
            );
        }
    }
}

fn store_config(max_buffer: usize) -> Config {
    Config::new(Strategy::Delta { bp: true, rr: true }).with_max_buffer(max_buffer)
}

type StoreNode = DeltaNode<Store<u32, GCounter>>;

fn store_workload(i: usize) -> impl FnMut(&mut Store<u32, GCounter>, u64) -> GMap<u32, GCounter> {
    move |s, n| {
        let key = (n as u32 * 7 + i as u32) % 50;
        GMap::single(key, s.update(key, |c| c.increment(r(i), 1)).unwrap())
    }
}

fn total(s: &Store<u32, GCounter>) -> u64 {
    s.iter().map(|(_, c)| c.value()).sum()
}

fn roots_equal(sim: &Simulator<StoreNode>) -> bool {
    let mut roots = sim.nodes().map(|(_, n)| n.state().root_digest());
    let first = roots.next();
    roots.all(|x| Some(x) == first)
}

#[test]
fn partitioned_neighbour_catches_up_through_the_merkle_fallback() {
    let topo = ring(5);
    let link = LinkConfig::lan()
        .with_latency(SimTime::from_millis(3))
        .with_loss(0.05)
        .with_duplicate(0.05);
    let mut sim = cluster(
        9,
        link,
        &topo,
        store_config(16),
        |_| Store::new(),
        80,
        store_workload,
    );
    let n: Vec<ProcessId> = (0..5).map(ProcessId).collect();
    // Node 4 is cut off for 45 ticks while everyone writes, longer than the
    // 16-entry buffers hold; writes go on for 30 ticks after the heal.
    sim.run_for(TICK * 5);
    sim.partition(&[&n[..4], &n[4..]]);
    sim.run_for(TICK * 45);
    for nb in [n[0], n[3]] {
        let node = sim.node(nb).unwrap();
        assert!(
            node.replicator().needs_fallback(n[4]),
            "the buffer no longer holds what n4 lacks"
        );
        assert!(node.replicator().stats().entries_dropped > 0);
    }
    assert!(sim.node(n[4]).unwrap().replicator().stats().entries_dropped > 0);
    sim.heal();
    let outcome = sim.run_until(SimTime::from_secs(60), |s| done(s) && roots_equal(s));
    if outcome != RunOutcome::Condition {
        for (id, x) in sim.nodes() {
            eprintln!(
                "{id}: total {} {:?}\n  {:?}",
                total(x.state()),
                x.replicator(),
                x.replicator().stats()
            );
        }
    }
    assert_eq!(outcome, RunOutcome::Condition);
    assert!(sim.nodes().all(|(_, x)| total(x.state()) == 80 * 5));
    let completed: u64 = sim
        .nodes()
        .map(|(_, x)| x.replicator().stats().sessions_completed)
        .sum();
    assert!(completed >= 2, "sessions: {completed}");
    for (id, x) in sim.nodes() {
        assert_eq!(x.errors(), 0, "{id}: {:?}", x.last_error());
    }

    // Once every repair is over, deltas carry the next writes again: no new
    // session.
    let repaired = |s: &Simulator<StoreNode>| {
        s.nodes().all(|(_, x)| {
            let rep = x.replicator();
            rep.sessions() == 0 && rep.neighbours().all(|p| !rep.needs_fallback(p))
        })
    };
    assert_eq!(
        sim.run_until(SimTime::from_secs(60), repaired),
        RunOutcome::Condition
    );
    let started = |sim: &Simulator<StoreNode>| -> u64 {
        sim.nodes()
            .map(|(_, x)| x.replicator().stats().sessions_started)
            .sum()
    };
    let before = started(&sim);
    for (i, &id) in n.iter().enumerate() {
        sim.poke(id, |node, _| {
            node.update(|s| {
                s.update(100, |c| c.increment(r(i), 1))
                    .map(|d| GMap::single(100, d))
            })
            .unwrap()
        });
    }
    let outcome = sim.run_until(SimTime::from_secs(60), |s| {
        s.nodes()
            .all(|(_, x)| x.state().get(&100).map(|c| c.value()) == Some(5))
    });
    assert_eq!(outcome, RunOutcome::Condition);
    assert_eq!(
        started(&sim),
        before,
        "deltas, not sessions, after the repair"
    );
}

#[test]
fn single_values_fall_back_to_a_state_transfer() {
    let topo = line(4);
    let config = Config::new(Strategy::Delta { bp: true, rr: true }).with_max_buffer(4);
    let mut sim = cluster(
        3,
        faulty(),
        &topo,
        config,
        |_| GCounter::new(),
        50,
        counter_workload,
    );
    let n: Vec<ProcessId> = (0..4).map(ProcessId).collect();
    sim.partition(&[&n[..2], &n[2..]]);
    sim.run_for(TICK * 30);
    assert!(sim.node(n[1]).unwrap().replicator().needs_fallback(n[2]));
    sim.heal();
    let outcome = sim.run_until(SimTime::from_secs(60), |s| {
        done(s) && s.nodes().all(|(_, x)| x.state().value() == 200)
    });
    assert_eq!(outcome, RunOutcome::Condition);
    let transfers: u64 = sim
        .nodes()
        .map(|(_, x)| x.replicator().stats().state_transfers)
        .sum();
    assert!(transfers >= 2);
}

#[test]
fn a_restarted_replica_catches_up_from_an_old_snapshot() {
    // The replica restarts from a snapshot taken mid-run, after its last
    // write (a counter replica must not write again from a stale state under
    // the same id). Its neighbours see a new incarnation and repair it.
    let topo = mesh(6);
    let config = Config::new(Strategy::Delta { bp: true, rr: true }).with_max_buffer(16);
    let mut sim = cluster(
        4,
        faulty(),
        &topo,
        config,
        |_| GCounter::new(),
        20,
        counter_workload,
    );
    sim.run_for(TICK * 10);
    let snapshot = sim.node(ProcessId(2)).unwrap().state().clone();
    let outcome = sim.run_until(SimTime::from_secs(60), |s| {
        done(s) && s.nodes().all(|(_, x)| x.state().value() == 20 * 6)
    });
    assert_eq!(outcome, RunOutcome::Condition);
    assert!(snapshot.value() < 20 * 6);
    sim.poke(ProcessId(2), |node, _| node.restart(snapshot, 77));
    let outcome = sim.run_until(SimTime::from_secs(60), |s| {
        s.nodes().all(|(_, x)| x.state().value() == 20 * 6)
    });
    assert_eq!(outcome, RunOutcome::Condition);
    sim.run_for(TICK * 10);
    let restarts: u64 = sim
        .nodes()
        .map(|(_, x)| x.replicator().stats().peer_restarts)
        .sum();
    assert_eq!(
        restarts, 4,
        "each of its 4 neighbours saw the new incarnation"
    );

    // A store: the neighbours repair it with Merkle sessions.
    let mut sim = cluster(
        6,
        faulty(),
        &topo,
        store_config(16),
        |_| Store::new(),
        20,
        store_workload,
    );
    sim.run_for(TICK * 10);
    let snapshot = sim.node(ProcessId(2)).unwrap().state().clone();
    let outcome = sim.run_until(SimTime::from_secs(60), |s| done(s) && roots_equal(s));
    assert_eq!(outcome, RunOutcome::Condition);
    // Sessions completed by the neighbours (the restarted node's own
    // replicator starts its statistics afresh).
    let sessions = |sim: &Simulator<StoreNode>| -> u64 {
        sim.nodes()
            .filter(|(id, _)| *id != ProcessId(2))
            .map(|(_, x)| x.replicator().stats().sessions_completed)
            .sum()
    };
    let before = sessions(&sim);
    sim.poke(ProcessId(2), |node, _| node.restart(snapshot, 78));
    let outcome = sim.run_until(SimTime::from_secs(60), roots_equal);
    assert_eq!(outcome, RunOutcome::Condition);
    assert!(sim.nodes().all(|(_, x)| total(x.state()) == 20 * 6));
    assert!(sessions(&sim) > before);
}

/// Drives replicators by hand: `deliver` moves every queued message.
fn deliver(reps: &mut [Replicator<GCounter, usize>], states: &mut [GCounter]) {
    loop {
        let mut moved = false;
        for i in 0..reps.len() {
            while let Some(t) = reps[i].poll_transmit() {
                reps[t.to].receive(&mut states[t.to], i, &t.bytes).unwrap();
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

fn pair(strategy: Strategy) -> (Vec<Replicator<GCounter, usize>>, Vec<GCounter>) {
    let states = vec![GCounter::new(); 2];
    let mut reps: Vec<Replicator<GCounter, usize>> = (0..2)
        .map(|i| Replicator::new(Config::new(strategy), i as u32 + 1, &states[i]))
        .collect();
    reps[0].add_neighbour(1);
    reps[1].add_neighbour(0);
    (reps, states)
}

#[test]
fn bp_never_sends_a_delta_back_and_acks_empty_the_buffer() {
    let (mut reps, mut states) = pair(Strategy::Delta {
        bp: true,
        rr: false,
    });
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 5))
        .unwrap();
    reps[0].sync_step(&states[0]);
    deliver(&mut reps, &mut states);
    assert_eq!(states[1].value(), 5);
    assert_eq!(reps[1].buffer_len(), 0, "only 0 needed it, and 0 sent it");
    reps[1].sync_step(&states[1]);
    assert!(reps[1].poll_transmit().is_none(), "BP: nothing goes back");
    assert_eq!(reps[0].buffer_len(), 0, "acknowledged");

    // Without BP the delta goes back (and is redundant there).
    let (mut reps, mut states) = pair(Strategy::Delta {
        bp: false,
        rr: false,
    });
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 5))
        .unwrap();
    reps[0].sync_step(&states[0]);
    deliver(&mut reps, &mut states);
    reps[1].sync_step(&states[1]);
    deliver(&mut reps, &mut states);
    assert_eq!(reps[0].stats().groups_redundant, 1);
    assert_eq!(reps[0].buffer_len() + reps[1].buffer_len(), 0);
}

/// In a triangle, 0 increments and syncs; then 2 increments and sends 1 a
/// group holding 0's entry (which 1 already has) and its own. Returns the
/// message 1 then sends 0, and 1's state.
fn triangle_forward(rr: bool) -> (Vec<u8>, GCounter) {
    let mut states = vec![GCounter::new(); 3];
    let config = Config::new(Strategy::Delta { bp: true, rr });
    let mut reps: Vec<Replicator<GCounter, usize>> = (0..3)
        .map(|i| Replicator::new(config, i as u32 + 1, &states[i]))
        .collect();
    for (a, b) in [(0, 1), (1, 2), (2, 0)] {
        reps[a].add_neighbour(b);
        reps[b].add_neighbour(a);
    }
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 5))
        .unwrap();
    reps[0].sync_step(&states[0]);
    deliver(&mut reps, &mut states);
    reps[2]
        .update(&mut states[2], |c| c.increment(r(2), 1))
        .unwrap();
    reps[2].sync_step(&states[2]);
    while let Some(t) = reps[2].poll_transmit() {
        if t.to == 1 {
            reps[1].receive(&mut states[1], 2, &t.bytes).unwrap();
        }
    }
    while reps[1].poll_transmit().is_some() {} // the ack
    reps[1].sync_step(&states[1]);
    let to_0 = std::iter::from_fn(|| reps[1].poll_transmit())
        .find(|t| t.to == 0)
        .map(|t| t.bytes)
        .unwrap_or_default();
    (to_0, states[1].clone())
}

#[test]
fn rr_buffers_only_what_inflates() {
    let (classic, s1) = triangle_forward(false);
    let (rr, s2) = triangle_forward(true);
    assert_eq!(s1, s2);
    assert_eq!(s1.value(), 6);
    // Classic delta forwards 0's entry back towards 0 inside 2's group (BP
    // only leaves out what came from 0 itself); RR kept only r(2).
    let both = GCounter::new()
        .joined(&GCounter::new().increment(r(0), 5).unwrap())
        .joined(&GCounter::new().increment(r(2), 1).unwrap());
    let only_new = GCounter::new().increment(r(2), 1).unwrap();
    assert_eq!(
        classic.len() - rr.len(),
        codec::encoded_len(&both) - codec::encoded_len(&only_new)
    );
}

#[test]
fn a_new_neighbour_after_garbage_collection_gets_the_state() {
    let (mut reps, mut states) = pair(Strategy::Delta { bp: true, rr: true });
    for _ in 0..3 {
        reps[0]
            .update(&mut states[0], |c| c.increment(r(0), 1))
            .unwrap();
        reps[0].sync_step(&states[0]);
        deliver(&mut reps, &mut states);
    }
    assert_eq!(reps[0].buffer_len(), 0, "collected");
    // A third replica joins 0.
    states.push(GCounter::new());
    let mut third = Replicator::new(Config::default(), 3, &states[2]);
    third.add_neighbour(0);
    reps.push(third);
    reps[0].add_neighbour(2);
    assert!(reps[0].needs_fallback(2));
    reps[0].sync_step(&states[0]);
    deliver(&mut reps, &mut states);
    assert_eq!(states[2].value(), 3);
    assert_eq!(reps[0].stats().state_transfers, 1);
    assert!(!reps[0].needs_fallback(2));
    // Deltas from then on.
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 1))
        .unwrap();
    reps[0].sync_step(&states[0]);
    deliver(&mut reps, &mut states);
    assert_eq!(states[2].value(), 4);
    assert_eq!(reps[0].stats().state_transfers, 1);
}

#[test]
fn state_mode_ships_whole_states_without_acks() {
    let (mut reps, mut states) = pair(Strategy::State);
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 2))
        .unwrap();
    reps[1]
        .update(&mut states[1], |c| c.increment(r(1), 3))
        .unwrap();
    for i in 0..2 {
        reps[i].sync_step(&states[i]);
    }
    deliver(&mut reps, &mut states);
    assert!(states.iter().all(|s| s.value() == 5));
    assert_eq!(reps[0].stats().acks_sent + reps[1].stats().acks_sent, 0);
    assert_eq!(reps[0].buffer_len(), 0);
    // Every step ships the state again, changed or not.
    reps[0].sync_step(&states[0]);
    assert!(reps[0].poll_transmit().is_some());
}

#[test]
fn hostile_messages_change_nothing() {
    let (mut reps, mut states) = pair(Strategy::Delta { bp: true, rr: true });
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 9))
        .unwrap();
    reps[0].sync_step(&states[0]);
    let good = reps[0].poll_transmit().unwrap().bytes;
    let before = (states[1].clone(), reps[1].buffer_len(), reps[1].acked(0));
    let mut bad: Vec<Vec<u8>> = vec![
        vec![],
        vec![9],
        good[..good.len() - 1].to_vec(),
        [good.as_slice(), &[0]].concat(),
    ];
    let mut wrong_version = good.clone();
    wrong_version[0] = 2;
    bad.push(wrong_version);
    // A payload whose counter entry is zero: non-canonical.
    let mut zero = good.clone();
    let last = zero.len() - 1;
    zero[last] = 0;
    bad.push(zero);
    for msg in &bad {
        assert!(reps[1].receive(&mut states[1], 0, msg).is_err(), "{msg:?}");
        assert_eq!(
            (states[1].clone(), reps[1].buffer_len(), reps[1].acked(0)),
            before
        );
        assert!(
            reps[1].poll_transmit().is_none(),
            "no ack for a rejected message"
        );
    }
    // A stranger.
    assert!(reps[1].receive(&mut states[1], 7, &good).is_err());
    assert_eq!(states[1], before.0);
    // The genuine message still works, twice (a duplicate is harmless).
    reps[1].receive(&mut states[1], 0, &good).unwrap();
    reps[1].receive(&mut states[1], 0, &good).unwrap();
    assert_eq!(states[1].value(), 9);
    assert_eq!(reps[1].stats().groups_redundant, 1);
}

#[test]
fn pipelining_sends_each_entry_once_and_recovers_a_lost_interval() {
    let states = vec![GCounter::new(); 2];
    let config = Config::default().with_resend_after(5);
    let mut states = states;
    let mut reps: Vec<Replicator<GCounter, usize>> = (0..2)
        .map(|i| Replicator::new(config, i as u32 + 1, &states[i]))
        .collect();
    reps[0].add_neighbour(1);
    reps[1].add_neighbour(0);
    // Three steps with one write each, acks held back (in flight): each
    // interval carries only the new write.
    let mut in_flight = Vec::new();
    for _ in 0..3 {
        reps[0]
            .update(&mut states[0], |c| c.increment(r(0), 1))
            .unwrap();
        reps[0].sync_step(&states[0]);
        in_flight.extend(std::iter::from_fn(|| reps[0].poll_transmit()));
    }
    assert_eq!(in_flight.len(), 3);
    let one = in_flight[0].bytes.len();
    assert!(
        in_flight.iter().all(|t| t.bytes.len() <= one + 2),
        "no interval repeats an earlier one"
    );
    // A step with nothing new sends nothing while acks are pending.
    reps[0].sync_step(&states[0]);
    assert!(reps[0].poll_transmit().is_none());
    // The first interval is lost; the next two reach 1, which refuses them
    // (a gap) and says so: 0 resends from 1's ack at the next step.
    for t in &in_flight[1..] {
        reps[1].receive(&mut states[1], 0, &t.bytes).unwrap();
    }
    assert_eq!(reps[1].stats().groups_refused, 2);
    deliver(&mut reps, &mut states);
    reps[0].sync_step(&states[0]);
    deliver(&mut reps, &mut states);
    assert_eq!(states[1].value(), 3);
    assert_eq!(reps[0].buffer_len(), 0, "all acknowledged");
    assert_eq!(reps[0].stats().resends, 0, "the refusal, not the timeout");

    // A lost interval whose ack never comes is resent after `resend_after`
    // quiet steps, not before.
    reps[0]
        .update(&mut states[0], |c| c.increment(r(0), 1))
        .unwrap();
    reps[0].sync_step(&states[0]);
    assert!(reps[0].poll_transmit().is_some(), "sent, then lost");
    for step in 1..=6 {
        reps[0].sync_step(&states[0]);
        let sent = reps[0].poll_transmit();
        assert_eq!(sent.is_some(), step == 6, "step {step}");
        if let Some(t) = sent {
            reps[1].receive(&mut states[1], 0, &t.bytes).unwrap();
        }
    }
    deliver(&mut reps, &mut states);
    assert_eq!(states[1].value(), 4);
    assert_eq!(reps[0].stats().resends, 1);
}
