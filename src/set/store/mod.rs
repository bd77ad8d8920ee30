//! `SetStore`: the dot store of an OR-Set, built so that an add costs one
//! hash probe and an append.
//!
//! Semantically this is the `DotMap<E, DotSet>` of Almeida, Shoker and
//! Baquero ("Delta State Replicated Data Types", JPDC 2018, §7.1): each live
//! element with the dots of its adds that nobody has removed. The layout is
//! chosen for the operations a replica does most:
//!
//! - an **arena** of entries `(element, dot)`, one per live dot, in arrival
//!   order. An add appends; a remove marks entries dead (counter 0), and the
//!   arena is compacted once the dead outnumber the live, so the cost is
//!   amortised O(1) and memory follows the live elements;
//! - a **hash index** (a `hashbrown::HashTable` of 4-byte slot numbers,
//!   hashed with SipHash-1-3 under a per-process random key, so peers cannot
//!   aim collisions) from each element to the first entry of its *chain*.
//!   The rare further dots of one element (adds made concurrently at several
//!   replicas) follow through a `next` link, in arena order. Stores of up to
//!   [`SMALL`] entries have no index and are searched linearly: a delta of
//!   one element allocates nothing;
//! - replica ids are **interned** per store, so an entry of a `u64` set is
//!   24 bytes (element, counter, replica slot and link).
//!
//! The join of `(s, c)` and `(s', c')` keeps an entry of `s` unless `c'` has
//! seen its dot and `s'` does not hold it (a removal there), and adds the
//! entries of `s'` whose dots `c` has never seen: two linear passes with one
//! hash probe per entry that needs one. Joining a small delta looks up only
//! the delta's elements (and scans only when the delta removes dots of
//! elements it does not name). It lives in `join.rs`.
//!
//! The wire form (`wire.rs`) lists the live dots of each replica as runs of positions
//! within the replica's dots in the causal context, then the elements in dot
//! order. A set grown by adds whose elements are all alive has one run per
//! replica: the dots cost nothing per element, only the element's own bytes.
//!
//! ```
//! use accordant::{CausalCrdt, OrSet, ReplicaId};
//! let eu = ReplicaId::from_u128(1);
//! let mut s = OrSet::new();
//! for e in [10u64, 20, 30] {
//!     let _ = s.add(eu, e).unwrap();
//! }
//! let _ = s.remove(&20);
//! let store = s.as_causal().store();
//! assert_eq!(store.len(), 2);
//! let dots: Vec<u64> = store.get(&30).unwrap().map(|d| d.counter()).collect();
//! assert_eq!(dots, vec![3]);
//! ```

use core::fmt::{self, Debug};
use core::hash::{BuildHasher, Hash};
use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::sync::OnceLock;

use hashbrown::hash_table::Entry as Slot;
use hashbrown::HashTable;
use serde::de::DeserializeOwned;
use serde::Serialize;
use smallvec::SmallVec;

use crate::causal::{CausalContext, Spans};
use crate::codec::{strictly_sorted, Budget, SeqVec};
use crate::dot_store::{DotStore, WireStore};
use crate::error::DecodeError;
use crate::replica::{Dot, ReplicaId};

/// Stores of at most this many entries are searched without an index.
pub(crate) const SMALL: usize = 8;
/// End of a chain.
const NIL: u32 = u32::MAX;
/// Set in an entry's `tag` when it is not the first entry of its chain.
const FOLLOWER: u32 = 1 << 31;

/// The hash of an element (or of a borrowed form of it).
pub(crate) fn hash_of<Q: Hash + ?Sized>(q: &Q) -> u64 {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    KEYS.get_or_init(RandomState::new).hash_one(q)
}

/// One live dot of an element (or a dead entry awaiting compaction).
#[derive(Clone)]
struct Entry<E> {
    elem: E,
    /// The dot's counter; 0 marks a dead entry.
    counter: u64,
    /// The replica's slot in the store's table, with [`FOLLOWER`] set when
    /// the entry is not the first of its chain.
    tag: u32,
    /// The next entry of the same element, or [`NIL`].
    next: u32,
}

impl<E> Entry<E> {
    fn live(&self) -> bool {
        self.counter != 0
    }

    fn replica(&self) -> usize {
        (self.tag & !FOLLOWER) as usize
    }

