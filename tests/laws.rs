//! The algebraic laws every CRDT of `accordant` must satisfy, checked by
//! quickcheck on states drawn from random multi-replica histories.
//!
//! Each law is a generic function over any `T: Lattice + Decompose +
//! Canonical + Debug` (through the [`common::Subject`] trait, which only adds
//! "how a generated op mutates `T`"), so a new type gets the whole suite by
//! implementing `Subject` and adding one line to the `laws_for!` list at the
//! bottom. States come from replaying a random history of mutations, full
//! state merges and (re)delivered deltas over 2-4 replicas, so they share
//! causal history: removes of adds made elsewhere, concurrent updates,
//! stale deltas.
//!
//! Run with `QUICKCHECK_TESTS=5000` for a longer search; a failure prints the
//! seed (`LAWS_SEED=...`) that replays it.

#[macro_use]
mod common;

use accordant::codec::{decode, encode, encoded_len, Limits};
use accordant::{
    BoundedCounter, Causal, CausalContext, CausalCounter, CausalCrdt, DecodeError, DwFlag, EwFlag,
    GCounter, LwwRegister, MvRegister, OrMap, OrSet, PNCounter, RwSet, ShoppingCart, Summarize,
};
use common::{check, replay, replay_split, History, SplitMix, Subject};
use quickcheck::TestResult;

/// Cases per property (override with `QUICKCHECK_TESTS`).
const CASES: u64 = 300;
/// Cases for the costlier properties (quadratic in the state size).
const FEWER: u64 = 150;

fn join_all<'a, T: Subject>(xs: impl IntoIterator<Item = &'a T>) -> T {
    xs.into_iter().fold(T::default(), |acc, x| acc.joined(x))
}

// ---------------------------------------------------------------------------
// Join-semilattice.
// ---------------------------------------------------------------------------

/// `a ⊔ b == b ⊔ a`, whether joined by reference or by value.
fn join_is_commutative<T: Subject>(h: History, i: u8, j: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b) = (r.pick(i), r.pick(j));
    let ab = a.clone().joined(b);
    let ba = b.clone().joined(a);
    ensure!(
        ab == ba,
        "a ⊔ b != b ⊔ a\na = {a:?}\nb = {b:?}\nab = {ab:?}\nba = {ba:?}"
    );
    let mut owned = a.clone();
    owned.join_owned(b.clone());
    ensure!(
        owned == ab,
        "join_owned disagrees with join: {owned:?} vs {ab:?}"
    );
    TestResult::passed()
}

/// `(a ⊔ b) ⊔ c == a ⊔ (b ⊔ c)`.
fn join_is_associative<T: Subject>(h: History, i: u8, j: u8, k: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b, c) = (r.pick(i), r.pick(j), r.pick(k));
    let left = a.clone().joined(b).joined(c);
    let right = a.clone().joined(&b.clone().joined(c));
    ensure!(
        left == right,
        "(a ⊔ b) ⊔ c != a ⊔ (b ⊔ c)\na = {a:?}\nb = {b:?}\nc = {c:?}\nleft = {left:?}\nright = {right:?}"
    );
    TestResult::passed()
}

/// `a ⊔ a == a`, and joining what is already in a join changes nothing.
fn join_is_idempotent<T: Subject>(h: History, i: u8, j: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b) = (r.pick(i), r.pick(j));
    let aa = a.clone().joined(a);
    ensure!(aa == *a, "a ⊔ a != a\na = {a:?}\na ⊔ a = {aa:?}");
    let ab = a.clone().joined(b);
    ensure!(ab.clone().joined(b) == ab, "(a ⊔ b) ⊔ b != a ⊔ b");
    ensure!(ab.clone().joined(a) == ab, "(a ⊔ b) ⊔ a != a ⊔ b");
    TestResult::passed()
}

