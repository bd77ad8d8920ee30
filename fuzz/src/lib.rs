//! Harness shared by the fuzz targets: which types exist, how operations are
//! applied to them, and the properties every input must satisfy. The targets
//! themselves (`fuzz_targets/`) are thin wrappers around these functions. A
//! crash input becomes a regression test in the main workspace that runs the
//! same check through the public API, with the input committed beside it.

use std::fmt::Debug;

use accordant::codec::{decode, encode, Canonical, Limits};
use accordant::{
    BoundedCounter, BoundedError, CausalCounter, DecodeError, Decompose, DwFlag, EwFlag, GCounter,
    Hlc, Lattice, LwwRegister, MvRegister, OrMap, OrSet, PNCounter, ReplicaId, RightsPolicy, RwSet,
    ShoppingCart, Summarize,
};
use arbitrary::Arbitrary;

mod sync;
pub use sync::*;

/// Decodes `bytes` as `T`; on success checks the re-encoding is identical and
/// the value behaves (join with itself is itself, its summary round-trips).
pub fn check_decode<T>(bytes: &[u8]) -> Result<(), DecodeError>
where
    T: Canonical + Lattice + Decompose + Summarize + Debug,
{
    let limits = Limits::new(1 << 16);
    let v: T = decode(bytes, &limits)?;
    assert_eq!(encode(&v), bytes, "accepted bytes must be canonical");
    assert_eq!(
        v.clone().joined(&v),
        v,
        "join must be idempotent on decoded input"
    );
    let s = v.summary();
    let sb = encode(&s);
    let back: T::Summary = decode(&sb, &limits).expect("summary round trip");
    assert_eq!(back, s);
    Ok(())
}

/// A decoded bounded counter keeps its invariant: no replica holds
/// negative rights (by construction of the type), and the rights cover the
/// value, replica by replica, whatever the peer sent.
pub fn check_decode_bounded(bytes: &[u8]) -> Result<(), DecodeError> {
    check_decode::<BoundedCounter>(bytes)?;
    let c: BoundedCounter = decode(bytes, &Limits::new(1 << 16))?;
    let rights: u128 = c.replicas().iter().map(|r| u128::from(c.rights(*r))).sum();
    assert!(
        rights >= u128::from(c.value()),
        "rights {rights} do not cover the value {}",
        c.value()
    );
    Ok(())
}

/// Dispatches [`check_decode`] on the first byte: one type per value. Tags
/// 0-8 keep the meaning they had before the newer types (9-14) existed.
pub fn decode_any(data: &[u8]) {
    let Some((&tag, rest)) = data.split_first() else {
        return;
    };
    let _ = match tag % 15 {
        0 => check_decode::<GCounter>(rest),
        1 => check_decode::<PNCounter>(rest),
        2 => check_decode::<CausalCounter>(rest),
        3 => check_decode::<LwwRegister<u8>>(rest),
        4 => check_decode::<MvRegister<u8>>(rest),
        5 => check_decode::<OrSet<u8>>(rest),
        6 => check_decode::<OrMap<u8, OrSet<u8>>>(rest),
        7 => check_decode::<OrMap<u8, OrMap<u8, MvRegister<u8>>>>(rest),
        8 => check_decode::<ShoppingCart<u8>>(rest),
        9 => check_decode_bounded(rest),
        10 => check_decode::<EwFlag>(rest),
        11 => check_decode::<DwFlag>(rest),
        12 => check_decode::<RwSet<u8>>(rest),
        13 => check_decode::<OrMap<u8, DwFlag>>(rest),
        _ => check_decode::<OrMap<u8, RwSet<u8>>>(rest),
    };
}

/// A type the operation fuzzer drives.
pub trait Fuzzed: Lattice + Decompose + Canonical + Summarize + Debug {
    /// One mutation.
    type Op: for<'a> Arbitrary<'a> + Debug;
    /// Applies `op` at `replica`; returns its delta (`None` when the mutator
    /// refused, e.g. an overflow, which must leave the state unchanged).
    fn apply(&mut self, replica: ReplicaId, op: &Self::Op) -> Option<Self>;
}

/// A counter operation.
#[derive(Arbitrary, Debug)]
pub enum CounterOp {
    /// Increment.
    Add(u8),
}

