//! Wall-clock timings with the libraries alternated in one process.
//!
//! A shared machine's noise (another build, a frequency change) comes in
//! bursts of seconds. Timing library A for a minute and then library B
//! charges each burst to one of them; here every round times a batch of each
//! library back to back, in alternating order (A B, then B A), so a burst
//! falls on both. Each library's figure is the median over rounds, with the
//! quartiles as its spread, and the ratio is the median of the per-round
//! ratios, with their quartiles.
//!
//! Mutations run in batches of [`BATCH`] on a state kept near its size: each
//! batch is followed by its untimed undo (an added element removed, a
//! removed one added back), so no clone evicts the caches between batches.
//! Merges time `X ⊔ Y` on fresh clones made untimed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::contestants::Lib;
use crate::data::{fresh, present};

/// Operations timed back to back before an untimed undo.
pub const BATCH: u64 = 100;

/// One library's operation on its own fixture, timed a batch at a time.
pub trait Timed {
    /// Runs `ops` operations and returns the time they took (undo excluded).
    fn run(&mut self, ops: u64) -> Duration;

    /// The smallest sensible number of operations in one run.
    fn unit(&self) -> u64 {
        BATCH
    }
}

/// Operation number `i` on a state.
type Step<S> = Box<dyn FnMut(&mut S, u64)>;

/// A mutation and its untimed undo, on a state kept near its size.
pub struct Mutation<S> {
    state: S,
    next: u64,
    op: Step<S>,
    undo: Step<S>,
}

impl<S> Mutation<S> {
    /// Operation `i` is `op(state, i)`, undone by `undo(state, i)`.
    pub fn new(
        state: S,
        op: impl FnMut(&mut S, u64) + 'static,
        undo: impl FnMut(&mut S, u64) + 'static,
    ) -> Self {
        Mutation {
            state,
            next: 0,
            op: Box::new(op),
            undo: Box::new(undo),
        }
    }
}

impl<S> Timed for Mutation<S> {
    fn run(&mut self, ops: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < ops {
            let todo = self.next..self.next + BATCH.min(ops - done);
            let start = Instant::now();
            for i in todo.clone() {
                (self.op)(&mut self.state, i);
            }
            total += start.elapsed();
            for i in todo.clone() {
                (self.undo)(&mut self.state, i);
            }
            done += todo.end - todo.start;
            self.next = todo.end;
        }
        total
    }
}

/// `X ⊔ Y`, consuming a clone of Y, on fresh clones.
pub struct Merge<L: Lib> {
    x: L::State,
    y: L::State,
}

impl<L: Lib> Merge<L> {
    /// Times merges of these two states.
    pub fn new(fixture: (L::State, L::State)) -> Self {
        Merge {
            x: fixture.0,
            y: fixture.1,
        }
    }
}

impl<L: Lib> Timed for Merge<L> {
    fn run(&mut self, ops: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..ops {
            let (mut x, y) = (self.x.clone(), self.y.clone());
            let start = Instant::now();
            L::merge(&mut x, y);
            total += start.elapsed();
            black_box(&x);
        }
        total
    }

    fn unit(&self) -> u64 {
        1
    }
}

/// The kinds of operation timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Add a fresh element (set) or write a new key (map) at replica 2.
    Add,
    /// Remove a present element or key.
    Remove,
    /// Overwrite a present key at replica 2 (a write that has seen the
    /// value it replaces).
    Update,
    /// Merge two states of about n elements.
    Merge,
}

impl Op {
    /// The label in tables.
    pub fn label(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Update => "update",
            Op::Merge => "merge",
        }
    }
}

/// The timed operation `op` of library `L` on its fixture `x`/`y` of about
/// `n` elements.
pub fn timed<L: Lib + 'static>(op: Op, n: u64, fixture: (L::State, L::State)) -> Box<dyn Timed>
where
    L::State: 'static,
{
    match op {
        Op::Add => Box::new(Mutation::new(
            fixture.0,
            move |s, i| L::write(s, 2, fresh(n, i), i),
            move |s, i| L::remove(s, 2, fresh(n, i)),
        )),
        Op::Remove => Box::new(Mutation::new(
            fixture.0,
            move |s, i| L::remove(s, 2, present(n, i)),
            move |s, i| L::write(s, 0, present(n, i), i),
        )),
        Op::Update => Box::new(Mutation::new(
            fixture.0,
            move |s, i| L::write(s, 2, present(n, i), i),
            |_, _| {},
        )),
        Op::Merge => Box::new(Merge::<L>::new(fixture)),
    }
}

/// Median and quartiles of a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
}

impl Spread {
    /// The spread of `values` (which must not be empty).
    pub fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Linear interpolation between closest ranks.
            let pos = q * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Spread {
            q1: at(0.25),
            median: at(0.5),
            q3: at(0.75),
        }
    }
}

/// The result of an alternated run: nanoseconds per operation of each
/// contestant, round by round.
#[derive(Clone, Debug)]
pub struct Alternated {
    /// `ns[c][r]`: contestant `c` in round `r`.
    pub ns: Vec<Vec<f64>>,
}

impl Alternated {
    /// Contestant `c`'s nanoseconds per operation.
    pub fn spread(&self, c: usize) -> Spread {
        Spread::of(&self.ns[c])
    }

    /// Per-round ratios `ns[b] / ns[a]` (how many times faster `a` is).
    pub fn ratio(&self, a: usize, b: usize) -> Spread {
        let r: Vec<f64> = self.ns[a]
            .iter()
            .zip(&self.ns[b])
            .map(|(x, y)| y / x)
            .collect();
        Spread::of(&r)
    }
}

/// Runs `rounds` rounds, each timing every contestant for about `per_run`
/// (a whole number of its [`Timed::unit`]s, at least one), in alternating
/// order. An untimed warm-up run of each contestant first calibrates how
/// many operations fill `per_run`.
pub fn alternate(
    contestants: &mut [Box<dyn Timed>],
    rounds: usize,
    per_run: Duration,
) -> Alternated {
    let k = contestants.len();
    let ops: Vec<u64> = contestants
        .iter_mut()
        .map(|c| {
            let unit = c.unit();
            let t = c.run(unit).as_secs_f64().max(1e-9);
            let units = (per_run.as_secs_f64() / t).floor().max(1.0) as u64;
            units * unit
        })
        .collect();
    let mut ns = vec![Vec::with_capacity(rounds); k];
    for round in 0..rounds {
        for j in 0..k {
            let c = if round % 2 == 0 { j } else { k - 1 - j };
            let t = contestants[c].run(ops[c]);
            ns[c].push(t.as_nanos() as f64 / ops[c] as f64);
        }
    }
    Alternated { ns }
}
