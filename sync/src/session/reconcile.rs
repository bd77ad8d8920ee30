//! Moving states once the difference is named: the initiator's
//! [`Offer`], the responder's [`Answer`] and the initiator's [`Close`].
//!
//! For every key in the difference the initiator knows which side holds
//! an item under the key's hash prefix ([`crate::sketch::ItemId`]):
//!
//! - a key only it holds travels as a value (`joins`);
//! - an item only the responder holds is wanted by its id (`wants`),
//!   unless it pairs with one of the initiator's keys (one item on each
//!   side under a prefix: the same key, changed);
//! - a key both hold goes as its full value when that is small (`fulls`;
//!   the responder joins it and answers the exact delta
//!   `Δ(responder, value)`), else as its summary (`summaries`, an LWW
//!   stamp, a causal context): the responder answers `delta_for(summary)`,
//!   what the initiator lacks, and with it either its own summary or
//!   nothing, and the initiator closes with what the responder lacks.
//!
//! Answers are positional: the `n`-th delta answers the `n`-th full value,
//! the `n`-th reply the `n`-th summary, the `n`-th closing delta the `n`-th
//! reply, so no key travels twice. Every turn is decoded and validated
//! whole (keys, values, summaries, positions) before any of it is applied.

use std::collections::{BTreeMap, BTreeSet};

use accordant::codec;

use crate::admission::Admit;
use crate::digest::KeyHash;
use crate::error::SyncError;
use crate::key::{decode_key, key_bytes};
use crate::sketch::{Difference, ItemId};
use crate::store::{Store, StoreKey, StoreValue};

use super::message::{size_of, Answer, Bytes, Close, KeySummary, KeyValue, Offer, Reply};
use super::SessionConfig;

/// A responder sends its own summary back only when it is under
/// `1 / SUMMARY_WORTH` of its value; otherwise it asks for the
/// initiator's whole value (for an LWW register, the minimal delta anyway).
pub(super) const SUMMARY_WORTH: usize = 16;

/// Splits a turn into chunks of about `max` bytes (an entry larger than
/// `max` gets a chunk of its own).
#[derive(Debug)]
pub(super) struct Chunker<T> {
    parts: Vec<T>,
    used: usize,
    max: usize,
}

impl<T: Default> Chunker<T> {
    pub(super) fn new(max: usize) -> Self {
        Chunker {
            parts: vec![T::default()],
            used: 0,
            max,
        }
    }

    /// Adds an entry of `size` bytes with `put`.
    pub(super) fn add(&mut self, size: usize, put: impl FnOnce(&mut T)) {
        if self.used > 0 && self.used.saturating_add(size) > self.max {
            self.parts.push(T::default());
            self.used = 0;
        }
        self.used = self.used.saturating_add(size);
        if let Some(last) = self.parts.last_mut() {
            put(last);
        }
    }

    /// Whether nothing was added.
    pub(super) fn is_empty(&self) -> bool {
        self.used == 0 && self.parts.len() == 1
    }

    /// The chunks, in order; `mark(chunk, is_last)` sets their flags.
    pub(super) fn finish(self, mut mark: impl FnMut(&mut T, bool)) -> Vec<T> {
        let mut parts = self.parts;
        let n = parts.len();
        for (i, p) in parts.iter_mut().enumerate() {
            mark(p, i + 1 == n);
        }
        parts
    }
}

fn key<K: StoreKey>(b: &Bytes, config: &SessionConfig) -> Result<K, SyncError> {
    decode_key(&b[..], &config.limits.value).map_err(|source| SyncError::Value {
        what: "key",
        source,
    })
}

fn value<V: StoreValue>(
    b: &Bytes,
    config: &SessionConfig,
    what: &'static str,
) -> Result<V, SyncError> {
    codec::decode::<V>(&b[..], &config.limits.value)
        .map_err(|source| SyncError::Value { what, source })
}

/// A delta that may be empty (nothing).
fn delta<V: StoreValue>(b: &Bytes, config: &SessionConfig) -> Result<Option<V>, SyncError> {
    if b.is_empty() {
        Ok(None)
    } else {
        value(b, config, "delta").map(Some)
    }
}

fn summary<V: StoreValue>(b: &Bytes, config: &SessionConfig) -> Result<V::Summary, SyncError> {
    codec::decode::<V::Summary>(&b[..], &config.limits.value).map_err(|source| SyncError::Value {
        what: "summary",
        source,
    })
}

