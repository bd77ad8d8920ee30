//! Shared machinery of the property tests: random *histories* over a few
//! replicas, replayed for any CRDT type.
//!
//! A [`History`] is a list of steps over 2 to 4 replicas: a type-specific
//! mutation at replica `i`, "replica `i` joins replica `j`'s state", or
//! "replica `i` joins a delta recorded earlier". Replaying it for a type `T`
//! ([`replay`]) gives every replica's final state, every state a replica went
//! through, and every delta a mutation produced. States drawn from one history
//! share causal history (the same dots, the same elements, removes of adds
//! seen elsewhere), which is what makes the causal laws bite: two states
//! generated independently would never contain a remove of the other's add.
//!
//! Element domains are tiny (`% 8`, map keys `% 4`) so adds, removes and
//! updates collide; LWW timestamps come from a 4 x 2 grid so ties happen.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code, unused_macros)]

use std::fmt::Debug;

use accordant::codec::Canonical;
use accordant::{
    CausalCounter, Decompose, GCounter, Hlc, Lattice, LwwRegister, MvRegister, OrMap, OrSet,
    PNCounter, ReplicaId, ShoppingCart,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, Testable};

/// Replica `i` of a history (ids start at 1 so none is the nil UUID).
pub(crate) fn replica(i: usize) -> ReplicaId {
    ReplicaId::from_u128(i as u128 + 1)
}

/// A type-specific operation, interpreted by [`Subject::apply`]: `kind`
/// selects the mutator, `a`, `b`, `c` its arguments (reduced to small domains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    pub(crate) kind: u8,
    pub(crate) a: u8,
    pub(crate) b: u8,
    pub(crate) c: u8,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Self {
        Op {
            kind: u8::arbitrary(g),
            a: u8::arbitrary(g),
            b: u8::arbitrary(g),
            c: u8::arbitrary(g),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        // Shrink the arguments towards 0; `kind` stays (it picks the mutator).
        let me = *self;
        Box::new(
            (me.a, me.b, me.c)
                .shrink()
                .map(move |(a, b, c)| Op { a, b, c, ..me }),
        )
    }
}

/// One step of a history. Replica and delta indices are reduced modulo the
/// number of replicas / deltas recorded so far when replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Replica `at` applies a mutation; its delta is recorded.
    Mutate { at: u8, op: Op },
    /// Replica `at` joins replica `from`'s full state.
    Merge { at: u8, from: u8 },
    /// Replica `at` joins the `delta`-th recorded delta (possibly again).
    Deliver { at: u8, delta: u8 },
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Self {
        let at = u8::arbitrary(g);
        match u8::arbitrary(g) % 20 {
            0..=11 => Step::Mutate {
                at,
                op: Op::arbitrary(g),
            },
            12..=16 => Step::Merge {
                at,
                from: u8::arbitrary(g),
            },
            _ => Step::Deliver {
                at,
                delta: u8::arbitrary(g),
            },
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        match *self {
            Step::Mutate { at, op } => Box::new(op.shrink().map(move |op| Step::Mutate { at, op })),
            _ => quickcheck::empty_shrinker(),
        }
    }
}

/// A random history over `replicas` (2..=4) replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct History {
    pub(crate) replicas: u8,
    pub(crate) steps: Vec<Step>,
}

/// Longest history generated (the generator size caps it further).
pub(crate) const MAX_STEPS: usize = 24;

