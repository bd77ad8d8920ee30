//! Digests, key hashes, item hashes and the additive aggregate that the
//! Merkle digest tree ([`crate::tree`]) is built from.
//!
//! # What is hashed
//!
//! * A [`Digest`] is a 32-byte BLAKE3 output: of a key's canonical bytes, of a
//!   value's canonical encoding, or of an [`Aggregate`].
//! * A [`KeyHash`] places a key in the 64-bit key space: the first 8 bytes
//!   (big-endian) of `blake3(key bytes)`. The tree partitions the key space by
//!   its most significant bits, so keys spread evenly over its nodes.
//! * An [`ItemHash`] stands for one `(key, value)` item: the first 16 bytes
//!   (big-endian) of `blake3(blake3(key bytes) ‖ blake3(value encoding))`, a
//!   64-byte input. Changing the value of a key changes its item hash; two
//!   replicas hold the same item exactly when they hold the same key with the
//!   same canonical value.
//! * An [`Aggregate`] summarises a set of items: the sum of their item hashes
//!   modulo 2^128 and their number (modulo 2^64).
//!
//! All integers are read from and written to hash inputs big-endian.
//!
//! # Why a sum with a count, and not XOR
//!
//! An aggregate must be updatable in O(1) when one item comes, goes or
//! changes, without rehashing the other items, which rules out hashing a
//! sorted list. The classic trick is to combine item hashes with a group
//! operation: the aggregate of a set is the "sum" of its elements, adding an
//! item is `+ h`, removing it is `- h`. This is incremental hashing in the
//! sense of Bellare and Micciancio ("A New Paradigm for Collision-free
//! Hashing: Incrementality at Reduced Cost", EUROCRYPT 1997, the AdHash
//! construction), and it is the fingerprint used by range-based set
//! reconciliation (Aljoscha Meyer, "Range-Based Set Reconciliation",
//! SRDS 2023), where a range's fingerprint is the sum of its items' hashes
//! modulo 2^k together with their count.
//!
//! XOR is also a group operation, but every element is its own inverse: an
//! item that is present twice (for instance in two subtrees that are merged,
//! or through a bookkeeping error that inserts it twice) cancels out and the
//! aggregate looks as if neither copy were there; `{a, a}` and `{b, b}` and
//! `{}` all digest alike. Addition modulo 2^128 has no such short cycles
//! (`a + a = 0` only for `a = 0` or `a = 2^127`), and the count separates
//! multisets of different sizes outright. Since both components are taken in
//! a group (wrapping arithmetic), [`Aggregate::sub`] is an exact inverse of
//! [`Aggregate::add`] and the order of updates never matters.
//!
//! # How likely is a false "equal"
//!
//! This is a non-adversarial design: keys and values come from applications
//! and replicas that cooperate, and item hashes behave as independent uniform
//! 128-bit values. Then:
//!
//! * two given distinct multisets of items have equal sums with probability
//!   2^-128 (their difference is a non-trivial sum of uniform values), so a
//!   session that compares q aggregates is fooled with probability at most
//!   q · 2^-128;
//! * two distinct items among n share an item hash with probability at most
//!   n² · 2^-129, about 2^-65 for four billion items.
//!
//! Neither is a concern in practice. Against an adversary who chooses keys
//! and values to collide on purpose, a 128-bit modular sum is not enough
//! (Wagner's generalised birthday attack, CRYPTO 2002, finds such sums far
//! faster than 2^64 work); the tree is an anti-entropy index, not an
//! authentication mechanism.
//!
//! # Truncation on the wire
//!
//! A session may send [`Aggregate::short`] fingerprints of a few bytes per
//! node instead of full aggregates. A truncated collision can then hide a
//! difference in one subtree, so a session must end by comparing the full
//! root [`Aggregate::digest`]s and run another pass if they differ: a
//! collision costs a round, never a silent divergence.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A 32-byte BLAKE3 digest.
///
/// `Debug` shows the first 8 bytes in hex; `Display` shows all 32.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The length of a digest in bytes.
    pub const LEN: usize = 32;

    /// The BLAKE3 digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// Wraps raw digest bytes (for instance decoded from the wire).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes read as a big-endian integer.
    #[must_use]
    pub fn prefix_u64(&self) -> u64 {
        u64::from_be_bytes(first_bytes(&self.0))
    }

    /// The first 16 bytes read as a big-endian integer.
    #[must_use]
    pub fn prefix_u128(&self) -> u128 {
        u128::from_be_bytes(first_bytes(&self.0))
    }
}

