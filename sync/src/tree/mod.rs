//! The Merkle digest tree over the 64-bit key-hash space, maintained
//! incrementally.
//!
//! # The algorithm
//!
//! The key space of [`KeyHash`]es is cut by an implicit radix tree of fan-out
//! 16: node `(level, index)` covers the key hashes whose top `4 * level` bits
//! equal `index`, so the root (level 0) covers everything, each level consumes
//! four more bits, most significant first, and the leaves are the nodes at
//! level [`depth`](DigestTree::depth). Every node holds the [`Aggregate`] of
//! the items whose key hash it covers: the sum of their [`ItemHash`]es modulo
//! 2^128 and their count (see [`crate::digest`] for why a sum and not XOR).
//! Because the aggregate of a node is a group sum, it equals the
//! [merge](Aggregate::merge) of its children's, and adding, removing or
//! changing one item adds one delta to each node on one root-to-leaf path:
//! no sibling is rehashed. Two replicas compare roots; where two nodes
//! differ, they can compare those nodes' children, and descend only into
//! subtrees that differ, down to leaves (or to nodes small enough that
//! listing their keys is cheaper), in as many rounds as there are levels.
//! (The anti-entropy session, [`crate::session`], compares the roots and
//! then names the differing items in one round trip with the coded
//! symbols the tree also keeps: see [Coded symbols](#coded-symbols).)
//!
//! The tree is implicit: nothing but aggregates is stored, one flat array
//! per level (level `L` holds all `16^L` nodes, in index order), and a node's
//! children at level `L + 1` are the 16 consecutive entries from `16 * index`.
//! The tree holds no per-key data; its owner (the store) keeps each key's
//! item hash, which it needs to [`remove`](DigestTree::remove) or
//! [`replace`](DigestTree::replace) an item and to
//! [`rebuild`](DigestTree::rebuild) the tree at another depth.
//!
//! A node's identity, [`NodeId`], and its aggregate do not depend on the
//! depth of the tree that holds it: two replicas whose trees have different
//! depths compare nodes at every level both trees have (up to the smaller
//! depth) and continue with key lists below that.
//!
//! # Why fan-out 16
//!
//! With fan-out `f`, a session finds differences in `log_f(n / leaf size)`
//! rounds and sends `f` aggregates for every differing node it opens. At
//! `f = 2`, a million items take 16 rounds; at 16, four. Beyond 16, each
//! opened node costs more bytes (256 fingerprints for one differing item
//! per level at `f = 256`) for one round saved. Sixteen also makes a level
//! one hex digit of the key hash, and keeps the internal nodes at
//! `1 / (f - 1)`, under 7 %, of the leaves, so the leaves dominate memory.
//!
//! # Depth policy
//!
//! [`DigestTree::wanted_depth`] is the smallest depth `d` at which leaves
//! average at most [`MAX_LEAF_AVERAGE`] (128) items, i.e. `count <= 128 *
//! 16^d`; so for `d >= 1` leaves average more than 8 and at most 128 items,
//! and a tree of up to 128 items is a single root (depth 0). The depth is
//! capped at [`MAX_DEPTH`] (8, about 4 · 10^9 leaves). The tree does not
//! restructure itself, since that needs every item: [`insert`] and
//! [`remove`] return [`Resize::Rebuild`] when the depth has drifted out of
//! its band, and the owner then calls [`rebuild`] with all items. With
//! hysteresis:
//!
//! * grow when leaves average more than 128 items (the rebuilt tree averages
//!   just over 8);
//! * shrink when they average fewer than [`MIN_LEAF_AVERAGE`] (2) items (the
//!   rebuilt tree averages under 32).
//!
//! So the size must change fourfold between two rebuilds, and the O(n) cost
//! of a rebuild is amortised over Θ(n) updates. Ignoring the hint is safe: the
//! tree stays correct, only less balanced for the protocol.
//!
//! [`insert`]: DigestTree::insert
//! [`remove`]: DigestTree::remove
//! [`rebuild`]: DigestTree::rebuild
//!
//! # Costs
//!
//! A node is stored in 24 bytes (the 128-bit sum as two `u64` words and the
//! `u64` count, with 8-byte alignment). A tree of depth `d` has
//! `(16^(d+1) - 1) / 15` nodes, 16/15 of its leaves. At 10^6 items the policy
//! picks depth 4: 65 536 leaves (15.3 items each on average) and
//! 69 905 nodes, so 69 905 × 24 B = 1.68 MB, **1.68 bytes per item**. Over
//! the whole band, right after a grow (8 items per leaf) it is
//! 24 × 16/15 / 8 = 3.2 bytes per item, just before one (128 per leaf)
//! 0.2 bytes; only a shrinking tree, down to 2 items per leaf, reaches
//! 12.8 bytes per item. [`DigestTree::heap_bytes`] reports the exact figure.
//!
//! An update ([`insert`], [`remove`], [`replace`](DigestTree::replace))
//! adds a 128-bit and a 64-bit delta at `depth + 1` nodes, one per level,
//! with no hashing: five nodes at 10^6 items, tens of nanoseconds.
//!
//! # Coded symbols
//!
//! The tree also keeps, for the anti-entropy session, the first coded
//! symbols of a rateless IBLT of its items and a 24-byte difference
//! estimator ([`crate::sketch::Maintained`], read with
//! [`DigestTree::coded`]): every insert, removal and replacement adds or
//! removes the item there too (about `2 ln(m)` of the `m` kept symbols,
//! and sixteen counters), so a session copies its symbols instead of
//! coding every item. Their number follows the depth
//! ([`Maintained::len_for_depth`]): 16,384 symbols of 16 bytes at 10^6
//! items, 0.26 bytes per item more than the nodes' 1.68, and a rebuild
//! recodes them.
//!
//! # Example
//!
//! ```
//! use accordant_sync::digest::{ItemHash, KeyHash};
//! use accordant_sync::tree::{DigestTree, NodeId, Resize};
//!
//! let item = |i: u32, value: &[u8]| {
//!     let key = i.to_be_bytes();
//!     (KeyHash::of(&key), ItemHash::from_parts(&key, value))
//! };
//!
//! // The owner keeps the items; the tree only their aggregates.
//! let mut items = Vec::new();
//! let mut ours = DigestTree::new();
//! for i in 0..1_000 {
//!     let (k, h) = item(i, b"v1");
//!     items.push((k, h));
//!     if let Resize::Rebuild(depth) = ours.insert(k, h) {
//!         ours.rebuild(depth, items.iter().copied());
//!     }
//! }
//! assert_eq!(ours.depth(), 1); // 1 000 items: 16 leaves of about 62
//! assert_eq!(ours.root().count, 1_000);
//!
//! // A replica that differs in the value of one key.
//! let mut theirs = ours.clone();
//! let (k, old) = items[42];
//! let (_, new) = item(42, b"v2");
//! theirs.replace(k, old, new);
//! assert_ne!(ours.root(), theirs.root());
//!
//! // Descend only where the children's aggregates differ.
//! let mut frontier = vec![NodeId::ROOT];
//! let mut leaves = Vec::new();
//! while let Some(node) = frontier.pop() {
//!     if node.is_leaf(ours.depth()) {
//!         leaves.push(node);
//!         continue;
//!     }
//!     let their_children: Vec<_> = theirs.children(node).collect();
//!     frontier.extend(ours.diff_nodes(node, node.level() + 1, &their_children).unwrap());
//! }
//! assert_eq!(leaves, [ours.leaf_of(k)]);
//! assert!(leaves[0].contains(k));
//! ```

