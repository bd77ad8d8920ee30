//! Causal contexts: the set of dots a state has seen, kept compact.
//!
//! A causal CRDT (OR-Set, MV-Register, OR-Map, causal counter) is a *dot
//! store* plus a *causal context* (Almeida, Shoker, Baquero, "Delta State
//! Replicated Data Types", JPDC 2018, §5): the context holds every dot the
//! state has seen, the store holds the dots still alive. A dot in the context
//! but not in the store has been removed: that is how removal works without
//! tombstones.
//!
//! The classic compact form is a version vector (all dots `1..=n` of each
//! replica) plus a *dot cloud* of out-of-order dots. Here each replica's dots
//! are a sorted list of disjoint, non-adjacent inclusive ranges: a version
//! vector is the single range `1..=n`, a cloud dot is a range of one, and a
//! delta's context (the dots `k+1..=n` a peer lacks) is one range instead of
//! `n - k` cloud dots. Normalisation happens on every insert and join, so the
//! representation of a set of dots is unique (which the canonical encoding
//! and structural equality rely on).
//!
//! ```
//! use accordant::{CausalContext, Dot, ReplicaId};
//! let r = ReplicaId::from_u128(1);
//! let mut ctx = CausalContext::new();
//! for n in [1, 2, 4] {
//!     ctx.insert(Dot::new(r, n).unwrap());
//! }
//! assert_eq!(ctx.ranges(r).collect::<Vec<_>>(), vec![1..=2, 4..=4]);
//! ctx.insert(Dot::new(r, 3).unwrap()); // fills the gap: compacts to 1..=4
//! assert_eq!(ctx.ranges(r).collect::<Vec<_>>(), vec![1..=4]);
//! assert_eq!(ctx.next_dot(r).unwrap().counter(), 5);
//! ```

use core::ops::RangeInclusive;

use smallvec::SmallVec;

use crate::codec::{serde_via_wire, strictly_sorted, Budget, Canonical, SeqVec};
use crate::error::{DecodeError, OverflowError};
use crate::lattice::Lattice;
use crate::replica::{Dot, ReplicaId};

/// An inclusive range of dot counters, `1 <= start <= end`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// Sorted, disjoint, non-adjacent spans of one replica.
#[derive(PartialEq, Eq, Hash, Debug, Default)]
pub(crate) struct Spans(SmallVec<[Span; 1]>);

impl Clone for Spans {
    fn clone(&self) -> Self {
        // Spans are `Copy`: one copy of the slice, not an element-wise clone.
        Spans(SmallVec::from_slice(&self.0))
    }
}

impl Spans {
    /// Whether counter `n` is in one of the spans.
    #[inline]
    pub(crate) fn contains(&self, n: u64) -> bool {
        // Most contexts are one span per replica: skip the search.
        if let [only] = &self.0[..] {
            return only.start <= n && n <= only.end;
        }
        let i = self.0.partition_point(|s| s.end < n);
        i < self.0.len() && self.0[i].start <= n
    }

    /// The spans, in order.
    pub(crate) fn as_slice(&self) -> &[Span] {
        &self.0
    }

    fn max(&self) -> u64 {
        self.0.last().map_or(0, |s| s.end)
    }

    pub(crate) fn count(&self) -> u128 {
        self.0.iter().map(|s| u128::from(s.end - s.start) + 1).sum()
    }

    /// Inserts `start..=end`, merging overlapping and adjacent spans.
    fn insert(&mut self, start: u64, end: u64) {
        let v = &mut self.0;
        // Fast path: the next dots of a replica extend its last span.
        if let Some(last) = v.last_mut() {
            if start > last.end.saturating_add(1) {
                v.push(Span { start, end });
                return;
            }
            if start >= last.start {
                last.end = last.end.max(end);
                return;
            }
        }
        // First span that could touch: end + 1 >= start.
        let lo = v.partition_point(|s| s.end.saturating_add(1) < start);
        // First span after the new one, not touching: s.start > end + 1.
        let hi = v.partition_point(|s| s.start <= end.saturating_add(1));
        if lo == hi {
            v.insert(lo, Span { start, end });
        } else {
            let merged = Span {
                start: start.min(v[lo].start),
                end: end.max(v[hi - 1].end),
            };
            v[lo] = merged;
            v.drain(lo + 1..hi);
        }
    }