impl Fuzzed for GCounter {
    type Op = CounterOp;
    fn apply(&mut self, r: ReplicaId, op: &CounterOp) -> Option<Self> {
        let CounterOp::Add(n) = op;
        self.increment(r, u64::from(*n)).ok()
    }
}

/// A PN-counter operation.
#[derive(Arbitrary, Debug)]
pub enum PnOp {
    /// Add (possibly negative).
    Add(i8),
    /// Add a huge amount, to reach the overflow checks.
    Huge(bool),
}

impl Fuzzed for PNCounter {
    type Op = PnOp;
    fn apply(&mut self, r: ReplicaId, op: &PnOp) -> Option<Self> {
        match op {
            PnOp::Add(n) => self.add(r, i64::from(*n)).ok(),
            PnOp::Huge(up) => self.add(r, if *up { i64::MAX } else { i64::MIN }).ok(),
        }
    }
}

/// A causal-counter operation.
#[derive(Arbitrary, Debug)]
pub enum CausalCounterOp {
    /// Add.
    Add(i8),
    /// Set.
    Set(i8),
    /// Reset.
    Reset,
}

impl Fuzzed for CausalCounter {
    type Op = CausalCounterOp;
    fn apply(&mut self, r: ReplicaId, op: &CausalCounterOp) -> Option<Self> {
        match op {
            CausalCounterOp::Add(n) => self.add(r, i64::from(*n)).ok(),
            CausalCounterOp::Set(n) => self.set(r, i64::from(*n)).ok(),
            CausalCounterOp::Reset => Some(self.reset()),
        }
    }
}

/// An LWW write with an explicit (small, colliding) timestamp.
#[derive(Arbitrary, Debug)]
pub struct LwwOp(Hlc, u8);

impl Fuzzed for LwwRegister<u8> {
    type Op = LwwOp;
    fn apply(&mut self, r: ReplicaId, op: &LwwOp) -> Option<Self> {
        Some(self.write_at(op.0, r, op.1))
    }
}

/// An MV-register operation.
#[derive(Arbitrary, Debug)]
pub enum MvOp {
    /// Write.
    Write(u8),
    /// Clear.
    Clear,
}

impl Fuzzed for MvRegister<u8> {
    type Op = MvOp;
    fn apply(&mut self, r: ReplicaId, op: &MvOp) -> Option<Self> {
        match op {
            MvOp::Write(v) => self.write(r, *v).ok(),
            MvOp::Clear => Some(self.clear()),
        }
    }
}

/// An OR-set operation on a small element domain.
#[derive(Arbitrary, Debug)]
pub enum SetOp {
    /// Add.
    Add(u8),
    /// Remove.
    Remove(u8),
    /// Clear.
    Clear,
}

impl Fuzzed for OrSet<u8> {
    type Op = SetOp;
    fn apply(&mut self, r: ReplicaId, op: &SetOp) -> Option<Self> {
        match op {
            SetOp::Add(e) => self.add(r, e % 16).ok(),
            SetOp::Remove(e) => Some(self.remove(&(e % 16))),
            SetOp::Clear => Some(self.clear()),
        }
    }
}

/// An OR-map operation with a nested operation on the value.
#[derive(Arbitrary, Debug)]
pub enum MapOp<Inner> {
    /// Update the value under a key.
    Update(u8, Inner),
    /// Remove a key.
    Remove(u8),
    /// Clear the map.
    Clear,
}

impl<V> Fuzzed for OrMap<u8, V>
where
    V: Fuzzed + accordant::CausalCrdt,
    OrMap<u8, V>: Lattice + Decompose + Canonical + Summarize + Debug,
{
    type Op = MapOp<V::Op>;
    fn apply(&mut self, r: ReplicaId, op: &Self::Op) -> Option<Self> {
        match op {
            MapOp::Update(k, inner) => self.try_update(k % 8, |v| v.apply(r, inner).ok_or(())).ok(),
            MapOp::Remove(k) => Some(self.remove(&(k % 8))),
            MapOp::Clear => Some(self.clear()),
        }
    }
}

