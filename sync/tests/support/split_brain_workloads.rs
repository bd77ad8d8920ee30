//! The split-brain scenario's regions and workloads: random writes per
//! value type, each recorded in a model that predicts the converged value
//! independently of the implementation (see `split_brain.rs`).

use std::collections::{BTreeMap, BTreeSet};

use accordant::{
    Hlc, HlcClock, LwwRegister, ManualClock, MvRegister, OrSet, PNCounter, ReplicaId, ShoppingCart,
};
use accordant_sync::store::{Store, StoreValue};
use rand::RngExt;
use rand_chacha::ChaCha8Rng;

pub(crate) const EU: usize = 0;
pub(crate) const US: usize = 1;
pub(crate) const AP: usize = 2;

/// Writes before the partition, one every 5 ms.
pub(crate) const LOAD_WRITES: usize = 300;
/// Writes during the partition, one every 10 ms (4 s of split brain).
pub(crate) const PARTITION_WRITES: usize = 400;
/// Keys per store (even: half are EU's, half US-East's on the majority side).
pub(crate) const KEYS: usize = 80;

pub(crate) fn replica(region: usize) -> ReplicaId {
    ReplicaId::from_u128(region as u128 + 1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Epoch {
    Load,
    Partition,
}

/// A key index for a write at `region`: during the partition the majority
/// side writes each key from one designated region only.
pub(crate) fn key_index(rng: &mut ChaCha8Rng, region: usize, epoch: Epoch) -> usize {
    if epoch == Epoch::Partition && region != AP {
        2 * rng.random_range(0..KEYS / 2) + region
    } else {
        rng.random_range(0..KEYS)
    }
}

/// One value type: random writes recorded in a model, and a check of a
/// store against the model.
pub(crate) trait Workload {
    type V: StoreValue;
    const NAME: &'static str;
    fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: usize,
        epoch: Epoch,
        now_ms: u64,
        store: &mut Store<String, Self::V>,
    );
    /// Sees the converged store right before the partition.
    fn baseline(&mut self, _store: &Store<String, Self::V>) {}
    fn check(&self, store: &Store<String, Self::V>) -> Result<(), String>;
}

// ---------------------------------------------------------------- counters

#[derive(Default)]
pub(crate) struct Counters {
    sums: BTreeMap<String, i128>,
}

impl Workload for Counters {
    type V = PNCounter;
    const NAME: &'static str = "PNCounter";

    fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: usize,
        _epoch: Epoch,
        _now_ms: u64,
        store: &mut Store<String, PNCounter>,
    ) {
        let key = format!("views/{:03}", rng.random_range(0..KEYS));
        let amount = match rng.random_range(-3i64..=6) {
            0 => 1,
            a => a,
        };
        let _ = store
            .update(key.clone(), |c| c.add(replica(region), amount))
            .expect("no overflow");
        *self.sums.entry(key).or_default() += i128::from(amount);
    }

    fn check(&self, store: &Store<String, PNCounter>) -> Result<(), String> {
        if store.len() != self.sums.len() {
            return Err(format!(
                "{} keys, expected {}",
                store.len(),
                self.sums.len()
            ));
        }
        for (k, sum) in &self.sums {
            let got = store.get(k).map(|c| c.value());
            if got != Some(*sum) {
                return Err(format!("{k}: {got:?}, expected the sum {sum}"));
            }
        }
        Ok(())
    }
}

// ------------------------------------------------- observed-remove model

#[derive(Debug)]
pub(crate) struct Add {
    origin: usize,
    epoch: Epoch,
    amount: u64,
    removed: bool,
}

/// Adds and observed removes of `(key, element)`, for sets and carts.
#[derive(Default)]
pub(crate) struct OrModel {
    adds: BTreeMap<(String, u16), Vec<Add>>,
    removers: BTreeMap<(String, u16), BTreeSet<usize>>,
}

impl OrModel {
    fn add(&mut self, key: &str, elem: u16, origin: usize, epoch: Epoch, amount: u64) {
        self.adds
            .entry((key.to_string(), elem))
            .or_default()
            .push(Add {
                origin,
                epoch,
                amount,
                removed: false,
            });
    }

    /// A remove at `region` during the partition observed every add made
    /// before it and its own region's adds since (see the module docs).
    fn remove(&mut self, key: &str, elem: u16, region: usize) {
        self.removers
            .entry((key.to_string(), elem))
            .or_default()
            .insert(region);
        if let Some(adds) = self.adds.get_mut(&(key.to_string(), elem)) {
            for a in adds.iter_mut() {
                if a.epoch == Epoch::Load || a.origin == region {
                    a.removed = true;
                }
            }
        }
    }

    /// The surviving amount (a set element survives if it is positive).
    fn live(&self, key: &str, elem: u16) -> u64 {
        self.adds.get(&(key.to_string(), elem)).map_or(0, |v| {
            v.iter().filter(|a| !a.removed).map(|a| a.amount).sum()
        })
    }

