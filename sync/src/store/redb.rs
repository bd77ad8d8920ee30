//! [`RedbStorage`]: a store's items on disk, in the node's redb file
//! (feature `redb`).
//!
//! Each store has two tables, keyed by the composite key `key hash
//! (8 bytes, big-endian) | key bytes`, so the items of a key-hash range
//! are one range scan in `(key hash, key bytes)` order:
//!
//! - `items:<name>` maps it to `item hash (16, little-endian) | value
//!   encoding`: what reads and the session's scans use;
//! - `index:<name>` maps it to the item hash alone: what opening the store
//!   scans to rebuild its tree, without touching a value.
//!
//! Writes are staged in an ordered map (served to readers, merged into
//! scans) until [`Storage::commit`] writes them and the store's item count
//! in one transaction. Memory holds the staged writes and redb's bounded
//! page cache; values stay on disk.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeInclusive};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::db::{from_redb, StoreDb, META};
use super::error::StorageError;
use super::storage::{Storage, StoredItem, Undone};
use crate::digest::{ItemHash, KeyHash};

/// A committed item as read from the file.
struct Committed<'a> {
    composite: &'a [u8],
    item: ItemHash,
    value: &'a [u8],
}

/// A staged write.
#[derive(Debug)]
struct Staged {
    item: ItemHash,
    value: Box<[u8]>,
    /// The committed item hash (`None`: the key is new since the commit).
    before: Option<ItemHash>,
}

/// A store's items in a redb file: two tables per store keyed by key hash
/// and key bytes (items with their values; item hashes alone), and the
/// writes staged until [`Storage::commit`].
#[derive(Debug)]
pub struct RedbStorage {
    db: StoreDb,
    items: String,
    index: String,
    count_key: String,
    staged: BTreeMap<Vec<u8>, Staged>,
    staged_bytes: usize,
    committed_len: u64,
    len: u64,
}

fn composite(h: KeyHash, key: &[u8]) -> Vec<u8> {
    let mut c = Vec::with_capacity(8 + key.len());
    c.extend_from_slice(&h.0.to_be_bytes());
    c.extend_from_slice(key);
    c
}

fn split(c: &[u8]) -> Result<(KeyHash, &[u8]), StorageError> {
    let (h, k) = c
        .split_first_chunk::<8>()
        .ok_or_else(|| StorageError::Corrupt("stored key shorter than its key hash".into()))?;
    Ok((KeyHash(u64::from_be_bytes(*h)), k))
}

fn item_of(b: &[u8]) -> Result<(ItemHash, &[u8]), StorageError> {
    let (i, v) = b
        .split_first_chunk::<16>()
        .ok_or_else(|| StorageError::Corrupt("stored item shorter than its item hash".into()))?;
    Ok((ItemHash(u128::from_le_bytes(*i)), v))
}

/// The composite-key bounds of a key-hash range.
fn bounds(range: &RangeInclusive<u64>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let lo = Bound::Included(range.start().to_be_bytes().to_vec());
    let hi = match range.end().checked_add(1) {
        Some(next) => Bound::Excluded(next.to_be_bytes().to_vec()),
        None => Bound::Unbounded,
    };
    (lo, hi)
}

impl RedbStorage {
    /// The store `name` of `db` (use [`StoreDb::store`], which checks its
    /// types first).
    pub(crate) fn open(db: StoreDb, name: &str) -> Result<Self, StorageError> {
        let count_key = format!("count:{name}");
        let len = db.with_db(false, |d| {
            let tx = d.begin_read().map_err(from_redb)?;
            let meta = tx.open_table(META).map_err(from_redb)?;
            let v = meta.get(count_key.as_str()).map_err(from_redb)?;
            match v {
                None => Ok(0),
                Some(b) => <[u8; 8]>::try_from(b.value())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StorageError::Corrupt("malformed item count".into())),
            }
        })?;
        Ok(RedbStorage {
            db,
            items: format!("items:{name}"),
            index: format!("index:{name}"),
            count_key,
            staged: BTreeMap::new(),
            staged_bytes: 0,
            committed_len: len,
            len,
        })
    }

    fn items_def(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.items)
    }

    fn index_def(&self) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
        TableDefinition::new(&self.index)
    }

    /// Calls `f(composite key, item hash, value)` for every committed item
    /// in `range` until it returns `false`.
    fn scan_committed(
        &self,
        range: &RangeInclusive<u64>,
        f: &mut dyn FnMut(Committed<'_>) -> Result<bool, StorageError>,
    ) -> Result<(), StorageError> {
        if self.committed_len == 0 {
            return Ok(());
        }
        let (lo, hi) = bounds(range);
        self.db.with_db(false, |d| {
            let tx = d.begin_read().map_err(from_redb)?;
            let table = match tx.open_table(self.items_def()) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                Err(e) => return Err(from_redb(e)),
            };
            let lo_ref = match &lo {
                Bound::Included(v) => Bound::Included(v.as_slice()),
                _ => Bound::Unbounded,
            };
            let hi_ref = match &hi {
                Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
                _ => Bound::Unbounded,
            };
            for e in table.range::<&[u8]>((lo_ref, hi_ref)).map_err(from_redb)? {
                let (k, v) = e.map_err(from_redb)?;
                let (item, value) = item_of(v.value())?;
                if !f(Committed {
                    composite: k.value(),
                    item,
                    value,
                })? {
                    break;
                }
            }
            Ok(())
        })
    }
}