impl Arbitrary for History {
    fn arbitrary(g: &mut Gen) -> Self {
        let replicas = 2 + u8::arbitrary(g) % 3;
        let max = g.size().min(MAX_STEPS);
        let len = usize::arbitrary(g) % (max + 1);
        History {
            replicas,
            steps: (0..len).map(|_| Step::arbitrary(g)).collect(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let replicas = self.replicas;
        let fewer_replicas = (replicas > 2).then(|| History {
            replicas: replicas - 1,
            steps: self.steps.clone(),
        });
        Box::new(
            fewer_replicas.into_iter().chain(
                self.steps
                    .shrink()
                    .map(move |steps| History { replicas, steps }),
            ),
        )
    }
}

/// One mutation as it happened: the state before, the delta, the state after.
#[derive(Clone, Debug)]
pub(crate) struct Mutation<T> {
    pub(crate) before: T,
    pub(crate) delta: T,
    pub(crate) after: T,
}

/// The outcome of replaying a [`History`] for a type `T`.
#[derive(Clone, Debug)]
pub(crate) struct Replay<T> {
    /// Final state of every replica.
    pub(crate) replicas: Vec<T>,
    /// Every delta produced by a mutation, in the order they were made.
    pub(crate) deltas: Vec<T>,
    /// Every mutation, with its before and after states.
    pub(crate) mutations: Vec<Mutation<T>>,
    /// Every state some replica held at some point (bottom first, finals last).
    pub(crate) states: Vec<T>,
}

impl<T: Subject> Replay<T> {
    /// A state of the history, chosen by `i` (every state is reachable).
    pub(crate) fn pick(&self, i: u8) -> &T {
        &self.states[usize::from(i) % self.states.len()]
    }

    /// The join of the final replica states.
    pub(crate) fn joined_finals(&self) -> T {
        self.replicas
            .iter()
            .fold(T::default(), |acc, s| acc.joined(s))
    }
}

/// A CRDT under test: its lattice, decomposition and codec, plus how a
/// generated [`Op`] mutates it.
pub(crate) trait Subject: Lattice + Decompose + Canonical + Debug + 'static {
    /// Applies `op` at `at` and returns the delta, or `None` when the type
    /// refuses the operation (which must then leave the state unchanged).
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self>;
}

/// Replays `h` for `T`, with the history's own number of replicas.
pub(crate) fn replay<T: Subject>(h: &History) -> Replay<T> {
    replay_split(h, usize::from(h.replicas.clamp(1, 4)))
}

/// Replays `h` for `T` over `n` replicas: step indices are taken modulo `n`,
/// so the same list of operations can be split over different replica counts.
pub(crate) fn replay_split<T: Subject>(h: &History, n: usize) -> Replay<T> {
    let mut replicas: Vec<T> = vec![T::default(); n];
    let mut deltas: Vec<T> = Vec::new();
    let mut mutations = Vec::new();
    let mut states = vec![T::default()];
    for step in &h.steps {
        let at = match *step {
            Step::Mutate { at, .. } | Step::Merge { at, .. } | Step::Deliver { at, .. } => {
                usize::from(at) % n
            }
        };
        match *step {
            Step::Mutate { op, .. } => {
                let before = replicas[at].clone();
                match replicas[at].apply(replica(at), op) {
                    Some(delta) => {
                        mutations.push(Mutation {
                            before,
                            delta: delta.clone(),
                            after: replicas[at].clone(),
                        });
                        deltas.push(delta);
                    }
                    None => assert_eq!(
                        replicas[at], before,
                        "a refused operation {op:?} changed the state"
                    ),
                }
            }
            Step::Merge { from, .. } => {
                let other = replicas[usize::from(from) % n].clone();
                replicas[at].join(&other);
            }
            Step::Deliver { delta, .. } => {
                if !deltas.is_empty() {
                    let d = deltas[usize::from(delta) % deltas.len()].clone();
                    replicas[at].join(&d);
                }
            }
        }
        states.push(replicas[at].clone());
    }
    states.extend(replicas.iter().cloned());
    Replay {
        replicas,
        deltas,
        mutations,
        states,
    }
}

/// SplitMix64: a tiny seeded generator for shuffles and delivery schedules.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub(crate) fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }

    /// Fisher-Yates shuffle.
    pub(crate) fn shuffle<X>(&mut self, xs: &mut [X]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }
}

/// Runs a property with `QUICKCHECK_TESTS` cases (default `cases`), from a
/// seed printed on failure; set `LAWS_SEED` to replay a failing run.
pub(crate) fn check<A: Testable>(cases: u64, prop: A) {
    let cases = std::env::var("QUICKCHECK_TESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let seed = std::env::var("LAWS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
    // Captured by the test harness, shown only when the property fails.
    eprintln!("property seed: LAWS_SEED={seed}");
    QuickCheck::new()
        .rng(Gen::from_size_and_seed(MAX_STEPS, seed))
        .tests(cases)
        .max_tests(cases * 10)
        .quickcheck(prop);
}

/// Fails the enclosing property (returning a `TestResult` error) with a message.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return quickcheck::TestResult::error(format!($($msg)+));
        }
    };
}

