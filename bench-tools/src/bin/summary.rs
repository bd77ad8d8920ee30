//! The one table: accordant against crdts 7.3.2, wall clock (alternated in
//! this process), encoded bytes and heap bytes per element, and the
//! instruction counts of `scripts/callgrind.sh` when given.
//!
//! ```text
//! summary [--quick] [--sizes 1000,10000,100000] [--rounds 21]
//!         [--ms-per-run 20] [--no-heap] [--callgrind FILE]
//! ```
//!
//! `scripts/bench-summary` runs it with the callgrind figures; everything it
//! prints comes from measurements made by this command (the heap figures by
//! the sibling binary `heap`, run as a child process).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use accordant_bench_tools::data::{fixture, fixture_lens, round_robin, Elems};
use accordant_bench_tools::timing::{alternate, timed, Alternated, Op, Spread};
use accordant_bench_tools::{AccMap, AccSet, CrdtsMap, CrdtsSet, Lib};

struct Args {
    sizes: Vec<u64>,
    rounds: usize,
    per_run: Duration,
    heap: bool,
    callgrind: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        sizes: vec![1_000, 10_000, 100_000],
        rounds: 21,
        per_run: Duration::from_millis(20),
        heap: true,
        callgrind: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => {
                a.sizes = vec![1_000, 10_000];
                a.rounds = 7;
                a.per_run = Duration::from_millis(5);
            }
            "--sizes" => {
                a.sizes = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|_| format!("bad size {s}")))
                    .collect::<Result<_, _>>()?;
            }
            "--rounds" => a.rounds = value()?.parse().map_err(|_| "bad --rounds")?,
            "--ms-per-run" => {
                a.per_run = Duration::from_millis(value()?.parse().map_err(|_| "bad --ms-per-run")?)
            }
            "--no-heap" => a.heap = false,
            "--callgrind" => a.callgrind = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// A duration in nanoseconds, with a unit that keeps 3 significant digits.
fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn fmt_spread(s: Spread) -> String {
    format!("{} [{} – {}]", fmt_ns(s.median), fmt_ns(s.q1), fmt_ns(s.q3))
}

fn fmt_ratio(s: Spread) -> String {
    format!("{:.2} [{:.2} – {:.2}]", s.median, s.q1, s.q3)
}

/// Times `ops` of accordant (`A`) and crdts (`B`) on their fixtures of `n`.
fn time_kind<A, B>(ops: &[Op], n: u64, args: &Args)
where
    A: Lib + 'static,
    B: Lib + 'static,
    A::State: 'static,
    B::State: 'static,
{
    let fa = fixture::<A>(n);
    let fb = fixture::<B>(n);
    assert_eq!(
        fixture_lens::<A>(&fa),
        fixture_lens::<B>(&fb),
        "the libraries built different fixtures"
    );
    for &op in ops {
        let mut cs = vec![timed::<A>(op, n, fa.clone()), timed::<B>(op, n, fb.clone())];
        let r: Alternated = alternate(&mut cs, args.rounds, args.per_run);
        println!(
            "| {} {} | {n} | {} | {} | {} |",
            A::KIND,
            op.label(),
            fmt_spread(r.spread(0)),
            fmt_spread(r.spread(1)),
            fmt_ratio(r.ratio(0, 1)),
        );
    }
}

fn encoded_per_element<L: Lib>(elems: Elems, n: u64) -> Option<f64> {
    let s = round_robin::<L>(n, elems);
    assert_eq!(L::len(&s), n as usize);
    L::encode(&s).map(|b| b.len() as f64 / n as f64)
}

fn size_rows<A: Lib, B: Lib>(n: u64) {
    for elems in [Elems::Random, Elems::Sequential] {
        let (a, b) = (
            encoded_per_element::<A>(elems, n),
            encoded_per_element::<B>(elems, n),
        );
        let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.2}"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) => format!("{:.3}", a / b),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {n} | {} | {} | {ratio} |",
            A::KIND,
            elems.label(),
            show(a),
            show(b)
        );
    }
}

/// Heap rows: (kind, shape, elements, n) -> library -> bytes per element.
type HeapRows = BTreeMap<(String, String, String, u64), BTreeMap<String, f64>>;