    fn union(&self, other: &Spans) -> Spans {
        let mut out: SmallVec<[Span; 1]> = SmallVec::with_capacity(self.0.len() + other.0.len());
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() || j < other.0.len() {
            let next = if j >= other.0.len()
                || (i < self.0.len() && self.0[i].start <= other.0[j].start)
            {
                i += 1;
                self.0[i - 1]
            } else {
                j += 1;
                other.0[j - 1]
            };
            match out.last_mut() {
                Some(last) if next.start <= last.end.saturating_add(1) => {
                    last.end = last.end.max(next.end);
                }
                _ => out.push(next),
            }
        }
        Spans(out)
    }

    fn difference(&self, other: &Spans) -> Spans {
        let mut out = SmallVec::new();
        let mut j = 0;
        for s in &self.0 {
            let mut start = s.start;
            // Skip the other's spans entirely before this one.
            while j < other.0.len() && other.0[j].end < start {
                j += 1;
            }
            let mut k = j;
            let mut alive = true;
            while k < other.0.len() && other.0[k].start <= s.end {
                let o = other.0[k];
                if o.start > start {
                    out.push(Span {
                        start,
                        end: o.start - 1,
                    });
                }
                if o.end >= s.end {
                    alive = false;
                    break;
                }
                start = o.end + 1;
                k += 1;
            }
            if alive && start <= s.end {
                out.push(Span { start, end: s.end });
            }
        }
        Spans(out)
    }

    fn is_subset(&self, other: &Spans) -> bool {
        // The usual case: one span each.
        if let ([a], [b]) = (&self.0[..], &other.0[..]) {
            return b.start <= a.start && a.end <= b.end;
        }
        self.0.iter().all(|s| {
            let i = other.0.partition_point(|o| o.end < s.start);
            i < other.0.len() && other.0[i].start <= s.start && s.end <= other.0[i].end
        })
    }
}

/// The set of dots a state has seen, as per-replica ranges.
///
/// Entries are sorted by replica and never empty, so equal sets of dots are
/// equal values and encode to equal bytes.
#[derive(PartialEq, Eq, Hash, Default)]
pub struct CausalContext {
    entries: SmallVec<[(ReplicaId, Spans); 2]>,
}

