//! The contestants: each library's OR-Set and OR-Map of multi-value
//! registers, driven through its public API as its documentation shows.
//!
//! - accordant: `OrSet<u64>`, `OrMap<u64, MvRegister<u64>>`; every mutator
//!   returns its delta, which is kept (black-boxed) as a user would keep it
//!   to ship it.
//! - crdts: `Orswot<u64, A>`, `Map<u64, MVReg<u64, A>, A>` with the actor
//!   type `A = [u8; 16]`, the width of accordant's UUID replica ids (a `u128`
//!   actor would be a short varint in postcard). An operation is made and
//!   applied (`s.apply(s.add(..))`): the op is **not** cloned, which favours
//!   crdts (a user who ships the op must clone or serialise it first).
//! - dson: it has no standalone set; its `OrMap<u64>` of `MvReg` values is
//!   the closest (an element is a key holding `true`). Its delta is joined
//!   without a clone, as for crdts. dson's actor ids are its own 24-bit
//!   `Identifier`: narrower than 16 bytes, which favours dson's sizes.

use std::hint::black_box;

use accordant::{codec, Lattice, MvRegister, OrMap, OrSet, ReplicaId};
use crdts::{CmRDT, CvRDT};
use dson::crdts::mvreg::MvRegValue;
use dson::sentinel::DummySentinel;
use dson::{CausalContext as DsonContext, CausalDotStore, Identifier, MvReg};

/// Three replica ids: random version-4 UUIDs, so none is a short varint.
pub const ACTORS: [[u8; 16]; 3] = [
    [
        0xe6, 0xec, 0x2b, 0x51, 0x57, 0x67, 0x42, 0x4a, 0x86, 0x0e, 0xc8, 0x2d, 0xd5, 0x61, 0x02,
        0xdc,
    ],
    [
        0xda, 0xaf, 0x63, 0x77, 0x85, 0x11, 0x4c, 0x50, 0xab, 0x19, 0xd2, 0x98, 0x05, 0xbd, 0xe3,
        0x2d,
    ],
    [
        0x3a, 0xd5, 0x11, 0x3c, 0xdf, 0x1b, 0x45, 0x05, 0xa3, 0x84, 0x82, 0x98, 0xa1, 0x6c, 0x16,
        0xec,
    ],
];

/// The same three ids as accordant replicas.
pub const REPLICAS: [ReplicaId; 3] = [
    ReplicaId::from_bytes(ACTORS[0]),
    ReplicaId::from_bytes(ACTORS[1]),
    ReplicaId::from_bytes(ACTORS[2]),
];

const DSON_IDS: [Identifier; 3] = [
    Identifier::new(1, 0),
    Identifier::new(2, 0),
    Identifier::new(3, 0),
];

/// crdts' actor type: 16 bytes, like a `ReplicaId`.
pub type Actor = [u8; 16];

/// One library's OR-Set, or OR-Map of registers, through its public API.
pub trait Lib {
    /// The library's name in tables and benchmark ids.
    const NAME: &'static str;
    /// `or_set` or `or_map`.
    const KIND: &'static str;
    /// The replica state.
    type State: Clone;

    /// The bottom state.
    fn empty() -> Self::State;

    /// Adds (set) or writes `v` under (map) `k` at replica `r`.
    fn write(s: &mut Self::State, r: usize, k: u64, v: u64);

    /// Removes `k` at replica `r` (observed-remove).
    fn remove(s: &mut Self::State, r: usize, k: u64);

    /// Merges a whole state into `s`, consuming it.
    fn merge(s: &mut Self::State, other: Self::State);

    /// Serialised state: accordant's canonical codec, postcard for the
    /// others; `None` where the state does not serialise with postcard.
    fn encode(s: &Self::State) -> Option<Vec<u8>>;

    /// Number of elements or keys.
    fn len(s: &Self::State) -> usize;

    /// Applies `writes` then `removes` at replica `r`, to build fixtures.
    /// Keys must not repeat within one batch.
    fn build(s: &mut Self::State, r: usize, writes: &[(u64, u64)], removes: &[u64]) {
        for &(k, v) in writes {
            Self::write(s, r, k, v);
        }
        for &k in removes {
            Self::remove(s, r, k);
        }
    }
}

/// accordant's `OrSet<u64>`.
pub struct AccSet;

impl Lib for AccSet {
    const NAME: &'static str = "accordant";
    const KIND: &'static str = "or_set";
    type State = OrSet<u64>;

    fn empty() -> Self::State {
        OrSet::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, _v: u64) {
        black_box(s.add(REPLICAS[r], k).expect("replica has dots left"));
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        black_box(s.remove(&k));
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.join_owned(other);
    }

    fn encode(s: &Self::State) -> Option<Vec<u8>> {
        Some(codec::encode(s))
    }

    fn len(s: &Self::State) -> usize {
        s.len()
    }
}

/// accordant's `OrMap<u64, MvRegister<u64>>`.
pub struct AccMap;

impl Lib for AccMap {
    const NAME: &'static str = "accordant";
    const KIND: &'static str = "or_map";
    type State = OrMap<u64, MvRegister<u64>>;

    fn empty() -> Self::State {
        OrMap::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, v: u64) {
        let delta = s.try_update(k, |reg| reg.write(REPLICAS[r], v));
        black_box(delta.expect("replica has dots left"));
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        black_box(s.remove(&k));
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.join_owned(other);
    }

