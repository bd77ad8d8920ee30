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

/// The sync wire decoder: never panics; what it accepts re-encodes to a
/// message that decodes to the same value, and the coded symbols and item
/// lists inside are read (and peeled) in bounded work.
pub fn check_message(data: &[u8]) {
    use accordant_sync::message::{
        decode as decode_msg, encode as encode_msg, Message, SyncLimits,
    };
    use accordant_sync::sketch::{peel, read_symbols};
    let limits = SyncLimits::default().with_max_message_bytes(1 << 16);
    if let Ok(m) = decode_msg(data, &limits) {
        let again = encode_msg(&m);
        assert_eq!(decode_msg(&again, &limits).expect("re-decode"), m);
        match &m {
            // Symbols from a peer: refused or peeled, never a panic.
            Message::Symbols(s) => {
                if let Ok(symbols) = read_symbols(&s.symbols, 1 << 16) {
                    if let Some(d) = peel(&symbols) {
                        assert!(d.len() <= symbols.len(), "no more items than symbols");
                    }
                }
            }
            Message::Hello(h) => {
                let e = accordant_sync::sketch::Estimator::default().estimate(&h.estimator);
                assert!(e.is_finite() && e >= 0.0);
            }
            _ => {}
        }
    }
}

/// Input of the session target: an honest store and what a hostile peer sends.
#[derive(Arbitrary, Debug)]
pub struct SessionInput {
    /// Honest store content: key, replica, amount.
    pub writes: Vec<(u8, u8, u8)>,
    /// Whether the honest side initiates.
    pub initiate: bool,
    /// Raw messages from the peer.
    pub messages: Vec<Vec<u8>>,
    /// An honest peer's store, whose messages are recorded and mutated.
    pub honest_peer_writes: Vec<(u8, u8)>,
    /// Mutations applied to the honest peer's messages: (message, byte, xor).
    pub mutations: Vec<(u8, u16, u8)>,
    /// Local writes between messages: (after message, key, element).
    pub local_writes: Vec<(u8, u8, u8)>,
    /// The first batch's margin, in percent (small values force extensions
    /// and item lists).
    pub margin: u8,
}

/// One honest store against a peer sending arbitrary (and mutated honest)
/// messages, with local writes between them: the session never panics, a
/// rejected message changes nothing (but a final root that does not
/// match, after valid values), and the store always holds valid states.
pub fn check_session(input: &SessionInput) {
    use accordant_sync::error::SyncError;
    use accordant_sync::session::{Session, SessionConfig};
    use accordant_sync::store::Store;
    let mut config = SessionConfig::default();
    config.margin_percent = 1 + u32::from(input.margin);
    let mut honest: Store<u8, OrSet<u8>> = Store::new();
    for (k, r, e) in input.writes.iter().take(64) {
        let _ = honest.update(k % 32, |s| {
            s.add(ReplicaId::from_u128(u128::from(r % 4)), e % 8)
        });
    }
    // An honest peer's messages to our side, recorded, to mutate.
    let mut peer: Store<u8, OrSet<u8>> = Store::new();
    for (k, e) in input.honest_peer_writes.iter().take(64) {
        let _ = peer.update(k % 32, |s| s.add(ReplicaId::from_u128(9), e % 8));
    }
    let mut recorded: Vec<Vec<u8>> = Vec::new();
    {
        let (mut h2, mut p2) = (honest.clone(), peer.clone());
        let (mut sh, mut sp) = if input.initiate {
            (
                Session::initiate(&h2, config),
                Session::<u8, OrSet<u8>>::respond(config),
            )
        } else {
            (
                Session::<u8, OrSet<u8>>::respond(config),
                Session::initiate(&p2, config),
            )
        };
        for _ in 0..16 {
            while let Some(m) = sh.poll_transmit() {
                let _ = sp.handle(&mut p2, &m);
            }
            while let Some(m) = sp.poll_transmit() {
                recorded.push(m.clone());
                let _ = sh.handle(&mut h2, &m);
            }
        }
    }
    for (i, pos, x) in &input.mutations {
        let len = recorded.len().max(1);
        if let Some(m) = recorded.get_mut(usize::from(*i) % len) {
            if !m.is_empty() {
                let p = usize::from(*pos) % m.len();
                m[p] ^= x;
            }
        }
    }
    let mut session = if input.initiate {
        Session::initiate(&honest, config)
    } else {
        Session::respond(config)
    };
    for (n, m) in recorded
        .iter()
        .chain(input.messages.iter())
        .take(64)
        .enumerate()
    {
        for (after, k, e) in &input.local_writes {
            if usize::from(*after) == n {
                let _ = honest.update(k % 32, |s| s.add(ReplicaId::from_u128(3), e % 8));
            }
        }
        let before = honest.clone();
        if let Err(e) = session.handle(&mut honest, m) {
            if e != SyncError::NotConverged(1) {
                assert_eq!(
                    honest.root_digest(),
                    before.root_digest(),
                    "a rejected message changed the store"
                );
                assert!(honest == before);
            }
            assert!(session.is_failed() || e == SyncError::Finished);
        }
        while session.poll_transmit().is_some() {}
    }
    for (_, v) in honest.iter() {
        let bytes = encode(&v);
        let back: OrSet<u8> = decode(&bytes, &Limits::default()).expect("valid state");
        assert_eq!(back, v);
    }
}

