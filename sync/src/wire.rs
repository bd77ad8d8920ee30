//! The one wire toolkit every decoder of this crate reads through.
//!
//! Every byte this crate accepts from a peer or a file goes through the
//! same few pieces, so that the rules for untrusted input are written (and
//! tested) once:
//!
//! - [`Reader`]: a bounded cursor over untrusted bytes. Fixed-width
//!   integers, canonical LEB128 varints ([`Reader::varint`]: at most ten
//!   bytes, minimal, no overflow), byte strings whose length is checked
//!   against what is actually there before anything is taken
//!   ([`Reader::bytes`], [`Reader::len_prefixed`]), sub-readers of an exact
//!   length ([`Reader::sub`]), and [`Reader::finish`], which refuses
//!   trailing bytes. Nothing is ever allocated from a length the peer sent.
//! - [`put_varint`] and [`put_len_prefixed`], the writing side.
//! - [`encode_versioned`] / [`decode_versioned`]: one version byte, then a
//!   postcard body decoded *exactly* ([`decode_exact`]: trailing bytes are an
//!   error), after checking the whole length against a limit. The session's
//!   messages and the node's frames are both this.
//! - [`frame`] and [`FrameReader`]: length-delimited frames on a byte
//!   stream, with the length checked against the limit before the frame is
//!   buffered, and the bytes held for an incomplete frame reported
//!   ([`FrameReader::buffered`]) so a transport can budget them.
//!
//! The pattern is the one of rustls' `codec.rs` and quinn's frame parser:
//! read a length, take a sub-reader of exactly that length, report trailing
//! data, and turn every shortfall into a typed error
//! ([`SyncError::Malformed`] with a static description, or
//! [`SyncError::TooLarge`] / [`SyncError::Version`]).
//!
//! ```
//! use accordant_sync::wire::{put_len_prefixed, put_varint, Reader};
//! let mut out = Vec::new();
//! put_varint(&mut out, 300);
//! put_len_prefixed(&mut out, b"hello");
//! let mut r = Reader::new(&out);
//! assert_eq!(r.varint().unwrap(), 300);
//! assert_eq!(r.len_prefixed().unwrap(), b"hello");
//! r.finish().unwrap();
//! // A length that claims more than is there is an error, not an allocation.
//! assert!(Reader::new(&[0xff, 0xff, 0x03, 1, 2]).len_prefixed().is_err());
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::SyncError;

/// A bounded cursor over untrusted bytes. Every method either consumes
/// exactly what it returns or fails with a typed error, leaving the reader
/// unusable for anything but dropping (callers stop at the first error).
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, SyncError> {
        let (&b, rest) = self
            .rest
            .split_first()
            .ok_or(SyncError::Malformed("truncated"))?;
        self.rest = rest;
        Ok(b)
    }

    /// `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], SyncError> {
        let b = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// A little-endian `u32`.
    pub fn u32_le(&mut self) -> Result<u32, SyncError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64_le(&mut self) -> Result<u64, SyncError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A canonical LEB128 varint: at most ten bytes, minimal (an overlong
    /// encoding is malformed, so accepted bytes re-encode to themselves),
    /// within `u64`.
    pub fn varint(&mut self) -> Result<u64, SyncError> {
        let mut n: u64 = 0;
        for i in 0..10u32 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(SyncError::Malformed("varint overflows u64"));
            }
            n |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(SyncError::Malformed("overlong varint"));
                }
                return Ok(n);
            }
        }
        Err(SyncError::Malformed("varint longer than ten bytes"))
    }

    /// A canonical varint that must fit in a `u32`.
    pub fn varint_u32(&mut self) -> Result<u32, SyncError> {
        u32::try_from(self.varint()?).map_err(|_| SyncError::Malformed("varint exceeds u32"))
    }

    /// Exactly `len` bytes, borrowed from the input; fails without
    /// allocating if fewer remain.
    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], SyncError> {
        if self.rest.len() < len {
            return Err(SyncError::Malformed("truncated"));
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    /// A byte string prefixed by its length as a varint.
    pub fn len_prefixed(&mut self) -> Result<&'a [u8], SyncError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| SyncError::Malformed("truncated"))?;
        self.bytes(len)
    }

    /// A reader over exactly the next `len` bytes (they are consumed here).
    pub fn sub(&mut self, len: usize) -> Result<Reader<'a>, SyncError> {
        self.bytes(len).map(Reader::new)
    }

    /// Everything not yet read.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// Succeeds only if everything was read.
    pub fn finish(self) -> Result<(), SyncError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SyncError::Malformed("trailing bytes"))
        }
    }
}

/// Appends `n` as a LEB128 varint (the canonical, minimal form).
pub fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The number of bytes [`put_varint`] writes for `n`.
pub fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `bytes` prefixed by its length as a varint.
pub fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Decodes a postcard value that must span `bytes` exactly: trailing bytes
/// are an error. `what` names the payload in the error.
pub fn decode_exact<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, SyncError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|_| SyncError::Malformed(what))?;
    if !rest.is_empty() {
        return Err(SyncError::Malformed("trailing bytes"));
    }
    Ok(value)
}

/// One version byte, then the postcard encoding of `value`.
///
/// # Panics
///
/// If `T`'s `Serialize` implementation fails, which no type of this crate's
/// wire formats does (they are plain structs of integers, byte strings and
/// sequences of known length).
pub fn encode_versioned<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    let mut out = postcard::to_allocvec(value).expect("wire types always serialise");
    out.insert(0, version);
    out
}

