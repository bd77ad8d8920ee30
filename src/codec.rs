//! Canonical binary encoding and bounded, validating decoding.
//!
//! Every CRDT of this crate has exactly one byte string per state, whatever
//! order its operations happened in: equal states encode to equal bytes, so a
//! digest of the encoding identifies the state (the sync crate relies on it).
//! The bytes are [postcard](https://docs.rs/postcard) (varints, no field
//! names) of a *wire form*: collections sorted, replica ids interned once per
//! state (a dot costs an index and a counter, not 16 bytes of UUID), dot
//! ranges delta-encoded.
//!
//! Decoding treats its input as hostile (the approach of rustls'
//! `msgs/codec.rs`):
//! - the input length is checked against [`Limits::max_bytes`] first;
//! - no sequence preallocates from a length the input claims: [`SeqVec`]
//!   grows one element at a time, so memory stays proportional to the bytes
//!   actually read, and a claim of 2^60 elements fails at the end of input;
//! - bytes left after the value are an error ([`DecodeError::TrailingBytes`]);
//! - an overlong varint (which postcard itself accepts) is
//!   [`DecodeError::NonCanonical`], so accepted bytes re-encode to themselves;
//! - the decoded form is validated: sorted and duplicate-free (anything else
//!   is [`DecodeError::NonCanonical`]), and type invariants hold (a dot not
//!   covered by its own causal context is [`DecodeError::Invalid`]).
//!
//! ```
//! use accordant::{codec, GCounter, ReplicaId};
//! let mut c = GCounter::new();
//! let _ = c.increment(ReplicaId::from_u128(7), 5).unwrap();
//! let bytes = codec::encode(&c);
//! let back: GCounter = codec::decode(&bytes, &codec::Limits::default()).unwrap();
//! assert_eq!(back, c);
//! let mut longer = bytes.clone();
//! longer.push(0);
//! assert!(codec::decode::<GCounter>(&longer, &codec::Limits::default()).is_err());
//! ```

use core::fmt;
use core::marker::PhantomData;

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::DecodeError;

/// Bounds applied while decoding untrusted bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Largest number of items (dots, elements, entries, replicas) in one
    /// decoded value.
    pub max_items: usize,
}

impl Limits {
    /// Limits of `max_bytes` bytes and as many items.
    pub const fn new(max_bytes: usize) -> Self {
        Limits {
            max_bytes,
            max_items: max_bytes,
        }
    }

    /// Returns these limits with `max_items` replaced.
    pub const fn with_max_items(mut self, max_items: usize) -> Self {
        self.max_items = max_items;
        self
    }

    /// No limit beyond what the input holds (still never preallocates).
    pub const fn unlimited() -> Self {
        Limits::new(usize::MAX)
    }
}

impl Default for Limits {
    /// 64 MiB and as many items.
    fn default() -> Self {
        Limits::new(64 << 20)
    }
}

/// The item allowance left while validating one decoded value.
#[derive(Debug)]
pub struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    /// A budget of `limits.max_items` items.
    pub fn new(limits: &Limits) -> Self {
        Budget {
            left: limits.max_items,
            limit: limits.max_items,
        }
    }

    /// Spends `n` items, failing once the allowance is exhausted.
    pub fn take(&mut self, n: usize) -> Result<(), DecodeError> {
        self.left = self
            .left
            .checked_sub(n)
            .ok_or(DecodeError::TooManyItems { limit: self.limit })?;
        Ok(())
    }
}

/// A type with a canonical wire form.
///
/// `to_wire` must produce the same wire value for equal states, and
/// `from_wire` must accept exactly the wire values `to_wire` can produce
/// (rejecting everything else with a typed error), so that
/// `encode(decode(bytes)?) == bytes` for every accepted input.
pub trait Canonical: Sized {
    /// The serialisable wire form.
    type Wire: Serialize + DeserializeOwned;

    /// Converts to the wire form.
    fn to_wire(&self) -> Self::Wire;

    /// Validates a decoded wire form and builds the state.
    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError>;

    /// Serialises the wire form straight from the state.
    ///
    /// Must write exactly what `self.to_wire().serialize(s)` writes (the
    /// default does just that); types override it to skip building the
    /// wire form (cloning elements, collecting vectors) on the hot path of
    /// [`encode_into`].
    fn serialize_wire<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(s)
    }
}