    fn is_head(&self) -> bool {
        self.tag & FOLLOWER == 0
    }
}

/// The dot store of an [`OrSet`](crate::OrSet): each live element with its
/// dots.
///
/// Entries `(element, dot)` live in an arena in arrival order (an add
/// appends; a remove marks entries dead and the arena is compacted once the
/// dead outnumber the live); a hash index (SipHash-1-3 under a per-process
/// random key) maps each element to its first entry, further dots of the
/// same element (concurrent adds) follow through a link; stores of up to 8
/// entries are searched without an index, so a one-element delta allocates
/// nothing; replica ids are interned per store. Joins walk both stores' dots
/// replica by replica in counter order, and a small delta's elements are
/// looked up instead. Iteration order is arrival order, which merges and
/// compactions change: no order is promised.
#[derive(Clone)]
pub struct SetStore<E> {
    replicas: SmallVec<[ReplicaId; 2]>,
    entries: SmallVec<[Entry<E>; 1]>,
    /// Slots of the first entry of every live element, while indexed.
    index: HashTable<u32>,
    /// Live entries (dots).
    live: usize,
    /// Live elements (chains).
    elems: usize,
}

impl<E> Default for SetStore<E> {
    fn default() -> Self {
        SetStore {
            replicas: SmallVec::new(),
            entries: SmallVec::new(),
            index: HashTable::new(),
            live: 0,
            elems: 0,
        }
    }
}

/// The dots of one element of a [`SetStore`], in no particular order.
#[derive(Clone)]
pub struct ElementDots<'a, E> {
    store: &'a SetStore<E>,
    slot: u32,
}

impl<E> Iterator for ElementDots<'_, E> {
    type Item = Dot;

    fn next(&mut self) -> Option<Dot> {
        let e = self.store.entries.get(self.slot as usize)?;
        self.slot = e.next;
        Some(self.store.dot(e))
    }
}

impl<E> SetStore<E> {
    /// Number of live elements.
    pub fn len(&self) -> usize {
        self.elems
    }

    /// Whether no element is live.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The dot of a live entry (whose counter is >= 1).
    fn dot(&self, e: &Entry<E>) -> Dot {
        Dot::from_parts(self.replicas[e.replica()], e.counter)
    }

    fn indexed(&self) -> bool {
        self.entries.len() > SMALL
    }

    /// Every live element with its dots, in no particular order (arrival
    /// order until a merge or a compaction reorders it).
    pub fn iter(&self) -> impl Iterator<Item = (&E, ElementDots<'_, E>)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.live() && e.is_head())
            .map(move |(i, e)| {
                let dots = ElementDots {
                    store: self,
                    slot: i as u32,
                };
                (&e.elem, dots)
            })
    }

    /// The live elements, in no particular order.
    pub fn elements(&self) -> Elements<'_, E> {
        Elements {
            entries: self.entries.iter(),
        }
    }
}

/// The live elements of a [`SetStore`] (or an [`OrSet`](crate::OrSet)), in
/// no particular order.
#[derive(Clone)]
pub struct Elements<'a, E> {
    entries: core::slice::Iter<'a, Entry<E>>,
}

impl<'a, E> Iterator for Elements<'a, E> {
    type Item = &'a E;

    fn next(&mut self) -> Option<&'a E> {
        self.entries
            .by_ref()
            .find(|e| e.live() && e.is_head())
            .map(|e| &e.elem)
    }
}

impl<E: Eq + Hash> SetStore<E> {
    /// The store holding `elem` under `dot` alone (no allocation).
    pub fn single(elem: E, dot: Dot) -> Self {
        let mut s = SetStore::default();
        s.replicas.push(dot.replica());
        s.entries.push(Entry {
            elem,
            counter: dot.counter(),
            tag: 0,
            next: NIL,
        });
        s.live = 1;
        s.elems = 1;
        s
    }

