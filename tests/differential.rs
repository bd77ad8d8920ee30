//! Differential tests against an independent implementation: the `crdts`
//! crate (7.3.2).
//!
//! Random histories (seeded ChaCha8, a few hundred per type, each a few dozen
//! events over 2 to 5 replicas) run in lockstep on accordant and on crdts:
//! `OrSet` vs `Orswot`, `MvRegister` vs `MVReg`, `GCounter` vs `GCounter`,
//! `PNCounter` vs `PNCounter`. An event is one of
//!
//! - a **mutation** at one replica: accordant returns a delta, crdts an op;
//!   both are logged for delivery to the other replicas;
//! - a **delta delivery** from one replica to another: a batch of logged
//!   messages in causal order (crdts applies the ops one by one; accordant
//!   joins the deltas *in a shuffled order*, sometimes with a duplicate);
//! - a **state merge** between two replicas: crdts merges the full state;
//!   accordant joins either the full state, the minimal delta `Δ(src, dst)`,
//!   or `src.delta_since(dst.context())`, and the result must equal the full
//!   join.
//!
//! After every event the replica it touched must read the same in both
//! libraries (set members; MV values as a multiset; counter values), and the
//! metadata must agree where the two models coincide (dots, clocks). At the
//! end an all-to-all merge must leave both libraries agreeing and every
//! accordant replica equal (and encoding to equal bytes).
//!
//! Replica `i: u8` is `ReplicaId::from_u128(i)` in accordant and actor `i` in
//! crdts; both order actors the same way and both number a replica's events
//! from 1, so the two libraries even pick the same dots.
//!
//! **Why deliveries are causal.** crdts' ops are operation-based: they must be
//! applied in causal order (its docs: "Op's must be replayed in the exact
//! order they were produced"); `orswot_ops_need_causal_delivery` below shows
//! an add lost forever otherwise. accordant's deltas converge in any order
//! (the harness shuffles each batch to exercise it), but its *reads* are
//! causally consistent only under causal delivery, as in the delta-CRDT paper
//! (Almeida et al., JPDC 2018, §6): see
//! `mv_register_reads_differ_only_under_non_causal_delivery`. So every
//! delivery the harness makes is causal, and reads are compared after each
//! whole batch.

use std::fmt::Debug;

use accordant::codec::{decode, encode, Canonical, Limits};
use accordant::{
    CausalCrdt, Decompose, GCounter, Lattice, MvRegister, OrSet, PNCounter, ReplicaId,
};
use crdts::{CmRDT, CvRDT};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Histories per type.
const HISTORIES: u64 = 300;
/// Events per history.
const STEPS: usize = 60;
/// Elements and register values are drawn from small ranges so that
/// concurrent operations on the same element (and equal concurrent values)
/// are common.
const UNIVERSE: u8 = 8;

fn rid(i: u8) -> ReplicaId {
    ReplicaId::from_u128(u128::from(i))
}

/// One replica of one CRDT, held in both libraries.
trait Subject: Clone + Default {
    /// The accordant type.
    type Acc: Decompose + Canonical + Debug;
    /// What a mutation ships: accordant's delta and crdts' op.
    type Msg: Clone;
    /// The observable value compared between the libraries.
    type Read: PartialEq + Debug;

    fn acc(&self) -> &Self::Acc;
    fn acc_mut(&mut self) -> &mut Self::Acc;
    /// A random mutation at replica `me`, applied locally in both libraries.
    fn mutate(&mut self, me: u8, rng: &mut ChaCha8Rng) -> Self::Msg;
    fn delta_of(msg: &Self::Msg) -> &Self::Acc;
    /// Applies the crdts op of a message.
    fn apply_op(&mut self, msg: &Self::Msg);
    /// Full-state merge on the crdts side.
    fn merge_crdts(&mut self, other: &Self);
    /// `src.delta_since(dst.context())`, for causal types.
    fn delta_since(_src: &Self::Acc, _dst: &Self::Acc) -> Option<Self::Acc> {
        None
    }
    fn read_acc(&self) -> Self::Read;
    fn read_crdts(&self) -> Self::Read;
    /// Metadata the two models share, checked after every event.
    fn check_metadata(&self, _replicas: u8) {}
}

/// A logged mutation: its sequence number at the origin, the origin's
/// delivered-events vector before it (its causal dependencies), the message.
struct Sent<M> {
    seq: u32,
    deps: Vec<u32>,
    msg: M,
}

fn check_read<S: Subject>(s: &S, replicas: u8, what: &str) {
    assert_eq!(s.read_acc(), s.read_crdts(), "{what}: reads differ");
    s.check_metadata(replicas);
}