/// Input of the store_sync target: two histories and a network.
#[derive(Arbitrary, Debug)]
pub struct StoreSyncInput {
    /// Writes at store A: (key, element, remove?).
    pub a: Vec<(u8, u8, bool)>,
    /// Writes at store B.
    pub b: Vec<(u8, u8, bool)>,
    /// Loss, duplication and reordering, in 1/256ths (capped at ~30%).
    pub loss: u8,
    /// Duplication.
    pub dup: u8,
    /// Reordering.
    pub reorder: u8,
    /// Simulator seed.
    pub seed: u64,
    /// Whether the driver deduplicates messages.
    pub dedupe: bool,
}

/// Two stores with arbitrary histories synchronise through the simulator
/// with arbitrary loss, duplication and reordering, and end equal to the
/// join of both.
pub fn check_store_sync(input: &StoreSyncInput) {
    use accordant_sync::sim::{AntiEntropyConfig, AntiEntropyNode};
    use accordant_sync::sim::{LinkConfig, SimTime, Simulator};
    use accordant_sync::store::Store;
    fn build(ops: &[(u8, u8, bool)], replica: u128) -> Store<u8, OrSet<u8>> {
        let mut s = Store::new();
        for (k, e, rm) in ops.iter().take(48) {
            let _ = s.update(k % 16, |set: &mut OrSet<u8>| {
                if *rm {
                    Ok(set.remove(&(e % 8)))
                } else {
                    set.add(ReplicaId::from_u128(replica), e % 8)
                }
            });
        }
        s
    }
    let (a, b) = (build(&input.a, 1), build(&input.b, 2));
    let mut expected = a.clone();
    for (k, v) in b.iter() {
        expected.join(k, &v);
    }
    let p = |x: u8| f64::from(x % 80) / 256.0;
    let mut sim = Simulator::new(input.seed);
    sim.set_default_link(
        LinkConfig::wan(SimTime::from_millis(50))
            .with_loss(p(input.loss))
            .with_duplicate(p(input.dup))
            .with_reorder(p(input.reorder), SimTime::from_millis(30)),
    );
    let config = AntiEntropyConfig::default()
        .with_interval(SimTime::from_millis(200))
        .with_timeout(SimTime::from_millis(400))
        .with_dedupe(input.dedupe);
    let na = sim.add_node(AntiEntropyNode::new(a, config));
    let nb = sim.add_node(AntiEntropyNode::new(b, config));
    let want = expected.root_digest();
    let _ = sim.run_until(SimTime::from_secs(600), |s| {
        [na, nb]
            .iter()
            .all(|n| s.node(*n).is_some_and(|x| x.store().root_digest() == want))
    });
    for n in [na, nb] {
        let store = sim.node(n).expect("node").store();
        assert_eq!(
            store.root_digest(),
            want,
            "replicas did not converge to the join"
        );
        assert!(store == &expected);
    }
}

// === The node protocol's framing and handshake (net, feature tokio) ===