// ---------------------------------------------------------------------------
// How each type interprets an `Op`.
// ---------------------------------------------------------------------------

fn elem(x: u8) -> u8 {
    x % 8
}

fn key(x: u8) -> u8 {
    x % 4
}

fn amount(x: u8) -> i64 {
    i64::from(x % 7) - 3
}

impl Subject for GCounter {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        self.inc(at, u64::from(op.a % 4)).ok()
    }
}

impl Subject for PNCounter {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        self.add(at, amount(op.a)).ok()
    }
}

/// Shared by `CausalCounter` at top level and inside maps.
fn counter_op(c: &mut CausalCounter, at: ReplicaId, kind: u8, x: u8) -> Option<CausalCounter> {
    match kind % 4 {
        0 | 1 => c.add(at, amount(x)).ok(),
        2 => c.set(at, i64::from(x % 5)).ok(),
        _ => Some(c.reset()),
    }
}

impl Subject for CausalCounter {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        counter_op(self, at, op.kind, op.a)
    }
}

impl Subject for LwwRegister<u8> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        // A 4 x 2 grid of timestamps: equal stamps happen across replicas
        // (the replica id breaks the tie) and within one replica (the value
        // does: the join must stay a semilattice even then).
        let stamp = Hlc::new(u64::from(op.a % 4), u32::from(op.b % 2));
        Some(self.write_at(stamp, at, elem(op.c)))
    }
}

fn mv_op(r: &mut MvRegister<u8>, at: ReplicaId, kind: u8, x: u8) -> Option<MvRegister<u8>> {
    match kind % 4 {
        0..=2 => r.write(at, elem(x)).ok(),
        _ => Some(r.clear()),
    }
}

impl Subject for MvRegister<u8> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        mv_op(self, at, op.kind, op.a)
    }
}

fn set_op(s: &mut OrSet<u8>, at: ReplicaId, kind: u8, x: u8) -> Option<OrSet<u8>> {
    match kind % 8 {
        0..=4 => s.add(at, elem(x)).ok(),
        5 | 6 => Some(s.remove(&elem(x))),
        _ => Some(s.clear()),
    }
}

impl Subject for OrSet<u8> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        set_op(self, at, op.kind, op.a)
    }
}

impl Subject for OrMap<u8, OrSet<u8>> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        let k = key(op.a);
        match op.kind % 8 {
            0..=5 => self
                .try_update(k, |s| set_op(s, at, op.kind % 8, op.b).ok_or(()))
                .ok(),
            6 => Some(self.remove(&k)),
            _ => Some(self.clear()),
        }
    }
}

impl Subject for OrMap<u8, MvRegister<u8>> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        let k = key(op.a);
        match op.kind % 8 {
            0..=5 => self
                .try_update(k, |r| mv_op(r, at, op.kind % 4, op.b).ok_or(()))
                .ok(),
            6 => Some(self.remove(&k)),
            _ => Some(self.clear()),
        }
    }
}

impl Subject for OrMap<u8, CausalCounter> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        let k = key(op.a);
        match op.kind % 8 {
            0..=5 => self
                .try_update(k, |c| counter_op(c, at, op.kind % 4, op.b).ok_or(()))
                .ok(),
            6 => Some(self.remove(&k)),
            _ => Some(self.clear()),
        }
    }
}

impl Subject for OrMap<u8, OrMap<u8, OrSet<u8>>> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        let (k, k2) = (key(op.a), key(op.b));
        match op.kind % 8 {
            0..=3 => self
                .try_update(k, |m| m.try_update(k2, |s| s.add(at, elem(op.c))))
                .ok(),
            4 => Some(self.update(k, |m| m.update(k2, |s| s.remove(&elem(op.c))))),
            5 => Some(self.update(k, |m| m.remove(&k2))),
            6 => Some(self.remove(&k)),
            _ => Some(self.clear()),
        }
    }
}

impl Subject for ShoppingCart<u8> {
    fn apply(&mut self, at: ReplicaId, op: Op) -> Option<Self> {
        let item = elem(op.a);
        match op.kind % 8 {
            0..=3 => self.add(at, item, u64::from(op.b % 3) + 1).ok(),
            4 => self.set_quantity(at, item, u64::from(op.b % 3)).ok(),
            5 | 6 => Some(self.remove_item(&item)),
            _ => Some(self.clear()),
        }
    }
}
