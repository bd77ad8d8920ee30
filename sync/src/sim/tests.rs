//! Tests of the simulator.

use super::*;
use core::num::NonZeroU64;
use core::time::Duration;

use crate::rng::SplitMix64;

/// Records every delivery and timer; sends nothing by itself.
#[derive(Debug, Default)]
struct Recorder {
    got: Vec<(SimTime, ProcessId, Vec<u8>)>,
    timers: Vec<(SimTime, u64)>,
}

impl Process for Recorder {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: ProcessId, msg: Vec<u8>) {
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

impl Process for Gossip {
    fn on_start(&mut self, ctx: &mut Ctx<'_>) {
        ctx.set_timer(self.period, 0);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_>, _from: ProcessId, msg: Vec<u8>) {
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
        let peer = ProcessId(ctx.random_below(u64::from(n)) as u32);
        if peer != ctx.id() {
            ctx.send(peer, self.value.to_le_bytes().to_vec());
        }
        let period = self.period;
        ctx.set_timer(period, 0);
    }
}

fn ids(n: u32) -> Vec<ProcessId> {
    (0..n).map(ProcessId).collect()
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
        if sim.now() >= SimTime::from_millis(100) && sim.node(ProcessId(2)).unwrap().value < 99 {
            sim.poke(ProcessId(2), |n, ctx| {
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
    let [a, b] = [ProcessId(0), ProcessId(1)];
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
    let a = ProcessId(0);
    sim.set_timer(a, SimTime::from_millis(5), 2);
    sim.set_timer(a, SimTime::from_millis(1), 1);
    sim.set_timer(a, SimTime::from_millis(5), 3);
    sim.set_timer(ProcessId(9), SimTime::ZERO, 4); // unknown: ignored
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
        sim.send_from(ProcessId(0), ProcessId(1), i.to_le_bytes().to_vec());
        sim.run_for(SimTime::from_micros(100));
    }
    sim.run_until_idle(SimTime::MAX);
    let got = &sim.node(ProcessId(1)).unwrap().got;
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
        sim.send_from(ProcessId(0), ProcessId(1), vec![0; 10]);
    }
    sim.run_until_idle(SimTime::MAX);
    let s = sim.stats();
    let delivered = sim.node(ProcessId(1)).unwrap().got.len() as u64;
    // Binomial(10 000, 0.1): sd = 30; allow 5 sd.
    assert!(
        (850..=1150).contains(&s.drops.lost),
        "lost {}",
        s.drops.lost
    );
    assert_eq!(delivered + s.drops.lost, N);
    assert_eq!(s.total.messages_delivered, delivered);
    let link = sim.link_stats(ProcessId(0), ProcessId(1));
    assert_eq!(link.messages_sent, N);
    assert_eq!(link.bytes_sent, 10 * N);
    assert_eq!(link.messages_dropped, s.drops.lost);
    assert_eq!(sim.node_stats(ProcessId(0)).unwrap().outgoing, link);
    assert_eq!(sim.node_stats(ProcessId(1)).unwrap().incoming, link);
    assert_conserved(&s.total, 0);
}

#[test]
fn duplication_delivers_twice() {
    let mut sim = recorders(5, 2, LinkConfig::lan().with_duplicate(1.0));
    for i in 0..10u8 {
        sim.send_from(ProcessId(0), ProcessId(1), vec![i]);
    }
    sim.run_until_idle(SimTime::MAX);
    let got = &sim.node(ProcessId(1)).unwrap().got;
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
    let n: Vec<ProcessId> = (0..5)
        .map(|_| {
            sim.add_node(Gossip {
                value: 0,
                period: SimTime::from_millis(20),
            })
        })
        .collect();
    sim.partition(&[&n[..2], &n[2..]]);
    let write = |sim: &mut Simulator<Gossip>, id: ProcessId, v: u64| {
        sim.poke(id, |node, ctx| {
            node.value = v;
            node.push_all(ctx);
        })
    };
    write(&mut sim, n[0], 100);
    write(&mut sim, n[3], 50);
    let deadline = SimTime::from_secs(30);
    let agree = |sim: &Simulator<Gossip>, ids: &[ProcessId], v: u64| {
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
    let draws = |loss: f64| {
        let mut sim = recorders(9, 2, LinkConfig::lan().with_loss(loss));
        for _ in 0..100 {
            sim.send_from(ProcessId(0), ProcessId(1), vec![0]);
        }
        sim.run_until_idle(SimTime::MAX);
        sim.poke(ProcessId(0), |_, ctx| [ctx.random_u64(), ctx.random_u64()])
    };
    // Network faults do not shift the nodes' draws...
    assert_eq!(draws(0.5), draws(0.0));
    // ...and the nodes do not see the fault stream.
    let mut net = SplitMix64::new(9);
    assert_ne!(draws(0.0), Some([net.next_u64(), net.next_u64()]));
}

/// Replies to every message at once, forever.
struct Echo;

impl Process for Echo {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, from: ProcessId, msg: Vec<u8>) {
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
    let [a, b, ghost] = [ProcessId(0), ProcessId(1), ProcessId(u32::MAX)];
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