/// Runs the sibling `heap` binary and arranges its rows.
fn heap_rows(sizes: &[u64]) -> Result<HeapRows, String> {
    let exe = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("heap");
    let out = std::process::Command::new(&exe)
        .args(sizes.iter().map(|n| n.to_string()))
        .output()
        .map_err(|e| format!("{}: {e}", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "heap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut rows = HeapRows::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let [kind, lib, shape, elems, n, per] = f.as_slice() {
            let (Ok(n), Ok(per)) = (n.parse::<u64>(), per.parse::<f64>()) else {
                continue;
            };
            rows.entry((kind.to_string(), shape.to_string(), elems.to_string(), n))
                .or_default()
                .insert(lib.to_string(), per);
        }
    }
    Ok(rows)
}

/// Prints the instruction counts of `scripts/callgrind.sh` (lines
/// `kind op library n instructions_per_op`) as accordant / crdts rows.
fn callgrind_rows(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut rows: BTreeMap<(String, String, u64), BTreeMap<String, f64>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [kind, op, lib, n, per] = f.as_slice() {
            let (Ok(n), Ok(per)) = (n.parse::<u64>(), per.parse::<f64>()) else {
                continue;
            };
            rows.entry((kind.to_string(), op.to_string(), n))
                .or_default()
                .insert(lib.to_string(), per);
        }
    }
    println!("\n## Instructions per operation (callgrind, `scripts/callgrind.sh`)\n");
    println!("| operation | n | accordant | crdts | crdts / accordant |");
    println!("|---|---:|---:|---:|---:|");
    for ((kind, op, n), libs) in &rows {
        let (a, b) = (libs.get("accordant"), libs.get("crdts"));
        let show = |x: Option<&f64>| x.map_or("-".to_string(), |x| format!("{x:.0}"));
        let ratio = match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}", b / a),
            _ => "-".into(),
        };
        println!(
            "| {kind} {op} | {n} | {} | {} | {ratio} |",
            show(a),
            show(b)
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("# accordant against crdts 7.3.2\n");
    println!(
        "## Wall clock per operation, alternated ({} rounds of ~{} ms per library)\n",
        args.rounds,
        args.per_run.as_millis()
    );
    println!("Median [first – third quartile] over rounds; the ratio is the median [quartiles] of per-round ratios (above 1: accordant is faster). Random `u64` elements, 3 replicas.\n");
    println!("| operation | n | accordant | crdts | crdts / accordant |");
    println!("|---|---:|---:|---:|---:|");
    for &n in &args.sizes {
        time_kind::<AccSet, CrdtsSet>(&[Op::Add, Op::Remove, Op::Merge], n, &args);
        time_kind::<AccMap, CrdtsMap>(&[Op::Add, Op::Update, Op::Merge], n, &args);
    }

    println!("\n## Encoded bytes per element (3 replicas, 16-byte ids)\n");
    println!("accordant: its canonical codec; crdts: postcard of the state. Sequential ids `0..n` are the favourable case for varints.\n");
    println!("| type | elements | n | accordant | crdts | accordant / crdts |");
    println!("|---|---|---:|---:|---:|---:|");
    for &n in &args.sizes {
        size_rows::<AccSet, CrdtsSet>(n);
        size_rows::<AccMap, CrdtsMap>(n);
    }

    if args.heap {
        println!("\n## Heap bytes per element (dhat: live bytes requested)\n");
        println!("merged: three replicas' states merged; grown: one state grown by adds.\n");
        println!("| type | state | elements | n | accordant | crdts | accordant / crdts |");
        println!("|---|---|---|---:|---:|---:|---:|");
        match heap_rows(&args.sizes) {
            Ok(rows) => {
                for ((kind, shape, elems, n), libs) in rows {
                    let (a, b) = (libs.get("accordant"), libs.get("crdts"));
                    let show = |x: Option<&f64>| x.map_or("-".to_string(), |x| format!("{x:.1}"));
                    let ratio = match (a, b) {
                        (Some(a), Some(b)) => format!("{:.3}", a / b),
                        _ => "-".into(),
                    };
                    println!(
                        "| {kind} | {shape} | {elems} | {n} | {} | {} | {ratio} |",
                        show(a),
                        show(b)
                    );
                }
            }
            Err(e) => println!("(heap not measured: {e})"),
        }
    }

    if let Some(path) = &args.callgrind {
        if let Err(e) = callgrind_rows(path) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
