//! Digest maintenance: what keeping a [`Store`] under its Merkle digest tree
//! costs, at 10^4, 10^5 and 10^6 keys.
//!
//! ```text
//! cargo bench -p accordant-sync --bench store
//! ```
//!
//! Keys are uniformly random `u64`s over the whole key space (not `0..N`),
//! and every update's delta is kept (returned and consumed), as a user's
//! write path does.
//!
//! - `store_build/{counter,lww256}/N`: building an in-memory store of `N`
//!   keys from ready values (`Store::join` of each: key encoding, key and
//!   item hashes, the record in the arena, its slot in the key-hash
//!   buckets, the tree, and its rebuilds as it grows), per store;
//! - `store_update/{counter,lww256}/N`: one local write to a random existing
//!   key of an in-memory store (`Store::update`: decoding the stored value,
//!   the mutation, re-encoding, the item hash, the record rewritten in
//!   place, one root-to-leaf path of the tree and its coded symbols), per
//!   update;
//! - `store_update_redb/{counter,lww256}/N`: the same on the redb backend
//!   (the value read from the file or its cache, the write staged; commits
//!   are measured by the `ack_latency` example), at 10^4 and 10^5 keys;
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
use accordant_sync::store::db::{DbOptions, Fsync, NodeIdentity, StoreDb};
use accordant_sync::store::{Store, StoreValue};
use accordant_sync::tree::DigestTree;
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use model::{build_base, CounterModel, LwwModel, Model};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

fn values<M: Model>(m: &M, n: u64) -> Vec<(u64, M::V)> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    (0..n).map(|_| (rng.random(), m.base(&mut rng))).collect()
}

/// A store of `n` random keys with the model's values, on `store`'s backend.
fn fill<M: Model>(m: &M, n: u64, mut store: Store<u64, M::V>) -> (Store<u64, M::V>, Vec<u64>) {
    let vals = values(m, n);
    let keys = vals.iter().map(|(k, _)| *k).collect();
    for (k, v) in vals {
        store.join(k, &v);
    }
    let _ = store.commit();
    (store, keys)
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
    group: &str,
    name: &str,
    (mut store, all): (Store<u64, V>, Vec<u64>),
    mut write: impl FnMut(&mut V, u64) -> V,
) {
    let n = all.len() as u64;
    let mut g = c.benchmark_group(format!("{group}/{name}"));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let keys: Vec<u64> = (0..1 << 16)
        .map(|_| all[rng.random_range(0..all.len())])
        .collect();
    let mut i = 0usize;
    let mut tick = 0u64;
    g.bench_function(BenchmarkId::from_parameter(n), |b| {
        b.iter(|| {
            i = (i + 1) & 0xffff;
            tick += 1;
            let delta = store.update(keys[i], |v| Ok::<V, ()>(write(v, tick)));
            black_box(delta)
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
        let counters = fill(&CounterModel, n, Store::new());
        bench_update(
            &mut c,
            "store_update",
            "counter",
            counters,
            |v: &mut GCounter, _| v.increment(eu, 1).unwrap_or_default(),
        );
        let registers = fill(&lww, n, Store::new());
        let mut bytes = vec![0u8; 256];
        bench_update(&mut c, "store_update", "lww256", registers, |v, tick| {
            bytes[..8].copy_from_slice(&tick.to_be_bytes());
            v.write_at(Hlc::new(10_000 + tick, 0), eu, bytes.clone())
        });
    }
    let dir = std::env::temp_dir().join(format!("accordant-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let opts = DbOptions::default().with_fsync(Fsync::Off);
    let db = StoreDb::open(dir.join("bench.redb"), &NodeIdentity::new("bench", 1), opts)
        .expect("database");
    for n in [10_000, 100_000] {
        let counters = fill(
            &CounterModel,
            n,
            db.store(&format!("counter{n}")).expect("store"),
        );
        bench_update(
            &mut c,
            "store_update_redb",
            "counter",
            counters,
            |v: &mut GCounter, _| v.increment(eu, 1).unwrap_or_default(),
        );
        let registers = fill(&lww, n, db.store(&format!("lww{n}")).expect("store"));
        let mut bytes = vec![0u8; 256];
        bench_update(
            &mut c,
            "store_update_redb",
            "lww256",
            registers,
            |v, tick| {
                bytes[..8].copy_from_slice(&tick.to_be_bytes());
                v.write_at(Hlc::new(10_000 + tick, 0), eu, bytes.clone())
            },
        );
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    bench_tree(&mut c);
    c.final_summary();
}
