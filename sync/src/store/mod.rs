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
//! # Backends
//!
//! The tree is in memory; the items live in a [`Storage`] backend, as
//! bytes: [`MemoryStorage`] (the default, [`Store::new`]) keeps them in one
//! arena indexed by key-hash buckets (about 37 bytes per key beyond the
//! encodings), and the redb backend (feature `redb`, [`db`]) keeps them
//! on disk with a bounded cache, so a store can outgrow memory. The store
//! encodes values on write and decodes them on read, so reads return owned
//! values ([`Store::get`] gives `Option<V>`). The anti-entropy
//! [`Session`](crate::session::Session) reads through these methods and
//! runs unchanged on either backend.
//!
//! # Errors
//!
//! On disk, reads and writes can fail. [`Store::update`] returns
//! [`UpdateError`]: the mutator's own refusal, or a [`StorageError`] (the
//! in-memory backend never produces one, so `update(..).unwrap()` and
//! `.expect(..)` read as before). Reads and joins keep their infallible
//! signatures, because the session drives them item by item: a read that
//! fails yields nothing and records the error, which
//! [`Store::take_fault`] returns; a transport checks it after every step
//! and fails the session rather than trusting a partial view. Writes are
//! staged in the backend and made durable by [`Store::commit`];
//! [`Store::rollback`] returns the store to its last commit (see
//! [`storage`]).
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

use core::marker::PhantomData;
use core::ops::RangeInclusive;
use std::collections::VecDeque;
use std::sync::Mutex;

use accordant::codec::{self, Canonical, Limits};
use accordant::{Decompose, Lattice, Summarize};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::digest::{Aggregate, Digest, ItemHash, KeyHash};
use crate::key::{decode_key, key_bytes};
use crate::tree::{DigestTree, NodeId, Resize};

#[cfg(feature = "redb")]
pub mod db;
#[cfg(feature = "redb")]
mod degraded;
mod encode;
mod error;
mod memory;
#[cfg(feature = "redb")]
mod redb;
pub mod storage;

#[cfg(feature = "redb")]
pub use self::redb::RedbStorage;
pub use error::{StorageError, UpdateError};
pub use memory::MemoryStorage;
pub use storage::{Storage, StoredItem, Undone};

/// What a store key must be: ordered, cloneable, with a canonical encoding
/// (its postcard bytes).
pub trait StoreKey: Ord + Clone + Serialize + DeserializeOwned {}
impl<T: Ord + Clone + Serialize + DeserializeOwned> StoreKey for T {}

/// What a store value must be: a CRDT with a canonical encoding, a minimal
/// delta and a summary. Every type of `accordant` is one.
pub trait StoreValue: Lattice + Decompose + Canonical + Summarize {}
impl<T: Lattice + Decompose + Canonical + Summarize> StoreValue for T {}

/// Items decoded per batch when iterating a whole range.
const BATCH: usize = 1024;

/// Keyed CRDT values with a Merkle digest tree, over a [`Storage`] backend.
pub struct Store<K, V> {
    storage: Box<dyn Storage>,
    tree: DigestTree,
    /// The first read error since the last [`Store::take_fault`].
    fault: Mutex<Option<StorageError>>,
    /// Bounds for decoding stored values: none for the in-memory backend
    /// (it holds only what this store encoded), the defaults on disk.
    limits: Limits,
    /// Buffers the write path reuses: the key's bytes, the value's
    /// encoding.
    scratch: Scratch,
    _kv: PhantomData<fn() -> (K, V)>,
}

/// A store's reused write buffers.
#[derive(Default)]
struct Scratch {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A scratch buffer that grew past this is dropped after use rather than
/// kept (one huge value does not pin its size in every store).
const SCRATCH_KEPT: usize = 64 << 10;

impl Scratch {
    fn heap_bytes(&self) -> usize {
        self.key.capacity() + self.value.capacity()
    }
}

fn give_back(slot: &mut Vec<u8>, mut buf: Vec<u8>) {
    if buf.capacity() > SCRATCH_KEPT {
        buf = Vec::new();
    }
    *slot = buf;
}

/// Decodes a stored value encoding.
fn decode_stored<V: StoreValue>(bytes: &[u8], limits: &Limits) -> Result<V, StorageError> {
    codec::decode(bytes, limits)
        .map_err(|e| StorageError::Corrupt(format!("stored value does not decode: {e}")))
}

impl<K, V> Default for Store<K, V> {
    fn default() -> Self {
        Store {
            storage: Box::new(MemoryStorage::new()),
            tree: DigestTree::new(),
            fault: Mutex::new(None),
            limits: Limits::unlimited(),
            scratch: Scratch::default(),
            _kv: PhantomData,
        }
    }
}

impl<K, V> core::fmt::Debug for Store<K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.storage.len())
            .field("tree", &self.tree)
            .field("storage", &self.storage)
            .finish()
    }
}

