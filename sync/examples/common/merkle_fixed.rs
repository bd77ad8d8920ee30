//! `merkle_fixed`: anti-entropy the way Cassandra's repair does it, a
//! fixed-depth binary Merkle tree exchanged whole, then every item of every
//! mismatching leaf range streamed in both directions.
//!
//! What is modelled, and how it is tuned:
//!
//! - **The tree.** Depth 15: 32 768 leaves, leaf `i` covering the key
//!   hashes whose top 15 bits are `i` (Cassandra splits the token range the
//!   same way, by midpoints; 15 was its long-standing maximum depth). A
//!   leaf's hash is 32 bytes, as Cassandra's (`MerkleTree.HASH_SIZE = 32`,
//!   two MurmurHash3-128 digests): here blake3 of the leaf's item-hash sum
//!   and count, built from the item hashes the store already keeps
//!   (Cassandra XORs row hashes instead, and reads and hashes every row to
//!   build the tree, which we do not charge).
//! - **The exchange.** `A` sends its leaf level, 32 768 × 32 bytes =
//!   1 MiB, whatever `N` is. Inner nodes are not sent: with a fixed shape,
//!   the leaves are all a peer needs to compare. (Cassandra serializes the
//!   whole tree, inner nodes included, so this is a lower estimate of its
//!   tree traffic; Cassandra also has each replica send its tree to the
//!   coordinator, which with two replicas and `A` coordinating is the same
//!   one tree on the wire.) `B` compares with its own leaves and answers
//!   with the mismatching leaves (a 4 KiB bitmap or a list of
//!   delta-encoded varint indices, whichever is smaller) followed by every
//!   `(key, value)` it holds in them; `A` then sends every item it holds in
//!   them (encoded before it joins `B`'s). Each side joins what it
//!   receives. Three messages (three legs: a round trip and a half), two
//!   round trips started; one round trip when the
//!   trees agree.
//! - **CPU** per side: building its leaf hashes, comparing, encoding,
//!   decoding and joining.

use std::time::Instant;

use accordant_sync::digest::{Aggregate, KeyHash};
use accordant_sync::store::StoreValue;
use accordant_sync::tree::NodeId;

use super::model::Keyed;
use super::wire::{push_items, push_varint, read_items, read_raw, read_varint};
use super::Outcome;

/// Depth of the binary tree.
pub(crate) const DEPTH: u32 = 15;
/// Leaves of the tree.
pub(crate) const LEAVES: usize = 1 << DEPTH;
/// Bytes of one node hash on the wire.
pub(crate) const HASH_BYTES: usize = 32;

/// The leaf covering `h`.
fn leaf_of(h: KeyHash) -> usize {
    (h.0 >> (64 - DEPTH)) as usize
}

/// The leaf level of `store`'s tree: `LEAVES` hashes of `HASH_BYTES`, an
/// empty leaf hashing to zeros.
fn leaf_hashes<V: StoreValue>(store: &Keyed<V>) -> Vec<u8> {
    let mut aggs = vec![Aggregate::EMPTY; LEAVES];
    for (h, _, _, item) in store.items_in(NodeId::ROOT) {
        aggs[leaf_of(h)].add(item);
    }
    let mut out = vec![0u8; LEAVES * HASH_BYTES];
    for (agg, slot) in aggs.iter().zip(out.chunks_exact_mut(HASH_BYTES)) {
        if !agg.is_empty() {
            slot.copy_from_slice(agg.digest().as_bytes());
        }
    }
    out
}

/// Every `(key, value)` of `store` in the given leaves (sorted).
fn items_in_leaves<V: StoreValue>(store: &Keyed<V>, leaves: &[u32]) -> Vec<(u64, V)> {
    let mut items = Vec::new();
    for &leaf in leaves {
        // A 15-bit leaf is two of the store's 16-bit (level 4) nodes.
        for half in 0..2 {
            if let Some(node) = NodeId::new(4, 2 * u64::from(leaf) + half) {
                items.extend(store.items_in(node).map(|(_, k, v, _)| (k, v)));
            }
        }
    }
    items
}

