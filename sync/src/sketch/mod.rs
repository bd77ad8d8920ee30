//! Rateless invertible Bloom lookup tables: the set difference of two
//! replicas' items, named in about 1.35 to 2 coded symbols per item of
//! difference, without knowing the size of the difference in advance.
//!
//! # The algorithm
//!
//! An invertible Bloom lookup table (Goodrich and Mitzenmacher, 2011) is an
//! array of cells; each item is added to a few cells, and a cell keeps the
//! count of its items and the XOR of their ids and of a check hash of each
//! id. One side sends its table, the other subtracts its own items, and
//! what is left is the symmetric difference alone, whatever the sizes of
//! the sets (Eppstein, Goodrich, Uyeda and Varghese, "What's the
//! Difference?", SIGCOMM 2011). It is read back by *peeling*: a cell that
//! holds exactly one item (count ±1 and a check that matches the id) gives
//! that item; removing it from its other cells may make them pure in turn.
//!
//! A fixed table must be sized for the difference before it is built. The
//! *rateless* variant of Yang, Gilad and Alizadeh ("Practical Rateless Set
//! Reconciliation", SIGCOMM 2024) replaces the table by an unbounded
//! sequence of coded symbols in which item `x` is added to symbol `i` with
//! probability `ρ(i) = 1 / (1 + i/2)`: symbol 0 holds every item, and later
//! symbols ever fewer. Any prefix of the sequence is a valid table, so the
//! sender can send a first batch and then more, and the receiver peels as
//! soon as it has enough: about 1.35 symbols per item of difference for
//! large differences, more for a handful. Each item lands in about
//! `2 ln(m)` of the first `m` symbols.
//!
//! Where an item lands is drawn from its id alone, so both sides compute
//! the same positions ([`Indices`]): from index `i`, the next index is
//! `i + 1 + floor((i + 1.5)(1/sqrt(u) - 1))` for `u` uniform in `(0, 1]`
//! (the gap distribution that gives `P(x in symbol j) ≈ 2 / (j + 2)`, the
//! density above); `u` comes from SplitMix64 streams seeded by the id, one
//! per segment of indices so that a range far from 0 is coded without
//! walking the indices before it, and the square root and division are
//! IEEE-exact, so every platform agrees.
//!
//! # Items
//!
//! An item is an [`ItemId`] of 64 bits: the top [`PREFIX_BITS`] of the
//! key's hash (where to look it up) and the low [`FP_BITS`] of its item
//! hash (which value it holds). A symbol is [`SYMBOL_BYTES`] on the wire: a
//! wrapping 8-bit count, the XOR of the ids and the XOR of a 16-bit check
//! hash of each id. Because the symbols are a sum over items, a replica
//! keeps the first symbols of its own sequence up to date as items come
//! and go ([`Maintained`], held by the digest tree), and a session copies
//! them instead of coding every item again. [`Estimator`] sizes the first
//! batch: a few counters, also maintained per write, from which the
//! receiver of a peer's counters estimates the size of the difference.
//!
//! ```
//! use accordant_sync::sketch::{code, peel, ItemId};
//! let ours: Vec<ItemId> = (0..1000u64).map(|i| ItemId(i.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
//! let mut theirs = ours.clone();
//! theirs.pop(); // the peer lacks one of ours
//! theirs.push(ItemId(42)); // and has one we lack
//! // The peer's first 8 symbols, minus ours: the difference alone.
//! let mut diff = code(theirs.iter().copied(), 0..8);
//! for (d, o) in diff.iter_mut().zip(code(ours.iter().copied(), 0..8)) {
//!     d.subtract(&o);
//! }
//! let found = peel(&diff).expect("two items of difference peel from 8 symbols");
//! assert_eq!(found.senders, vec![ItemId(42)]);
//! assert_eq!(found.receivers, vec![ours[999]]);
//! ```

mod estimator;
mod maintained;

use core::ops::Range;

use crate::digest::{ItemHash, KeyHash};
use crate::error::SyncError;
use crate::tree::{NodeId, BITS_PER_LEVEL};
use crate::wire::Reader;

pub use estimator::{Estimator, COUNTERS, COUNTER_BITS, ESTIMATOR_BYTES};
pub use maintained::{Maintained, MAX_KEPT};

/// Bits of the key hash an [`ItemId`] keeps: the key-hash prefix under
/// which the item is looked up.
pub const PREFIX_BITS: u32 = 24;

