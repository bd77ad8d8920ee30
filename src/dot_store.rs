//! Dot stores: the building blocks of causal CRDTs.
//!
//! Almeida, Shoker and Baquero ("Delta State Replicated Data Types", JPDC
//! 2018, §5) build every causal CRDT from three *dot stores*, each paired with
//! a [`CausalContext`]:
//!
//! - [`DotSet`]: a set of dots (the body of an OR-Set element);
//! - [`DotFun<V>`]: a map from dot to value (an MV-Register, a causal counter);
//! - [`DotMap<K, S>`]: a map from key to a nested dot store (an OR-Set is a
//!   `DotMap<E, DotSet>`, an OR-Map a `DotMap<K, V::Store>`).
//!
//! One join works for all of them. A dot survives the join of `(s, c)` and
//! `(s', c')` if both stores hold it, or if one store holds it and the other
//! side has never seen it (`d ∉ c'`); a dot the other side has seen but no
//! longer holds was removed there, and stays removed. For `DotMap` the rule
//! applies per key, recursively, and keys whose store becomes empty vanish.
//! This is why removals need no tombstones: the context remembers the dots.
//!
//! The trait [`DotStore`] carries that join, the per-dot split used by join
//! decomposition, and the canonical wire form (dots are interned against the
//! context's replica table).

use core::fmt::Debug;
use std::borrow::Borrow;
use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use smallvec::SmallVec;

use crate::causal::{CausalContext, WireDot};
use crate::codec::{strictly_sorted, Budget, SeqVec};
use crate::error::DecodeError;
use crate::replica::Dot;

/// A dot store: the payload of a causal CRDT, joined under causal contexts.
pub trait DotStore: Clone + Default + PartialEq + Debug {
    /// Whether the store holds no dot (the bottom store).
    fn is_empty(&self) -> bool;

    /// Calls `f` on every dot, in canonical order.
    fn for_each_dot(&self, f: &mut dyn FnMut(&Dot));

    /// The causal join: `self := join((self, ctx), (other, other_ctx)).store`.
    ///
    /// Contexts are joined by the caller afterwards.
    fn join_store(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext);

    /// The part of the store whose dots satisfy `keep`.
    fn filter_dots(&self, keep: &mut dyn FnMut(&Dot) -> bool) -> Self;

    /// Splits the store into single-dot stores, one per dot.
    fn split_dots(&self, out: &mut Vec<(Dot, Self)>);

    /// Number of dots held.
    fn dot_count(&self) -> usize {
        let mut n = 0;
        self.for_each_dot(&mut |_| n += 1);
        n
    }
}

/// A dot store with a canonical wire form (dots interned against the context).
pub trait WireStore: DotStore {
    /// The wire form.
    type Wire: Serialize + DeserializeOwned;

    /// The wire form.
    fn to_wire(&self, ctx: &CausalContext) -> Self::Wire;

    /// Validates a wire form against its context: every dot resolves to a dot
    /// of `ctx`, collections are strictly sorted, nothing is empty. Dots are
    /// appended to `dots` so the caller can check they are unique.
    fn from_wire(
        wire: Self::Wire,
        ctx: &CausalContext,
        dots: &mut Vec<Dot>,
        budget: &mut Budget,
    ) -> Result<Self, DecodeError>;

    /// Serialises the wire form straight from the store: exactly what
    /// `self.to_wire(ctx).serialize(s)` writes (the default), without
    /// building it.
    fn serialize_wire<Ser: Serializer>(
        &self,
        ctx: &CausalContext,
        s: Ser,
    ) -> Result<Ser::Ok, Ser::Error> {
        self.to_wire(ctx).serialize(s)
    }
}

/// A store serialised in its context, through [`WireStore::serialize_wire`].
pub(crate) struct InContext<'a, S>(pub(crate) &'a S, pub(crate) &'a CausalContext);

impl<S: WireStore> Serialize for InContext<'_, S> {
    fn serialize<Ser: Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.0.serialize_wire(self.1, s)
    }
}

/// A set of dots, sorted; usually one dot, stored inline.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct DotSet(SmallVec<[Dot; 1]>);

