//! Instructions per `Store::update`, for callgrind (noise-free, run after
//! run; `perf` cannot count instructions on this kind of machine).
//!
//! ```text
//! cargo build --release -p accordant-sync --example callgrind_store_update
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' \
//!     --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/callgrind_store_update counter 100000 10000
//! callgrind_annotate /tmp/cg.out | head -30
//! ```
//!
//! Builds an in-memory store of `KEYS` uniformly random `u64` keys (`counter`:
//! three-replica `GCounter`s; `lww256`: 256-byte `LwwRegister<Vec<u8>>`s),
//! outside the measured region, then performs `UPDATES` updates of random
//! existing keys inside `measured`, keeping every delta (each write
//! changes its value: timestamps continue after the build's). The instruction
//! count callgrind reports for `measured` divided by `UPDATES` is the cost
//! of one update. Without valgrind it prints the wall time per update and
//! the time on CPU (which excludes time other processes ran on a loaded
//! machine; cache misses still count).

use std::hint::black_box;
use std::time::Instant;

use accordant::{GCounter, Hlc, LwwRegister, ReplicaId};
use accordant_sync::store::{Store, StoreValue};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[inline(never)]
fn measured<V: StoreValue>(
    store: &mut Store<u64, V>,
    keys: &[u64],
    write: &mut dyn FnMut(&mut V, u64) -> V,
    first_tick: u64,
) -> usize {
    let mut kept = 0;
    for (i, k) in keys.iter().enumerate() {
        let d = store.update(*k, |v| Ok::<V, ()>(write(v, first_tick + i as u64)));
        kept += usize::from(black_box(d).is_ok());
    }
    kept
}

fn run<V: StoreValue>(n: usize, updates: usize, mut write: impl FnMut(&mut V, u64) -> V) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let keys: Vec<u64> = (0..n).map(|_| rng.random()).collect();
    let mut store: Store<u64, V> = Store::new();
    for (i, k) in keys.iter().enumerate() {
        let _ = store.update(*k, |v| Ok::<V, ()>(write(v, i as u64)));
    }
    let picks: Vec<u64> = (0..updates)
        .map(|_| keys[rng.random_range(0..keys.len())])
        .collect();
    let (t, cpu) = (Instant::now(), on_cpu_ns());
    // Ticks continue after the build's, so every measured write changes
    // its value (an older LWW timestamp would lose and write nothing).
    let kept = measured(&mut store, &picks, &mut write, n as u64);
    let cpu = on_cpu_ns()
        .zip(cpu)
        .map(|(b, a)| (b - a) as f64 / 1e3 / updates as f64);
    println!(
        "{kept} updates at {} keys: {:.3} µs each wall, {} on CPU (use callgrind for instructions)",
        store.len(),
        t.elapsed().as_secs_f64() * 1e6 / updates as f64,
        cpu.map_or("-".into(), |c| format!("{c:.3} µs"))
    );
}

/// Nanoseconds this thread has run on a CPU (`/proc/thread-self/schedstat`,
/// Linux): on a loaded machine, wall time also counts the time others ran.
fn on_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "counter".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let updates: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let r = |i: u64| ReplicaId::from_u128(u128::from(i % 3) + 1);
    match kind.as_str() {
        "counter" => run::<GCounter>(n, updates, |c, i| c.increment(r(i), 1).unwrap_or_default()),
        "lww256" => {
            let mut bytes = vec![0u8; 256];
            run::<LwwRegister<Vec<u8>>>(n, updates, move |v, i| {
                bytes[..8].copy_from_slice(&i.to_be_bytes());
                v.write_at(Hlc::new(1_000 + i, 0), r(1), bytes.clone())
            })
        }
        other => eprintln!("unknown kind {other:?}: counter or lww256"),
    }
}
