//! Bounded-counter rights over real nodes: the keeper moves rights to the
//! region that runs low, a partitioned region sells only what it holds,
//! and the whole stock is sold, never more.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accordant::{BoundedCounter, ReplicaId, RightsPolicy};
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::proxy::{LinkSpec, Proxy};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, TlsIdentity};

fn ca() -> &'static ClusterCa {
    static CA: std::sync::OnceLock<ClusterCa> = std::sync::OnceLock::new();
    CA.get_or_init(|| ClusterCa::new("test").unwrap())
}

fn node(id: u64, name: &str) -> (Node, Channel<String, BoundedCounter>, ReplicaId) {
    let cert = ca().issue(id).unwrap();
    let tls = TlsIdentity::from_pem(ca().cert_pem(), &cert.cert_pem, &cert.key_pem).unwrap();
    let replica = ReplicaId::from_u128(u128::from(id));
    let config = NodeConfig::new(id, name)
        .in_memory()
        .with_cluster("test", 1..=4)
        .with_tls(tls)
        .with_replica(replica)
        .with_ae_interval(Duration::from_millis(300))
        .with_keepalive(Duration::from_millis(100), Duration::from_millis(600))
        .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let mut b = NodeBuilder::new(config);
    let stock = b.channel("stock").unwrap();
    (b.start().unwrap(), stock, replica)
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn sell(c: &Channel<String, BoundedCounter>, me: ReplicaId) -> bool {
    c.update("sku".into(), |s| s.decrement(me, 1)).await.is_ok()
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_follow_demand_and_the_stock_never_oversells() {
    let proxy = Proxy::new(9);
    let (eu, eu_stock, eu_id) = node(1, "eu");
    let (us, us_stock, us_id) = node(2, "us");
    let addr = eu.listen(local()).await.unwrap();
    let via = proxy
        .add_link(
            "eu",
            "us",
            local(),
            addr,
            LinkSpec::rtt(Duration::from_millis(40)),
        )
        .await
        .unwrap();
    us.dial(via, 1);
    let members = vec![eu_id, us_id];
    let policy = RightsPolicy::new(5);
    let every = Duration::from_millis(20);
    let eu_keeper = eu_stock.keep_rights(eu_id, members.clone(), policy, every);
    let us_keeper = us_stock.keep_rights(us_id, members.clone(), policy, every);

    // 40 units, all created in EU. An explicit transfer works through the
    // node too.
    let _ = eu_stock
        .update("sku".into(), |c| c.increment(eu_id, 40))
        .await
        .unwrap();
    let _ = eu_stock
        .transfer_rights("sku".into(), eu_id, us_id, 2)
        .await
        .unwrap();
    // US runs low (2 < 5): EU's keeper gives it part of its surplus.
    until("US to get rights", Duration::from_secs(10), || {
        us_stock.get("sku").is_some_and(|c| c.rights(us_id) >= 5)
    })
    .await;
    assert!(eu_keeper.transfers() >= 1);

    // Partition: each side sells what it holds, and no more.
    proxy.cut("eu", "us");
    let (mut sold_eu, mut sold_us) = (0u64, 0u64);
    while sell(&eu_stock, eu_id).await {
        sold_eu += 1;
    }
    while sell(&us_stock, us_id).await {
        sold_us += 1;
    }
    assert!(sold_eu + sold_us <= 40);
    assert!(sold_us >= 5, "{sold_us}");

    // Heal: keep selling in both regions; every unit is sold, none twice.
    proxy.heal("eu", "us");
    let t = Instant::now();
    while sold_eu + sold_us < 40 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{sold_eu} + {sold_us}"
        );
        sold_eu += u64::from(sell(&eu_stock, eu_id).await);
        sold_us += u64::from(sell(&us_stock, us_id).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sold_eu + sold_us, 40);
    until("both to agree", Duration::from_secs(10), || {
        eu_stock.root_digest() == us_stock.root_digest()
    })
    .await;
    let end = eu_stock.get("sku").unwrap();
    assert_eq!(end.value(), 0);
    assert_eq!(end.total_decrements(), 40);
    drop((eu_keeper, us_keeper));
    proxy.shutdown().await;
    us.shutdown().await.unwrap();
    eu.shutdown().await.unwrap();
}