impl DotSet {
    /// The set holding just `dot`.
    pub fn single(dot: Dot) -> Self {
        let mut v = SmallVec::new();
        v.push(dot);
        DotSet(v)
    }

    /// The dots, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Dot> {
        self.0.iter()
    }

    /// Number of dots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set has no dot.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `dot` is in the set.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.0.binary_search(dot).is_ok()
    }
}

impl DotStore for DotSet {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(&Dot)) {
        self.0.iter().for_each(f);
    }

    fn join_store(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        if self.0 == other.0 {
            return;
        }
        if other.0.is_empty() {
            self.0.retain(|d| !other_ctx.contains(d));
            return;
        }
        if self.0.is_empty() {
            self.0 = other
                .0
                .iter()
                .filter(|d| !ctx.contains(d))
                .copied()
                .collect();
            return;
        }
        let mut out = SmallVec::with_capacity(self.0.len().max(other.0.len()));
        let (a, b) = (&self.0, &other.0);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if j >= b.len() || (i < a.len() && a[i] < b[j]) {
                if !other_ctx.contains(&a[i]) {
                    out.push(a[i]);
                }
                i += 1;
            } else if i >= a.len() || b[j] < a[i] {
                if !ctx.contains(&b[j]) {
                    out.push(b[j]);
                }
                j += 1;
            } else {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
        self.0 = out;
    }

    fn filter_dots(&self, keep: &mut dyn FnMut(&Dot) -> bool) -> Self {
        DotSet(self.0.iter().copied().filter(|d| keep(d)).collect())
    }

    fn split_dots(&self, out: &mut Vec<(Dot, Self)>) {
        out.extend(self.0.iter().map(|d| (*d, DotSet::single(*d))));
    }
}

impl WireStore for DotSet {
    type Wire = SeqVec<WireDot>;

    fn to_wire(&self, ctx: &CausalContext) -> Self::Wire {
        SeqVec(self.0.iter().map(|d| ctx.wire_dot(d)).collect())
    }

    fn serialize_wire<Ser: Serializer>(
        &self,
        ctx: &CausalContext,
        s: Ser,
    ) -> Result<Ser::Ok, Ser::Error> {
        s.collect_seq(self.0.iter().map(|d| ctx.wire_dot(d)))
    }

    fn from_wire(
        wire: Self::Wire,
        ctx: &CausalContext,
        dots: &mut Vec<Dot>,
        budget: &mut Budget,
    ) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !strictly_sorted(&wire.0, |a, b| a < b) {
            return Err(DecodeError::NonCanonical("dot set not sorted"));
        }
        let mut set = SmallVec::with_capacity(wire.0.len().min(1));
        for w in wire.0 {
            let d = ctx.resolve_dot(w)?;
            dots.push(d);
            set.push(d);
        }
        Ok(DotSet(set))
    }
}

/// A map from dot to value, sorted by dot; usually one entry, stored inline.
///
/// Two honest replicas never hold different values under the same dot (a dot
/// names one write). To keep the join a semilattice even on corrupted input,
/// equal dots with different values join to the larger value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DotFun<V>(SmallVec<[(Dot, V); 1]>);

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        DotFun(SmallVec::new())
    }
}

impl<V> DotFun<V> {
    /// The store holding `value` under `dot`.
    pub fn single(dot: Dot, value: V) -> Self {
        let mut v = SmallVec::new();
        v.push((dot, value));
        DotFun(v)
    }

    /// The entries, in dot order.
    pub fn iter(&self) -> impl Iterator<Item = (&Dot, &V)> {
        self.0.iter().map(|(d, v)| (d, v))
    }

    /// The values, in dot order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Puts `value` under `dot`, keeping dot order.
    pub(crate) fn insert(&mut self, dot: Dot, value: V) {
        match self.0.binary_search_by(|(d, _)| d.cmp(&dot)) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (dot, value)),
        }
    }
}

