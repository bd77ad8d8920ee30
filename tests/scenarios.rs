//! The seed article's active-active scenarios, as tests: a shopping cart
//! edited in two regions during a split brain, the concurrent address update
//! that last-writer-wins loses silently, three regions merging in arbitrary
//! partial orders, and a region whose clock runs far ahead.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use accordant::codec::{decode, encode, Canonical, Limits};
use accordant::{
    ClockError, GCounter, Hlc, HlcClock, Lattice, LwwRegister, ManualClock, MvRegister, OrMap,
    OrSet, PNCounter, ReplicaId, ShoppingCart,
};
use common::SplitMix;

const EU: ReplicaId = ReplicaId::from_u128(0xE0);
const US_EAST: ReplicaId = ReplicaId::from_u128(0x05);
const AP_SOUTH: ReplicaId = ReplicaId::from_u128(0xA9);

fn item(name: &str) -> String {
    name.to_string()
}

fn items(cart: &ShoppingCart<String>) -> Vec<(String, u64)> {
    cart.items().map(|(i, q)| (i.clone(), q)).collect()
}

// ---------------------------------------------------------------------------
// "For a shopping cart, merge means union of items."
// ---------------------------------------------------------------------------

/// One user's cart, replicated to EU and US-East, then split by a partition.
struct SplitCart {
    eu: ShoppingCart<String>,
    us: ShoppingCart<String>,
    /// Deltas made before the partition (both regions have them).
    before: Vec<ShoppingCart<String>>,
    /// Deltas EU made during the partition (US-East has not seen them).
    eu_partition: Vec<ShoppingCart<String>>,
    /// Deltas US-East made during the partition.
    us_partition: Vec<ShoppingCart<String>>,
}

fn split_brain_cart() -> SplitCart {
    // The user shops in Frankfurt; every change replicates to US-East.
    let mut eu = ShoppingCart::new();
    let before = vec![
        eu.add(EU, item("book"), 1).unwrap(),
        eu.add(EU, item("mug"), 1).unwrap(),
        eu.add(EU, item("socks"), 2).unwrap(),
    ];
    let mut us = ShoppingCart::new();
    for d in &before {
        us.join(d);
    }
    assert_eq!(eu, us, "in sync before the partition");

    // The link between the regions goes down. Both keep taking writes.
    let mut eu_partition = Vec::new();
    let mut us_partition = Vec::new();
    // EU: one more book (US-East concurrently removes the book line),
    // a new pen, more socks, some tea; and the mug, which nobody else
    // touches, is removed.
    eu_partition.push(eu.add(EU, item("book"), 1).unwrap());
    eu_partition.push(eu.add(EU, item("pen"), 2).unwrap());
    eu_partition.push(eu.add(EU, item("socks"), 1).unwrap());
    eu_partition.push(eu.add(EU, item("tea"), 2).unwrap());
    eu_partition.push(eu.remove_item(&item("mug")));
    // US-East (the user's partner, on the same account): removes the book,
    // adds a lamp, more socks, and tea too.
    us_partition.push(us.remove_item(&item("book")));
    us_partition.push(us.add(US_EAST, item("lamp"), 1).unwrap());
    us_partition.push(us.add(US_EAST, item("socks"), 2).unwrap());
    us_partition.push(us.add(US_EAST, item("tea"), 3).unwrap());

    assert_eq!(eu.quantity(&item("book")), 2);
    assert_eq!(us.quantity(&item("book")), 0);
    assert_eq!(us.quantity(&item("mug")), 1, "US-East still shows the mug");
    SplitCart {
        eu,
        us,
        before,
        eu_partition,
        us_partition,
    }
}