/// A delta's wire form: empty for nothing.
fn delta_bytes<V: StoreValue>(d: &V) -> Bytes {
    if d.is_bottom() {
        Bytes::default()
    } else {
        Bytes::from(codec::encode(d))
    }
}

/// The id prefix of `k`'s items.
fn prefix_of<K: StoreKey>(k: &K) -> u64 {
    ItemId::prefix_of(KeyHash::of(&key_bytes(k)))
}

fn key_value<K: StoreKey, V: StoreValue>(k: &K, v: &V) -> KeyValue {
    KeyValue {
        key: Bytes::from(key_bytes(k)),
        value: Bytes::from(codec::encode(v)),
    }
}

// ------------------------------------------------------------- initiator

/// What the initiator offered, to read the positional answers.
#[derive(Debug)]
pub(super) struct Offered<K> {
    fulls: Vec<K>,
    summaries: Vec<K>,
    next_full: usize,
    next_summary: usize,
    /// Items wanted.
    wanted: usize,
    /// The closing deltas, one per summary, built as answers arrive.
    closing: Vec<Bytes>,
}

impl<K> Offered<K> {
    /// Whether the responder will answer with replies (and so wait for a
    /// [`Close`]).
    pub(super) fn expects_close(&self) -> bool {
        !self.summaries.is_empty()
    }

    /// Whether the offer asked for anything back.
    pub(super) fn expects_answer(&self) -> bool {
        self.wanted > 0 || !self.fulls.is_empty() || !self.summaries.is_empty()
    }

    /// An offer of nothing (the responder sent everything unasked).
    pub(super) fn none() -> Self {
        Offered {
            fulls: Vec::new(),
            summaries: Vec::new(),
            next_full: 0,
            next_summary: 0,
            wanted: 0,
            closing: Vec::new(),
        }
    }
}

/// The initiator's offer for the difference `d` (ours: `d.receivers`,
/// theirs: `d.senders`), as chunks without their flags, the keys offered,
/// and the number of keys whose state it carries.
pub(super) fn offer<K: StoreKey, V: StoreValue>(
    store: &Store<K, V>,
    d: &Difference,
    config: &SessionConfig,
) -> (Chunker<Offer>, Offered<K>, u64) {
    // Our keys in the difference, by prefix. An id no longer here (a write
    // since we coded) stands for its whole prefix: what is there now.
    let mut ours: BTreeMap<u64, BTreeSet<K>> = BTreeMap::new();
    for id in &d.receivers {
        let node = id.node();
        let keys = ours.entry(id.prefix()).or_default();
        let before = keys.len();
        for (h, k, _, item) in store.items_in(node) {
            if id.matches(h, item) {
                keys.insert(k.clone());
            }
        }
        if keys.len() == before {
            keys.extend(store.items_in(node).map(|(_, k, _, _)| k.clone()));
        }
    }
    let mut theirs: BTreeMap<u64, Vec<ItemId>> = BTreeMap::new();
    for id in &d.senders {
        theirs.entry(id.prefix()).or_default().push(*id);
    }
    let max = config.limits.max_message_bytes / 2;
    let mut chunks = Chunker::<Offer>::new(max);
    let mut offered = Offered::none();
    let mut keys_sent = 0;
    // Values they lack, then full values, then summaries: chunks keep this
    // order, so the responder has seen every offered key before the wants.
    let mut fulls = Vec::new();
    let mut summaries = Vec::new();
    for (prefix, keys) in &ours {
        for k in keys {
            let Some(v) = store.get(k) else { continue };
            let v = &v;
            keys_sent += 1;
            if !theirs.contains_key(prefix) {
                let kv = key_value(k, v);
                chunks.add(size_of(&kv), |c| c.joins.0.push(kv));
                continue;
            }
            let s = v.summary();
            let (vlen, slen) = (codec::encoded_len(v), codec::encoded_len(&s));
            if vlen <= slen.saturating_mul(config.full_value_ratio) + 16 {
                fulls.push((k.clone(), key_value(k, v)));
            } else {
                let ks = KeySummary {
                    key: Bytes::from(key_bytes(k)),
                    summary: Bytes::from(codec::encode(&s)),
                };
                summaries.push((k.clone(), ks));
            }
        }
    }
    for (k, kv) in fulls {
        offered.fulls.push(k);
        chunks.add(size_of(&kv), |c| c.fulls.0.push(kv));
    }
    for (k, ks) in summaries {
        offered.summaries.push(k);
        chunks.add(size_of(&ks), |c| c.summaries.0.push(ks));
    }
    for (prefix, ids) in &theirs {
        // One item on each side under a prefix: one key, changed; it is
        // offered above, and the responder answers it.
        if ids.len() == 1 && ours.get(prefix).is_some_and(|k| k.len() == 1) {
            continue;
        }
        for id in ids {
            offered.wanted += 1;
            chunks.add(super::identify::ID_BYTES, |c| {
                c.wants.extend_from_slice(&id.0.to_be_bytes());
            });
        }
    }
    (chunks, offered, keys_sent)
}

