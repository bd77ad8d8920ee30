//! Store keys on the wire: their canonical bytes, and decoding them back
//! from untrusted input.
//!
//! A key's canonical bytes are its postcard encoding; the store hashes them
//! to place the key in the digest tree ([`crate::digest::KeyHash`]), and
//! every message or file that carries a key carries these bytes. Decoding
//! checks the length against a limit first, decodes exactly (no trailing
//! bytes), and re-encodes to refuse a non-canonical form: two byte strings
//! that decode to the same key would otherwise hash to two places.
//!
//! ```
//! use accordant::codec::Limits;
//! use accordant_sync::key::{decode_key, key_bytes};
//! let bytes = key_bytes(&"cart:alice".to_string());
//! let back: String = decode_key(&bytes, &Limits::default()).unwrap();
//! assert_eq!(back, "cart:alice");
//! assert!(decode_key::<String>(&bytes[..3], &Limits::default()).is_err());
//! ```

use accordant::codec::Limits;
use accordant::DecodeError;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The canonical bytes of a key (its postcard encoding).
///
/// # Panics
///
/// If the key's `Serialize` implementation fails. Derived implementations
/// and the standard library's types never do; a hand-written one that
/// returns an error (or a sequence of unknown length) cannot be a store
/// key, and the store says so at the first write rather than giving every
/// such key the same empty bytes, and so the same place in the tree.
pub fn key_bytes<K: Serialize + ?Sized>(key: &K) -> Vec<u8> {
    match postcard::to_allocvec(key) {
        Ok(bytes) => bytes,
        Err(e) => panic!("a store key must serialise with postcard: {e}"),
    }
}

/// Decodes a key from untrusted bytes: at most `limits.max_bytes`, exactly
/// (nothing trailing), and canonical (the key re-encodes to `bytes`).
pub fn decode_key<K: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limits: &Limits,
) -> Result<K, DecodeError> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let (key, rest) = postcard::take_from_bytes::<K>(bytes)
        .map_err(|_| DecodeError::Malformed("undecodable key"))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if postcard::to_allocvec(&key).ok().as_deref() != Some(bytes) {
        return Err(DecodeError::NonCanonical("key"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_bad_bytes_are_typed_errors() {
        let lim = Limits::default();
        for k in [0u64, 1, 300, u64::MAX] {
            assert_eq!(decode_key::<u64>(&key_bytes(&k), &lim).unwrap(), k);
        }
        // Overlong varint: decodes to 1 in postcard's lenient reader, but
        // is not the canonical form.
        assert_eq!(
            decode_key::<u64>(&[0x81, 0x00], &lim),
            Err(DecodeError::NonCanonical("key"))
        );
        assert_eq!(
            decode_key::<u8>(&[1, 2], &lim),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            decode_key::<String>(&[200, 1], &lim),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_key::<String>(&key_bytes("abcdef"), &Limits::new(3)),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "a store key must serialise")]
    fn an_unserialisable_key_fails_loudly() {
        struct Broken;
        impl Serialize for Broken {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let _ = key_bytes(&Broken);
    }
}