use std::fmt;
use std::iter::FusedIterator;

use crate::digest::{Aggregate, ItemHash, KeyHash};
use crate::sketch::{ItemId, Maintained};

mod node;

pub use node::NodeId;
use node::{index_at, nodes_at};

/// Children per node.
pub const FANOUT: usize = 16;

/// Key-hash bits consumed per level (`FANOUT == 1 << BITS_PER_LEVEL`).
pub const BITS_PER_LEVEL: u32 = 4;

/// The deepest level a [`NodeId`] can name: at level 16 a node covers a
/// single 64-bit key hash.
pub const MAX_LEVEL: u8 = 16;

/// The deepest tree [`DigestTree`] builds: 16^8 (about 4.3 · 10^9) leaves,
/// enough for over 5 · 10^11 items at 128 per leaf.
pub const MAX_DEPTH: u8 = 8;

/// The depth policy grows the tree when leaves average more items than this.
pub const MAX_LEAF_AVERAGE: u64 = 128;

/// The depth policy shrinks the tree when leaves average fewer items than
/// this.
pub const MIN_LEAF_AVERAGE: u64 = 2;

/// What the owner of a [`DigestTree`] should do after an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the tree may need rebuilding at another depth"]
pub enum Resize {
    /// The depth suits the number of items.
    Keep,
    /// The depth has left its band: call [`DigestTree::rebuild`] with this
    /// depth and every item. Until then the tree stays correct.
    Rebuild(u8),
}

/// One stored node: the aggregate packed into 24 bytes (`u128` would align
/// it to 16 and pad it to 32).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Node {
    sum_hi: u64,
    sum_lo: u64,
    count: u64,
}

impl Node {
    fn get(self) -> Aggregate {
        Aggregate {
            sum: (u128::from(self.sum_hi) << 64) | u128::from(self.sum_lo),
            count: self.count,
        }
    }

    fn set(&mut self, agg: Aggregate) {
        // Truncations intended: the two 64-bit halves of the sum.
        self.sum_hi = (agg.sum >> 64) as u64;
        self.sum_lo = agg.sum as u64;
        self.count = agg.count;
    }

    fn apply(&mut self, delta: Aggregate) {
        self.set(self.get().merged(&delta));
    }
}

/// A Merkle digest tree over the key-hash space: see the
/// [module documentation](self).
#[derive(Clone, PartialEq, Eq)]
pub struct DigestTree {
    /// `levels[l]` holds the `16^l` nodes of level `l`, in index order;
    /// `levels.len() == depth + 1`.
    levels: Vec<Box<[Node]>>,
    /// The first coded symbols and the estimator of every item.
    coded: Maintained,
}

impl Default for DigestTree {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DigestTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestTree")
            .field("depth", &self.depth())
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

impl DigestTree {
    /// An empty tree of depth 0.
    #[must_use]
    pub fn new() -> Self {
        Self::with_depth(0)
    }

