//! The divergence monitor tracks a partition: zero while converged, rising
//! with the writes while split (within the estimator's stated error of the
//! true count), zero again after the heal.
//!
//! Two nodes over mutual TLS through the delaying proxy, probes every
//! 100 ms. While the link is cut each side compares with the peer's last
//! probe (taken before the cut, when both held the same items), so the
//! truth each side's estimate is checked against is the symmetric
//! difference between its store now and the peer's store at the cut.
//!
//! The error bound: one reading lies within 0.22 to 2.6 times the true
//! item count with probability 99.9% (sixteen tug-of-war squares: a
//! chi-square of 16 degrees of freedom, over 16). The measured ratios are
//! printed (`cargo test -p accordant-sync --test divergence -- --nocapture`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::proxy::{LinkSpec, Proxy};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, TlsIdentity};
use accordant_sync::store::Store;

fn config(ca: &ClusterCa, id: u64, name: &str) -> NodeConfig {
    let cert = ca.issue(id).unwrap();
    let identity = TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    NodeConfig::new(id, name)
        .in_memory()
        .with_cluster("test", [1, 2])
        .with_tls(identity)
        .with_ae_interval(Duration::from_millis(300))
        .with_keepalive(Duration::from_millis(100), Duration::from_millis(500))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_divergence_interval(Some(Duration::from_millis(100)))
}

struct Side {
    node: Node,
    views: Channel<u32, GCounter>,
    me: ReplicaId,
}

impl Side {
    fn new(config: NodeConfig) -> Side {
        let me = ReplicaId::from_u128(u128::from(config.id));
        let mut b = NodeBuilder::new(config.with_replica(me));
        let views = b.channel::<u32, GCounter>("views").unwrap();
        Side {
            node: b.start().unwrap(),
            views,
            me,
        }
    }

    async fn write(&self, keys: impl IntoIterator<Item = u32>) {
        for k in keys {
            let _ = self
                .views
                .update(k, |c| c.increment(self.me, 1))
                .await
                .unwrap();
        }
    }

    /// The estimate of items differing with the other side.
    fn estimate(&self) -> Option<(f64, f64)> {
        let p = self.node.peer_stats();
        let (_, e) = p.first()?.divergence.first()?.clone();
        Some((e.items, e.keys))
    }
}

/// Items (key, value) in the symmetric difference of two stores, and keys
/// that differ.
fn truth(a: &Store<u32, GCounter>, b: &Store<u32, GCounter>) -> (f64, f64) {
    let a: BTreeMap<u32, GCounter> = a.iter().collect();
    let b: BTreeMap<u32, GCounter> = b.iter().collect();
    let (mut items, mut keys) = (0u64, 0u64);
    for (k, v) in &a {
        match b.get(k) {
            None => (items, keys) = (items + 1, keys + 1),
            Some(w) if w != v => (items, keys) = (items + 2, keys + 1),
            Some(_) => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            (items, keys) = (items + 1, keys + 1);
        }
    }
    (items as f64, keys as f64)
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for a fresh estimate (two probe intervals) and checks it against
/// `truth`; returns the ratios (items, keys).
async fn check(side: &Side, truth: (f64, f64), label: &str) -> (f64, f64) {
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (items, keys) = side.estimate().expect("an estimate");
    let r = (items / truth.0, keys / truth.1);
    eprintln!(
        "{label}: true items {} keys {}, estimated items {items:.0} keys {keys:.0} (ratios {:.2}, {:.2})",
        truth.0, truth.1, r.0, r.1
    );
    assert!(
        (0.22..=2.6).contains(&r.0),
        "{label}: items {items} against {}",
        truth.0
    );
    assert!(
        (0.22..=2.6).contains(&r.1),
        "{label}: keys {keys} against {}",
        truth.1
    );
    (items, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_tracks_a_partition_and_returns_to_zero() {
    let ca = ClusterCa::new("test").unwrap();
    let proxy = Proxy::new(7);
    let a = Side::new(config(&ca, 1, "eu"));
    let b = Side::new(config(&ca, 2, "ap-south"));
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let addr = a.node.listen(local).await.unwrap();
    let via = proxy
        .add_link("eu", "ap", local, addr, LinkSpec::direct())
        .await
        .unwrap();
    b.node.dial(via, 1);

    // Converged on 1,000 keys: both read exactly 0.
    a.write(0..500).await;
    b.write(500..1000).await;
    let zero = |s: &Side| s.estimate().is_some_and(|(i, _)| i == 0.0);
    until("converged, both at 0", Duration::from_secs(20), || {
        a.views.root_digest() == b.views.root_digest() && zero(&a) && zero(&b)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(zero(&a) && zero(&b), "no write, still 0");

    // Split.
    proxy.cut("eu", "ap");
    until(
        "both sides see the partition",
        Duration::from_secs(5),
        || a.node.peers().is_empty() && b.node.peers().is_empty(),
    )
    .await;
    let b_at_cut = b.views.snapshot_store();
    let a_at_cut = a.views.snapshot_store();

    // EU writes new keys: its estimate rises with them.
    let mut readings = Vec::new();
    let mut next = 1000u32;
    for n in [100u32, 400, 1600] {
        a.write(next..1000 + n).await;
        next = 1000 + n;
        let t = truth(&a.views.snapshot_store(), &b_at_cut);
        assert_eq!(t, (f64::from(n), f64::from(n)));
        readings.push(check(&a, t, &format!("EU, {n} new keys while split")).await);
    }
    assert!(readings[2].0 > readings[0].0, "rising: {readings:?}");

    // AP-South changes existing keys (two items each): its own estimate.
    b.write(0..300).await;
    let t = truth(&b.views.snapshot_store(), &a_at_cut);
    assert_eq!(t, (600.0, 300.0));
    check(&b, t, "AP-South, 300 keys changed while split").await;

    // Heal: anti-entropy converges, and both estimates return to 0.
    let healed = Instant::now();
    proxy.heal("eu", "ap");
    until("converged, both back at 0", Duration::from_secs(20), || {
        a.views.root_digest() == b.views.root_digest() && zero(&a) && zero(&b)
    })
    .await;
    eprintln!("back to 0 within {:?} of the heal", healed.elapsed());
    let stats = a.node.peer_stats();
    let probe_bytes = stats[0]
        .bytes_sent_by_kind
        .iter()
        .find(|(k, _)| *k == accordant_sync::net::Kind::Probe)
        .map(|(_, b)| *b)
        .unwrap();
    assert!(probe_bytes > 0);
    b.node.shutdown().await.unwrap();
    a.node.shutdown().await.unwrap();
}