/// A cart operation.
#[derive(Arbitrary, Debug)]
pub enum CartOp {
    /// Add a quantity.
    Add(u8, u8),
    /// Remove an item.
    Remove(u8),
    /// Set a quantity.
    Set(u8, u8),
}

impl Fuzzed for ShoppingCart<u8> {
    type Op = CartOp;
    fn apply(&mut self, r: ReplicaId, op: &CartOp) -> Option<Self> {
        match op {
            CartOp::Add(i, q) => self.add(r, i % 8, u64::from(*q)).ok(),
            CartOp::Remove(i) => Some(self.remove_item(&(i % 8))),
            CartOp::Set(i, q) => self.set_quantity(r, i % 8, u64::from(*q)).ok(),
        }
    }
}

/// A bounded-counter operation.
#[derive(Arbitrary, Debug)]
pub enum BoundedOp {
    /// Increment.
    Inc(u8),
    /// Decrement (refused beyond the replica's rights).
    Dec(u8),
    /// Transfer rights to a replica.
    Transfer(ReplicaId, u8),
    /// The automatic policy over replicas 0-7, with this low watermark.
    Rebalance(u8),
    /// An increment of `u64::MAX`, to reach the overflow checks.
    Huge,
}

impl Fuzzed for BoundedCounter {
    type Op = BoundedOp;
    /// Also checks what each operation promises: a decrement or transfer
    /// spends exactly its amount of the spender's rights or is refused
    /// because they fall short; the policy never leaves the donor below the
    /// watermark.
    fn apply(&mut self, r: ReplicaId, op: &BoundedOp) -> Option<Self> {
        let held = self.rights(r);
        let spend = |result: Result<Self, BoundedError>, amount: u64, me: &Self| match result {
            Ok(d) => {
                assert_eq!(me.rights(r), held - amount, "spent exactly the amount");
                Some(d)
            }
            Err(BoundedError::InsufficientRights {
                available,
                requested,
            }) => {
                assert_eq!((available, requested), (held, amount));
                assert!(available < requested);
                None
            }
            Err(_) => None,
        };
        match op {
            BoundedOp::Inc(n) => self.increment(r, u64::from(*n)).ok(),
            BoundedOp::Dec(n) => {
                let res = self.decrement(r, u64::from(*n));
                spend(res, u64::from(*n), self)
            }
            BoundedOp::Transfer(to, n) => {
                let res = self.transfer(r, *to, u64::from(*n));
                if *to == r {
                    assert_eq!(res, Err(BoundedError::SelfTransfer));
                    return None;
                }
                spend(res, u64::from(*n), self)
            }
            BoundedOp::Rebalance(w) => {
                let policy = RightsPolicy::new(u64::from(*w));
                let peers = (0..8u128).map(ReplicaId::from_u128);
                let d = self.apply_rebalance(r, peers, &policy).ok().flatten()?;
                assert!(self.rights(r) >= policy.low_watermark, "donor went low");
                Some(d)
            }
            BoundedOp::Huge => self.increment(r, u64::MAX).ok(),
        }
    }
}

/// A flag operation.
#[derive(Arbitrary, Debug)]
pub enum FlagOp {
    /// Enable.
    Enable,
    /// Disable.
    Disable,
}

impl Fuzzed for EwFlag {
    type Op = FlagOp;
    fn apply(&mut self, r: ReplicaId, op: &FlagOp) -> Option<Self> {
        let d = match op {
            FlagOp::Enable => self.enable(r).ok()?,
            FlagOp::Disable => self.disable(),
        };
        assert_eq!(self.is_enabled(), matches!(op, FlagOp::Enable));
        Some(d)
    }
}

impl Fuzzed for DwFlag {
    type Op = FlagOp;
    fn apply(&mut self, r: ReplicaId, op: &FlagOp) -> Option<Self> {
        let d = match op {
            FlagOp::Enable => self.enable(r).ok()?,
            FlagOp::Disable => self.disable(r).ok()?,
        };
        assert_eq!(self.is_enabled(), matches!(op, FlagOp::Enable));
        Some(d)
    }
}

/// A remove-wins set operation on a small element domain.
#[derive(Arbitrary, Debug)]
pub enum RwOp {
    /// Add.
    Add(u8),
    /// Remove.
    Remove(u8),
    /// Collect tombstones, reporting only this replica's context (the
    /// lattice laws hold whatever the reports; only semantics need them all).
    Compact,
}

