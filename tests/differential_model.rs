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

use std::collections::BTreeSet;
use std::fmt::Debug;

use accordant::codec::{decode, encode, Canonical, Limits};
use accordant::{
    BoundedCounter, CausalContext, CompactError, Decompose, DwFlag, EwFlag, Lattice, ReplicaId,
    RightsPolicy, RwSet, Summarize,
};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Histories per type and mode.
const HISTORIES: u64 = 300;
/// Steps per history.
const STEPS: usize = 80;
/// Elements are drawn from a small range so operations on one element collide.
const UNIVERSE: u8 = 6;

fn rid(i: usize) -> ReplicaId {
    ReplicaId::from_u128(i as u128 + 1)
}

/// A successful mutation.
#[derive(Clone, Debug)]
struct Event<Op> {
    /// Index in the history's list of events.
    id: usize,
    origin: usize,
    /// The events the origin had delivered just before this one: what it
    /// saw. Under causal delivery this is the causal past; under any-order
    /// delivery it need not be transitively closed, and the specification
    /// uses it as it is (an event overrides exactly what its origin held).
    past: BTreeSet<usize>,
    op: Op,
}

impl<Op> Event<Op> {
    /// Whether `other` saw `self`.
    fn before(&self, other: &Event<Op>) -> bool {
        other.past.contains(&self.id)
    }
}

/// The events of a delivered set.
fn known<'a, Op>(events: &'a [Event<Op>], delivered: &BTreeSet<usize>) -> Vec<&'a Event<Op>> {
    delivered.iter().map(|i| &events[*i]).collect()
}

/// The events of `events` seen by no other event of `events`.
fn maximal<'a, Op>(events: &[&'a Event<Op>]) -> Vec<&'a Event<Op>> {
    events
        .iter()
        .filter(|x| !events.iter().any(|y| x.before(y)))
        .copied()
        .collect()
}

/// One type under test and its specification.
trait Spec {
    type Acc: Decompose + Canonical + Summarize + Debug;
    /// An operation as drawn (the automatic policy is drawn as a request and
    /// recorded as the transfer it made).
    type Op: Clone + Debug + PartialEq;
    type Read: PartialEq + Debug;
    /// Whether a delta carries its origin's earlier events too (a counter
    /// row does; a dot-tagged delta does not).
    const CUMULATIVE: bool;

    fn draw(rng: &mut ChaCha8Rng, me: usize, n: usize) -> Self::Op;
    /// Applies `op` at replica `me`: the delta and the operation as it took
    /// effect, or `None` if refused (which must change nothing).
    fn apply(
        acc: &mut Self::Acc,
        me: usize,
        n: usize,
        op: &Self::Op,
    ) -> Option<(Self::Acc, Self::Op)>;
    /// What the specification says `op` does at `me`, knowing `known`.
    fn expect(known: &[&Event<Self::Op>], me: usize, n: usize, op: &Self::Op) -> Option<Self::Op>;
    fn read(acc: &Self::Acc, n: usize) -> Self::Read;
    fn expected(known: &[&Event<Self::Op>], n: usize) -> Self::Read;
    /// Invariants that hold at every step in every delivery mode.
    fn check_safety(_acc: &Self::Acc, _me: usize, _all: &[Event<Self::Op>], _n: usize) {}
    /// Tombstone compaction from reported contexts, for the types that have it.
    fn compact(
        _acc: &mut Self::Acc,
        _reports: &[CausalContext],
    ) -> Option<Result<Self::Acc, CompactError>> {
        None
    }
    fn context(_acc: &Self::Acc) -> Option<CausalContext> {
        None
    }
}

