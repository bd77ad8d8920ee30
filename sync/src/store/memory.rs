//! [`MemoryStorage`]: a store's items in memory, compactly.
//!
//! Two parts, sized for millions of keys:
//!
//! - an **arena**, one growing byte vector holding one record per key: the
//!   16-byte item hash, the key's canonical bytes and the value's
//!   canonical encoding, each length prefixed, with no allocation (and no
//!   allocator header) of its own:
//!
//!   ```text
//!   record = item hash (16, little-endian) | varint key len | key | varint value len | value
//!   ```
//!
//! - an **index** of 16-byte slots `(key hash, arena offset)`, cut into
//!   buckets by the top bits of the key hash (a radix partition of the
//!   key-hash space, like the digest tree's), each bucket a small vector
//!   sorted by `(key hash, key bytes)`. A lookup is one bucket index and a
//!   binary search among a few dozen slots; a key-hash range (a subtree of
//!   the digest tree) is a run of consecutive buckets, so the session's
//!   range scans stay in key-hash order. Buckets average at most 32
//!   slots: past that, each splits in four (`O(n)`,
//!   amortised over the fourfold growth between splits). A bucket grows by a
//!   quarter of its length, so its spare capacity stays small.
//!
//! A write whose record is no longer than the one it replaces (a register
//! rewritten with a value of the same size, a counter whose encoding did
//! not grow) is written in place; a longer one is appended and the old
//! record becomes garbage. Once garbage passes a quarter of the arena, the
//! arena is compacted, rewritten in key-hash order (`O(bytes)`, amortised
//! over the garbage that triggered it).
//!
//! So a key costs its record (its encodings plus about 19 bytes) and about
//! 18 bytes of index, whatever the size of the value's Rust type: a
//! 200-byte struct whose encoding is 40 bytes costs 40. The price is a
//! decode on read and an encode on write, which the store pays anyway to
//! hash the value. Writes are durable at once (there is nothing to commit),
//! so [`Storage::rollback`] has nothing to undo.
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
//! let mut value = Vec::new();
//! assert!(s.lookup(KeyHash(1), b"b", &mut |_, v| value = v.to_vec()).unwrap());
//! assert_eq!(value, b"y");
//! ```

use core::ops::RangeInclusive;

use super::error::StorageError;
use super::storage::{Storage, StoredItem, Undone};
use crate::digest::{ItemHash, KeyHash};

/// Buckets average at most this many slots; past it, each splits in four.
const MAX_BUCKET_AVERAGE: u64 = 32;

/// Garbage is collected once it passes `1 / GARBAGE_SHARE` of the arena
/// (and [`MIN_COMPACT`] bytes).
const GARBAGE_SHARE: usize = 4;

/// No compaction below this much garbage.
const MIN_COMPACT: usize = 4096;

/// A store's items in memory: records in one arena, indexed by key hash
/// in sorted buckets (see the `store::memory` module docs in the source).
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    /// Bucket of a key hash: its top `bits` bits.
    bits: u32,
    buckets: Vec<Vec<Slot>>,
    arena: Vec<u8>,
    /// Arena bytes no slot points to (replaced records, shrunk tails).
    garbage: usize,
    len: u64,
    /// Slots allocated across the buckets (their capacities).
    slot_capacity: usize,
}

/// One key's place: its key hash and where its record starts.
#[derive(Debug, Clone, Copy)]
struct Slot {
    key_hash: u64,
    at: u64,
}

/// One record parsed out of the arena.
struct Record<'a> {
    item: ItemHash,
    key: &'a [u8],
    value: &'a [u8],
    /// The record's length in the arena.
    len: usize,
}

fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
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
        len: at - start,
    })
}

fn record_len(key: &[u8], value: &[u8]) -> usize {
    16 + varint_len(key.len()) + key.len() + varint_len(value.len()) + value.len()
}

fn write_record(out: &mut Vec<u8>, item: ItemHash, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&item.0.to_le_bytes());
    put_varint(out, key.len());
    out.extend_from_slice(key);
    put_varint(out, value.len());
    out.extend_from_slice(value);
}