impl<K, V> Store<K, V> {
    fn record(&self, e: StorageError) {
        let mut f = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
    }

    /// The first read or join error since the last call, if any: reads that
    /// failed returned nothing, joins that failed changed nothing. The
    /// in-memory backend never records one.
    pub fn take_fault(&self) -> Option<StorageError> {
        self.fault.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// An in-memory copy of every item (of a store on disk too).
    pub fn to_memory(&self) -> Store<K, V> {
        let mut copy = Store::default();
        let mut storage = MemoryStorage::with_capacity(self.storage.len());
        let mut next = Some(0u64);
        while let Some(lo) = next {
            let mut last = None;
            let mut n = 0usize;
            let r = self.storage.scan(lo..=u64::MAX, &mut |it| {
                let _ = storage.put(it.key_hash, it.key, None, it.item, it.value);
                last = Some(it.key_hash.0);
                n += 1;
                n < BATCH * 64
            });
            if let Err(e) = r {
                self.record(e);
                break;
            }
            next = match last {
                Some(h) if n >= BATCH * 64 => h.checked_add(1),
                _ => None,
            };
        }
        copy.storage = Box::new(storage);
        copy.tree = self.tree.clone();
        copy
    }
}

impl<K: StoreKey, V: StoreValue> Store<K, V> {
    /// The empty in-memory store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store over `storage`, whatever it holds: the tree is rebuilt from
    /// the stored `(key hash, item hash)` pairs, without decoding a value.
    pub fn with_storage(storage: Box<dyn Storage>) -> Result<Self, StorageError> {
        let mut s = Store {
            storage,
            tree: DigestTree::new(),
            fault: Mutex::new(None),
            limits: Limits::default(),
            scratch: Scratch::default(),
            _kv: PhantomData,
        };
        s.rebuild_tree(DigestTree::wanted_depth(s.storage.len()))?;
        Ok(s)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        usize::try_from(self.storage.len()).unwrap_or(usize::MAX)
    }

    /// Whether the store has no key.
    pub fn is_empty(&self) -> bool {
        self.storage.is_empty()
    }

    /// The value under `key` (`None` if absent, or unreadable: see
    /// [`Store::take_fault`]).
    ///
    /// Like `BTreeMap::get`, it takes any borrowed form of the key
    /// (`store.get("apple")` on a `Store<String, _>`). Keys are found by
    /// their postcard encoding, so the borrowed form must serialise exactly
    /// as the key does, as `str` does for `String`, `[u8]` for `Vec<u8>` and
    /// `T` for `Box<T>`.
    ///
    /// ```
    /// use accordant::{MvRegister, ReplicaId};
    /// use accordant_sync::Store;
    ///
    /// let mut store: Store<String, MvRegister<u32>> = Store::new();
    /// store.update("apple".to_string(), |v| v.write(ReplicaId::random(), 3)).unwrap();
    /// let apple = store.get("apple").unwrap();
    /// assert_eq!(apple.values().collect::<Vec<_>>(), [&3]);
    /// assert!(store.get("pear").is_none());
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: core::borrow::Borrow<Q>,
        Q: Serialize + ?Sized,
    {
        let kb = key_bytes(key);
        let mut value = None;
        let limits = self.limits;
        let found = self.storage.lookup(KeyHash::of(&kb), &kb, &mut |_, bytes| {
            value = Some(decode_stored(bytes, &limits));
        });
        match found.and_then(|_| value.transpose()) {
            Ok(v) => v,
            Err(e) => {
                self.record(e);
                None
            }
        }
    }

    /// Applies a delta mutator to the value under `key` (bottom if absent)
    /// and returns its delta.
    ///
    /// The mutator runs on a copy: if it fails, the store is unchanged. The
    /// in-memory backend never fails otherwise; on disk, a value that cannot
    /// be read fails the update with [`UpdateError::Storage`], and nothing
    /// changes.
    pub fn update<E>(
        &mut self,
        key: K,
        f: impl FnOnce(&mut V) -> Result<V, E>,
    ) -> Result<V, UpdateError<E>> {
        let mut kb = core::mem::take(&mut self.scratch.key);
        encode::key_into(&key, &mut kb);
        let r = self.update_at(&kb, f);
        give_back(&mut self.scratch.key, kb);
        r
    }

    fn update_at<E>(
        &mut self,
        kb: &[u8],
        f: impl FnOnce(&mut V) -> Result<V, E>,
    ) -> Result<V, UpdateError<E>> {
        let kd = Digest::of(kb);
        let h = KeyHash::from_digest(&kd);
        let (old, stored) = self.read(h, kb).map_err(UpdateError::Storage)?;
        let mut value = match stored {
            Some(v) => v.map_err(UpdateError::Storage)?,
            None => V::default(),
        };
        let delta = f(&mut value).map_err(UpdateError::Rejected)?;
        if old.is_some() || !value.is_bottom() {
            self.write_item(h, &kd, kb, old, &value)
                .map_err(UpdateError::Storage)?;
        }
        Ok(delta)
    }

