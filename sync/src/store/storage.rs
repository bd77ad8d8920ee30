//! The [`Storage`] trait: where a [`Store`](super::Store) keeps its items.
//!
//! A store's digest tree lives in memory; its items — `(key, value, item
//! hash)` under a [`KeyHash`] — live in a backend. Backends deal in bytes:
//! the key's canonical bytes, the value's canonical encoding and the
//! 16-byte [`ItemHash`]. The store encodes and decodes, so a backend knows
//! nothing of CRDTs, and opening a backend of `N` items rebuilds the tree
//! from `(KeyHash, ItemHash)` pairs alone ([`Storage::scan_items`]),
//! without decoding a value.
//!
//! Items are ordered by `(KeyHash, key bytes)`: the items of a key-hash
//! range (a subtree) are one range scan ([`Storage::scan`]). Items are never
//! removed (a CRDT store only grows).
//!
//! Writes are *staged* ([`Storage::put`]) and made durable by
//! [`Storage::commit`]; until then they are served to readers of this
//! process but would not survive a crash. [`Storage::rollback`] drops what
//! is staged and returns the store to its last commit, reporting each
//! item hash it restored so the store can fix its tree. The in-memory
//! backend ([`MemoryStorage`](super::MemoryStorage)) commits trivially; the
//! redb backend (`RedbStorage`, feature `redb`) writes one transaction.
//!
//! ```
//! use accordant_sync::digest::{ItemHash, KeyHash};
//! use accordant_sync::store::{MemoryStorage, Storage};
//! let mut s = MemoryStorage::default();
//! s.put(KeyHash(7), b"k", None, ItemHash(1), b"v").unwrap();
//! let mut seen = Vec::new();
//! s.scan(0..=u64::MAX, &mut |it| { seen.push((it.key_hash, it.key.to_vec(), it.item, it.value.to_vec())); true }).unwrap();
//! assert_eq!(seen, vec![(KeyHash(7), b"k".to_vec(), ItemHash(1), b"v".to_vec())]);
//! ```

use core::ops::RangeInclusive;

use super::error::StorageError;
use crate::digest::{ItemHash, KeyHash};

/// One stored item, as a scan visits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredItem<'a> {
    /// The key's hash.
    pub key_hash: KeyHash,
    /// The key's canonical bytes.
    pub key: &'a [u8],
    /// The item hash of `(key, value)`.
    pub item: ItemHash,
    /// The value's canonical encoding.
    pub value: &'a [u8],
}

/// One staged change undone by [`Storage::rollback`]: the store puts
/// `restored` back where `current` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undone {
    /// The item's key hash.
    pub key_hash: KeyHash,
    /// The item hash that was staged (and is now gone).
    pub current: ItemHash,
    /// The item hash of the last commit, or `None` if the key was new.
    pub restored: Option<ItemHash>,
}

/// Where a store keeps its items. Object safe: a store holds a
/// `Box<dyn Storage>`.
pub trait Storage: Send + core::fmt::Debug {
    /// Calls `visit` for every
    /// item whose key hash lies in `range`, in `(key hash, key bytes)` order. `visit` returning `false` stops the
    /// scan once every item of the current key hash was visited (so a
    /// caller resuming at the next key hash misses nothing).
    fn scan(
        &self,
        range: RangeInclusive<u64>,
        visit: &mut dyn FnMut(StoredItem<'_>) -> bool,
    ) -> Result<(), StorageError>;

    /// Calls `visit` with the item hash and value encoding of `key` under
    /// `key_hash` if it is stored, and returns whether it is: a point
    /// lookup, which a backend may answer faster than a one-hash
    /// [`Storage::scan`] (the default).
    fn lookup(
        &self,
        key_hash: KeyHash,
        key: &[u8],
        visit: &mut dyn FnMut(ItemHash, &[u8]),
    ) -> Result<bool, StorageError> {
        let mut found = false;
        self.scan(key_hash.0..=key_hash.0, &mut |it| {
            if it.key == key {
                found = true;
                visit(it.item, it.value);
            }
            true
        })?;
        Ok(found)
    }

    /// Every `(key hash, item hash)`, in order, without reading values: what
    /// the store rebuilds its tree from when it opens.
    fn scan_items(&self, visit: &mut dyn FnMut(KeyHash, ItemHash)) -> Result<(), StorageError>;

    /// Stages `value` (with its item hash) under `(key_hash, key)`, where
    /// `old` is the item hash stored there now (`None`: the key is new).
    fn put(
        &mut self,
        key_hash: KeyHash,
        key: &[u8],
        old: Option<ItemHash>,
        item: ItemHash,
        value: &[u8],
    ) -> Result<(), StorageError>;

    /// Number of items (staged ones included).
    fn len(&self) -> u64;

    /// Whether there is no item.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`Storage::commit`] makes writes survive the process (the
    /// node then acknowledges a write only after its commit).
    fn is_durable(&self) -> bool {
        false
    }

    /// Whether writes are staged and not yet committed.
    fn is_dirty(&self) -> bool;

    /// Makes every staged write durable. On error nothing of the staged
    /// writes is durable and they stay staged (a later commit retries them).
    fn commit(&mut self) -> Result<(), StorageError>;

    /// Drops every staged write, returning what each undone item was and
    /// is again.
    fn rollback(&mut self) -> Vec<Undone>;

    /// Bytes of heap this backend holds in memory (items kept in memory,
    /// staged writes, indexes; not a disk cache shared with other stores).
    fn heap_bytes(&self) -> usize;
}
