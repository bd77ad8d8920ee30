//! `Bytes`: a byte string that serialises as a byte string.
//!
//! serde sees a `Vec<u8>` as a sequence of `u8`s, so postcard writes it one
//! byte at a time, with a call per byte. `Bytes` tells serde it is a byte
//! string (`serialize_bytes`, as the `serde_bytes` crate does), which
//! postcard copies in one go. Postcard writes both as the length followed by
//! the bytes, so swapping `Vec<u8>` for `Bytes` in a value (say an
//! `LwwRegister<Bytes>`) keeps every encoding, and every digest, unchanged.
//!
//! ```
//! use accordant::{codec, Bytes, Hlc, LwwRegister, ReplicaId};
//! let (r, t) = (ReplicaId::from_u128(1), Hlc::new(1_700_000_000_000, 0));
//! let mut fast = LwwRegister::new();
//! let _ = fast.write_at(t, r, Bytes::from(vec![7u8; 256]));
//! let mut slow = LwwRegister::new();
//! let _ = slow.write_at(t, r, vec![7u8; 256]);
//! assert_eq!(codec::encode(&fast), codec::encode(&slow));
//! assert_eq!(fast.get().map(|b| b.len()), Some(256));
//! ```

use core::fmt;
use core::ops::Deref;
use std::borrow::Borrow;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A byte string, serialised with serde's `bytes` (see the module docs).
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(Vec<u8>);

impl Bytes {
    /// The empty byte string.
    pub const fn new() -> Self {
        Bytes(Vec::new())
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Appends `more`.
    pub fn extend_from_slice(&mut self, more: &[u8]) {
        self.0.extend_from_slice(more);
    }

    /// The bytes, as the vector they live in.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes(")?;
        for b in self.0.iter().take(16) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 16 {
            write!(f, "… {} bytes", self.0.len())?;
        }
        write!(f, ")")
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Borrow<[u8]> for Bytes {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for Bytes {
    fn from(v: [u8; N]) -> Self {
        Bytes(v.to_vec())
    }
}

impl From<Bytes> for Vec<u8> {
    fn from(b: Bytes) -> Self {
        b.0
    }
}

impl FromIterator<u8> for Bytes {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        Bytes(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Bytes {
    type Item = &'a u8;
    type IntoIter = core::slice::Iter<'a, u8>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bytes;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }

            /// Formats without byte strings (JSON) write a sequence: grown
            /// one byte at a time, never from a claimed length.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_bytes_are_those_of_a_vec() {
        for len in [0usize, 1, 127, 128, 300] {
            let v: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let as_bytes = postcard::to_allocvec(&Bytes::from(v.clone())).unwrap();
            assert_eq!(as_bytes, postcard::to_allocvec(&v).unwrap());
            let back: Bytes = postcard::from_bytes(&as_bytes).unwrap();
            assert_eq!(back.as_slice(), &v[..]);
        }
    }

    #[test]
    fn a_claimed_length_beyond_the_input_fails() {
        // Length 2^20, then three bytes.
        let bytes = [0x80, 0x80, 0x40, 1, 2, 3];
        assert!(postcard::from_bytes::<Bytes>(&bytes).is_err());
    }
}
