//! Three nodes over loopback TCP, each channel's delta path run by
//! `AckedDeltas` (acked delta-intervals, BP+RR): writes on every node
//! converge, and the deltas go through the replicator (groups sent, acks
//! sent, buffers garbage-collected).

use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::delta::{AckedConfig, AckedDeltas, AckedStats, CausalDelivery};
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, TlsIdentity};
use accordant_sync::store::Store;

/// The tests of this file run one at a time: each counts what its own
/// nodes did within deadlines, which a second mesh on the same two cores
/// would skew.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Replica {
    node: Node,
    views: Channel<u32, GCounter>,
    stats: AckedStats,
    id: ReplicaId,
}

fn replica(ca: &ClusterCa, id: u64) -> Replica {
    replica_with(ca, id, AckedConfig::default())
}

fn replica_with(ca: &ClusterCa, id: u64, acked_config: AckedConfig) -> Replica {
    let cert = ca.issue(id).unwrap();
    let identity = TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    // Anti-entropy only at connect: afterwards, deltas are the only path.
    let config = NodeConfig::new(id, format!("n{id}"))
        .with_cluster("test", 1..=3)
        .with_tls(identity)
        .with_replica(ReplicaId::from_u128(u128::from(id)))
        .in_memory()
        .with_ae_interval(Duration::from_secs(60))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let store: Store<u32, GCounter> = Store::new();
    let acked = AckedDeltas::with_incarnation(acked_config, id as u32 * 7919, &store);
    let stats = acked.stats_handle();
    let mut b = NodeBuilder::new(config);
    let views = b.channel_with("views", store, Box::new(acked));
    Replica {
        node: b.start().unwrap(),
        views,
        stats,
        id: ReplicaId::from_u128(u128::from(id)),
    }
}

async fn wait(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_deltas_converge_a_full_mesh() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let ca = ClusterCa::new("test").unwrap();
    let rs: Vec<Replica> = (1..=3).map(|id| replica(&ca, id)).collect();
    let mut addrs = Vec::new();
    for r in &rs {
        addrs.push(r.node.listen("127.0.0.1:0".parse().unwrap()).await.unwrap());
    }
    // Full mesh: 2 dials 1, 3 dials 1 and 2.
    rs[1].node.dial(addrs[0], 1);
    rs[2].node.dial(addrs[0], 1);
    rs[2].node.dial(addrs[1], 2);
    wait("full mesh", Duration::from_secs(3), || {
        rs.iter().all(|r| r.node.peers().len() == 2)
    })
    .await;
    // Let the connect-time anti-entropy of the empty stores finish.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before: Vec<u64> = rs.iter().map(|r| r.stats.get().groups_sent).collect();
    let sessions_before: Vec<u64> = rs
        .iter()
        .map(|r| r.node.stats().sessions_initiated)
        .collect();

    // Every node writes to a shared key and to one of its own, in rounds.
    for round in 0..20u64 {
        for (i, r) in rs.iter().enumerate() {
            let own = 100 + i as u32;
            let _ = r.views.update(0, |c| c.increment(r.id, 1)).await.unwrap();
            let _ = r
                .views
                .update(own, |c| c.increment(r.id, round + 1))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    wait("equal roots", Duration::from_secs(3), || {
        let first = rs[0].node.roots();
        rs.iter().all(|r| r.node.roots() == first)
    })
    .await;
    let own_total: u64 = (1..=20).sum();
    for r in &rs {
        assert_eq!(r.views.get(&0).unwrap().value(), 60);
        for i in 0..3u32 {
            assert_eq!(r.views.get(&(100 + i)).unwrap().value(), own_total);
        }
    }

    // The deltas went through the replicator: delta-intervals sent and
    // received, acks for them, and everything acknowledged is collected.
    wait("buffers collected", Duration::from_secs(2), || {
        rs.iter().all(|r| {
            let s = r.stats.get();
            s.entries_collected >= 40
                && s.entries_collected + s.entries_dropped == s.entries_buffered
        })
    })
    .await;
    for (r, b) in rs.iter().zip(&before) {
        let s = r.stats.get();
        assert!(s.groups_sent > *b, "no delta-group sent: {s:?}");
        assert!(s.groups_received > 0, "no delta-group received: {s:?}");
        assert!(s.acks_sent > 0, "no ack sent: {s:?}");
        assert!(s.entries_buffered >= 40, "local writes not buffered: {s:?}");
        assert_eq!(s.groups_refused, 0, "{s:?}");
        assert_eq!(s.entries_dropped, 0, "{s:?}");
    }
    // ... and not through the node's anti-entropy: no session since the
    // writes began, no delta frame dropped.
    for (r, b) in rs.iter().zip(&sessions_before) {
        let n = r.node.stats();
        assert_eq!(n.sessions_initiated, *b, "{n:?}");
        assert_eq!(n.deltas_dropped, 0, "{n:?}");
        assert!(n.deltas_sent > 0 && n.deltas_received > 0, "{n:?}");
    }

    for r in rs {
        r.node.shutdown().await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_causal_channel_converges_through_its_replicator_without_node_sessions() {
    let _serial = SERIAL.lock().await;
    let ca = ClusterCa::new("test").unwrap();
    let causal = AckedConfig::default().with_causal_delivery(CausalDelivery::default());
    let rs: Vec<Replica> = (1..=3).map(|id| replica_with(&ca, id, causal)).collect();
    // Writes before any link: the replicators must bring them over.
    for r in &rs {
        for k in 0..5u32 {
            let _ = r.views.update(k, |c| c.increment(r.id, 2)).await.unwrap();
        }
    }
    let mut addrs = Vec::new();
    for r in &rs {
        addrs.push(r.node.listen("127.0.0.1:0".parse().unwrap()).await.unwrap());
    }
    rs[1].node.dial(addrs[0], 1);
    rs[2].node.dial(addrs[0], 1);
    rs[2].node.dial(addrs[1], 2);
    wait("full mesh", Duration::from_secs(3), || {
        rs.iter().all(|r| r.node.peers().len() == 2)
    })
    .await;
    for r in &rs {
        let _ = r.views.update(9, |c| c.increment(r.id, 1)).await.unwrap();
    }
    wait("equal roots", Duration::from_secs(5), || {
        let first = rs[0].node.roots();
        rs.iter().all(|r| r.node.roots() == first)
    })
    .await;
    for r in &rs {
        for k in 0..5u32 {
            assert_eq!(r.views.get(&k).unwrap().value(), 6);
        }
        assert_eq!(r.views.get(&9).unwrap().value(), 3);
        // No node session on the causal channel, not even at connect:
        // sessions would join state outside the causal order.
        let n = r.node.stats();
        assert_eq!(n.sessions_initiated, 0, "{n:?}");
        assert!(r.stats.get().groups_received > 0);
    }
    for r in rs {
        r.node.shutdown().await.unwrap();
    }
}
