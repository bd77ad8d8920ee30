//! The history checker over hundreds of seeded runs: three regions under
//! partitions, loss, duplication and reordering; zero violations of
//! read-your-writes and monotonic reads under tokens, no oversold stock
//! and every unit sold once rights flow. (Thousands of runs:
//! `cargo run --release -p accordant-sync --example checker`.)

use accordant_sync::sim::checker::{check_sessions, check_stock, CheckConfig, CheckReport};

const RUNS: u64 = 200;

fn short(seed: u64) -> CheckConfig {
    let mut c = CheckConfig::new(seed);
    c.steps = 40;
    c
}

fn total(reports: &[CheckReport]) -> CheckReport {
    let mut t = CheckReport::default();
    for r in reports {
        t.writes += r.writes;
        t.reads_answered += r.reads_answered;
        t.not_visible += r.not_visible;
        t.would_be_stale += r.would_be_stale;
        t.spurious_waits += r.spurious_waits;
        t.sold += r.sold;
        t.stock += r.stock;
        t.transfers += r.transfers;
        t.violations.extend(r.violations.iter().cloned());
    }
    t
}

#[test]
fn sessions_hold_over_hundreds_of_seeded_runs() {
    let reports: Vec<CheckReport> = (0..RUNS).map(|s| check_sessions(&short(s))).collect();
    let t = total(&reports);
    assert!(t.violations.is_empty(), "{:?}", t.violations);
    // The runs exercised the guarantee: many reads answered, many of
    // them in a region that was behind when asked.
    assert!(t.reads_answered > RUNS * 30, "{t:?}");
    assert!(t.would_be_stale > RUNS, "{t:?}");
    assert_eq!(t.spurious_waits, 0);
}

#[test]
fn stock_never_oversells_and_sells_out_over_hundreds_of_seeded_runs() {
    let reports: Vec<CheckReport> = (0..RUNS).map(|s| check_stock(&short(s))).collect();
    let t = total(&reports);
    assert!(t.violations.is_empty(), "{:?}", t.violations);
    assert_eq!(t.sold, t.stock);
    assert!(t.transfers > RUNS, "{t:?}");
}
