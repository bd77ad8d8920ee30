//! What the keys hold, how the two sides diverge, and what converging must
//! cost at least.
//!
//! Side `A` writes as replica 1, side `B` as replica 2. Both start from the
//! same base store of `N` keys (`u64`, `0..N`); then `D` distinct random keys
//! change on `A` (one-sided) or the *same* `D` keys change on both sides,
//! concurrently (two-sided). The `convergence` example's documentation says
//! what a change is for each [`Kind`]. Everything is deterministic from a
//! `ChaCha8Rng`: the model (the OR-Set template), then the base values, then
//! the divergence, in that order, so the `report` example can build the base
//! once and diverge clones of it with clones of the generator and get the
//! very cells the `convergence` example prints.

use std::collections::BTreeSet;
use std::convert::Infallible;

use accordant::codec;
use accordant::{GCounter, Hlc, LwwRegister, OrSet, ReplicaId};
use accordant_sync::key::key_bytes;
use accordant_sync::store::{Store, StoreValue};
use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

/// The stores every protocol reconciles.
pub(crate) type Keyed<V> = Store<u64, V>;

/// Which CRDT each key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// `LwwRegister<Vec<u8>>` of `value_bytes` random bytes.
    Lww,
    /// `LwwRegister<Vec<u8>>` of 32 random bytes (`lww` with
    /// `value_bytes` 32, a kind of its own in the report).
    Lww32,
    /// `GCounter` with two replicas.
    Counter,
    /// `OrSet<u32>` of `set_elems` elements.
    OrSet,
}

impl Kind {
    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Lww => "lww",
            Kind::Lww32 => "lww32",
            Kind::Counter => "counter",
            Kind::OrSet => "orset",
        }
    }

    /// Parses a command-line name.
    pub(crate) fn parse(s: &str) -> Option<Kind> {
        match s {
            "lww" => Some(Kind::Lww),
            "lww32" => Some(Kind::Lww32),
            "counter" => Some(Kind::Counter),
            "orset" => Some(Kind::OrSet),
            _ => None,
        }
    }
}

/// A value model and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValueSpec {
    pub(crate) kind: Kind,
    /// Bytes of each LWW register's value (`lww` only).
    pub(crate) value_bytes: usize,
    /// Elements of each OR-Set (`orset` only).
    pub(crate) set_elems: usize,
}

/// Which side writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    A,
    B,
}

impl Side {
    pub(crate) fn replica(self) -> ReplicaId {
        match self {
            Side::A => ReplicaId::from_u128(1),
            Side::B => ReplicaId::from_u128(2),
        }
    }
}

/// How keys' values are made and changed.
pub(crate) trait Model {
    /// The CRDT under each key.
    type V: StoreValue;
    /// A fresh value, the same on both sides before divergence.
    fn base(&self, rng: &mut ChaCha8Rng) -> Self::V;
    /// Changes `value` as `side` would during a partition.
    fn change(&self, rng: &mut ChaCha8Rng, side: Side, value: &mut Self::V);
}

/// Something to do with a model whose value type is only known inside
/// [`with_model`].
pub(crate) trait WithModel {
    /// What it returns.
    type Out;
    /// Does it, with the model and the generator right after the model was
    /// made.
    fn run<M: Model>(self, model: &M, rng: &mut ChaCha8Rng) -> Self::Out;
}

/// Makes the model of `spec` (drawing the OR-Set template from `rng`) and
/// hands it to `f`.
pub(crate) fn with_model<F: WithModel>(spec: &ValueSpec, rng: &mut ChaCha8Rng, f: F) -> F::Out {
    match spec.kind {
        Kind::Lww => f.run(
            &LwwModel {
                bytes: spec.value_bytes,
            },
            rng,
        ),
        Kind::Lww32 => f.run(&LwwModel { bytes: 32 }, rng),
        Kind::Counter => f.run(&CounterModel, rng),
        Kind::OrSet => {
            let model = OrSetModel::new(rng, spec.set_elems);
            f.run(&model, rng)
        }
    }
}

/// `LwwRegister<Vec<u8>>` of `bytes` random bytes.
pub(crate) struct LwwModel {
    pub(crate) bytes: usize,
}

impl LwwModel {
    fn random_bytes(&self, rng: &mut ChaCha8Rng) -> Vec<u8> {
        let mut v = vec![0; self.bytes];
        rng.fill_bytes(&mut v);
        v
    }
}

impl Model for LwwModel {
    type V = LwwRegister<Vec<u8>>;

    fn base(&self, rng: &mut ChaCha8Rng) -> Self::V {
        let mut r = LwwRegister::new();
        let _ = r.write_at(
            Hlc::new(1_000, 0),
            Side::A.replica(),
            self.random_bytes(rng),
        );
        r
    }

    fn change(&self, rng: &mut ChaCha8Rng, side: Side, value: &mut Self::V) {
        let stamp = Hlc::new(rng.random_range(2_000..3_000), 0);
        let _ = value.write_at(stamp, side.replica(), self.random_bytes(rng));
    }
}

/// `GCounter` with entries for replicas 1 and 2.
pub(crate) struct CounterModel;

impl Model for CounterModel {
    type V = GCounter;

    fn base(&self, rng: &mut ChaCha8Rng) -> GCounter {
        let mut c = GCounter::new();
        for side in [Side::A, Side::B] {
            // Far from overflow: the sums stay below 2^21.
            let _ = c.increment(side.replica(), rng.random_range(1..=1_000_000));
        }
        c
    }