/// Writes a record over `out` (exactly `record_len(key, value)` bytes).
fn overwrite_record(out: &mut [u8], item: ItemHash, key: &[u8], value: &[u8]) {
    fn put(w: &mut &mut [u8], bytes: &[u8]) {
        let (head, tail) = core::mem::take(w).split_at_mut(bytes.len());
        head.copy_from_slice(bytes);
        *w = tail;
    }
    fn put_var(w: &mut &mut [u8], mut n: usize) {
        let mut buf = [0u8; 10];
        let mut i = 0;
        while n >= 0x80 {
            buf[i] = (n as u8) | 0x80;
            n >>= 7;
            i += 1;
        }
        buf[i] = n as u8;
        put(w, &buf[..=i]);
    }
    let mut w = out;
    put(&mut w, &item.0.to_le_bytes());
    put_var(&mut w, key.len());
    put(&mut w, key);
    put_var(&mut w, value.len());
    put(&mut w, value);
}

/// The index bits that keep `n` slots at most [`MAX_BUCKET_AVERAGE`] per
/// bucket on average (even, as buckets split in four).
fn bits_for(n: u64) -> u32 {
    let mut bits = 0;
    while bits < 62 && n > MAX_BUCKET_AVERAGE << bits {
        bits += 2;
    }
    bits
}

fn corrupt() -> StorageError {
    StorageError::Corrupt("in-memory record does not parse".into())
}

impl Default for MemoryStorage {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl MemoryStorage {
    /// An empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty storage whose index is already cut for `keys` keys (so
    /// filling it splits no bucket).
    pub fn with_capacity(keys: u64) -> Self {
        let bits = bits_for(keys);
        MemoryStorage {
            bits,
            buckets: vec![Vec::new(); 1 << bits],
            arena: Vec::new(),
            garbage: 0,
            len: 0,
            slot_capacity: 0,
        }
    }

    fn bucket_of(&self, h: u64) -> usize {
        if self.bits == 0 {
            0
        } else {
            (h >> (64 - self.bits)) as usize
        }
    }

    fn record(&self, at: u64) -> Result<Record<'_>, StorageError> {
        let at = usize::try_from(at).map_err(|_| corrupt())?;
        parse(&self.arena, at).ok_or_else(corrupt)
    }

    /// Where `key` under `h` is, or would be inserted: its bucket, its
    /// position there, and whether it is present.
    fn find(&self, h: u64, key: &[u8]) -> Result<(usize, usize, bool), StorageError> {
        let b = self.bucket_of(h);
        let slots = &self.buckets[b];
        let mut i = slots.partition_point(|s| s.key_hash < h);
        while let Some(s) = slots.get(i).filter(|s| s.key_hash == h) {
            let k = self.record(s.at)?.key;
            if k == key {
                return Ok((b, i, true));
            }
            if k > key {
                break;
            }
            i += 1;
        }
        Ok((b, i, false))
    }

    /// Splits every bucket in four.
    fn split(&mut self) {
        let bits = self.bits + 2;
        let mut buckets: Vec<Vec<Slot>> = vec![Vec::new(); 1 << bits];
        let mut capacity = 0;
        for old in core::mem::take(&mut self.buckets) {
            let mut rest = &old[..];
            while let Some(first) = rest.first() {
                let b = (first.key_hash >> (64 - bits)) as usize;
                let n = rest.partition_point(|s| (s.key_hash >> (64 - bits)) as usize == b);
                let mut v = Vec::with_capacity(n + n / 4);
                v.extend_from_slice(&rest[..n]);
                capacity += v.capacity();
                buckets[b] = v;
                rest = &rest[n..];
            }
        }
        self.bits = bits;
        self.buckets = buckets;
        self.slot_capacity = capacity;
    }

    /// Rewrites the arena without garbage, in key-hash order.
    fn compact(&mut self) -> Result<(), StorageError> {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
        for bucket in &mut self.buckets {
            for slot in bucket.iter_mut() {
                let at = usize::try_from(slot.at).map_err(|_| corrupt())?;
                let len = parse(&self.arena, at).ok_or_else(corrupt)?.len;
                slot.at = arena.len() as u64;
                arena.extend_from_slice(&self.arena[at..at + len]);
            }
        }
        self.arena = arena;
        self.garbage = 0;
        Ok(())
    }

    fn append(&mut self, item: ItemHash, key: &[u8], value: &[u8]) -> u64 {
        let at = self.arena.len() as u64;
        write_record(&mut self.arena, item, key, value);
        at
    }
}