impl<V> DotStore for DotFun<V>
where
    V: Clone + Ord + Debug,
{
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(&Dot)) {
        self.0.iter().for_each(|(d, _)| f(d));
    }

    fn join_store(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        if self.0 == other.0 {
            return;
        }
        let mine = core::mem::take(&mut self.0);
        let mut out = SmallVec::with_capacity(mine.len().max(other.0.len()));
        let mut a = mine.into_iter().peekable();
        let mut b = other.0.iter().peekable();
        loop {
            let ord = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => core::cmp::Ordering::Less,
                (None, Some(_)) => core::cmp::Ordering::Greater,
                (Some((da, _)), Some((db, _))) => da.cmp(db),
            };
            match ord {
                core::cmp::Ordering::Less => {
                    if let Some((d, v)) = a.next() {
                        if !other_ctx.contains(&d) {
                            out.push((d, v));
                        }
                    }
                }
                core::cmp::Ordering::Greater => {
                    if let Some((d, v)) = b.next() {
                        if !ctx.contains(d) {
                            out.push((*d, v.clone()));
                        }
                    }
                }
                core::cmp::Ordering::Equal => {
                    if let (Some((d, va)), Some((_, vb))) = (a.next(), b.next()) {
                        out.push((d, if *vb > va { vb.clone() } else { va }));
                    }
                }
            }
        }
        self.0 = out;
    }

    fn filter_dots(&self, keep: &mut dyn FnMut(&Dot) -> bool) -> Self {
        DotFun(self.0.iter().filter(|(d, _)| keep(d)).cloned().collect())
    }

    fn split_dots(&self, out: &mut Vec<(Dot, Self)>) {
        out.extend(
            self.0
                .iter()
                .map(|(d, v)| (*d, DotFun::single(*d, v.clone()))),
        );
    }
}

impl<V> WireStore for DotFun<V>
where
    V: Clone + Ord + Debug + Serialize + DeserializeOwned,
{
    type Wire = SeqVec<(WireDot, V)>;

    fn to_wire(&self, ctx: &CausalContext) -> Self::Wire {
        SeqVec(
            self.0
                .iter()
                .map(|(d, v)| (ctx.wire_dot(d), v.clone()))
                .collect(),
        )
    }

    fn serialize_wire<Ser: Serializer>(
        &self,
        ctx: &CausalContext,
        s: Ser,
    ) -> Result<Ser::Ok, Ser::Error> {
        s.collect_seq(self.0.iter().map(|(d, v)| (ctx.wire_dot(d), v)))
    }

    fn from_wire(
        wire: Self::Wire,
        ctx: &CausalContext,
        dots: &mut Vec<Dot>,
        budget: &mut Budget,
    ) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !strictly_sorted(&wire.0, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("dot function not sorted"));
        }
        let mut out = SmallVec::with_capacity(wire.0.len().min(1));
        for (w, v) in wire.0 {
            let d = ctx.resolve_dot(w)?;
            dots.push(d);
            out.push((d, v));
        }
        Ok(DotFun(out))
    }
}

/// A map from key to a nested dot store; empty stores are never kept.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DotMap<K, S>(BTreeMap<K, S>);

impl<K, S> Default for DotMap<K, S> {
    fn default() -> Self {
        DotMap(BTreeMap::new())
    }
}

impl<K: Ord, S> DotMap<K, S> {
    /// The nested store under `key` (or any borrowed form of it).
    pub fn get<Q>(&self, key: &Q) -> Option<&S>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.get(key)
    }

    /// Whether `key` has a (non-empty) store.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.contains_key(key)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.0.iter()
    }

    /// Entries in key order, as the map's own iterator.
    pub(crate) fn entries(&self) -> std::collections::btree_map::Iter<'_, K, S> {
        self.0.iter()
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.keys()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Removes and returns the store under `key`.
    pub(crate) fn take<Q>(&mut self, key: &Q) -> Option<S>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.remove(key)
    }

    /// The store under `key`, bottom if the key was absent (the caller
    /// removes it again if it stays empty).
    pub(crate) fn slot(&mut self, key: K) -> &mut S
    where
        S: Default,
    {
        self.0.entry(key).or_default()
    }

    /// Puts a non-empty `store` under `key`, returning the store it replaces.
    pub(crate) fn replace(&mut self, key: K, store: S) -> Option<S> {
        self.0.insert(key, store)
    }

    /// Puts `store` under `key`, or removes the key if the store is empty.
    pub(crate) fn put(&mut self, key: K, store: S)
    where
        S: DotStore,
    {
        if store.is_empty() {
            self.0.remove(&key);
        } else {
            self.0.insert(key, store);
        }
    }
}

