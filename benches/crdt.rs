//! CRDT operation benchmarks: accordant side by side with `crdts` 7.3.2 and
//! `dson` 0.3.0, on the same data in the same run.
//!
//! Run it with `cargo bench --bench crdt` (a few minutes: small sample sizes
//! and measurement times are set below; `-- --quick` is faster still, and a
//! positional filter such as `-- or_set_merge` runs one group).
//!
//! What is measured, at n = 1e3, 1e4 and 1e5 elements:
//!
//! - `or_set_add`: add one new element to a set of about n;
//! - `or_set_remove`: remove one present element from it;
//! - `or_set_merge`: merge two states of about n elements each, built at 3
//!   replicas (the shape below);
//! - `or_map_update`: write one existing key of a map of about n keys to
//!   multi-value registers of `u64`;
//! - `or_map_merge`: merge two such maps.
//!
//! Contestants, each through its public delta/op API:
//!
//! - accordant: `OrSet<u64>`, `OrMap<u64, MvRegister<u64>>`;
//! - crdts: `Orswot<u64, A>`, `Map<u64, MVReg<u64, A>, A>` with actor type
//!   `A = [u8; 16]`, the width of accordant's UUID replica ids, so that
//!   encoded sizes compare fairly (a `u128` actor would be a short varint in
//!   postcard);
//! - dson: it has no standalone set; its `OrMap<u64>` of `MvReg` values is the
//!   closest (an element is a key holding the register value `true`; removal
//!   is observed-remove and a concurrent write wins, as in an add-wins set).
//!   The map benches use the same type with `u64` register values. dson's
//!   actor ids are its own 24-bit `Identifier`: narrower than 16 bytes, which
//!   favours dson in the encoded sizes.
//!
//! Every mutation keeps what it would ship: accordant returns its delta;
//! crdts' op and dson's delta are cloned into the local apply and kept. Merges
//! consume their argument in all three (accordant's `join_owned`), so dropping
//! the merged-in state is timed everywhere.
//!
//! Fixture, per n (`fixture`): a base of n/2 keys written round-robin by 3
//! replicas on their own states and then merged; state X is the base plus
//! replica 0 writing n/2 new keys, rewriting every 10th base key and
//! removing every 50th; state Y is the base plus replica 1 writing n/2 other
//! new keys, rewriting every 20th base key (concurrently with X: conflicts)
//! and removing a different 1 in 50. Adds, removes and updates are timed on
//! a copy of X in batches of 100, each followed by its untimed undo (the
//! added elements removed, the removed ones added again), so the state stays
//! near its size with no clone evicting the caches between batches; merges
//! compute X ⊔ Y on fresh clones. Element ids are `u64`s scrambled by a
//! bijection (`elem`), so they land at random positions in ordered and hashed
//! containers alike. Fixtures are built once, outside the timed loops, and
//! only for the groups a filter selects.
//!
//! dson's delta join walks its whole left operand (`DotMap::join` rebuilds
//! the map), so one local dson mutation costs O(n): its add, remove and
//! update numbers grow with n by design, not by a harness artefact.
//!
//! Before the timings, the binary prints encoded bytes per element
//! (accordant's canonical codec against postcard of the crdts state; dson's
//! state does not serialise with postcard, whose sequences need a known
//! length, which dson's `#[serde(flatten)]` field does not give) and the heap
//! bytes per element, measured as resident-memory growth per clone in a child
//! process, for the ids `0..n` written round-robin at 3 replicas (`-- sizes`
//! prints only this).

use std::hint::black_box;
use std::time::{Duration, Instant};

use accordant::{codec, Lattice, MvRegister, OrMap, OrSet, ReplicaId};
use crdts::{CmRDT, CvRDT};
use criterion::{BatchSize, BenchmarkId, Criterion};
use dson::crdts::mvreg::MvRegValue;
use dson::sentinel::DummySentinel;
use dson::{CausalContext as DsonContext, CausalDotStore, Identifier, MvReg};

/// Three replica ids: random version-4 UUIDs, so none is a short varint.
const ACTORS: [[u8; 16]; 3] = [
    [
        0xe6, 0xec, 0x2b, 0x51, 0x57, 0x67, 0x42, 0x4a, 0x86, 0x0e, 0xc8, 0x2d, 0xd5, 0x61, 0x02,
        0xdc,
    ],
    [
        0xda, 0xaf, 0x63, 0x77, 0x85, 0x11, 0x4c, 0x50, 0xab, 0x19, 0xd2, 0x98, 0x05, 0xbd, 0xe3,
        0x2d,
    ],
    [
        0x3a, 0xd5, 0x11, 0x3c, 0xdf, 0x1b, 0x45, 0x05, 0xa3, 0x84, 0x82, 0x98, 0xa1, 0x6c, 0x16,
        0xec,
    ],
];

