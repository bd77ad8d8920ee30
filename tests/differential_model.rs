//! Differential tests of the bounded counter, the flags and the remove-wins
//! set against executable specifications written from the event graph.
//!
//! No other Rust library implements these types, so the reference is a
//! model: every successful mutation is an *event* recording its origin, its
//! sequence number there and the origin's delivered-events vector before it
//! (its causal past). A replica *knows* the events its vector covers. The
//! specification of each type is a function of the known events and their
//! happened-before order, written without dots, contexts or rows:
//!
//! - **flags**: among the known flag events, the *maximal* ones (seen by no
//!   other known event) decide; enable-wins: on iff one of them is an
//!   enable; disable-wins: on iff all of them are enables (and there is one);
//! - **remove-wins set**: per element, the maximal add/remove events of that
//!   element; present iff they are all adds (and there is one);
//! - **bounded counter**: rights of `r` = increments by `r` + transfers to
//!   `r` - decrements by `r` - transfers from `r`; value = increments -
//!   decrements; a decrement or transfer succeeds iff the spender's rights
//!   cover it; the automatic policy moves what the rule in
//!   `accordant::counter::rights` says.
//!
//! Random histories (seeded ChaCha8, 300 per type, 80 steps over 2 to 5
//! replicas) mix mutations, batches of deltas delivered in causal order (with
//! **lost deltas**: a lost delta blocks the later ones from its origin until a
//! full-state merge covers it), full-state merges (by full join, minimal
//! delta or `delta_for(summary)`), and for the remove-wins set tombstone
//! compaction from contexts the replicas reported. After every step the
//! touched replica must read exactly what the specification says for what it
//! knows, and every refusal must be the specification's. At the end, an
//! all-to-all merge must give one state, one encoding, and the
//! specification's read of every event. A compaction's delta travels in its
//! replica's causal stream like any other delta: the later deltas of that
//! replica do not carry what it dropped.
//!
//! A second mode delivers deltas in **any** order, duplicated or lost. Reads
//! are then only eventually right (the delta-CRDT caveat: see
//! `tests/differential.rs`), but the bounded counter's safety must hold at
//! every step: no replica ever believes it holds more rights than it truly
//! does, so the true value (all increments minus all successful decrements)
//! never goes below zero, whatever the interleaving.

mod event_model;

use accordant::{BoundedCounter, CausalContext, CompactError, DwFlag, EwFlag, RightsPolicy, RwSet};
use event_model::{maximal, pick_pair, rid, run_any_order, run_causal, Event, Run, Spec, STEPS};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Histories per type and mode.
const HISTORIES: u64 = 300;
/// Elements are drawn from a small range so operations on one element collide.
const UNIVERSE: u8 = 6;

// ---------------------------------------------------------------------------
// Bounded counter

struct Bounded;

#[derive(Clone, Debug, PartialEq)]
enum BOp {
    Inc(u64),
    Dec(u64),
    Transfer(usize, u64),
    /// The automatic policy with this low watermark (as drawn; recorded as
    /// the transfer it made).
    Rebalance(u64),
}

/// Rights of every replica from the known events, in `i128` so that an
/// implementation bug that overdraws shows as a negative number.
fn model_rights(known: &[&Event<BOp>], n: usize) -> Vec<i128> {
    let mut rights = vec![0i128; n];
    for e in known {
        match e.op {
            BOp::Inc(a) => rights[e.origin] += i128::from(a),
            BOp::Dec(a) => rights[e.origin] -= i128::from(a),
            BOp::Transfer(to, a) => {
                rights[e.origin] -= i128::from(a);
                rights[to] += i128::from(a);
            }
            BOp::Rebalance(_) => unreachable!("recorded as a transfer"),
        }
    }
    rights
}

fn model_value(known: &[&Event<BOp>]) -> i128 {
    known
        .iter()
        .map(|e| match e.op {
            BOp::Inc(a) => i128::from(a),
            BOp::Dec(a) => -i128::from(a),
            _ => 0,
        })
        .sum()
}