/// What both regions must show once the partition heals.
fn assert_healed_cart(eu: &ShoppingCart<String>, us: &ShoppingCart<String>) {
    assert_eq!(eu, us, "the regions did not converge");
    assert_eq!(encode(eu), encode(us), "converged carts encode differently");
    assert_eq!(
        items(eu),
        vec![
            // Removed in US-East while EU added one: only EU's concurrent
            // addition survives, not the 1 that US-East saw and removed.
            (item("book"), 1),
            (item("lamp"), 1),
            // The mug is gone: removed, and nobody added it concurrently.
            (item("pen"), 2),
            // Quantities added on both sides add up: 2 + 1 + 2 and 2 + 3.
            (item("socks"), 5),
            (item("tea"), 5),
        ]
    );
    assert_eq!(eu.quantity(&item("mug")), 0);
    assert!(!eu.as_map().contains_key(&item("mug")));
}

#[test]
fn split_brain_cart_heals_by_exchanging_deltas() {
    let SplitCart {
        mut eu,
        mut us,
        before,
        eu_partition,
        us_partition,
    } = split_brain_cart();

    // The link comes back: each region ships the deltas it queued.
    for d in &us_partition {
        eu.join(d);
    }
    for d in eu_partition.iter().rev() {
        us.join(d); // any order will do
    }
    assert_healed_cart(&eu, &us);

    // A flaky link redelivers everything, old deltas included: the add of the
    // mug from before the partition must not bring the mug back.
    let healed = eu.clone();
    for d in before
        .iter()
        .chain(&eu_partition)
        .chain(&us_partition)
        .rev()
    {
        eu.join(d);
        us.join(d);
    }
    assert_eq!(eu, healed, "stale deltas changed the healed cart");
    assert_healed_cart(&eu, &us);
}

#[test]
fn split_brain_cart_heals_by_exchanging_full_states() {
    let SplitCart {
        mut eu,
        mut us,
        before,
        ..
    } = split_brain_cart();

    // Anti-entropy after the partition: each region sends its whole cart
    // (over the wire: encode, decode).
    let eu_bytes = encode(&eu);
    let us_bytes = encode(&us);
    let from_us: ShoppingCart<String> = decode(&us_bytes, &Limits::default()).unwrap();
    let from_eu: ShoppingCart<String> = decode(&eu_bytes, &Limits::default()).unwrap();
    eu.join(&from_us);
    us.join(&from_eu);
    assert_healed_cart(&eu, &us);

    // A backup of the cart taken before the partition is restored into EU,
    // and a stale add of the mug arrives late: still no mug.
    let mut backup = ShoppingCart::new();
    for d in &before {
        backup.join(d);
    }
    assert_eq!(backup.quantity(&item("mug")), 1);
    let healed = eu.clone();
    eu.join(&backup);
    eu.join(&before[1]);
    assert_eq!(eu, healed, "a stale full state changed the healed cart");
    assert_healed_cart(&eu, &us);
}

#[test]
fn deltas_and_full_states_heal_to_the_same_cart() {
    let s = split_brain_cart();
    let mut by_delta = s.eu.clone();
    for d in &s.us_partition {
        by_delta.join(d);
    }
    let by_state = s.eu.clone().joined(&s.us);
    assert_eq!(by_delta, by_state);
}

// ---------------------------------------------------------------------------
// "If User A updates their address in EU and User B updates the same
//  address in US at the same moment, one update disappears."
// ---------------------------------------------------------------------------

const PARIS: &str = "1 Rue de Rivoli, Paris";
const NEW_YORK: &str = "350 5th Avenue, New York";