impl Storage for MemoryStorage {
    fn scan(
        &self,
        range: RangeInclusive<u64>,
        visit: &mut dyn FnMut(StoredItem<'_>) -> bool,
    ) -> Result<(), StorageError> {
        let (lo, hi) = (*range.start(), *range.end());
        if lo > hi {
            return Ok(());
        }
        // Stopping happens between key hashes: every item of the key hash
        // where `visit` said stop is still visited.
        let mut stop_after: Option<u64> = None;
        for b in self.bucket_of(lo)..=self.bucket_of(hi) {
            let slots = &self.buckets[b];
            let from = slots.partition_point(|s| s.key_hash < lo);
            for s in &slots[from..] {
                if s.key_hash > hi || stop_after.is_some_and(|h| h != s.key_hash) {
                    return Ok(());
                }
                let r = self.record(s.at)?;
                let go = visit(StoredItem {
                    key_hash: KeyHash(s.key_hash),
                    key: r.key,
                    item: r.item,
                    value: r.value,
                });
                if !go && stop_after.is_none() {
                    stop_after = Some(s.key_hash);
                }
            }
        }
        Ok(())
    }

    fn scan_items(&self, visit: &mut dyn FnMut(KeyHash, ItemHash)) -> Result<(), StorageError> {
        for s in self.buckets.iter().flatten() {
            visit(KeyHash(s.key_hash), self.record(s.at)?.item);
        }
        Ok(())
    }

    fn lookup(
        &self,
        key_hash: KeyHash,
        key: &[u8],
        visit: &mut dyn FnMut(ItemHash, &[u8]),
    ) -> Result<bool, StorageError> {
        let (b, i, found) = self.find(key_hash.0, key)?;
        if found {
            let r = self.record(self.buckets[b][i].at)?;
            visit(r.item, r.value);
        }
        Ok(found)
    }

    fn put(
        &mut self,
        key_hash: KeyHash,
        key: &[u8],
        old: Option<ItemHash>,
        item: ItemHash,
        value: &[u8],
    ) -> Result<(), StorageError> {
        let h = key_hash.0;
        let (b, i, found) = self.find(h, key)?;
        if found {
            debug_assert!(old.is_some(), "a key the store believes absent is present");
            let at = self.buckets[b][i].at;
            let start = usize::try_from(at).map_err(|_| corrupt())?;
            let was = self.record(at)?.len;
            let len = record_len(key, value);
            if len <= was {
                overwrite_record(&mut self.arena[start..start + len], item, key, value);
                self.garbage += was - len;
            } else {
                self.buckets[b][i].at = self.append(item, key, value);
                self.garbage += was;
            }
            if self.garbage > MIN_COMPACT && self.garbage > self.arena.len() / GARBAGE_SHARE {
                self.compact()?;
            }
            return Ok(());
        }
        debug_assert!(old.is_none(), "a key the store believes present is absent");
        let at = self.append(item, key, value);
        let bucket = &mut self.buckets[b];
        if bucket.len() == bucket.capacity() {
            let before = bucket.capacity();
            bucket.reserve_exact((bucket.len() / 4).max(2));
            self.slot_capacity += bucket.capacity() - before;
        }
        bucket.insert(i, Slot { key_hash: h, at });
        self.len += 1;
        if self.len > MAX_BUCKET_AVERAGE << self.bits && self.bits < 62 {
            self.split();
        }
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
        // The arena's allocation, the bucket headers and every bucket's
        // slots (allocator headers not counted).
        self.arena.capacity()
            + self.buckets.capacity() * core::mem::size_of::<Vec<Slot>>()
            + self.slot_capacity * core::mem::size_of::<Slot>()
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

    /// Random puts (new keys, rewrites that shrink, keep or grow the
    /// record, collisions) against an ordered map: scans, point lookups,
    /// item scans, lengths and range stops agree throughout, across bucket
    /// splits and compactions.
    #[test]
    fn agrees_with_an_ordered_map_across_splits_and_compactions() {
        use std::collections::BTreeMap;
        let mut s = MemoryStorage::new();
        let mut model: BTreeMap<(u64, Vec<u8>), (u128, Vec<u8>)> = BTreeMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut keys: Vec<(u64, Vec<u8>)> = Vec::new();
        let (mut splits, mut compactions, mut bits) = (0, 0, s.bits);
        for step in 0..20_000u64 {
            let r = next();
            let (h, key) = if keys.is_empty() || r % 3 == 0 {
                // A new key; one in 50 collides with a stored key hash.
                let h = if r % 50 == 3 && !keys.is_empty() {
                    keys[(r >> 8) as usize % keys.len()].0
                } else {
                    next()
                };
                let key = next().to_le_bytes()[..1 + (r >> 20) as usize % 8].to_vec();
                if model.contains_key(&(h, key.clone())) {
                    continue;
                }
                keys.push((h, key.clone()));
                (h, key)
            } else {
                keys[(r >> 8) as usize % keys.len()].clone()
            };
            let value = vec![step as u8; (next() % 200) as usize];
            let item = u128::from(next());
            let old = model.get(&(h, key.clone())).map(|(i, _)| ItemHash(*i));
            let garbage = s.garbage;
            s.put(KeyHash(h), &key, old, ItemHash(item), &value)
                .unwrap();
            compactions += usize::from(s.garbage < garbage);
            splits += usize::from(s.bits != bits);
            bits = s.bits;
            model.insert((h, key), (item, value));
            assert_eq!(s.len(), model.len() as u64);
            assert!(s.garbage <= MIN_COMPACT.max(s.arena.len() / GARBAGE_SHARE));
        }
        assert!(
            splits >= 2 && compactions >= 1,
            "{splits} splits, {compactions} compactions"
        );
        let all = |s: &MemoryStorage, range: RangeInclusive<u64>| {
            let mut v = Vec::new();
            s.scan(range, &mut |it| {
                v.push((it.key_hash.0, it.key.to_vec(), it.item.0, it.value.to_vec()));
                true
            })
            .unwrap();
            v
        };
        let expect = |range: RangeInclusive<u64>| {
            model
                .range((*range.start(), Vec::new())..)
                .take_while(|((h, _), _)| *h <= *range.end())
                .map(|((h, k), (i, v))| (*h, k.clone(), *i, v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(all(&s, 0..=u64::MAX), expect(0..=u64::MAX));
        for _ in 0..200 {
            let (a, b) = (next(), next() >> (next() % 64));
            let range = a.min(b)..=a.max(b);
            assert_eq!(all(&s, range.clone()), expect(range));
        }
        let mut items = Vec::new();
        s.scan_items(&mut |h, i| items.push((h.0, i.0))).unwrap();
        let want: Vec<(u64, u128)> = model.iter().map(|((h, _), (i, _))| (*h, *i)).collect();
        assert_eq!(items, want);
        for ((h, k), (i, v)) in model.iter().step_by(7) {
            let mut got = None;
            assert!(s
                .lookup(KeyHash(*h), k, &mut |it, val| got =
                    Some((it.0, val.to_vec())))
                .unwrap());
            assert_eq!(got, Some((*i, v.clone())));
            assert!(!s
                .lookup(KeyHash(*h), b"absent key", &mut |_, _| panic!())
                .unwrap());
        }
        // A clone filled in order from a sized index holds the same items.
        let mut copy = MemoryStorage::with_capacity(s.len());
        s.scan(0..=u64::MAX, &mut |it| {
            copy.put(it.key_hash, it.key, None, it.item, it.value)
                .unwrap();
            true
        })
        .unwrap();
        assert_eq!(copy.bits, s.bits);
        assert_eq!(all(&copy, 0..=u64::MAX), all(&s, 0..=u64::MAX));
        assert_eq!(copy.garbage, 0);
        assert!(copy.heap_bytes() < s.heap_bytes());
    }

    #[test]
    fn rewrites_in_place_when_the_record_fits() {
        let mut s = MemoryStorage::new();
        s.put(KeyHash(5), b"k", None, ItemHash(1), &[1; 40])
            .unwrap();
        let arena = s.arena.len();
        s.put(KeyHash(5), b"k", Some(ItemHash(1)), ItemHash(2), &[2; 40])
            .unwrap();
        assert_eq!(
            (s.arena.len(), s.garbage),
            (arena, 0),
            "same size: in place"
        );
        s.put(KeyHash(5), b"k", Some(ItemHash(2)), ItemHash(3), &[3; 30])
            .unwrap();
        assert_eq!((s.arena.len(), s.garbage), (arena, 10), "shorter: in place");
        s.put(KeyHash(5), b"k", Some(ItemHash(3)), ItemHash(4), &[4; 50])
            .unwrap();
        assert!(s.arena.len() > arena, "longer: appended");
        let mut got = Vec::new();
        s.lookup(KeyHash(5), b"k", &mut |i, v| got.push((i, v.to_vec())))
            .unwrap();
        assert_eq!(got, vec![(ItemHash(4), vec![4; 50])]);
    }

    #[test]
    fn varints_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 1 << 20, usize::MAX >> 1] {
            let mut b = Vec::new();
            put_varint(&mut b, n);
            let mut at = 0;
            assert_eq!(take_varint(&b, &mut at), Some(n));
            assert_eq!(at, b.len());
            assert_eq!(varint_len(n), b.len());
        }
        assert_eq!(take_varint(&[0x80], &mut 0), None);
    }
}