/// Runs one random history and its final all-to-all merge.
fn run_history<S: Subject>(seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(2..=5usize);
    let mut reps = vec![S::default(); n];
    // seen[j][k]: how many of k's mutations replica j has incorporated.
    let mut seen = vec![vec![0u32; n]; n];
    let mut log: Vec<Vec<Sent<S::Msg>>> = (0..n).map(|_| Vec::new()).collect();
    // cursor[k][j]: the next message of k to deliver to j.
    let mut cursor = vec![vec![0usize; n]; n];

    for step in 0..STEPS {
        let what = format!("seed {seed}, step {step}");
        let roll = rng.random_range(0..100);
        if roll < 50 {
            let i = rng.random_range(0..n);
            let deps = seen[i].clone();
            seen[i][i] += 1;
            let msg = reps[i].mutate(i as u8, &mut rng);
            log[i].push(Sent {
                seq: seen[i][i],
                deps,
                msg,
            });
            check_read(&reps[i], n as u8, &what);
        } else if roll < 78 {
            let (k, j) = pick_pair(&mut rng, n);
            let mut batch: Vec<usize> = Vec::new();
            let before = cursor[k][j];
            let want = rng.random_range(1..=4);
            while batch.len() < want && cursor[k][j] < log[k].len() {
                let sent = &log[k][cursor[k][j]];
                if !sent.deps.iter().zip(&seen[j]).all(|(d, s)| d <= s) {
                    break; // not causally ready yet
                }
                seen[j][k] = seen[j][k].max(sent.seq);
                batch.push(cursor[k][j]);
                cursor[k][j] += 1;
            }
            if before > 0 && rng.random_bool(0.2) {
                // Redeliver a message delivered earlier: both libraries must
                // ignore it.
                batch.insert(0, rng.random_range(0..before));
            }
            // crdts: ops in causal (origin) order.
            for &m in &batch {
                reps[j].apply_op(&log[k][m].msg);
            }
            // accordant: deltas in any order, one maybe twice.
            let mut order = batch.clone();
            order.shuffle(&mut rng);
            if let Some(&m) = batch.choose(&mut rng) {
                if rng.random_bool(0.3) {
                    order.push(m);
                }
            }
            for m in order {
                reps[j].acc_mut().join(S::delta_of(&log[k][m].msg));
            }
            check_read(&reps[j], n as u8, &what);
        } else {
            let (k, j) = pick_pair(&mut rng, n);
            let src = reps[k].clone();
            merge_into(&mut reps[j], &src, rng.random_range(0..3), &what);
            let sk = seen[k].clone();
            for (s, o) in seen[j].iter_mut().zip(sk) {
                *s = (*s).max(o);
            }
            check_read(&reps[j], n as u8, &what);
        }
    }

    // Convergence: everyone into replica 0, then replica 0 into everyone.
    let what = format!("seed {seed}, final merge");
    for k in 1..n {
        let src = reps[k].clone();
        merge_into(&mut reps[0], &src, 0, &what);
    }
    for j in 1..n {
        let src = reps[0].clone();
        merge_into(&mut reps[j], &src, 0, &what);
    }
    let bytes = encode(reps[0].acc());
    let back: S::Acc = decode(&bytes, &Limits::default()).expect("a merged state decodes");
    assert_eq!(&back, reps[0].acc(), "{what}: decode(encode(x)) != x");
    for r in &reps {
        check_read(r, n as u8, &what);
        assert_eq!(r.acc(), reps[0].acc(), "{what}: accordant replicas differ");
        assert_eq!(encode(r.acc()), bytes, "{what}: encodings differ");
        assert_eq!(r.read_crdts(), reps[0].read_crdts(), "{what}: crdts differ");
    }
}

fn pick_pair(rng: &mut ChaCha8Rng, n: usize) -> (usize, usize) {
    let k = rng.random_range(0..n);
    let j = (k + rng.random_range(1..n)) % n;
    (k, j)
}

/// Merges `src` into `dst` in both libraries; accordant by full join (0),
/// minimal delta (1) or delta since the destination's context (2), which must
/// all give the full join.
fn merge_into<S: Subject>(dst: &mut S, src: &S, how: u32, what: &str) {
    let expected = dst.acc().clone().joined(src.acc());
    match how {
        1 => {
            let d = src.acc().delta(dst.acc());
            dst.acc_mut().join(&d);
        }
        2 => match S::delta_since(src.acc(), dst.acc()) {
            Some(d) => dst.acc_mut().join(&d),
            None => dst.acc_mut().join(src.acc()),
        },
        _ => dst.acc_mut().join(src.acc()),
    }
    assert_eq!(dst.acc(), &expected, "{what}: delta join != full join");
    dst.merge_crdts(src);
}

