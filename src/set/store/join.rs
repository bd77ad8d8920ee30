//! The join of two set stores: removal of the dots the other side has
//! seen but no longer holds, the dot order of the canonical encoding, and
//! the [`DotStore`] implementation the causal join drives (Almeida et al.,
//! "Delta state replicated data types", JPDC 2018, §7: the join of
//! dot stores under their causal contexts).

use core::fmt::Debug;
use core::hash::Hash;

use super::*;

impl<E: Eq + Hash> SetStore<E> {
    /// Kills my entries whose dots `other_ctx` has seen and `other` does not
    /// hold with the same element. Other's dots are grouped by replica in
    /// counter order; mine are visited in arena order, where each replica's
    /// counters usually ascend, so one cursor per replica walks other's
    /// group (a binary search serves the rest). No hashing.
    fn drop_removed_scan(&mut self, other: &Self, other_ctx: &CausalContext) {
        let (theirs, theirs_at) = other.by_replica();
        let n = self.replicas.len();
        let mut covered: Vec<Option<&Spans>> = Vec::with_capacity(n);
        let mut groups: Vec<&[(u64, u32)]> = Vec::with_capacity(n);
        for replica in &self.replicas {
            covered.push(other_ctx.spans(replica));
            groups.push(match other.replicas.iter().position(|x| x == replica) {
                Some(o) => &theirs[theirs_at[o]..theirs_at[o + 1]],
                None => &[],
            });
        }
        let mut cursor = vec![0usize; n];
        let mut last = vec![0u64; n];
        let mut doomed: Vec<u32> = Vec::new();
        for (slot, e) in self.entries.iter().enumerate() {
            let r = e.replica();
            let c = e.counter;
            if c == 0 || !covered[r].is_some_and(|s| s.contains(c)) {
                continue;
            }
            let held = groups[r];
            let j = if c > last[r] {
                let mut j = cursor[r];
                while j < held.len() && held[j].0 < c {
                    j += 1;
                }
                cursor[r] = j;
                last[r] = c;
                j
            } else {
                held.partition_point(|x| x.0 < c)
            };
            let kept = j < held.len()
                && held[j].0 == c
                && other.entries[held[j].1 as usize].elem == e.elem;
            if !kept {
                doomed.push(slot as u32);
            }
        }
        self.kill_many(&doomed);
    }

    /// [`drop_removed_scan`](Self::drop_removed_scan) for a small `other`
    /// (a delta): looks up other's elements, and scans only for dots of
    /// `other_ctx` seen here that belong to no element of `other`.
    fn drop_removed_small(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        let mut handled: Vec<Dot> = Vec::new();
        let mut doomed: Vec<u32> = Vec::new();
        for (elem, _) in other.iter() {
            let h = hash_of(elem);
            let mut s = self.find(elem, h).unwrap_or(NIL);
            while let Some(e) = self.entries.get(s as usize) {
                let d = self.dot(e);
                handled.push(d);
                if other_ctx.contains(&d) && !other.holds(elem, h, d.replica(), d.counter()) {
                    doomed.push(s);
                }
                s = e.next;
            }
        }
        handled.sort_unstable();
        let mut rest: SmallVec<[(u32, u64); 8]> = SmallVec::new();
        for d in other_ctx.dots() {
            if ctx.contains(&d) && handled.binary_search(&d).is_err() {
                if let Some(r) = self.replicas.iter().position(|r| *r == d.replica()) {
                    rest.push((r as u32, d.counter()));
                }
            }
        }
        if !rest.is_empty() {
            rest.sort_unstable();
            for (slot, e) in self.entries.iter().enumerate() {
                if e.live() && rest.binary_search(&(e.replica() as u32, e.counter)).is_ok() {
                    doomed.push(slot as u32);
                }
            }
        }
        self.kill_many(&doomed);
    }

