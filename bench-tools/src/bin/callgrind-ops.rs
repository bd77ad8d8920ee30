//! One kind of operation, in a function of its own, for
//! `valgrind --tool=callgrind --toggle-collect='*measured_op*'`.
//!
//! `callgrind-ops KIND OP LIB N COUNT` builds the fixture of about `N`
//! elements (`accordant_bench_tools::data::fixture`, outside the measured
//! function) and runs `COUNT` operations `OP` (`add`, `remove`, `update` or
//! `merge`, one merge whatever `COUNT`) of library `LIB` (`accordant` or `crdts`) on the `KIND`
//! (`or_set` or `or_map`) inside `measured_op`, the only function whose
//! instructions callgrind collects. `scripts/callgrind.sh` divides the count
//! by `COUNT`. Instruction counts are the same run after run, so they
//! compare changes that wall-clock noise would hide.

use std::hint::black_box;
use std::process::ExitCode;

use accordant_bench_tools::data::{fixture, fresh, present};
use accordant_bench_tools::{AccMap, AccSet, CrdtsMap, CrdtsSet, Lib};

/// The measured operations; everything else is setup.
#[inline(never)]
fn measured_op<L: Lib>(op: &str, n: u64, count: u64, x: &mut L::State, y: L::State) {
    match op {
        "add" => {
            for i in 0..count {
                L::write(x, 2, fresh(n, i), i);
            }
        }
        "remove" => {
            for i in 0..count {
                L::remove(x, 2, present(n, i));
            }
        }
        "update" => {
            for i in 0..count {
                L::write(x, 2, present(n, i), i);
            }
        }
        // One merge: `X ⊔ Y`, consuming Y (COUNT is ignored).
        "merge" => L::merge(x, y),
        _ => {}
    }
}

fn run<L: Lib>(op: &str, n: u64, count: u64) {
    let (mut x, y) = fixture::<L>(n);
    measured_op::<L>(op, n, count, &mut x, y);
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
