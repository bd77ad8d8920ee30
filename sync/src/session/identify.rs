//! Naming the difference: the responder codes its items into rateless
//! symbols ([`crate::sketch`]) sized from the initiator's estimator, or
//! lists them when that is cheaper; the initiator subtracts its own and
//! peels, asks for more symbols if they did not suffice, and checks what
//! it found against the count and sum of the responder's coded items.
//!
//! Both sides code one fixed state each: the responder its items when it
//! read the `Hello`, the initiator its items when the first symbols
//! arrived. Each keeps the symbols an extension may need from that state
//! (the responder up to the reserve it announced, the initiator the same),
//! so writes that land during the session never mix two states in one
//! table; they are left to the next session.

use core::ops::Range;

use crate::digest::Aggregate;
use crate::error::SyncError;
use crate::sketch::{self, peel, Difference, ItemId, Symbol, FP_BITS, SYMBOL_BYTES};
use crate::store::{Store, StoreKey, StoreValue};
use crate::tree::NodeId;
use crate::wire::Reader;

use super::message::{Coded, Items, Symbols};
use super::SessionConfig;

const FP_MASK: u64 = (1 << FP_BITS) - 1;

/// Bytes of one id in an item list.
pub(super) const ID_BYTES: usize = 8;

/// Extensions the initiator asks for before it asks for the item list.
const MAX_EXTENSIONS: u8 = 2;

/// What the responder codes: a count and a sum it can state in a message.
pub(super) fn coded_state(root: Aggregate) -> Coded {
    Coded {
        count: root.count,
        // Truncation intended: the sum modulo 2^FP_BITS.
        sum: root.sum as u64 & FP_MASK,
    }
}

/// Every item id of `store`, sorted.
pub(super) fn all_ids<K: StoreKey, V: StoreValue>(store: &Store<K, V>) -> Vec<ItemId> {
    let mut ids: Vec<ItemId> = store
        .items_in(NodeId::ROOT)
        .map(|(h, _, _, item)| ItemId::new(h, item))
        .collect();
    ids.sort_unstable();
    ids
}

/// The symbols `range` of `store`'s coded sequence: copied from the ones
/// the tree keeps as far as they go, the rest coded from every item (from
/// the index segment where they start: see [`sketch::Indices`]).
pub(super) fn symbols<K: StoreKey, V: StoreValue>(
    store: &Store<K, V>,
    range: Range<u64>,
) -> Vec<Symbol> {
    let kept = store.tree().coded().symbols();
    let k = kept.len() as u64;
    let copied = range.start.min(k)..range.end.min(k);
    let mut out = kept[copied.start as usize..copied.end as usize].to_vec();
    if range.end > k {
        let ids = store
            .items_in(NodeId::ROOT)
            .map(|(h, _, _, item)| ItemId::new(h, item));
        out.extend(sketch::code(ids, range.start.max(k)..range.end));
    }
    out
}

/// How the responder names its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// A first batch of `first` symbols, keeping `reserve` for extensions.
    Symbols { first: u64, reserve: u64 },
    /// The whole item list.
    Items,
}

/// Sizes the first batch for the estimated difference: `margin` times the
/// estimate (the estimator's spread is about 35%), at least the difference
/// in key counts; the item list when it costs no more. The reserve for
/// extensions is four times the batch (enough for an estimate a third of
/// the truth, a 1-in-200 event): copied from the `kept` symbols as far as
/// they go, the rest coded from every item, starting at the index segment
/// where it starts.
pub(super) fn plan(estimate: f64, mine: u64, theirs: u64, config: &SessionConfig) -> Plan {
    let margin = f64::from(config.margin_percent) / 100.0;
    let floor = mine.abs_diff(theirs).max(1) as f64;
    let items = (estimate * margin).max(floor);
    let first = sketch::symbols_for(items).max(1);
    let list_bytes = mine.saturating_mul(ID_BYTES as u64);
    let max = config.limits.max_symbols;
    if first > max || first.saturating_mul(SYMBOL_BYTES as u64) >= list_bytes {
        return Plan::Items;
    }
    Plan::Symbols {
        first,
        reserve: first.saturating_mul(RESERVE).min(max),
    }
}