/// The mismatching leaves: a tag, then a bitmap of `LEAVES` bits or a
/// varint count and delta-encoded varint indices, whichever is shorter.
fn encode_mismatch(buf: &mut Vec<u8>, leaves: &[u32]) {
    let mut list = Vec::new();
    push_varint(&mut list, leaves.len() as u64);
    let mut prev = 0u32;
    for &l in leaves {
        push_varint(&mut list, u64::from(l - prev));
        prev = l;
    }
    if list.len() <= LEAVES / 8 {
        buf.push(1);
        buf.extend_from_slice(&list);
    } else {
        buf.push(0);
        let mut bitmap = vec![0u8; LEAVES / 8];
        for &l in leaves {
            bitmap[l as usize / 8] |= 1 << (l % 8);
        }
        buf.extend_from_slice(&bitmap);
    }
}

fn decode_mismatch(buf: &[u8], pos: &mut usize) -> Result<Vec<u32>, String> {
    let tag = read_raw(buf, pos, 1)?[0];
    let mut leaves = Vec::new();
    match tag {
        0 => {
            let bitmap = read_raw(buf, pos, LEAVES / 8)?;
            for (i, byte) in bitmap.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        leaves.push((i * 8 + bit) as u32);
                    }
                }
            }
        }
        1 => {
            let count = read_varint(buf, pos)?;
            let mut leaf = 0u64;
            for i in 0..count {
                let step = read_varint(buf, pos)?;
                if i > 0 && step == 0 {
                    return Err("leaves not increasing".into());
                }
                leaf = leaf.checked_add(step).ok_or("leaf overflow")?;
                if leaf >= LEAVES as u64 {
                    return Err("leaf out of range".into());
                }
                leaves.push(leaf as u32);
            }
        }
        _ => return Err("bad mismatch tag".into()),
    }
    Ok(leaves)
}

/// Fixed-depth Merkle repair, `a` coordinating.
pub(crate) fn run<V: StoreValue>(a: &mut Keyed<V>, b: &mut Keyed<V>) -> Outcome {
    let mut out = Outcome::default();
    // A: its tree.
    let t = Instant::now();
    let tree = leaf_hashes(a);
    out.cpu_a += t.elapsed();
    out.bytes_a_to_b += tree.len() as u64;
    // B: compare, answer with the mismatching leaves and its items there.
    let t = Instant::now();
    let mine = leaf_hashes(b);
    let mismatch: Vec<u32> = tree
        .chunks_exact(HASH_BYTES)
        .zip(mine.chunks_exact(HASH_BYTES))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i as u32)
        .collect();
    let mut to_a = Vec::new();
    encode_mismatch(&mut to_a, &mismatch);
    if !mismatch.is_empty() {
        push_items(
            &mut to_a,
            items_in_leaves(b, &mismatch).iter().map(|(k, v)| (k, v)),
        );
    }
    out.cpu_b += t.elapsed();
    out.bytes_b_to_a += to_a.len() as u64;
    out.messages = 2;
    // A: its own items in those leaves, then join B's.
    let t = Instant::now();
    let mut pos = 0;
    let parsed = decode_mismatch(&to_a, &mut pos).and_then(|leaves| {
        let theirs = if leaves.is_empty() {
            Vec::new()
        } else {
            read_items::<V>(&to_a, &mut pos)?
        };
        if pos != to_a.len() {
            return Err("trailing bytes".to_string());
        }
        Ok((leaves, theirs))
    });
    let (leaves, theirs) = match parsed {
        Ok(x) => x,
        Err(e) => {
            out.error = Some(format!("A: {e}"));
            return out;
        }
    };
    if leaves.is_empty() {
        out.cpu_a += t.elapsed();
        out.round_trips = 1;
        out.legs = 2;
        return out;
    }
    let mut to_b = Vec::new();
    push_items(
        &mut to_b,
        items_in_leaves(a, &leaves).iter().map(|(k, v)| (k, v)),
    );
    for (k, v) in theirs {
        a.join(k, &v);
    }
    out.cpu_a += t.elapsed();
    out.bytes_a_to_b += to_b.len() as u64;
    out.messages = 3;
    out.round_trips = 2;
    out.legs = 3;
    // B: join A's items.
    let t = Instant::now();
    let mut pos = 0;
    match read_items::<V>(&to_b, &mut pos) {
        Ok(items) if pos == to_b.len() => {
            for (k, v) in items {
                b.join(k, &v);
            }
        }
        Ok(_) => out.error = Some("B: trailing bytes".into()),
        Err(e) => out.error = Some(format!("B: {e}")),
    }
    out.cpu_b += t.elapsed();
    out.notes.push(format!(
        "  {} of {LEAVES} leaves mismatched; tree {} bytes",
        leaves.len(),
        tree.len()
    ));
    out
}
