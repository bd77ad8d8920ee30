//! `OrMap`: an observed-remove map whose values are causal CRDTs.
//!
//! The state is a `DotMap<K, V::Store>` with **one** causal context for the
//! whole map, nested values included (Almeida, Shoker, Baquero, JPDC 2018,
//! §7.5). A value is its dot store; it borrows the map's context while it is
//! updated, so every dot is fresh map-wide and maps nest to any depth (maps of
//! sets, of maps, of MV registers, of causal counters).
//!
//! Removing a key removes the dots of its value that this replica has seen.
//! Semantics are therefore **observed-remove with reset**: an update made
//! concurrently with the remove brings the key back holding *only* what that
//! update wrote (its dots are the only ones the remover did not see), and
//! state the remover had seen never resurrects.
//!
//! ```
//! use accordant::{Lattice, OrMap, OrSet, ReplicaId};
//! let (eu, us) = (ReplicaId::from_u128(1), ReplicaId::from_u128(2));
//! let mut a: OrMap<&str, OrSet<&str>> = OrMap::new();
//! let _ = a.try_update("tags", |s| s.add(eu, "old")).unwrap();
//! let mut b = a.clone();
//! let _ = a.remove(&"tags");                                // EU removes the key
//! let _ = b.try_update("tags", |s| s.add(us, "new")).unwrap(); // US adds concurrently
//! a.join(&b);
//! let tags = a.get(&"tags").unwrap();
//! assert!(tags.contains("new") && !tags.contains("old"));
//! ```

use core::fmt::Debug;
use std::borrow::Borrow;

use crate::causal::CausalContext;
use crate::causal_state::{causal_newtype, Causal, CausalCrdt};
use crate::dot_store::{DotMap, DotStore};

/// An observed-remove map of causal CRDTs.
pub struct OrMap<K, V: CausalCrdt>(Causal<DotMap<K, V::Store>>);

impl<K: Clone, V: CausalCrdt> Clone for OrMap<K, V> {
    fn clone(&self) -> Self {
        OrMap(self.0.clone())
    }
}

impl<K: PartialEq, V: CausalCrdt> PartialEq for OrMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K: Debug, V: CausalCrdt> Debug for OrMap<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("OrMap").field(&self.0).finish()
    }
}

impl<K: Eq, V: CausalCrdt> Eq for OrMap<K, V> where V::Store: Eq {}

impl<K, V: CausalCrdt> Default for OrMap<K, V> {
    fn default() -> Self {
        OrMap(Causal::default())
    }
}

impl<K, V> OrMap<K, V>
where
    K: Clone + Ord + Debug,
    V: CausalCrdt,
{
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a delta mutator `f` to the value under `key` (bottom if
    /// absent) and returns the map delta. `f` returns the value's delta, as
    /// every mutator of this crate does.
    ///
    /// If `f` fails, whatever it changed before failing stays applied
    /// locally (mutators of this crate change nothing when they fail) and the
    /// error is returned.
    #[must_use = "the delta is what other replicas need"]
    pub fn try_update<E>(
        &mut self,
        key: K,
        f: impl FnOnce(&mut V) -> Result<V, E>,
    ) -> Result<Self, E> {
        let (store, ctx) = self.0.parts_mut();
        let seen = ctx.seen();
        // One descent: the value's slot, filled with bottom if the key is new.
        let slot = store.slot(key.clone());
        let inner = core::mem::take(slot);
        let mut value = V::from_causal(Causal::from_parts_unchecked(inner, core::mem::take(ctx)));
        let result = f(&mut value);
        let (inner, mut after) = value.into_causal().into_parts();
        // A closure may replace the value wholesale; never forget seen dots.
        seen.restore(&mut after);
        *ctx = after;
        let emptied = inner.is_empty();
        *slot = inner;
        if emptied {
            let _ = store.take(&key);
        }
        let (dstore, dctx) = result?.into_causal().into_parts();
        let mut m = DotMap::default();
        m.put(key, dstore);
        Ok(OrMap(Causal::from_parts_unchecked(m, dctx)))
    }

    /// Like [`OrMap::try_update`] for mutators that cannot fail.
    #[must_use = "the delta is what other replicas need"]
    pub fn update(&mut self, key: K, f: impl FnOnce(&mut V) -> V) -> Self {
        match self.try_update::<core::convert::Infallible>(key, |v| Ok(f(v))) {
            Ok(d) => d,
            Err(never) => match never {},
        }
    }

    /// Removes `key` (the dots of its value seen here); returns the delta.
    /// Takes any borrowed form of the key (`&str` for a `String` key).
    #[must_use = "the delta is what other replicas need"]
    pub fn remove<Q>(&mut self, key: &Q) -> Self
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (store, _) = self.0.parts_mut();
        let mut dctx = CausalContext::new();
        if let Some(old) = store.take(key) {
            old.for_each_dot(&mut |d| dctx.insert(*d));
        }
        OrMap(Causal::from_parts_unchecked(DotMap::default(), dctx))
    }

    /// Removes every key; returns the delta.
    #[must_use = "the delta is what other replicas need"]
    pub fn clear(&mut self) -> Self {
        let (store, _) = self.0.parts_mut();
        let mut dctx = CausalContext::new();
        store.for_each_dot(&mut |d| dctx.insert(*d));
        *store = DotMap::default();
        OrMap(Causal::from_parts_unchecked(DotMap::default(), dctx))
    }

    /// The value under `key`, as its dot store (see the store types for the
    /// read methods: [`SetStore`](crate::SetStore) for sets, [`DotMap`] for
    /// maps, [`DotFun`](crate::DotFun) for registers and counters).
    ///
    /// ```
    /// use accordant::{OrMap, OrSet, ReplicaId};
    /// let mut m: OrMap<String, OrSet<String>> = OrMap::new();
    /// let r = ReplicaId::from_u128(1);
    /// let _ = m.update("tags".to_string(), |s| s.add(r, "new".to_string()).unwrap());
    /// assert!(m.contains_key("tags")); // a `&str` finds a `String` key
    /// assert!(m.get("tags").unwrap().contains("new"));
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<&V::Store>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.store().get(key)
    }

    /// The value under `key` as a standalone CRDT (cloning its store and the
    /// map's context), for reads through the value type's own API.
    pub fn get_value<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let s = self.get(key)?.clone();
        Some(V::from_causal(Causal::from_parts_unchecked(
            s,
            self.0.context().clone(),
        )))
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.0.store().contains_key(key)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V::Store)> {
        self.0.store().iter()
    }

    /// Keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.store().keys()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.store().len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.store().is_empty()
    }

    /// The causal context.
    pub fn context(&self) -> &CausalContext {
        self.0.context()
    }

    /// What a replica that has seen `ctx` lacks (see [`Causal::delta_since`]).
    #[must_use]
    pub fn delta_since(&self, ctx: &CausalContext) -> Self {
        OrMap(self.0.delta_since(ctx))
    }
}

