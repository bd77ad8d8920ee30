//! Acknowledged writes per second and acknowledgement latency of a durable
//! node, per fsync policy and number of concurrent writers.
//!
//! ```text
//! cargo run --release -p accordant-sync --example ack_latency [-- SECONDS]
//! ```
//!
//! For each policy (`every`: a commit and fsync per write; `window:2ms`:
//! group commit; `off`: commits without fsync) and 1, 8 and 64 concurrent
//! writers, a node with a fresh data directory (under the system's
//! temporary directory) takes increments of uniformly random keys of a
//! `Store<u64, GCounter>` for `SECONDS` (default 3). Each writer awaits
//! every `Channel::update` (the acknowledgement) before its next write. It
//! prints acknowledged writes per second and the p50 and p99 latency of an
//! acknowledgement, with the machine's load average.

use std::time::{Duration, Instant};

use accordant::{GCounter, ReplicaId};
use accordant_sync::net::{NodeBuilder, NodeConfig};
use accordant_sync::store::db::Fsync;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn run(fsync: Fsync, label: &str, writers: usize, secs: f64) {
    let dir = std::env::temp_dir().join(format!(
        "accordant-ack-{}-{label}-{writers}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut b = NodeBuilder::new(
        // No peer ever connects: plaintext only because no TLS material
        // is needed to measure commits.
        NodeConfig::new(1, "bench")
            .insecure_plaintext()
            .with_data_dir(&dir)
            .with_fsync(fsync),
    );
    let ch = b.channel::<u64, GCounter>("hits").expect("channel");
    let node = b.start().expect("start");
    let replica = ReplicaId::from_u128(1);
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(w as u64);
            let mut lat = Vec::new();
            while Instant::now() < until {
                let key: u64 = rng.random();
                let t = Instant::now();
                ch.update(key, |c| c.increment(replica, 1))
                    .await
                    .expect("acknowledged");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let start = Instant::now();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("writer"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{label:<10} {writers:>3} writers: {:>9.0} acked writes/s, p50 {:>9.3} ms, p99 {:>9.3} ms ({} writes; load {})",
        lat.len() as f64 / elapsed,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.len(),
        load()
    );
    node.shutdown().await.expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for (fsync, label) in [
        (Fsync::EveryWrite, "every"),
        (Fsync::Window(Duration::from_millis(2)), "window:2ms"),
        (Fsync::Off, "off"),
    ] {
        for writers in [1, 8, 64] {
            rt.block_on(run(fsync, label, writers, secs));
        }
    }
}