impl Clone for CausalContext {
    fn clone(&self) -> Self {
        let mut entries = SmallVec::with_capacity(self.entries.len());
        for (r, spans) in &self.entries {
            entries.push((*r, spans.clone()));
        }
        CausalContext { entries }
    }
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding exactly the given dots.
    pub fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut ctx = Self::new();
        for d in dots {
            ctx.insert(d);
        }
        ctx
    }

    /// The context holding exactly `dot` (no allocation).
    pub fn single(dot: Dot) -> Self {
        let mut spans = Spans::default();
        spans.0.push(Span {
            start: dot.counter(),
            end: dot.counter(),
        });
        let mut entries = SmallVec::new();
        entries.push((dot.replica(), spans));
        CausalContext { entries }
    }

    /// Whether no dot has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, r: &ReplicaId) -> Result<usize, usize> {
        // A context usually names a handful of replicas: comparing ids for
        // equality (two words) beats a binary search of byte-wise orders.
        if self.entries.len() <= 4 {
            if let Some(i) = self.entries.iter().position(|(x, _)| x == r) {
                return Ok(i);
            }
        }
        self.entries.binary_search_by(|(x, _)| x.cmp(r))
    }

    /// Whether `dot` has been seen.
    pub fn contains(&self, dot: &Dot) -> bool {
        match self.find(&dot.replica()) {
            Ok(i) => self.entries[i].1.contains(dot.counter()),
            Err(_) => false,
        }
    }

    /// Records `dot` as seen.
    pub fn insert(&mut self, dot: Dot) {
        self.insert_range(dot.replica(), dot.counter(), dot.counter());
    }

    /// Records the dots `start..=end` of `replica` (nothing if the range is
    /// empty; a `start` of 0 is read as 1).
    pub fn insert_range(&mut self, replica: ReplicaId, start: u64, end: u64) {
        let start = start.max(1);
        if start > end {
            return;
        }
        match self.find(&replica) {
            Ok(i) => self.entries[i].1.insert(start, end),
            Err(i) => {
                let mut spans = Spans::default();
                spans.0.push(Span { start, end });
                self.entries.insert(i, (replica, spans));
            }
        }
    }

    /// The largest counter seen from `replica` (0 if none).
    pub fn max(&self, replica: &ReplicaId) -> u64 {
        self.find(replica).map_or(0, |i| self.entries[i].1.max())
    }

    /// A fresh dot for `replica`: one above the largest it has seen.
    ///
    /// Does not record it; callers insert the dot when they use it.
    pub fn next_dot(&self, replica: ReplicaId) -> Result<Dot, OverflowError> {
        let n = self
            .max(&replica)
            .checked_add(1)
            .ok_or(OverflowError::Dots)?;
        Dot::new(replica, n).ok_or(OverflowError::Dots)
    }

    /// Issues a fresh dot for `replica` and records it: [`next_dot`] and
    /// [`insert`] in one lookup, which is what a mutator does.
    ///
    /// [`next_dot`]: CausalContext::next_dot
    /// [`insert`]: CausalContext::insert
    pub fn issue(&mut self, replica: ReplicaId) -> Result<Dot, OverflowError> {
        match self.find(&replica) {
            Ok(i) => {
                let spans = &mut self.entries[i].1;
                let n = spans.max().checked_add(1).ok_or(OverflowError::Dots)?;
                let dot = Dot::new(replica, n).ok_or(OverflowError::Dots)?;
                // The last span ends at max = n - 1: extend it.
                if let Some(last) = spans.0.last_mut() {
                    last.end = n;
                }
                Ok(dot)
            }
            Err(i) => {
                let dot = Dot::new(replica, 1).ok_or(OverflowError::Dots)?;
                let mut spans = Spans::default();
                spans.0.push(Span { start: 1, end: 1 });
                self.entries.insert(i, (replica, spans));
                Ok(dot)
            }
        }
    }

    /// The spans of `replica`, if it has dots here.
    pub(crate) fn spans(&self, replica: &ReplicaId) -> Option<&Spans> {
        self.find(replica).ok().map(|i| &self.entries[i].1)
    }

    /// The replica at position `index` of the table, with its spans.
    pub(crate) fn entry_at(&self, index: usize) -> Option<(ReplicaId, &Spans)> {
        self.entries.get(index).map(|(r, s)| (*r, s))
    }

    /// The replicas that have at least one dot here, in order.
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaId> + '_ {
        self.entries.iter().map(|(r, _)| *r)
    }

    /// The ranges of dots seen from `replica`, in order.
    pub fn ranges(&self, replica: ReplicaId) -> impl Iterator<Item = RangeInclusive<u64>> + '_ {
        let spans = self.find(&replica).ok().map(|i| &self.entries[i].1 .0[..]);
        spans.unwrap_or(&[]).iter().map(|s| s.start..=s.end)
    }

    /// How many dots have been seen.
    pub fn dot_count(&self) -> u128 {
        self.entries.iter().map(|(_, s)| s.count()).sum()
    }

    /// How many ranges the context holds: its size in memory and on the wire.
    pub fn range_count(&self) -> usize {
        self.entries.iter().map(|(_, s)| s.0.len()).sum()
    }

    /// Every dot, in order. Can be long: a context `1..=n` yields `n` dots.
    pub fn dots(&self) -> impl Iterator<Item = Dot> + '_ {
        self.entries.iter().flat_map(|(r, spans)| {
            spans
                .0
                .iter()
                .flat_map(move |s| (s.start..=s.end).filter_map(move |n| Dot::new(*r, n)))
        })
    }

    /// The dots in `self` but not in `other`.
    pub fn difference(&self, other: &CausalContext) -> CausalContext {
        let mut entries = SmallVec::new();
        for (r, spans) in &self.entries {
            let rest = match other.find(r) {
                Ok(i) => spans.difference(&other.entries[i].1),
                Err(_) => spans.clone(),
            };
            if !rest.0.is_empty() {
                entries.push((*r, rest));
            }
        }
        CausalContext { entries }
    }

    /// Whether every dot of `self` is in `other`.
    pub fn is_subset(&self, other: &CausalContext) -> bool {
        // A context and one grown from it usually list the same replicas at
        // the same positions: compare in step, searching only on a mismatch.
        self.entries.iter().enumerate().all(|(i, (r, spans))| {
            if let Some((o, theirs)) = other.entries.get(i) {
                if o == r {
                    return spans.is_subset(theirs);
                }
            }
            match other.find(r) {
                Ok(i) => spans.is_subset(&other.entries[i].1),
                Err(_) => false,
            }
        })
    }

    /// What this context has seen, kept to make sure later that a context
    /// derived from it forgot nothing (see [`Seen::restore`]). Contexts of
    /// one range per replica, the usual shape, are kept inline.
    pub(crate) fn seen(&self) -> Seen {
        if self.entries.iter().all(|(_, s)| s.0.len() == 1) {
            Seen::Ranges(
                self.entries
                    .iter()
                    .map(|(r, s)| (*r, s.0[0].start, s.0[0].end))
                    .collect(),
            )
        } else {
            Seen::Full(self.clone())
        }
    }

    /// The position of `replica` in the interning table of this context.
    pub(crate) fn index_of(&self, replica: &ReplicaId) -> Option<usize> {
        self.find(replica).ok()
    }

    /// The replica at position `index` of the interning table.
    pub(crate) fn replica_at(&self, index: usize) -> Option<ReplicaId> {
        self.entries.get(index).map(|(r, _)| *r)
    }

    /// Converts a dot to its interned wire form; the dot must be in `self`.
    pub(crate) fn wire_dot(&self, dot: &Dot) -> WireDot {
        // Every dot of a valid store is in its context, so the lookup succeeds;
        // u32::MAX would be rejected on decode if an invariant were broken.
        let idx = self.index_of(&dot.replica()).map_or(u32::MAX, |i| i as u32);
        WireDot(idx, dot.counter())
    }

    /// Resolves an interned dot, checking that this context covers it.
    pub(crate) fn resolve_dot(&self, w: WireDot) -> Result<Dot, DecodeError> {
        let replica = self
            .replica_at(w.0 as usize)
            .ok_or(DecodeError::Invalid("dot refers to an unknown replica"))?;
        let dot = Dot::new(replica, w.1).ok_or(DecodeError::Invalid("dot counter 0"))?;
        if !self.contains(&dot) {
            return Err(DecodeError::Invalid(
                "dot not covered by its causal context",
            ));
        }
        Ok(dot)
    }
}