#[test]
fn lww_address_keeps_exactly_one_of_two_concurrent_updates() {
    // US-East's wall clock reads 0, 2 ms behind, or 3 ms ahead of EU's: the
    // (HLC timestamp, replica) pair decides the winner every time, and the
    // loser disappears without a trace on both replicas.
    for us_skew_ms in [0i64, -2, 3] {
        let eu_wall = ManualClock::new(1_700_000_000_000);
        let us_wall = ManualClock::new(1_700_000_000_000u64.saturating_add_signed(us_skew_ms));
        let (mut eu_hlc, mut us_hlc) = (HlcClock::new(500), HlcClock::new(500));
        let mut eu = LwwRegister::new();
        let mut us = LwwRegister::new();

        let eu_write = eu
            .write(EU, PARIS.to_string(), &mut eu_hlc, &eu_wall)
            .unwrap();
        let us_write = us
            .write(US_EAST, NEW_YORK.to_string(), &mut us_hlc, &us_wall)
            .unwrap();

        // Replication catches up in both directions.
        eu.merge_remote(&us_write, &mut eu_hlc, &eu_wall).unwrap();
        us.merge_remote(&eu_write, &mut us_hlc, &us_wall).unwrap();

        let eu_key = eu_write.stamp().unwrap();
        let us_key = us_write.stamp().unwrap();
        let (winner, loser) = if us_key > eu_key {
            (NEW_YORK, PARIS)
        } else {
            (PARIS, NEW_YORK)
        };
        assert_eq!(eu, us, "skew {us_skew_ms}: replicas disagree");
        assert_eq!(
            eu.get().map(String::as_str),
            Some(winner),
            "skew {us_skew_ms}"
        );
        assert_ne!(eu.get().map(String::as_str), Some(loser));
        assert_eq!(eu.stamp(), Some(eu_key.max(us_key)));
        if us_skew_ms == 0 {
            // Same millisecond, same logical count: the replica id decides.
            assert_eq!(eu_key.0, us_key.0);
            assert_eq!(winner, if EU > US_EAST { PARIS } else { NEW_YORK });
        }
        if us_skew_ms == 3 {
            assert_eq!(winner, NEW_YORK, "the later timestamp wins");
        }
        if us_skew_ms == -2 {
            assert_eq!(winner, PARIS, "the later timestamp wins");
        }
    }
}

#[test]
fn mv_address_keeps_both_concurrent_updates_until_the_application_resolves_them() {
    let mut eu = MvRegister::new();
    let mut us = MvRegister::new();
    let eu_write = eu.write(EU, PARIS.to_string()).unwrap();
    let us_write = us.write(US_EAST, NEW_YORK.to_string()).unwrap();
    eu.join(&us_write);
    us.join(&eu_write);

    // Neither update is lost: both regions see the same two addresses.
    assert_eq!(eu, us);
    for region in [&eu, &us] {
        assert!(region.is_conflicted());
        let mut seen: Vec<&str> = region.values().map(String::as_str).collect();
        seen.sort_unstable();
        assert_eq!(seen, vec![PARIS, NEW_YORK]);
    }

    // The application shows both to the user in US-East, who confirms New
    // York: a write that saw both values replaces them everywhere.
    let resolution = us.write(US_EAST, NEW_YORK.to_string()).unwrap();
    eu.join(&resolution);
    for region in [&eu, &us] {
        assert!(!region.is_conflicted());
        assert_eq!(
            region.values().map(String::as_str).collect::<Vec<_>>(),
            vec![NEW_YORK]
        );
    }
    // A late redelivery of EU's original write does not reopen the conflict.
    us.join(&eu_write);
    assert_eq!(eu, us);
    assert!(!us.is_conflicted());
}

// ---------------------------------------------------------------------------
// Three regions, arbitrary partial merges, lost and redelivered deltas.
// ---------------------------------------------------------------------------

const REGIONS: [ReplicaId; 3] = [EU, US_EAST, AP_SOUTH];

/// A user-level operation, as the model sees it: it may contribute a value
/// to a slot (an element, an item, a key) and may remove what its region had
/// observed in that slot (`slot: None` = every slot).
#[derive(Clone, Copy, Debug)]
struct ModelOp {
    slot: Option<u8>,
    removes_observed: bool,
    contributes: Option<i64>,
}