    /// Whether `elem` is live.
    pub fn contains<Q>(&self, elem: &Q) -> bool
    where
        E: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(elem, hash_of(elem)).is_some()
    }

    /// The dots of `elem`, if it is live.
    pub fn get<Q>(&self, elem: &Q) -> Option<ElementDots<'_, E>>
    where
        E: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.find(elem, hash_of(elem))?;
        Some(ElementDots { store: self, slot })
    }

    /// The slot of the first entry of `elem` (hash `h`).
    fn find<Q>(&self, elem: &Q, h: u64) -> Option<u32>
    where
        E: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let entries = &self.entries[..];
        if self.indexed() {
            self.index
                .find(h, |&s| entries[s as usize].elem.borrow() == elem)
                .copied()
        } else {
            entries
                .iter()
                .position(|e| e.live() && e.is_head() && e.elem.borrow() == elem)
                .map(|i| i as u32)
        }
    }

    /// Whether the store holds `elem` (hash `h`) under `dot`.
    fn holds(&self, elem: &E, h: u64, replica: ReplicaId, counter: u64) -> bool {
        let mut s = match self.find(elem, h) {
            Some(s) => s,
            None => return false,
        };
        while let Some(e) = self.entries.get(s as usize) {
            if e.counter == counter && self.replicas[e.replica()] == replica {
                return true;
            }
            s = e.next;
        }
        false
    }

    /// The slot of `replica` in this store's table, added if missing.
    fn replica_slot(&mut self, replica: ReplicaId) -> u32 {
        match self.replicas.iter().position(|r| *r == replica) {
            Some(i) => i as u32,
            None => {
                debug_assert!(self.replicas.len() < FOLLOWER as usize);
                self.replicas.push(replica);
                (self.replicas.len() - 1) as u32
            }
        }
    }

    /// Rebuilds the index from the chains' first entries.
    fn rebuild_index(&mut self) {
        let Self { entries, index, .. } = self;
        index.clear();
        if index.capacity() > 4 * self.elems + 16 {
            *index = HashTable::new();
        }
        if entries.len() <= SMALL {
            *index = HashTable::new();
            return;
        }
        index.reserve(self.elems, |&s| hash_of(&entries[s as usize].elem));
        for (i, e) in entries.iter().enumerate() {
            if e.live() && e.is_head() {
                index.insert_unique(hash_of(&e.elem), i as u32, |&s| {
                    hash_of(&entries[s as usize].elem)
                });
            }
        }
    }

    /// Appends the dot `(replica slot, counter)` of `elem` (hash `h`), whose
    /// chain starts at `head` if the element is already live.
    fn append(&mut self, elem: E, replica: u32, counter: u64, h: u64, head: Option<u32>) {
        debug_assert!(self.entries.len() < (NIL - 1) as usize);
        let slot = self.entries.len() as u32;
        let mut tag = replica;
        let mut next = NIL;
        match head {
            Some(head) => {
                // Right after the head: O(1) however long the chain.
                tag |= FOLLOWER;
                next = core::mem::replace(&mut self.entries[head as usize].next, slot);
            }
            None => self.elems += 1,
        }
        self.entries.push(Entry {
            elem,
            counter,
            tag,
            next,
        });
        self.live += 1;
        if self.entries.len() == SMALL + 1 {
            self.rebuild_index();
        } else if head.is_none() && self.indexed() {
            let Self { entries, index, .. } = self;
            index.insert_unique(h, slot, |&s| hash_of(&entries[s as usize].elem));
        }
    }

    /// Marks every entry of the chain at `head` (element hash `h`) dead,
    /// calling `dead` on each dot, and drops the element from the index
    /// unless `keep_index` (the caller then repoints it).
    fn kill_chain(&mut self, head: u32, h: u64, dead: &mut impl FnMut(Dot), keep_index: bool) {
        let mut s = head;
        while s != NIL {
            let e = &mut self.entries[s as usize];
            let next = e.next;
            if let Some(d) = Dot::new(self.replicas[e.replica()], e.counter) {
                dead(d);
            }
            e.counter = 0;
            e.next = NIL;
            self.live -= 1;
            s = next;
        }
        if !keep_index {
            self.elems -= 1;
            if self.indexed() {
                if let Ok(found) = self.index.find_entry(h, |&s| s == head) {
                    found.remove();
                }
            }
        }
    }

    /// Marks the entries at `slots` dead, then relinks each chain they
    /// belonged to once: linear in the slots and the chains touched, however
    /// long a chain (a hostile state may give one element many dots).
    fn kill_many(&mut self, slots: &[u32]) {
        // The chains' first entries, found while everything is still linked.
        let mut chains: Vec<(u32, u64)> = Vec::with_capacity(slots.len());
        for &slot in slots {
            let e = &self.entries[slot as usize];
            if e.live() {
                let h = hash_of(&e.elem);
                if let Some(head) = self.find(&e.elem, h) {
                    chains.push((head, h));
                }
            }
        }
        for &slot in slots {
            let e = &mut self.entries[slot as usize];
            if e.live() {
                e.counter = 0;
                self.live -= 1;
            }
        }
        chains.sort_unstable();
        chains.dedup();
        let indexed = self.indexed();
        let mut alive: SmallVec<[u32; 4]> = SmallVec::new();
        for (head, h) in chains {
            alive.clear();
            let mut s = head;
            while s != NIL {
                let e = &mut self.entries[s as usize];
                let next = e.next;
                if e.live() {
                    alive.push(s);
                } else {
                    e.next = NIL;
                }
                s = next;
            }
            match alive.first().copied() {
                None => {
                    self.elems -= 1;
                    if indexed {
                        if let Ok(found) = self.index.find_entry(h, |&x| x == head) {
                            found.remove();
                        }
                    }
                }
                Some(first) => {
                    for w in alive.windows(2) {
                        self.entries[w[0] as usize].next = w[1];
                    }
                    if let Some(&last) = alive.last() {
                        self.entries[last as usize].next = NIL;
                    }
                    self.entries[first as usize].tag &= !FOLLOWER;
                    if first != head && indexed {
                        if let Some(x) = self.index.find_mut(h, |&x| x == head) {
                            *x = first;
                        }
                    }
                }
            }
        }
    }

    /// Compacts the arena once dead entries outnumber live ones.
    fn compact_if_sparse(&mut self) {
        let dead = self.entries.len() - self.live;
        if dead <= SMALL || dead <= self.live {
            return;
        }
        let mut map = Vec::with_capacity(self.entries.len());
        let mut k = 0u32;
        for e in &self.entries {
            map.push(if e.live() { k } else { NIL });
            k += u32::from(e.live());
        }
        self.entries.retain(|e| e.live());
        for e in &mut self.entries {
            if e.next != NIL {
                e.next = map[e.next as usize];
            }
        }
        if self.entries.capacity() > 2 * self.entries.len() + SMALL {
            self.entries.shrink_to_fit();
        }
        // More than SMALL dead entries: the store was indexed.
        if self.indexed() && self.index.capacity() <= 4 * self.elems + 16 {
            // The elements, hence their hashes, are unchanged: renumber the
            // slots in place instead of hashing every element again.
            for s in self.index.iter_mut() {
                *s = map[*s as usize];
            }
        } else {
            self.rebuild_index();
        }
    }

    /// Makes `dot` the only dot of `elem`, calling `old` on the dots it
    /// replaces. One hash probe; the new entry is appended.
    pub(crate) fn replace(&mut self, elem: E, dot: Dot, mut old: impl FnMut(Dot)) {
        let h = hash_of(&elem);
        let r = self.replica_slot(dot.replica());
        if !self.indexed() {
            match self.find(&elem, h) {
                None => self.append(elem, r, dot.counter(), h, None),
                Some(head) => {
                    self.kill_chain(head, h, &mut old, true);
                    self.push_head(elem, r, dot.counter());
                    if self.entries.len() == SMALL + 1 {
                        self.rebuild_index();
                    }
                }
            }
            return;
        }
        let slot = self.entries.len() as u32;
        let Self {
            entries,
            index,
            replicas,
            live,
            elems,
        } = self;
        match index.entry(
            h,
            |&s| entries[s as usize].elem == elem,
            |&s| hash_of(&entries[s as usize].elem),
        ) {
            Slot::Occupied(mut found) => {
                let mut s = core::mem::replace(found.get_mut(), slot);
                while s != NIL {
                    let e = &mut entries[s as usize];
                    old(Dot::from_parts(replicas[e.replica()], e.counter));
                    s = e.next;
                    e.counter = 0;
                    e.next = NIL;
                    *live -= 1;
                }
            }
            Slot::Vacant(free) => {
                free.insert(slot);
                *elems += 1;
            }
        }
        self.push_head(elem, r, dot.counter());
        self.compact_if_sparse();
    }

    /// Pushes a live entry that starts its own chain (the index, if any, is
    /// the caller's business).
    fn push_head(&mut self, elem: E, replica: u32, counter: u64) {
        self.entries.push(Entry {
            elem,
            counter,
            tag: replica,
            next: NIL,
        });
        self.live += 1;
    }

    /// Adds the dot `(replica slot, counter)` to `elem`, in one probe.
    fn insert(&mut self, elem: E, replica: u32, counter: u64) {
        let h = hash_of(&elem);
        if self.entries.len() < SMALL {
            let head = self.find(&elem, h);
            self.append(elem, replica, counter, h, head);
            return;
        }
        let slot = self.entries.len() as u32;
        if !self.indexed() {
            // This push makes the store indexed: `append` builds the index.
            let head = self.find(&elem, h);
            self.append(elem, replica, counter, h, head);
            return;
        }
        let Self {
            entries,
            index,
            elems,
            ..
        } = self;
        let head = match index.entry(
            h,
            |&s| entries[s as usize].elem == elem,
            |&s| hash_of(&entries[s as usize].elem),
        ) {
            Slot::Occupied(found) => Some(*found.get()),
            Slot::Vacant(free) => {
                free.insert(slot);
                *elems += 1;
                None
            }
        };
        let mut tag = replica;
        let mut next = NIL;
        if let Some(head) = head {
            tag |= FOLLOWER;
            next = core::mem::replace(&mut entries[head as usize].next, slot);
        }
        entries.push(Entry {
            elem,
            counter,
            tag,
            next,
        });
        self.live += 1;
    }

    /// Live entries grouped by replica slot, each group ascending by
    /// counter, as `(counter, slot)`; `starts[r]..starts[r + 1]` is the
    /// group of replica slot `r`.
    fn by_replica(&self) -> (Vec<(u64, u32)>, Vec<usize>) {
        let n = self.replicas.len();
        let entries = &self.entries[..];
        let mut starts = vec![0usize; n + 1];
        for e in entries {
            if e.live() {
                starts[e.replica() + 1] += 1;
            }
        }
        for r in 0..n {
            starts[r + 1] += starts[r];
        }
        let mut next = starts.clone();
        let mut last = vec![0u64; n];
        let mut ascending = true;
        let mut out = vec![(0u64, 0u32); self.live];
        for (i, e) in entries.iter().enumerate() {
            if e.live() {
                let r = e.replica();
                ascending &= e.counter > last[r];
                last[r] = e.counter;
                out[next[r]] = (e.counter, i as u32);
                next[r] += 1;
            }
        }
        if !ascending {
            for r in 0..n {
                out[starts[r]..starts[r + 1]].sort_unstable();
            }
        }
        (out, starts)
    }

    /// Removes `elem`, calling `dead` on each of its dots; whether it was live.
    pub(crate) fn remove<Q>(&mut self, elem: &Q, mut dead: impl FnMut(Dot)) -> bool
    where
        E: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = hash_of(elem);
        let Some(head) = self.find(elem, h) else {
            return false;
        };
        self.kill_chain(head, h, &mut dead, false);
        self.compact_if_sparse();
        true
    }
}

