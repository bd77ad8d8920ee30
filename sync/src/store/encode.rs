//! Canonical encodings into a store's reused buffers: the write path's
//! key bytes and value encodings, without an allocation per write.
//!
//! The bytes are exactly those of [`key_bytes`](crate::key::key_bytes)
//! and [`codec::encode`](accordant::codec::encode): the same postcard
//! serialisation of the same wire form ([`Canonical::serialize_wire`]),
//! written into a caller's vector through an output whose byte pushes
//! inline (postcard writes a `Vec<u8>` value one byte at a time, so the
//! output's per-byte cost is most of an encoding's).
//!
//! ```
//! use accordant::{codec, GCounter, ReplicaId};
//! use accordant_sync::digest::{ItemHash, KeyHash};
//! use accordant_sync::key::key_bytes;
//! use accordant_sync::store::Store;
//! use accordant_sync::tree::DigestTree;
//! let mut c = GCounter::new();
//! let _ = c.increment(ReplicaId::from_u128(1), 5).unwrap();
//! let mut s: Store<u8, GCounter> = Store::new();
//! s.join(1, &c);
//! // The store hashed the key's bytes and the value's canonical encoding:
//! let (k, v) = (key_bytes(&1u8), codec::encode(&c));
//! let tree = DigestTree::from_items([(KeyHash::of(&k), ItemHash::from_parts(&k, &v))]);
//! assert_eq!(s.root(), tree.root());
//! ```

use accordant::codec::Canonical;
use serde::{Serialize, Serializer};

/// A postcard output appending to a vector, its pushes inlined.
struct Sink<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Sink<'_> {
    type Output = ();

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A value serialised through its wire form.
struct Wire<'a, V>(&'a V);

impl<V: Canonical> Serialize for Wire<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_wire(s)
    }
}

/// `codec::encode(value)` into `out` (replacing its contents, keeping its
/// allocation).
pub(crate) fn value_into<V: Canonical>(value: &V, out: &mut Vec<u8>) {
    out.clear();
    // Serialising plain data into a vector cannot fail (see
    // `codec::encode_into`).
    let _ = postcard::serialize_with_flavor::<_, _, ()>(&Wire(value), Sink(out));
}

/// `key_bytes(key)` into `out` (replacing its contents, keeping its
/// allocation).
///
/// # Panics
///
/// As [`key_bytes`](crate::key::key_bytes): if the key's `Serialize`
/// implementation fails.
pub(crate) fn key_into<K: Serialize + ?Sized>(key: &K, out: &mut Vec<u8>) {
    out.clear();
    if let Err(e) = postcard::serialize_with_flavor::<_, _, ()>(key, Sink(out)) {
        panic!("a store key must serialise with postcard: {e}");
    }
}

#[cfg(test)]
mod tests {
    use accordant::{codec, GCounter, Hlc, LwwRegister, OrSet, ReplicaId};

    use super::*;
    use crate::key::key_bytes;

    #[test]
    fn encodings_match_the_codec_and_key_bytes() {
        let r = |n| ReplicaId::from_u128(n);
        let mut buf = Vec::new();
        let mut c = GCounter::new();
        for i in 1..=5u64 {
            let _ = c.increment(r(u128::from(i % 3)), i * 1000).unwrap();
            value_into(&c, &mut buf);
            assert_eq!(buf, codec::encode(&c));
        }
        let mut reg = LwwRegister::new();
        let _ = reg.write_at(Hlc::new(77, 3), r(9), vec![5u8; 300]);
        value_into(&reg, &mut buf);
        assert_eq!(buf, codec::encode(&reg));
        let mut set = OrSet::new();
        for e in 0..40u32 {
            let _ = set.add(r(u128::from(e % 4)), e * 7919).unwrap();
        }
        let _ = set.remove(&7919);
        value_into(&set, &mut buf);
        assert_eq!(buf, codec::encode(&set));
        let cap = buf.capacity();
        value_into(&GCounter::new(), &mut buf);
        assert_eq!(buf, codec::encode(&GCounter::new()));
        assert_eq!(buf.capacity(), cap, "the buffer is reused");
        for k in ["", "cart:alice", &"x".repeat(200)] {
            key_into(k, &mut buf);
            assert_eq!(buf, key_bytes(k));
        }
        key_into(&u64::MAX, &mut buf);
        assert_eq!(buf, key_bytes(&u64::MAX));
    }
}