/// Applies one chunk of the responder's answer; returns the number of
/// keys it carried state for. The closing deltas accumulate in `offered`.
pub(super) fn take_answer<K: StoreKey, V: StoreValue>(
    store: &mut Store<K, V>,
    answer: &Answer,
    offered: &mut Offered<K>,
    config: &SessionConfig,
    admit: Option<&dyn Admit<K, V>>,
) -> Result<(), SyncError> {
    // Decode and validate everything first.
    let joins = answer
        .joins
        .0
        .iter()
        .map(|kv| {
            Ok((
                key::<K>(&kv.key, config)?,
                value::<V>(&kv.value, config, "value")?,
            ))
        })
        .collect::<Result<Vec<_>, SyncError>>()?;
    let deltas = answer
        .deltas
        .0
        .iter()
        .map(|b| delta::<V>(b, config))
        .collect::<Result<Vec<_>, SyncError>>()?;
    let replies = answer
        .replies
        .0
        .iter()
        .map(|r| {
            let s = r
                .summary
                .as_ref()
                .map(|s| summary::<V>(s, config))
                .transpose()?;
            Ok((delta::<V>(&r.delta, config)?, s))
        })
        .collect::<Result<Vec<_>, SyncError>>()?;
    let fulls_end = offered.next_full + deltas.len();
    let summaries_end = offered.next_summary + replies.len();
    if fulls_end > offered.fulls.len() || summaries_end > offered.summaries.len() {
        return Err(SyncError::Malformed("answer: more answers than offers"));
    }
    if !answer.more && (fulls_end, summaries_end) != (offered.fulls.len(), offered.summaries.len())
    {
        return Err(SyncError::Malformed("answer: fewer answers than offers"));
    }
    if answer.finish.is_some() && (answer.more || !offered.summaries.is_empty()) {
        return Err(SyncError::Malformed("answer: finished with replies owed"));
    }
    if let Some(admit) = admit {
        let fulls = &offered.fulls[offered.next_full..fulls_end];
        let summarized = &offered.summaries[offered.next_summary..summaries_end];
        admit_all(store, admit, joins.iter().map(|(k, v)| (k, v)))?;
        admit_all(store, admit, keyed(fulls, deltas.iter()))?;
        admit_all(
            store,
            admit,
            keyed(summarized, replies.iter().map(|(d, _)| d)),
        )?;
    }
    // Apply.
    for (k, v) in joins {
        store.join(k, &v);
    }
    for (i, d) in deltas.into_iter().enumerate() {
        if let Some(d) = d {
            store.join(offered.fulls[offered.next_full + i].clone(), &d);
        }
    }
    for (i, (d, s)) in replies.into_iter().enumerate() {
        let k = offered.summaries[offered.next_summary + i].clone();
        // What the responder lacks, computed before joining what it sent:
        // from its summary, or from its delta taken as its whole value.
        let back = match (store.get(&k), s) {
            (Some(mine), Some(s)) => mine.delta_for(&s),
            (Some(mine), None) => mine.delta(d.as_ref().unwrap_or(&V::default())),
            (None, _) => V::default(),
        };
        offered.closing.push(delta_bytes(&back));
        if let Some(d) = d {
            store.join(k, &d);
        }
    }
    offered.next_full = fulls_end;
    offered.next_summary = summaries_end;
    Ok(())
}

/// The initiator's closing turn, as chunks without their flags, and the
/// number of keys it carries state for.
pub(super) fn close<K>(offered: &mut Offered<K>, config: &SessionConfig) -> (Chunker<Close>, u64) {
    let mut chunks = Chunker::<Close>::new(config.limits.max_message_bytes / 2);
    let mut keys = 0;
    for d in core::mem::take(&mut offered.closing) {
        keys += u64::from(!d.is_empty());
        chunks.add(size_of(&d), |c| c.deltas.0.push(d));
    }
    (chunks, keys)
}