impl FromIterator<Dot> for CausalContext {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        CausalContext::from_dots(iter)
    }
}

impl Extend<Dot> for CausalContext {
    fn extend<I: IntoIterator<Item = Dot>>(&mut self, iter: I) {
        for d in iter {
            self.insert(d);
        }
    }
}

impl core::fmt::Debug for CausalContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(r, s)| {
                let spans: Vec<_> = s.0.iter().map(|s| s.start..=s.end).collect();
                (r, spans)
            }))
            .finish()
    }
}

impl Lattice for CausalContext {
    fn join(&mut self, other: &Self) {
        for (r, spans) in &other.entries {
            match self.find(r) {
                Ok(i) => {
                    let u = self.entries[i].1.union(spans);
                    self.entries[i].1 = u;
                }
                Err(i) => self.entries.insert(i, (*r, spans.clone())),
            }
        }
    }
}

/// A context's dots, kept by [`CausalContext::seen`].
pub(crate) enum Seen {
    /// One range per replica.
    Ranges(SmallVec<[(ReplicaId, u64, u64); 4]>),
    /// Any other shape.
    Full(CausalContext),
}

impl Seen {
    /// Adds to `ctx` whatever of these dots it lacks (usually nothing: a
    /// mutator only ever adds dots).
    pub(crate) fn restore(self, ctx: &mut CausalContext) {
        match self {
            Seen::Ranges(ranges) => {
                for (r, start, end) in ranges {
                    let covered = ctx.spans(&r).is_some_and(|s| {
                        let i = s.0.partition_point(|x| x.end < start);
                        i < s.0.len() && s.0[i].start <= start && end <= s.0[i].end
                    });
                    if !covered {
                        ctx.insert_range(r, start, end);
                    }
                }
            }
            Seen::Full(seen) => {
                if !seen.is_subset(ctx) {
                    ctx.join(&seen);
                }
            }
        }
    }
}

/// A dot on the wire: (index into the state's replica table, counter).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct WireDot(pub(crate) u32, pub(crate) u64);