impl<E: Eq + Hash> PartialEq for SetStore<E> {
    /// The same `(element, dot)` pairs: both stores' dots, grouped by
    /// replica in counter order, compared in step (linear; no chain walks).
    fn eq(&self, other: &Self) -> bool {
        if self.elems != other.elems || self.live != other.live {
            return false;
        }
        let (mine, mine_at) = self.by_replica();
        let (theirs, theirs_at) = other.by_replica();
        for (r, replica) in self.replicas.iter().enumerate() {
            let a = &mine[mine_at[r]..mine_at[r + 1]];
            if a.is_empty() {
                continue;
            }
            let Some(o) = other.replicas.iter().position(|x| x == replica) else {
                return false;
            };
            let b = &theirs[theirs_at[o]..theirs_at[o + 1]];
            let same = a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    x.0 == y.0
                        && self.entries[x.1 as usize].elem == other.entries[y.1 as usize].elem
                });
            if !same {
                return false;
            }
        }
        // Every live dot of mine matched one of theirs, and they hold as many.
        true
    }
}

impl<E: Eq + Hash> Eq for SetStore<E> {}

impl<E: Debug> Debug for SetStore<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(e, dots)| (e, dots.collect::<Vec<_>>())))
            .finish()
    }
}

mod join;
mod wire;
pub use wire::SetWire;

#[cfg(test)]
mod tests;