// ------------------------------------------------------------- responder

/// The responder's bookkeeping across the chunks of an offer.
#[derive(Debug)]
pub(super) struct Answering<K> {
    /// Keys the offer named (values, full values, summaries) or that were
    /// shipped: never shipped (again) for a want.
    covered: BTreeSet<K>,
    /// Prefixes of offered keys we do not hold: the item the initiator
    /// paired with it is another key, shipped at the end.
    groups: BTreeSet<u64>,
    wants: Vec<ItemId>,
    /// The keys of our replies, in order: what the closing deltas answer.
    replied: Vec<K>,
    next_close: usize,
    chunks: Chunker<Answer>,
    keys_sent: u64,
}

impl<K: StoreKey> Answering<K> {
    pub(super) fn new(config: &SessionConfig) -> Self {
        Answering {
            covered: BTreeSet::new(),
            groups: BTreeSet::new(),
            wants: Vec::new(),
            replied: Vec::new(),
            next_close: 0,
            chunks: Chunker::new(config.limits.max_message_bytes / 2),
            keys_sent: 0,
        }
    }

    /// Whether we replied to summaries, and so wait for a [`Close`].
    pub(super) fn expects_close(&self) -> bool {
        !self.replied.is_empty()
    }

    /// Keys whose state our answer carries.
    pub(super) fn keys_sent(&self) -> u64 {
        self.keys_sent
    }

    fn ship<V: StoreValue>(&mut self, k: &K, v: &V) {
        if self.covered.insert(k.clone()) {
            let kv = key_value(k, v);
            self.keys_sent += 1;
            self.chunks.add(size_of(&kv), |c| c.joins.0.push(kv));
        }
    }

    /// Applies one chunk of an offer and answers it.
    pub(super) fn take_offer<V: StoreValue>(
        &mut self,
        store: &mut Store<K, V>,
        offer: &Offer,
        config: &SessionConfig,
        admit: Option<&dyn Admit<K, V>>,
    ) -> Result<(), SyncError> {
        let kv = |e: &KeyValue| {
            Ok((
                key::<K>(&e.key, config)?,
                value::<V>(&e.value, config, "value")?,
            ))
        };
        let joins = offer
            .joins
            .0
            .iter()
            .map(kv)
            .collect::<Result<Vec<_>, SyncError>>()?;
        let fulls = offer
            .fulls
            .0
            .iter()
            .map(kv)
            .collect::<Result<Vec<_>, SyncError>>()?;
        let summaries = offer
            .summaries
            .0
            .iter()
            .map(|e| Ok((key::<K>(&e.key, config)?, summary::<V>(&e.summary, config)?)))
            .collect::<Result<Vec<_>, SyncError>>()?;
        if !offer.wants.len().is_multiple_of(super::identify::ID_BYTES) {
            return Err(SyncError::Malformed("offer: a partial id"));
        }
        let asks = !offer.fulls.0.is_empty()
            || !offer.summaries.0.is_empty()
            || !offer.wants.is_empty()
            || !self.chunks.is_empty();
        if offer.finish.is_some() && (offer.more || asks) {
            return Err(SyncError::Malformed("offer: finished but asks for answers"));
        }
        if let Some(admit) = admit {
            admit_all(
                store,
                admit,
                joins.iter().chain(&fulls).map(|(k, v)| (k, v)),
            )?;
        }
        // Apply.
        for (k, v) in joins {
            self.covered.insert(k.clone());
            store.join(k, &v);
        }
        for (k, v) in fulls {
            // What the initiator lacks: our irreducibles not below its value.
            let lacks = match store.get(&k) {
                Some(mine) => mine.delta(&v),
                None => {
                    self.groups.insert(prefix_of(&k));
                    V::default()
                }
            };
            self.covered.insert(k.clone());
            store.join(k, &v);
            let d = delta_bytes(&lacks);
            self.keys_sent += u64::from(!d.is_empty());
            self.chunks.add(size_of(&d), |c| c.deltas.0.push(d));
        }
        for (k, s) in summaries {
            let reply = match store.get(&k) {
                Some(mine) => reply(&mine, &s),
                None => {
                    self.groups.insert(prefix_of(&k));
                    Reply {
                        delta: Bytes::default(),
                        summary: None,
                    }
                }
            };
            self.keys_sent += u64::from(!reply.delta.is_empty());
            self.covered.insert(k.clone());
            self.replied.push(k);
            self.chunks
                .add(size_of(&reply), |c| c.replies.0.push(reply));
        }
        for id in offer.wants.chunks_exact(super::identify::ID_BYTES) {
            let mut b = [0u8; 8];
            b.copy_from_slice(id);
            self.wants.push(ItemId(u64::from_be_bytes(b)));
        }
        if offer.more {
            return Ok(());
        }
        // The last chunk: ship what was wanted, and the keys paired with an
        // offered key we do not hold.
        for id in core::mem::take(&mut self.wants) {
            let node = id.node();
            let found: Vec<(K, V)> = store
                .items_in(node)
                .filter(|(h, _, _, item)| id.matches(*h, *item))
                .map(|(_, k, v, _)| (k.clone(), v.clone()))
                .collect();
            if found.is_empty() {
                // Written since we coded it: everything under its prefix.
                self.groups.insert(id.prefix());
            }
            for (k, v) in found {
                self.ship(&k, &v);
            }
        }
        for prefix in core::mem::take(&mut self.groups) {
            let node = ItemId::prefix_node(prefix);
            let all: Vec<(K, V)> = store
                .items_in(node)
                .map(|(_, k, v, _)| (k.clone(), v.clone()))
                .collect();
            for (k, v) in all {
                self.ship(&k, &v);
            }
        }
        Ok(())
    }