fn first_bytes<const N: usize>(bytes: &[u8; 32]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(")?;
        write_hex(f, &self.0[..8])?;
        f.write_str("…)")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// A key's position in the 64-bit key space: the first 8 bytes (big-endian)
/// of the BLAKE3 digest of the key's canonical bytes.
///
/// Ordered as an integer, which is the order of the tree's leaves.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyHash(pub u64);

impl KeyHash {
    /// The key hash of a key with canonical bytes `key`.
    #[must_use]
    pub fn of(key: &[u8]) -> Self {
        Self::from_digest(&Digest::of(key))
    }

    /// The key hash from an already computed `Digest::of(key)`, so that a
    /// caller who also needs the [`ItemHash`] hashes the key only once.
    #[must_use]
    pub fn from_digest(key_digest: &Digest) -> Self {
        Self(key_digest.prefix_u64())
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({:016x})", self.0)
    }
}

/// The hash of one `(key, value)` item: the first 16 bytes (big-endian) of
/// `blake3(key digest ‖ value digest)`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemHash(pub u128);

impl ItemHash {
    /// The item hash from the full digest of the key's canonical bytes and
    /// the digest of the value's canonical encoding.
    #[must_use]
    pub fn of(key_bytes_digest: &Digest, value_digest: &Digest) -> Self {
        // One 64-byte block hashed in one call: the same bytes as an
        // incremental hasher fed both digests, with less bookkeeping.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(key_bytes_digest.as_bytes());
        block[32..].copy_from_slice(value_digest.as_bytes());
        Self(Digest::of(&block).prefix_u128())
    }

    /// The item hash of a key's canonical bytes and a value's canonical
    /// encoding, hashing both.
    #[must_use]
    pub fn from_parts(key: &[u8], value_encoding: &[u8]) -> Self {
        Self::of(&Digest::of(key), &Digest::of(value_encoding))
    }
}

impl fmt::Debug for ItemHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ItemHash({:032x})", self.0)
    }
}

/// The order-independent summary of a multiset of items: the sum of their
/// item hashes modulo 2^128 and their count modulo 2^64.
///
/// Aggregates form an abelian group under [`merge`](Self::merge): adding and
/// subtracting items in any order, any interleaving, gives the same result,
/// and [`sub`](Self::sub) undoes [`add`](Self::add) exactly. See the
/// [module documentation](self) for why this is a sum and not XOR.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Aggregate {
    /// The sum of the item hashes, modulo 2^128.
    pub sum: u128,
    /// The number of items, modulo 2^64.
    pub count: u64,
}

impl Aggregate {
    /// The aggregate of no items.
    pub const EMPTY: Self = Self { sum: 0, count: 0 };

    /// The aggregate of the single item `item`.
    #[must_use]
    pub const fn single(item: ItemHash) -> Self {
        Self {
            sum: item.0,
            count: 1,
        }
    }

    /// Adds one item.
    pub fn add(&mut self, item: ItemHash) {
        self.sum = self.sum.wrapping_add(item.0);
        self.count = self.count.wrapping_add(1);
    }

    /// Removes one item (the exact inverse of [`add`](Self::add)).
    pub fn sub(&mut self, item: ItemHash) {
        self.sum = self.sum.wrapping_sub(item.0);
        self.count = self.count.wrapping_sub(1);
    }

    /// Adds every item summarised by `other` (the aggregate of a multiset
    /// union).
    pub fn merge(&mut self, other: &Self) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.count = self.count.wrapping_add(other.count);
    }

    /// Removes every item summarised by `other` (the inverse of
    /// [`merge`](Self::merge)): `a.merged(b).unmerged(b) == a`.
    pub fn unmerge(&mut self, other: &Self) {
        self.sum = self.sum.wrapping_sub(other.sum);
        self.count = self.count.wrapping_sub(other.count);
    }

    /// `self` merged with `other`, by value.
    #[must_use]
    pub fn merged(mut self, other: &Self) -> Self {
        self.merge(other);
        self
    }

    /// `self` with `other` unmerged, by value.
    #[must_use]
    pub fn unmerged(mut self, other: &Self) -> Self {
        self.unmerge(other);
        self
    }

    /// Whether this is the aggregate of no items.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::EMPTY
    }

    /// The full digest, `blake3(sum ‖ count)` with both big-endian: the value
    /// two replicas compare at the end of a session.
    #[must_use]
    pub fn digest(&self) -> Digest {
        let mut input = [0u8; 24];
        input[..16].copy_from_slice(&self.sum.to_be_bytes());
        input[16..].copy_from_slice(&self.count.to_be_bytes());
        Digest::of(&input)
    }

    /// A fingerprint of `bytes` bytes for the wire: the first
    /// `min(bytes, 8)` bytes of [`digest`](Self::digest), big-endian, so it
    /// is below `2^(8 * bytes)` and covers the count as well as the sum.
    /// `short(0)` is `0`.
    ///
    /// Truncated fingerprints collide with probability `2^(-8 * bytes)` per
    /// comparison; see the [module documentation](self) for why a session
    /// must still compare the full root digests at the end.
    #[must_use]
    pub fn short(&self, bytes: usize) -> u64 {
        let bytes = bytes.min(8);
        if bytes == 0 {
            return 0;
        }
        self.digest().prefix_u64() >> (8 * (8 - bytes))
    }
}