/// The reserve, in first batches.
const RESERVE: u64 = 4;

/// Items of difference that best explain `zeros` empty symbols among the
/// first `m` of a difference: symbol `i` is empty when none of `d` items
/// lands there, with probability `exp(-2d / (i + 2))`, so the expected
/// number of empty symbols falls with `d`; solved by bisection (no empty
/// symbol at all counts as half of one: the smallest `d` that makes it
/// likely).
fn items_for_zeros(zeros: usize, m: usize) -> f64 {
    let expected = |d: f64| -> f64 { (0..m).map(|i| (-2.0 * d / (i as f64 + 2.0)).exp()).sum() };
    let target = (zeros as f64).max(0.5);
    let (mut lo, mut hi) = (0.0, 64.0 * m as f64 + 64.0);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        if expected(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The first `reserve` symbols' part that can be copied from the kept
/// symbols: a snapshot of the state being coded, for free.
fn snapshot<K: StoreKey, V: StoreValue>(store: &Store<K, V>, reserve: u64) -> Vec<Symbol> {
    let kept = store.tree().coded().symbols();
    kept[..usize::try_from(reserve)
        .unwrap_or(usize::MAX)
        .min(kept.len())]
        .to_vec()
}

/// The symbols `range`: from `snap` (symbols from 0) as far as it goes,
/// the rest coded from `store` as it is now.
fn from_snapshot<K: StoreKey, V: StoreValue>(
    snap: &[Symbol],
    store: &Store<K, V>,
    range: Range<u64>,
) -> Vec<Symbol> {
    let n = snap.len() as u64;
    let copied = range.start.min(n)..range.end.min(n);
    let mut out = snap[copied.start as usize..copied.end as usize].to_vec();
    if range.end > n {
        out.extend(symbols(store, range.start.max(n)..range.end));
    }
    out
}

/// The responder's side: a snapshot of the symbols the tree keeps, and how
/// many it sent.
///
/// Symbols up to the kept ones are copied when the `Hello` arrives, so an
/// extension within them codes the very state the first batch did, writes
/// or not. Symbols beyond are coded from every item when they are sent (the
/// first batch at once): an extension there that meets writes since makes
/// a table that does not peel or fails the initiator's check, which then
/// asks for the item list; it never names a wrong difference.
#[derive(Debug)]
pub(super) struct Coder {
    snap: Vec<Symbol>,
    reserve: u64,
    sent: u64,
    coded: Coded,
}

impl Coder {
    /// Codes `store`, keeping what the tree keeps of the first `reserve`.
    pub(super) fn new<K: StoreKey, V: StoreValue>(store: &Store<K, V>, reserve: u64) -> Self {
        Coder {
            snap: snapshot(store, reserve),
            reserve,
            sent: 0,
            coded: coded_state(store.root()),
        }
    }

    /// Symbols sent so far.
    pub(super) fn sent(&self) -> u64 {
        self.sent
    }

    /// The next batch, up to `end` (at most the reserve), as chunks of at
    /// most `max_bytes` of symbols each.
    pub(super) fn batch<K: StoreKey, V: StoreValue>(
        &mut self,
        store: &Store<K, V>,
        end: u64,
        max_bytes: usize,
    ) -> Result<Vec<Symbols>, SyncError> {
        if end <= self.sent || end > self.reserve {
            return Err(SyncError::Unexpected("More: symbols beyond the reserve"));
        }
        let batch = from_snapshot(&self.snap, store, self.sent..end);
        let per_chunk = (max_bytes / SYMBOL_BYTES).max(1);
        let mut out = Vec::new();
        let mut at = self.sent;
        for part in batch.chunks(per_chunk) {
            let mut bytes = Vec::new();
            sketch::write_symbols(part, &mut bytes);
            out.push(Symbols {
                first: at,
                reserve: self.reserve,
                coded: self.coded,
                symbols: super::message::Bytes::from(bytes),
                more: true,
            });
            at += part.len() as u64;
        }
        if let Some(last) = out.last_mut() {
            last.more = false;
        }
        self.sent = end;
        Ok(out)
    }
}

/// The responder's item list, as chunks of at most `max_bytes` of ids.
pub(super) fn item_list<K: StoreKey, V: StoreValue>(
    store: &Store<K, V>,
    max_bytes: usize,
) -> Vec<Items> {
    let coded = coded_state(store.root());
    let ids = all_ids(store);
    let per_chunk = (max_bytes / ID_BYTES).max(1);
    let mut out: Vec<Items> = ids
        .chunks(per_chunk)
        .map(|c| Items {
            coded,
            ids: c.iter().flat_map(|id| id.0.to_be_bytes()).collect(),
            more: true,
        })
        .collect();
    match out.last_mut() {
        Some(last) => last.more = false,
        None => out.push(Items {
            coded,
            ids: super::message::Bytes::from(Vec::new()),
            more: false,
        }),
    }
    out
}

/// What the initiator concluded from a batch.
#[derive(Debug)]
pub(super) enum Outcome {
    /// More chunks of the batch are coming.
    Partial,
    /// The difference, checked.
    Found(Difference),
    /// Ask for symbols up to this index.
    Extend(u64),
    /// Ask for the item list.
    List,
}

/// The initiator's side of the symbols: a snapshot of its own kept
/// symbols (as the responder keeps its own: see [`Coder`]), and the
/// difference so far.
#[derive(Debug)]
pub(super) struct Decoder {
    own: Vec<Symbol>,
    reserve: u64,
    diff: Vec<Symbol>,
    /// The current batch's symbols, until its last chunk: our own are
    /// subtracted once per batch, however many chunks it came in.
    batch: Vec<Symbol>,
    theirs: Coded,
    mine: Coded,
    /// Where the current batch must end (`None` for the first batch, whose
    /// length the responder chose).
    asked: Option<u64>,
    extensions: u8,
}

impl Decoder {
    /// Starts on the first chunk: snapshots our kept symbols, up to the
    /// reserve the responder announced.
    pub(super) fn new<K: StoreKey, V: StoreValue>(
        store: &Store<K, V>,
        first: &Symbols,
        config: &SessionConfig,
    ) -> Result<Self, SyncError> {
        if first.first != 0 {
            return Err(SyncError::Malformed(
                "symbols: the first batch must start at 0",
            ));
        }
        if first.reserve == 0 || first.reserve > config.limits.max_symbols {
            return Err(SyncError::Malformed("symbols: reserve out of bounds"));
        }
        Ok(Decoder {
            own: snapshot(store, first.reserve),
            reserve: first.reserve,
            diff: Vec::new(),
            batch: Vec::new(),
            theirs: first.coded,
            mine: coded_state(store.root()),
            asked: None,
            extensions: 0,
        })
    }

    /// Symbols received so far.
    pub(super) fn received(&self) -> u64 {
        self.diff.len() as u64
    }

    /// Takes one chunk of symbols; at the end of a batch, peels.
    pub(super) fn take<K: StoreKey, V: StoreValue>(
        &mut self,
        store: &Store<K, V>,
        chunk: &Symbols,
    ) -> Result<Outcome, SyncError> {
        let start = self.received();
        let at = start + self.batch.len() as u64;
        if chunk.first != at {
            return Err(SyncError::Malformed("symbols: not contiguous"));
        }
        if chunk.coded != self.theirs || chunk.reserve != self.reserve {
            return Err(SyncError::Malformed("symbols: the batch changed its state"));
        }
        let limit = self.asked.unwrap_or(self.reserve);
        let room = usize::try_from(limit - at).unwrap_or(usize::MAX);
        self.batch
            .extend(sketch::read_symbols(&chunk.symbols[..], room)?);
        if chunk.more {
            return Ok(Outcome::Partial);
        }
        let got = core::mem::take(&mut self.batch);
        let own = from_snapshot(&self.own, store, start..start + got.len() as u64);
        for (s, o) in got.into_iter().zip(own) {
            let mut d = s;
            d.subtract(&o);
            self.diff.push(d);
        }
        if self.asked.is_some_and(|end| end != self.received()) {
            return Err(SyncError::Malformed("symbols: a short extension"));
        }
        if self.diff.is_empty() {
            return Err(SyncError::Malformed("symbols: an empty batch"));
        }
        if let Some(d) = peel(&self.diff).filter(|d| self.consistent(d)) {
            return Ok(Outcome::Found(d));
        }
        if self.extensions < MAX_EXTENSIONS && self.received() < self.reserve {
            // Size the extension from the empty symbols of the difference:
            // enough for what they suggest, with a margin, and at least a
            // quarter more than before.
            self.extensions += 1;
            let zeros = self.diff.iter().filter(|s| s.is_zero()).count();
            let items = items_for_zeros(zeros, self.diff.len());
            let end = sketch::symbols_for(1.25 * items)
                .max(self.received() + self.received().div_ceil(4))
                .min(self.reserve);
            self.asked = Some(end);
            return Ok(Outcome::Extend(end));
        }
        Ok(Outcome::List)
    }

    /// Whether the responder's coded items minus its part of `d` equal
    /// ours minus our part: the check that the peel named the whole
    /// difference and nothing else.
    fn consistent(&self, d: &Difference) -> bool {
        consistent(self.theirs, self.mine, d)
    }
}

fn consistent(theirs: Coded, mine: Coded, d: &Difference) -> bool {
    let sum = |ids: &[ItemId]| {
        ids.iter()
            .fold(0u64, |a, id| a.wrapping_add(id.fingerprint()))
    };
    let rest_theirs = (
        theirs.count.wrapping_sub(d.senders.len() as u64),
        theirs.sum.wrapping_sub(sum(&d.senders)) & FP_MASK,
    );
    let rest_mine = (
        mine.count.wrapping_sub(d.receivers.len() as u64),
        mine.sum.wrapping_sub(sum(&d.receivers)) & FP_MASK,
    );
    rest_theirs == rest_mine
}

/// The initiator's side of an item list.
#[derive(Debug, Default)]
pub(super) struct ListDecoder {
    ids: Vec<ItemId>,
    coded: Option<Coded>,
}

impl ListDecoder {
    /// Takes one chunk; at the end, the difference against our items now.
    pub(super) fn take<K: StoreKey, V: StoreValue>(
        &mut self,
        store: &Store<K, V>,
        chunk: &Items,
        config: &SessionConfig,
    ) -> Result<Option<Difference>, SyncError> {
        if *self.coded.get_or_insert(chunk.coded) != chunk.coded {
            return Err(SyncError::Malformed("items: the list changed its state"));
        }
        if !chunk.ids.len().is_multiple_of(ID_BYTES) {
            return Err(SyncError::Malformed("items: a partial id"));
        }
        let n = (chunk.ids.len() / ID_BYTES) as u64;
        if self.ids.len() as u64 + n > config.limits.max_list_items {
            return Err(SyncError::Malformed("items: more than allowed"));
        }
        let mut r = Reader::new(&chunk.ids[..]);
        for _ in 0..n {
            let id = ItemId(u64::from_be_bytes(r.array()?));
            if self.ids.last().is_some_and(|last| *last > id) {
                return Err(SyncError::Malformed("items: out of order"));
            }
            self.ids.push(id);
        }
        r.finish()?;
        if chunk.more {
            return Ok(None);
        }
        let theirs = core::mem::take(&mut self.ids);
        let coded = chunk.coded;
        let listed = Coded {
            count: theirs.len() as u64,
            sum: theirs
                .iter()
                .fold(0u64, |a, id| a.wrapping_add(id.fingerprint()))
                & FP_MASK,
        };
        if listed != coded {
            return Err(SyncError::Malformed(
                "items: the list does not match its state",
            ));
        }
        let mine = all_ids(store);
        let d = multiset_difference(&theirs, &mine);
        Ok(Some(d))
    }
}

/// `senders`: ids in `theirs` beyond their multiplicity in `mine`, and the
/// other way round; both inputs sorted.
fn multiset_difference(theirs: &[ItemId], mine: &[ItemId]) -> Difference {
    let mut d = Difference::default();
    let (mut i, mut j) = (0, 0);
    while i < theirs.len() || j < mine.len() {
        match (theirs.get(i), mine.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                d.senders.push(*a);
                i += 1;
            }
            (Some(a), None) => {
                d.senders.push(*a);
                i += 1;
            }
            (_, Some(b)) => {
                d.receivers.push(*b);
                j += 1;
            }
            (None, None) => break,
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig::default()
    }

    #[test]
    fn plans_grow_with_the_estimate_and_switch_to_the_list() {
        let small = plan(10.0, 1_000_000, 1_000_000, &cfg());
        let large = plan(10_000.0, 1_000_000, 1_000_000, &cfg());
        let (
            Plan::Symbols {
                first: a,
                reserve: ra,
            },
            Plan::Symbols {
                first: b,
                reserve: rb,
            },
        ) = (small, large)
        else {
            panic!("{small:?} {large:?}");
        };
        assert!(
            a < b && ra == RESERVE * a && rb == RESERVE * b,
            "{small:?} {large:?}"
        );
        // The margin: 1.5 times the estimate, 1.4 symbols per item and more.
        assert!(b as f64 > 1.5 * 1.4 * 10_000.0, "{large:?}");
        // A difference near the store's size: the list is cheaper.
        assert_eq!(plan(1.5e6, 1_000_000, 1_000_000, &cfg()), Plan::Items);
        // Nothing here: the (empty) list.
        assert_eq!(plan(50.0, 0, 50, &cfg()), Plan::Items);
        // Counts that differ bound the difference from below.
        let Plan::Symbols { first, .. } = plan(0.0, 100_000, 99_000, &cfg()) else {
            panic!()
        };
        assert!(first >= 1000);
    }

    #[test]
    fn empty_symbols_estimate_the_items_that_did_not_peel() {
        use crate::sketch::code;
        for d in [50usize, 500, 2000] {
            let items: Vec<ItemId> = (0..d as u64)
                .map(|i| ItemId(crate::sketch::mix(i * 7 + d as u64)))
                .collect();
            // Too few symbols to peel: 0.8 per item.
            let m = d * 4 / 5;
            let s = code(items.iter().copied(), 0..m as u64);
            let zeros = s.iter().filter(|x| x.is_zero()).count();
            let est = items_for_zeros(zeros, m);
            assert!(
                (0.6 * d as f64..1.6 * d as f64).contains(&est),
                "d = {d}: {zeros} empty of {m}, estimated {est}"
            );
        }
        // Nothing empty: at least as many as make that likely.
        assert!(items_for_zeros(0, 100) > 100.0);
    }

    #[test]
    fn the_multiset_difference_keeps_multiplicity() {
        let t = [ItemId(1), ItemId(2), ItemId(2), ItemId(5)];
        let m = [ItemId(2), ItemId(3), ItemId(5), ItemId(6)];
        let d = multiset_difference(&t, &m);
        assert_eq!(d.senders, vec![ItemId(1), ItemId(2)]);
        assert_eq!(d.receivers, vec![ItemId(3), ItemId(6)]);
    }

    #[test]
    fn the_consistency_check_catches_a_missing_item() {
        let a = [ItemId(10 << FP_BITS | 3), ItemId(11 << FP_BITS | 4)];
        let theirs = Coded {
            count: 100,
            sum: 1000,
        };
        let mine = Coded {
            count: 100,
            sum: 1000 - 3 + 4,
        };
        let d = Difference {
            senders: vec![a[0]],
            receivers: vec![a[1]],
        };
        assert!(consistent(theirs, mine, &d));
        let short = Difference {
            senders: vec![a[0]],
            receivers: vec![],
        };
        assert!(!consistent(theirs, mine, &short));
    }
}