impl Fuzzed for RwSet<u8> {
    type Op = RwOp;
    fn apply(&mut self, r: ReplicaId, op: &RwOp) -> Option<Self> {
        match op {
            RwOp::Add(e) => {
                let d = self.add(r, e % 16).ok()?;
                assert!(self.contains(&(e % 16)), "an add wins over what it saw");
                Some(d)
            }
            RwOp::Remove(e) => {
                let d = self.remove(r, e % 16).ok()?;
                assert!(!self.contains(&(e % 16)));
                Some(d)
            }
            RwOp::Compact => {
                let own = self.context().clone();
                let len = self.len();
                let d = self.compact([&own]).ok()?;
                assert_eq!(self.tombstones(), 0);
                assert_eq!(self.len(), len, "compaction changes no read");
                Some(d)
            }
        }
    }
}

/// One step of a history over a few replicas.
#[derive(Arbitrary, Debug)]
pub enum Step<Op> {
    /// Replica `at` applies `op` as replica id `at` (mod the replica count).
    Op {
        /// Which replica.
        at: u8,
        /// The mutation.
        op: Op,
    },
    /// Replica `to` joins replica `from`'s full state.
    Join {
        /// Source.
        from: u8,
        /// Destination.
        to: u8,
    },
    /// Replica `to` joins delta number `delta` (mod the number so far).
    Deliver {
        /// Which delta.
        delta: u16,
        /// Destination.
        to: u8,
    },
}

/// A fuzzed history: 2-5 replicas and a list of steps.
#[derive(Arbitrary, Debug)]
pub struct History<Op> {
    /// Number of replicas, 2 + (n % 4).
    pub replicas: u8,
    /// The steps.
    pub steps: Vec<Step<Op>>,
}

/// Runs a history and asserts the lattice laws, delta/state equivalence,
/// decomposition, minimal deltas, summaries, canonical encoding and
/// convergence.
pub fn check_history<T: Fuzzed>(h: &History<T::Op>) {
    let n = 2 + usize::from(h.replicas % 4);
    let mut reps: Vec<T> = vec![T::default(); n];
    let mut deltas: Vec<T> = Vec::new();
    for step in h.steps.iter().take(64) {
        match step {
            Step::Op { at, op } => {
                let i = usize::from(*at) % n;
                let before = reps[i].clone();
                match reps[i].apply(ReplicaId::from_u128(i as u128), op) {
                    Some(d) => {
                        assert_eq!(before.joined(&d), reps[i], "old ⊔ delta == new");
                        deltas.push(d);
                    }
                    None => assert_eq!(before, reps[i], "a refused op changes nothing"),
                }
            }
            Step::Join { from, to } => {
                let (f, t) = (usize::from(*from) % n, usize::from(*to) % n);
                let src = reps[f].clone();
                reps[t].join(&src);
            }
            Step::Deliver { delta, to } => {
                if !deltas.is_empty() {
                    let d = deltas[usize::from(*delta) % deltas.len()].clone();
                    reps[usize::from(*to) % n].join(&d);
                }
            }
        }
    }
    let (a, b, c) = (&reps[0], &reps[1], &reps[n - 1]);
    // Laws.
    assert_eq!(a.clone().joined(b), b.clone().joined(a), "commutative");
    assert_eq!(
        a.clone().joined(b).joined(c),
        a.clone().joined(&b.clone().joined(c)),
        "associative"
    );
    assert_eq!(a.clone().joined(a), *a, "idempotent");
    assert_eq!(T::default().joined(a), *a, "bottom is the identity");
    // Deltas joined in any order equal the states.
    let all_states = reps.iter().fold(T::default(), |acc, r| acc.joined(r));
    let fwd = deltas.iter().fold(T::default(), |acc, d| acc.joined(d));
    let rev = deltas
        .iter()
        .rev()
        .fold(T::default(), |acc, d| acc.joined(d));
    assert_eq!(fwd, all_states, "deltas ≡ states");
    assert_eq!(rev, all_states, "delta order does not matter");
    // Decomposition and minimal deltas.
    let parts = a.decompose();
    assert!(parts.iter().all(|p| !p.is_bottom()));
    assert_eq!(parts.iter().fold(T::default(), |acc, p| acc.joined(p)), *a);
    let d = a.delta(b);
    assert_eq!(
        b.clone().joined(&d),
        a.clone().joined(b),
        "Δ(a,b) ⊔ b == a ⊔ b"
    );
    for irr in d.decompose() {
        assert!(!irr.leq(b), "Δ(a,b) holds an irreducible already below b");
    }
    assert!(a.delta(a).is_bottom());
    let s = a.delta_for(&b.summary());
    assert_eq!(b.clone().joined(&s), a.clone().joined(b), "delta_for law");
    // Canonical encoding.
    for r in &reps {
        let bytes = encode(r);
        let back: T = decode(&bytes, &Limits::default()).expect("round trip");
        assert_eq!(&back, r);
    }
    // Convergence: everyone joins everyone, in two different orders.
    let mut x = all_states.clone();
    let mut y = T::default();
    for r in reps.iter().rev() {
        y.join(r);
    }
    x.join(&y);
    assert_eq!(x, y);
    assert_eq!(encode(&x), encode(&y), "equal states encode equally");
}