impl Spec for Bounded {
    type Acc = BoundedCounter;
    type Op = BOp;
    /// The value and every replica's rights.
    type Read = (i128, Vec<i128>);
    const CUMULATIVE: bool = true;

    fn draw(rng: &mut ChaCha8Rng, me: usize, n: usize) -> BOp {
        match rng.random_range(0..10) {
            0..3 => BOp::Inc(rng.random_range(1..=5)),
            3..6 => BOp::Dec(rng.random_range(1..=4)),
            6..8 => BOp::Transfer((me + rng.random_range(1..n)) % n, rng.random_range(1..=4)),
            _ => BOp::Rebalance(rng.random_range(0..=8)),
        }
    }

    fn apply(
        acc: &mut BoundedCounter,
        me: usize,
        n: usize,
        op: &BOp,
    ) -> Option<(BoundedCounter, BOp)> {
        let at = rid(me);
        match *op {
            BOp::Inc(a) => acc.increment(at, a).ok().map(|d| (d, op.clone())),
            BOp::Dec(a) => acc.decrement(at, a).ok().map(|d| (d, op.clone())),
            BOp::Transfer(to, a) => acc.transfer(at, rid(to), a).ok().map(|d| (d, op.clone())),
            BOp::Rebalance(w) => {
                let policy = RightsPolicy::new(w);
                let decision = acc.rebalance(at, (0..n).map(rid), &policy)?;
                let d = acc
                    .apply_rebalance(at, (0..n).map(rid), &policy)
                    .expect("a decided transfer is funded")?;
                let to = (0..n).position(|i| rid(i) == decision.0)?;
                Some((d, BOp::Transfer(to, decision.1)))
            }
        }
    }

    fn expect(known: &[&Event<BOp>], me: usize, n: usize, op: &BOp) -> Option<BOp> {
        let rights = model_rights(known, n);
        match *op {
            BOp::Inc(_) => Some(op.clone()),
            BOp::Dec(a) | BOp::Transfer(_, a) => (rights[me] >= i128::from(a)).then(|| op.clone()),
            BOp::Rebalance(w) => {
                // The rule, restated: a donor above the watermark gives the
                // poorest peer below it half the gap, keeping the watermark.
                let w = i128::from(w);
                let mine = rights[me];
                if mine <= w {
                    return None;
                }
                let (to, theirs) = (0..n)
                    .filter(|p| *p != me)
                    .map(|p| (p, rights[p]))
                    .min_by_key(|(p, r)| (*r, *p))?;
                if theirs >= w {
                    return None;
                }
                let amount = ((mine - theirs) / 2).min(mine - w);
                (amount > 0).then(|| BOp::Transfer(to, u64::try_from(amount).unwrap()))
            }
        }
    }

    fn read(acc: &BoundedCounter, n: usize) -> (i128, Vec<i128>) {
        (
            i128::from(acc.value()),
            (0..n).map(|i| i128::from(acc.rights(rid(i)))).collect(),
        )
    }

    fn expected(known: &[&Event<BOp>], n: usize) -> (i128, Vec<i128>) {
        (model_value(known), model_rights(known, n))
    }

    fn check_safety(acc: &BoundedCounter, me: usize, all: &[Event<BOp>], n: usize) {
        let everything: Vec<&Event<BOp>> = all.iter().collect();
        let truth = model_rights(&everything, n);
        assert!(
            truth.iter().all(|r| *r >= 0),
            "a replica overdrew its rights: {truth:?}"
        );
        assert!(model_value(&everything) >= 0, "oversold");
        assert!(
            i128::from(acc.rights(rid(me))) <= truth[me],
            "replica {me} believes it holds {} rights but holds {}",
            acc.rights(rid(me)),
            truth[me]
        );
    }
}

// ---------------------------------------------------------------------------
// Flags

#[derive(Clone, Debug, PartialEq)]
enum FlagOp {
    Enable,
    Disable,
}

fn draw_flag(rng: &mut ChaCha8Rng) -> FlagOp {
    if rng.random_bool(0.5) {
        FlagOp::Enable
    } else {
        FlagOp::Disable
    }
}

struct Ew;