impl Storage for RedbStorage {
    fn scan(
        &self,
        range: RangeInclusive<u64>,
        visit: &mut dyn FnMut(StoredItem<'_>) -> bool,
    ) -> Result<(), StorageError> {
        // Merge the committed items with the staged ones (a staged write
        // shadows its committed version), in composite-key order.
        let (lo, hi) = bounds(&range);
        let mut staged = self.staged.range((lo, hi)).peekable();
        let mut stop_after: Option<KeyHash> = None;
        let done = core::cell::Cell::new(false);
        let mut emit = |c: &[u8], item: ItemHash, value: &[u8]| -> Result<bool, StorageError> {
            let (h, k) = split(c)?;
            if let Some(s) = stop_after {
                if s != h {
                    done.set(true);
                    return Ok(false);
                }
            }
            let it = StoredItem {
                key_hash: h,
                key: k,
                item,
                value,
            };
            if !visit(it) && stop_after.is_none() {
                stop_after = Some(h);
            }
            Ok(true)
        };
        self.scan_committed(&range, &mut |Committed {
                                              composite: c,
                                              item,
                                              value,
                                          }| {
            while let Some((sk, s)) = staged.next_if(|(sk, _)| sk.as_slice() <= c) {
                let shadows = sk.as_slice() == c;
                if !emit(sk, s.item, &s.value)? {
                    return Ok(false);
                }
                if shadows {
                    return Ok(true);
                }
            }
            emit(c, item, value)
        })?;
        if !done.get() {
            for (sk, s) in staged {
                if !emit(sk, s.item, &s.value)? {
                    break;
                }
            }
        }
        Ok(())
    }

    fn scan_items(&self, visit: &mut dyn FnMut(KeyHash, ItemHash)) -> Result<(), StorageError> {
        let mut staged = self.staged.iter().peekable();
        if self.committed_len > 0 {
            self.db.with_db(false, |d| {
                let tx = d.begin_read().map_err(from_redb)?;
                let table = match tx.open_table(self.index_def()) {
                    Ok(t) => t,
                    Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
                    Err(e) => return Err(from_redb(e)),
                };
                for e in table.iter().map_err(from_redb)? {
                    let (k, v) = e.map_err(from_redb)?;
                    let c = k.value();
                    let mut shadowed = false;
                    while let Some((sk, s)) = staged.next_if(|(sk, _)| sk.as_slice() <= c) {
                        shadowed |= sk.as_slice() == c;
                        visit(split(sk)?.0, s.item);
                    }
                    if !shadowed {
                        let (item, _) = item_of(v.value())?;
                        visit(split(c)?.0, item);
                    }
                }
                Ok(())
            })?;
        }
        for (sk, s) in staged {
            visit(split(sk)?.0, s.item);
        }
        Ok(())
    }

    fn put(
        &mut self,
        key_hash: KeyHash,
        key: &[u8],
        old: Option<ItemHash>,
        item: ItemHash,
        value: &[u8],
    ) -> Result<(), StorageError> {
        let c = composite(key_hash, key);
        match self.staged.get_mut(&c) {
            Some(s) => {
                self.staged_bytes = self.staged_bytes - s.value.len() + value.len();
                s.item = item;
                s.value = value.into();
            }
            None => {
                if old.is_none() {
                    self.len += 1;
                }
                self.staged_bytes += c.len() + value.len() + 64;
                self.staged.insert(
                    c,
                    Staged {
                        item,
                        value: value.into(),
                        before: old,
                    },
                );
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn is_durable(&self) -> bool {
        true
    }

    fn is_dirty(&self) -> bool {
        !self.staged.is_empty()
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let durability = self.db.durability();
        self.db.with_db(true, |d| {
            let mut tx = d.begin_write().map_err(from_redb)?;
            tx.set_durability(durability).map_err(from_redb)?;
            {
                let mut items = tx.open_table(self.items_def()).map_err(from_redb)?;
                let mut index = tx.open_table(self.index_def()).map_err(from_redb)?;
                let mut buf = Vec::new();
                for (c, s) in &self.staged {
                    buf.clear();
                    buf.extend_from_slice(&s.item.0.to_le_bytes());
                    buf.extend_from_slice(&s.value);
                    items
                        .insert(c.as_slice(), buf.as_slice())
                        .map_err(from_redb)?;
                    index
                        .insert(c.as_slice(), &s.item.0.to_le_bytes()[..])
                        .map_err(from_redb)?;
                }
                let mut meta = tx.open_table(META).map_err(from_redb)?;
                meta.insert(self.count_key.as_str(), &self.len.to_be_bytes()[..])
                    .map_err(from_redb)?;
            }
            tx.commit().map_err(from_redb)
        })?;
        self.staged.clear();
        self.staged_bytes = 0;
        self.committed_len = self.len;
        Ok(())
    }

    fn rollback(&mut self) -> Vec<Undone> {
        let undone = self
            .staged
            .iter()
            .map(|(c, s)| Undone {
                key_hash: split(c).map(|(h, _)| h).unwrap_or(KeyHash(0)),
                current: s.item,
                restored: s.before,
            })
            .collect();
        self.staged.clear();
        self.staged_bytes = 0;
        self.len = self.committed_len;
        undone
    }

    fn heap_bytes(&self) -> usize {
        self.staged_bytes
    }
}

#[cfg(test)]
mod tests {
    use accordant::{GCounter, ReplicaId};

    use super::super::db::{DbOptions, Fsync, NodeIdentity, StoreDb};
    use super::super::{MemoryStorage, Store};
    use super::*;

    fn db() -> StoreDb {
        let backend = redb::backends::InMemoryBackend::new();
        let opts = DbOptions::default().with_fsync(Fsync::Off);
        StoreDb::open_with_backend(backend, &NodeIdentity::new("t", 1), opts).unwrap()
    }

    fn all(s: &dyn Storage, range: RangeInclusive<u64>) -> Vec<(u64, Vec<u8>, u128, Vec<u8>)> {
        let mut v = Vec::new();
        s.scan(range, &mut |it| {
            v.push((it.key_hash.0, it.key.to_vec(), it.item.0, it.value.to_vec()));
            true
        })
        .unwrap();
        v
    }

    #[test]
    fn scans_merge_staged_and_committed_items_like_the_memory_backend() {
        let db = db();
        let mut disk = RedbStorage::open(db.clone(), "s").unwrap();
        let mut mem = MemoryStorage::new();
        let mut x = 1u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x
        };
        let mut items: Vec<(u64, Vec<u8>, Option<u128>)> = Vec::new();
        for round in 0..6 {
            for _ in 0..200 {
                let (h, key, old) = if !items.is_empty() && next() % 3 == 0 {
                    let i = (next() % items.len() as u64) as usize;
                    (items[i].0, items[i].1.clone(), items[i].2)
                } else {
                    // Few distinct hashes: collisions and shared prefixes.
                    (
                        next() % 64,
                        next().to_le_bytes()[..(next() % 8) as usize].to_vec(),
                        None,
                    )
                };
                if old.is_none() && items.iter().any(|(ih, ik, _)| *ih == h && *ik == key) {
                    continue;
                }
                let item = u128::from(next());
                let value = vec![round as u8; (next() % 50) as usize];
                disk.put(KeyHash(h), &key, old.map(ItemHash), ItemHash(item), &value)
                    .unwrap();
                mem.put(KeyHash(h), &key, old.map(ItemHash), ItemHash(item), &value)
                    .unwrap();
                match items.iter_mut().find(|(ih, ik, _)| *ih == h && *ik == key) {
                    Some(e) => e.2 = Some(item),
                    None => items.push((h, key, Some(item))),
                }
            }
            if round % 2 == 0 {
                disk.commit().unwrap();
            }
            for range in [0..=u64::MAX, 10..=20, 63..=63, 5..=5] {
                assert_eq!(all(&disk, range.clone()), all(&mem, range), "round {round}");
            }
            assert_eq!(disk.len(), mem.len());
            let mut a = Vec::new();
            disk.scan_items(&mut |h, i| a.push((h, i))).unwrap();
            let mut b = Vec::new();
            mem.scan_items(&mut |h, i| b.push((h, i))).unwrap();
            assert_eq!(a, b);
        }
    }

    #[test]
    fn rollback_returns_to_the_last_commit_and_the_tree_follows() {
        let db = db();
        let r = ReplicaId::from_u128(1);
        let mut s: Store<String, GCounter> = db.store("c").unwrap();
        for i in 0..100 {
            let _ = s.update(format!("k{i}"), |c| c.increment(r, 1)).unwrap();
        }
        s.commit().unwrap();
        let committed = s.root();
        for i in 50..150 {
            let _ = s.update(format!("k{i}"), |c| c.increment(r, 1)).unwrap();
        }
        assert!(s.is_dirty());
        assert_ne!(s.root(), committed);
        assert_eq!(s.rollback(), 100);
        assert_eq!(s.root(), committed);
        assert_eq!(s.len(), 100);
        assert_eq!(s.get("k120"), None);
        assert_eq!(s.get("k60").map(|c| c.value()), Some(1));
        // Reopened, the store rebuilds the same tree from the item hashes.
        drop(s);
        let again: Store<String, GCounter> = db.store("c").unwrap();
        assert_eq!(again.root(), committed);
        assert_eq!(again.len(), 100);
    }
}