    fn keys(&self) -> BTreeSet<&str> {
        self.adds.keys().map(|(k, _)| k.as_str()).collect()
    }

    /// Elements removed on one side of the partition that survive by an
    /// add made on the other side (the add-wins cases).
    pub(crate) fn add_wins_cases(&self) -> usize {
        let side = |r: usize| r == AP;
        self.adds
            .iter()
            .filter(|(k, v)| {
                let removers = self.removers.get(k);
                v.iter().any(|a| {
                    !a.removed
                        && a.epoch == Epoch::Partition
                        && removers.is_some_and(|rs| rs.iter().any(|&r| side(r) != side(a.origin)))
                })
            })
            .count()
    }
}

// -------------------------------------------------------------------- sets

#[derive(Default)]
pub(crate) struct Sets {
    pub(crate) model: OrModel,
}

impl Workload for Sets {
    type V = OrSet<u16>;
    const NAME: &'static str = "OrSet";

    fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: usize,
        epoch: Epoch,
        _now_ms: u64,
        store: &mut Store<String, OrSet<u16>>,
    ) {
        let key = format!("tags/{:03}", key_index(rng, region, epoch));
        let elem = rng.random_range(0..8u16);
        if epoch == Epoch::Partition && rng.random_bool(0.4) {
            let _ = store.update(key.clone(), |s| Ok::<_, ()>(s.remove(&elem)));
            self.model.remove(&key, elem, region);
        } else {
            let _ = store
                .update(key.clone(), |s| s.add(replica(region), elem))
                .expect("dots left");
            self.model.add(&key, elem, region, epoch, 1);
        }
    }

    fn check(&self, store: &Store<String, OrSet<u16>>) -> Result<(), String> {
        let keys = self.model.keys();
        for (k, set) in store.iter() {
            if !keys.contains(k.as_str()) {
                return Err(format!("unexpected key {k}"));
            }
            for &e in set.iter() {
                if self.model.live(&k, e) == 0 {
                    return Err(format!("{k}: {e} was removed but is present"));
                }
            }
        }
        for (k, e) in self.model.adds.keys() {
            let present = store.get(k).is_some_and(|s| s.contains(e));
            if self.model.live(k, *e) > 0 && !present {
                return Err(format!("{k}: the add of {e} was lost"));
            }
        }
        Ok(())
    }
}

// ------------------------------------------------------------------- carts

pub(crate) const ALICE: &str = "cart/alice";
pub(crate) const BOOK: u16 = 999;

pub(crate) fn item(e: u16) -> String {
    if e == BOOK {
        "book".to_string()
    } else {
        format!("item-{e}")
    }
}

pub(crate) struct Carts {
    pub(crate) model: OrModel,
    /// Scripted writes: (epoch, region, quantity to add; 0 removes the book).
    script: Vec<(Epoch, usize, u64)>,
}

impl Default for Carts {
    fn default() -> Self {
        Carts {
            model: OrModel::default(),
            script: vec![
                (Epoch::Load, EU, 1),
                (Epoch::Partition, AP, 0),
                (Epoch::Partition, US, 2),
            ],
        }
    }
}

impl Workload for Carts {
    type V = ShoppingCart<String>;
    const NAME: &'static str = "ShoppingCart";

    fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: usize,
        epoch: Epoch,
        _now_ms: u64,
        store: &mut Store<String, ShoppingCart<String>>,
    ) {
        if let Some(i) = self
            .script
            .iter()
            .position(|&(e, r, _)| e == epoch && r == region)
        {
            let (_, _, qty) = self.script.remove(i);
            if qty == 0 {
                let _ = store.update(ALICE.to_string(), |c| {
                    Ok::<_, ()>(c.remove_item(&item(BOOK)))
                });
                self.model.remove(ALICE, BOOK, region);
            } else {
                let _ = store
                    .update(ALICE.to_string(), |c| {
                        c.add(replica(region), item(BOOK), qty)
                    })
                    .expect("no overflow");
                self.model.add(ALICE, BOOK, region, epoch, qty);
            }
            return;
        }
        let key = format!("cart/{:03}", key_index(rng, region, epoch));
        let e = rng.random_range(0..6u16);
        if epoch == Epoch::Partition && rng.random_bool(0.3) {
            let _ = store.update(key.clone(), |c| Ok::<_, ()>(c.remove_item(&item(e))));
            self.model.remove(&key, e, region);
        } else {
            let qty = rng.random_range(1..=3);
            let _ = store
                .update(key.clone(), |c| c.add(replica(region), item(e), qty))
                .expect("no overflow");
            self.model.add(&key, e, region, epoch, qty);
        }
    }

    fn check(&self, store: &Store<String, ShoppingCart<String>>) -> Result<(), String> {
        if !self.script.is_empty() {
            return Err(format!("script not run: {:?}", self.script));
        }
        let alice = store
            .get(&ALICE.to_string())
            .map(|c| c.quantity(&item(BOOK)));
        if alice != Some(2) {
            return Err(format!(
                "Alice's book: {alice:?}, expected only the concurrent addition (2)"
            ));
        }
        let keys = self.model.keys();
        for (k, cart) in store.iter() {
            if !keys.contains(k.as_str()) {
                return Err(format!("unexpected key {k}"));
            }
            for (name, qty) in cart.items() {
                let known = self
                    .model
                    .adds
                    .keys()
                    .any(|(mk, e)| *mk == k && item(*e) == *name);
                if !known {
                    return Err(format!("{k}: unexpected item {name} × {qty}"));
                }
            }
        }
        for (k, e) in self.model.adds.keys() {
            let want = self.model.live(k, *e);
            let got = store.get(k).map_or(0, |c| c.quantity(&item(*e)));
            if got != want {
                return Err(format!("{k}: {} × {got}, expected {want}", item(*e)));
            }
        }
        Ok(())
    }
}