impl<K, V> CausalCrdt for OrMap<K, V>
where
    K: Clone + Ord + Debug,
    V: CausalCrdt,
{
    type Store = DotMap<K, V::Store>;

    fn from_causal(state: Causal<Self::Store>) -> Self {
        OrMap(state)
    }

    fn as_causal(&self) -> &Causal<Self::Store> {
        &self.0
    }

    fn into_causal(self) -> Causal<Self::Store> {
        self.0
    }
}

causal_newtype!([K, V: CausalCrdt] OrMap<K, V> => DotMap<K, V::Store>);

impl<'a, K, V> IntoIterator for &'a OrMap<K, V>
where
    K: Clone + Ord + Debug,
    V: CausalCrdt,
{
    type Item = (&'a K, &'a V::Store);
    type IntoIter = std::collections::btree_map::Iter<'a, K, V::Store>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.store().entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counter::CausalCounter;
    use crate::lattice::Lattice;
    use crate::register::MvRegister;
    use crate::replica::ReplicaId;
    use crate::set::OrSet;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn nested_maps_merge_recursively() {
        let mut a: OrMap<u8, OrMap<u8, MvRegister<u8>>> = OrMap::new();
        let mut b = a.clone();
        let da = a
            .try_update(1, |m| m.try_update(10, |reg| reg.write(r(1), 100)))
            .unwrap();
        let db = b
            .try_update(1, |m| m.try_update(20, |reg| reg.write(r(2), 200)))
            .unwrap();
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        let inner = a.get(&1).unwrap();
        assert_eq!(inner.len(), 2);
        assert_eq!(
            inner.get(&10).unwrap().values().collect::<Vec<_>>(),
            vec![&100]
        );
    }

    #[test]
    fn remove_with_concurrent_update_keeps_only_the_update() {
        let mut a: OrMap<&str, CausalCounter> = OrMap::new();
        let _ = a.try_update("k", |c| c.add(r(1), 5)).unwrap();
        let mut b = a.clone();
        let rm = a.remove(&"k");
        let up = b.try_update("k", |c| c.add(r(2), 2)).unwrap();
        a.join(&up);
        b.join(&rm);
        assert_eq!(a, b);
        assert_eq!(a.get_value(&"k").unwrap().value(), 2);
    }

    #[test]
    fn removed_key_never_resurrects() {
        let mut a: OrMap<&str, OrSet<u8>> = OrMap::new();
        let d1 = a.try_update("k", |s| s.add(r(1), 1)).unwrap();
        let rm = a.remove(&"k");
        let mut b: OrMap<&str, OrSet<u8>> = OrMap::new();
        b.join(&rm);
        b.join(&d1); // late delivery of the add the remove had seen
        assert!(!b.contains_key(&"k"));
        a.join(&b);
        assert!(a.is_empty());
    }

    #[test]
    fn a_closure_that_replaces_the_value_cannot_make_dots_repeat() {
        let mut a: OrMap<u8, OrSet<u8>> = OrMap::new();
        let _ = a.try_update(1, |s| s.add(r(1), 1)).unwrap();
        // The closure throws away the borrowed context.
        let _ = a.update(2, |s| {
            *s = OrSet::new();
            OrSet::new()
        });
        let d = a.try_update(3, |s| s.add(r(1), 3)).unwrap();
        let dot = d.get(&3).unwrap().get(&3).unwrap().next();
        assert_eq!(
            dot.map(|d| d.counter()),
            Some(2),
            "dot 1 must not be reused"
        );
    }
}