/// A connection's byte stream as a hostile peer sends it, cut into chunks:
/// the first byte sets the chunk length (1 to 255), the rest is the stream.
/// The frame reader and the handshake reader never panic; what is buffered
/// never exceeds what was pushed; a handshake longer than its 4 KiB limit
/// is refused from its length prefix alone, with at most one chunk
/// buffered; after the handshake no frame above the limit is returned; and
/// every frame returned re-encodes to bytes that decode to it again.
pub fn check_frame_stream(data: &[u8]) {
    use accordant_sync::net::wire::{read_handshake, Frame};
    use accordant_sync::wire::FrameReader;
    const HANDSHAKE_MAX: usize = 4096;
    const FRAME_MAX: usize = 1 << 16;
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk.max(1));
    let mut reader = FrameReader::new();
    let mut pushed = 0usize;
    let mut handshaken = false;
    for part in stream.chunks(chunk) {
        reader.push(part);
        pushed += part.len();
        assert!(reader.buffered() <= pushed);
        loop {
            if !handshaken {
                match read_handshake(&mut reader, HANDSHAKE_MAX) {
                    Ok(Some(h)) => {
                        let f = Frame::Handshake(h);
                        assert!(f.to_wire().len() <= HANDSHAKE_MAX + 10);
                        round_trip(&f);
                        handshaken = true;
                    }
                    Ok(None) => {
                        // Still waiting: the frame is within its limit,
                        // or its length is not known yet.
                        if let Ok(Some(len)) = reader.pending_len() {
                            assert!(len <= HANDSHAKE_MAX);
                        }
                        assert!(reader.buffered() <= HANDSHAKE_MAX + 10 + chunk);
                        break;
                    }
                    Err(_) => {
                        // Refused before more than the limit (and the chunk
                        // that revealed it) was buffered.
                        assert!(reader.buffered() <= HANDSHAKE_MAX + 10 + chunk);
                        return;
                    }
                }
            } else {
                match Frame::next(&mut reader, FRAME_MAX) {
                    Ok(Some(f)) => {
                        assert!(
                            !matches!(f, Frame::Handshake(_))
                                || f.to_wire().len() <= FRAME_MAX + 10
                        );
                        round_trip(&f);
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
}

fn round_trip(f: &accordant_sync::net::wire::Frame) {
    use accordant_sync::net::wire::Frame;
    use accordant_sync::wire::FrameReader;
    let mut r = FrameReader::new();
    r.push(&f.to_wire());
    assert_eq!(
        Frame::next(&mut r, usize::MAX).expect("re-decode").as_ref(),
        Some(f)
    );
    assert_eq!(r.buffered(), 0);
}

/// The payloads of the targeted pull (`Frame::Pull`, `Frame::Value`): the
/// first byte picks a parser; the rest is the payload. Decoding never
/// panics; what a parser accepts re-encodes to the same bytes; a pulled
/// value that is refused (malformed, of a key not pulled, failing
/// admission) leaves the store exactly as it was.
pub fn check_pull_value(data: &[u8]) {
    use accordant_sync::admission::Admission;
    use accordant_sync::delta::NaivePush;
    use accordant_sync::net::{apply_pulled, decode_pull, decode_pulled, encode_pull, Pulls};
    use accordant_sync::store::Store;

    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let limits = Limits::new(4096);
    let now = std::time::Instant::now();
    let me = ReplicaId::from_u128(1);
    match which % 4 {
        0 => {
            if let Ok((k, s)) =
                decode_pull::<String, <GCounter as Summarize>::Summary>(payload, &limits)
            {
                assert_eq!(encode_pull(&k, &s), payload, "a pull is not canonical");
            }
        }
        1 => {
            if let Ok((k, s)) =
                decode_pull::<u8, <OrSet<u8> as Summarize>::Summary>(payload, &limits)
            {
                assert_eq!(encode_pull(&k, &s), payload, "a pull is not canonical");
            }
        }
        2 => {
            let mut store: Store<String, GCounter> = Store::new();
            let _ = store.update("a".to_string(), |c| c.increment(me, 3));
            let mut pulls = Pulls::new();
            pulls.asked(&"a".to_string(), now);
            pulls.asked(&"b".to_string(), now);
            let before = store.root_digest();
            if let Ok((k, v)) = decode_pulled::<String, GCounter>(payload, &limits) {
                assert_eq!(
                    NaivePush::encode(&k, &v),
                    payload,
                    "a value is not canonical"
                );
            }
            let r = apply_pulled(
                &mut store,
                &pulls,
                &Admission::new(Some(me)),
                payload,
                &limits,
                now,
            );
            if r.is_err() {
                assert_eq!(
                    store.root_digest(),
                    before,
                    "a refused value changed the store"
                );
            }
        }
        _ => {
            let mut store: Store<u8, OrSet<u8>> = Store::new();
            let _ = store.update(1, |s| s.add(me, 7));
            let mut pulls = Pulls::new();
            pulls.asked(&1u8, now);
            pulls.asked(&2u8, now);
            let before = store.root_digest();
            if let Ok((k, v)) = decode_pulled::<u8, OrSet<u8>>(payload, &limits) {
                assert_eq!(
                    NaivePush::encode(&k, &v),
                    payload,
                    "a value is not canonical"
                );
            }
            let r = apply_pulled(
                &mut store,
                &pulls,
                &Admission::new(Some(me)),
                payload,
                &limits,
                now,
            );
            if r.is_err() {
                assert_eq!(
                    store.root_digest(),
                    before,
                    "a refused value changed the store"
                );
            }
        }
    }
}