/// Wire form of a context: per replica, its spans as `(gap, length - 1)`
/// pairs, where the gap of the first span is `start - 1` and of the others
/// `start - previous_end - 2`; every pair of integers is a valid, unique
/// encoding, so no normalisation check is needed beyond overflow.
pub type ContextWire = SeqVec<(ReplicaId, SeqVec<(u64, u64)>)>;

impl Canonical for CausalContext {
    type Wire = ContextWire;

    fn to_wire(&self) -> Self::Wire {
        SeqVec(
            self.entries
                .iter()
                .map(|(r, spans)| {
                    let mut prev: Option<u64> = None;
                    let pairs = spans
                        .0
                        .iter()
                        .map(|s| {
                            let gap = match prev {
                                None => s.start - 1,
                                Some(p) => s.start - p - 2,
                            };
                            prev = Some(s.end);
                            (gap, s.end - s.start)
                        })
                        .collect();
                    (*r, SeqVec(pairs))
                })
                .collect(),
        )
    }

    fn serialize_wire<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.entries.iter().map(|(r, spans)| (r, SpanPairs(spans))))
    }

    fn from_wire(wire: Self::Wire, budget: &mut Budget) -> Result<Self, DecodeError> {
        const OVERFLOW: DecodeError = DecodeError::Invalid("dot range overflows u64");
        if !strictly_sorted(&wire.0, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("context replicas not sorted"));
        }
        let mut entries = SmallVec::with_capacity(wire.0.len());
        for (r, pairs) in wire.0 {
            budget.take(1 + pairs.0.len())?;
            if pairs.0.is_empty() {
                return Err(DecodeError::NonCanonical("replica with no dots"));
            }
            let mut spans = Spans::default();
            let mut prev: Option<u64> = None;
            for (gap, len) in pairs.0 {
                let start = match prev {
                    None => gap.checked_add(1),
                    Some(p) => p.checked_add(2).and_then(|x| x.checked_add(gap)),
                }
                .ok_or(OVERFLOW)?;
                let end = start.checked_add(len).ok_or(OVERFLOW)?;
                spans.0.push(Span { start, end });
                prev = Some(end);
            }
            entries.push((r, spans));
        }
        Ok(CausalContext { entries })
    }
}

/// One replica's spans as wire pairs, serialised without collecting them.
struct SpanPairs<'a>(&'a Spans);

impl serde::Serialize for SpanPairs<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let spans = &self.0 .0;
        s.collect_seq(spans.iter().enumerate().map(|(i, sp)| {
            let gap = match i {
                0 => sp.start - 1,
                _ => sp.start - spans[i - 1].end - 2,
            };
            (gap, sp.end - sp.start)
        }))
    }
}

