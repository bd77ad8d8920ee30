//! Elements and the states measurements are taken on.
//!
//! Elements are **random** `u64`s by default: element `k` is
//! `splitmix64(k)`, a bijection, so elements never repeat, land at random
//! positions in ordered and hashed containers alike, and cost what a random
//! `u64` costs in a varint (9 or 10 bytes, 9.5 on average). The sequential
//! ids `0..n` are a second, labelled row: they favour B-trees (every insert
//! hits the rightmost leaf) and varints (1 to 3 bytes).

use crate::contestants::Lib;

/// Which elements a state holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elems {
    /// `splitmix64(k)`: random 64-bit values (the typical case).
    Random,
    /// `k` itself: the favourable case, labelled as such.
    Sequential,
}

impl Elems {
    /// Element number `k`.
    pub fn elem(self, k: u64) -> u64 {
        match self {
            Elems::Random => splitmix64(k),
            Elems::Sequential => k,
        }
    }

    /// The label in tables.
    pub fn label(self) -> &'static str {
        match self {
            Elems::Random => "random",
            Elems::Sequential => "sequential",
        }
    }
}

/// SplitMix64's output function (Steele, Lea, Flood, OOPSLA 2014): a
/// bijection of `u64` whose outputs look uniformly random.
pub fn splitmix64(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How a state was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Three replicas each write every third element on their own state,
    /// then the three states are merged (a merge rebuilds containers packed).
    Merged,
    /// One state grown by adds at the three replicas in turn, as a state
    /// that takes writes grows.
    Grown,
}

impl Shape {
    /// The label in tables.
    pub fn label(self) -> &'static str {
        match self {
            Shape::Merged => "merged",
            Shape::Grown => "grown",
        }
    }
}

/// `n` elements written at 3 replicas, in the given shape (element `k`
/// holds value `k` in maps).
pub fn state<L: Lib>(shape: Shape, elems: Elems, n: u64) -> L::State {
    match shape {
        Shape::Merged => round_robin::<L>(n, elems),
        Shape::Grown => {
            let mut s = L::empty();
            for k in 0..n {
                L::write(&mut s, (k % 3) as usize, elems.elem(k), k);
            }
            s
        }
    }
}

/// Elements `0..n`, element `k` written by replica `k % 3` on its own
/// state, then the three states merged.
pub fn round_robin<L: Lib>(n: u64, elems: Elems) -> L::State {
    let mut merged = L::empty();
    for r in 0..3 {
        let mut s = L::empty();
        let writes: Vec<(u64, u64)> = (0..n)
            .filter(|k| k % 3 == r as u64)
            .map(|k| (elems.elem(k), k))
            .collect();
        L::build(&mut s, r, &writes, &[]);
        L::merge(&mut merged, s);
    }
    merged
}

/// The two states the timed operations run on, at about `n` elements each.
///
/// A base of n/2 elements written round-robin by 3 replicas and merged;
/// state X is the base plus replica 0 writing n/2 new elements, rewriting
/// every 10th base element and removing every 50th; state Y is the base
/// plus replica 1 writing n/2 other new elements, rewriting every 20th base
/// element (concurrently with X: conflicts) and removing a different 1 in
/// 50. Elements are random.
pub fn fixture<L: Lib>(n: u64) -> (L::State, L::State) {
    let half = n / 2;
    let e = |k: u64| Elems::Random.elem(k);
    let base = round_robin::<L>(half, Elems::Random);
    let rewrite = |step: usize, delta: u64| -> Vec<(u64, u64)> {
        (0..half).step_by(step).map(|k| (e(k), k + delta)).collect()
    };
    let removes = |offset: u64| -> Vec<u64> { (offset..half).step_by(50).map(e).collect() };

    let mut x = base.clone();
    let mut writes: Vec<(u64, u64)> = (half..n).map(|k| (e(k), k)).collect();
    writes.extend(rewrite(10, 1));
    L::build(&mut x, 0, &writes, &removes(5));

    let mut y = base;
    let mut writes: Vec<(u64, u64)> = (n..n + half).map(|k| (e(k), k)).collect();
    writes.extend(rewrite(20, 2));
    L::build(&mut y, 1, &writes, &removes(35));
    (x, y)
}

/// An element X holds, written by replica 0 alone (for removes and
/// updates): the `i`-th of the n/2 elements X wrote itself, cyclically.
pub fn present(n: u64, i: u64) -> u64 {
    Elems::Random.elem(n / 2 + i % (n / 2))
}

/// A fresh element no fixture holds (for adds).
pub fn fresh(n: u64, i: u64) -> u64 {
    Elems::Random.elem(10 * n + i)
}

/// Sizes of X, Y and X ⊔ Y: two libraries must have built the same fixture.
pub fn fixture_lens<L: Lib>(f: &(L::State, L::State)) -> (usize, usize, usize) {
    let mut m = f.0.clone();
    L::merge(&mut m, f.1.clone());
    (L::len(&f.0), L::len(&f.1), L::len(&m))
}