impl<K, S> DotStore for DotMap<K, S>
where
    K: Clone + Ord + Debug,
    S: DotStore,
{
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(&Dot)) {
        for s in self.0.values() {
            s.for_each_dot(f);
        }
    }

    fn join_store(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        use core::cmp::Ordering;
        if other.0.is_empty() && other_ctx.is_empty() {
            return;
        }
        // Merge-join both sorted maps, then bulk-build the result (BTreeMap
        // builds from sorted input in linear time).
        let mine = core::mem::take(&mut self.0);
        let mut out: Vec<(K, S)> = Vec::with_capacity(mine.len().max(other.0.len()));
        let mut a = mine.into_iter().peekable();
        let mut b = other.0.iter().peekable();
        let empty = S::default();
        loop {
            let ord = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            let (k, s) = match ord {
                Ordering::Less => match a.next() {
                    Some((k, mut s)) => {
                        s.join_store(ctx, &empty, other_ctx);
                        (k, s)
                    }
                    None => break,
                },
                Ordering::Greater => match b.next() {
                    Some((k, o)) => {
                        let mut s = S::default();
                        s.join_store(ctx, o, other_ctx);
                        (k.clone(), s)
                    }
                    None => break,
                },
                Ordering::Equal => match (a.next(), b.next()) {
                    (Some((k, mut s)), Some((_, o))) => {
                        s.join_store(ctx, o, other_ctx);
                        (k, s)
                    }
                    _ => break,
                },
            };
            if !s.is_empty() {
                out.push((k, s));
            }
        }
        self.0 = out.into_iter().collect();
    }

    fn filter_dots(&self, keep: &mut dyn FnMut(&Dot) -> bool) -> Self {
        DotMap(
            self.0
                .iter()
                .filter_map(|(k, s)| {
                    let f = s.filter_dots(keep);
                    (!f.is_empty()).then(|| (k.clone(), f))
                })
                .collect(),
        )
    }

    fn split_dots(&self, out: &mut Vec<(Dot, Self)>) {
        let mut inner = Vec::new();
        for (k, s) in &self.0 {
            inner.clear();
            s.split_dots(&mut inner);
            out.extend(inner.drain(..).map(|(d, s)| {
                let mut m = BTreeMap::new();
                m.insert(k.clone(), s);
                (d, DotMap(m))
            }));
        }
    }
}

impl<K, S> WireStore for DotMap<K, S>
where
    K: Clone + Ord + Debug + Serialize + DeserializeOwned,
    S: WireStore,
{
    type Wire = SeqVec<(K, S::Wire)>;

    fn to_wire(&self, ctx: &CausalContext) -> Self::Wire {
        SeqVec(
            self.0
                .iter()
                .map(|(k, s)| (k.clone(), s.to_wire(ctx)))
                .collect(),
        )
    }

    fn serialize_wire<Ser: Serializer>(
        &self,
        ctx: &CausalContext,
        s: Ser,
    ) -> Result<Ser::Ok, Ser::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| (k, InContext(v, ctx))))
    }

    fn from_wire(
        wire: Self::Wire,
        ctx: &CausalContext,
        dots: &mut Vec<Dot>,
        budget: &mut Budget,
    ) -> Result<Self, DecodeError> {
        budget.take(wire.0.len())?;
        if !strictly_sorted(&wire.0, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("map keys not sorted"));
        }
        let mut out = Vec::with_capacity(0);
        for (k, w) in wire.0 {
            let s = S::from_wire(w, ctx, dots, budget)?;
            if s.is_empty() {
                return Err(DecodeError::NonCanonical("map entry with an empty store"));
            }
            out.push((k, s));
        }
        Ok(DotMap(out.into_iter().collect()))
    }
}