    /// An empty tree of depth `min(depth, MAX_DEPTH)`. It allocates
    /// `24 * 16^depth * 16/15` bytes.
    #[must_use]
    pub fn with_depth(depth: u8) -> Self {
        let depth = depth.min(MAX_DEPTH);
        let levels = (0..=depth)
            .map(|level| vec![Node::default(); nodes_at(level) as usize].into_boxed_slice())
            .collect();
        Self {
            levels,
            coded: Maintained::with_len(Maintained::len_for_depth(depth)),
        }
    }

    /// A tree of the depth [`wanted_depth`](Self::wanted_depth) picks for
    /// `items`.
    #[must_use]
    pub fn from_items(items: impl IntoIterator<Item = (KeyHash, ItemHash)>) -> Self {
        let items: Vec<_> = items.into_iter().collect();
        let mut tree = Self::new();
        tree.rebuild(Self::wanted_depth(items.len() as u64), items);
        tree
    }

    /// The depth the policy wants for `count` items: the smallest `d` with
    /// `count <= 128 * 16^d` (leaves averaging more than 8 and at most 128
    /// items), at most [`MAX_DEPTH`].
    #[must_use]
    pub fn wanted_depth(count: u64) -> u8 {
        (0..MAX_DEPTH)
            .find(|&d| count <= MAX_LEAF_AVERAGE << (BITS_PER_LEVEL * u32::from(d)))
            .unwrap_or(MAX_DEPTH)
    }

    /// The depth: the level of the leaves (0 when the root is the only
    /// node).
    #[must_use]
    pub fn depth(&self) -> u8 {
        // At most MAX_DEPTH.
        (self.levels.len() - 1) as u8
    }

    /// The aggregate of every item.
    #[must_use]
    pub fn root(&self) -> Aggregate {
        self.levels[0][0].get()
    }

    /// The number of items (the root's count).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.levels[0][0].count
    }

