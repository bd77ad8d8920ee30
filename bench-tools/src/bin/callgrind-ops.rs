//! One kind of operation, in a function of its own, for
//! `valgrind --tool=callgrind --toggle-collect='*measured_*'`.
//!
//! `callgrind-ops KIND OP LIB N COUNT` builds the fixture of about `N`
//! elements (`accordant_bench_tools::data::fixture`, outside the measured
//! function) and runs `COUNT` operations `OP` (`add`, `remove`, `update` or
//! `merge`, one merge whatever `COUNT`) of library `LIB` (`accordant` or `crdts`) on the `KIND`
//! (`or_set` or `or_map`), each inside `measured_op` (or `measured_merge`),
//! the only functions whose instructions callgrind collects. As in the
//! wall-clock harness, each add is undone (and each remove redone) outside
//! them, so the state keeps its size and no rare table resize lands in, or
//! escapes, a short run. `scripts/callgrind.sh` divides the count
//! by `COUNT`. Instruction counts are the same run after run, so they
//! compare changes that wall-clock noise would hide.

use std::hint::black_box;
use std::process::ExitCode;

use accordant_bench_tools::data::{fixture, fresh, present};
use accordant_bench_tools::{AccMap, AccSet, CrdtsMap, CrdtsSet, Lib};

/// One measured operation; everything else (setup, the undo that keeps
/// the state at its size, as in the wall-clock harness) is not collected.
#[inline(never)]
fn measured_op<L: Lib>(op: &str, n: u64, i: u64, x: &mut L::State) {
    match op {
        "add" => L::write(x, 2, fresh(n, i), i),
        "remove" => L::remove(x, 2, present(n, i)),
        "update" => L::write(x, 2, present(n, i), i),
        _ => {}
    }
}

/// One measured merge, `X ⊔ Y`, consuming Y.
#[inline(never)]
fn measured_merge<L: Lib>(x: &mut L::State, y: L::State) {
    L::merge(x, y);
}

fn run<L: Lib>(op: &str, n: u64, count: u64) {
    let (mut x, y) = fixture::<L>(n);
    if op == "merge" {
        measured_merge::<L>(&mut x, y);
    } else {
        for i in 0..count {
            measured_op::<L>(op, n, i, &mut x);
            match op {
                "add" => L::remove(&mut x, 2, fresh(n, i)),
                "remove" => L::write(&mut x, 0, present(n, i), i),
                _ => {}
            }
        }
    }
    black_box(&x);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, op, lib, n, count] = args.as_slice() else {
        eprintln!("usage: callgrind-ops KIND OP LIB N COUNT");
        return ExitCode::FAILURE;
    };
    let (Ok(n), Ok(count)) = (n.parse::<u64>(), count.parse::<u64>()) else {
        eprintln!("N and COUNT are numbers");
        return ExitCode::FAILURE;
    };
    match (kind.as_str(), lib.as_str()) {
        ("or_set", "accordant") => run::<AccSet>(op, n, count),
        ("or_set", "crdts") => run::<CrdtsSet>(op, n, count),
        ("or_map", "accordant") => run::<AccMap>(op, n, count),
        ("or_map", "crdts") => run::<CrdtsMap>(op, n, count),
        _ => {
            eprintln!("unknown kind or library: {kind} {lib}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
