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
            self.coded
                .replace(ItemId::new(key, old), ItemId::new(key, new));
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
mod tests;
