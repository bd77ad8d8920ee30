//! CPU of an anti-entropy [`Session`] per side, on the `convergence`
//! example's data: 256-byte LWW registers diverged on both sides (the same
//! `D` keys written concurrently), `N` in 10^4, 10^5, 10^6 and `D/N` in
//! 10^-4, 10^-3, 10^-2, 10^-1.
//!
//! ```text
//! cargo bench -p accordant-sync --bench session
//! cargo bench -p accordant-sync --bench session -- 'session/B/N=100000'
//! ```
//!
//! `session/A/N=…/D=…` is the time spent inside the initiator's calls
//! (`Session::initiate` and `Session::handle`), `session/B/…` inside the
//! responder's (`Session::respond` and `Session::handle`), for one whole
//! session that ends with both sides verified; message delivery is
//! excluded. Every iteration runs on a fresh copy of the diverged pair (the
//! copy is not timed), so each sample is one session; the `report` example
//! measures the same thing over its whole matrix, with the baselines.

#[allow(dead_code)]
#[path = "../examples/common/model.rs"]
mod model;

use std::time::{Duration, Instant};

use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::store::{Store, StoreValue};
use criterion::{BenchmarkId, Criterion, SamplingMode};
use model::{build_base, diverge, LwwModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
const RATIOS: [f64; 4] = [1e-4, 1e-3, 1e-2, 1e-1];

/// Runs a session between `a` (initiating) and `b`; returns the time spent
/// inside each side's calls.
fn timed_sync<V: StoreValue>(a: &mut Store<u64, V>, b: &mut Store<u64, V>) -> [Duration; 2] {
    let config = SessionConfig::default();
    let mut cpu = [Duration::ZERO; 2];
    let t = Instant::now();
    let mut sa = Session::initiate(a, config);
    cpu[0] += t.elapsed();
    let t = Instant::now();
    let mut sb = Session::respond(config);
    cpu[1] += t.elapsed();
    while !(sa.is_done() && sb.is_done()) {
        let mut progressed = false;
        while let Some(m) = sa.poll_transmit() {
            let t = Instant::now();
            sb.handle(b, &m).expect("B failed");
            cpu[1] += t.elapsed();
            progressed = true;
        }
        while let Some(m) = sb.poll_transmit() {
            let t = Instant::now();
            sa.handle(a, &m).expect("A failed");
            cpu[0] += t.elapsed();
            progressed = true;
        }
        assert!(progressed, "the session stalled");
    }
    cpu
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let lww = LwwModel { bytes: 256 };
    let mut g = c.benchmark_group("session");
    g.sampling_mode(SamplingMode::Flat);
    for n in SIZES {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let base = build_base(&lww, n, &mut rng);
        for ratio in RATIOS {
            let d = ((n as f64 * ratio).round() as u64).max(1);
            let pair = diverge(&lww, &base, d, true, &mut rng.clone());
            for (side, name) in ["A", "B"].into_iter().enumerate() {
                let id = BenchmarkId::new(name, format!("N={n}/D={d}"));
                g.bench_function(id, |bench| {
                    bench.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let (mut a, mut b) = (pair.a.clone(), pair.b.clone());
                            total += timed_sync(&mut a, &mut b)[side];
                        }
                        total
                    })
                });
            }
        }
    }
    g.finish();
    c.final_summary();
}
