//! A store larger than its memory budget: load, reopen, bytes on disk,
//! resident memory, and an anti-entropy session against it.
//!
//! ```text
//! cargo run --release -p accordant-sync --example disk_store [-- KEYS [DIR]]
//! ```
//!
//! Loads `KEYS` (default 1,000,000) uniformly random `u64` keys with 256-byte
//! `LwwRegister<Vec<u8>>` values into a redb store (a commit, with fsync,
//! every 100,000 writes; a 64 MiB page cache; written in key-hash order,
//! see `populate`) in `DIR` (default: the system's temporary directory),
//! reports the load rate and bytes on disk per key, then, in a fresh
//! process: the time to reopen the store (the digest tree rebuilt from the
//! item hashes, no value decoded) and the resident memory after it; and an anti-entropy session between
//! two handles on the file, one of which has 1,000 uncommitted new keys (so
//! the session reads the whole key space's tree and the changed ranges from
//! disk): its time, bytes, and the peak resident memory of the process
//! (VmHWM). The file is removed at the end.

use std::time::Instant;

use accordant::{Hlc, LwwRegister, ReplicaId};
use accordant_sync::digest::KeyHash;
use accordant_sync::key::key_bytes;
use accordant_sync::store::db::{DbOptions, Fsync, NodeIdentity, StoreDb};
use accordant_sync::store::Store;
use accordant_sync::{sync_pair, SessionConfig};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Reg = LwwRegister<Vec<u8>>;

fn status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--measure") {
        let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
        let path = std::path::PathBuf::from(args.get(2).expect("path"));
        measure(n, &path);
        return;
    }
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = args
        .get(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("accordant-disk-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("store.redb");
    println!("load average at start: {}", load());
    populate(n, &path);
    // Reopen and session in a fresh process: its memory is the store's,
    // not the loader's.
    let status = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--measure")
        .arg(n.to_string())
        .arg(&path)
        .status()
        .expect("measure");
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

fn me() -> NodeIdentity {
    NodeIdentity::new("bench", 1)
}

fn opts() -> DbOptions {
    DbOptions::default()
        .with_fsync(Fsync::Window(std::time::Duration::from_millis(2)))
        .with_cache_bytes(64 << 20)
}

/// Loads `n` random keys. They are written in key-hash order (the order
/// the file keeps them in), so each commit appends instead of rewriting
/// pages all over the file: random-order loading of a copy-on-write B-tree
/// with a commit every 100,000 writes rewrites most leaves at every commit.
fn populate(n: u64, path: &std::path::Path) {
    let replica = ReplicaId::from_u128(1);
    let db = StoreDb::open(path, &me(), opts()).expect("open");
    let mut s: Store<u64, Reg> = db.store("lww").expect("store");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let t = Instant::now();
    let mut keys: Vec<(u64, u64)> = (0..n)
        .map(|_| {
            let k: u64 = rng.random();
            (KeyHash::of(&key_bytes(&k)).0, k)
        })
        .collect();
    keys.sort_unstable();
    let mut payload = vec![0u8; 256];
    for (i, (_, key)) in keys.iter().enumerate() {
        let i = i as u64;
        rng.fill_bytes(&mut payload);
        let _ = s.update(*key, |r| {
            Ok::<_, ()>(r.write_at(Hlc::new(1_000 + i, 0), replica, payload.clone()))
        });
        if (i + 1).is_multiple_of(100_000) {
            s.commit().expect("commit");
        }
        if (i + 1).is_multiple_of(1_000_000) {
            println!(
                "{} keys: {:.0} s, VmRSS {:.0} MiB, {:.1} bytes on disk per key (load {})",
                i + 1,
                t.elapsed().as_secs_f64(),
                status("VmRSS:"),
                std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / (i + 1) as f64,
                load()
            );
        }
    }
    s.commit().expect("commit");
    drop(keys);
    let secs = t.elapsed().as_secs_f64();
    let file = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "loaded {n} keys in {secs:.1} s ({:.0} keys/s); {:.1} bytes on disk per key; VmRSS {:.0} MiB, peak VmHWM {:.0} MiB while loading (load {})",
        n as f64 / secs,
        file as f64 / n as f64,
        status("VmRSS:"),
        status("VmHWM:"),
        load()
    );
}

/// Reopens the store, then runs a session against it.
fn measure(n: u64, path: &std::path::Path) {
    println!(
        "fresh process: VmRSS {:.0} MiB before opening",
        status("VmRSS:")
    );
    let db = StoreDb::open(path, &me(), opts()).expect("reopen");
    let t = Instant::now();
    let mut a: Store<u64, Reg> = db.store("lww").expect("store");
    let reopen = t.elapsed().as_secs_f64();
    assert_eq!(a.len() as u64, n);
    println!(
        "reopened {} keys in {reopen:.2} s (tree rebuilt from item hashes, no value decoded); VmRSS {:.0} MiB (load {})",
        a.len(),
        status("VmRSS:"),
        load()
    );
    // A second handle with 1,000 new keys not yet committed.
    let mut b: Store<u64, Reg> = db.store("lww").expect("store");
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut payload = vec![0u8; 256];
    let changed = 1_000;
    for i in 0..changed {
        rng.fill_bytes(&mut payload);
        let key: u64 = rng.random();
        let _ = b.update(key, |r| {
            Ok::<_, ()>(r.write_at(
                Hlc::new(10 * n + i, 0),
                ReplicaId::from_u128(2),
                payload.clone(),
            ))
        });
    }
    let t = Instant::now();
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).expect("session");
    println!(
        "session over {} keys with {changed} changed: {:.2} s, {} + {} bytes, {} round trips; equal roots: {}; VmRSS {:.0} MiB, peak VmHWM {:.0} MiB (load {})",
        a.len(),
        t.elapsed().as_secs_f64(),
        sa.bytes_sent,
        sb.bytes_sent,
        sa.round_trips(),
        a.root_digest() == b.root_digest(),
        status("VmRSS:"),
        status("VmHWM:"),
        load()
    );
    drop(a);
    drop(b);
    drop(db);
}
