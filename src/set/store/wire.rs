//! The canonical wire form of a [`SetStore`]: live dots as runs of
//! positions within each replica's dots in the causal context, then the
//! elements in dot order (see the parent module).

use super::*;

/// Wire form of a set store: for each replica with live dots (by its
/// position in the context, ascending), the runs of positions of its live
/// dots among its dots in the context, as `(gap, length - 1)` pairs (the
/// gap of the first run is its start, of the others its start minus the
/// previous run's end minus 2, so every pair of integers is a valid, unique
/// encoding); then the elements, one per live dot, in dot order.
pub type SetWire<E> = (SeqVec<(u32, SeqVec<(u64, u64)>)>, SeqVec<E>);

impl<E> SetStore<E>
where
    E: Clone + Eq + Hash,
{
    /// The runs of the wire form, from the live entries in dot order:
    /// `(replica position in ctx, (gap, length - 1) pairs)`.
    fn runs(ctx: &CausalContext, order: &[(u32, u64, u32)]) -> Vec<(u32, Vec<(u64, u64)>)> {
        fn flush(run: (u64, u64), prev_end: &mut Option<u64>, pairs: &mut Vec<(u64, u64)>) {
            let gap = match *prev_end {
                None => run.0,
                Some(p) => run.0.wrapping_sub(p).wrapping_sub(2),
            };
            pairs.push((gap, run.1.wrapping_sub(run.0)));
            *prev_end = Some(run.1);
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let pos = order[i].0;
            let spans = ctx
                .entry_at(pos as usize)
                .map_or(&[][..], |(_, s)| s.as_slice());
            // Position of each counter among the replica's dots, by walking
            // the spans alongside the ascending counters.
            let (mut span, mut offset) = (0usize, 0u64);
            let mut current: Option<(u64, u64)> = None;
            let mut prev_end: Option<u64> = None;
            let mut pairs = Vec::new();
            while i < order.len() && order[i].0 == pos {
                let c = order[i].1;
                while span < spans.len() && spans[span].end < c {
                    offset = offset.wrapping_add(spans[span].end - spans[span].start + 1);
                    span += 1;
                }
                let start = spans.get(span).map_or(c, |s| s.start);
                let p = offset.wrapping_add(c.wrapping_sub(start));
                current = match current {
                    Some((a, b)) if b.wrapping_add(1) == p => Some((a, p)),
                    Some(done) => {
                        flush(done, &mut prev_end, &mut pairs);
                        Some((p, p))
                    }
                    None => Some((p, p)),
                };
                i += 1;
            }
            if let Some(done) = current {
                flush(done, &mut prev_end, &mut pairs);
            }
            out.push((pos, pairs));
        }
        out
    }
}

/// The elements of a store in dot order, serialised without cloning them.
struct InDotOrder<'a, E>(&'a [Entry<E>], &'a [(u32, u64, u32)]);

impl<E: Serialize> Serialize for InDotOrder<'_, E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.1.iter().map(|o| &self.0[o.2 as usize].elem))
    }
}

impl<E> WireStore for SetStore<E>
where
    E: Clone + Eq + Hash + Debug + Serialize + DeserializeOwned,
{
    type Wire = SetWire<E>;

    fn to_wire(&self, ctx: &CausalContext) -> Self::Wire {
        let order = self.dot_order(ctx);
        let runs = Self::runs(ctx, &order)
            .into_iter()
            .map(|(pos, pairs)| (pos, SeqVec(pairs)))
            .collect();
        let elems = order
            .iter()
            .map(|o| self.entries[o.2 as usize].elem.clone())
            .collect();
        (SeqVec(runs), SeqVec(elems))
    }

    fn serialize_wire<Ser: serde::Serializer>(
        &self,
        ctx: &CausalContext,
        s: Ser,
    ) -> Result<Ser::Ok, Ser::Error> {
        let order = self.dot_order(ctx);
        let runs = Self::runs(ctx, &order);
        (runs, InDotOrder(&self.entries, &order)).serialize(s)
    }

    fn from_wire(
        wire: Self::Wire,
        ctx: &CausalContext,
        dots: &mut Vec<Dot>,
        budget: &mut Budget,
    ) -> Result<Self, DecodeError> {
        const OUTSIDE: DecodeError = DecodeError::Invalid("dot not covered by its causal context");
        let (runs, elems) = wire;
        budget.take(runs.0.len())?;
        if !strictly_sorted(&runs.0, |a, b| a.0 < b.0) {
            return Err(DecodeError::NonCanonical("set replicas not sorted"));
        }
        // Validate every run and count the dots before expanding anything.
        let mut total: u128 = 0;
        let mut bounds: Vec<(u128, u128)> = Vec::new();
        for (pos, pairs) in &runs.0 {
            let (_, spans) = ctx
                .entry_at(*pos as usize)
                .ok_or(DecodeError::Invalid("dot refers to an unknown replica"))?;
            budget.take(pairs.0.len())?;
            if pairs.0.is_empty() {
                return Err(DecodeError::NonCanonical("replica with no live dots"));
            }
            let available = spans.count();
            let mut prev: Option<u128> = None;
            for &(gap, len) in &pairs.0 {
                let start = match prev {
                    None => u128::from(gap),
                    Some(p) => p + 2 + u128::from(gap),
                };
                let end = start + u128::from(len);
                if end >= available {
                    return Err(OUTSIDE);
                }
                bounds.push((start, end));
                total += end - start + 1;
                prev = Some(end);
            }
        }
        if total != elems.0.len() as u128 {
            return Err(DecodeError::Invalid("element count differs from live dots"));
        }
        // Slots are `u32`s; a store this large could not be held anyway.
        if elems.0.len() >= (NIL - 1) as usize {
            return Err(DecodeError::TooManyItems {
                limit: (NIL - 2) as usize,
            });
        }
        budget.take(elems.0.len())?;
        let mut store = SetStore::default();
        let mut elems = elems.0.into_iter();
        let mut bounds = bounds.into_iter();
        for (pos, pairs) in runs.0 {
            let Some((replica, spans)) = ctx.entry_at(pos as usize) else {
                return Err(OUTSIDE);
            };
            let spans = spans.as_slice();
            let slot = store.replica_slot(replica);
            let (mut span, mut offset) = (0usize, 0u128);
            for _ in 0..pairs.0.len() {
                let Some((start, end)) = bounds.next() else {
                    return Err(OUTSIDE);
                };
                for p in start..=end {
                    while span < spans.len()
                        && p > offset + u128::from(spans[span].end - spans[span].start)
                    {
                        offset += u128::from(spans[span].end - spans[span].start) + 1;
                        span += 1;
                    }
                    let base = spans.get(span).ok_or(OUTSIDE)?.start;
                    // p - offset < span length <= 2^64, and start + it <= end.
                    let counter = base + (p - offset) as u64;
                    let Some(elem) = elems.next() else {
                        return Err(OUTSIDE);
                    };
                    dots.push(Dot::new(replica, counter).ok_or(OUTSIDE)?);
                    let h = hash_of(&elem);
                    let head = store.find(&elem, h);
                    store.append(elem, slot, counter, h, head);
                }
            }
        }
        Ok(store)
    }
}
