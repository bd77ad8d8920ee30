//! Measuring `accordant` the way its users see it, beside `crdts` 7.3.2 (and
//! `dson` 0.3.0 in the criterion bench).
//!
//! This crate is never published: it holds the benchmark harness, so the
//! comparison peers and the heap profiler stay out of `accordant`'s own
//! manifest, and its binaries have fixed paths under `target/release/` that
//! the scripts can call.
//!
//! - [`contestants`]: one trait, [`Lib`], implemented for each library's
//!   OR-Set and OR-Map of multi-value registers through its public API, the
//!   way its documentation says to use it.
//! - [`data`]: the elements (random `u64`s, or the sequential ids `0..n` as a
//!   labelled second row), and the states the numbers are taken on: *merged*
//!   (three replicas each write a third, then the states are merged) and
//!   *grown* (one state grown by adds at three replicas in turn), and the
//!   X / Y fixtures the timed operations run on.
//! - [`timing`]: operations timed with the libraries **alternated** in one
//!   process, round after round, so that the noise of a shared machine falls
//!   on all of them alike; medians with quartiles.
//!
//! Binaries: `summary` (the one table: times, encoded sizes, heap), `heap`
//! (exact heap bytes per element through `dhat`), `callgrind-ops` (one kind
//! of operation in a function of its own, for `valgrind --tool=callgrind`).
//! The commands that run them are `scripts/bench-summary` and
//! `scripts/callgrind.sh`; `cargo bench -p accordant-bench-tools` runs the
//! criterion groups.

pub mod contestants;
pub mod data;
pub mod timing;

pub use contestants::{AccMap, AccSet, CrdtsMap, CrdtsSet, Dson, Lib};