    /// Whether the tree holds no item.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.root().is_empty()
    }

    /// The aggregate of the items under `node`, or `None` if `node` is
    /// deeper than this tree.
    #[must_use]
    pub fn node(&self, node: NodeId) -> Option<Aggregate> {
        let level = self.levels.get(usize::from(node.level))?;
        Some(level[node.index as usize].get())
    }

    /// The leaf that covers `key`.
    #[must_use]
    pub fn leaf_of(&self, key: KeyHash) -> NodeId {
        NodeId::containing(key, self.depth())
    }

    /// The children of `node` with their aggregates, in key order, empty
    /// ones included; nothing if `node` is a leaf (or deeper).
    #[must_use]
    pub fn children(&self, node: NodeId) -> Nodes<'_> {
        match node.level.checked_add(1) {
            Some(level) => self.descendants_at(node, level),
            None => Nodes::empty(),
        }
    }

    /// The nodes at `level` under `node` (`node` itself if `level ==
    /// node.level()`), with their aggregates, in key order: `16^(level -
    /// node.level())` of them, empty ones included (filter on
    /// [`Aggregate::is_empty`] to skip them). Nothing if `level` is above
    /// `node` or deeper than the tree.
    #[must_use]
    pub fn descendants_at(&self, node: NodeId, level: u8) -> Nodes<'_> {
        let (Some(span), Some(nodes)) = (
            level.checked_sub(node.level),
            self.levels.get(usize::from(level)),
        ) else {
            return Nodes::empty();
        };
        // level <= depth <= MAX_DEPTH, so none of this overflows.
        let first = node.index << (BITS_PER_LEVEL * u32::from(span));
        let len = nodes_at(span);
        Nodes {
            level,
            first,
            iter: nodes[first as usize..(first + len) as usize]
                .iter()
                .enumerate(),
        }
    }

    /// The nodes at `level` under `parent` whose aggregates differ between
    /// this tree and `theirs`, the peer's list of `(node, aggregate)` at that
    /// level under `parent`, in key order.
    ///
    /// `theirs` may omit nodes (an omitted node counts as empty, so a peer
    /// may skip its empty nodes) and need not be sorted; entries that are
    /// not at `level` under `parent` are ignored, and a node listed twice
    /// with different aggregates is reported as differing. Returns `None`
    /// if `level` is above `parent` or deeper than this tree.
    #[must_use]
    pub fn diff_nodes(
        &self,
        parent: NodeId,
        level: u8,
        theirs: &[(NodeId, Aggregate)],
    ) -> Option<Vec<NodeId>> {
        if level < parent.level || level > self.depth() {
            return None;
        }
        let mut theirs: Vec<(u64, Aggregate)> = theirs
            .iter()
            .filter(|(id, _)| id.level == level && parent.covers(id))
            .map(|&(id, agg)| (id.index, agg))
            .collect();
        theirs.sort_unstable_by_key(|&(index, _)| index);
        let mut theirs = theirs.into_iter().peekable();
        let mut differing = Vec::new();
        for (id, ours) in self.descendants_at(parent, level) {
            let mut listed: Option<Aggregate> = None;
            let mut conflicting = false;
            while let Some((_, agg)) = theirs.next_if(|&(index, _)| index == id.index) {
                conflicting |= listed.is_some_and(|prev| prev != agg);
                listed = Some(agg);
            }
            if conflicting || listed.unwrap_or(Aggregate::EMPTY) != ours {
                differing.push(id);
            }
        }
        Some(differing)
    }

    /// Adds `delta` to every node on the path to `key`'s leaf.
    fn apply(&mut self, key: KeyHash, delta: Aggregate) {
        for (level, nodes) in (0u8..).zip(self.levels.iter_mut()) {
            nodes[index_at(key.0, level) as usize].apply(delta);
        }
    }

    /// Adds the item `item` under `key`: `depth + 1` wrapping additions.
    ///
    /// Returns [`Resize::Rebuild`] when the number of items has left the
    /// band of this depth.
    pub fn insert(&mut self, key: KeyHash, item: ItemHash) -> Resize {
        self.apply(key, Aggregate::single(item));
        self.coded.add(ItemId::new(key, item));
        self.resize_hint()
    }

    /// Removes the item `item` under `key`, which the owner inserted
    /// before: `depth + 1` wrapping subtractions.
    ///
    /// Removing an item that is not there is not detected; inserting it
    /// back undoes it. Returns [`Resize::Rebuild`] when the number of items
    /// has left the band of this depth.
    pub fn remove(&mut self, key: KeyHash, item: ItemHash) -> Resize {
        let mut delta = Aggregate::EMPTY;
        delta.sub(item);
        self.apply(key, delta);
        self.coded.remove(ItemId::new(key, item));
        self.resize_hint()
    }

    /// Replaces the item `old` under `key` with `new` (a key whose value
    /// changed): one pass of `depth + 1` wrapping additions of `new - old`.
    pub fn replace(&mut self, key: KeyHash, old: ItemHash, new: ItemHash) {
        if old != new {
            let delta = Aggregate {
                sum: new.0.wrapping_sub(old.0),
                count: 0,
            };
            self.apply(key, delta);
            self.coded.remove(ItemId::new(key, old));
            self.coded.add(ItemId::new(key, new));
        }
    }

    /// Whether the depth suits the number of items (see the
    /// [depth policy](self#depth-policy)).
    pub fn resize_hint(&self) -> Resize {
        let count = self.len();
        if count > u64::MAX / 2 {
            // More removes than inserts wrapped the count: an owner's bug,
            // and no reason to allocate the deepest tree.
            return Resize::Keep;
        }
        let depth = self.depth();
        let shift = BITS_PER_LEVEL * u32::from(depth);
        let grow = depth < MAX_DEPTH && count > MAX_LEAF_AVERAGE << shift;
        let shrink = depth > 0 && count < MIN_LEAF_AVERAGE << shift;
        if grow || shrink {
            Resize::Rebuild(Self::wanted_depth(count))
        } else {
            Resize::Keep
        }
    }

    /// Rebuilds the tree at depth `min(depth, MAX_DEPTH)` from every item,
    /// in O(items + nodes): each item is added to its leaf and every inner
    /// node is then the merge of its children.
    pub fn rebuild(&mut self, depth: u8, items: impl IntoIterator<Item = (KeyHash, ItemHash)>) {
        let depth = depth.min(MAX_DEPTH);
        if depth == self.depth() {
            self.levels.iter_mut().for_each(|l| l.fill(Node::default()));
        } else {
            *self = Self::with_depth(depth);
        }
        self.coded.reset(Maintained::len_for_depth(depth));
        let leaves = &mut self.levels[usize::from(depth)];
        for (key, item) in items {
            leaves[index_at(key.0, depth) as usize].apply(Aggregate::single(item));
            self.coded.add(ItemId::new(key, item));
        }
        for level in (0..usize::from(depth)).rev() {
            let (upper, lower) = self.levels.split_at_mut(level + 1);
            for (parent, children) in upper[level].iter_mut().zip(lower[0].chunks_exact(FANOUT)) {
                let agg = children
                    .iter()
                    .fold(Aggregate::EMPTY, |acc, child| acc.merged(&child.get()));
                parent.set(agg);
            }
        }
    }

    /// The first coded symbols and the difference estimator of every item,
    /// kept up to date by every insert, removal and replacement (see
    /// [`crate::sketch::Maintained`]).
    #[must_use]
    pub fn coded(&self) -> &Maintained {
        &self.coded
    }

    /// The bytes this tree owns on the heap, the coded symbols included.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.coded.heap_bytes()
            + self.levels.capacity() * std::mem::size_of::<Box<[Node]>>()
            + self
                .levels
                .iter()
                .map(|l| std::mem::size_of_val::<[Node]>(l))
                .sum::<usize>()
    }
}

/// An iterator over `(NodeId, Aggregate)` pairs of one level, in key order,
/// from [`DigestTree::children`] and [`DigestTree::descendants_at`].
#[derive(Clone, Debug)]
pub struct Nodes<'a> {
    level: u8,
    first: u64,
    iter: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl Nodes<'_> {
    fn empty() -> Self {
        Nodes {
            level: 0,
            first: 0,
            iter: [].iter().enumerate(),
        }
    }

    fn item(&self, (offset, node): (usize, &Node)) -> (NodeId, Aggregate) {
        let id = NodeId {
            level: self.level,
            index: self.first + offset as u64,
        };
        (id, node.get())
    }
}

impl Iterator for Nodes<'_> {
    type Item = (NodeId, Aggregate);

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.iter.next()?;
        Some(self.item(next))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl DoubleEndedIterator for Nodes<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let next = self.iter.next_back()?;
        Some(self.item(next))
    }
}

impl ExactSizeIterator for Nodes<'_> {}

