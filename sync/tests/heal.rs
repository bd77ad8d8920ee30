//! Healing a partition on the connection kept through it.
//!
//! Two in-process nodes over mutual TLS, through the delaying proxy, whose
//! cut holds bytes and resets nothing, like a real partition. While the
//! link is cut, both sides report the peer lost at the idle timeout but
//! keep the socket open ([`NodeConfig::quiet_linger`]). When the link
//! heals, the keepalives held in the proxy resume the kept connection: no
//! new TLS handshake, and the dialer runs anti-entropy at once. Nothing
//! here asserts a duration: the checks are counts (handshakes, resumed
//! connections, quiet connections, events) and the converged data.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::proxy::{LinkSpec, Proxy};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, NodeEvent, TlsIdentity};

fn ca() -> &'static ClusterCa {
    static CA: std::sync::OnceLock<ClusterCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| ClusterCa::new("test").unwrap())
}

/// Keepalives every 50 ms, idle timeout 300 ms; periodic anti-entropy only
/// every minute, so a session right after the heal is the resume's.
fn config(id: u64, name: &str, linger: Duration) -> NodeConfig {
    let cert = ca().issue(id).unwrap();
    let identity = TlsIdentity::from_pem(ca().cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    NodeConfig::new(id, name)
        .in_memory()
        .with_cluster("test", [1, 2])
        .with_tls(identity)
        .with_ae_interval(Duration::from_secs(60))
        .with_keepalive(Duration::from_millis(50), Duration::from_millis(300))
        .with_quiet_linger(linger)
        .with_timeouts(
            Duration::from_secs(2),
            Duration::from_secs(2),
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200))
        .with_divergence_interval(None)
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

    fn total(&self) -> u64 {
        self.views
            .snapshot_store()
            .iter()
            .map(|(_, c)| c.value())
            .sum()
    }
}

async fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `a` listens, `b` dials it through a proxied link of round trip `rtt`.
async fn pair(linger: Duration, rtt: Duration) -> (Proxy, Side, Side) {
    let proxy = Proxy::new(3);
    let a = Side::new(config(1, "a", linger));
    let b = Side::new(config(2, "b", linger));
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let addr = a.node.listen(local).await.unwrap();
    let via = proxy
        .add_link("a", "b", local, addr, LinkSpec::rtt(rtt))
        .await
        .unwrap();
    b.node.dial(via, 1);
    until("connected", Duration::from_secs(10), || {
        !a.node.peers().is_empty() && !b.node.peers().is_empty()
    })
    .await;
    (proxy, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_resumes_the_kept_connection_without_a_new_handshake() {
    let (proxy, a, b) = pair(Duration::from_secs(30), Duration::from_millis(100)).await;
    a.write(0..10).await;
    until("converged before the cut", Duration::from_secs(10), || {
        a.views.root_digest() == b.views.root_digest()
    })
    .await;
    let mut a_events = a.node.events();
    let mut b_events = b.node.events();

    proxy.cut("a", "b");
    // Both sides report the peer lost at the idle timeout, and keep the
    // socket.
    until("the peer reported lost", Duration::from_secs(5), || {
        a.node.peers().is_empty() && b.node.peers().is_empty()
    })
    .await;
    for s in [&a, &b] {
        let st = s.node.stats();
        assert_eq!(st.quiet_connections, 1, "{st:?}");
        assert_eq!(st.disconnects, 1, "{st:?}");
    }
    // Writes made now reach the peer only by anti-entropy: no connection
    // holds the peer's slot, so no delta is queued for it.
    a.write(100..150).await;
    b.write(200..230).await;
    b.write(0..10).await;
    assert_ne!(a.views.root_digest(), b.views.root_digest());
    // The dialer meanwhile makes new connections: their handshakes wait
    // in the cut link.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let handshakes = (a.node.stats().connections, b.node.stats().connections);

    proxy.heal("a", "b");
    until("converged after the heal", Duration::from_secs(20), || {
        a.views.root_digest() == b.views.root_digest()
    })
    .await;
    assert_eq!(a.total(), 10 + 50 + 30 + 10);
    assert_eq!(b.total(), a.total());
    // The kept connection carried it: no new handshake completed, each
    // side resumed once, and nothing is quiet any more.
    assert_eq!(
        (a.node.stats().connections, b.node.stats().connections),
        handshakes,
        "a new handshake completed"
    );
    for s in [&a, &b] {
        let st = s.node.stats();
        assert_eq!(st.resumed, 1, "{st:?}");
        assert_eq!(st.quiet_connections, 0, "{st:?}");
        assert_eq!(s.node.peers().len(), 1);
    }
    // The dialer's session after the resume did it (periodic ones are a
    // minute apart): it completed.
    assert!(b.node.stats().sessions_completed >= 1);
    let mut resumed = 0;
    while let Ok(e) = b_events.try_recv() {
        if let NodeEvent::Connected {
            dialed, resumed: r, ..
        } = e
        {
            assert!(dialed && r, "only the kept connection came back");
            resumed += 1;
        }
    }
    assert_eq!(resumed, 1);
    let mut lost = 0;
    while let Ok(e) = a_events.try_recv() {
        match e {
            NodeEvent::Disconnected { reason, .. } => {
                assert!(reason.contains("idle timeout"), "{reason}");
                lost += 1;
            }
            NodeEvent::Connected { resumed, .. } => assert!(resumed),
            _ => {}
        }
    }
    assert_eq!(lost, 1);
    b.node.shutdown().await.unwrap();
    a.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_peer_is_still_reported_at_the_idle_timeout_and_its_quiet_connection_closes() {
    let (proxy, a, b) = pair(Duration::from_millis(600), Duration::from_millis(20)).await;
    let mut b_events = b.node.events();
    // The peer's host goes silent for good (a partition that never heals
    // looks the same from here).
    proxy.cut("a", "b");
    let _ = a.node.kill().await;
    until(
        "the dead peer reported lost",
        Duration::from_secs(5),
        || b.node.peers().is_empty(),
    )
    .await;
    let mut lost = false;
    while let Ok(e) = b_events.try_recv() {
        lost |= matches!(e, NodeEvent::Disconnected { .. });
    }
    assert!(lost, "no Disconnected event");
    assert_eq!(b.node.stats().quiet_connections, 1);
    // Bounded: the quiet connection closes when the linger passes, and it
    // was never counted as resumed.
    until(
        "the quiet connection closed",
        Duration::from_secs(5),
        || b.node.stats().quiet_connections == 0,
    )
    .await;
    let st = b.node.stats();
    assert_eq!(st.resumed, 0, "{st:?}");
    assert!(b.node.peers().is_empty());
    b.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_linger_a_quiet_connection_closes_and_the_heal_takes_a_new_handshake() {
    let (proxy, a, b) = pair(Duration::ZERO, Duration::from_millis(20)).await;
    proxy.cut("a", "b");
    until("the peer reported lost", Duration::from_secs(5), || {
        a.node.peers().is_empty() && b.node.peers().is_empty()
    })
    .await;
    assert_eq!(b.node.stats().quiet_connections, 0);
    let before = b.node.stats().connections;
    a.write(0..20).await;
    proxy.heal("a", "b");
    until("converged after the heal", Duration::from_secs(20), || {
        a.views.root_digest() == b.views.root_digest()
    })
    .await;
    assert_eq!(b.total(), 20);
    let st = b.node.stats();
    assert_eq!(st.resumed, 0, "{st:?}");
    assert!(st.connections > before, "{st:?}");
    b.node.shutdown().await.unwrap();
    a.node.shutdown().await.unwrap();
}
