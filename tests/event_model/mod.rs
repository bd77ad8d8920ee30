//! The event-graph harness of `tests/differential_model.rs`: events with
//! what their origin had seen, replicas that deliver deltas causally (losing
//! some) or in any order, full-state merges, reported contexts, and the
//! checks run after every step. The types' specifications live in the test
//! file.

use std::collections::BTreeSet;
use std::fmt::Debug;

use accordant::codec::{decode, encode, Canonical, Limits};
use accordant::{CausalContext, CompactError, Decompose, Lattice, ReplicaId, Summarize};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Steps per history.
pub(crate) const STEPS: usize = 80;

pub(crate) fn rid(i: usize) -> ReplicaId {
    ReplicaId::from_u128(i as u128 + 1)
}

/// A successful mutation.
#[derive(Clone, Debug)]
pub(crate) struct Event<Op> {
    /// Index in the history's list of events.
    pub(crate) id: usize,
    pub(crate) origin: usize,
    /// The events the origin had delivered just before this one: what it
    /// saw. Under causal delivery this is the causal past; under any-order
    /// delivery it need not be transitively closed, and the specification
    /// uses it as it is (an event overrides exactly what its origin held).
    pub(crate) past: BTreeSet<usize>,
    pub(crate) op: Op,
}

impl<Op> Event<Op> {
    /// Whether `other` saw `self`.
    pub(crate) fn before(&self, other: &Event<Op>) -> bool {
        other.past.contains(&self.id)
    }
}

/// The events of a delivered set.
pub(crate) fn known<'a, Op>(
    events: &'a [Event<Op>],
    delivered: &BTreeSet<usize>,
) -> Vec<&'a Event<Op>> {
    delivered.iter().map(|i| &events[*i]).collect()
}

/// The events of `events` seen by no other event of `events`.
pub(crate) fn maximal<'a, Op>(events: &[&'a Event<Op>]) -> Vec<&'a Event<Op>> {
    events
        .iter()
        .filter(|x| !events.iter().any(|y| x.before(y)))
        .copied()
        .collect()
}

/// One type under test and its specification.
pub(crate) trait Spec {
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

pub(crate) struct Run<S: Spec> {
    pub(crate) n: usize,
    pub(crate) reps: Vec<S::Acc>,
    /// seen[j][k]: how many of k's events replica j has delivered in causal
    /// order (the causal-delivery gate).
    pub(crate) seen: Vec<Vec<u32>>,
    /// delivered[j]: every event whose effect replica j holds.
    pub(crate) delivered: Vec<BTreeSet<usize>>,
    pub(crate) events: Vec<Event<S::Op>>,
    /// Per origin, its deltas in order.
    pub(crate) log: Vec<Vec<Sent<S::Acc>>>,
    /// cursor[k][j]: the next delta of k to deliver to j.
    pub(crate) cursor: Vec<Vec<usize>>,
    /// Contexts each replica reported, with the events it had delivered.
    pub(crate) reports: Vec<Vec<(BTreeSet<usize>, CausalContext)>>,
    /// Compactions that collected something.
    pub(crate) collected: usize,
}

/// A delta in its origin's log.
#[derive(Clone)]
pub(crate) struct Sent<A> {
    /// 1-based position in the origin's log.
    pub(crate) seq: u32,
    /// The origin's `seen` vector before it: its causal dependencies.
    pub(crate) deps: Vec<u32>,
    /// The event it carries; `None` for a compaction, which changes the
    /// state but no read.
    pub(crate) event: Option<usize>,
    pub(crate) delta: A,
}

impl<S: Spec> Run<S> {
    pub(crate) fn new(n: usize) -> Self {
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

    pub(crate) fn check_read(&self, j: usize, what: &str) {
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
    pub(crate) fn mutate(&mut self, rng: &mut ChaCha8Rng, strict: bool, what: &str) -> usize {
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
    pub(crate) fn send(&mut self, i: usize, event: Option<usize>, delta: S::Acc) {
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
    pub(crate) fn deliver_causal(&mut self, rng: &mut ChaCha8Rng, k: usize, j: usize) {
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
    pub(crate) fn deliver_any(&mut self, rng: &mut ChaCha8Rng, j: usize) {
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
    pub(crate) fn merge(&mut self, rng: &mut ChaCha8Rng, k: usize, j: usize, what: &str) {
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
    pub(crate) fn compact(&mut self, rng: &mut ChaCha8Rng, j: usize, what: &str) {
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

    pub(crate) fn report(&mut self, i: usize) {
        if let Some(ctx) = S::context(&self.reps[i]) {
            self.reports[i].push((self.delivered[i].clone(), ctx));
        }
    }

    /// Everyone into replica 0, then replica 0 into everyone: one state, one
    /// encoding, and the specification's read of every event.
    pub(crate) fn converge(&mut self, what: &str) {
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

pub(crate) fn pick_pair(rng: &mut ChaCha8Rng, n: usize) -> (usize, usize) {
    let k = rng.random_range(0..n);
    (k, (k + rng.random_range(1..n)) % n)
}

/// Causal delivery with lost deltas: reads must match the specification
/// after every step. Returns how many compactions collected something.
pub(crate) fn run_causal<S: Spec>(seed: u64) -> usize {
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
pub(crate) fn run_any_order<S: Spec>(seed: u64) {
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