/// The version of the canonical encoding, bumped whenever the bytes of some
/// state change, so that stored or shipped encodings can be told apart.
///
/// - 1: the first encoding.
/// - 2: an [`OrSet`](crate::OrSet)'s store lists its live dots as runs of
///   positions within its causal context, then its elements in dot order
///   (it listed each element with its dots). Every other type encodes as in
///   version 1.
pub const VERSION: u16 = 2;

/// A state serialised through [`Canonical::serialize_wire`].
struct Streamed<'a, T>(&'a T);

impl<T: Canonical> Serialize for Streamed<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_wire(s)
    }
}

/// A postcard output that appends to a caller's buffer, copying byte
/// strings in one go.
struct Appender<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Appender<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Encodes a state canonically.
///
/// Allocates a fresh vector; [`encode_into`] reuses one.
pub fn encode<T: Canonical>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Encodes a state canonically into `out`, replacing its contents and
/// keeping its allocation: a buffer reused across calls stops growing once
/// it has held the largest encoding.
///
/// ```
/// use accordant::{codec, GCounter, ReplicaId};
/// let mut buf = Vec::with_capacity(64);
/// let mut c = GCounter::new();
/// for n in 1..=10 {
///     let _ = c.increment(ReplicaId::from_u128(u128::from(n % 3)), n).unwrap();
///     codec::encode_into(&c, &mut buf);
///     assert_eq!(buf, codec::encode(&c));
/// }
/// assert_eq!(buf.capacity(), 64, "never reallocated");
/// ```
pub fn encode_into<T: Canonical>(value: &T, out: &mut Vec<u8>) {
    out.clear();
    // Serialising plain data cannot fail: postcard only errors on
    // unsupported serde features, which the wire forms do not use, and
    // this output never runs out of space.
    let _ = postcard::serialize_with_flavor::<_, _, ()>(&Streamed(value), Appender(out));
}

/// The length of `encode(value)`, computed without allocating it.
pub fn encoded_len<T: Canonical>(value: &T) -> usize {
    postcard::experimental::serialized_size(&Streamed(value)).unwrap_or(0)
}

/// Decodes and validates a state from untrusted bytes.
pub fn decode<T: Canonical>(bytes: &[u8], limits: &Limits) -> Result<T, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let (wire, rest) = postcard::take_from_bytes::<T::Wire>(bytes).map_err(malformed)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    // postcard accepts overlong varints (`[0x80, 0x00]` reads as 0); the
    // canonical encoding of the wire value is then shorter than the input.
    if postcard::experimental::serialized_size(&wire) != Ok(bytes.len()) {
        return Err(DecodeError::NonCanonical("overlong varint"));
    }
    T::from_wire(wire, &mut Budget::new(limits))
}

/// A postcard failure, as a [`DecodeError`] that names no postcard type.
fn malformed(e: postcard::Error) -> DecodeError {
    use postcard::Error as P;
    DecodeError::Malformed(match e {
        P::DeserializeUnexpectedEnd => "unexpected end of input",
        P::DeserializeBadVarint => "bad varint",
        P::DeserializeBadBool => "bad bool",
        P::DeserializeBadChar => "bad char",
        P::DeserializeBadUtf8 => "bad utf-8",
        P::DeserializeBadOption => "bad option tag",
        P::DeserializeBadEnum => "bad enum tag",
        P::DeserializeBadEncoding => "bad encoding",
        P::DeserializeBadCrc => "bad crc",
        P::SerdeDeCustom => "invalid value",
        _ => "postcard error",
    })
}

/// A sequence on the wire that never preallocates from the claimed length.
///
/// serde's `Vec<T>` reserves up to 1 MiB from the length prefix the peer
/// sent; `SeqVec` pushes element by element, so a hostile length costs
/// nothing until the elements are actually there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqVec<T>(pub Vec<T>);

impl<T> Default for SeqVec<T> {
    fn default() -> Self {
        SeqVec(Vec::new())
    }
}

impl<T: Serialize> Serialize for SeqVec<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SeqVec<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = SeqVec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element()? {
                    out.push(x);
                }
                Ok(SeqVec(out))
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// A value on the wire, written as a byte string when it is a `Vec<u8>`.
///
/// serde sees a `Vec<u8>` as a sequence of `u8`s, so postcard writes and
/// reads it one byte at a time, a call per byte. Registers wrap their value
/// in `WireValue`: a `Vec<u8>` (told apart by its [`TypeId`](core::any::TypeId),
/// since stable Rust has no specialisation) goes through serde's `bytes`
/// instead, which postcard copies in one go, and every other type through
/// its own `Serialize`. Postcard writes a byte string exactly as a
/// sequence of `u8`s (the length, then the bytes), so the encoding, and the
/// version of the codec, are unchanged; a claimed length beyond the input
/// still fails before anything is allocated. Formats with a distinct byte
/// string type (CBOR, MessagePack) now write one, and still read the old
/// sequence of integers.
///
/// ```
/// use accordant::codec::WireValue;
/// let v = vec![1u8, 2, 3];
/// let fast = postcard::to_allocvec(&WireValue(v.clone())).unwrap();
/// assert_eq!(fast, postcard::to_allocvec(&v).unwrap());
/// let back: WireValue<Vec<u8>> = postcard::from_bytes(&fast).unwrap();
/// assert_eq!(back.0, v);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireValue<V>(pub V);

