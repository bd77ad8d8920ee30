//! Three fresh regions for the token and stock scenarios: EU, US-East and
//! AP-South, each pair through the delaying proxy at the main demo's round
//! trips, over mutual TLS with an in-process CA.

use std::net::SocketAddr;
use std::time::Duration;

use accordant::{BoundedCounter, MvRegister, ReplicaId};
use accordant_sync::net::certs::ClusterCa;
use accordant_sync::net::proxy::{LinkSpec, Proxy};
use accordant_sync::net::{Channel, Node, NodeBuilder, NodeConfig, TlsIdentity};

/// The regions, in order.
pub(crate) const NAMES: [&str; 3] = ["eu", "us-east", "ap-south"];

/// One region of the mesh.
pub(crate) struct MeshRegion {
    pub(crate) name: &'static str,
    pub(crate) node: Node,
    pub(crate) id: ReplicaId,
    pub(crate) profiles: Channel<String, MvRegister<String>>,
    pub(crate) stock: Channel<String, BoundedCounter>,
}

/// Starts the three regions and connects every pair through `proxy`.
pub(crate) async fn mesh(proxy: &Proxy) -> Result<Vec<MeshRegion>, Box<dyn std::error::Error>> {
    let ca = ClusterCa::new("scenarios")?;
    let mut regions = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let id = i as u64 + 1;
        let cert = ca.issue(id)?;
        let tls = TlsIdentity::from_pem(ca.cert_pem(), &cert.cert_pem, &cert.key_pem)?;
        let config = NodeConfig::new(id, *name)
            .in_memory()
            .with_cluster("scenarios", 1..=3)
            .with_tls(tls)
            .with_ae_interval(Duration::from_millis(500))
            .with_keepalive(Duration::from_millis(100), Duration::from_millis(600))
            .with_backoff(Duration::from_millis(20), Duration::from_millis(200));
        let mut b = NodeBuilder::new(config);
        let replica = b.replica()?;
        let profiles = b.channel("profiles")?;
        let stock = b.channel("stock")?;
        regions.push(MeshRegion {
            name,
            node: b.start()?,
            id: replica,
            profiles,
            stock,
        });
    }
    let local: SocketAddr = "127.0.0.1:0".parse()?;
    for i in 0..regions.len() {
        let addr = regions[i].node.listen(local).await?;
        for j in i + 1..regions.len() {
            let spec = LinkSpec::rtt(super::rtt(NAMES[i], NAMES[j]));
            let via = proxy
                .add_link(NAMES[i], NAMES[j], local, addr, spec)
                .await?;
            regions[j].node.dial(via, i as u64 + 1);
        }
    }
    while regions.iter().any(|r| r.node.peers().len() < 2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(regions)
}

/// Runs the token and stock scenarios on a fresh mesh and prints their
/// table; `false` if a check failed.
pub(crate) async fn run_all() -> Result<bool, Box<dyn std::error::Error>> {
    let proxy = Proxy::new(17);
    let regions = mesh(&proxy).await?;
    println!("\nsession tokens and limited stock (three fresh regions, same round trips):");
    let tok = super::scenario_tokens::run(&proxy, &regions[0], &regions[1]).await?;
    let stock = super::scenario_stock::run(&proxy, &regions).await?;
    let mut waits = tok.waits_ms.clone();
    waits.sort_by(f64::total_cmp);
    let pct = |p: f64| waits[((waits.len() - 1) as f64 * p).round() as usize];
    println!(
        "  alice: {} writes in eu, each read at once in us-east with her token ({} bytes, a {}-character header)",
        tok.reads, tok.token_bytes, tok.header_chars
    );
    println!(
        "    without the token us-east showed the old address {} of {} times; with it {} times (waited median {:.0} ms, max {:.0} ms)",
        tok.stale_without_token, tok.reads, tok.stale_with_token, pct(0.5), pct(1.0)
    );
    println!("    us-east cut off: {}", tok.partitioned);
    println!(
        "  stock: {} units of sku-42 created in eu; ap-south cut off for the first 2 s; sold out in {:.1} s",
        super::scenario_stock::STOCK,
        stock.elapsed.as_secs_f64()
    );
    println!(
        "    {:<10} {:>6} {:>8} {:>21} {:>11}",
        "region", "sold", "refused", "rights transfers made", "final value"
    );
    for (i, r) in regions.iter().enumerate() {
        println!(
            "    {:<10} {:>6} {:>8} {:>21} {:>11}",
            r.name, stock.sold[i], stock.refused[i], stock.transfers[i], stock.final_values[i]
        );
    }
    let total: u64 = stock.sold.iter().sum();
    let tokens_ok = tok.stale_with_token == 0;
    let stock_ok =
        total == super::scenario_stock::STOCK && stock.final_values.iter().all(|v| *v == 0);
    println!(
        "  {} read-your-writes across regions: {} stale reads with the token",
        super::mark(tokens_ok),
        tok.stale_with_token
    );
    println!(
        "  {} no oversell: {} sold of {} (and {} refused for lack of local rights)",
        super::mark(stock_ok),
        total,
        super::scenario_stock::STOCK,
        stock.refused.iter().sum::<u64>()
    );
    for r in regions {
        r.node.shutdown().await?;
    }
    proxy.shutdown().await;
    Ok(tokens_ok && stock_ok)
}
