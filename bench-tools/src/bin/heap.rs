//! Heap bytes per element, exactly: `dhat` counts every byte allocated and
//! still live (requested sizes, without the allocator's own overhead).
//!
//! `heap [n ...]` prints one tab-separated line per measurement:
//! `kind  library  shape  elements  n  bytes_per_element`, for accordant and
//! crdts, OR-Set and OR-Map, states merged and grown by adds (see
//! `accordant_bench_tools::data`), random and sequential elements, at each
//! `n` (default 1000 10000 100000).
//!
//! The profiler is this binary's global allocator, which slows every
//! allocation down: that is why it is a binary of its own, never linked into
//! anything that is timed.

use accordant_bench_tools::data::{state, Elems, Shape};
use accordant_bench_tools::{AccMap, AccSet, CrdtsMap, CrdtsSet, Lib};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Live heap bytes per element of a state of `n` elements.
fn per_element<L: Lib>(shape: Shape, elems: Elems, n: u64) -> f64 {
    let before = dhat::HeapStats::get().curr_bytes;
    let s = state::<L>(shape, elems, n);
    let after = dhat::HeapStats::get().curr_bytes;
    assert_eq!(L::len(&s), n as usize, "{} built a wrong state", L::NAME);
    drop(s);
    after.saturating_sub(before) as f64 / n as f64
}

fn row<L: Lib>(shape: Shape, elems: Elems, n: u64) {
    println!(
        "{}\t{}\t{}\t{}\t{n}\t{:.1}",
        L::KIND,
        L::NAME,
        shape.label(),
        elems.label(),
        per_element::<L>(shape, elems, n)
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        sizes
    };
    let _profiler = dhat::Profiler::builder()
        .testing()
        .trim_backtraces(Some(4))
        .build();
    for &n in &sizes {
        for elems in [Elems::Random, Elems::Sequential] {
            for shape in [Shape::Merged, Shape::Grown] {
                row::<AccSet>(shape, elems, n);
                row::<CrdtsSet>(shape, elems, n);
                row::<AccMap>(shape, elems, n);
                row::<CrdtsMap>(shape, elems, n);
            }
        }
    }
}