    fn change(&self, rng: &mut ChaCha8Rng, side: Side, value: &mut GCounter) {
        let _ = value.increment(side.replica(), rng.random_range(1..=100));
    }
}

/// `OrSet<u32>`: a template of random elements, one element added per
/// change.
pub(crate) struct OrSetModel {
    template: OrSet<u32>,
}

impl OrSetModel {
    pub(crate) fn new(rng: &mut ChaCha8Rng, elems: usize) -> Self {
        let mut template = OrSet::new();
        while template.len() < elems {
            let e = rng.random::<u32>();
            if !template.contains(&e) {
                // Dots count from 1: overflow needs 2^64 adds.
                let _ = template.add(Side::A.replica(), e);
            }
        }
        OrSetModel { template }
    }
}

impl Model for OrSetModel {
    type V = OrSet<u32>;

    fn base(&self, _rng: &mut ChaCha8Rng) -> OrSet<u32> {
        self.template.clone()
    }

    fn change(&self, rng: &mut ChaCha8Rng, side: Side, value: &mut OrSet<u32>) {
        loop {
            let e = rng.random::<u32>();
            if !value.contains(&e) {
                let _ = value.add(side.replica(), e);
                return;
            }
        }
    }
}

/// Puts `value` under `key`, replacing whatever is there.
pub(crate) fn put<V: StoreValue>(store: &mut Keyed<V>, key: u64, value: V) {
    let _ = store.update(key, |slot| {
        *slot = value;
        Ok::<V, Infallible>(V::default())
    });
}

/// `d` distinct keys of `0..n`, sorted (Floyd's sampling).
pub(crate) fn sample_keys(rng: &mut ChaCha8Rng, n: u64, d: u64) -> Vec<u64> {
    let mut set = BTreeSet::new();
    for j in n - d..n {
        let t = rng.random_range(0..=j);
        if !set.insert(t) {
            set.insert(j);
        }
    }
    set.into_iter().collect()
}

/// Stores `A` and `B` and the keys that changed.
#[derive(Debug, Clone)]
pub(crate) struct Pair<V> {
    pub(crate) a: Keyed<V>,
    pub(crate) b: Keyed<V>,
    pub(crate) changed: Vec<u64>,
}

/// The base store: `keys` keys of fresh values.
pub(crate) fn build_base<M: Model>(m: &M, keys: u64, rng: &mut ChaCha8Rng) -> Keyed<M::V> {
    let mut a = Store::new();
    for k in 0..keys {
        let v = m.base(rng);
        put(&mut a, k, v);
    }
    a
}

/// Two copies of `base` with `changed` keys diverged, on `A` only or on
/// both sides.
pub(crate) fn diverge<M: Model>(
    m: &M,
    base: &Keyed<M::V>,
    changed: u64,
    two_sided: bool,
    rng: &mut ChaCha8Rng,
) -> Pair<M::V> {
    let mut a = base.clone();
    let mut b = base.clone();
    let changed = sample_keys(rng, base.len() as u64, changed);
    for &k in &changed {
        let _ = a.update(k, |v| {
            m.change(rng, Side::A, v);
            Ok::<M::V, Infallible>(M::V::default())
        });
        if two_sided {
            let _ = b.update(k, |v| {
                m.change(rng, Side::B, v);
                Ok::<M::V, Infallible>(M::V::default())
            });
        }
    }
    Pair { a, b, changed }
}

/// The root digest of `A ⊔ B`, joined value by value into a copy of `A`.
pub(crate) fn reference_root<V: StoreValue>(a: &Keyed<V>, b: &Keyed<V>) -> [u8; 32] {
    let mut r = a.clone();
    for (k, v) in b.iter() {
        // Joining an equal value changes nothing; skip the re-encoding.
        if r.get(&k) != Some(v.clone()) {
            r.join(k, &v);
        }
    }
    *r.root_digest().as_bytes()
}

/// The mean encoded size of `store`'s values.
pub(crate) fn mean_value_bytes<V: StoreValue>(store: &Keyed<V>) -> u64 {
    let total: u64 = store
        .iter()
        .map(|(_, v)| codec::encoded_len(&v) as u64)
        .sum();
    total.checked_div(store.len() as u64).unwrap_or(0)
}

/// The lower bound of the cell, in bytes.
pub(crate) fn lower_bound<V: StoreValue>(
    a: &Keyed<V>,
    b: &Keyed<V>,
    n: u64,
    changed: &[u64],
) -> u64 {
    // Naming which D of the N keys changed: log2 C(N, D) bits, summed as
    // logs of ratios so that it stays exact-ish without lgamma or overflow.
    let d = changed.len() as u64;
    let bits: f64 = (0..d)
        .map(|i| ((n - i) as f64 / (d - i) as f64).log2())
        .sum();
    let mut bytes = (bits / 8.0).ceil() as u64;
    for k in changed {
        // Each changed key's canonical bytes, counted once: the receiver
        // joins under the key itself (and cannot name a key it lacks by its
        // rank), so a concrete protocol ships it at least once. Strictly
        // this double-counts with the naming bits above; it is slack the
        // floor grants every protocol alike.
        bytes += key_bytes(k).len() as u64;
        let av = a.get(k).unwrap_or_default();
        let bv = b.get(k).unwrap_or_default();
        // A key on one side only: the delta against bottom is the whole value.
        for delta in [av.delta(&bv), bv.delta(&av)] {
            if !delta.is_bottom() {
                bytes += codec::encoded_len(&delta) as u64;
            }
        }
    }
    bytes
}