impl fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Aggregate {{ sum: {:032x}, count: {} }}",
            self.sum, self.count
        )
    }
}

impl FromIterator<ItemHash> for Aggregate {
    fn from_iter<I: IntoIterator<Item = ItemHash>>(iter: I) -> Self {
        let mut agg = Self::EMPTY;
        iter.into_iter().for_each(|item| agg.add(item));
        agg
    }
}

impl Extend<ItemHash> for Aggregate {
    fn extend<I: IntoIterator<Item = ItemHash>>(&mut self, iter: I) {
        iter.into_iter().for_each(|item| self.add(item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    fn item(x: u128) -> ItemHash {
        ItemHash(x)
    }

    #[test]
    fn item_hash_is_blake3_of_both_digests() {
        for (k, v) in [
            (&b"k"[..], &b""[..]),
            (b"cart:alice", b"\x01\x02"),
            (b"", b"v"),
        ] {
            let (kd, vd) = (Digest::of(k), Digest::of(v));
            let mut hasher = blake3::Hasher::new();
            hasher.update(kd.as_bytes());
            hasher.update(vd.as_bytes());
            let full = hasher.finalize();
            let want = u128::from_be_bytes(full.as_bytes()[..16].try_into().unwrap());
            assert_eq!(ItemHash::of(&kd, &vd), ItemHash(want));
            assert_eq!(ItemHash::from_parts(k, v), ItemHash(want));
        }
    }

    #[test]
    fn digest_is_blake3() {
        let d = Digest::of(b"hello");
        assert_eq!(d.as_bytes(), blake3::hash(b"hello").as_bytes());
        assert_eq!(Digest::from_bytes(*d.as_bytes()), d);
        assert_eq!(Digest::from(blake3::hash(b"hello")), d);
        assert_ne!(Digest::of(b"hello"), Digest::of(b"hellp"));
    }

    #[test]
    fn digest_formats_as_hex() {
        let d = Digest::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(format!("{d:?}"), "Digest(0001020304050607…)");
        let full = format!("{d}");
        assert_eq!(full.len(), 64);
        assert!(full.starts_with("000102030405060708090a0b"));
        assert!(full.ends_with("1d1e1f"));
        assert_eq!(format!("{:?}", KeyHash(0xab)), "KeyHash(00000000000000ab)");
    }

    #[test]
    fn key_hash_is_big_endian_prefix() {
        let h = blake3::hash(b"key");
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        assert_eq!(KeyHash::of(b"key"), KeyHash(u64::from_be_bytes(first)));
        assert_eq!(
            KeyHash::from_digest(&Digest::of(b"key")),
            KeyHash::of(b"key")
        );
    }

    #[test]
    fn item_hash_definition() {
        let (k, v) = (b"key".as_slice(), b"value".as_slice());
        let mut input = Vec::new();
        input.extend_from_slice(blake3::hash(k).as_bytes());
        input.extend_from_slice(blake3::hash(v).as_bytes());
        let h = blake3::hash(&input);
        let mut first = [0u8; 16];
        first.copy_from_slice(&h.as_bytes()[..16]);
        let expected = ItemHash(u128::from_be_bytes(first));
        assert_eq!(ItemHash::from_parts(k, v), expected);
        assert_eq!(ItemHash::of(&Digest::of(k), &Digest::of(v)), expected);
        // The boundary between key and value matters (no concatenation ambiguity).
        assert_ne!(ItemHash::from_parts(b"ke", b"yvalue"), expected);
        assert_ne!(ItemHash::from_parts(b"key", b"valuf"), expected);
    }

    #[test]
    fn equal_items_do_not_cancel() {
        let a = item(0x1234_5678_9abc_def0_0fed_cba9_8765_4321);
        let b = item(0x0bad_cafe_0bad_cafe_0bad_cafe_0bad_cafe);
        let once = Aggregate::single(a);
        let twice: Aggregate = [a, a].into_iter().collect();
        let b_twice: Aggregate = [b, b].into_iter().collect();
        assert!(!twice.is_empty());
        assert_ne!(twice, once);
        assert_ne!(twice, b_twice);
        assert_ne!(twice.digest(), Aggregate::EMPTY.digest());
        assert_ne!(twice.digest(), b_twice.digest());
        // Even the one item hash whose double is 0 mod 2^128 is caught by the count.
        let half = Aggregate::from_iter([item(1 << 127), item(1 << 127)]);
        assert_eq!(half.sum, 0);
        assert!(!half.is_empty());
        assert_ne!(half.digest(), Aggregate::EMPTY.digest());
    }

    #[test]
    fn digest_covers_count_and_sum() {
        let zero_one = Aggregate { sum: 0, count: 1 };
        let one_zero = Aggregate { sum: 1, count: 0 };
        assert_ne!(zero_one.digest(), Aggregate::EMPTY.digest());
        assert_ne!(one_zero.digest(), Aggregate::EMPTY.digest());
        assert_ne!(zero_one.digest(), one_zero.digest());
        let mut input = [0u8; 24];
        input[15] = 1;
        assert_eq!(one_zero.digest(), Digest::of(&input));
    }

    #[test]
    fn wrapping_at_the_edges() {
        let mut agg = Aggregate::single(item(u128::MAX));
        agg.add(item(2));
        assert_eq!(agg, Aggregate { sum: 1, count: 2 });
        agg.sub(item(2));
        agg.sub(item(u128::MAX));
        assert!(agg.is_empty());
        // Removing what was never added is undone by adding it back.
        let mut neg = Aggregate::EMPTY;
        neg.sub(item(7));
        assert!(!neg.is_empty());
        assert_eq!(neg.count, u64::MAX);
        neg.add(item(7));
        assert!(neg.is_empty());
    }

    #[test]
    fn short_is_a_prefix_of_the_digest() {
        let agg = Aggregate::from_iter([item(1), item(99)]);
        let full = agg.digest().prefix_u64();
        assert_eq!(agg.short(8), full);
        assert_eq!(agg.short(100), full);
        assert_eq!(agg.short(0), 0);
        for bytes in 1..8 {
            let s = agg.short(bytes);
            assert!(s < 1u64 << (8 * bytes), "short({bytes}) too wide");
            assert_eq!(s, full >> (8 * (8 - bytes)));
        }
        assert_eq!(agg.short(1), u64::from(agg.digest().as_bytes()[0]));
    }

    #[test]
    fn serde_roundtrip() {
        let agg = Aggregate::from_iter([item(u128::MAX), item(3)]);
        let bytes = postcard::to_allocvec(&agg).unwrap();
        assert_eq!(postcard::from_bytes::<Aggregate>(&bytes).unwrap(), agg);
        let d = Digest::of(b"x");
        let bytes = postcard::to_allocvec(&d).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(postcard::from_bytes::<Digest>(&bytes).unwrap(), d);
        let kh = KeyHash::of(b"x");
        let bytes = postcard::to_allocvec(&kh).unwrap();
        assert_eq!(postcard::from_bytes::<KeyHash>(&bytes).unwrap(), kh);
    }

    quickcheck! {
        fn order_does_not_matter(items: Vec<u128>, rotate: usize) -> bool {
            let a: Aggregate = items.iter().copied().map(item).collect();
            let mut rotated = items.clone();
            if !rotated.is_empty() {
                let n = rotate % rotated.len();
                rotated.rotate_left(n);
            }
            rotated.reverse();
            let b: Aggregate = rotated.into_iter().map(item).collect();
            a == b && a.count == items.len() as u64
        }

        fn sub_undoes_add(base: Vec<u128>, extra: Vec<u128>) -> bool {
            let start: Aggregate = base.into_iter().map(item).collect();
            let mut agg = start;
            for &x in &extra {
                agg.add(item(x));
            }
            for &x in extra.iter().rev() {
                agg.sub(item(x));
            }
            agg == start
        }

        fn merge_is_union(a: Vec<u128>, b: Vec<u128>) -> bool {
            let left: Aggregate = a.iter().copied().map(item).collect();
            let right: Aggregate = b.iter().copied().map(item).collect();
            let union: Aggregate = a.iter().chain(&b).copied().map(item).collect();
            left.merged(&right) == union
                && right.merged(&left) == union
                && union.unmerged(&right) == left
        }

        fn one_more_item_changes_everything(items: Vec<u128>, extra: u128) -> bool {
            let before: Aggregate = items.iter().copied().map(item).collect();
            let mut after = before;
            after.add(item(extra));
            after != before && after.digest() != before.digest()
        }
    }
}
