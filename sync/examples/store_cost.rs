//! What a `Store` costs per key in memory, beyond its values' own heap.
//!
//! ```text
//! cargo run --release -p accordant-sync --example store_cost [-- KEYS]
//! ```
//!
//! Builds in-memory stores of `KEYS` (default 1,000,000) uniformly random
//! `u64` keys by local writes (`Store::update`, as users grow them): a
//! three-replica `GCounter` (three increments per key) and a 256-byte
//! `LwwRegister<Vec<u8>>`. The store's heap is the growth of resident
//! memory when a copy of it is made (`Store::clone`, the third of three so
//! freed memory is reused; allocator overhead included, as the core
//! crate's heap probe does); the values' own heap (the growth for a
//! `Vec<V>` of the same values, less its `len * size_of::<V>()` buffer) is
//! subtracted, so what is left is the store's cost: the key-hash index, the
//! per-key records (item hash, key and value encodings), the digest tree. It then opens the
//! same items in a redb file (`Fsync::Off`, one commit) and reports the heap
//! that store keeps in memory once committed (its tree; values on disk).

use accordant::{GCounter, Hlc, LwwRegister, ReplicaId};
use accordant_sync::store::db::{DbOptions, Fsync, NodeIdentity, StoreDb};
use accordant_sync::store::{Store, StoreValue};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn rss() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Heap growth of making `make()` (the last of three, so memory freed
/// while building is reused by the earlier ones).
fn growth<T>(mut make: impl FnMut() -> T) -> (isize, Vec<T>) {
    let mut kept = Vec::new();
    let mut g = 0;
    for _ in 0..3 {
        let before = rss();
        kept.push(make());
        g = rss() - before;
    }
    (g, kept)
}

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

/// Builds the store by local writes; returns it and the values (for their
/// own heap).
fn measure<V: StoreValue + Clone>(
    name: &str,
    keys: &[u64],
    mut write: impl FnMut(&mut V, usize) -> V,
) {
    let mut store: Store<u64, V> = Store::new();
    for (i, k) in keys.iter().enumerate() {
        let _ = store.update(*k, |v| Ok::<V, ()>(write(v, i)));
    }
    let (store_heap, copies) = growth(|| store.clone());
    // The copies stay alive, so the values below get fresh memory.
    let (vec_heap, values) = growth(|| store.iter().map(|(_, v)| v).collect::<Vec<V>>());
    let values_heap = vec_heap - (store.len() * size_of::<V>()) as isize;
    let n = store.len() as f64;
    println!(
        "{name}: {n} keys: store heap {:.1} B/key, values' own heap {:.1} B/key, store beyond values {:.1} B/key (tree {:.1} B/key, size_of::<V>() = {})",
        store_heap as f64 / n,
        values_heap as f64 / n,
        (store_heap - values_heap) as f64 / n,
        store.tree().heap_bytes() as f64 / n,
        size_of::<V>()
    );
    drop(values);
    drop(copies);
    // The same items on disk: what stays in memory once committed.
    let dir = std::env::temp_dir().join(format!("accordant-store-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("cost.redb");
    let _ = std::fs::remove_file(&path);
    let opts = DbOptions::default()
        .with_fsync(Fsync::Off)
        .with_cache_bytes(16 << 20);
    let db = StoreDb::open(&path, &NodeIdentity::new("cost", 1), opts).expect("db");
    let mut disk: Store<u64, V> = db.store(name).expect("store");
    for (k, v) in store.iter() {
        disk.join(k, &v);
    }
    disk.commit().expect("commit");
    drop(store);
    println!(
        "{name}: on redb, committed: {:.1} B/key in memory (Store::heap_bytes: the tree and nothing staged; redb's page cache is capped at 16 MiB)",
        disk.heap_bytes() as f64 / n
    );
    drop(disk);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let keys: Vec<u64> = (0..n).map(|_| rng.random()).collect();
    measure::<GCounter>("counter3", &keys, |c, i| {
        let mut d = GCounter::new();
        for rep in 1..=3 {
            d = c
                .increment(r(rep), (i as u64 % 1000) + rep as u64)
                .expect("no overflow");
        }
        d
    });
    let mut payload = vec![0u8; 256];
    measure::<LwwRegister<Vec<u8>>>("lww256", &keys, |reg, i| {
        rng.fill_bytes(&mut payload);
        reg.write_at(Hlc::new(1_000 + i as u64, 0), r(1), payload.clone())
    });
}