    fn encode(s: &Self::State) -> Option<Vec<u8>> {
        Some(codec::encode(s))
    }

    fn len(s: &Self::State) -> usize {
        s.len()
    }
}

/// crdts' `Orswot<u64, [u8; 16]>`.
pub struct CrdtsSet;

impl Lib for CrdtsSet {
    const NAME: &'static str = "crdts";
    const KIND: &'static str = "or_set";
    type State = crdts::Orswot<u64, Actor>;

    fn empty() -> Self::State {
        crdts::Orswot::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, _v: u64) {
        let op = s.add(k, s.read_ctx().derive_add_ctx(ACTORS[r]));
        s.apply(op);
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        // The element's own clock as the remove context (crdts' idiom).
        let op = s.rm(k, s.contains(&k).derive_rm_ctx());
        s.apply(op);
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.merge(other);
    }

    fn encode(s: &Self::State) -> Option<Vec<u8>> {
        postcard::to_allocvec(s).ok()
    }

    fn len(s: &Self::State) -> usize {
        s.iter().count()
    }
}

/// crdts' `Map<u64, MVReg<u64, [u8; 16]>, [u8; 16]>`.
pub struct CrdtsMap;

impl Lib for CrdtsMap {
    const NAME: &'static str = "crdts";
    const KIND: &'static str = "or_map";
    type State = crdts::Map<u64, crdts::MVReg<u64, Actor>, Actor>;

    fn empty() -> Self::State {
        crdts::Map::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, v: u64) {
        let ctx = s.read_ctx().derive_add_ctx(ACTORS[r]);
        let op = s.update(k, ctx, |reg, c| reg.write(v, c));
        s.apply(op);
    }

    fn remove(s: &mut Self::State, _r: usize, k: u64) {
        let ctx = s.get(&k).derive_rm_ctx();
        let op = s.rm(k, ctx);
        s.apply(op);
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.merge(other);
    }

    fn encode(s: &Self::State) -> Option<Vec<u8>> {
        postcard::to_allocvec(s).ok()
    }

    fn len(s: &Self::State) -> usize {
        s.len().val
    }
}

/// dson's `OrMap<u64>` of registers: a set (`SET`, every value `true`) or a
/// map of `u64` registers.
pub struct Dson<const SET: bool>;

/// dson's state type.
pub type DsonState = CausalDotStore<dson::OrMap<u64>>;

impl<const SET: bool> Dson<SET> {
    fn value(v: u64) -> MvRegValue {
        if SET {
            MvRegValue::Bool(true)
        } else {
            MvRegValue::U64(v)
        }
    }

    fn write_delta(s: &DsonState, cc: &DsonContext, r: usize, k: u64, v: u64) -> DsonState {
        let value = Self::value(v);
        s.store.apply_to_register(
            |reg: &MvReg, cc: &DsonContext, id: Identifier| reg.write(value, cc, id),
            k,
            cc,
            DSON_IDS[r],
        )
    }
}

/// Joins many dson deltas pairwise (a dson join walks its whole left
/// operand, so joining them one by one into a large state is quadratic).
fn dson_join_all(mut v: Vec<DsonState>) -> DsonState {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            match it.next() {
                Some(b) => next.push(dson_join(a, b)),
                None => next.push(a),
            }
        }
        v = next;
    }
    v.pop().unwrap_or_default()
}

fn dson_join(a: DsonState, b: DsonState) -> DsonState {
    match a.join(b, &mut DummySentinel) {
        Ok(s) => s,
        Err(never) => match never {},
    }
}

impl<const SET: bool> Lib for Dson<SET> {
    const NAME: &'static str = "dson";
    const KIND: &'static str = if SET { "or_set" } else { "or_map" };
    type State = DsonState;

    fn empty() -> Self::State {
        CausalDotStore::new()
    }

    fn write(s: &mut Self::State, r: usize, k: u64, v: u64) {
        let delta = Self::write_delta(s, &s.context, r, k, v);
        s.join_or_replace_with(delta.store, &delta.context);
    }

    fn remove(s: &mut Self::State, r: usize, k: u64) {
        let delta = s.store.remove(&k, &s.context, DSON_IDS[r]);
        s.join_or_replace_with(delta.store, &delta.context);
    }

    fn merge(s: &mut Self::State, other: Self::State) {
        s.join_or_replace_with(other.store, &other.context);
    }

    fn encode(s: &Self::State) -> Option<Vec<u8>> {
        // dson's `#[serde(flatten)]` field gives no sequence length, which
        // postcard needs.
        postcard::to_allocvec(s).ok()
    }

    fn len(s: &Self::State) -> usize {
        s.store.len()
    }

    /// The same deltas as one-by-one writes and removes, made against the
    /// state before the batch (keys do not repeat) with the context advanced
    /// by hand, and joined pairwise.
    fn build(s: &mut Self::State, r: usize, writes: &[(u64, u64)], removes: &[u64]) {
        let mut cc = s.context.clone();
        let mut deltas = Vec::with_capacity(writes.len() + removes.len());
        for &(k, v) in writes {
            let d = Self::write_delta(s, &cc, r, k, v);
            cc.union(&d.context);
            deltas.push(d);
        }
        for k in removes {
            deltas.push(s.store.remove(k, &cc, DSON_IDS[r]));
        }
        let delta = dson_join_all(deltas);
        s.join_or_replace_with(delta.store, &delta.context);
    }
}