impl ModelOp {
    fn add(slot: u8, value: i64) -> Self {
        ModelOp {
            slot: Some(slot),
            removes_observed: false,
            contributes: Some(value),
        }
    }
    fn replace(slot: u8, value: i64) -> Self {
        ModelOp {
            slot: Some(slot),
            removes_observed: true,
            contributes: Some(value),
        }
    }
    fn remove(slot: u8) -> Self {
        ModelOp {
            slot: Some(slot),
            removes_observed: true,
            contributes: None,
        }
    }
    fn clear() -> Self {
        ModelOp {
            slot: None,
            removes_observed: true,
            contributes: None,
        }
    }
}

/// A replicated type driven by [`ModelOp`]s, with its observable value and
/// the value the model predicts from the contributions that survived.
trait Workload: Lattice + Canonical + Debug {
    type View: PartialEq + Debug;
    fn random_op(rng: &mut SplitMix) -> ModelOp;
    fn apply(&mut self, at: ReplicaId, op: ModelOp) -> Self;
    fn view(&self) -> Self::View;
    /// `survivors`: per slot, the contributions no remove observed.
    fn expected(survivors: &BTreeMap<u8, Vec<i64>>) -> Self::View;
}

fn total(survivors: &BTreeMap<u8, Vec<i64>>) -> i128 {
    survivors.values().flatten().map(|v| i128::from(*v)).sum()
}

impl Workload for GCounter {
    type View = i128;
    fn random_op(rng: &mut SplitMix) -> ModelOp {
        ModelOp::add(0, 1 + rng.below(3) as i64)
    }
    fn apply(&mut self, at: ReplicaId, op: ModelOp) -> Self {
        let n = op.contributes.unwrap_or(0).unsigned_abs();
        self.increment(at, n).unwrap()
    }
    fn view(&self) -> i128 {
        i128::from(self.value())
    }
    fn expected(s: &BTreeMap<u8, Vec<i64>>) -> i128 {
        total(s)
    }
}

impl Workload for PNCounter {
    type View = i128;
    fn random_op(rng: &mut SplitMix) -> ModelOp {
        ModelOp::add(0, rng.below(7) as i64 - 3)
    }
    fn apply(&mut self, at: ReplicaId, op: ModelOp) -> Self {
        self.add(at, op.contributes.unwrap_or(0)).unwrap()
    }
    fn view(&self) -> i128 {
        self.value()
    }
    fn expected(s: &BTreeMap<u8, Vec<i64>>) -> i128 {
        total(s)
    }
}

impl Workload for OrSet<u8> {
    type View = BTreeSet<u8>;
    fn random_op(rng: &mut SplitMix) -> ModelOp {
        let e = rng.below(6) as u8;
        match rng.below(20) {
            0..=11 => ModelOp::replace(e, 0), // an add supersedes the dots it saw
            12..=18 => ModelOp::remove(e),
            _ => ModelOp::clear(),
        }
    }
    fn apply(&mut self, at: ReplicaId, op: ModelOp) -> Self {
        match (op.slot, op.contributes) {
            (Some(e), Some(_)) => self.add(at, e).unwrap(),
            (Some(e), None) => self.remove(&e),
            (None, _) => self.clear(),
        }
    }
    fn view(&self) -> BTreeSet<u8> {
        self.iter().copied().collect()
    }
    fn expected(s: &BTreeMap<u8, Vec<i64>>) -> BTreeSet<u8> {
        s.keys().copied().collect()
    }
}