struct Run<S: Spec> {
    n: usize,
    reps: Vec<S::Acc>,
    /// seen[j][k]: how many of k's events replica j has delivered in causal
    /// order (the causal-delivery gate).
    seen: Vec<Vec<u32>>,
    /// delivered[j]: every event whose effect replica j holds.
    delivered: Vec<BTreeSet<usize>>,
    events: Vec<Event<S::Op>>,
    /// Per origin, its deltas in order.
    log: Vec<Vec<Sent<S::Acc>>>,
    /// cursor[k][j]: the next delta of k to deliver to j.
    cursor: Vec<Vec<usize>>,
    /// Contexts each replica reported, with the events it had delivered.
    reports: Vec<Vec<(BTreeSet<usize>, CausalContext)>>,
    /// Compactions that collected something.
    collected: usize,
}

/// A delta in its origin's log.
#[derive(Clone)]
struct Sent<A> {
    /// 1-based position in the origin's log.
    seq: u32,
    /// The origin's `seen` vector before it: its causal dependencies.
    deps: Vec<u32>,
    /// The event it carries; `None` for a compaction, which changes the
    /// state but no read.
    event: Option<usize>,
    delta: A,
}

impl<S: Spec> Run<S> {
    fn new(n: usize) -> Self {
        Run {
            n,
            reps: (0..n).map(|_| S::Acc::default()).collect(),
            seen: vec![vec![0; n]; n],
            delivered: vec![BTreeSet::new(); n],
            events: Vec::new(),
            log: (0..n).map(|_| Vec::new()).collect(),
            cursor: vec![vec![0; n]; n],
            reports: (0..n).map(|_| Vec::new()).collect(),
            collected: 0,
        }
    }

    fn check_read(&self, j: usize, what: &str) {
        let k = known(&self.events, &self.delivered[j]);
        assert_eq!(
            S::read(&self.reps[j], self.n),
            S::expected(&k, self.n),
            "{what}: replica {j} reads differently from the specification\nstate = {:?}",
            self.reps[j]
        );
    }

    /// A random mutation at a random replica; with `strict`, its outcome
    /// must be the specification's for what the replica knows.
    fn mutate(&mut self, rng: &mut ChaCha8Rng, strict: bool, what: &str) -> usize {
        let i = rng.random_range(0..self.n);
        let op = S::draw(rng, i, self.n);
        let want = S::expect(&known(&self.events, &self.delivered[i]), i, self.n, &op);
        let before = self.reps[i].clone();
        let got = S::apply(&mut self.reps[i], i, self.n, &op);
        if strict {
            assert_eq!(
                got.as_ref().map(|g| &g.1),
                want.as_ref(),
                "{what}: {op:?} at replica {i} did not do what the specification says"
            );
        }
        match got {
            None => assert_eq!(
                self.reps[i], before,
                "{what}: a refused op changed the state"
            ),
            Some((delta, effective)) => {
                assert_eq!(
                    before.joined(&delta),
                    self.reps[i],
                    "{what}: old ⊔ delta != new"
                );
                let id = self.events.len();
                self.events.push(Event {
                    id,
                    origin: i,
                    past: self.delivered[i].clone(),
                    op: effective,
                });
                self.delivered[i].insert(id);
                self.send(i, Some(id), delta);
            }
        }
        i
    }

    /// Appends a delta to `i`'s log.
    fn send(&mut self, i: usize, event: Option<usize>, delta: S::Acc) {
        let deps = self.seen[i].clone();
        self.seen[i][i] += 1;
        let seq = self.seen[i][i];
        self.log[i].push(Sent {
            seq,
            deps,
            event,
            delta,
        });
    }