impl Spec for Ew {
    type Acc = EwFlag;
    type Op = FlagOp;
    type Read = bool;
    const CUMULATIVE: bool = false;

    fn draw(rng: &mut ChaCha8Rng, _me: usize, _n: usize) -> FlagOp {
        draw_flag(rng)
    }

    fn apply(acc: &mut EwFlag, me: usize, _n: usize, op: &FlagOp) -> Option<(EwFlag, FlagOp)> {
        let d = match op {
            FlagOp::Enable => acc.enable(rid(me)).ok()?,
            FlagOp::Disable => acc.disable(),
        };
        Some((d, op.clone()))
    }

    fn expect(_: &[&Event<FlagOp>], _: usize, _: usize, op: &FlagOp) -> Option<FlagOp> {
        Some(op.clone())
    }

    fn read(acc: &EwFlag, _n: usize) -> bool {
        acc.is_enabled()
    }

    fn expected(known: &[&Event<FlagOp>], _n: usize) -> bool {
        maximal(known).iter().any(|e| e.op == FlagOp::Enable)
    }
}

struct Dw;

impl Spec for Dw {
    type Acc = DwFlag;
    type Op = FlagOp;
    type Read = bool;
    const CUMULATIVE: bool = false;

    fn draw(rng: &mut ChaCha8Rng, _me: usize, _n: usize) -> FlagOp {
        draw_flag(rng)
    }

    fn apply(acc: &mut DwFlag, me: usize, _n: usize, op: &FlagOp) -> Option<(DwFlag, FlagOp)> {
        let d = match op {
            FlagOp::Enable => acc.enable(rid(me)).ok()?,
            FlagOp::Disable => acc.disable(rid(me)).ok()?,
        };
        Some((d, op.clone()))
    }

    fn expect(_: &[&Event<FlagOp>], _: usize, _: usize, op: &FlagOp) -> Option<FlagOp> {
        Some(op.clone())
    }

    fn read(acc: &DwFlag, _n: usize) -> bool {
        acc.is_enabled()
    }

    fn expected(known: &[&Event<FlagOp>], _n: usize) -> bool {
        let top = maximal(known);
        !top.is_empty() && top.iter().all(|e| e.op == FlagOp::Enable)
    }
}

// ---------------------------------------------------------------------------
// Remove-wins set

#[derive(Clone, Debug, PartialEq)]
enum SetOp {
    Add(u8),
    Remove(u8),
}

impl SetOp {
    fn elem(&self) -> u8 {
        match self {
            SetOp::Add(e) | SetOp::Remove(e) => *e,
        }
    }
}

struct Rw;

impl Spec for Rw {
    type Acc = RwSet<u8>;
    type Op = SetOp;
    type Read = Vec<u8>;
    const CUMULATIVE: bool = false;

    fn draw(rng: &mut ChaCha8Rng, _me: usize, _n: usize) -> SetOp {
        let e = rng.random_range(0..UNIVERSE);
        if rng.random_bool(0.6) {
            SetOp::Add(e)
        } else {
            SetOp::Remove(e)
        }
    }

    fn apply(acc: &mut RwSet<u8>, me: usize, _n: usize, op: &SetOp) -> Option<(RwSet<u8>, SetOp)> {
        let d = match op {
            SetOp::Add(e) => acc.add(rid(me), *e).ok()?,
            SetOp::Remove(e) => acc.remove(rid(me), *e).ok()?,
        };
        Some((d, op.clone()))
    }

    fn expect(_: &[&Event<SetOp>], _: usize, _: usize, op: &SetOp) -> Option<SetOp> {
        Some(op.clone())
    }

    fn read(acc: &RwSet<u8>, _n: usize) -> Vec<u8> {
        acc.iter().copied().collect()
    }

    fn expected(known: &[&Event<SetOp>], _n: usize) -> Vec<u8> {
        (0..UNIVERSE)
            .filter(|e| {
                let ops: Vec<&Event<SetOp>> = known
                    .iter()
                    .filter(|x| x.op.elem() == *e)
                    .copied()
                    .collect();
                let top = maximal(&ops);
                !top.is_empty() && top.iter().all(|x| matches!(x.op, SetOp::Add(_)))
            })
            .collect()
    }