/// `Default` is bottom: the identity of join, below everything, and the
/// only state for which `is_bottom` holds.
fn bottom_is_identity<T: Subject>(h: History, i: u8) -> TestResult {
    let r = replay::<T>(&h);
    let a = r.pick(i);
    let bot = T::default();
    ensure!(bot.is_bottom(), "default is not bottom");
    ensure!(bot.clone().joined(a) == *a, "⊥ ⊔ a != a for {a:?}");
    ensure!(a.clone().joined(&bot) == *a, "a ⊔ ⊥ != a for {a:?}");
    ensure!(bot.leq(a), "⊥ ⋢ a for {a:?}");
    ensure!(
        a.is_bottom() == (*a == bot),
        "is_bottom() = {} for {a:?}",
        a.is_bottom()
    );
    TestResult::passed()
}

/// `a ⊑ b` iff `a ⊔ b == b`; the join is an upper bound; `⊑` is antisymmetric.
fn leq_agrees_with_join<T: Subject>(h: History, i: u8, j: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b) = (r.pick(i), r.pick(j));
    let ab = a.clone().joined(b);
    ensure!(
        a.leq(b) == (ab == *b),
        "a.leq(b) = {} but (a ⊔ b == b) = {}\na = {a:?}\nb = {b:?}",
        a.leq(b),
        ab == *b
    );
    ensure!(a.leq(&ab) && b.leq(&ab), "a ⊔ b is not an upper bound");
    ensure!(a.leq(a), "a ⋢ a");
    if a.leq(b) && b.leq(a) {
        ensure!(a == b, "a ⊑ b and b ⊑ a but a != b\na = {a:?}\nb = {b:?}");
    }
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Delta mutators: deltas are equivalent to states.
// ---------------------------------------------------------------------------

/// Every mutator returns a delta with `before ⊔ delta == after`; the delta
/// is below the new state and the mutation only inflates.
fn mutators_return_their_delta<T: Subject>(h: History) -> TestResult {
    let r = replay::<T>(&h);
    for m in &r.mutations {
        let joined = m.before.clone().joined(&m.delta);
        ensure!(
            joined == m.after,
            "before ⊔ delta != after\nbefore = {:?}\ndelta = {:?}\nafter = {:?}\nbefore ⊔ delta = {joined:?}",
            m.before,
            m.delta,
            m.after
        );
        ensure!(m.delta.leq(&m.after), "delta ⋢ after: {:?}", m.delta);
        ensure!(m.before.leq(&m.after), "a mutation deflated the state");
    }
    TestResult::passed()
}