/// Bits of the item hash an [`ItemId`] keeps: two values of one key are
/// told apart unless their item hashes agree in these bits (probability
/// `2^-40` per differing key).
pub const FP_BITS: u32 = 64 - PREFIX_BITS;

/// The tree level whose nodes are the key-hash prefixes of [`ItemId`]s.
pub const PREFIX_LEVEL: u8 = (PREFIX_BITS / BITS_PER_LEVEL) as u8;

const _: () = assert!(PREFIX_BITS.is_multiple_of(BITS_PER_LEVEL));

/// Bytes of one coded symbol on the wire: count (1), id (8), check (2).
pub const SYMBOL_BYTES: usize = 11;

/// The largest symbol index an item is ever placed at (indices beyond are
/// never produced; no session sends that many symbols).
pub const MAX_INDEX: u64 = 1 << 40;

const FP_MASK: u64 = (1 << FP_BITS) - 1;

/// Seeds of the three hashes drawn from an id.
const SEED_CHECK: u64 = 0x5bd1_e995_c0ff_ee00;
const SEED_INDEX: u64 = 0x2545_f491_4f6c_dd1d;
const SEED_SIGNS: u64 = 0x9e6c_63d0_676a_9a99;

/// SplitMix64's finaliser: a fast, well-mixed 64-bit hash of a 64-bit word.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// An item as the sketch sees it: the top [`PREFIX_BITS`] of its key hash,
/// then the low [`FP_BITS`] of its item hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ItemId(pub u64);

impl ItemId {
    /// The id of the item `item` under the key hash `key`.
    #[must_use]
    pub fn new(key: KeyHash, item: ItemHash) -> Self {
        // Truncation intended: the low FP_BITS of the item hash.
        let fp = item.0 as u64 & FP_MASK;
        ItemId((key.0 >> FP_BITS << FP_BITS) | fp)
    }

    /// The key-hash prefix: the top [`PREFIX_BITS`] of the key hash.
    #[must_use]
    pub const fn prefix(self) -> u64 {
        self.0 >> FP_BITS
    }

    /// The low [`FP_BITS`] of the item hash.
    #[must_use]
    pub const fn fingerprint(self) -> u64 {
        self.0 & FP_MASK
    }

    /// The tree node (at [`PREFIX_LEVEL`]) of the key hashes that share
    /// this id's prefix: where the item's key is looked up.
    #[must_use]
    pub fn node(self) -> NodeId {
        NodeId::containing(KeyHash(self.0), PREFIX_LEVEL)
    }

    /// The prefix of the ids of every item under `key`.
    #[must_use]
    pub const fn prefix_of(key: KeyHash) -> u64 {
        key.0 >> FP_BITS
    }

    /// The tree node of the key hashes with prefix `prefix` (its low
    /// [`PREFIX_BITS`] bits).
    #[must_use]
    pub fn prefix_node(prefix: u64) -> NodeId {
        NodeId::containing(KeyHash(prefix << FP_BITS), PREFIX_LEVEL)
    }

    /// Whether `key` and `item` make this id.
    #[must_use]
    pub fn matches(self, key: KeyHash, item: ItemHash) -> bool {
        ItemId::new(key, item) == self
    }

    fn check(self) -> u16 {
        // Truncation intended: the top 16 bits of a mixed word.
        (mix(self.0 ^ SEED_CHECK) >> 48) as u16
    }

    /// The indices of the symbols this item is added to, increasing, from 0.
    #[must_use]
    pub fn indices(self) -> Indices {
        let mut it = Indices {
            next: 0,
            state: 0,
            seg: 0,
            id: self.0,
        };
        it.enter(0);
        it
    }

    /// The indices of the symbols this item is added to, from `from` on:
    /// the work starts at the segment that holds `from` (see [`Indices`]),
    /// so coding a range far from 0 does not walk the indices before it.
    #[must_use]
    pub fn indices_from(self, from: u64) -> Indices {
        let seg = SEGMENT_ENDS.partition_point(|&end| end <= from);
        let mut it = Indices {
            next: 0,
            state: 0,
            seg,
            id: self.0,
        };
        it.enter(seg);
        while it.next < from {
            it.advance();
        }
        it
    }

    /// The 16 signs the [`Estimator`] adds for this item, as bits.
    pub(crate) fn signs(self) -> u16 {
        // Truncation intended: 16 bits of a mixed word.
        mix(self.0 ^ SEED_SIGNS) as u16
    }
}

