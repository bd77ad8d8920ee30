//! The history checker over thousands of seeded runs (see
//! `accordant_sync::sim::checker`): session guarantees under tokens and the
//! bounded counter's invariants, three regions under partitions, loss,
//! duplication and reordering.
//!
//! ```text
//! cargo run --release -p accordant-sync --example checker -- [runs] [first-seed]
//! ```

use accordant_sync::sim::checker::{check_sessions, check_stock, CheckConfig};

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let first: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let (mut reads, mut writes, mut stale, mut nv, mut spurious, mut violations) =
        (0, 0, 0, 0, 0, 0);
    let (mut sold, mut stock, mut transfers, mut refused) = (0, 0, 0, 0);
    let start = std::time::Instant::now();
    for seed in first..first + runs {
        let cfg = CheckConfig::new(seed);
        let s = check_sessions(&cfg);
        let k = check_stock(&cfg);
        for v in s.violations.iter().chain(&k.violations) {
            println!("seed {seed}: {v:?}");
        }
        violations += s.violations.len() + k.violations.len();
        reads += s.reads_answered;
        writes += s.writes;
        stale += s.would_be_stale;
        nv += s.not_visible;
        spurious += s.spurious_waits;
        sold += k.sold;
        stock += k.stock;
        transfers += k.transfers;
        refused += k.refused;
    }
    println!(
        "{runs} session runs: {writes} writes, {reads} reads answered, {stale} operations in a region behind the token, \
         {nv} not yet visible, {spurious} spurious waits"
    );
    println!(
        "{runs} stock runs: {sold} of {stock} units sold, {refused} purchases refused for lack of local rights, \
         {transfers} automatic rights transfers ({:.1} per run)",
        transfers as f64 / runs as f64
    );
    println!(
        "violations: {violations} ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
    if violations > 0 {
        std::process::exit(1);
    }
}