/// A history for one of the fuzzed types, chosen by the input.
#[derive(Arbitrary, Debug)]
pub enum AnyHistory {
    /// Grow-only counter.
    GCounter(History<CounterOp>),
    /// PN-counter.
    PNCounter(History<PnOp>),
    /// Causal counter.
    CausalCounter(History<CausalCounterOp>),
    /// LWW register.
    Lww(History<LwwOp>),
    /// MV register.
    Mv(History<MvOp>),
    /// OR-set.
    OrSet(History<SetOp>),
    /// Map of sets.
    MapOfSets(History<MapOp<SetOp>>),
    /// Map of maps of MV registers (nesting).
    MapOfMaps(History<MapOp<MapOp<MvOp>>>),
    /// Map of causal counters.
    MapOfCounters(History<MapOp<CausalCounterOp>>),
    /// Shopping cart.
    Cart(History<CartOp>),
    /// Bounded counter.
    Bounded(History<BoundedOp>),
    /// Enable-wins flag.
    EwFlag(History<FlagOp>),
    /// Disable-wins flag.
    DwFlag(History<FlagOp>),
    /// Remove-wins set.
    RwSet(History<RwOp>),
    /// Map of disable-wins flags.
    MapOfDwFlags(History<MapOp<FlagOp>>),
    /// Map of remove-wins sets.
    MapOfRwSets(History<MapOp<RwOp>>),
}

/// Runs whichever history the input chose.
pub fn check_any(h: &AnyHistory) {
    match h {
        AnyHistory::GCounter(h) => check_history::<GCounter>(h),
        AnyHistory::PNCounter(h) => check_history::<PNCounter>(h),
        AnyHistory::CausalCounter(h) => check_history::<CausalCounter>(h),
        AnyHistory::Lww(h) => check_history::<LwwRegister<u8>>(h),
        AnyHistory::Mv(h) => check_history::<MvRegister<u8>>(h),
        AnyHistory::OrSet(h) => check_history::<OrSet<u8>>(h),
        AnyHistory::MapOfSets(h) => check_history::<OrMap<u8, OrSet<u8>>>(h),
        AnyHistory::MapOfMaps(h) => check_history::<OrMap<u8, OrMap<u8, MvRegister<u8>>>>(h),
        AnyHistory::MapOfCounters(h) => check_history::<OrMap<u8, CausalCounter>>(h),
        AnyHistory::Cart(h) => check_history::<ShoppingCart<u8>>(h),
        AnyHistory::Bounded(h) => check_history::<BoundedCounter>(h),
        AnyHistory::EwFlag(h) => check_history::<EwFlag>(h),
        AnyHistory::DwFlag(h) => check_history::<DwFlag>(h),
        AnyHistory::RwSet(h) => check_history::<RwSet<u8>>(h),
        AnyHistory::MapOfDwFlags(h) => check_history::<OrMap<u8, DwFlag>>(h),
        AnyHistory::MapOfRwSets(h) => check_history::<OrMap<u8, RwSet<u8>>>(h),
    }
}
