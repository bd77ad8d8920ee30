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

mod hold_back {
    use accordant::{GCounter, ReplicaId};
    use accordant_sync::delta::{CausalDelivery, Config, Replicator, Strategy};

    type R = Replicator<GCounter, usize>;

    /// A pipelining sender (0) and a causal receiver (1); returns the two
    /// intervals the sender sent for two writes, one sync step each.
    fn two_intervals(budget: CausalDelivery) -> (R, R, GCounter, Vec<Vec<u8>>) {
        let base = Config::new(Strategy::Delta { bp: true, rr: true }).with_resend_after(100);
        let mut a = R::new(base, 11, &GCounter::new());
        let mut b = R::new(base.with_causal_delivery(budget), 22, &GCounter::new());
        a.add_neighbour(1);
        b.add_neighbour(0);
        let mut sa = GCounter::new();
        let mut sent = Vec::new();
        for n in 1..=2 {
            a.update(&mut sa, |c| c.increment(ReplicaId::from_u128(1), n))
                .unwrap();
            a.sync_step(&sa);
            while let Some(t) = a.poll_transmit() {
                sent.push(t.bytes);
            }
        }
        assert_eq!(sent.len(), 2, "one interval per step with pipelining");
        (a, b, GCounter::new(), sent)
    }

    #[test]
    fn an_interval_ahead_of_a_gap_is_held_then_joined_in_order() {
        let (_a, mut b, mut sb, sent) = two_intervals(CausalDelivery::default());
        b.receive(&mut sb, 0, &sent[1]).unwrap();
        assert_eq!(sb.value(), 0, "joined across a gap");
        assert_eq!(b.held_len(), 1);
        assert!(b.held_bytes() > 0);
        b.receive(&mut sb, 0, &sent[0]).unwrap();
        assert_eq!(sb.value(), 3);
        assert_eq!(b.held_len(), 0);
        assert_eq!(b.stats().held_applied, 1);
        assert_eq!(b.stats().groups_refused, 0);
    }

    #[test]
    fn without_budget_or_after_the_wait_held_intervals_are_dropped() {
        let (_a, mut b, mut sb, sent) = two_intervals(CausalDelivery::new(0, 0, 0));
        b.receive(&mut sb, 0, &sent[1]).unwrap();
        assert_eq!((b.held_len(), b.stats().groups_refused), (0, 1));
        assert_eq!(sb.value(), 0);

        let (_a, mut b, mut sb, sent) = two_intervals(CausalDelivery::new(8, 1 << 20, 2));
        b.receive(&mut sb, 0, &sent[1]).unwrap();
        assert_eq!(b.held_len(), 1);
        for _ in 0..3 {
            b.sync_step(&sb);
        }
        assert_eq!(b.held_len(), 0);
        assert_eq!(b.stats().held_dropped, 1);
        // Nothing was acknowledged past the gap: the first interval joins
        // alone, and the second must come again.
        b.receive(&mut sb, 0, &sent[0]).unwrap();
        assert_eq!(sb.value(), 1);
        b.receive(&mut sb, 0, &sent[1]).unwrap();
        assert_eq!(sb.value(), 3);
    }

    #[test]
    fn the_byte_budget_bounds_what_is_held() {
        let (_a, mut b, mut sb, sent) = two_intervals(CausalDelivery::new(8, 1, 8));
        b.receive(&mut sb, 0, &sent[1]).unwrap();
        assert_eq!(b.held_len(), 0, "held beyond the byte budget");
        assert_eq!(b.stats().groups_refused, 1);
    }
}
