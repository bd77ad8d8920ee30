//! [`MemoryStorage`]: a store's items in memory, compactly.
//!
//! One ordered map from the 8-byte [`KeyHash`] to one boxed byte string
//! per key hash, holding the records of the keys under it (one, except on
//! a 64-bit key-hash collision). A record is the 16-byte item hash, the
//! key's canonical bytes and the value's canonical encoding, each length
//! prefixed:
//!
//! ```text
//! record = item hash (16, little-endian) | varint key len | key | varint value len | value
//! ```
//!
//! So a key costs its encoding plus 24 bytes of map slot (the key hash and
//! the box pointer and length) and the map's node slack, whatever the size
//! of the value's Rust type: a 200-byte struct whose encoding is 40 bytes
//! costs 40. The price is a decode on read and an encode on write, which the
//! store pays anyway to hash the value. Writes are durable at once (there
//! is nothing to commit), so [`Storage::rollback`] has nothing to undo.
//!
//! ```
//! use accordant_sync::digest::{ItemHash, KeyHash};
//! use accordant_sync::store::{MemoryStorage, Storage};
//! let mut s = MemoryStorage::default();
//! s.put(KeyHash(1), b"a", None, ItemHash(10), b"x").unwrap();
//! s.put(KeyHash(1), b"b", None, ItemHash(11), b"y").unwrap(); // a collision
//! s.put(KeyHash(1), b"a", Some(ItemHash(10)), ItemHash(12), b"z").unwrap();
//! let mut items = Vec::new();
//! s.scan_items(&mut |h, i| items.push((h, i))).unwrap();
//! assert_eq!(items, vec![(KeyHash(1), ItemHash(12)), (KeyHash(1), ItemHash(11))]);
//! assert_eq!(s.len(), 2);
//! ```

use std::collections::BTreeMap;
use std::ops::{Bound, RangeInclusive};

use super::error::StorageError;
use super::storage::{Storage, StoredItem, Undone};
use crate::digest::{ItemHash, KeyHash};

/// A store's items in memory: one boxed record string per key hash, in
/// an ordered map (see the `store::memory` module docs in the source).
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    buckets: BTreeMap<KeyHash, Box<[u8]>>,
    len: u64,
    bytes: usize,
}

/// One record parsed out of a bucket.
struct Record<'a> {
    item: ItemHash,
    key: &'a [u8],
    value: &'a [u8],
    /// The record's whole span in the bucket.
    end: usize,
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(b: &[u8], at: &mut usize) -> Option<usize> {
    let mut n = 0usize;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        n |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
}

fn take<'a>(b: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(n)?;
    let s = b.get(*at..end)?;
    *at = end;
    Some(s)
}

fn parse(b: &[u8], start: usize) -> Option<Record<'_>> {
    let mut at = start;
    let item = ItemHash(u128::from_le_bytes(take(b, &mut at, 16)?.try_into().ok()?));
    let kl = take_varint(b, &mut at)?;
    let key = take(b, &mut at, kl)?;
    let vl = take_varint(b, &mut at)?;
    let value = take(b, &mut at, vl)?;
    Some(Record {
        item,
        key,
        value,
        end: at,
    })
}

fn records(b: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut at = 0;
    core::iter::from_fn(move || {
        let r = parse(b, at)?;
        at = r.end;
        Some(r)
    })
}