impl Workload for ShoppingCart<u8> {
    type View = BTreeMap<u8, u64>;
    fn random_op(rng: &mut SplitMix) -> ModelOp {
        let it = rng.below(5) as u8;
        match rng.below(20) {
            0..=8 => ModelOp::add(it, 1 + rng.below(3) as i64),
            9..=11 => ModelOp::replace(it, 1 + rng.below(4) as i64), // set_quantity
            12..=18 => ModelOp::remove(it),
            _ => ModelOp::clear(),
        }
    }
    fn apply(&mut self, at: ReplicaId, op: ModelOp) -> Self {
        match (op.slot, op.contributes, op.removes_observed) {
            (Some(i), Some(q), false) => self.add(at, i, q.unsigned_abs()).unwrap(),
            (Some(i), Some(q), true) => self.set_quantity(at, i, q.unsigned_abs()).unwrap(),
            (Some(i), None, _) => self.remove_item(&i),
            (None, ..) => self.clear(),
        }
    }
    fn view(&self) -> BTreeMap<u8, u64> {
        self.items().map(|(i, q)| (*i, q)).collect()
    }
    fn expected(s: &BTreeMap<u8, Vec<i64>>) -> BTreeMap<u8, u64> {
        s.iter()
            .map(|(i, qs)| (*i, qs.iter().sum::<i64>().unsigned_abs()))
            .collect()
    }
}

impl Workload for OrMap<u8, MvRegister<u8>> {
    type View = BTreeMap<u8, Vec<u8>>;
    fn random_op(rng: &mut SplitMix) -> ModelOp {
        let k = rng.below(4) as u8;
        match rng.below(20) {
            0..=12 => ModelOp::replace(k, rng.below(8) as i64), // a write
            13..=18 => ModelOp::remove(k),
            _ => ModelOp::clear(),
        }
    }
    fn apply(&mut self, at: ReplicaId, op: ModelOp) -> Self {
        match (op.slot, op.contributes) {
            (Some(k), Some(v)) => self.try_update(k, |r| r.write(at, v as u8)).unwrap(),
            (Some(k), None) => self.remove(&k),
            (None, _) => self.clear(),
        }
    }
    fn view(&self) -> BTreeMap<u8, Vec<u8>> {
        self.iter()
            .map(|(k, reg)| {
                let mut vs: Vec<u8> = reg.values().copied().collect();
                vs.sort_unstable();
                (*k, vs)
            })
            .collect()
    }
    fn expected(s: &BTreeMap<u8, Vec<i64>>) -> BTreeMap<u8, Vec<u8>> {
        s.iter()
            .map(|(k, vs)| {
                let mut vs: Vec<u8> = vs.iter().map(|v| *v as u8).collect();
                vs.sort_unstable();
                (*k, vs)
            })
            .collect()
    }
}

/// The model: every operation ever made, what each removed, and which
/// operations each region has incorporated (through deltas or states).
#[derive(Default)]
struct Model {
    ops: Vec<ModelOp>,
    /// For each operation, the earlier contributions it removed.
    removed: Vec<BTreeSet<usize>>,
    /// Per region, the operations its state reflects.
    knows: [BTreeSet<usize>; 3],
}

impl Model {
    fn record(&mut self, region: usize, op: ModelOp) -> usize {
        let id = self.ops.len();
        let observed = if op.removes_observed {
            self.knows[region]
                .iter()
                .copied()
                .filter(|&c| {
                    self.ops[c].contributes.is_some()
                        && (op.slot.is_none() || self.ops[c].slot == op.slot)
                })
                .collect()
        } else {
            BTreeSet::new()
        };
        self.ops.push(op);
        self.removed.push(observed);
        self.knows[region].insert(id);
        id
    }

    fn survivors(&self) -> BTreeMap<u8, Vec<i64>> {
        let gone: BTreeSet<usize> = self.removed.iter().flatten().copied().collect();
        let mut out: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
        for (id, op) in self.ops.iter().enumerate() {
            if let (Some(slot), Some(v)) = (op.slot, op.contributes) {
                if !gone.contains(&id) {
                    out.entry(slot).or_default().push(v);
                }
            }
        }
        out
    }
}