    /// Live entries as `(position of the replica in ctx, counter, slot)`,
    /// sorted: the canonical dot order.
    pub(super) fn dot_order(&self, ctx: &CausalContext) -> Vec<(u32, u64, u32)> {
        let n = self.replicas.len();
        let pos: SmallVec<[u32; 4]> = self
            .replicas
            .iter()
            .map(|r| ctx.index_of(r).map_or(u32::MAX, |i| i as u32))
            .collect();
        let mut last: SmallVec<[u64; 4]> = SmallVec::from_elem(0, n);
        let mut count: SmallVec<[usize; 4]> = SmallVec::from_elem(0, n);
        let mut in_order = true;
        for e in self.entries.iter().filter(|e| e.live()) {
            let r = e.replica();
            in_order &= e.counter > last[r];
            last[r] = e.counter;
            count[r] += 1;
        }
        let live = self.entries.iter().enumerate().filter(|(_, e)| e.live());
        if !in_order {
            let mut out: Vec<_> = live
                .map(|(i, e)| (pos[e.replica()], e.counter, i as u32))
                .collect();
            out.sort_unstable();
            return out;
        }
        // Each replica's counters already ascend in arena order (the usual
        // case: adds append): a counting sort by replica finishes the job.
        let mut by_pos: SmallVec<[usize; 4]> = (0..n).collect();
        by_pos.sort_unstable_by_key(|&r| pos[r]);
        let mut next: SmallVec<[usize; 4]> = SmallVec::from_elem(0, n);
        let mut at = 0;
        for &r in &by_pos {
            next[r] = at;
            at += count[r];
        }
        let mut out = vec![(0, 0, 0); at];
        for (i, e) in live {
            let r = e.replica();
            out[next[r]] = (pos[r], e.counter, i as u32);
            next[r] += 1;
        }
        out
    }
}

impl<E> DotStore for SetStore<E>
where
    E: Clone + Eq + Hash + Debug,
{
    fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn for_each_dot(&self, f: &mut dyn FnMut(&Dot)) {
        for e in self.entries.iter().filter(|e| e.live()) {
            f(&self.dot(e));
        }
    }

    fn join_store(&mut self, ctx: &CausalContext, other: &Self, other_ctx: &CausalContext) {
        if other.live == 0 && other_ctx.is_empty() {
            return;
        }
        // Mine, seen there and not held there: removed there.
        if self.live > 0 && !other_ctx.is_empty() {
            let small = other.entries.len() <= 64
                && self.live > 256
                && other_ctx.range_count() <= 64
                && other_ctx.dot_count() <= 256;
            if small {
                self.drop_removed_small(ctx, other, other_ctx);
            } else {
                self.drop_removed_scan(other, other_ctx);
            }
        }
        // Theirs, never seen here: new.
        if other.live > 0 {
            let seen: SmallVec<[Option<&Spans>; 4]> =
                other.replicas.iter().map(|r| ctx.spans(r)).collect();
            let fresh: Vec<u32> = other
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.live() && !seen[e.replica()].is_some_and(|s| s.contains(e.counter))
                })
                .map(|(i, _)| i as u32)
                .collect();
            // Grow the arena and the index once, not step by step; a large
            // merge sizes the arena exactly (a merged state holds no slack),
            // a delta leaves the usual doubling to amortise appends.
            if fresh.len() > self.entries.len() / 4 {
                self.entries.reserve_exact(fresh.len());
            } else {
                self.entries.reserve(fresh.len());
            }
            if self.indexed() {
                let Self { entries, index, .. } = self;
                index.reserve(fresh.len(), |&s| hash_of(&entries[s as usize].elem));
            }
            let mut slots: SmallVec<[u32; 4]> = SmallVec::from_elem(NIL, other.replicas.len());
            let theirs = &other.entries[..];
            for i in fresh {
                let e = &theirs[i as usize];
                let r = e.replica();
                if slots[r] == NIL {
                    slots[r] = self.replica_slot(other.replicas[r]);
                }
                self.insert(e.elem.clone(), slots[r], e.counter);
            }
        }
        self.compact_if_sparse();
    }

    fn filter_dots(&self, keep: &mut dyn FnMut(&Dot) -> bool) -> Self {
        let mut out = SetStore::default();
        for e in self.entries.iter().filter(|e| e.live()) {
            let d = self.dot(e);
            if keep(&d) {
                let r = out.replica_slot(d.replica());
                let h = hash_of(&e.elem);
                let head = out.find(&e.elem, h);
                out.append(e.elem.clone(), r, d.counter(), h, head);
            }
        }
        out
    }

    fn split_dots(&self, out: &mut Vec<(Dot, Self)>) {
        for e in self.entries.iter().filter(|e| e.live()) {
            let d = self.dot(e);
            out.push((d, SetStore::single(e.elem.clone(), d)));
        }
    }

    fn dot_count(&self) -> usize {
        self.live
    }
}