fn delta_since_causal<T: CausalCrdt + Clone>(src: &T, dst: &T) -> T {
    T::from_causal(src.as_causal().delta_since(dst.as_causal().context()))
}

/// With causal delivery every context is downward closed: one range
/// `1..=max` per replica, whose `max` the crdts clock must match.
fn check_clock(
    ctx: &accordant::CausalContext,
    clock: &crdts::VClock<u8>,
    replicas: u8,
    what: &str,
) {
    for r in 0..replicas {
        let max = ctx.max(&rid(r));
        assert_eq!(max, clock.get(&r), "{what}: clock of replica {r}");
        let ranges: Vec<_> = ctx.ranges(rid(r)).collect();
        if max > 0 {
            assert_eq!(ranges, vec![1..=max], "{what}: context not closed");
        }
    }
}

// ---------------------------------------------------------------------------
// OR-Set vs Orswot

#[derive(Clone, Default)]
struct SetPair {
    acc: OrSet<u8>,
    crdts: crdts::Orswot<u8, u8>,
}

impl Subject for SetPair {
    type Acc = OrSet<u8>;
    type Msg = (OrSet<u8>, crdts::orswot::Op<u8, u8>);
    type Read = Vec<u8>;

    fn acc(&self) -> &Self::Acc {
        &self.acc
    }

    fn acc_mut(&mut self) -> &mut Self::Acc {
        &mut self.acc
    }

    fn mutate(&mut self, me: u8, rng: &mut ChaCha8Rng) -> Self::Msg {
        let e = rng.random_range(0..UNIVERSE);
        let (delta, op) = match rng.random_range(0..20) {
            0..=11 => {
                let delta = self.acc.add(rid(me), e).unwrap();
                let ctx = self.crdts.read_ctx().derive_add_ctx(me);
                (delta, self.crdts.add(e, ctx))
            }
            12..=18 => {
                // Observed-remove: crdts removes with the context read at
                // this replica for this element (its clock of the element),
                // accordant with the element's dots seen here.
                let delta = self.acc.remove(&e);
                let ctx = self.crdts.contains(&e).derive_rm_ctx();
                (delta, self.crdts.rm(e, ctx))
            }
            _ => {
                // Clear: remove every member read here, under the set's clock.
                let delta = self.acc.clear();
                let (members, ctx) = self.crdts.read().split();
                (delta, self.crdts.rm_all(members, ctx.derive_rm_ctx()))
            }
        };
        self.crdts.apply(op.clone());
        (delta, op)
    }

    fn delta_of(msg: &Self::Msg) -> &Self::Acc {
        &msg.0
    }

    fn apply_op(&mut self, msg: &Self::Msg) {
        self.crdts.apply(msg.1.clone());
    }

    fn merge_crdts(&mut self, other: &Self) {
        // crdts' own check for corrupted histories (a dot spent twice).
        self.crdts
            .validate_merge(&other.crdts)
            .expect("crdts accepts the merge");
        self.crdts.merge(other.crdts.clone());
    }

    fn delta_since(src: &Self::Acc, dst: &Self::Acc) -> Option<Self::Acc> {
        Some(delta_since_causal(src, dst))
    }

    fn read_acc(&self) -> Vec<u8> {
        // Sorted, as the crdts read is: OrSet iterates in no set order.
        let mut v: Vec<u8> = self.acc.iter().copied().collect();
        v.sort_unstable();
        v
    }

    fn read_crdts(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self.crdts.read().val.into_iter().collect();
        v.sort_unstable();
        v
    }

