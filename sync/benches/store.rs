//! Digest maintenance: what keeping a [`Store`] under its Merkle digest tree
//! costs, at 10^4, 10^5 and 10^6 keys.
//!
//! ```text
//! cargo bench -p accordant-sync --bench store
//! ```
//!
//! - `store_build/{counter,lww256}/N`: building a store of `N` keys from
//!   ready values (`Store::join` of each: key encoding, key and item hashes,
//!   the ordered map, the tree, and its rebuilds as it grows), per store;
//! - `store_update/{counter,lww256}/N`: one local write to a random existing
//!   key (`Store::update`: the mutation, re-encoding the value, the item
//!   hash, one root-to-leaf path of the tree), per update;
//! - `tree_replace/N`: the tree's part alone, `DigestTree::replace` on a
//!   tree of the depth the store has at `N` keys, per update.
//!
//! Before the timings it prints `Store::digest_bytes` per key (the tree plus
//! the 8-byte key hash and 16-byte item hash kept per key) at each `N`. The
//! values are the `convergence` example's: a two-replica `GCounter` (about
//! 40 encoded bytes) and a 256-byte `LwwRegister<Vec<u8>>`.

#[allow(dead_code)]
#[path = "../examples/common/model.rs"]
mod model;

use std::hint::black_box;
use std::time::Duration;

use accordant::{GCounter, Hlc, ReplicaId};
use accordant_sync::digest::{ItemHash, KeyHash};
use accordant_sync::store::{Store, StoreValue};
use accordant_sync::tree::DigestTree;
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use model::{build_base, CounterModel, LwwModel, Model};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

fn values<M: Model>(m: &M, n: u64) -> Vec<(u64, M::V)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..n).map(|k| (k, m.base(&mut rng))).collect()
}

fn bench_build<M: Model>(c: &mut Criterion, name: &str, m: &M) {
    let mut g = c.benchmark_group(format!("store_build/{name}"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let vals = values(m, n);
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::from_parameter(n), &vals, |b, vals| {
            b.iter_batched_ref(
                || vals.clone(),
                |vals| {
                    let mut s: Store<u64, M::V> = Store::new();
                    for (k, v) in vals.iter() {
                        s.join(*k, v);
                    }
                    s
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn bench_update<V: StoreValue>(
    c: &mut Criterion,
    name: &str,
    mut store: Store<u64, V>,
    n: u64,
    mut write: impl FnMut(&mut V, u64),
) {
    let mut g = c.benchmark_group(format!("store_update/{name}"));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let keys: Vec<u64> = (0..1 << 16).map(|_| rng.random_range(0..n)).collect();
    let mut i = 0usize;
    let mut tick = 0u64;
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            i = (i + 1) & 0xffff;
            tick += 1;
            let _ = store.update(keys[i], |v| {
                write(v, tick);
                Ok::<V, ()>(V::default())
            });
        })
    });
    g.finish();
}

fn bench_tree(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree_replace");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut tree = DigestTree::with_depth(DigestTree::wanted_depth(n));
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let ops: Vec<(KeyHash, ItemHash, ItemHash)> = (0..1 << 16)
            .map(|_| {
                (
                    KeyHash(rng.random()),
                    ItemHash(rng.random()),
                    ItemHash(rng.random()),
                )
            })
            .collect();
        let mut i = 0usize;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                i = (i + 1) & 0xffff;
                let (h, old, new) = ops[i];
                tree.replace(black_box(h), old, new);
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let eu = ReplicaId::from_u128(1);
    let lww = LwwModel { bytes: 256 };
    for n in SIZES {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = build_base(&CounterModel, n, &mut rng);
        println!(
            "digest bytes per key at {n} counters: {:.2} (tree depth {}, tree {:.2} B/key)",
            s.digest_bytes() as f64 / n as f64,
            s.tree().depth(),
            s.tree().heap_bytes() as f64 / n as f64
        );
    }
    bench_build(&mut c, "counter", &CounterModel);
    bench_build(&mut c, "lww256", &lww);
    for n in SIZES {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let counters = build_base(&CounterModel, n, &mut rng);
        bench_update(&mut c, "counter", counters, n, |v: &mut GCounter, _| {
            let _ = v.increment(eu, 1);
        });
        let registers = build_base(&lww, n, &mut rng);
        let mut bytes = vec![0u8; 256];
        bench_update(&mut c, "lww256", registers, n, |v, tick| {
            bytes[..8].copy_from_slice(&tick.to_be_bytes());
            let _ = v.write_at(Hlc::new(10_000 + tick, 0), eu, bytes.clone());
        });
    }
    bench_tree(&mut c);
    c.final_summary();
}