    /// Joins `state` (a delta or a full state) into the value under `key`.
    /// Returns whether the value changed. A value that cannot be read or
    /// written is left alone and the error recorded ([`Store::take_fault`]).
    pub fn join(&mut self, key: K, state: &V) -> bool {
        let mut kb = core::mem::take(&mut self.scratch.key);
        encode::key_into(&key, &mut kb);
        let r = self.join_at(&kb, state);
        give_back(&mut self.scratch.key, kb);
        r.unwrap_or_else(|e| {
            self.record(e);
            false
        })
    }

    fn join_at(&mut self, kb: &[u8], state: &V) -> Result<bool, StorageError> {
        let kd = Digest::of(kb);
        let h = KeyHash::from_digest(&kd);
        let (old, value) = match self.read(h, kb)? {
            (old, Some(v)) => {
                let mut v = v?;
                v.join(state);
                (old, v)
            }
            (_, None) if state.is_bottom() => return Ok(false),
            (old, None) => (old, state.clone()),
        };
        self.write_item(h, &kd, kb, old, &value)
    }

    /// The stored item hash and decoded value of `kb` (under `h`), decoded
    /// straight from the backend's bytes.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        h: KeyHash,
        kb: &[u8],
    ) -> Result<(Option<ItemHash>, Option<Result<V, StorageError>>), StorageError> {
        let mut old = None;
        let mut value = None;
        let limits = self.limits;
        self.storage.lookup(h, kb, &mut |item, bytes| {
            old = Some(item);
            value = Some(decode_stored(bytes, &limits));
        })?;
        Ok((old, value))
    }

    /// Stores `value` under the key and changes its item in the tree: the
    /// one place where an item's hash is set. Returns whether it changed
    /// (canonical encodings: the value changed iff its item hash did).
    fn write_item(
        &mut self,
        h: KeyHash,
        kd: &Digest,
        kb: &[u8],
        old: Option<ItemHash>,
        value: &V,
    ) -> Result<bool, StorageError> {
        let mut enc = core::mem::take(&mut self.scratch.value);
        encode::value_into(value, &mut enc);
        let item = ItemHash::of(kd, &Digest::of(&enc));
        let r = if old == Some(item) {
            Ok(false)
        } else {
            self.storage
                .put(h, kb, old, item, &enc)
                .and_then(|()| self.tree_change(h, old, Some(item)))
                .map(|()| true)
        };
        give_back(&mut self.scratch.value, enc);
        r
    }

    /// Moves the tree from `old` to `new` under `h` (either may be absent),
    /// rebuilding it when its depth no longer suits the item count.
    fn tree_change(
        &mut self,
        h: KeyHash,
        old: Option<ItemHash>,
        new: Option<ItemHash>,
    ) -> Result<(), StorageError> {
        let resize = match (old, new) {
            (Some(o), Some(n)) => {
                self.tree.replace(h, o, n);
                Resize::Keep
            }
            (None, Some(n)) => self.tree.insert(h, n),
            (Some(o), None) => self.tree.remove(h, o),
            (None, None) => Resize::Keep,
        };
        match resize {
            Resize::Rebuild(depth) => self.rebuild_tree(depth),
            Resize::Keep => Ok(()),
        }
    }

    /// Rebuilds the tree at `depth` from the stored items: the one place
    /// where the tree is rebuilt.
    fn rebuild_tree(&mut self, depth: u8) -> Result<(), StorageError> {
        let mut tree = DigestTree::with_depth(depth);
        self.storage.scan_items(&mut |h, i| {
            let _ = tree.insert(h, i);
        })?;
        self.tree = tree;
        Ok(())
    }

    fn decode_value(&self, bytes: &[u8]) -> Option<V> {
        decode_stored(bytes, &self.limits)
            .map_err(|e| self.record(e))
            .ok()
    }

    fn decode_item(&self, kb: &[u8], vb: &[u8]) -> Option<(K, V)> {
        let k = decode_key(kb, &self.limits)
            .map_err(|e| {
                self.record(StorageError::Corrupt(format!(
                    "stored key does not decode: {e}"
                )))
            })
            .ok()?;
        Some((k, self.decode_value(vb)?))
    }

    /// Whether the backend keeps writes across a restart once committed.
    pub fn is_durable(&self) -> bool {
        self.storage.is_durable()
    }

    /// Whether writes are staged in the backend and not yet committed.
    pub fn is_dirty(&self) -> bool {
        self.storage.is_dirty()
    }