    fn check_metadata(&self, replicas: u8) {
        check_clock(self.acc.context(), &self.crdts.clock(), replicas, "OrSet");
        // An element's dots differ by design: an accordant add replaces the
        // element's older dots (the add has seen them, and any remove that
        // sees the new dot saw them too), while an Orswot add only raises
        // the adding actor's entry in the element's clock and keeps the other
        // actors' entries until a remove. Membership is the same either way.
        // What must hold: every dot accordant keeps is the newest add of
        // that element by that actor, i.e. exactly crdts' entry.
        for (e, dots) in self.acc.as_causal().store().iter() {
            let clock = self.crdts.contains(e).rm_clock;
            for d in dots {
                let actor = d.replica().as_bytes()[15];
                assert_eq!(
                    clock.get(&actor),
                    d.counter(),
                    "OrSet: element {e}, dot {d:?} vs crdts clock {clock:?}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// MV-Register vs MVReg

#[derive(Clone, Default)]
struct MvPair {
    acc: MvRegister<u8>,
    crdts: crdts::MVReg<u8, u8>,
}

impl Subject for MvPair {
    type Acc = MvRegister<u8>;
    type Msg = (MvRegister<u8>, crdts::mvreg::Op<u8, u8>);
    type Read = Vec<u8>;

    fn acc(&self) -> &Self::Acc {
        &self.acc
    }

    fn acc_mut(&mut self) -> &mut Self::Acc {
        &mut self.acc
    }

    fn mutate(&mut self, me: u8, rng: &mut ChaCha8Rng) -> Self::Msg {
        // Writes only: MVReg has no clear, so accordant's `clear` has no
        // counterpart here (the law tests cover it).
        let v = rng.random_range(0..UNIVERSE / 2);
        let delta = self.acc.write(rid(me), v).unwrap();
        let ctx = self.crdts.read_ctx().derive_add_ctx(me);
        let op = self.crdts.write(v, ctx);
        self.crdts.apply(op.clone());
        (delta, op)
    }

    fn delta_of(msg: &Self::Msg) -> &Self::Acc {
        &msg.0
    }

    fn apply_op(&mut self, msg: &Self::Msg) {
        self.crdts.apply(msg.1.clone());
    }

    fn merge_crdts(&mut self, other: &Self) {
        self.crdts.merge(other.crdts.clone());
    }

    fn delta_since(src: &Self::Acc, dst: &Self::Acc) -> Option<Self::Acc> {
        Some(delta_since_causal(src, dst))
    }

    /// The values as a multiset: two concurrent writes of the same value are
    /// two entries in both libraries.
    fn read_acc(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self.acc.values().copied().collect();
        v.sort_unstable();
        v
    }

    fn read_crdts(&self) -> Vec<u8> {
        let mut v = self.crdts.read().val;
        v.sort_unstable();
        v
    }

    fn check_metadata(&self, replicas: u8) {
        // crdts has no separate context: its clock is the join of the clocks
        // of the values it keeps. Under causal delivery that is exactly the
        // set of writes seen (every overwritten write is below a kept one),
        // so it matches accordant's context.
        check_clock(
            self.acc.context(),
            &self.crdts.read_ctx().add_clock,
            replicas,
            "MvRegister",
        );
    }
}

// ---------------------------------------------------------------------------
// Counters

#[derive(Clone, Default)]
struct GPair {
    acc: GCounter,
    crdts: crdts::GCounter<u8>,
}

impl Subject for GPair {
    type Acc = GCounter;
    type Msg = (GCounter, crdts::Dot<u8>);
    type Read = String;

    fn acc(&self) -> &Self::Acc {
        &self.acc
    }

    fn acc_mut(&mut self) -> &mut Self::Acc {
        &mut self.acc
    }

    fn mutate(&mut self, me: u8, rng: &mut ChaCha8Rng) -> Self::Msg {
        let amount = rng.random_range(0..=5u64);
        let delta = self.acc.increment(rid(me), amount).unwrap();
        let op = self.crdts.inc_many(me, amount);
        self.crdts.apply(op);
        (delta, op)
    }

    fn delta_of(msg: &Self::Msg) -> &Self::Acc {
        &msg.0
    }

    fn apply_op(&mut self, msg: &Self::Msg) {
        self.crdts.apply(msg.1);
    }

    fn merge_crdts(&mut self, other: &Self) {
        self.crdts.merge(other.crdts.clone());
    }

    // crdts reads a BigUint; compare decimal strings.
    fn read_acc(&self) -> String {
        self.acc.value().to_string()
    }

    fn read_crdts(&self) -> String {
        self.crdts.read().to_string()
    }
}

#[derive(Clone, Default)]
struct PnPair {
    acc: PNCounter,
    crdts: crdts::PNCounter<u8>,
}

impl Subject for PnPair {
    type Acc = PNCounter;
    type Msg = (PNCounter, crdts::pncounter::Op<u8>);
    type Read = String;

    fn acc(&self) -> &Self::Acc {
        &self.acc
    }

    fn acc_mut(&mut self) -> &mut Self::Acc {
        &mut self.acc
    }

    fn mutate(&mut self, me: u8, rng: &mut ChaCha8Rng) -> Self::Msg {
        let amount = rng.random_range(-5..=5i64);
        let delta = self.acc.add(rid(me), amount).unwrap();
        let op = if amount >= 0 {
            self.crdts.inc_many(me, amount.unsigned_abs())
        } else {
            self.crdts.dec_many(me, amount.unsigned_abs())
        };
        self.crdts.apply(op.clone());
        (delta, op)
    }

    fn delta_of(msg: &Self::Msg) -> &Self::Acc {
        &msg.0
    }

    fn apply_op(&mut self, msg: &Self::Msg) {
        self.crdts.apply(msg.1.clone());
    }

    fn merge_crdts(&mut self, other: &Self) {
        self.crdts.merge(other.crdts.clone());
    }

    fn read_acc(&self) -> String {
        self.acc.value().to_string()
    }

    fn read_crdts(&self) -> String {
        self.crdts.read().to_string()
    }
}

// ---------------------------------------------------------------------------
// The tests

#[test]
fn or_set_agrees_with_orswot() {
    for seed in 0..HISTORIES {
        run_history::<SetPair>(seed);
    }
}

#[test]
fn mv_register_agrees_with_mvreg() {
    for seed in 0..HISTORIES {
        run_history::<MvPair>(1_000_000 + seed);
    }
}

#[test]
fn gcounter_agrees_with_crdts() {
    for seed in 0..HISTORIES {
        run_history::<GPair>(2_000_000 + seed);
    }
}

#[test]
fn pncounter_agrees_with_crdts() {
    for seed in 0..HISTORIES {
        run_history::<PnPair>(3_000_000 + seed);
    }
}

/// Where the libraries deliberately differ: crdts ops must arrive in causal
/// order, accordant deltas need not. Replica 0 adds `x` then `y`; replica 1
/// receives the two in reverse order. Orswot applies the add of `y` (dot
/// 0:2), which moves its clock for actor 0 to 2, and then ignores the add of
/// `x` (dot 0:1) as already seen: `x` is lost at replica 1 until a full-state
/// merge. accordant's contexts record individual dots, so the late delta
/// still carries an unseen dot and `x` arrives. This is why the random
/// histories deliver ops causally.
#[test]
fn orswot_ops_need_causal_delivery() {
    let mut a = SetPair::default();
    let ctx = a.crdts.read_ctx().derive_add_ctx(0);
    let op_x = a.crdts.add(1, ctx);
    a.crdts.apply(op_x.clone());
    let ctx = a.crdts.read_ctx().derive_add_ctx(0);
    let op_y = a.crdts.add(2, ctx);
    a.crdts.apply(op_y.clone());
    let dx = a.acc.add(rid(0), 1).unwrap();
    let dy = a.acc.add(rid(0), 2).unwrap();

    let mut b = SetPair::default();
    b.crdts.apply(op_y);
    b.crdts.apply(op_x);
    b.acc.join(&dy);
    b.acc.join(&dx);
    assert_eq!(b.read_crdts(), vec![2], "crdts dropped the late add");
    assert_eq!(b.read_acc(), vec![1, 2]);
    assert_eq!(b.acc, a.acc);
}

/// Where reads differ: accordant's MV write delta carries the writer's new
/// dot and the dots of the values it replaced, not the writer's whole
/// context (the delta mutator of Almeida et al., §7.3). Delivered out of
/// causal order, a delta can leave an older value visible next to a newer
/// one until the missing delta arrives; crdts ops carry the writer's whole
/// clock and hide it at once. Both converge; accordant's delta replication
/// must deliver causally (or ship delta-intervals) for causal consistency,
/// which is what the random histories model.
#[test]
fn mv_register_reads_differ_only_under_non_causal_delivery() {
    let (ra, rb) = (0u8, 1u8);
    let mut a = MvPair::default();
    let m1 = a.mutate_to(ra, 10);
    let mut b = MvPair::default();
    b.deliver(&m1);
    let m2 = b.mutate_to(rb, 20);
    let m3 = b.mutate_to(rb, 30);

    let mut c = MvPair::default();
    c.deliver(&m1);
    c.deliver(&m3); // m2 is still in flight
    assert_eq!(c.read_crdts(), vec![30]);
    assert_eq!(
        c.read_acc(),
        vec![10, 30],
        "10 lingers: m3 never saw dot 0:1"
    );
    c.deliver(&m2);
    assert_eq!(c.read_crdts(), vec![30]);
    assert_eq!(c.read_acc(), vec![30]);
    assert_eq!(c.acc, b.acc);
}

impl MvPair {
    fn mutate_to(&mut self, me: u8, v: u8) -> <Self as Subject>::Msg {
        let delta = self.acc.write(rid(me), v).unwrap();
        let ctx = self.crdts.read_ctx().derive_add_ctx(me);
        let op = self.crdts.write(v, ctx);
        self.crdts.apply(op.clone());
        (delta, op)
    }

    fn deliver(&mut self, msg: &<Self as Subject>::Msg) {
        self.apply_op(msg);
        self.acc.join(&msg.0);
    }
}
