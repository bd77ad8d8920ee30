//! A limited-stock product (a `BoundedCounter`) bought from every region
//! through a partition: each region sells only the units it holds rights
//! for, a keeper in every region gives rights to a region running low
//! (the automatic policy), and the stock is sold out exactly, never
//! oversold.

use std::time::Duration;

use accordant::{BoundedCounter, RightsPolicy};
use accordant_sync::net::proxy::Proxy;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use super::scenario_mesh::MeshRegion;

/// Units created.
pub(crate) const STOCK: u64 = 90;

/// What the scenario measured, per region.
pub(crate) struct StockOutcome {
    pub(crate) sold: Vec<u64>,
    pub(crate) refused: Vec<u64>,
    pub(crate) transfers: Vec<u64>,
    pub(crate) final_values: Vec<u64>,
    pub(crate) elapsed: Duration,
}

/// Runs the scenario; AP-South is cut off for the first half.
pub(crate) async fn run(
    proxy: &Proxy,
    regions: &[MeshRegion],
) -> Result<StockOutcome, Box<dyn std::error::Error>> {
    let key = "sku-42".to_string();
    let members: Vec<_> = regions.iter().map(|r| r.id).collect();
    let eu = &regions[0];
    let _ = eu
        .stock
        .update(key.clone(), |c| c.increment(eu.id, STOCK))
        .await?;
    for r in &regions[1..] {
        let _ = eu
            .stock
            .transfer_rights(key.clone(), eu.id, r.id, STOCK / 6)
            .await?;
    }
    let keepers: Vec<_> = regions
        .iter()
        .map(|r| {
            r.stock.keep_rights(
                r.id,
                members.clone(),
                RightsPolicy::new(5),
                Duration::from_millis(50),
            )
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let n = regions.len();
    let (mut sold, mut refused) = (vec![0u64; n], vec![0u64; n]);
    let start = Instant::now();
    proxy.isolate("ap-south");
    let mut healed = false;
    while sold.iter().sum::<u64>() < STOCK {
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        if !healed && start.elapsed() > Duration::from_secs(2) {
            proxy.heal_all();
            healed = true;
        }
        // Demand is highest in AP-South.
        let i = if rng.random_bool(0.5) {
            2
        } else {
            rng.random_range(0..n)
        };
        let r = &regions[i];
        let me = r.id;
        match r
            .stock
            .update(key.clone(), |c: &mut BoundedCounter| c.decrement(me, 1))
            .await
        {
            Ok(_) => sold[i] += 1,
            Err(_) => refused[i] += 1,
        }
        tokio::time::sleep(Duration::from_millis(8)).await;
    }
    let elapsed = start.elapsed();
    // Let the last sales reach everyone.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let roots: Vec<_> = regions.iter().map(|r| r.stock.root_digest()).collect();
        if roots.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let transfers = keepers.iter().map(|k| k.transfers()).collect();
    let final_values = regions
        .iter()
        .map(|r| r.stock.get(&key).map_or(0, |c| c.value()))
        .collect();
    Ok(StockOutcome {
        sold,
        refused,
        transfers,
        final_values,
        elapsed,
    })
}
