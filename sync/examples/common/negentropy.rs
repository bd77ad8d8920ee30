//! `negentropy`: range-based set reconciliation by the `negentropy` crate
//! (0.5.3, Doug Hoyte's protocol; Meyer, "Range-Based Set Reconciliation",
//! SRDS 2023), then one more round trip to ship the values of the keys it
//! found.
//!
//! What is modelled, and how it is tuned:
//!
//! - **Items.** One per `(key, value)`: timestamp 0 and a 32-byte id made
//!   of the 8-byte key hash, the 16-byte item hash the store keeps
//!   (blake3 of the key's and the value's digests), and 8 zero bytes (the
//!   crate's ids are 32 bytes and travel whole). A changed value is a new
//!   item, so a key that differs counts as it must in set reconciliation:
//!   a delete plus an insert. Timestamp 0 with ids that start with the
//!   key hash orders items by key hash, as the store does, and keeps range
//!   bounds short (a bound is the shortest id prefix that separates two
//!   items, 2 or 3 bytes here, where distinct timestamps would cost a
//!   varint of up to 10 bytes).
//! - **Reconciliation.** `A` is the crate's initiator, `B` its server; no
//!   frame-size limit (fewest round trips). The crate builds every message;
//!   we count its bytes. It ends with `A` knowing the ids it has that `B`
//!   lacks (`have`) and the ids `B` has that it lacks (`need`).
//! - **Values**, one more round trip. `A` sends the full value of every key
//!   of `have`, and asks by 8-byte key hash for the keys of `need` it did
//!   not just send (a key whose hash is in both lists is one that both
//!   sides hold with different values; `A`'s value goes over and `B`
//!   answers with what `A` lacks). `B` joins each value and answers with
//!   the minimal delta `Δ(b, a)` of each key where it is not empty, and the
//!   full value of each key asked for. The answer is always sent, empty or
//!   not: it is how `A` learns the session is over.
//! - **CPU** per side: every call into the crate and the value phase. The
//!   crate's sorted item vector is built before the clock starts, since a
//!   deployment would maintain it alongside the data, as the store
//!   maintains its digest tree; `--verbose` prints what building it costs.

use std::collections::BTreeSet;
use std::time::Instant;

use ::negentropy::{Id, Negentropy, NegentropyStorageBase, NegentropyStorageVector};
use accordant_sync::digest::{ItemHash, KeyHash};
use accordant_sync::store::StoreValue;
use accordant_sync::tree::NodeId;

use super::model::Keyed;
use super::wire::{join_all, push_items, push_varint, read_items, read_raw, read_varint};
use super::Outcome;

/// The negentropy id of an item.
fn id_of(h: KeyHash, item: ItemHash) -> Id {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&h.0.to_be_bytes());
    bytes[8..24].copy_from_slice(&item.0.to_be_bytes());
    Id::from_byte_array(bytes)
}

/// The key hash and item hash an id was made of.
fn parts(id: &Id) -> (KeyHash, ItemHash) {
    let b = id.as_bytes();
    let mut h = [0u8; 8];
    h.copy_from_slice(&b[..8]);
    let mut i = [0u8; 16];
    i.copy_from_slice(&b[8..24]);
    (
        KeyHash(u64::from_be_bytes(h)),
        ItemHash(u128::from_be_bytes(i)),
    )
}

/// The crate's sealed storage of every item of `store`.
fn storage<V: StoreValue>(store: &Keyed<V>) -> Result<NegentropyStorageVector, String> {
    let mut s = NegentropyStorageVector::with_capacity(store.len());
    for (h, _, _, item) in store.items_in(NodeId::ROOT) {
        s.insert(0, id_of(h, item)).map_err(|e| e.to_string())?;
    }
    s.seal().map_err(|e| e.to_string())?;
    Ok(s)
}

/// Maps the crate's errors on `side`.
fn e(side: &'static str) -> impl Fn(::negentropy::Error) -> String {
    move |err| format!("{side}: {err}")
}

/// Negentropy reconciliation, then the values; `a` initiates.
pub(crate) fn run<V: StoreValue>(a: &mut Keyed<V>, b: &mut Keyed<V>) -> Outcome {
    let mut out = Outcome::default();
    if let Err(e) = run_inner(a, b, &mut out) {
        out.error = Some(e);
    }
    out
}