    /// Delivers a batch of k's deltas to j in causal order, losing some.
    fn deliver_causal(&mut self, rng: &mut ChaCha8Rng, k: usize, j: usize) {
        let mut batch = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let Some(sent) = self.log[k].get(self.cursor[k][j]) else {
                break;
            };
            if sent.seq <= self.seen[j][k] {
                // Already covered by a merge: a duplicate, harmless.
                batch.push(sent.delta.clone());
                self.cursor[k][j] += 1;
                continue;
            }
            let ready = sent.seq == self.seen[j][k] + 1
                && sent.deps.iter().zip(&self.seen[j]).all(|(d, s)| d <= s);
            if !ready {
                break; // after a lost delta, or causally not ready
            }
            self.cursor[k][j] += 1;
            if rng.random_bool(0.1) {
                break; // lost: the later ones wait for a merge
            }
            self.seen[j][k] = sent.seq;
            self.delivered[j].extend(sent.event);
            batch.push(sent.delta.clone());
        }
        // Deltas of one batch in any order: they commute.
        batch.shuffle(rng);
        for d in &batch {
            self.reps[j].join(d);
        }
    }

    /// Delivers one delta from anywhere to j, regardless of causality.
    fn deliver_any(&mut self, rng: &mut ChaCha8Rng, j: usize) {
        let k = rng.random_range(0..self.n);
        if self.log[k].is_empty() {
            return;
        }
        let m = rng.random_range(0..self.log[k].len());
        let d = self.log[k][m].delta.clone();
        self.reps[j].join(&d);
        let upto = if S::CUMULATIVE { 0 } else { m };
        let carried: Vec<usize> = self.log[k][upto..=m]
            .iter()
            .filter_map(|x| x.event)
            .collect();
        self.delivered[j].extend(carried);
    }

    /// A full-state merge of k into j, by one of three equivalent routes.
    fn merge(&mut self, rng: &mut ChaCha8Rng, k: usize, j: usize, what: &str) {
        let src = self.reps[k].clone();
        let expected = self.reps[j].clone().joined(&src);
        match rng.random_range(0..3) {
            0 => self.reps[j].join(&src),
            1 => {
                let d = src.delta(&self.reps[j]);
                self.reps[j].join(&d);
            }
            _ => {
                let d = src.delta_for(&self.reps[j].summary());
                self.reps[j].join(&d);
            }
        }
        assert_eq!(self.reps[j], expected, "{what}: delta route != full join");
        let sk = self.seen[k].clone();
        for (s, o) in self.seen[j].iter_mut().zip(sk) {
            *s = (*s).max(o);
        }
        let dk = self.delivered[k].clone();
        self.delivered[j].extend(dk);
    }

    /// Tombstone compaction at j from the newest report of every replica
    /// that j has delivered; sometimes from the raw current contexts, which
    /// must be refused exactly when j lacks some of them. The compaction's
    /// delta goes into j's log like any other (a later delta of j does not
    /// carry what the compaction dropped).
    fn compact(&mut self, rng: &mut ChaCha8Rng, j: usize, what: &str) {
        let before = self.reps[j].clone();
        if rng.random_bool(0.3) {
            let current: Vec<(BTreeSet<usize>, CausalContext)> = (0..self.n)
                .filter_map(|x| Some((self.delivered[x].clone(), S::context(&self.reps[x])?)))
                .collect();
            let ctxs: Vec<CausalContext> = current.iter().map(|c| c.1.clone()).collect();
            let first_missing = current
                .iter()
                .position(|(v, _)| !v.is_subset(&self.delivered[j]));
            let Some(got) = S::compact(&mut self.reps[j], &ctxs) else {
                return;
            };
            match first_missing {
                Some(report) => {
                    assert_eq!(got, Err(CompactError::NotDelivered { report }), "{what}");
                    assert_eq!(
                        self.reps[j], before,
                        "{what}: a refused compaction changed j"
                    );
                }
                None => {
                    let d = got.expect("every report delivered");
                    assert_eq!(before.joined(&d), self.reps[j], "{what}: compaction delta");
                    self.collected += usize::from(!d.is_bottom());
                    self.send(j, None, d);
                }
            }
            return;
        }
        let reports: Vec<CausalContext> = self
            .reports
            .iter()
            .map(|rs| {
                rs.iter()
                    .rev()
                    .find(|(v, _)| v.is_subset(&self.delivered[j]))
                    .map(|r| r.1.clone())
                    .unwrap_or_default()
            })
            .collect();
        if let Some(got) = S::compact(&mut self.reps[j], &reports) {
            let d = got.expect("reports j has delivered are accepted");
            assert_eq!(before.joined(&d), self.reps[j], "{what}: compaction delta");
            self.collected += usize::from(!d.is_bottom());
            self.send(j, None, d);
        }
    }

    fn report(&mut self, i: usize) {
        if let Some(ctx) = S::context(&self.reps[i]) {
            self.reports[i].push((self.delivered[i].clone(), ctx));
        }
    }

    /// Everyone into replica 0, then replica 0 into everyone: one state, one
    /// encoding, and the specification's read of every event.
    fn converge(&mut self, what: &str) {
        for k in 1..self.n {
            let src = self.reps[k].clone();
            self.reps[0].join(&src);
        }
        for j in 1..self.n {
            let src = self.reps[0].clone();
            self.reps[j].join(&src);
        }
        let bytes = encode(&self.reps[0]);
        let back: S::Acc = decode(&bytes, &Limits::default()).expect("a merged state decodes");
        assert_eq!(back, self.reps[0], "{what}: decode(encode(x)) != x");
        let all: Vec<&Event<S::Op>> = self.events.iter().collect();
        let want = S::expected(&all, self.n);
        for (j, r) in self.reps.iter().enumerate() {
            assert_eq!(r, &self.reps[0], "{what}: replicas differ");
            assert_eq!(encode(r), bytes, "{what}: encodings differ");
            assert_eq!(
                S::read(r, self.n),
                want,
                "{what}: replica {j} after convergence"
            );
        }
    }
}