/// Where the index segments end: an item's indices in each segment are
/// drawn from a stream of their own (see [`Indices`]). The first ends
/// match the lengths the digest tree keeps ([`Maintained::len_for_depth`]),
/// then they grow fourfold.
const SEGMENT_ENDS: [u64; 17] = [
    128,
    2048,
    8192,
    16_384,
    1 << 16,
    1 << 18,
    1 << 20,
    1 << 22,
    1 << 24,
    1 << 26,
    1 << 28,
    1 << 30,
    1 << 32,
    1 << 34,
    1 << 36,
    1 << 38,
    MAX_INDEX,
];

/// The symbol indices of one item, in increasing order; ends only at
/// [`MAX_INDEX`].
///
/// Item `x` is in symbol `i` independently for every `i`, with probability
/// `2 / (i + 2)`, so the indices are drawn by gaps: from index `i`, the
/// next is `i + 1 + floor((i + 1.5)(1/sqrt(u) - 1))` for `u` uniform in
/// `(0, 1]` (the continuous form of `P(no index in (i, j]) = Π (t / (t +
/// 2))`). Because each index is an independent trial, the key space of
/// indices is cut into segments (ending at 128, 2,048, 8,192, 16,384 and
/// then at every fourfold) with a random stream
/// each, seeded by the id and the segment: a segment's first index is
/// drawn as if the previous one were just before the segment. The
/// sequence has the same distribution, and a range far from 0 is coded
/// without walking the indices before it.
#[derive(Clone, Debug)]
pub struct Indices {
    next: u64,
    state: u64,
    seg: usize,
    id: u64,
}

impl Indices {
    /// `1 / sqrt(u)` for the next uniform `u` in `(0, 1]` of the stream:
    /// drawn from the random source alone, so it is computed while the
    /// previous index is still being worked out.
    #[inline(always)]
    fn stretch(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        // 53 random bits, plus one so that u is never 0 (signed
        // conversions: the value is below 2^53, and they are cheaper).
        let bits = ((mix(self.state) >> 11) + 1) as i64;
        let u = bits as f64 * (1.0 / (1u64 << 53) as f64);
        1.0 / u.sqrt()
    }

    /// The index after `i` in the current stream (at most [`MAX_INDEX`]).
    #[inline(always)]
    fn after(&mut self, i: u64) -> u64 {
        // i is below 2^40: the conversions are exact.
        let x = (i as i64 as f64 + 1.5) * (self.stretch() - 1.0);
        if x < MAX_INDEX as f64 {
            // Truncation intended: x is non-negative, so this is floor(x).
            i + x as i64 as u64 + 1
        } else {
            MAX_INDEX
        }
    }

    /// Starts segment `seg`: its stream, and its first index (index 0,
    /// which holds every item, for the first segment).
    fn enter(&mut self, seg: usize) {
        self.seg = seg;
        if seg >= SEGMENT_ENDS.len() {
            self.next = MAX_INDEX;
            return;
        }
        self.state = mix(self.id ^ SEED_INDEX ^ (seg as u64).wrapping_mul(0xd6e8_feb8_6659_fd93));
        self.next = match seg.checked_sub(1) {
            None => 0,
            Some(prev) => {
                let start = SEGMENT_ENDS[prev];
                self.after(start - 1)
            }
        };
        if self.next >= SEGMENT_ENDS[seg] {
            self.enter(seg + 1);
        }
    }

    /// Moves to the next index.
    fn advance(&mut self) {
        let j = self.after(self.next);
        if j < SEGMENT_ENDS[self.seg] {
            self.next = j;
        } else {
            self.enter(self.seg + 1);
        }
    }

    /// Moves to the next index below `end`, or to [`MAX_INDEX`] when there
    /// is none: the same indices as [`advance`](Self::advance) below
    /// `end`, without drawing the first index of a segment that starts at
    /// or after `end` (what [`Maintained`] needs, inlined into its loop).
    #[inline(always)]
    fn advance_below(&mut self, end: u64) {
        let j = self.after(self.next);
        // `seg` is below SEGMENT_ENDS.len() while `next` is below MAX_INDEX.
        let seg_end = SEGMENT_ENDS.get(self.seg).copied().unwrap_or(MAX_INDEX);
        if j < seg_end {
            self.next = j;
        } else if seg_end >= end {
            self.next = MAX_INDEX;
        } else {
            self.enter(self.seg + 1);
        }
    }
}

impl Iterator for Indices {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let i = self.next;
        if i >= MAX_INDEX {
            return None;
        }
        self.advance();
        Some(i)
    }
}