fn run_inner<V: StoreValue>(
    a: &mut Keyed<V>,
    b: &mut Keyed<V>,
    out: &mut Outcome,
) -> Result<(), String> {
    let t = Instant::now();
    let (sa, sb) = (storage(a)?, storage(b)?);
    out.notes.push(format!(
        "  item vectors ({} and {} items) built in {:.2?}, not counted",
        sa.size().map_err(e("A"))?,
        sb.size().map_err(e("B"))?,
        t.elapsed()
    ));
    let mut turns = 0u64;
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let t = Instant::now();
    let mut na = Negentropy::borrowed(&sa, 0).map_err(e("A"))?;
    let mut msg = na.initiate().map_err(e("A"))?;
    out.cpu_a += t.elapsed();
    let t = Instant::now();
    let mut nb = Negentropy::borrowed(&sb, 0).map_err(e("B"))?;
    out.cpu_b += t.elapsed();
    loop {
        out.bytes_a_to_b += msg.len() as u64;
        turns += 1;
        let t = Instant::now();
        let reply = nb.reconcile(&msg).map_err(e("B"))?;
        out.cpu_b += t.elapsed();
        out.bytes_b_to_a += reply.len() as u64;
        turns += 1;
        let t = Instant::now();
        let next = na
            .reconcile_with_ids(&reply, &mut have, &mut need)
            .map_err(e("A"))?;
        out.cpu_a += t.elapsed();
        match next {
            Some(m) => msg = m,
            None => break,
        }
    }
    let reconcile_turns = turns;
    if !(have.is_empty() && need.is_empty()) {
        // A: the values of `have`, and the key hashes of `need` it lacks.
        let t = Instant::now();
        let mut items = Vec::new();
        let mut sent = BTreeSet::new();
        for id in &have {
            let (h, item) = parts(id);
            for (k, v, i) in a.items_at(h) {
                if i == item {
                    items.push((k, v));
                    sent.insert(h);
                }
            }
        }
        let ask: BTreeSet<u64> = need
            .iter()
            .map(|id| parts(id).0)
            .filter(|h| !sent.contains(h))
            .map(|h| h.0)
            .collect();
        let mut to_b = Vec::new();
        push_items(&mut to_b, items.iter().map(|(k, v)| (k, v)));
        push_varint(&mut to_b, ask.len() as u64);
        for h in &ask {
            to_b.extend_from_slice(&h.to_be_bytes());
        }
        out.cpu_a += t.elapsed();
        out.bytes_a_to_b += to_b.len() as u64;
        // B: join them; answer with what A lacks and what it asked for.
        let t = Instant::now();
        let mut pos = 0;
        let theirs = read_items::<V>(&to_b, &mut pos).map_err(|e| format!("B: {e}"))?;
        let asked = read_varint(&to_b, &mut pos)?;
        let mut asked_hashes = Vec::new();
        for _ in 0..asked {
            let raw = read_raw(&to_b, &mut pos, 8)?;
            let mut h = [0u8; 8];
            h.copy_from_slice(raw);
            asked_hashes.push(KeyHash(u64::from_be_bytes(h)));
        }
        if pos != to_b.len() {
            return Err("B: trailing bytes".into());
        }
        let mut answer: Vec<(u64, V)> = Vec::new();
        for (k, v) in theirs {
            if let Some(mine) = b.get(&k) {
                let lacks = mine.delta(&v);
                if !lacks.is_bottom() {
                    answer.push((k, lacks));
                }
            }
            b.join(k, &v);
        }
        for h in asked_hashes {
            answer.extend(b.items_at(h).map(|(k, v, _)| (k, v)));
        }
        let mut to_a = Vec::new();
        push_items(&mut to_a, answer.iter().map(|(k, v)| (k, v)));
        out.cpu_b += t.elapsed();
        out.bytes_b_to_a += to_a.len() as u64;
        // A: join the answer.
        let t = Instant::now();
        join_all(a, &to_a).map_err(|e| format!("A: {e}"))?;
        out.cpu_a += t.elapsed();
        turns += 2;
    }
    out.messages = turns;
    out.legs = turns;
    out.round_trips = turns.div_ceil(2);
    out.notes.push(format!(
        "  {} reconciliation round trips; have {} need {} ids",
        reconcile_turns / 2,
        have.len(),
        need.len()
    ));
    Ok(())
}
