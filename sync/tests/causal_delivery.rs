//! Causal delivery on the delta path, judged by the causal-cut checker of
//! `sim::causal` (every state a replica exposes, after every event, must be
//! causally closed) under 10% loss, 5% duplication, 20% reordering and
//! random partitions, with a delta buffer small enough that neighbours
//! fall behind it and need the fall-back.

use accordant_sync::delta::CausalDelivery;
use accordant_sync::sim::causal::{check_causal, CausalCheckConfig};

/// Small runs: 3 replicas, 12 writes each (hundreds of runs stay seconds
/// in debug builds).
fn small(seed: u64) -> CausalCheckConfig {
    CausalCheckConfig::new(seed).with_size(3, 12)
}

#[test]
fn without_causal_delivery_a_replica_shows_a_write_without_its_cause() {
    // The plain replicator: Merkle fall-back sessions join outside the
    // buffer, and the writes that follow them are forwarded without what
    // they depend on. The checker must see it.
    let mut violating = 0;
    for seed in 0..60 {
        let r = check_causal(&small(seed));
        assert!(r.converged, "seed {seed}: did not converge");
        if r.violation_count > 0 {
            violating += 1;
            let v = r.violations[0];
            assert_ne!(v.shown, v.missing);
            // Only the fall-back sessions break it.
            assert!(r.stats.sessions_started > 0, "seed {seed}");
        }
    }
    eprintln!("{violating} of 60 runs violated causality");
    assert!(
        violating >= 4,
        "only {violating} of 60 runs violated causality"
    );
}

#[test]
fn with_causal_delivery_every_state_is_causally_closed() {
    let mut held = 0;
    let mut transfers = 0;
    for seed in 0..200 {
        let cfg = small(seed).with_causal(Some(CausalDelivery::default()));
        let r = check_causal(&cfg);
        assert!(
            r.violations.is_empty(),
            "seed {seed}: {} violations, first {:?}",
            r.violation_count,
            r.violations
        );
        assert!(r.converged, "seed {seed}: did not converge");
        assert!(r.observations > 0);
        assert_eq!(
            r.stats.sessions_started, 0,
            "seed {seed}: a Merkle session ran"
        );
        assert!(r.stats.held_max_entries <= 64);
        held += r.stats.groups_held;
        transfers += r.stats.state_transfers;
    }
    // The runs exercised both mechanisms: intervals held across a gap,
    // and state transfers for neighbours the buffer could not serve.
    assert!(
        held > 0 && transfers > 0,
        "held {held}, transfers {transfers}"
    );
}

#[test]
fn a_zero_hold_budget_is_still_causal() {
    // Holding is only a shortcut: with no budget, every interval ahead of
    // a gap is refused and sent again.
    for seed in 0..60 {
        let cfg = small(seed).with_causal(Some(CausalDelivery::new(0, 0, 0)));
        let r = check_causal(&cfg);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.converged, "seed {seed}: did not converge");
        assert_eq!(r.stats.groups_held, 0);
    }
}

#[test]
fn larger_meshes_stay_causal() {
    for seed in 0..20 {
        let cfg = CausalCheckConfig::new(seed).with_causal(Some(CausalDelivery::default()));
        let r = check_causal(&cfg);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.converged, "seed {seed}: did not converge");
    }
}