const REPLICAS: [ReplicaId; 3] = [
    ReplicaId::from_bytes(ACTORS[0]),
    ReplicaId::from_bytes(ACTORS[1]),
    ReplicaId::from_bytes(ACTORS[2]),
];

const DSON_IDS: [Identifier; 3] = [
    Identifier::new(1, 0),
    Identifier::new(2, 0),
    Identifier::new(3, 0),
];

/// crdts' actor type: 16 bytes, like a `ReplicaId`.
type Actor = [u8; 16];

/// One library's OR-set or OR-map of registers, driven through its public
/// delta (or op) API.
trait Lib {
    /// The name in benchmark ids.
    const NAME: &'static str;
    /// The replica state.
    type State: Clone;

    /// The bottom state.
    fn empty() -> Self::State;

    /// Adds (set) or writes `v` under (map) `k` at replica `r`; keeps the
    /// delta or op as if to ship it.
    fn write(s: &mut Self::State, r: usize, k: u64, v: u64);

    /// Removes `k` at replica `r` (observed-remove); keeps the delta or op.
    fn remove(s: &mut Self::State, r: usize, k: u64);

    /// Merges a whole state into `s`, consuming it.
    fn merge(s: &mut Self::State, other: Self::State);

    /// Serialised state: accordant's canonical codec, postcard for the others.
    fn encode(s: &Self::State) -> Result<Vec<u8>, String>;

    /// Number of elements or keys.
    fn len(s: &Self::State) -> usize;

    /// Applies `writes` then `removes` at replica `r`, to build fixtures.
    /// Keys must not repeat within one batch.
    fn build(s: &mut Self::State, r: usize, writes: &[(u64, u64)], removes: &[u64]) {
        for &(k, v) in writes {
            Self::write(s, r, k, v);
        }
        for &k in removes {
            Self::remove(s, r, k);
        }
    }
}

// ---------------------------------------------------------------------------
// accordant

struct AccSet;

impl Lib for AccSet {
    const NAME: &'static str = "accordant";
    type State = OrSet<u64>;

    fn empty() -> Self::State {
        OrSet::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, _v: u64) {
        black_box(s.add(REPLICAS[r], k).expect("replica has dots left"));
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        black_box(s.remove(&k));
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.join_owned(other);
    }

    fn encode(s: &Self::State) -> Result<Vec<u8>, String> {
        Ok(codec::encode(s))
    }

    fn len(s: &Self::State) -> usize {
        s.len()
    }
}

struct AccMap;

impl Lib for AccMap {
    const NAME: &'static str = "accordant";
    type State = OrMap<u64, MvRegister<u64>>;

    fn empty() -> Self::State {
        OrMap::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, v: u64) {
        let delta = s.try_update(k, |reg| reg.write(REPLICAS[r], v));
        black_box(delta.expect("replica has dots left"));
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        black_box(s.remove(&k));
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.join_owned(other);
    }

    fn encode(s: &Self::State) -> Result<Vec<u8>, String> {
        Ok(codec::encode(s))
    }

    fn len(s: &Self::State) -> usize {
        s.len()
    }
}

// ---------------------------------------------------------------------------
// crdts

struct CrdtsSet;

impl Lib for CrdtsSet {
    const NAME: &'static str = "crdts";
    type State = crdts::Orswot<u64, Actor>;

    fn empty() -> Self::State {
        crdts::Orswot::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, _v: u64) {
        let ctx = s.read_ctx().derive_add_ctx(ACTORS[r]);
        let op = s.add(k, ctx);
        s.apply(op.clone());
        black_box(op);
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        // The set's clock as the remove context: every dot of `k` seen here.
        let ctx = s.read_ctx().derive_rm_ctx();
        let op = s.rm(k, ctx);
        s.apply(op.clone());
        black_box(op);
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.merge(other);
    }

    fn encode(s: &Self::State) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(s).map_err(|e| e.to_string())
    }

    fn len(s: &Self::State) -> usize {
        s.iter().count()
    }
}

struct CrdtsMap;

