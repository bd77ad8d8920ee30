//! `Store<K, V>`: keyed CRDT values under an incrementally maintained Merkle
//! digest tree.
//!
//! Every key is placed by its [`KeyHash`] (blake3 of its canonical bytes),
//! and every `(key, value)` item contributes an [`ItemHash`] (blake3 of the
//! key and of the value's canonical encoding) to the [`DigestTree`]. A local
//! write or a join re-encodes the one value it changed and updates one
//! root-to-leaf path: O(value size + tree depth), never a rehash of siblings.
//! Because encodings are canonical, equal stores have equal roots whatever
//! order their writes happened in; [`Store::root_digest`] is what two replicas
//! compare to know they hold the same data (and what a monitor compares to see
//! divergence).
//!
//! Items are kept in key-hash order, so the keys under any tree node (or any
//! finer range of the key-hash space) are one range scan away: the session
//! uses that to list keys of small subtrees and to compute fingerprints
//! below the tree's leaves.
//!
//! ```
//! use accordant::{GCounter, ReplicaId};
//! use accordant_sync::store::Store;
//! let eu = ReplicaId::from_u128(1);
//! let mut a: Store<String, GCounter> = Store::new();
//! let mut b: Store<String, GCounter> = Store::new();
//! let delta = a.update("views".to_string(), |c| c.increment(eu, 1)).unwrap();
//! assert_ne!(a.root_digest(), b.root_digest());
//! b.join("views".to_string(), &delta);
//! assert_eq!(a.root_digest(), b.root_digest());
//! ```

use std::collections::BTreeMap;
use std::ops::Bound;

use accordant::codec::{self, Canonical};
use accordant::{Decompose, Lattice, Summarize};
use serde::de::DeserializeOwned;
use serde::Serialize;
use smallvec::SmallVec;

use crate::digest::{Aggregate, Digest, ItemHash, KeyHash};
use crate::key::key_bytes;
use crate::tree::{DigestTree, NodeId, Resize};

/// What a store key must be: ordered, cloneable, with a canonical encoding
/// (its postcard bytes).
pub trait StoreKey: Ord + Clone + core::fmt::Debug + Serialize + DeserializeOwned {}
impl<T: Ord + Clone + core::fmt::Debug + Serialize + DeserializeOwned> StoreKey for T {}

/// What a store value must be: a CRDT with a canonical encoding, a minimal
/// delta and a summary. Every type of `accordant` is one.
pub trait StoreValue: Lattice + Decompose + Canonical + Summarize + core::fmt::Debug {}
impl<T: Lattice + Decompose + Canonical + Summarize + core::fmt::Debug> StoreValue for T {}

/// A value and the item hash it contributes to the tree.
#[derive(Debug, Clone)]
struct Entry<K, V> {
    key: K,
    value: V,
    item: ItemHash,
}

/// Keyed CRDT values with a Merkle digest tree.
#[derive(Debug, Clone)]
pub struct Store<K, V> {
    /// Items by key hash; a bucket holds more than one key only on a 64-bit
    /// key-hash collision.
    entries: BTreeMap<KeyHash, SmallVec<[Entry<K, V>; 1]>>,
    tree: DigestTree,
    len: usize,
}

impl<K, V> Default for Store<K, V> {
    fn default() -> Self {
        Store {
            entries: BTreeMap::new(),
            tree: DigestTree::new(),
            len: 0,
        }
    }
}