/// EU, US-East and AP-South take writes and replicate through a lossy,
/// reordering, duplicating link, with occasional full-state syncs between
/// random pairs; a final anti-entropy round must make them identical, byte
/// for byte, and equal to what the model says: nothing added or incremented
/// is lost, nothing removed comes back.
fn three_regions_converge<T: Workload>(seed: u64, steps: usize) {
    let mut rng = SplitMix::new(seed);
    let mut regions: Vec<T> = vec![T::default(); 3];
    let mut model = Model::default();
    // Per destination: (operation id, delta) in flight.
    let mut inbox: [Vec<(usize, T)>; 3] = Default::default();
    let mut lost = 0;
    // Every delta ever made, for an observer that only ever receives deltas.
    let mut all_deltas: Vec<T> = Vec::new();
    for _ in 0..steps {
        match rng.below(20) {
            0..=8 => {
                let r = rng.below(3);
                let op = T::random_op(&mut rng);
                let delta = regions[r].apply(REGIONS[r], op);
                let id = model.record(r, op);
                all_deltas.push(delta.clone());
                for (q, queue) in inbox.iter_mut().enumerate() {
                    if q == r {
                        continue;
                    }
                    if rng.chance(1, 4) {
                        lost += 1; // dropped: only a full-state sync repairs it
                    } else {
                        queue.push((id, delta.clone()));
                    }
                }
            }
            9..=15 => {
                let q = rng.below(3);
                if !inbox[q].is_empty() {
                    let k = rng.below(inbox[q].len()); // out of order
                    let (id, delta) = if rng.chance(1, 5) {
                        inbox[q][k].clone() // delivered, and again later
                    } else {
                        inbox[q].swap_remove(k)
                    };
                    regions[q].join(&delta);
                    model.knows[q].insert(id);
                }
            }
            _ => {
                let (i, j) = (rng.below(3), rng.below(3));
                let state = regions[j].clone();
                regions[i].join(&state);
                let known = model.knows[j].clone();
                model.knows[i].extend(known);
            }
        }
    }
    assert!(
        lost > 0 || steps < 50,
        "seed {seed}: the link never lost a delta"
    );

    // The partition heals: anti-entropy exchanges full states around the ring.
    for k in 0..6 {
        let state = regions[k % 3].clone();
        regions[(k + 1) % 3].join(&state);
    }
    let healed = regions[0].clone();
    for (n, r) in regions.iter().enumerate() {
        assert_eq!(*r, healed, "seed {seed}: region {n} diverged");
        assert_eq!(encode(r), encode(&healed), "seed {seed}: bytes differ");
    }
    // A read replica that never exchanged a full state, fed every delta once
    // in a random order, holds the same state.
    rng.shuffle(&mut all_deltas);
    let observer = all_deltas.iter().fold(T::default(), |acc, d| acc.joined(d));
    assert_eq!(
        observer, healed,
        "seed {seed}: deltas alone did not converge"
    );
    // Whatever was still in flight arrives late: nothing changes.
    for (q, queue) in inbox.iter().enumerate() {
        for (_, delta) in queue {
            regions[q].join(delta);
        }
        assert_eq!(
            regions[q], healed,
            "seed {seed}: a stale delta changed region {q}"
        );
    }
    assert_eq!(
        healed.view(),
        T::expected(&model.survivors()),
        "seed {seed}: the converged value is not what the operations imply"
    );
}

const SEEDS: u64 = 40;
const STEPS: usize = 150;

#[test]
fn three_regions_converge_grow_only_counter() {
    for seed in 0..SEEDS {
        three_regions_converge::<GCounter>(seed, STEPS);
    }
}

#[test]
fn three_regions_converge_pn_counter() {
    for seed in 0..SEEDS {
        three_regions_converge::<PNCounter>(seed, STEPS);
    }
}

#[test]
fn three_regions_converge_or_set() {
    for seed in 0..SEEDS {
        three_regions_converge::<OrSet<u8>>(seed, STEPS);
    }
}

#[test]
fn three_regions_converge_shopping_cart() {
    for seed in 0..SEEDS {
        three_regions_converge::<ShoppingCart<u8>>(seed, STEPS);
    }
}

#[test]
fn three_regions_converge_map_of_mv_registers() {
    for seed in 0..SEEDS {
        three_regions_converge::<OrMap<u8, MvRegister<u8>>>(seed, STEPS);
    }
}