serde_via_wire!([] CausalContext);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use quickcheck::quickcheck;

    use super::*;
    use crate::codec::{decode, encode, Limits};

    fn r(n: u8) -> ReplicaId {
        ReplicaId::from_u128(u128::from(n % 3))
    }

    fn build(dots: &[(u8, u8)]) -> (CausalContext, BTreeSet<Dot>) {
        let mut ctx = CausalContext::new();
        let mut model = BTreeSet::new();
        for &(rep, n) in dots {
            let d = Dot::new(r(rep), u64::from(n % 40) + 1).unwrap();
            ctx.insert(d);
            model.insert(d);
        }
        (ctx, model)
    }

    fn check_normal(ctx: &CausalContext) -> bool {
        ctx.entries.windows(2).all(|w| w[0].0 < w[1].0)
            && ctx.entries.iter().all(|(_, s)| {
                !s.0.is_empty()
                    && s.0.iter().all(|x| 1 <= x.start && x.start <= x.end)
                    && s.0.windows(2).all(|w| w[0].end + 1 < w[1].start)
            })
    }

    quickcheck! {
        fn insert_matches_model(dots: Vec<(u8, u8)>) -> bool {
            let (ctx, model) = build(&dots);
            check_normal(&ctx)
                && ctx.dots().collect::<BTreeSet<_>>() == model
                && ctx.dot_count() == model.len() as u128
                && (0..3).all(|rep| (1..45).all(|n| {
                    let d = Dot::new(r(rep), n).unwrap();
                    ctx.contains(&d) == model.contains(&d)
                }))
        }

        fn join_is_union(a: Vec<(u8, u8)>, b: Vec<(u8, u8)>) -> bool {
            let (ca, ma) = build(&a);
            let (cb, mb) = build(&b);
            let j = ca.clone().joined(&cb);
            check_normal(&j)
                && j.dots().collect::<BTreeSet<_>>() == ma.union(&mb).copied().collect()
                && j == cb.joined(&ca)
        }

        fn difference_and_subset_match_model(a: Vec<(u8, u8)>, b: Vec<(u8, u8)>) -> bool {
            let (ca, ma) = build(&a);
            let (cb, mb) = build(&b);
            let d = ca.difference(&cb);
            check_normal(&d)
                && d.dots().collect::<BTreeSet<_>>() == ma.difference(&mb).copied().collect()
                && ca.is_subset(&cb) == ma.is_subset(&mb)
        }

        fn issue_is_next_dot_then_insert(a: Vec<(u8, u8)>, rep: u8) -> bool {
            let (mut issued, _) = build(&a);
            let mut by_hand = issued.clone();
            let rep = r(rep % 5);
            let x = issued.issue(rep).unwrap();
            let y = by_hand.next_dot(rep).unwrap();
            by_hand.insert(y);
            x == y && issued == by_hand && check_normal(&issued)
        }

        fn seen_restores_what_a_context_forgot(a: Vec<(u8, u8)>, b: Vec<(u8, u8)>, ranges: bool) -> bool {
            // Either shape: one range per replica (kept inline) or any.
            let (ca, _) = if ranges {
                let mut c = CausalContext::new();
                for &(rep, n) in &a {
                    c.insert_range(r(rep), 1, u64::from(n % 40) + 1);
                }
                (c, BTreeSet::new())
            } else {
                build(&a)
            };
            let (mut cb, _) = build(&b);
            let expected = cb.clone().joined(&ca);
            ca.seen().restore(&mut cb);
            cb == expected && check_normal(&cb)
        }

        fn wire_round_trip_is_canonical(a: Vec<(u8, u8)>) -> bool {
            let (ca, _) = build(&a);
            let bytes = encode(&ca);
            let back: CausalContext = decode(&bytes, &Limits::default()).unwrap();
            back == ca && encode(&back) == bytes
        }
    }

    #[test]
    fn contiguous_history_is_one_range() {
        let rep = r(1);
        let mut ctx = CausalContext::new();
        for n in (1..=1000).rev() {
            ctx.insert(Dot::new(rep, n).unwrap());
        }
        assert_eq!(ctx.range_count(), 1);
        assert_eq!(ctx.max(&rep), 1000);
        // replica id (16) + count + (gap 0, len 999 as a 2-byte varint) + table length
        assert_eq!(encode(&ctx).len(), 1 + 16 + 1 + 1 + 2);
    }

    #[test]
    fn rejects_unsorted_and_empty_entries() {
        let a = ReplicaId::from_u128(1);
        let b = ReplicaId::from_u128(2);
        let unsorted: ContextWire =
            SeqVec(vec![(b, SeqVec(vec![(0, 0)])), (a, SeqVec(vec![(0, 0)]))]);
        let bytes = postcard::to_allocvec(&unsorted).unwrap();
        assert!(matches!(
            decode::<CausalContext>(&bytes, &Limits::default()),
            Err(DecodeError::NonCanonical(_))
        ));
        let empty: ContextWire = SeqVec(vec![(a, SeqVec(vec![]))]);
        let bytes = postcard::to_allocvec(&empty).unwrap();
        assert!(matches!(
            decode::<CausalContext>(&bytes, &Limits::default()),
            Err(DecodeError::NonCanonical(_))
        ));
        let overflow: ContextWire = SeqVec(vec![(a, SeqVec(vec![(u64::MAX, 1)]))]);
        let bytes = postcard::to_allocvec(&overflow).unwrap();
        assert!(matches!(
            decode::<CausalContext>(&bytes, &Limits::default()),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn next_dot_overflow_is_an_error() {
        let rep = r(0);
        let mut ctx = CausalContext::new();
        ctx.insert_range(rep, u64::MAX - 1, u64::MAX);
        assert_eq!(ctx.next_dot(rep), Err(OverflowError::Dots));
    }
}