impl<K: StoreKey, V: StoreValue> Store<K, V> {
    /// The empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the store has no key.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        let h = KeyHash::of(&key_bytes(key));
        self.entries
            .get(&h)
            .and_then(|b| b.iter().find(|e| e.key == *key))
            .map(|e| &e.value)
    }

    /// Applies a delta mutator to the value under `key` (bottom if absent)
    /// and returns its delta.
    ///
    /// The mutators of `accordant` change nothing when they fail, so on error
    /// the store is unchanged; a closure of your own that changes the value
    /// and then fails leaves its change in place (the digests stay exact
    /// either way).
    pub fn update<E>(&mut self, key: K, f: impl FnOnce(&mut V) -> Result<V, E>) -> Result<V, E> {
        let kb = key_bytes(&key);
        let kd = Digest::of(&kb);
        let h = KeyHash::from_digest(&kd);
        if let Some(e) = self.entry_mut(h, &key) {
            let result = f(&mut e.value);
            let item = ItemHash::of(&kd, &Digest::of(&codec::encode(&e.value)));
            let old = core::mem::replace(&mut e.item, item);
            if old != item {
                self.tree.replace(h, old, item);
            }
            return result;
        }
        let mut value = V::default();
        let delta = f(&mut value)?;
        if !value.is_bottom() {
            self.insert_new(h, &kd, key, value);
        }
        Ok(delta)
    }

    /// Joins `state` (a delta or a full state) into the value under `key`.
    /// Returns whether the value changed.
    pub fn join(&mut self, key: K, state: &V) -> bool {
        let kb = key_bytes(&key);
        let kd = Digest::of(&kb);
        let h = KeyHash::from_digest(&kd);
        if let Some(e) = self.entry_mut(h, &key) {
            e.value.join(state);
            // Canonical encodings: the value changed iff its item hash did.
            let item = ItemHash::of(&kd, &Digest::of(&codec::encode(&e.value)));
            let old = core::mem::replace(&mut e.item, item);
            if old == item {
                return false;
            }
            self.tree.replace(h, old, item);
            return true;
        }
        if state.is_bottom() {
            return false;
        }
        self.insert_new(h, &kd, key, state.clone());
        true
    }

    fn entry_mut(&mut self, h: KeyHash, key: &K) -> Option<&mut Entry<K, V>> {
        self.entries
            .get_mut(&h)
            .and_then(|b| b.iter_mut().find(|e| e.key == *key))
    }

    /// Inserts an entry (the key must be absent) and its item; `kd` is the
    /// digest of the key's bytes (hashed once per call, for both hashes).
    fn insert_new(&mut self, h: KeyHash, kd: &Digest, key: K, value: V) {
        let item = ItemHash::of(kd, &Digest::of(&codec::encode(&value)));
        self.entries
            .entry(h)
            .or_default()
            .push(Entry { key, value, item });
        self.len += 1;
        let resize = self.tree.insert(h, item);
        self.apply_resize(resize);
    }

    fn apply_resize(&mut self, resize: Resize) {
        if let Resize::Rebuild(depth) = resize {
            let items = self
                .entries
                .iter()
                .flat_map(|(h, b)| b.iter().map(move |e| (*h, e.item)));
            self.tree.rebuild(depth, items);
        }
    }

    /// The aggregate of every item: equal stores have equal roots.
    pub fn root(&self) -> Aggregate {
        self.tree.root()
    }

    /// The full root digest (blake3 of the root aggregate).
    pub fn root_digest(&self) -> Digest {
        self.tree.root().digest()
    }

    /// The digest tree.
    pub fn tree(&self) -> &DigestTree {
        &self.tree
    }

    /// The aggregate of the items under `node`, at any level: from the tree
    /// down to its leaves, by scanning the node's items below them.
    pub fn aggregate(&self, node: NodeId) -> Aggregate {
        match self.tree.node(node) {
            Some(a) => a,
            None => self.items_in(node).map(|(_, _, _, i)| i).collect(),
        }
    }

    /// The items under `node`, in key-hash order.
    pub fn items_in(&self, node: NodeId) -> impl Iterator<Item = (KeyHash, &K, &V, ItemHash)> {
        self.items_in_hashes(node.key_range())
    }

    /// The items whose key hashes lie in `range`, in key-hash order.
    pub fn items_in_hashes(
        &self,
        range: core::ops::RangeInclusive<u64>,
    ) -> impl Iterator<Item = (KeyHash, &K, &V, ItemHash)> {
        self.entries
            .range((
                Bound::Included(KeyHash(*range.start())),
                Bound::Included(KeyHash(*range.end())),
            ))
            .flat_map(|(h, b)| b.iter().map(move |e| (*h, &e.key, &e.value, e.item)))
    }

    /// The entries under one key hash (one, except on a 64-bit collision).
    pub fn items_at(&self, h: KeyHash) -> impl Iterator<Item = (&K, &V, ItemHash)> {
        self.entries
            .get(&h)
            .into_iter()
            .flat_map(|b| b.iter().map(|e| (&e.key, &e.value, e.item)))
    }

    /// Every `(key, value)`, in key-hash order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .values()
            .flat_map(|b| b.iter().map(|e| (&e.key, &e.value)))
    }

    /// Bytes of digest bookkeeping: the tree's arrays plus the key hash and
    /// item hash kept per key (the values and keys themselves excluded).
    pub fn digest_bytes(&self) -> usize {
        self.tree.heap_bytes()
            + self.len * (core::mem::size_of::<KeyHash>() + core::mem::size_of::<ItemHash>())
    }
}

