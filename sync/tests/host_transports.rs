//! One session host, two transports, the same assertions.
//!
//! The simulator's anti-entropy process and the TCP node's connections both
//! run their sessions through `SessionHost`. Each scenario here builds the
//! same two diverged stores, lets one transport reconcile them, and checks
//! the same things of the outcome: equal stores holding the union of both
//! sides' writes, exactly one session completed on each side (initiated on
//! one, answered on the other), and no session failed, timed out or was
//! refused. A host detail that behaved differently on the wire than in the
//! simulator would fail one half of a scenario and not the other.

use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::delta::NaivePush;
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::{NodeBuilder, NodeConfig, TlsIdentity};
use accordant_sync::sim::{AntiEntropyConfig, AntiEntropyNode, ProcessId, SimTime, Simulator};
use accordant_sync::store::Store;

type S = Store<u32, GCounter>;

/// Two stores that share 300 keys, then diverge: each side increments 40
/// keys of its own and 20 keys both sides touch.
fn diverged() -> (S, S) {
    let (ra, rb, base) = (
        ReplicaId::from_u128(1),
        ReplicaId::from_u128(2),
        ReplicaId::from_u128(3),
    );
    let mut a = S::new();
    for k in 0..300 {
        let _ = a.update(k, |c| c.increment(base, 1)).unwrap();
    }
    let mut b = a.clone();
    for k in 0..60 {
        let _ = a.update(k, |c| c.increment(ra, 2)).unwrap();
    }
    for k in 40..100 {
        let _ = b.update(k, |c| c.increment(rb, 3)).unwrap();
    }
    for k in 1000..1010 {
        let _ = a.update(k, |c| c.increment(ra, 1)).unwrap();
        let _ = b.update(k + 10, |c| c.increment(rb, 1)).unwrap();
    }
    (a, b)
}

/// The union of both sides: what each must hold afterwards.
fn expected() -> S {
    let (a, b) = diverged();
    let mut u = a.clone();
    for (k, v) in b.iter() {
        u.join(k, &v);
    }
    u
}

/// What a transport reports about one reconciliation.
#[derive(Debug)]
struct Report {
    a: S,
    b: S,
    /// Sessions completed on each side, and how many of those it initiated.
    completed: [u64; 2],
    initiated_completed: [u64; 2],
    /// Sessions failed, timed out or refused, both sides.
    trouble: u64,
}

/// The assertions every transport must pass.
fn check(r: &Report) {
    let want = expected();
    assert!(r.a == want, "side A lacks writes");
    assert!(r.b == want, "side B lacks writes");
    assert_eq!(r.a.root_digest(), r.b.root_digest());
    assert_eq!(r.completed, [1, 1], "{r:?}");
    assert_eq!(
        r.initiated_completed[0] + r.initiated_completed[1],
        1,
        "one side initiated the one session: {r:?}"
    );
    assert_eq!(r.trouble, 0, "{r:?}");
}

fn over_the_simulator(seed: u64) -> Report {
    let mut sim = Simulator::new(seed);
    let config = AntiEntropyConfig::default().with_interval(SimTime::ZERO);
    let (a, b) = diverged();
    let pa = sim.add_node(AntiEntropyNode::new(a, config));
    let pb = sim.add_node(AntiEntropyNode::new(b, config));
    sim.poke(pa, |n, ctx| assert!(n.initiate(ctx, pb)));
    sim.run_until_idle(SimTime::from_secs(60));
    let side = |p: ProcessId| sim.node(p).expect("process");
    let stats = [side(pa).stats().host, side(pb).stats().host];
    Report {
        a: side(pa).store().clone(),
        b: side(pb).store().clone(),
        completed: [stats[0].sessions_completed, stats[1].sessions_completed],
        initiated_completed: [
            stats[0].sessions_completed_initiated,
            stats[1].sessions_completed_initiated,
        ],
        trouble: stats
            .iter()
            .map(|s| s.sessions_failed + s.sessions_timed_out + s.sessions_refused)
            .sum(),
    }
}

async fn over_tcp() -> Report {
    let ca = ClusterCa::new("host-transports").expect("CA");
    let config = |id: u64, name: &str| {
        let cert = ca.issue(id).expect("certificate");
        let identity =
            TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).expect("identity");
        NodeConfig::new(id, name)
            .with_cluster("host-transports", 1..=2)
            .with_tls(identity)
            .with_replica(ReplicaId::from_u128(u128::from(id) + 100))
            .in_memory()
            // Only the session the dialer starts at connect.
            .with_ae_interval(Duration::from_secs(3600))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
    };
    let (a, b) = diverged();
    let mut ba = NodeBuilder::new(config(1, "a"));
    let ca = ba.channel_with("views", a, Box::new(NaivePush::default()));
    let na = ba.start().expect("start");
    let mut bb = NodeBuilder::new(config(2, "b"));
    let cb = bb.channel_with("views", b, Box::new(NaivePush::default()));
    let nb = bb.start().expect("start");
    let addr = nb
        .listen("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("listen");
    na.dial(addr, 2);
    let start = Instant::now();
    while na.stats().sessions_completed + nb.stats().sessions_completed < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "no session");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Nothing more should happen; give stragglers a moment to show.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = [na.stats(), nb.stats()];
    let report = Report {
        a: ca.snapshot_store(),
        b: cb.snapshot_store(),
        completed: [stats[0].sessions_completed, stats[1].sessions_completed],
        initiated_completed: [
            u64::from(stats[0].sessions_initiated > 0) * stats[0].sessions_completed,
            u64::from(stats[1].sessions_initiated > 0) * stats[1].sessions_completed,
        ],
        trouble: stats
            .iter()
            .map(|s| s.sessions_failed + s.sessions_timed_out + s.sessions_interrupted)
            .sum(),
    };
    na.shutdown().await.expect("shutdown");
    nb.shutdown().await.expect("shutdown");
    report
}

#[test]
fn the_simulator_reconciles_through_the_host() {
    for seed in 0..5 {
        check(&over_the_simulator(seed));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_reconciles_through_the_same_host() {
    check(&over_tcp().await);
}