impl FusedIterator for Nodes<'_> {}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};

    /// A key hash that often shares its top bits with others, or sits at an
    /// edge of the key space, so leaves hold several items and range bounds
    /// get exercised.
    #[derive(Clone, Copy, Debug)]
    struct Key(KeyHash);

    impl Arbitrary for Key {
        fn arbitrary(g: &mut Gen) -> Self {
            let raw = u64::arbitrary(g);
            let key = match u8::arbitrary(g) % 8 {
                0 => *g
                    .choose(&[0, 1, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1])
                    .unwrap(),
                1..=3 => raw & 0xF0F0_0000_0000_00FF,
                _ => raw,
            };
            Key(KeyHash(key))
        }
    }

    /// An item hash, often from a small set so that equal items recur.
    #[derive(Clone, Copy, Debug)]
    struct Item(ItemHash);

    impl Arbitrary for Item {
        fn arbitrary(g: &mut Gen) -> Self {
            let item = if bool::arbitrary(g) {
                *g.choose(&[0, 1, 1 << 127, u128::MAX]).unwrap()
            } else {
                u128::arbitrary(g)
            };
            Item(ItemHash(item))
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(Key, Item),
        Remove(usize),
        Replace(usize, Item),
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Self {
            match u8::arbitrary(g) % 4 {
                0 | 1 => Op::Insert(Key::arbitrary(g), Item::arbitrary(g)),
                2 => Op::Remove(usize::arbitrary(g)),
                _ => Op::Replace(usize::arbitrary(g), Item::arbitrary(g)),
            }
        }
    }

    fn items_of(pairs: &[(Key, Item)]) -> Vec<(KeyHash, ItemHash)> {
        pairs.iter().map(|&(Key(k), Item(i))| (k, i)).collect()
    }

    fn aggregate(items: &[(KeyHash, ItemHash)]) -> Aggregate {
        items.iter().map(|&(_, i)| i).collect()
    }

    fn built(depth: u8, items: &[(KeyHash, ItemHash)]) -> DigestTree {
        let mut tree = DigestTree::with_depth(depth);
        for &(k, i) in items {
            let _ = tree.insert(k, i);
        }
        tree
    }

    fn all_nodes(tree: &DigestTree) -> Vec<(NodeId, Aggregate)> {
        (0..=tree.depth())
            .flat_map(|level| tree.descendants_at(NodeId::ROOT, level))
            .collect()
    }

    /// Applies `ops` to a tree and to a plain list of items (the model),
    /// checking the root after every step; if `follow_hints`, rebuilds
    /// whenever the tree asks, as a store would.
    fn run_ops(
        mut tree: DigestTree,
        ops: &[Op],
        follow_hints: bool,
    ) -> Result<(DigestTree, Vec<(KeyHash, ItemHash)>), String> {
        let mut model: Vec<(KeyHash, ItemHash)> = Vec::new();
        for op in ops {
            let hint = match *op {
                Op::Insert(Key(k), Item(i)) => {
                    model.push((k, i));
                    tree.insert(k, i)
                }
                Op::Remove(_) if model.is_empty() => Resize::Keep,
                Op::Remove(n) => {
                    let (k, i) = model.swap_remove(n % model.len());
                    tree.remove(k, i)
                }
                Op::Replace(_, _) if model.is_empty() => Resize::Keep,
                Op::Replace(n, Item(new)) => {
                    let n = n % model.len();
                    let (k, old) = model[n];
                    model[n].1 = new;
                    tree.replace(k, old, new);
                    Resize::Keep
                }
            };
            if let (true, Resize::Rebuild(depth)) = (follow_hints, hint) {
                tree.rebuild(depth, model.iter().copied());
            }
            if tree.root() != aggregate(&model) {
                return Err(format!("root {:?} after {op:?}", tree.root()));
            }
        }
        Ok((tree, model))
    }

    quickcheck! {
        fn root_equals_recomputation(ops: Vec<Op>, depth: u8) -> TestResult {
            let depth = depth % 4;
            match run_ops(DigestTree::with_depth(depth), &ops, false) {
                Err(e) => TestResult::error(e),
                Ok((tree, model)) => {
                    let mut fresh = DigestTree::new();
                    fresh.rebuild(depth, model.iter().copied());
                    TestResult::from_bool(tree == fresh && tree.depth() == depth)
                }
            }
        }

        fn following_hints_keeps_depth_in_band(ops: Vec<Op>, bulk: Vec<(Key, Item)>) -> TestResult {
            // Start from a bigger tree so that shrinking happens too.
            let bulk: Vec<Op> = bulk.into_iter().cycle().take(200).map(|(k, i)| Op::Insert(k, i)).collect();
            let ops: Vec<Op> = bulk.into_iter().chain(ops).collect();
            match run_ops(DigestTree::new(), &ops, true) {
                Err(e) => TestResult::error(e),
                Ok((tree, model)) => {
                    let (d, n) = (u32::from(tree.depth()), model.len() as u64);
                    let in_band = n <= MAX_LEAF_AVERAGE << (4 * d)
                        && (d == 0 || n >= MIN_LEAF_AVERAGE << (4 * d));
                    let fresh = DigestTree::from_items(model.iter().copied());
                    let mut same_depth = DigestTree::new();
                    same_depth.rebuild(tree.depth(), model);
                    TestResult::from_bool(in_band && tree == same_depth && fresh.root() == tree.root())
                }
            }
        }

        fn insertion_order_does_not_matter(pairs: Vec<(Key, Item)>, seed: u64, depth: u8) -> bool {
            let depth = depth % 4;
            let items = items_of(&pairs);
            let mut shuffled = items.clone();
            // A deterministic shuffle: sort by a keyed scramble of the position.
            let mut order: Vec<usize> = (0..shuffled.len()).collect();
            order.sort_by_key(|&i| (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            shuffled = order.iter().map(|&i| shuffled[i]).collect();
            let a = built(depth, &items);
            let b = built(depth, &shuffled);
            let c = DigestTree::from_items(shuffled.iter().rev().copied());
            a == b && a.root() == c.root()
        }

        fn removing_is_never_having_inserted(keep: Vec<(Key, Item)>, drop: Vec<(Key, Item)>, depth: u8) -> bool {
            let depth = depth % 4;
            let (keep, drop) = (items_of(&keep), items_of(&drop));
            let mut tree = DigestTree::with_depth(depth);
            // Interleave the two lists, then remove the second in reverse.
            for i in 0..keep.len().max(drop.len()) {
                for list in [&drop, &keep] {
                    if let Some(&(k, h)) = list.get(i) {
                        let _ = tree.insert(k, h);
                    }
                }
            }
            for &(k, h) in drop.iter().rev() {
                let _ = tree.remove(k, h);
            }
            tree == built(depth, &keep)
        }

        fn replace_is_remove_then_insert(pairs: Vec<(Key, Item)>, new: Item, depth: u8) -> TestResult {
            let Some(&(Key(k), Item(old))) = pairs.first() else { return TestResult::discard() };
            let mut a = built(depth % 4, &items_of(&pairs));
            let mut b = a.clone();
            a.replace(k, old, new.0);
            let _ = b.remove(k, old);
            let _ = b.insert(k, new.0);
            TestResult::from_bool(a == b)
        }

        fn every_node_is_the_merge_of_its_children(pairs: Vec<(Key, Item)>, depth: u8) -> bool {
            let tree = built(depth % 4, &items_of(&pairs));
            all_nodes(&tree).into_iter().all(|(id, agg)| {
                if id.is_leaf(tree.depth()) {
                    return tree.children(id).len() == 0;
                }
                let children: Vec<_> = tree.children(id).collect();
                children.len() == FANOUT
                    && children.iter().enumerate().all(|(i, (c, _))| {
                        Some(*c) == id.child(i as u8) && c.parent() == Some(id)
                    })
                    && children.iter().fold(Aggregate::EMPTY, |acc, (_, a)| acc.merged(a)) == agg
            })
        }

        fn node_aggregates_cover_exactly_their_key_range(pairs: Vec<(Key, Item)>, depth: u8) -> bool {
            let tree = built(depth % 4, &items_of(&pairs));
            let mut items = items_of(&pairs);
            items.sort_unstable_by_key(|&(k, _)| k);
            // For every node, the items whose key hash lies in its range,
            // found by binary search on the sorted keys, independently of
            // how the tree indexes them.
            all_nodes(&tree).into_iter().all(|(id, agg)| {
                let range = id.key_range();
                let lo = items.partition_point(|&(k, _)| k.0 < *range.start());
                let hi = items.partition_point(|&(k, _)| k.0 <= *range.end());
                aggregate(&items[lo..hi]) == agg
                    && items[lo..hi].iter().all(|&(k, _)| id.contains(k) && tree.leaf_of(k).key_range().contains(&k.0))
            })
        }

        fn key_ranges_nest_and_partition(key: Key, level: u8) -> bool {
            let (key, level) = (key.0, level % (MAX_LEVEL + 1));
            let node = NodeId::containing(key, level);
            let range = node.key_range();
            let mut ok = range.contains(&key.0) && node.contains(key);
            ok &= NodeId::new(level, node.index()) == Some(node);
            ok &= u128::from(range.end() - range.start()) + 1 == 1u128 << (64 - 4 * u32::from(level));
            if let Some(parent) = node.parent() {
                ok &= parent == NodeId::containing(key, level - 1);
                ok &= parent.covers(&node) && !node.covers(&parent);
                ok &= parent.key_range().contains(range.start()) && parent.key_range().contains(range.end());
                // The parent's children tile its range, in order.
                let mut next = *parent.key_range().start();
                for i in 0..FANOUT as u8 {
                    let child = parent.child(i).unwrap();
                    ok &= *child.key_range().start() == next && child.parent() == Some(parent);
                    next = child.key_range().end().wrapping_add(1);
                }
                ok &= next == parent.key_range().end().wrapping_add(1);
            } else {
                ok &= node == NodeId::ROOT && range == (0..=u64::MAX);
            }
            ok &= NodeId::ROOT.covers(&node) && node.covers(&node);
            ok &= node.ancestor_at(0) == Some(NodeId::ROOT) && node.ancestor_at(level) == Some(node);
            ok && (level < MAX_LEVEL || (node.child(0).is_none() && range == (key.0..=key.0)))
        }

        fn one_differing_item_differs_along_one_path(pairs: Vec<(Key, Item)>, extra: (Key, Item), how: u8, depth: u8) -> TestResult {
            let depth = depth % 4;
            let items = items_of(&pairs);
            let ours = built(depth, &items);
            let mut theirs = ours.clone();
            let (Key(k), Item(h)) = extra;
            let k = match (how % 3, items.first()) {
                (0, _) | (_, None) => {
                    let _ = theirs.insert(k, h);
                    k
                }
                (1, Some(&(k0, h0))) => {
                    let _ = theirs.remove(k0, h0);
                    k0
                }
                (_, Some(&(k0, h0))) => {
                    if h0 == h {
                        return TestResult::discard();
                    }
                    theirs.replace(k0, h0, h);
                    k0
                }
            };
            let path: Vec<NodeId> = (0..=depth).map(|l| NodeId::containing(k, l)).collect();
            // Every node compared directly.
            let differing: Vec<NodeId> = all_nodes(&ours)
                .into_iter()
                .zip(all_nodes(&theirs))
                .filter(|((_, a), (_, b))| a != b)
                .map(|((id, _), _)| id)
                .collect();
            // And found by descending with diff_nodes, the peer skipping its
            // empty nodes.
            let mut found = Vec::new();
            let mut frontier = vec![NodeId::ROOT];
            while let Some(node) = frontier.pop() {
                if ours.node(node) != theirs.node(node) {
                    found.push(node);
                }
                if !node.is_leaf(depth) {
                    let listed: Vec<_> = theirs.children(node).filter(|(_, a)| !a.is_empty()).collect();
                    frontier.extend(ours.diff_nodes(node, node.level() + 1, &listed).unwrap());
                }
            }
            TestResult::from_bool(differing == path && found == path)
        }

        fn rebuild_at_another_depth_agrees(pairs: Vec<(Key, Item)>, d1: u8, d2: u8) -> bool {
            let (d1, d2) = (d1 % 4, d2 % 4);
            let items = items_of(&pairs);
            let mut a = built(d1, &items);
            let b = built(d2, &items);
            let common = d1.min(d2);
            let agree = (0..=common).all(|l| {
                a.descendants_at(NodeId::ROOT, l).eq(b.descendants_at(NodeId::ROOT, l))
            });
            a.rebuild(d2, items.iter().copied());
            agree && a.root() == aggregate(&items) && a == b
        }

        fn diff_nodes_tolerates_sparse_unsorted_and_foreign_lists(pairs: Vec<(Key, Item)>, other: Vec<(Key, Item)>, rotate: usize) -> bool {
            let ours = built(2, &items_of(&pairs));
            let theirs = built(2, &items_of(&other));
            let mut ok = true;
            for parent in [NodeId::ROOT, NodeId::new(1, 0).unwrap(), NodeId::new(1, 15).unwrap()] {
                for level in parent.level()..=2 {
                    let dense: Vec<_> = theirs.descendants_at(parent, level).collect();
                    let expected: Vec<NodeId> = ours
                        .descendants_at(parent, level)
                        .zip(&dense)
                        .filter(|((_, a), (_, b))| a != b)
                        .map(|((id, _), _)| id)
                        .collect();
                    let mut sparse: Vec<_> = dense.iter().copied().filter(|(_, a)| !a.is_empty()).collect();
                    if !sparse.is_empty() {
                        let n = rotate % sparse.len();
                        sparse.rotate_left(n);
                    }
                    // Entries from elsewhere in the tree are ignored.
                    sparse.extend(theirs.descendants_at(NodeId::ROOT, level).filter(|(id, _)| !parent.covers(id)).map(|(id, _)| (id, Aggregate::single(ItemHash(9)))));
                    sparse.push((NodeId::ROOT, Aggregate::single(ItemHash(9))));
                    ok &= ours.diff_nodes(parent, level, &dense).as_ref() == Some(&expected);
                    ok &= ours.diff_nodes(parent, level, &sparse).as_ref() == Some(&expected);
                }
            }
            ok
        }
    }

    #[test]
    fn equal_items_do_not_cancel() {
        let (k, h) = (KeyHash(0x1234_5678_9abc_def0), ItemHash(0xfeed_beef));
        for depth in 0..3 {
            let mut tree = DigestTree::with_depth(depth);
            let _ = tree.insert(k, h);
            let once = tree.clone();
            let _ = tree.insert(k, h);
            assert_ne!(tree, once);
            assert!(!tree.is_empty());
            assert_ne!(tree.root().digest(), DigestTree::new().root().digest());
            assert_ne!(tree.node(tree.leaf_of(k)), once.node(once.leaf_of(k)));
            // The same item hash under two keys in one leaf, and in two leaves.
            for other in [KeyHash(k.0 ^ 1), KeyHash(!k.0)] {
                let mut two = DigestTree::with_depth(depth);
                let _ = two.insert(k, h);
                let _ = two.insert(other, h);
                assert!(!two.is_empty());
                assert!(all_nodes(&two)
                    .iter()
                    .all(|(id, a)| a.is_empty() != (id.contains(k) || id.contains(other))));
            }
            // The one item hash whose double is 0 modulo 2^128.
            let mut half = DigestTree::with_depth(depth);
            let _ = half.insert(k, ItemHash(1 << 127));
            let _ = half.insert(k, ItemHash(1 << 127));
            assert_eq!(half.root().sum, 0);
            assert!(!half.is_empty());
        }
    }

    #[test]
    fn depth_policy_boundaries() {
        assert_eq!(DigestTree::wanted_depth(0), 0);
        assert_eq!(DigestTree::wanted_depth(128), 0);
        assert_eq!(DigestTree::wanted_depth(129), 1);
        assert_eq!(DigestTree::wanted_depth(2048), 1);
        assert_eq!(DigestTree::wanted_depth(2049), 2);
        assert_eq!(DigestTree::wanted_depth(1_000_000), 4);
        assert_eq!(DigestTree::wanted_depth(u64::MAX), MAX_DEPTH);
        for count in [1u64, 1000, 100_000, 1_000_000, 100_000_000] {
            let d = u32::from(DigestTree::wanted_depth(count));
            let per_leaf = count as f64 / 16f64.powi(d as i32);
            assert!(
                per_leaf <= 128.0 && (d == 0 || per_leaf > 8.0),
                "{count}: {per_leaf}"
            );
        }
    }

    #[test]
    fn resize_hints_grow_and_shrink_with_hysteresis() {
        let item = |i: u64| {
            (
                KeyHash(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                ItemHash(u128::from(i)),
            )
        };
        let mut tree = DigestTree::new();
        for i in 0..128 {
            let (k, h) = item(i);
            assert_eq!(tree.insert(k, h), Resize::Keep);
        }
        let (k, h) = item(128);
        assert_eq!(tree.insert(k, h), Resize::Rebuild(1));
        tree.rebuild(1, (0..=128).map(item));
        assert_eq!(
            (tree.depth(), tree.len(), tree.resize_hint()),
            (1, 129, Resize::Keep)
        );
        // Shrink only below 2 items per leaf, 32 items at depth 1.
        for i in (32..=128).rev() {
            let (k, h) = item(i);
            assert_eq!(tree.remove(k, h), Resize::Keep, "at {i}");
        }
        let (k, h) = item(31);
        assert_eq!(tree.remove(k, h), Resize::Rebuild(0));
        tree.rebuild(0, (0..31).map(item));
        assert_eq!(tree, DigestTree::from_items((0..31).map(item)));
        // A tree far too deep for its items asks to shrink at once.
        let mut deep = DigestTree::with_depth(3);
        assert_eq!(deep.insert(k, h), Resize::Rebuild(0));
        // A wrapped (negative) count never asks for the deepest tree.
        let mut wrapped = DigestTree::new();
        assert_eq!(wrapped.remove(k, h), Resize::Keep);
        assert_eq!(wrapped.insert(k, h), Resize::Keep);
        assert!(wrapped.is_empty());
    }

    #[test]
    fn memory_per_item_at_a_million() {
        assert_eq!(std::mem::size_of::<Node>(), 24);
        let depth = DigestTree::wanted_depth(1_000_000);
        let tree = DigestTree::with_depth(depth);
        let per_item = tree.heap_bytes() as f64 / 1e6;
        assert!(per_item < 2.0, "{per_item} bytes per item");
        assert!(tree.heap_bytes() >= 69_905 * 24);
    }

    #[test]
    fn queries_outside_the_tree() {
        let tree = built(2, &[(KeyHash(u64::MAX), ItemHash(5))]);
        let deep = NodeId::containing(KeyHash(u64::MAX), 3);
        assert_eq!(tree.node(deep), None);
        assert_eq!(
            tree.node(NodeId::new(2, 255).unwrap()),
            Some(Aggregate::single(ItemHash(5)))
        );
        assert_eq!(tree.children(deep).len(), 0);
        assert_eq!(tree.children(NodeId::new(2, 3).unwrap()).len(), 0);
        assert_eq!(tree.descendants_at(NodeId::new(1, 3).unwrap(), 0).len(), 0);
        assert_eq!(
            tree.descendants_at(NodeId::new(1, 3).unwrap(), 1)
                .collect::<Vec<_>>()
                .len(),
            1
        );
        assert_eq!(tree.descendants_at(NodeId::ROOT, 2).len(), 256);
        let last = tree.descendants_at(NodeId::ROOT, 2).next_back().unwrap();
        assert_eq!(
            last,
            (NodeId::new(2, 255).unwrap(), Aggregate::single(ItemHash(5)))
        );
        assert_eq!(tree.descendants_at(NodeId::ROOT, 3).len(), 0);
        assert_eq!(tree.diff_nodes(NodeId::ROOT, 3, &[]), None);
        assert_eq!(tree.diff_nodes(NodeId::new(2, 0).unwrap(), 1, &[]), None);
        assert_eq!(
            tree.diff_nodes(NodeId::ROOT, 0, &[]),
            Some(vec![NodeId::ROOT])
        );
        let leaf = NodeId::new(2, 255).unwrap();
        // A node listed twice with different aggregates counts as differing.
        let agg = Aggregate::single(ItemHash(5));
        assert_eq!(
            tree.diff_nodes(NodeId::ROOT, 2, &[(leaf, agg), (leaf, agg)]),
            Some(vec![])
        );
        for listed in [
            [(leaf, agg), (leaf, Aggregate::EMPTY)],
            [(leaf, Aggregate::EMPTY), (leaf, agg)],
        ] {
            assert_eq!(tree.diff_nodes(NodeId::ROOT, 2, &listed), Some(vec![leaf]));
        }
    }
}