/// One coded symbol: the items added to it, summed.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Symbol {
    id: u64,
    check: u16,
    count: u8,
}

impl Symbol {
    /// Whether no item (or a set that cancelled out) is left in it.
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Symbol::default()
    }

    /// Adds (`sign` 1) or removes (`sign` 255, i.e. -1) one item.
    fn toggle(&mut self, id: ItemId, check: u16, sign: u8) {
        self.count = self.count.wrapping_add(sign);
        self.id ^= id.0;
        self.check ^= check;
    }

    /// Adds `id`.
    pub fn add(&mut self, id: ItemId) {
        self.toggle(id, id.check(), 1);
    }

    /// Removes `id` (which need not be there: that is how a receiver
    /// subtracts its own items).
    pub fn remove(&mut self, id: ItemId) {
        self.toggle(id, id.check(), u8::MAX);
    }

    /// Subtracts every item of `other`: `self` becomes the difference.
    pub fn subtract(&mut self, other: &Symbol) {
        self.count = self.count.wrapping_sub(other.count);
        self.id ^= other.id;
        self.check ^= other.check;
    }

    /// Appends the wire form, [`SYMBOL_BYTES`] bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.count);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&self.check.to_be_bytes());
    }

    /// Reads one symbol from untrusted bytes.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, SyncError> {
        let count = r.u8()?;
        let id = u64::from_be_bytes(r.array()?);
        let check = u16::from_be_bytes(r.array()?);
        Ok(Symbol { id, check, count })
    }
}

/// Appends the wire form of `symbols` to `out`.
pub fn write_symbols(symbols: &[Symbol], out: &mut Vec<u8>) {
    out.reserve(symbols.len() * SYMBOL_BYTES);
    for s in symbols {
        s.write(out);
    }
}

/// Reads symbols from untrusted bytes: a whole number of them, at most
/// `max` (else [`SyncError::Malformed`]).
pub fn read_symbols(bytes: &[u8], max: usize) -> Result<Vec<Symbol>, SyncError> {
    if !bytes.len().is_multiple_of(SYMBOL_BYTES) {
        return Err(SyncError::Malformed("symbols: a partial symbol"));
    }
    let n = bytes.len() / SYMBOL_BYTES;
    if n > max {
        return Err(SyncError::Malformed("symbols: more than allowed"));
    }
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Symbol::read(&mut r)?);
    }
    r.finish()?;
    Ok(out)
}

/// The symbols `range` of the coded sequence of `items`.
pub fn code(items: impl IntoIterator<Item = ItemId>, range: Range<u64>) -> Vec<Symbol> {
    let len = usize::try_from(range.end.saturating_sub(range.start)).unwrap_or(0);
    let mut out = vec![Symbol::default(); len];
    add_to(&mut out, range.start, items);
    out
}

/// Adds `items` to `symbols`, which hold the indices from `first` on.
pub fn add_to(symbols: &mut [Symbol], first: u64, items: impl IntoIterator<Item = ItemId>) {
    let end = first + symbols.len() as u64;
    for id in items {
        let check = id.check();
        for i in id.indices_from(first) {
            if i >= end {
                break;
            }
            if let Some(s) = i
                .checked_sub(first)
                .and_then(|o| symbols.get_mut(o as usize))
            {
                s.toggle(id, check, 1);
            }
        }
    }
}

/// The symmetric difference read back from coded symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Difference {
    /// Items only the symbols' sender holds, sorted.
    pub senders: Vec<ItemId>,
    /// Items only the receiver (who subtracted its own) holds, sorted.
    pub receivers: Vec<ItemId>,
}

impl Difference {
    /// Items of difference in all.
    #[must_use]
    pub fn len(&self) -> usize {
        self.senders.len() + self.receivers.len()
    }