/// The inverse of [`encode_versioned`], for untrusted bytes: the length is
/// checked against `max_len` first, then the version byte, then the body is
/// decoded exactly.
pub fn decode_versioned<T: DeserializeOwned>(
    bytes: &[u8],
    version: u8,
    max_len: usize,
    what: &'static str,
) -> Result<T, SyncError> {
    if bytes.len() > max_len {
        return Err(SyncError::TooLarge {
            len: bytes.len(),
            limit: max_len,
        });
    }
    let mut r = Reader::new(bytes);
    let v = r.u8().map_err(|_| SyncError::Malformed("empty message"))?;
    if v != version {
        return Err(SyncError::Version(v));
    }
    decode_exact(r.rest(), what)
}

/// Prefixes a message with its length (a varint), for byte streams.
pub fn frame(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + varint_len(encoded.len() as u64));
    put_len_prefixed(&mut out, encoded);
    out
}

/// Splits a byte stream into frames made by [`frame`], checking each
/// frame's length against the limit before buffering it.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The length of the frame at the head of the buffer, once its varint
    /// prefix has arrived: `Some((prefix bytes, frame length))`.
    fn head(&self) -> Result<Option<(usize, usize)>, SyncError> {
        let mut len: u64 = 0;
        for (i, &b) in self.buf.iter().enumerate() {
            if i >= 10 || (i == 9 && b > 1) {
                return Err(SyncError::Malformed("bad frame length"));
            }
            len |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(SyncError::Malformed("overlong frame length"));
                }
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                return Ok(Some((i + 1, len)));
            }
        }
        Ok(None)
    }

    /// The length the frame being received claims, once known. A transport
    /// uses it to refuse, before buffering, a frame longer than it allows
    /// at this point of the connection (a handshake, say).
    pub fn pending_len(&self) -> Result<Option<usize>, SyncError> {
        Ok(self.head()?.map(|(_, len)| len))
    }

    /// The next complete frame, if one is buffered. A frame longer than
    /// `max_len` is an error as soon as its length is known.
    pub fn next_frame(&mut self, max_len: usize) -> Result<Option<Vec<u8>>, SyncError> {
        let Some((header, len)) = self.head()? else {
            return Ok(None);
        };
        if len > max_len {
            return Err(SyncError::TooLarge {
                len,
                limit: max_len,
            });
        }
        if self.buf.len() - header < len {
            return Ok(None);
        }
        let msg = self.buf[header..header + len].to_vec();
        self.buf.drain(..header + len);
        Ok(Some(msg))
    }

    /// Bytes buffered but not yet returned: a frame in progress and
    /// whatever followed it.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_canonical_and_bounded() {
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
            let mut r = Reader::new(&out);
            assert_eq!(r.varint().unwrap(), n);
            r.finish().unwrap();
        }
        let bad: [&[u8]; 5] = [
            &[],
            &[0x80],
            &[0x80, 0x00],
            &[0xff; 11],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
        ];
        for b in bad {
            assert!(Reader::new(b).varint().is_err(), "{b:?}");
        }
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x10])
            .varint_u32()
            .is_err());
    }

    #[test]
    fn lengths_are_checked_before_taking() {
        let mut out = Vec::new();
        put_len_prefixed(&mut out, b"abc");
        out.push(9);
        let mut r = Reader::new(&out);
        assert_eq!(r.len_prefixed().unwrap(), b"abc");
        assert!(r.finish().is_err(), "a trailing byte");
        // 2^63 claimed, two bytes present.
        let mut huge = Vec::new();
        put_varint(&mut huge, 1 << 63);
        huge.extend([1, 2]);
        assert!(Reader::new(&huge).len_prefixed().is_err());
        let mut r = Reader::new(&[1, 2, 3, 4, 5]);
        let mut sub = r.sub(4).unwrap();
        assert_eq!(sub.u32_le().unwrap(), u32::from_le_bytes([1, 2, 3, 4]));
        sub.finish().unwrap();
        assert_eq!(r.u8().unwrap(), 5);
        assert!(r.u8().is_err());
    }

    #[test]
    fn versioned_bodies_decode_exactly() {
        let bytes = encode_versioned(3, &(7u32, 9u64));
        assert_eq!(
            decode_versioned::<(u32, u64)>(&bytes, 3, 64, "pair").unwrap(),
            (7, 9)
        );
        assert_eq!(
            decode_versioned::<(u32, u64)>(&bytes, 4, 64, "pair"),
            Err(SyncError::Version(3))
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_versioned::<(u32, u64)>(&longer, 3, 64, "pair").is_err());
        assert!(matches!(
            decode_versioned::<(u32, u64)>(&bytes, 3, 2, "pair"),
            Err(SyncError::TooLarge { .. })
        ));
        assert!(decode_versioned::<(u32, u64)>(&[], 3, 64, "pair").is_err());
    }

    #[test]
    fn frames_split_a_stream_and_refuse_long_ones_early() {
        let (a, b) = (vec![1u8; 300], vec![2u8; 5]);
        let mut stream = frame(&a);
        stream.extend(frame(&b));
        let mut r = FrameReader::new();
        for chunk in stream.chunks(7) {
            r.push(chunk);
        }
        assert_eq!(r.next_frame(1000).unwrap(), Some(a));
        assert_eq!(r.next_frame(1000).unwrap(), Some(b));
        assert_eq!(r.next_frame(1000).unwrap(), None);
        assert_eq!(r.buffered(), 0);
        // The length prefix alone is enough to refuse a frame.
        let mut r = FrameReader::new();
        r.push(&[0x80, 0x80, 0x80, 0x80, 0x20]);
        assert_eq!(r.pending_len().unwrap(), Some(1 << 33));
        assert!(matches!(
            r.next_frame(1 << 20),
            Err(SyncError::TooLarge { .. })
        ));
        let mut r = FrameReader::new();
        r.push(&[0x80, 0x00]);
        assert!(r.next_frame(100).is_err(), "overlong length");
    }
}