impl Lib for CrdtsMap {
    const NAME: &'static str = "crdts";
    type State = crdts::Map<u64, crdts::MVReg<u64, Actor>, Actor>;

    fn empty() -> Self::State {
        crdts::Map::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, v: u64) {
        let ctx = s.read_ctx().derive_add_ctx(ACTORS[r]);
        let op = s.update(k, ctx, |reg, c| reg.write(v, c));
        s.apply(op.clone());
        black_box(op);
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        let ctx = s.read_ctx().derive_rm_ctx();
        let op = s.rm(k, ctx);
        s.apply(op.clone());
        black_box(op);
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.merge(other);
    }

    fn encode(s: &Self::State) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(s).map_err(|e| e.to_string())
    }

    fn len(s: &Self::State) -> usize {
        s.len().val
    }
}

// ---------------------------------------------------------------------------
// dson

/// dson's `OrMap<u64>` of registers: a set (`SET`, every value `true`) or a
/// map of `u64` registers.
struct Dson<const SET: bool>;

type DsonState = CausalDotStore<dson::OrMap<u64>>;

impl<const SET: bool> Dson<SET> {
    fn value(v: u64) -> MvRegValue {
        if SET {
            MvRegValue::Bool(true)
        } else {
            MvRegValue::U64(v)
        }
    }

    fn write_delta(s: &DsonState, cc: &DsonContext, r: usize, k: u64, v: u64) -> DsonState {
        let value = Self::value(v);
        s.store.apply_to_register(
            |reg: &MvReg, cc: &DsonContext, id: Identifier| reg.write(value, cc, id),
            k,
            cc,
            DSON_IDS[r],
        )
    }
}

/// Joins many dson deltas pairwise (a dson join walks its whole left
/// operand, so joining them one by one into a large state is quadratic).
fn dson_join_all(mut v: Vec<DsonState>) -> DsonState {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(dson_join(a, b)),
                None => next.push(a),
            }
        }
        v = next;
    }
    v.pop().unwrap_or_default()
}

fn dson_join(a: DsonState, b: DsonState) -> DsonState {
    match a.join(b, &mut DummySentinel) {
        Ok(s) => s,
        Err(never) => match never {},
    }
}

impl<const SET: bool> Lib for Dson<SET> {
    const NAME: &'static str = "dson";
    type State = DsonState;

    fn empty() -> Self::State {
        CausalDotStore::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, v: u64) {
        let delta = Self::write_delta(s, &s.context, r, k, v);
        s.join_or_replace_with(delta.store.clone(), &delta.context);
        black_box(delta);
    }

    fn remove(s: &mut Self::State, r: usize, k: u64) {
        let delta = s.store.remove(&k, &s.context, DSON_IDS[r]);
        s.join_or_replace_with(delta.store.clone(), &delta.context);
        black_box(delta);
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.join_or_replace_with(other.store, &other.context);
    }

    fn encode(s: &Self::State) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(s).map_err(|e| e.to_string())
    }

    fn len(s: &Self::State) -> usize {
        s.store.len()
    }

    /// The same deltas as one-by-one writes and removes, made against the
    /// state before the batch (keys do not repeat) with the context advanced
    /// by hand, and joined pairwise.
    fn build(s: &mut Self::State, r: usize, writes: &[(u64, u64)], removes: &[u64]) {
        let mut cc = s.context.clone();
        let mut deltas = Vec::with_capacity(writes.len() + removes.len());
        for &(k, v) in writes {
            let d = Self::write_delta(s, &cc, r, k, v);
            cc.union(&d.context);
            deltas.push(d);
        }
        for k in removes {
            deltas.push(s.store.remove(k, &cc, DSON_IDS[r]));
        }
        let delta = dson_join_all(deltas);
        s.join_or_replace_with(delta.store, &delta.context);
    }
}

// ---------------------------------------------------------------------------
// Fixtures