    /// Whether there is no difference.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Peels `diff`, the symbols `0..diff.len()` of the sender's sequence minus
/// the receiver's. `Some` when every symbol emptied: the difference, in
/// full. `None` when peeling stalled (too few symbols for the difference),
/// or the symbols are not a difference of item sets (an item found twice,
/// or more items than symbols). The work is bounded by the number of
/// symbols whatever they hold.
#[must_use]
pub fn peel(diff: &[Symbol]) -> Option<Difference> {
    let mut syms = diff.to_vec();
    let n = syms.len() as u64;
    let mut out = Difference::default();
    let mut queue: Vec<u64> = (0..n).rev().collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(i) = queue.pop() {
        let s = syms[i as usize];
        let sign = match s.count {
            1 => 1u8,
            u8::MAX => u8::MAX,
            _ => continue,
        };
        let id = ItemId(s.id);
        let check = id.check();
        if s.check != check || id.indices_from(i).next() != Some(i) {
            continue;
        }
        // An item found twice, or more items than symbols: not a
        // difference of two sets (a garbage or hostile table).
        if !seen.insert(id) || seen.len() as u64 > n {
            return None;
        }
        if sign == 1 {
            out.senders.push(id);
        } else {
            out.receivers.push(id);
        }
        for j in id.indices().take_while(|&j| j < n) {
            syms[j as usize].toggle(id, check, sign.wrapping_neg());
            queue.push(j);
        }
    }
    if !syms.iter().all(Symbol::is_zero) {
        return None;
    }
    out.senders.sort_unstable();
    out.receivers.sort_unstable();
    Some(out)
}

/// Symbols to send for an expected `items` items of difference so that
/// peeling fails rarely (see the `sizing` test): about 1.4 per item for
/// large differences, proportionally more for a handful.
#[must_use]
pub fn symbols_for(items: f64) -> u64 {
    let d = if items.is_finite() {
        items.max(0.0)
    } else {
        0.0
    };
    // Truncation intended: a count of symbols.
    (1.4 * d + 4.0 * d.sqrt() + 4.0).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ids(seed: u64, n: usize) -> Vec<ItemId> {
        (0..n as u64)
            .map(|i| ItemId(mix(seed.wrapping_mul(1_000_003).wrapping_add(i))))
            .collect()
    }

    fn diff_of(senders: &[ItemId], receivers: &[ItemId], m: u64) -> Vec<Symbol> {
        let mut d = code(senders.iter().copied(), 0..m);
        for (a, b) in d.iter_mut().zip(code(receivers.iter().copied(), 0..m)) {
            a.subtract(&b);
        }
        d
    }

    #[test]
    fn ids_split_key_and_item_hashes() {
        let id = ItemId::new(
            KeyHash(0xabcd_ef12_3456_7890),
            ItemHash(0x1111_2222_3333_4444_5555),
        );
        assert_eq!(id.prefix(), 0xabcdef);
        assert_eq!(id.fingerprint(), 0x3333_4444_5555 & FP_MASK);
        assert_eq!(id.node().level(), PREFIX_LEVEL);
        assert_eq!(id.node().index(), 0xabcdef);
        assert!(id.node().contains(KeyHash(0xabcd_ef00_0000_0000)));
        assert!(id.matches(
            KeyHash(0xabcd_ef99_9999_9999),
            ItemHash(0x1111_2222_3333_4444_5555)
        ));
    }

    #[test]
    fn index_sequences_start_at_zero_increase_and_thin_out() {
        let all = ids(7, 2000);
        let mut hits = vec![0u32; 1024];
        for id in &all {
            let v: Vec<u64> = id.indices().take_while(|&i| i < 1024).collect();
            assert_eq!(v[0], 0);
            assert!(v.windows(2).all(|w| w[0] < w[1]));
            assert_eq!(
                v,
                id.indices().take_while(|&i| i < 1024).collect::<Vec<_>>()
            );
            for i in v {
                hits[i as usize] += 1;
            }
        }
        // Density 2 / (i + 2): all items at 0, about 1000 at 2, 2 at 1022.
        assert_eq!(hits[0], 2000);
        for (i, expect) in [(1usize, 1333.0), (2, 1000.0), (10, 333.0), (100, 39.2)] {
            let got = f64::from(hits[i]);
            assert!(
                (got - expect).abs() < 5.0 * expect.sqrt(),
                "symbol {i}: {got} vs {expect}"
            );
        }
        let tail: u32 = hits[512..].iter().sum();
        let expect: f64 = (512..1024).map(|i| 2000.0 * 2.0 / (i as f64 + 2.0)).sum();
        assert!(
            (f64::from(tail) - expect).abs() < 4.0 * expect.sqrt(),
            "{tail} vs {expect}"
        );
    }

    #[test]
    fn indices_from_any_point_are_the_tail_of_the_whole_sequence() {
        for id in ids(11, 200) {
            let all: Vec<u64> = id.indices().take_while(|&i| i < 100_000).collect();
            for from in [0u64, 1, 5, 127, 128, 129, 2047, 2048, 9000, 16_384, 70_000] {
                let tail: Vec<u64> = id.indices_from(from).take_while(|&i| i < 100_000).collect();
                let want: Vec<u64> = all.iter().copied().filter(|&i| i >= from).collect();
                assert_eq!(tail, want, "from {from}");
            }
        }
    }

    #[test]
    fn recovers_both_sides_and_a_changed_value() {
        let common = ids(1, 5000);
        let only_a = ids(2, 7);
        let only_b = ids(3, 5);
        let a: Vec<ItemId> = common.iter().chain(&only_a).copied().collect();
        let b: Vec<ItemId> = common.iter().chain(&only_b).copied().collect();
        let d = peel(&diff_of(&a, &b, symbols_for(12.0))).expect("peels");
        let mut want_a = only_a.clone();
        want_a.sort_unstable();
        let mut want_b = only_b.clone();
        want_b.sort_unstable();
        assert_eq!(d.senders, want_a);
        assert_eq!(d.receivers, want_b);
        // One key, two values: two items that share a prefix.
        let k = KeyHash(0x0123_4567_89ab_cdef);
        let (x, y) = (ItemId::new(k, ItemHash(1)), ItemId::new(k, ItemHash(2)));
        let d = peel(&diff_of(&[x], &[y], symbols_for(2.0))).expect("peels");
        assert_eq!((d.senders, d.receivers), (vec![x], vec![y]));
    }

    #[test]
    fn wire_form_round_trips_and_refuses_partial_symbols() {
        let s = code(ids(4, 100), 0..40);
        let mut bytes = Vec::new();
        write_symbols(&s, &mut bytes);
        assert_eq!(bytes.len(), 40 * SYMBOL_BYTES);
        assert_eq!(read_symbols(&bytes, 40).unwrap(), s);
        assert!(read_symbols(&bytes, 39).is_err(), "over the limit");
        assert!(read_symbols(&bytes[..bytes.len() - 1], 40).is_err());
        assert_eq!(read_symbols(&[], 0).unwrap(), vec![]);
    }

    #[test]
    fn a_later_range_equals_the_tail_of_a_longer_prefix() {
        let items = ids(5, 300);
        let whole = code(items.iter().copied(), 0..200);
        assert_eq!(code(items.iter().copied(), 50..200), whole[50..]);
        let mut piecewise = code(items.iter().copied(), 0..120);
        piecewise.extend(code(items.iter().copied(), 120..200));
        assert_eq!(piecewise, whole);
    }

    #[test]
    fn sizing() {
        // For each difference size, the share of tables sized by
        // `symbols_for` that fail to peel: the cost of an extra round trip.
        for &d in &[1usize, 2, 4, 10, 30, 100, 300, 1000] {
            let trials = if d >= 300 { 100 } else { 400 };
            let m = symbols_for(d as f64);
            let mut failed = 0;
            for t in 0..trials {
                let items = ids(t as u64 * 7919 + d as u64, d);
                let (a, b) = items.split_at(d / 2);
                if peel(&diff_of(a, b, m)).is_none() {
                    failed += 1;
                }
            }
            eprintln!("d = {d}: {m} symbols, {failed} of {trials} failed");
            assert!(
                failed * 100 <= trials * 3,
                "d = {d}: {failed} of {trials} failed"
            );
        }
    }

    #[test]
    fn an_overfull_prefix_fails_cleanly() {
        let items = ids(9, 200);
        assert_eq!(peel(&diff_of(&items, &[], 20)), None);
    }

    #[test]
    fn garbage_decodes_without_panicking_in_bounded_work() {
        let mut r = 1u64;
        for round in 0..300u64 {
            let n = 1 + (round % 64) as usize;
            let mut bytes = vec![0u8; n * SYMBOL_BYTES];
            for b in bytes.iter_mut() {
                r = mix(r);
                *b = r as u8;
            }
            if round % 2 == 0 {
                // Counts of ±1 look pure more often.
                for c in bytes.chunks_mut(SYMBOL_BYTES) {
                    c[0] = if c[1] & 1 == 0 { 1 } else { 0xff };
                }
            }
            let s = read_symbols(&bytes, n).unwrap();
            let _ = peel(&s);
        }
        // A table built to loop: one false item that, once peeled from one
        // symbol, reappears with the opposite sign in another.
        let x = ItemId(12345);
        let mut s = code([x], 0..16);
        s[0] = Symbol::default();
        let _ = peel(&s);
        assert_eq!(peel(&code([], 0..4)), Some(Difference::default()));
    }
}