    /// The answer, as chunks without their flags.
    pub(super) fn answer(&mut self) -> Chunker<Answer> {
        core::mem::replace(&mut self.chunks, Chunker::new(0))
    }

    /// Applies one chunk of the initiator's closing deltas.
    pub(super) fn take_close<V: StoreValue>(
        &mut self,
        store: &mut Store<K, V>,
        close: &Close,
        config: &SessionConfig,
        admit: Option<&dyn Admit<K, V>>,
    ) -> Result<(), SyncError> {
        let deltas = close
            .deltas
            .0
            .iter()
            .map(|b| delta::<V>(b, config))
            .collect::<Result<Vec<_>, SyncError>>()?;
        let end = self.next_close + deltas.len();
        if end > self.replied.len() || (!close.more && end != self.replied.len()) {
            return Err(SyncError::Malformed(
                "close: deltas do not match the replies",
            ));
        }
        if close.more == close.finish.is_some() {
            return Err(SyncError::Malformed(
                "close: the finish belongs to the last chunk",
            ));
        }
        if let Some(admit) = admit {
            admit_all(
                store,
                admit,
                keyed(&self.replied[self.next_close..end], deltas.iter()),
            )?;
        }
        for (i, d) in deltas.into_iter().enumerate() {
            if let Some(d) = d {
                store.join(self.replied[self.next_close + i].clone(), &d);
            }
        }
        self.next_close = end;
        Ok(())
    }
}

/// Checks every `(key, value)` with `admit` against `store` as it is
/// before the turn is applied: the first refusal fails the turn.
fn admit_all<'a, K: StoreKey + 'a, V: StoreValue + 'a>(
    store: &Store<K, V>,
    admit: &dyn Admit<K, V>,
    values: impl IntoIterator<Item = (&'a K, &'a V)>,
) -> Result<(), SyncError> {
    values
        .into_iter()
        .try_for_each(|(k, v)| admit.admit(store, k, v))
        .map_err(SyncError::Refused)
}

/// The keys of positional answers paired with the values present.
fn keyed<'a, K, V: 'a>(
    keys: &'a [K],
    values: impl Iterator<Item = &'a Option<V>> + 'a,
) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
    keys.iter()
        .zip(values)
        .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
}

/// Our reply to the initiator's summary `s` of a key we hold as `mine`.
fn reply<V: StoreValue>(mine: &V, s: &V::Summary) -> Reply {
    let d = mine.delta_for(s);
    if d.is_bottom() {
        // We lack something, or nothing: tell the initiator how to compute
        // it, by our summary or by its whole value.
        let ours = mine.summary();
        let slen = codec::encoded_len(&ours);
        let summary = (slen.saturating_mul(SUMMARY_WORTH) < codec::encoded_len(mine))
            .then(|| Bytes::from(codec::encode(&ours)));
        return Reply {
            delta: Bytes::default(),
            summary,
        };
    }
    // Our delta is our whole value: the initiator computes exactly what we
    // lack from it, no summary needed.
    let summary = (d != *mine).then(|| Bytes::from(codec::encode(&mine.summary())));
    Reply {
        delta: Bytes::from(codec::encode(&d)),
        summary,
    }
}