/// The element (or key) numbered `k`: a bijective scramble, so that elements
/// land at random positions in ordered and hashed containers alike (sequential
/// ids would favour B-trees, whose appends all hit the rightmost leaf).
fn elem(k: u64) -> u64 {
    k.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The two states X and Y described in the crate docs.
fn fixture<L: Lib>(n: u64) -> (L::State, L::State) {
    let half = n / 2;
    let base = round_robin::<L>(half, elem);
    let rewrite = |step: u64, delta: u64| -> Vec<(u64, u64)> {
        (0..half)
            .step_by(step as usize)
            .map(|k| (elem(k), k + delta))
            .collect()
    };
    let removes = |offset: u64| -> Vec<u64> { (offset..half).step_by(50).map(elem).collect() };

    let mut x = base.clone();
    let mut writes: Vec<(u64, u64)> = (half..n).map(|k| (elem(k), k)).collect();
    writes.extend(rewrite(10, 1));
    L::build(&mut x, 0, &writes, &removes(5));

    let mut y = base;
    let mut writes: Vec<(u64, u64)> = (n..n + half).map(|k| (elem(k), k)).collect();
    writes.extend(rewrite(20, 2));
    L::build(&mut y, 1, &writes, &removes(35));
    (x, y)
}

/// Elements `key(0..n)`, element `key(k)` written (with value `k`) by
/// replica `k % 3` on its own state, then the three states merged.
fn round_robin<L: Lib>(n: u64, key: fn(u64) -> u64) -> L::State {
    let mut merged = L::empty();
    for r in 0..3 {
        let mut s = L::empty();
        let writes: Vec<(u64, u64)> = (0..n)
            .filter(|k| k % 3 == r as u64)
            .map(|k| (key(k), k))
            .collect();
        L::build(&mut s, r, &writes, &[]);
        L::merge(&mut merged, s);
    }
    merged
}

// ---------------------------------------------------------------------------
// Timed groups

/// Operations timed back to back before the untimed undo.
const BATCH: u64 = 100;

/// Times `iters` calls of `op` on `s` (call `i` gets `first + i`), in
/// batches of `BATCH`, each followed by the untimed `undo` of its
/// operations, so the state stays near its size without cloning it (a clone
/// would evict the caches before every batch).
fn batched<S>(
    s: &mut S,
    first: u64,
    iters: u64,
    mut op: impl FnMut(&mut S, u64),
    mut undo: impl FnMut(&mut S, u64),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let todo = first + done..first + done + BATCH.min(iters - done);
        let start = Instant::now();
        for i in todo.clone() {
            op(s, i);
        }
        total += start.elapsed();
        for i in todo.clone() {
            undo(s, i);
        }
        done += todo.end - todo.start;
    }
    total
}

