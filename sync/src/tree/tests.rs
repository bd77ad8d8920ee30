//! Tests of the digest tree: incremental maintenance against a rebuild,
//! node-id arithmetic, and the coded-symbol hooks.

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
