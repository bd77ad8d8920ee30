//! What causal delivery on the delta path costs, and what it prevents:
//! seeded runs of the causal-cut checker (`accordant_sync::sim::causal`),
//! 4 replicas in a full mesh writing 30 times each, on a WAN of 60 ms round
//! trip with 10% loss, 5% duplication, 20% reordering (up to 200 ms) and a
//! partition change every second on average, with the plain replicator and
//! with causal delivery; then the same without partitions and with a
//! buffer large enough that no fall-back is needed (the steady state).
//!
//! For each mode it prints: runs with a violation and violations in all;
//! bytes sent per write (everything: intervals, acks, state transfers,
//! session messages); fall-backs (state transfers, sessions); the
//! intervals and bytes held per replica (maximum and 99th percentile over
//! every event of every run); and how long a write takes to show at
//! another replica (per run median and 99th percentile; median over runs,
//! with the range).
//!
//! ```text
//! cargo run --release -p accordant-sync --example causal_delivery -- [runs] [first-seed]
//! ```

use accordant_sync::delta::CausalDelivery;
use accordant_sync::sim::causal::{check_causal, CausalCheckConfig, CausalReport};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn summary(label: &str, reports: &[CausalReport]) {
    let runs = reports.len();
    let violating = reports.iter().filter(|r| r.violation_count > 0).count();
    let violations: u64 = reports.iter().map(|r| r.violation_count).sum();
    let unconverged = reports.iter().filter(|r| !r.converged).count();
    let writes: u64 = reports.iter().map(|r| r.writes).sum();
    let bytes: u64 = reports.iter().map(|r| r.stats.bytes_sent).sum();
    let transfers: u64 = reports.iter().map(|r| r.stats.state_transfers).sum();
    let sessions: u64 = reports.iter().map(|r| r.stats.sessions_started).sum();
    let session_msgs: u64 = reports.iter().map(|r| r.stats.session_messages_sent).sum();
    let held_max = reports.iter().map(|r| r.held_max).max().unwrap_or(0);
    let held_p99 = reports.iter().map(|r| r.held_p99).max().unwrap_or(0);
    let bytes_max = reports.iter().map(|r| r.held_bytes_max).max().unwrap_or(0);
    let bytes_p99 = reports.iter().map(|r| r.held_bytes_p99).max().unwrap_or(0);
    let mut p50: Vec<f64> = reports.iter().map(|r| r.visible_ms[0]).collect();
    let mut p99: Vec<f64> = reports.iter().map(|r| r.visible_ms[1]).collect();
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    };
    let (a, b) = range(&p50);
    let (c, d) = range(&p99);
    println!("{label}");
    println!(
        "  runs {runs}, violating {violating}, violations {violations}, not converged {unconverged}"
    );
    println!(
        "  bytes sent per write {:.0}; state transfers {transfers}, sessions {sessions} ({session_msgs} messages)",
        bytes as f64 / writes.max(1) as f64
    );
    println!(
        "  held per replica: entries max {held_max}, p99 {held_p99}; bytes max {bytes_max}, p99 {bytes_p99}"
    );
    println!(
        "  visible at another replica (ms): median of run medians {:.0} [{a:.0}, {b:.0}], median of run p99s {:.0} [{c:.0}, {d:.0}]",
        median(&mut p50),
        median(&mut p99)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let first: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let causal = Some(CausalDelivery::default());
    let faulty = |seed| CausalCheckConfig::new(seed);
    let steady = |seed| {
        let mut c = CausalCheckConfig::new(seed).with_max_buffer(4096);
        c.partition = 0.0;
        c
    };
    type Mode = (&'static str, fn(u64) -> CausalCheckConfig, bool);
    let modes: [Mode; 4] = [
        ("partitions, buffer 6: plain", faulty, false),
        ("partitions, buffer 6: causal delivery", faulty, true),
        ("no partitions, buffer 4096: plain", steady, false),
        ("no partitions, buffer 4096: causal delivery", steady, true),
    ];
    let mut all: Vec<Vec<CausalReport>> = vec![Vec::new(); modes.len()];
    // Modes alternate per seed, so load on the machine hits them alike.
    for seed in first..first + runs {
        for (i, (_, make, on)) in modes.iter().enumerate() {
            let cfg = make(seed).with_causal(if *on { causal } else { None });
            all[i].push(check_causal(&cfg));
        }
    }
    for ((label, _, _), reports) in modes.iter().zip(&all) {
        summary(label, reports);
    }
}