fn bench_lib<L: Lib>(c: &mut Criterion, prefix: &str, n: u64, fixture: &(L::State, L::State)) {
    let (x, y) = fixture;
    // The n/2 keys X wrote itself: present, and written by one replica.
    let own = move |i: u64| elem(n / 2 + i % (n / 2));

    if prefix == "or_set" {
        let mut g = c.benchmark_group("or_set_add");
        g.bench_function(BenchmarkId::new(L::NAME, n), |b| {
            // A fresh element each time, at replica 2; removed again untimed.
            let (mut s, mut next) = (x.clone(), 0);
            b.iter_custom(|iters| {
                let fresh = move |i: u64| elem(10 * n + i);
                let t = batched(
                    &mut s,
                    next,
                    iters,
                    |s, i| L::write(s, 2, fresh(i), 0),
                    |s, i| L::remove(s, 2, fresh(i)),
                );
                next += iters;
                t
            });
        });
        g.finish();

        let mut g = c.benchmark_group("or_set_remove");
        g.bench_function(BenchmarkId::new(L::NAME, n), |b| {
            // A present element each time; added again (at replica 0) untimed.
            let (mut s, mut next) = (x.clone(), 0);
            b.iter_custom(|iters| {
                let t = batched(
                    &mut s,
                    next,
                    iters,
                    |s, i| L::remove(s, 2, own(i)),
                    |s, i| L::write(s, 0, own(i), 0),
                );
                next += iters;
                t
            });
        });
        g.finish();
    } else {
        let mut g = c.benchmark_group("or_map_update");
        g.bench_function(BenchmarkId::new(L::NAME, n), |b| {
            // Overwrite a present key at replica 2 (a write that has seen
            // the value it replaces).
            let (mut s, mut next) = (x.clone(), 0);
            b.iter_custom(|iters| {
                let t = batched(
                    &mut s,
                    next,
                    iters,
                    |s, i| L::write(s, 2, own(i), i),
                    |_, _| {},
                );
                next += iters;
                t
            });
        });
        g.finish();
    }

    let mut g = c.benchmark_group(format!("{prefix}_merge"));
    g.bench_function(BenchmarkId::new(L::NAME, n), |b| {
        b.iter_batched(
            || (x.clone(), y.clone()),
            |(mut x, y)| {
                L::merge(&mut x, y);
                x
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn bench_size(c: &mut Criterion, n: u64, filter: Option<&str>) {
    if wanted(filter, "or_set", n) {
        let acc = fixture::<AccSet>(n);
        let crdts = fixture::<CrdtsSet>(n);
        let dson = fixture::<Dson<true>>(n);
        check_same_len::<AccSet, CrdtsSet, Dson<true>>(&acc, &crdts, &dson);
        bench_lib::<AccSet>(c, "or_set", n, &acc);
        bench_lib::<CrdtsSet>(c, "or_set", n, &crdts);
        bench_lib::<Dson<true>>(c, "or_set", n, &dson);
    }
    if wanted(filter, "or_map", n) {
        let acc = fixture::<AccMap>(n);
        let crdts = fixture::<CrdtsMap>(n);
        let dson = fixture::<Dson<false>>(n);
        check_same_len::<AccMap, CrdtsMap, Dson<false>>(&acc, &crdts, &dson);
        bench_lib::<AccMap>(c, "or_map", n, &acc);
        bench_lib::<CrdtsMap>(c, "or_map", n, &crdts);
        bench_lib::<Dson<false>>(c, "or_map", n, &dson);
    }
}

/// Whether the criterion filter can match a benchmark of `kind` at `n`, so
/// that fixtures nobody will time are not built. A filter with regex syntax
/// is assumed to match.
fn wanted(filter: Option<&str>, kind: &str, n: u64) -> bool {
    let Some(f) = filter else { return true };
    if f.contains(|c: char| "^$.*+?()[]{}|\\".contains(c)) {
        return true;
    }
    ["add", "remove", "merge", "update"].iter().any(|op| {
        ["accordant", "crdts", "dson"]
            .iter()
            .any(|lib| format!("{kind}_{op}/{lib}/{n}").contains(f))
    })
}

/// Sizes of X, Y and X ⊔ Y: the libraries must have built the same fixture.
fn lens<L: Lib>(f: &(L::State, L::State)) -> (usize, usize, usize) {
    let mut m = f.0.clone();
    L::merge(&mut m, f.1.clone());
    (L::len(&f.0), L::len(&f.1), L::len(&m))
}

fn check_same_len<A: Lib, B: Lib, C: Lib>(
    a: &(A::State, A::State),
    b: &(B::State, B::State),
    c: &(C::State, C::State),
) {
    let la = lens::<A>(a);
    assert_eq!(la, lens::<B>(b), "accordant and crdts fixtures differ");
    assert_eq!(la, lens::<C>(c), "accordant and dson fixtures differ");
}

// ---------------------------------------------------------------------------
// Sizes (printed once, not timed by criterion)

/// Bytes of `k` as a postcard varint: what any encoding of the element
/// costs, subtracted to show the metadata per element.
fn varint_len(k: u64) -> usize {
    (64 - k.max(1).leading_zeros() as usize).div_ceil(7)
}

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Heap bytes per element of `s`, measured as the growth of resident memory
/// when cloning it. Run in a child process that built only `s` (see
/// `heap_probe`); its first clones still reuse memory freed while building,
/// so several are made and the last growth is reported. Includes allocator
/// overhead; resolution is a page, so small `n` reads coarse.
fn heap_per_elem<S: Clone>(s: &S, n: usize) -> Option<f64> {
    let mut clones = Vec::new();
    let mut growth = 0;
    for _ in 0..8 {
        let before = rss_bytes()?;
        clones.push(s.clone());
        growth = rss_bytes()?.saturating_sub(before);
    }
    Some(growth as f64 / n as f64)
}

/// Environment variable that turns this binary into a heap probe.
const HEAP_PROBE: &str = "ACCORDANT_BENCH_HEAP_PROBE";

/// In the child: builds the state named by `spec` (`kind:library:n`) and
/// prints its heap bytes per element.
fn heap_probe(spec: &str) {
    fn probe<L: Lib>(n: u64) -> Option<f64> {
        let s = round_robin::<L>(n, |k| k);
        heap_per_elem(&s, n as usize)
    }
    let mut parts = spec.split(':');
    let (kind, lib) = (parts.next(), parts.next());
    let n: u64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let per = match (kind, lib) {
        (Some("or_set"), Some("accordant")) => probe::<AccSet>(n),
        (Some("or_set"), Some("crdts")) => probe::<CrdtsSet>(n),
        (Some("or_set"), Some("dson")) => probe::<Dson<true>>(n),
        (Some("or_map"), Some("accordant")) => probe::<AccMap>(n),
        (Some("or_map"), Some("crdts")) => probe::<CrdtsMap>(n),
        (Some("or_map"), Some("dson")) => probe::<Dson<false>>(n),
        _ => None,
    };
    if let Some(per) = per {
        println!("{per:.0}");
    }
}

/// Runs the heap probe for one state in a fresh process.
fn heap_in_child(kind: &str, lib: &str, n: u64) -> String {
    let out = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .env(HEAP_PROBE, format!("{kind}:{lib}:{n}"))
            .output()
    });
    match out {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        }
        _ => "n/a".to_string(),
    }
}

fn size_row<L: Lib>(kind: &str, n: u64, key_bytes: usize) -> Option<f64> {
    let s = round_robin::<L>(n, |k| k);
    assert_eq!(L::len(&s), n as usize);
    let mem = heap_in_child(kind, L::NAME, n);
    match L::encode(&s) {
        Ok(bytes) => {
            let per = bytes.len() as f64 / n as f64;
            let meta = (bytes.len() - key_bytes) as f64 / n as f64;
            println!(
                "{kind:<7} {:<10} {n:>7} {:>10} {per:>10.2} {meta:>10.2} {mem:>10}",
                L::NAME,
                bytes.len()
            );
            Some(per)
        }
        Err(e) => {
            println!(
                "{kind:<7} {:<10} {n:>7} {:>10} {:>10} {:>10} {mem:>10}   (postcard: {e})",
                L::NAME,
                "-",
                "-",
                "-",
            );
            None
        }
    }
}

fn report_sizes(sizes: &[u64]) {
    println!("Encoded and in-memory size, n elements written round-robin at 3 replicas");
    println!("(elements/keys 0..n as u64; map values = key; 'meta' excludes the key's varint)");
    println!(
        "{:<7} {:<10} {:>7} {:>10} {:>10} {:>10} {:>10}",
        "type", "library", "n", "bytes", "bytes/el", "meta/el", "heap/el"
    );
    for &n in sizes {
        let keys: usize = (0..n).map(varint_len).sum();
        let a = size_row::<AccSet>("or_set", n, keys);
        let b = size_row::<CrdtsSet>("or_set", n, keys);
        size_row::<Dson<true>>("or_set", n, keys);
        if let (Some(a), Some(b)) = (a, b) {
            println!(
                "or_set  accordant/crdts encoded ratio at n = {n}: {:.3}",
                a / b
            );
        }
        let a = size_row::<AccMap>("or_map", n, 2 * keys);
        let b = size_row::<CrdtsMap>("or_map", n, 2 * keys);
        size_row::<Dson<false>>("or_map", n, 2 * keys);
        if let (Some(a), Some(b)) = (a, b) {
            println!(
                "or_map  accordant/crdts encoded ratio at n = {n}: {:.3}",
                a / b
            );
        }
    }
    println!();
}

// ---------------------------------------------------------------------------

/// Criterion flags that take a value, so the value is not read as a filter.
const VALUE_FLAGS: &[&str] = &[
    "--save-baseline",
    "--baseline",
    "--baseline-lenient",
    "--load-baseline",
    "--color",
    "--output-format",
    "--plotting-backend",
    "--sample-size",
    "--warm-up-time",
    "--measurement-time",
    "--nresamples",
    "--noise-threshold",
    "--confidence-level",
    "--significance-level",
    "--profile-time",
    "--format",
];

fn main() {
    if let Ok(spec) = std::env::var(HEAP_PROBE) {
        heap_probe(&spec);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut filter = None;
    let mut skip = false;
    for a in &args {
        if skip {
            skip = false;
        } else if VALUE_FLAGS.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            filter = Some(a.as_str());
        }
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`)
    // criterion runs every benchmark once as a test: keep that quick.
    let benching = args.iter().any(|a| a == "--bench");
    let listing = args.iter().any(|a| a == "--list");
    let sizes: &[u64] = if benching {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000]
    };

    let sizes_wanted = match filter {
        None => true,
        Some(f) => "sizes".contains(f),
    };
    if !listing && sizes_wanted {
        report_sizes(sizes);
    }
    if filter == Some("sizes") {
        return;
    }

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for &n in sizes {
        bench_size(&mut c, n, filter);
    }
    c.final_summary();
}