fn pick_pair(rng: &mut ChaCha8Rng, n: usize) -> (usize, usize) {
    let k = rng.random_range(0..n);
    (k, (k + rng.random_range(1..n)) % n)
}

/// Causal delivery with lost deltas: reads must match the specification
/// after every step. Returns how many compactions collected something.
fn run_causal<S: Spec>(seed: u64) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut run = Run::<S>::new(rng.random_range(2..=5));
    for step in 0..STEPS {
        let what = format!("seed {seed}, step {step} (causal)");
        let touched = match rng.random_range(0..100) {
            0..45 => run.mutate(&mut rng, true, &what),
            45..70 => {
                let (k, j) = pick_pair(&mut rng, run.n);
                run.deliver_causal(&mut rng, k, j);
                j
            }
            70..88 => {
                let (k, j) = pick_pair(&mut rng, run.n);
                run.merge(&mut rng, k, j, &what);
                // After a sync session, the replica acknowledges its context.
                if rng.random_bool(0.5) {
                    run.report(j);
                }
                j
            }
            88..94 => {
                let i = rng.random_range(0..run.n);
                run.report(i);
                i
            }
            _ => {
                let j = rng.random_range(0..run.n);
                run.compact(&mut rng, j, &what);
                j
            }
        };
        run.check_read(touched, &what);
        S::check_safety(&run.reps[touched], touched, &run.events, run.n);
    }
    run.converge(&format!("seed {seed}, final merge (causal)"));
    run.collected
}

/// Deltas delivered in any order, duplicated or lost: safety at every step,
/// the specification's read after convergence.
fn run_any_order<S: Spec>(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut run = Run::<S>::new(rng.random_range(2..=5));
    for step in 0..STEPS {
        let what = format!("seed {seed}, step {step} (any order)");
        let touched = match rng.random_range(0..100) {
            0..50 => run.mutate(&mut rng, false, &what),
            50..85 => {
                let j = rng.random_range(0..run.n);
                for _ in 0..rng.random_range(1..=3) {
                    run.deliver_any(&mut rng, j);
                }
                j
            }
            _ => {
                let (k, j) = pick_pair(&mut rng, run.n);
                run.merge(&mut rng, k, j, &what);
                j
            }
        };
        S::check_safety(&run.reps[touched], touched, &run.events, run.n);
    }
    run.converge(&format!("seed {seed}, final merge (any order)"));
}

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
