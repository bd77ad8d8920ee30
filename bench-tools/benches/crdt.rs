//! Criterion groups of CRDT operations: accordant, crdts 7.3.2 and dson
//! 0.3.0 on the same random data.
//!
//! `cargo bench -p accordant-bench-tools --bench crdt` (a positional filter
//! such as `-- or_set_add` runs one group; `-- --quick` is faster). For the
//! ratio table, with the libraries alternated in one process, use
//! `scripts/bench-summary`: criterion times one benchmark after another, so
//! machine noise can fall on one library and not the other.
//!
//! Groups, at n = 1e3, 1e4 and 1e5 (the fixture X / Y of
//! `accordant_bench_tools::data::fixture`): `or_set_add` (a fresh element,
//! at replica 2), `or_set_remove` (a present element), `or_set_merge`
//! (X ⊔ Y), `or_map_add` (a fresh key), `or_map_update` (overwrite a present
//! key), `or_map_merge`. Mutations run in batches of 100, each followed by
//! its untimed undo, so the state stays near its size without a clone
//! evicting the caches.
//!
//! dson's delta join walks its whole left operand (its `DotMap::join`
//! rebuilds the map), so one dson mutation costs O(n): its numbers grow with
//! n by design, not by a harness artefact.

use std::time::Duration;

use accordant_bench_tools::data::{fixture, fixture_lens};
use accordant_bench_tools::timing::{timed, Op};
use accordant_bench_tools::{AccMap, AccSet, CrdtsMap, CrdtsSet, Dson, Lib};
use criterion::{BenchmarkId, Criterion};

fn bench_lib<L: Lib + 'static>(c: &mut Criterion, ops: &[Op], n: u64, f: &(L::State, L::State))
where
    L::State: 'static,
{
    for &op in ops {
        let mut g = c.benchmark_group(format!("{}_{}", L::KIND, op.label()));
        g.bench_function(BenchmarkId::new(L::NAME, n), |b| {
            let mut t = timed::<L>(op, n, f.clone());
            b.iter_custom(|iters| t.run(iters));
        });
        g.finish();
    }
}

fn bench_kind<A, B, C>(c: &mut Criterion, ops: &[Op], n: u64)
where
    A: Lib + 'static,
    B: Lib + 'static,
    C: Lib + 'static,
    A::State: 'static,
    B::State: 'static,
    C::State: 'static,
{
    let (fa, fb, fc) = (fixture::<A>(n), fixture::<B>(n), fixture::<C>(n));
    let lens = fixture_lens::<A>(&fa);
    assert_eq!(lens, fixture_lens::<B>(&fb), "fixtures differ");
    assert_eq!(lens, fixture_lens::<C>(&fc), "fixtures differ");
    bench_lib::<A>(c, ops, n, &fa);
    bench_lib::<B>(c, ops, n, &fb);
    bench_lib::<C>(c, ops, n, &fc);
}

/// Whether a criterion filter can match a group of `kind` at `n`, so that
/// fixtures nobody will time are not built (a regex is assumed to match).
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
    let sizes: &[u64] = if args.iter().any(|a| a == "--bench") {
        &[1_000, 10_000, 100_000]
    } else {
        &[1_000]
    };
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    for &n in sizes {
        if wanted(filter, "or_set", n) {
            bench_kind::<AccSet, CrdtsSet, Dson<true>>(
                &mut c,
                &[Op::Add, Op::Remove, Op::Merge],
                n,
            );
        }
        if wanted(filter, "or_map", n) {
            bench_kind::<AccMap, CrdtsMap, Dson<false>>(
                &mut c,
                &[Op::Add, Op::Update, Op::Merge],
                n,
            );
        }
    }
    c.final_summary();
}