/// Joining every delta of a history into bottom — in the original order,
/// reversed, or shuffled with duplicates — gives the join of the final
/// replica states: shipping deltas is as good as shipping states.
fn deltas_are_equivalent_to_states<T: Subject>(h: History, seed: u64) -> TestResult {
    let r = replay::<T>(&h);
    let states = r.joined_finals();
    let in_order = join_all(&r.deltas);
    ensure!(
        in_order == states,
        "deltas in order != join of states\ndeltas: {in_order:?}\nstates: {states:?}"
    );
    let reversed = join_all(r.deltas.iter().rev());
    ensure!(
        reversed == states,
        "deltas reversed != join of states: {reversed:?}"
    );
    let mut rng = SplitMix::new(seed);
    let mut schedule: Vec<&T> = Vec::new();
    for d in &r.deltas {
        for _ in 0..1 + rng.below(3) {
            schedule.push(d);
        }
    }
    rng.shuffle(&mut schedule);
    let shuffled = join_all(schedule);
    ensure!(
        shuffled == states,
        "deltas shuffled and duplicated != join of states: {shuffled:?}"
    );
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Join decomposition and minimal deltas (Enes et al., ICDE 2019).
// ---------------------------------------------------------------------------

/// `⊔ decompose(a) == a`; no part is bottom; each part is its own
/// decomposition (irreducible); parts are distinct and none is redundant.
fn decomposition_is_irredundant<T: Subject>(h: History, i: u8) -> TestResult {
    let r = replay::<T>(&h);
    let a = r.pick(i);
    let parts = a.decompose();
    ensure!(
        T::default().decompose().is_empty(),
        "bottom decomposes into something"
    );
    let whole = join_all(&parts);
    ensure!(
        whole == *a,
        "join of the decomposition != state\nstate = {a:?}\nparts = {parts:?}"
    );
    for (n, p) in parts.iter().enumerate() {
        ensure!(!p.is_bottom(), "part {n} is bottom: {parts:?}");
        ensure!(p.leq(a), "part {n} is not below the state: {p:?}");
        let again = p.decompose();
        ensure!(
            again.len() == 1 && again[0] == *p,
            "part {n} is not irreducible: {p:?} decomposes into {again:?}"
        );
        ensure!(
            parts[..n].iter().all(|q| q != p),
            "part {n} appears twice: {p:?}"
        );
        let others = join_all(parts.iter().take(n).chain(parts.iter().skip(n + 1)));
        ensure!(
            others != *a,
            "part {n} is redundant (the others already join to the state): {p:?}\nstate = {a:?}"
        );
    }
    TestResult::passed()
}

/// `Δ(a, b)` is exactly the join of `a`'s irreducibles not below `b`, so
/// `Δ(a, b) ⊔ b == a ⊔ b`, nothing in it is already in `b`, and `Δ(a, a)`
/// is bottom.
fn minimal_delta_is_what_b_lacks<T: Subject>(h: History, i: u8, j: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b) = (r.pick(i), r.pick(j));
    let d = a.delta(b);
    let ab = a.clone().joined(b);
    let db = d.clone().joined(b);
    ensure!(
        db == ab,
        "Δ(a, b) ⊔ b != a ⊔ b\na = {a:?}\nb = {b:?}\nΔ = {d:?}\nΔ ⊔ b = {db:?}\na ⊔ b = {ab:?}"
    );
    for p in d.decompose() {
        ensure!(
            !p.leq(b),
            "Δ(a, b) holds {p:?}, which b already has\na = {a:?}\nb = {b:?}"
        );
    }
    let expected = join_all(a.decompose().iter().filter(|x| !x.leq(b)));
    ensure!(
        d == expected,
        "Δ(a, b) != ⊔{{x ∈ ⇓a | x ⋢ b}}\na = {a:?}\nb = {b:?}\nΔ = {d:?}\nexpected = {expected:?}"
    );
    ensure!(d.leq(a), "Δ(a, b) ⋢ a: {d:?}");
    let aa = a.delta(a);
    ensure!(aa.is_bottom(), "Δ(a, a) is not bottom: {aa:?}");
    ensure!(a.delta(&T::default()) == *a, "Δ(a, ⊥) != a");
    ensure!(T::default().delta(b).is_bottom(), "Δ(⊥, b) is not bottom");
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Canonical, bounded codec.
// ---------------------------------------------------------------------------

/// `decode(encode(x)) == x` for every state and delta; an extra byte is
/// `TrailingBytes`; every strict prefix (the last byte removed, ...) fails
/// with an error, never a panic.
fn codec_round_trips<T: Subject>(h: History, i: u8) -> TestResult {
    let r = replay::<T>(&h);
    let lim = Limits::default();
    let delta = if r.deltas.is_empty() {
        T::default()
    } else {
        r.deltas[usize::from(i) % r.deltas.len()].clone()
    };
    for x in [r.pick(i), &delta, &T::default()] {
        let bytes = encode(x);
        // The streamed encoding is the wire form's, byte for byte.
        let via_wire = postcard::to_allocvec(&x.to_wire()).expect("wire forms serialise");
        ensure!(
            bytes == via_wire,
            "encode(x) differs from postcard(x.to_wire())\nx = {x:?}"
        );
        ensure!(
            encoded_len(x) == bytes.len(),
            "encoded_len {} != {}",
            encoded_len(x),
            bytes.len()
        );
        match decode::<T>(&bytes, &lim) {
            Ok(back) => ensure!(
                back == *x,
                "decode(encode(x)) != x\nx = {x:?}\nback = {back:?}"
            ),
            Err(e) => {
                return TestResult::error(format!("decode(encode(x)) failed: {e}\nx = {x:?}"))
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        ensure!(
            decode::<T>(&longer, &lim) == Err(DecodeError::TrailingBytes(1)),
            "one appended byte: {:?}",
            decode::<T>(&longer, &lim)
        );
        for cut in 0..bytes.len() {
            ensure!(
                decode::<T>(&bytes[..cut], &lim).is_err(),
                "a {cut}-byte prefix of a {}-byte encoding decoded\nx = {x:?}",
                bytes.len()
            );
        }
        let tight = Limits::new(bytes.len());
        ensure!(
            decode::<T>(&bytes, &tight).is_ok(),
            "fails at exact max_bytes"
        );
        if !bytes.is_empty() {
            ensure!(
                matches!(
                    decode::<T>(&bytes, &Limits::new(bytes.len() - 1)),
                    Err(DecodeError::TooLarge { .. })
                ),
                "max_bytes not enforced"
            );
        }
    }
    TestResult::passed()
}

/// Decoding is the exact inverse of encoding: corrupted bytes either fail
/// with a typed error or decode to a state whose encoding is exactly those
/// bytes (one byte string per state, in both directions).
fn codec_accepts_only_canonical_bytes<T: Subject>(
    h: History,
    i: u8,
    edits: Vec<(u8, u8, bool)>,
) -> TestResult {
    let r = replay::<T>(&h);
    let x = r.pick(i);
    let bytes = encode(x);
    let lim = Limits::default();
    for (pos, byte, insert) in edits.into_iter().take(8) {
        let mut bad = bytes.clone();
        let at = usize::from(pos) % (bytes.len() + 1);
        if insert || at == bytes.len() {
            bad.insert(at, byte);
        } else {
            bad[at] = byte;
        }
        if let Ok(y) = decode::<T>(&bad, &lim) {
            let again = encode(&y);
            ensure!(
                again == bad,
                "accepted non-canonical bytes\nbytes   = {bad:?}\nre-encoded = {again:?}\nstate = {y:?}"
            );
        }
    }
    TestResult::passed()
}

/// Replicas that converged through different merge orders (and a replica
/// fed only deltas) encode to identical bytes; states encode equally
/// exactly when they are equal.
fn encoding_is_canonical<T: Subject>(h: History, seed: u64) -> TestResult {
    let r = replay::<T>(&h);
    let mut rng = SplitMix::new(seed);
    let forward = join_all(&r.replicas);
    let backward = join_all(r.replicas.iter().rev());
    let mut deltas: Vec<&T> = r.deltas.iter().collect();
    rng.shuffle(&mut deltas);
    let from_deltas = join_all(deltas);
    let reference = encode(&forward);
    for (how, s) in [("backward", &backward), ("from deltas", &from_deltas)] {
        ensure!(*s == forward, "{how}: did not converge");
        ensure!(
            encode(s) == reference,
            "{how}: equal states, different bytes\n{:?}\n{reference:?}",
            encode(s)
        );
    }
    let encoded: Vec<Vec<u8>> = r.states.iter().map(encode).collect();
    for (s, es) in r.states.iter().zip(&encoded) {
        for (t, et) in r.states.iter().zip(&encoded) {
            ensure!(
                (s == t) == (es == et),
                "equality and byte equality disagree\ns = {s:?}\nt = {t:?}"
            );
        }
    }
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Convergence across splits of one history (crdts' `prop_merge_converges`).
// ---------------------------------------------------------------------------

/// The same operations spread over 2, 3 or 4 replicas: whatever order the
/// replicas then merge in (left fold, right fold, random order, gossip
/// around a ring), they all reach one state with one encoding.
fn merges_converge_across_splits<T: Subject>(h: History, seed: u64) -> TestResult {
    let mut rng = SplitMix::new(seed);
    for n in 2..=4 {
        let r = replay_split::<T>(&h, n);
        let left = join_all(&r.replicas);
        let right = r
            .replicas
            .iter()
            .rev()
            .fold(T::default(), |acc, s| s.clone().joined(&acc));
        let mut order: Vec<&T> = r.replicas.iter().collect();
        rng.shuffle(&mut order);
        let random = join_all(order);
        // Gossip: random pairwise pulls, then two rounds around a ring.
        let mut reps = r.replicas.clone();
        for _ in 0..rng.below(2 * n) {
            let (x, y) = (rng.below(n), rng.below(n));
            let other = reps[y].clone();
            reps[x].join(&other);
        }
        for k in 0..2 * n {
            let other = reps[k % n].clone();
            reps[(k + 1) % n].join(&other);
        }
        let bytes = encode(&left);
        for (how, s) in [("right fold", &right), ("random order", &random)]
            .into_iter()
            .chain(reps.iter().map(|s| ("gossip", s)))
        {
            ensure!(
                *s == left,
                "{n} replicas, {how}: diverged\n{s:?}\nvs left fold\n{left:?}"
            );
            ensure!(encode(s) == bytes, "{n} replicas, {how}: different bytes");
        }
    }
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Summaries: catching up from a peer's summary alone.
// ---------------------------------------------------------------------------

/// `b ⊔ a.delta_for(&b.summary()) == a ⊔ b`, the delta is below `a`, and the
/// summary survives its own codec (it travels on the wire).
fn summary_catches_up<T: Subject + Summarize>(h: History, i: u8, j: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b) = (r.pick(i), r.pick(j));
    let seen = b.summary();
    let d = a.delta_for(&seen);
    let caught_up = b.clone().joined(&d);
    let ab = a.clone().joined(b);
    ensure!(
        caught_up == ab,
        "b ⊔ a.delta_for(summary(b)) != a ⊔ b\na = {a:?}\nb = {b:?}\ndelta = {d:?}"
    );
    ensure!(d.leq(a), "delta_for(a, _) ⋢ a: {d:?}");
    ensure!(
        a.delta_for(&a.summary()).leq(a),
        "a.delta_for(summary(a)) ⋢ a"
    );
    let back: Result<T::Summary, _> = decode(&encode(&seen), &Limits::default());
    ensure!(
        back.as_ref() == Ok(&seen),
        "summary codec: {back:?} vs {seen:?}"
    );
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Causal types: catching up from a peer's context alone.
// ---------------------------------------------------------------------------

/// A causal type, with the type's own `delta_since` when it has one.
trait CausalSubject: Subject + CausalCrdt {
    fn own_delta_since(&self, _seen: &CausalContext) -> Option<Self> {
        None
    }
}

impl CausalSubject for CausalCounter {}
impl CausalSubject for MvRegister<u8> {}
impl CausalSubject for ShoppingCart<u8> {}
impl CausalSubject for EwFlag {}
impl CausalSubject for DwFlag {}
impl CausalSubject for RwSet<u8> {
    fn own_delta_since(&self, seen: &CausalContext) -> Option<Self> {
        Some(self.delta_since(seen))
    }
}
impl CausalSubject for OrSet<u8> {
    fn own_delta_since(&self, seen: &CausalContext) -> Option<Self> {
        Some(self.delta_since(seen))
    }
}
impl<V> CausalSubject for OrMap<u8, V>
where
    V: CausalCrdt + 'static,
    OrMap<u8, V>: Subject,
{
    fn own_delta_since(&self, seen: &CausalContext) -> Option<Self> {
        Some(self.delta_since(seen))
    }
}

/// `b ⊔ delta_since(a, context(b)) == a ⊔ b`: a replica that only sent its
/// causal context gets everything it lacks, and nothing it has is undone.
fn delta_since_context_catches_up<T: CausalSubject>(h: History, i: u8, j: u8) -> TestResult {
    let r = replay::<T>(&h);
    let (a, b) = (r.pick(i), r.pick(j));
    let seen = b.as_causal().context();
    let d: Causal<T::Store> = a.as_causal().delta_since(seen);
    let d = T::from_causal(d);
    let caught_up = b.clone().joined(&d);
    let ab = a.clone().joined(b);
    ensure!(
        caught_up == ab,
        "b ⊔ delta_since(a, ctx(b)) != a ⊔ b\na = {a:?}\nb = {b:?}\ndelta = {d:?}\ngot = {caught_up:?}\nwant = {ab:?}"
    );
    ensure!(d.leq(a), "delta_since(a, _) ⋢ a: {d:?}");
    if let Some(own) = a.own_delta_since(seen) {
        ensure!(own == d, "the type's delta_since differs: {own:?} vs {d:?}");
    }
    TestResult::passed()
}

// ---------------------------------------------------------------------------
// Instantiation: every law for every type.
// ---------------------------------------------------------------------------

macro_rules! law_tests {
    ($ty:ty => $($law:ident($($arg:ty),*) x $cases:expr;)*) => {
        $(
            #[test]
            fn $law() {
                check($cases, super::$law::<$ty> as fn($($arg),*) -> TestResult);
            }
        )*
    };
}

macro_rules! laws_for {
    ($($name:ident: $ty:ty $(, $causal:ident)?;)*) => {
        $(
            mod $name {
                use super::*;
                law_tests! { $ty =>
                    join_is_commutative(History, u8, u8) x CASES;
                    join_is_associative(History, u8, u8, u8) x CASES;
                    join_is_idempotent(History, u8, u8) x CASES;
                    bottom_is_identity(History, u8) x CASES;
                    leq_agrees_with_join(History, u8, u8) x CASES;
                    mutators_return_their_delta(History) x CASES;
                    deltas_are_equivalent_to_states(History, u64) x CASES;
                    decomposition_is_irredundant(History, u8) x FEWER;
                    minimal_delta_is_what_b_lacks(History, u8, u8) x CASES;
                    codec_round_trips(History, u8) x FEWER;
                    codec_accepts_only_canonical_bytes(History, u8, Vec<(u8, u8, bool)>) x CASES;
                    encoding_is_canonical(History, u64) x FEWER;
                    merges_converge_across_splits(History, u64) x FEWER;
                    summary_catches_up(History, u8, u8) x CASES;
                }
                $( causal_laws!($causal $ty); )?
            }
        )*
    };
}

macro_rules! causal_laws {
    (causal $ty:ty) => {
        law_tests! { $ty =>
            delta_since_context_catches_up(History, u8, u8) x CASES;
        }
    };
}

laws_for! {
    gcounter: GCounter;
    pncounter: PNCounter;
    causal_counter: CausalCounter, causal;
    lww_register: LwwRegister<u8>;
    mv_register: MvRegister<u8>, causal;
    or_set: OrSet<u8>, causal;
    or_map_of_sets: OrMap<u8, OrSet<u8>>, causal;
    or_map_of_mv_registers: OrMap<u8, MvRegister<u8>>, causal;
    or_map_of_causal_counters: OrMap<u8, CausalCounter>, causal;
    nested_or_map: OrMap<u8, OrMap<u8, OrSet<u8>>>, causal;
    shopping_cart: ShoppingCart<u8>, causal;
    bounded_counter: BoundedCounter;
    ew_flag: EwFlag, causal;
    dw_flag: DwFlag, causal;
    rw_set: RwSet<u8>, causal;
    or_map_of_ew_flags: OrMap<u8, EwFlag>, causal;
    or_map_of_dw_flags: OrMap<u8, DwFlag>, causal;
    or_map_of_rw_sets: OrMap<u8, RwSet<u8>>, causal;
}