fn write_record(out: &mut Vec<u8>, item: ItemHash, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&item.0.to_le_bytes());
    put_varint(out, key.len());
    out.extend_from_slice(key);
    put_varint(out, value.len());
    out.extend_from_slice(value);
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn scan(
        &self,
        range: RangeInclusive<u64>,
        visit: &mut dyn FnMut(StoredItem<'_>) -> bool,
    ) -> Result<(), StorageError> {
        if range.start() == range.end() {
            // One key hash (a point lookup): no range walk.
            let h = KeyHash(*range.start());
            if let Some(b) = self.buckets.get(&h) {
                // Every record of the one key hash is visited whatever
                // `visit` answers: stopping happens between key hashes.
                for r in records(b) {
                    let _ = visit(StoredItem {
                        key_hash: h,
                        key: r.key,
                        item: r.item,
                        value: r.value,
                    });
                }
            }
            return Ok(());
        }
        let bounds = (
            Bound::Included(KeyHash(*range.start())),
            Bound::Included(KeyHash(*range.end())),
        );
        for (h, b) in self.buckets.range(bounds) {
            let mut go = true;
            for r in records(b) {
                go &= visit(StoredItem {
                    key_hash: *h,
                    key: r.key,
                    item: r.item,
                    value: r.value,
                });
            }
            if !go {
                break;
            }
        }
        Ok(())
    }

    fn scan_items(&self, visit: &mut dyn FnMut(KeyHash, ItemHash)) -> Result<(), StorageError> {
        for (h, b) in &self.buckets {
            for r in records(b) {
                visit(*h, r.item);
            }
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
        // Records stay in key-bytes order within a bucket.
        let Some(slot) = self.buckets.get_mut(&key_hash) else {
            debug_assert!(old.is_none(), "a key the store believes present is absent");
            let mut out = Vec::with_capacity(key.len() + value.len() + 24);
            write_record(&mut out, item, key, value);
            self.bytes += out.len();
            self.len += 1;
            self.buckets.insert(key_hash, out.into_boxed_slice());
            return Ok(());
        };
        let mut out = Vec::with_capacity(slot.len() + value.len() + 32);
        let mut placed = false;
        for r in records(slot) {
            if !placed && r.key >= key {
                write_record(&mut out, item, key, value);
                placed = true;
                if r.key == key {
                    continue;
                }
                self.len += 1;
            }
            write_record(&mut out, r.item, r.key, r.value);
        }
        if !placed {
            debug_assert!(old.is_none(), "a key the store believes present is absent");
            write_record(&mut out, item, key, value);
            self.len += 1;
        }
        self.bytes = self.bytes - slot.len() + out.len();
        *slot = out.into_boxed_slice();
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn is_dirty(&self) -> bool {
        false
    }

    fn commit(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn rollback(&mut self) -> Vec<Undone> {
        Vec::new()
    }

    fn heap_bytes(&self) -> usize {
        // Records, plus one map slot (key hash, box pointer and length) per
        // bucket; the map's node slack is not counted.
        self.bytes + self.buckets.len() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_buckets_and_scans_respect_ranges() {
        let mut s = MemoryStorage::new();
        let big = vec![7u8; 300];
        for h in 0..50u64 {
            s.put(
                KeyHash(h * 10),
                &h.to_le_bytes(),
                None,
                ItemHash(h.into()),
                &big[..h as usize * 6],
            )
            .unwrap();
        }
        // Collision at 100: a second key under the same hash.
        s.put(KeyHash(100), b"other", None, ItemHash(999), b"v")
            .unwrap();
        assert_eq!(s.len(), 51);
        let mut seen = Vec::new();
        s.scan(95..=120, &mut |it| {
            seen.push((it.key_hash.0, it.key.to_vec(), it.item.0, it.value.len()));
            true
        })
        .unwrap();
        // Within a key hash, records are in key-bytes order.
        assert_eq!(
            seen,
            vec![
                (100, 10u64.to_le_bytes().to_vec(), 10, 60),
                (100, b"other".to_vec(), 999, 1),
                (110, 11u64.to_le_bytes().to_vec(), 11, 66),
                (120, 12u64.to_le_bytes().to_vec(), 12, 72),
            ]
        );
        // Stopping keeps the whole key hash.
        let mut n = 0;
        s.scan(0..=u64::MAX, &mut |it| {
            n += 1;
            it.key_hash.0 < 100
        })
        .unwrap();
        assert_eq!(n, 12, "0..=90 (10 items), then both items at 100, and stop");
        // Replacing one record of a collision keeps the other.
        s.put(
            KeyHash(100),
            b"other",
            Some(ItemHash(999)),
            ItemHash(5),
            b"w",
        )
        .unwrap();
        let mut at100 = Vec::new();
        s.scan(100..=100, &mut |it| {
            at100.push((it.key.to_vec(), it.item.0, it.value.to_vec()));
            true
        })
        .unwrap();
        assert_eq!(at100[1], (b"other".to_vec(), 5, b"w".to_vec()));
        assert_eq!(at100[0].2.len(), 60);
        assert_eq!(s.len(), 51);
    }

    #[test]
    fn varints_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 1 << 20, usize::MAX >> 1] {
            let mut b = Vec::new();
            put_varint(&mut b, n);
            let mut at = 0;
            assert_eq!(take_varint(&b, &mut at), Some(n));
            assert_eq!(at, b.len());
        }
        assert_eq!(take_varint(&[0x80], &mut 0), None);
    }
}