    fn compact(
        acc: &mut RwSet<u8>,
        reports: &[CausalContext],
    ) -> Option<Result<RwSet<u8>, CompactError>> {
        Some(acc.compact(reports))
    }

    fn context(acc: &RwSet<u8>) -> Option<CausalContext> {
        Some(acc.context().clone())
    }
}

// ---------------------------------------------------------------------------
// The tests

#[test]
fn bounded_counter_matches_its_specification_under_causal_delivery() {
    for seed in 0..HISTORIES {
        let _ = run_causal::<Bounded>(10_000_000 + seed);
    }
}

#[test]
fn bounded_counter_never_oversells_under_any_delivery_order() {
    for seed in 0..HISTORIES {
        run_any_order::<Bounded>(11_000_000 + seed);
    }
}

#[test]
fn ew_flag_matches_its_specification() {
    for seed in 0..HISTORIES {
        let _ = run_causal::<Ew>(12_000_000 + seed);
        run_any_order::<Ew>(12_500_000 + seed);
    }
}

#[test]
fn dw_flag_matches_its_specification() {
    for seed in 0..HISTORIES {
        let _ = run_causal::<Dw>(13_000_000 + seed);
        run_any_order::<Dw>(13_500_000 + seed);
    }
}

#[test]
fn rw_set_matches_its_specification_with_compaction() {
    let mut collected = 0;
    for seed in 0..HISTORIES {
        collected += run_causal::<Rw>(14_000_000 + seed);
        run_any_order::<Rw>(14_500_000 + seed);
    }
    // Compaction is exercised, not just called.
    assert!(
        collected > 50,
        "only {collected} compactions collected anything"
    );
}

/// The specification is not vacuous: the histories reach the cases that
/// distinguish the semantics (concurrent enable and disable, a remove
/// beating a concurrent add, a refused decrement, a policy transfer).
#[test]
fn histories_reach_the_interesting_cases() {
    let (mut conflicts, mut rw_defeats) = (0, 0);
    for seed in 0..50 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut run = Run::<Dw>::new(3);
        let mut rw = Run::<Rw>::new(3);
        for step in 0..STEPS {
            let what = format!("coverage seed {seed} step {step}");
            if rng.random_bool(0.5) {
                run.mutate(&mut rng, true, &what);
                rw.mutate(&mut rng, true, &what);
            } else {
                let (k, j) = pick_pair(&mut rng, 3);
                run.merge(&mut rng, k, j, &what);
                rw.merge(&mut rng, k, j, &what);
            }
            conflicts += usize::from(run.reps.iter().any(|f| f.is_conflicted()));
            let all: Vec<_> = rw.events.iter().collect();
            rw_defeats += (0..UNIVERSE)
                .filter(|e| {
                    let ops: Vec<_> = all.iter().filter(|x| x.op.elem() == *e).copied().collect();
                    let top = maximal(&ops);
                    top.iter().any(|x| matches!(x.op, SetOp::Add(_)))
                        && top.iter().any(|x| matches!(x.op, SetOp::Remove(_)))
                })
                .count();
        }
    }
    assert!(
        conflicts > 100,
        "only {conflicts} concurrent enable/disable states"
    );
    assert!(rw_defeats > 100, "only {rw_defeats} add/remove conflicts");

    let (mut refused, mut transfers) = (0, 0);
    for seed in 0..50 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut run = Run::<Bounded>::new(3);
        for step in 0..STEPS {
            let what = format!("coverage seed {seed} step {step}");
            let before = run.events.len();
            let i = run.mutate(&mut rng, true, &what);
            if run.events.len() == before {
                refused += 1;
            } else if let BOp::Transfer(..) = run.events[before].op {
                transfers += 1;
            }
            let j = (i + 1) % 3;
            run.merge(&mut rng, i, j, &what);
        }
    }
    assert!(refused > 100, "only {refused} refused operations");
    assert!(transfers > 100, "only {transfers} transfers");
}