/// A borrowed [`WireValue`], to serialise a value in place.
pub(crate) struct WireValueRef<'a, V>(pub(crate) &'a V);

impl<V: Serialize + 'static> Serialize for WireValueRef<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (self.0 as &dyn core::any::Any).downcast_ref::<Vec<u8>>() {
            Some(bytes) => s.serialize_bytes(bytes),
            None => self.0.serialize(s),
        }
    }
}

impl<V: Serialize + 'static> Serialize for WireValue<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireValueRef(&self.0).serialize(s)
    }
}

impl<'de, V: Deserialize<'de> + 'static> Deserialize<'de> for WireValue<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut slot: Option<V> = None;
        if let Some(bytes) =
            (&mut slot as &mut dyn core::any::Any).downcast_mut::<Option<Vec<u8>>>()
        {
            *bytes = Some(crate::Bytes::deserialize(d)?.into_vec());
        } else {
            slot = Some(V::deserialize(d)?);
        }
        // `slot` was filled on both paths.
        slot.map(WireValue)
            .ok_or_else(|| <D::Error as serde::de::Error>::custom("no value"))
    }
}

/// Checks that `items` is strictly increasing under `less`.
pub(crate) fn strictly_sorted<T>(items: &[T], less: impl Fn(&T, &T) -> bool) -> bool {
    items.windows(2).all(|w| less(&w[0], &w[1]))
}

/// Implements serde's traits for a [`Canonical`] type through its wire form,
/// so CRDTs embed in any serde format with the same validation as [`decode`].
macro_rules! serde_via_wire {
    ([$($g:tt)*] $ty:ty) => {
        impl<$($g)*> serde::Serialize for $ty
        where
            $ty: $crate::codec::Canonical,
        {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                $crate::codec::Canonical::serialize_wire(self, s)
            }
        }

        impl<'de, $($g)*> serde::Deserialize<'de> for $ty
        where
            $ty: $crate::codec::Canonical,
        {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let wire = <<$ty as $crate::codec::Canonical>::Wire as serde::Deserialize>::deserialize(d)?;
                let mut budget = $crate::codec::Budget::new(&$crate::codec::Limits::unlimited());
                <$ty as $crate::codec::Canonical>::from_wire(wire, &mut budget)
                    .map_err(<D::Error as serde::de::Error>::custom)
            }
        }
    };
}
pub(crate) use serde_via_wire;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_claimed_length_fails_without_allocating() {
        // varint 2^60, then nothing: serde's Vec would reserve, SeqVec must not.
        let mut bytes = Vec::new();
        let mut n: u64 = 1 << 60;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        let r = postcard::from_bytes::<SeqVec<(u64, u64)>>(&bytes);
        assert!(r.is_err());
    }

    #[test]
    fn seqvec_round_trips() {
        let v = SeqVec(vec![(1u64, 2u64), (3, 4)]);
        let b = postcard::to_allocvec(&v).unwrap();
        assert_eq!(b, vec![2, 1, 2, 3, 4]);
        assert_eq!(postcard::from_bytes::<SeqVec<(u64, u64)>>(&b).unwrap(), v);
    }

    #[test]
    fn overlong_varint_is_not_canonical() {
        // An empty counter is `[0]`; `[0x80, 0x00]` is the same value, overlong.
        let r = decode::<crate::GCounter>(&[0x80, 0x00], &Limits::default());
        assert_eq!(r, Err(DecodeError::NonCanonical("overlong varint")));
        assert!(decode::<crate::GCounter>(&[0x00], &Limits::default()).is_ok());
    }

    #[test]
    fn budget_exhausts() {
        let mut b = Budget::new(&Limits::new(100).with_max_items(3));
        assert!(b.take(2).is_ok());
        assert!(b.take(1).is_ok());
        assert_eq!(b.take(1), Err(DecodeError::TooManyItems { limit: 3 }));
    }
}
