//! The byte formats the baselines ship: LEB128 varints and
//! `(key, value)` item lists (a varint count, then each item's canonical key
//! bytes and `accordant::codec` value encoding, each prefixed by its length
//! as a varint). Decoding checks every length against what is left of the
//! buffer before slicing, and reports trailing bytes.

use accordant::codec::{self, Limits};
use accordant_sync::key::key_bytes;
use accordant_sync::store::StoreValue;

use super::model::Keyed;

/// Appends `n` as a LEB128 varint.
pub(crate) fn push_varint(buf: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads a LEB128 varint at `*pos`.
pub(crate) fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(n);
        }
    }
    Err("overlong varint".into())
}

/// Reads `len` raw bytes at `*pos`.
pub(crate) fn read_raw<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], String> {
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or("truncated message")?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

/// Reads a varint-length-prefixed byte string at `*pos`.
pub(crate) fn read_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], String> {
    let len = usize::try_from(read_varint(buf, pos)?).map_err(|_| "length overflow")?;
    read_raw(buf, pos, len)
}

/// Appends one item: length-prefixed key bytes and value encoding.
pub(crate) fn push_item<V: StoreValue>(buf: &mut Vec<u8>, key: &u64, value: &V) {
    let kb = key_bytes(key);
    push_varint(buf, kb.len() as u64);
    buf.extend_from_slice(&kb);
    let vb = codec::encode(value);
    push_varint(buf, vb.len() as u64);
    buf.extend_from_slice(&vb);
}

/// Appends an item list: a varint count, then the items.
pub(crate) fn push_items<'a, V: StoreValue + 'a>(
    buf: &mut Vec<u8>,
    items: impl ExactSizeIterator<Item = (&'a u64, &'a V)>,
) {
    push_varint(buf, items.len() as u64);
    for (k, v) in items {
        push_item(buf, k, v);
    }
}

/// Every `(key, value)` of `store` as an item list.
pub(crate) fn encode_all<V: StoreValue>(store: &Keyed<V>) -> Vec<u8> {
    let mut buf = Vec::new();
    let items: Vec<_> = store.iter().collect();
    push_items(&mut buf, items.iter().map(|(k, v)| (k, v)));
    buf
}

/// Reads an item list at `*pos`, decoding every key and value (nothing is
/// applied until the whole list is valid).
pub(crate) fn read_items<V: StoreValue>(
    buf: &[u8],
    pos: &mut usize,
) -> Result<Vec<(u64, V)>, String> {
    let limits = Limits::default();
    let count = read_varint(buf, pos)?;
    let mut items = Vec::new();
    for _ in 0..count {
        let kb = read_bytes(buf, pos)?;
        let k: u64 = postcard::from_bytes(kb).map_err(|e| format!("key: {e}"))?;
        let v: V =
            codec::decode(read_bytes(buf, pos)?, &limits).map_err(|e| format!("value: {e}"))?;
        items.push((k, v));
    }
    Ok(items)
}

/// Decodes a message that is one item list, whole, then joins it into
/// `store`.
pub(crate) fn join_all<V: StoreValue>(store: &mut Keyed<V>, buf: &[u8]) -> Result<(), String> {
    let mut pos = 0;
    let items = read_items::<V>(buf, &mut pos)?;
    if pos != buf.len() {
        return Err("trailing bytes".into());
    }
    for (k, v) in items {
        store.join(k, &v);
    }
    Ok(())
}
