//! Tests of the set store: its operations against a model, the join,
//! and the canonical wire form.

use std::collections::BTreeSet;

use super::*;
use crate::causal_state::{Causal, CausalCrdt};
use crate::codec::Canonical;
use crate::lattice::Lattice;
use crate::set::OrSet;

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

fn d(rep: u128, n: u64) -> Dot {
    Dot::new(r(rep), n).unwrap()
}

#[test]
fn replace_then_remove_keeps_counts_and_index_in_step() {
    let mut s = SetStore::default();
    for i in 0..100u64 {
        s.replace(i, d(1, i + 1), |_| panic!("fresh element"));
    }
    assert_eq!((s.len(), s.live), (100, 100));
    assert!(s.indexed());
    let mut old = Vec::new();
    s.replace(7, d(2, 1), |x| old.push(x));
    assert_eq!(old, vec![d(1, 8)]);
    assert_eq!(s.get(&7).unwrap().collect::<Vec<_>>(), vec![d(2, 1)]);
    for i in 0..90u64 {
        assert!(s.remove(&i, |_| {}));
    }
    assert!(!s.remove(&5, |_| {}));
    assert_eq!(s.len(), 10);
    // Compaction ran: the arena follows the live entries.
    assert!(s.entries.len() < 40, "{} entries", s.entries.len());
    for i in 90..100u64 {
        assert!(s.contains(&i));
    }
    assert!(!s.contains(&3));
}

#[test]
fn concurrent_dots_of_one_element_chain_and_unchain() {
    let mut s = SetStore::default();
    let ctx = CausalContext::from_dots([d(1, 1), d(2, 1), d(3, 1)]);
    for i in 0..20u64 {
        s.replace(100 + i, d(4, i + 1), |_| {});
    }
    let mut other = SetStore::single(5u64, d(1, 1));
    let two = other.replica_slot(r(2));
    other.append(5, two, 1, hash_of(&5u64), Some(0));
    s.join_store(&CausalContext::new(), &other, &ctx);
    let mut dots: Vec<Dot> = s.get(&5).unwrap().collect();
    dots.sort();
    assert_eq!(dots, vec![d(1, 1), d(2, 1)]);
    assert_eq!(s.len(), 21);
    // Remove one of the two dots through a join: the other survives.
    let gone = CausalContext::from_dots([d(2, 1)]);
    let mut big_ctx = ctx.clone();
    big_ctx.join(&CausalContext::from_dots((1..=20).map(|i| d(4, i))));
    s.join_store(&big_ctx, &SetStore::default(), &gone);
    assert_eq!(s.get(&5).unwrap().collect::<Vec<_>>(), vec![d(1, 1)]);
    assert_eq!(s.len(), 21);
}

/// The join rule on `(element, dot)` pairs: mine unless the other side
/// saw the dot and does not hold the pair; theirs if I never saw the dot.
fn rule(
    a: &BTreeSet<(u16, Dot)>,
    ca: &CausalContext,
    b: &BTreeSet<(u16, Dot)>,
    cb: &CausalContext,
) -> BTreeSet<(u16, Dot)> {
    let mine = a.iter().filter(|p| !cb.contains(&p.1) || b.contains(p));
    let theirs = b.iter().filter(|p| !ca.contains(&p.1));
    mine.chain(theirs).copied().collect()
}

fn pairs(s: &OrSet<u16>) -> BTreeSet<(u16, Dot)> {
    let store = s.as_causal().store();
    let out: BTreeSet<(u16, Dot)> = store
        .iter()
        .flat_map(|(e, dots)| dots.map(move |d| (*e, d)))
        .collect();
    assert_eq!(out.len(), store.dot_count());
    assert_eq!(
        store.len(),
        out.iter().map(|p| p.0).collect::<BTreeSet<_>>().len()
    );
    out
}

/// Joins checked against the rule, on states large enough for the
/// indexed store and the small-delta path, with deltas of adds, re-adds
/// and removes made at two other replicas (some of them concurrent).
fn joins_follow_the_rule(seed: u64) -> bool {
    let mut x = seed | 1;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut a: OrSet<u16> = OrSet::new();
    for e in 0..300u16 {
        let _ = a.add(r(1), e).unwrap();
    }
    let (mut b, mut c) = (a.clone(), a.clone());
    let mut deltas = Vec::new();
    for step in 0..200 {
        let (s, rep) = if step % 3 == 0 {
            (&mut c, r(3))
        } else {
            (&mut b, r(2))
        };
        let e = next(400) as u16;
        let d = if next(3) == 0 {
            s.remove(&e)
        } else {
            s.add(rep, e).unwrap()
        };
        deltas.push(d);
    }
    // Every delta joined one by one: the small-delta path.
    let mut one_by_one = a.clone();
    for d in &deltas {
        let expected = rule(
            &pairs(&one_by_one),
            one_by_one.context(),
            &pairs(d),
            d.context(),
        );
        one_by_one.join(d);
        if pairs(&one_by_one) != expected {
            return false;
        }
    }
    // Whole states: the merge walk.
    let expected = rule(&pairs(&a), a.context(), &pairs(&b), b.context());
    let ab = a.clone().joined(&b);
    let expected_bc = rule(&pairs(&b), b.context(), &pairs(&c), c.context());
    let bc = b.clone().joined(&c);
    pairs(&ab) == expected
        && pairs(&bc) == expected_bc
        && one_by_one == a.joined(&b).joined(&c)
        && bc == c.clone().joined(&b)
}

#[test]
fn joins_follow_the_rule_on_large_states() {
    for seed in 0..16 {
        assert!(joins_follow_the_rule(seed), "seed {seed}");
    }
}

/// A hostile state may give one element many dots. Decoding it, joining
/// it, removing part of the chain and comparing it all stay linear in
/// the dots (a quadratic step would make this test crawl).
#[test]
fn one_element_with_many_dots() {
    use crate::codec::{decode, encode, Limits};
    use crate::set::OrSet;
    const N: u64 = 50_000;
    let ctx = CausalContext::from_dots((1..=N).map(|n| d(1, n)));
    let wire = (
        ctx.to_wire(),
        (
            SeqVec(vec![(0u32, SeqVec(vec![(0u64, N - 1)]))]),
            SeqVec(vec![7u32; N as usize]),
        ),
    );
    let bytes = postcard::to_allocvec(&wire).unwrap();
    let s: OrSet<u32> = decode(&bytes, &Limits::default()).unwrap();
    assert_eq!(
        (s.len(), s.as_causal().store().dot_count()),
        (1, N as usize)
    );
    assert_eq!(encode(&s), bytes);
    // Another replica removes the even dots it has seen.
    let evens = CausalContext::from_dots((1..=N / 2).map(|n| d(1, 2 * n)));
    let remover = OrSet::from_causal(Causal::from_parts(SetStore::default(), evens).unwrap());
    let joined = s.clone().joined(&remover);
    let mut left: Vec<u64> = joined
        .as_causal()
        .store()
        .get(&7)
        .unwrap()
        .map(|d| d.counter())
        .collect();
    left.sort_unstable();
    assert_eq!(left, (0..N / 2).map(|k| 2 * k + 1).collect::<Vec<_>>());
    assert_eq!(joined, remover.joined(&s));
    assert_ne!(joined, s);
}
