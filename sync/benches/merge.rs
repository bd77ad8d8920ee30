//! Merges of typical values, alone and through a [`Store`] (which adds
//! re-encoding, the item hash and the digest tree's path).
//!
//! ```text
//! cargo bench -p accordant-sync --bench merge
//! ```
//!
//! - `merge/lww256`: a 256-byte `LwwRegister<Vec<u8>>` joined with a newer
//!   write;
//! - `merge/counter`: a two-replica `GCounter` joined with one whose own
//!   entry moved on;
//! - `merge/orset1000_delta`: a 1000-element `OrSet<u32>` joined with the
//!   one-element delta of an add at another replica;
//! - `merge/orset1000_state`: the same set joined with the other replica's
//!   whole state (1001 elements);
//! - `store_join/{lww256,counter,orset1000_delta}`: the same joins into a
//!   store of 10^5 keys (10^4 for the OR-Sets), at a random key.
//!
//! Each join works on a fresh clone of the left side (the clone is not
//! timed).

#[allow(dead_code)]
#[path = "../examples/common/model.rs"]
mod model;

use std::time::{Duration, Instant};

use accordant::ReplicaId;
use accordant_sync::store::StoreValue;
use criterion::{BatchSize, Criterion};
use model::{build_base, CounterModel, LwwModel, Model, OrSetModel, Side};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A base value and a changed copy of it, as side `B` would change it.
fn pair<M: Model>(m: &M, rng: &mut ChaCha8Rng) -> (M::V, M::V) {
    let a = m.base(rng);
    let mut b = a.clone();
    m.change(rng, Side::B, &mut b);
    (a, b)
}

fn bench_value<V: StoreValue>(c: &mut Criterion, name: &str, left: &V, right: &V) {
    c.bench_function(&format!("merge/{name}"), |b| {
        b.iter_batched_ref(|| left.clone(), |l| l.join(right), BatchSize::SmallInput)
    });
}

fn bench_store<M: Model>(c: &mut Criterion, name: &str, m: &M, n: u64, right: &M::V) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let base = build_base(m, n, &mut rng);
    // Every key once, in random order: a join that changes nothing would
    // skip the tree, so the store is renewed (untimed) when all are done.
    let mut keys: Vec<u64> = (0..n).collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.random_range(0..=i));
    }
    let mut store = base.clone();
    let mut next = 0usize;
    let mut g = c.benchmark_group("store_join");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                if next == keys.len() {
                    store = base.clone();
                    next = 0;
                }
                let chunk = left.min(keys.len() - next);
                let t = Instant::now();
                for &k in &keys[next..next + chunk] {
                    store.join(k, right);
                }
                total += t.elapsed();
                next += chunk;
                left -= chunk;
            }
            total
        })
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let lww = LwwModel { bytes: 256 };
    let (l, r) = pair(&lww, &mut rng);
    bench_value(&mut c, "lww256", &l, &r);
    let (cl, cr) = pair(&CounterModel, &mut rng);
    bench_value(&mut c, "counter", &cl, &cr);
    let sets = OrSetModel::new(&mut rng, 1000);
    let base = sets.base(&mut rng);
    let mut other = base.clone();
    let delta = other
        .add(ReplicaId::from_u128(2), u32::MAX)
        .unwrap_or_default();
    bench_value(&mut c, "orset1000_delta", &base, &delta);
    bench_value(&mut c, "orset1000_state", &base, &other);
    // Through a store, each join at a key that has not had it yet.
    bench_store(&mut c, "lww256", &lww, 100_000, &r);
    bench_store(&mut c, "counter", &CounterModel, 100_000, &cr);
    bench_store(&mut c, "orset1000_delta", &sets, 10_000, &delta);
    c.final_summary();
}