    /// Makes every staged write durable (a no-op in memory). On error the
    /// writes stay staged and visible; [`Store::rollback`] drops them.
    pub fn commit(&mut self) -> Result<(), StorageError> {
        self.storage.commit()
    }

    /// Drops every staged write: the store returns to its last commit, its
    /// tree included. Returns how many items were undone.
    pub fn rollback(&mut self) -> usize {
        let undone = self.storage.rollback();
        let n = undone.len();
        for u in undone {
            if let Err(e) = self.tree_change(u.key_hash, Some(u.current), u.restored) {
                self.record(e);
            }
        }
        n
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
    /// down to its leaves, by scanning the node's items below them (item
    /// hashes only: nothing is decoded).
    pub fn aggregate(&self, node: NodeId) -> Aggregate {
        match self.tree.node(node) {
            Some(a) => a,
            None => {
                let mut agg = Aggregate::EMPTY;
                let r = self.storage.scan(node.key_range(), &mut |it| {
                    agg.add(it.item);
                    true
                });
                if let Err(e) = r {
                    self.record(e);
                }
                agg
            }
        }
    }

    /// The items under `node`, in key-hash order.
    pub fn items_in(&self, node: NodeId) -> Items<'_, K, V> {
        self.items_in_hashes(node.key_range())
    }

    /// The items whose key hashes lie in `range`, in key-hash order,
    /// decoded in batches.
    pub fn items_in_hashes(&self, range: RangeInclusive<u64>) -> Items<'_, K, V> {
        Items {
            store: self,
            next: Some(*range.start()),
            end: *range.end(),
            buf: VecDeque::new(),
        }
    }

    /// The entries under one key hash (one, except on a 64-bit collision).
    pub fn items_at(&self, h: KeyHash) -> impl Iterator<Item = (K, V, ItemHash)> + '_ {
        self.items_in_hashes(h.0..=h.0)
            .map(|(_, k, v, i)| (k, v, i))
    }

    /// Every `(key, value)`, in key-hash order.
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.items_in_hashes(0..=u64::MAX)
            .map(|(_, k, v, _)| (k, v))
    }

    /// Bytes of digest bookkeeping: the tree's arrays plus the key hash and
    /// item hash kept per key (the values and keys themselves excluded).
    pub fn digest_bytes(&self) -> usize {
        self.tree.heap_bytes()
            + self.len() * (core::mem::size_of::<KeyHash>() + core::mem::size_of::<ItemHash>())
    }

    /// Bytes of heap the store holds in memory: the tree, what the backend
    /// keeps in memory (see [`Storage::heap_bytes`]) and the write path's
    /// reused buffers.
    pub fn heap_bytes(&self) -> usize {
        self.tree.heap_bytes() + self.storage.heap_bytes() + self.scratch.heap_bytes()
    }
}

/// The items of a key-hash range, decoded in batches: `(key hash, key,
/// value, item hash)`. Items that fail to decode are skipped and recorded
/// ([`Store::take_fault`]).
pub struct Items<'a, K, V> {
    store: &'a Store<K, V>,
    next: Option<u64>,
    end: u64,
    buf: VecDeque<(KeyHash, K, V, ItemHash)>,
}

impl<K: StoreKey, V: StoreValue> Iterator for Items<'_, K, V> {
    type Item = (KeyHash, K, V, ItemHash);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.buf.pop_front() {
                return Some(x);
            }
            let lo = self.next.filter(|lo| *lo <= self.end)?;
            let store = self.store;
            let buf = &mut self.buf;
            let mut last = None;
            let mut n = 0usize;
            let r = store.storage.scan(lo..=self.end, &mut |it| {
                if let Some((k, v)) = store.decode_item(it.key, it.value) {
                    buf.push_back((it.key_hash, k, v, it.item));
                }
                last = Some(it.key_hash.0);
                n += 1;
                n < BATCH
            });
            if let Err(e) = r {
                store.record(e);
                self.next = None;
                continue;
            }
            self.next = match last {
                Some(h) if n >= BATCH => h.checked_add(1),
                _ => None,
            };
        }
    }
}

impl<K, V> Clone for Store<K, V> {
    /// An in-memory copy ([`Store::to_memory`]).
    fn clone(&self) -> Self {
        self.to_memory()
    }
}

impl<K: StoreKey, V: StoreValue> PartialEq for Store<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
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
        let mut items = Vec::new();
        s.storage
            .scan_items(&mut |h, i| items.push((h, i)))
            .unwrap();
        let rebuilt = DigestTree::from_items(items);
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
        assert!(matches!(
            s.update(2, |_| Err::<GCounter, ()>(())),
            Err(UpdateError::Rejected(()))
        ));
        assert_eq!(s.root(), root);
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&1).map(|c| c.value()), Some(5));
    }
}