impl<K: StoreKey, V: StoreValue> PartialEq for Store<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self.root() == other.root()
            && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl<K: StoreKey, V: StoreValue> FromIterator<(K, V)> for Store<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut s = Store::new();
        for (k, v) in iter {
            s.join(k, &v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use accordant::{GCounter, OrSet, ReplicaId};

    use super::*;

    fn r(n: u128) -> ReplicaId {
        ReplicaId::from_u128(n)
    }

    #[test]
    fn root_is_independent_of_write_order() {
        let mut a: Store<u32, GCounter> = Store::new();
        let mut b: Store<u32, GCounter> = Store::new();
        let mut deltas = Vec::new();
        for k in 0..500u32 {
            deltas.push((
                k,
                a.update(k, |c| c.increment(r(1), u64::from(k) + 1))
                    .unwrap(),
            ));
        }
        for (k, d) in deltas.iter().rev() {
            b.join(*k, d);
        }
        assert_eq!(a.root_digest(), b.root_digest());
        assert_eq!(a, b);
        assert!(a.tree().depth() >= 1, "500 keys must have grown the tree");
        // One more increment changes the root; joining it in restores equality.
        let d = a.update(7, |c| c.increment(r(2), 1)).unwrap();
        assert_ne!(a.root_digest(), b.root_digest());
        assert!(b.join(7, &d));
        assert!(!b.join(7, &d), "a second join changes nothing");
        assert_eq!(a.root_digest(), b.root_digest());
    }

    #[test]
    fn tree_matches_a_rebuild_from_the_items() {
        let mut s: Store<u32, OrSet<u8>> = Store::new();
        for k in 0..3000u32 {
            let _ = s
                .update(k % 700, |set| set.add(r(1), (k % 7) as u8))
                .unwrap();
            if k % 5 == 0 {
                let _ = s.update(k % 700, |set| Ok::<_, ()>(set.remove(&((k % 7) as u8))));
            }
        }
        let rebuilt = DigestTree::from_items(
            s.entries
                .iter()
                .flat_map(|(h, b)| b.iter().map(move |e| (*h, e.item))),
        );
        assert_eq!(rebuilt.root(), s.root());
        for node in s.tree().descendants_at(NodeId::ROOT, s.tree().depth()) {
            let scanned: Aggregate = s.items_in(node.0).map(|x| x.3).collect();
            assert_eq!(scanned, node.1);
        }
    }

    #[test]
    fn failed_update_changes_nothing() {
        let mut s: Store<u8, GCounter> = Store::new();
        let _ = s.update(1, |c| c.increment(r(1), 5)).unwrap();
        let root = s.root();
        assert!(s.update(1, |c| c.increment(r(1), u64::MAX)).is_err());
        assert!(s.update(2, |_| Err::<GCounter, ()>(())).is_err());
        assert_eq!(s.root(), root);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&1).map(|c| c.value()), Some(5));
    }
}