// --------------------------------------------------------------- registers

/// Clock skew per region, in ms: LWW follows the (hybrid) clocks.
pub(crate) const SKEW_MS: [u64; 3] = [1_000_020, 1_000_000, 999_970];

pub(crate) struct Lww {
    hlc: Vec<HlcClock>,
    winner: BTreeMap<String, (Hlc, ReplicaId, u64)>,
    next: u64,
    writes: u64,
}

impl Default for Lww {
    fn default() -> Self {
        Lww {
            hlc: (0..3).map(|_| HlcClock::new(5_000)).collect(),
            winner: BTreeMap::new(),
            next: 0,
            writes: 0,
        }
    }
}

impl Workload for Lww {
    type V = LwwRegister<u64>;
    const NAME: &'static str = "LwwRegister";

    fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: usize,
        _epoch: Epoch,
        now_ms: u64,
        store: &mut Store<String, LwwRegister<u64>>,
    ) {
        let key = format!("address/{:03}", rng.random_range(0..KEYS));
        self.next += 1;
        let value = self.next;
        let wall = ManualClock::new(now_ms + SKEW_MS[region]);
        let hlc = &mut self.hlc[region];
        let delta = store
            .update(key.clone(), |r| r.write(replica(region), value, hlc, &wall))
            .expect("clock within bounds");
        let (stamp, rep) = delta.stamp().expect("a write has a stamp");
        let w = (stamp, rep, value);
        let best = self.winner.entry(key).or_insert(w);
        *best = (*best).max(w);
        self.writes += 1;
    }

    fn check(&self, store: &Store<String, LwwRegister<u64>>) -> Result<(), String> {
        if store.len() != self.winner.len() {
            return Err(format!(
                "{} keys, expected {}",
                store.len(),
                self.winner.len()
            ));
        }
        for (k, &(stamp, rep, value)) in &self.winner {
            let reg = store.get(k).ok_or(format!("{k} missing"))?;
            if reg.get() != Some(&value) || reg.stamp() != Some((stamp, rep)) {
                return Err(format!("{k}: {reg:?}, expected {value} at {stamp:?}"));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Mv {
    baseline: BTreeMap<String, BTreeSet<u64>>,
    /// Last write during the partition: [majority side, AP-South].
    last: BTreeMap<String, [Option<u64>; 2]>,
    next: u64,
}

impl Workload for Mv {
    type V = MvRegister<u64>;
    const NAME: &'static str = "MvRegister";

    fn write(
        &mut self,
        rng: &mut ChaCha8Rng,
        region: usize,
        epoch: Epoch,
        _now_ms: u64,
        store: &mut Store<String, MvRegister<u64>>,
    ) {
        let key = format!("address/{:03}", key_index(rng, region, epoch));
        self.next += 1;
        let value = self.next;
        let _ = store
            .update(key.clone(), |r| r.write(replica(region), value))
            .expect("dots left");
        if epoch == Epoch::Partition {
            self.last.entry(key).or_default()[usize::from(region == AP)] = Some(value);
        }
    }

    fn baseline(&mut self, store: &Store<String, MvRegister<u64>>) {
        self.baseline = store
            .iter()
            .map(|(k, r)| (k.clone(), r.values().copied().collect()))
            .collect();
    }

    fn check(&self, store: &Store<String, MvRegister<u64>>) -> Result<(), String> {
        let keys: BTreeSet<&String> = self.baseline.keys().chain(self.last.keys()).collect();
        if store.len() != keys.len() {
            return Err(format!("{} keys, expected {}", store.len(), keys.len()));
        }
        for k in keys {
            let want: BTreeSet<u64> = match self.last.get(k) {
                Some(sides) => sides.iter().flatten().copied().collect(),
                None => self.baseline[k].clone(),
            };
            let got: BTreeSet<u64> = store
                .get(k)
                .map(|r| r.values().copied().collect())
                .unwrap_or_default();
            if got != want {
                return Err(format!("{k}: {got:?}, expected {want:?}"));
            }
        }
        Ok(())
    }
}