// ---------------------------------------------------------------------------
// "Requires synchronized clocks across regions."
// ---------------------------------------------------------------------------

#[test]
fn a_region_with_a_clock_an_hour_ahead_cannot_win_lww_writes() {
    const MAX_OFFSET_MS: u64 = 500;
    const HOUR_MS: u64 = 3_600_000;
    let now = 1_700_000_000_000;
    let eu_wall = ManualClock::new(now);
    let ap_wall = ManualClock::new(now + HOUR_MS); // misconfigured NTP
    let mut eu_hlc = HlcClock::new(MAX_OFFSET_MS);
    let mut ap_hlc = HlcClock::new(MAX_OFFSET_MS);

    let mut eu = LwwRegister::new();
    let _ = eu
        .write(EU, PARIS.to_string(), &mut eu_hlc, &eu_wall)
        .unwrap();
    let mut ap = LwwRegister::new();
    let ap_write = ap
        .write(AP_SOUTH, NEW_YORK.to_string(), &mut ap_hlc, &ap_wall)
        .unwrap();

    // EU refuses AP-South's write with a typed error and changes nothing:
    // neither the register nor its clock.
    let (before, clock_before) = (eu.clone(), eu_hlc.last());
    let err = eu
        .merge_remote(&ap_write, &mut eu_hlc, &eu_wall)
        .unwrap_err();
    assert_eq!(
        err,
        ClockError::TooFarAhead {
            ahead_ms: HOUR_MS,
            max_offset_ms: MAX_OFFSET_MS
        }
    );
    assert_eq!(eu, before);
    assert_eq!(eu_hlc.last(), clock_before);
    assert_eq!(eu.get().map(String::as_str), Some(PARIS));

    // Later EU writes are stamped by EU's own clock, not dragged an hour
    // ahead, and the refused write stays refused.
    eu_wall.advance(10);
    let later = eu
        .write(
            EU,
            "2 Rue de Rivoli, Paris".to_string(),
            &mut eu_hlc,
            &eu_wall,
        )
        .unwrap();
    assert_eq!(later.stamp().unwrap().0, Hlc::new(now + 10, 0));
    assert!(eu.merge_remote(&ap_write, &mut eu_hlc, &eu_wall).is_err());
}

#[test]
fn a_clock_ahead_within_the_max_offset_wins_only_until_someone_writes_after_seeing_it() {
    const MAX_OFFSET_MS: u64 = 500;
    let now = 1_700_000_000_000;
    let eu_wall = ManualClock::new(now);
    let ap_wall = ManualClock::new(now + 400); // ahead, but within the bound
    let mut eu_hlc = HlcClock::new(MAX_OFFSET_MS);
    let mut ap_hlc = HlcClock::new(MAX_OFFSET_MS);

    let mut eu = LwwRegister::new();
    let mut ap = LwwRegister::new();
    let ap_write = ap
        .write(AP_SOUTH, NEW_YORK.to_string(), &mut ap_hlc, &ap_wall)
        .unwrap();
    eu.merge_remote(&ap_write, &mut eu_hlc, &eu_wall).unwrap();
    assert_eq!(eu.get().map(String::as_str), Some(NEW_YORK));

    // 100 ms later by EU's clock (still 300 ms "before" AP-South's write), a
    // user in EU changes the address. Having seen AP-South's stamp, EU's
    // hybrid clock issues a larger one, so the causally later write wins.
    eu_wall.advance(100);
    let eu_write = eu
        .write(EU, PARIS.to_string(), &mut eu_hlc, &eu_wall)
        .unwrap();
    assert!(eu_write.stamp() > ap_write.stamp());
    ap.merge_remote(&eu_write, &mut ap_hlc, &ap_wall).unwrap();
    assert_eq!(ap, eu);
    assert_eq!(ap.get().map(String::as_str), Some(PARIS));
}
