//! Scenarios for the bounded counter, the flags and the remove-wins set: the
//! seed article's inventory through a partition, every new type synchronised
//! between two `Store`s by the anti-entropy session, and exact encoded sizes
//! of typical states.

use accordant::codec::{encode, encoded_len};
use accordant::{
    BoundedCounter, BoundedError, DwFlag, EwFlag, Lattice, OrMap, PNCounter, ReplicaId,
    RightsPolicy, RwSet,
};
use accordant_sync::session::Session;
use accordant_sync::store::{Store, StoreKey, StoreValue};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

// ---------------------------------------------------------------------------
// Inventory through a partition.

/// 30 units in stock, three regions. Before the partition the automatic
/// policy spreads the rights; during it each region sells until its rights
/// run out. A `PNCounter` in the same run oversells (every region sees stock
/// and sells it); the bounded counter sells at most the stock, and after the
/// heal the policy moves what is left to the regions that ran dry.
#[test]
fn inventory_never_oversells_through_a_partition() {
    let regions = [r(1), r(2), r(3)];
    let policy = RightsPolicy::new(4);
    for seed in 0..50u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut stock = BoundedCounter::new();
        let _ = stock.increment(regions[0], 30).unwrap();
        let mut pn = PNCounter::new();
        let _ = pn.increment(regions[0], 30).unwrap();
        // Connected: every region applies the policy on the shared state.
        while regions.iter().any(|me| {
            stock
                .apply_rebalance(*me, regions, &policy)
                .unwrap()
                .is_some()
        }) {}
        assert!(regions
            .iter()
            .all(|g| stock.rights(*g) >= policy.low_watermark));

        // Partition: each region alone, customers keep buying.
        let mut views = [stock.clone(), stock.clone(), stock.clone()];
        let mut pn_views = [pn.clone(), pn.clone(), pn.clone()];
        let (mut sold, mut refused, mut pn_sold) = (0u64, 0u64, 0u64);
        for _ in 0..200 {
            let i = rng.random_range(0..3);
            let qty = rng.random_range(1..=3);
            match views[i].decrement(regions[i], qty) {
                Ok(_) => sold += qty,
                Err(BoundedError::InsufficientRights { available, .. }) => {
                    assert!(available < qty);
                    refused += 1;
                }
                Err(e) => panic!("unexpected {e}"),
            }
            // The PN counter's only guard is its local view of the stock.
            if pn_views[i].value() >= i128::from(qty) {
                let _ = pn_views[i].decrement(regions[i], qty).unwrap();
                pn_sold += qty;
            }
        }
        assert!(refused > 0, "the partition lasted until stock ran out");
        assert!(sold <= 30, "seed {seed}: sold {sold} of 30");
        assert!(
            pn_sold > 30,
            "seed {seed}: the PN counter oversold only {pn_sold}"
        );

        // Heal.
        let mut healed = views[0].clone();
        healed.join(&views[1]);
        healed.join(&views[2]);
        let mut pn_healed = pn_views[0].clone();
        pn_healed.join(&pn_views[1]);
        pn_healed.join(&pn_views[2]);
        assert_eq!(healed.value(), 30 - sold);
        assert!(
            pn_healed.value() < 0,
            "the PN counter shows a negative stock"
        );
        let rights: u64 = regions.iter().map(|g| healed.rights(*g)).sum();
        assert_eq!(
            rights,
            healed.value(),
            "every unit left is a right somewhere"
        );
        // Leftover rights flow to regions that ran dry.
        while regions.iter().any(|me| {
            healed
                .apply_rebalance(*me, regions, &policy)
                .unwrap()
                .is_some()
        }) {}
        let min = regions.iter().map(|g| healed.rights(*g)).min().unwrap();
        assert!(min >= policy.low_watermark.min(healed.value() / 3));
    }
}

// ---------------------------------------------------------------------------
// Every new type in a Store, synchronised by the session.

fn sync<K: StoreKey, V: StoreValue>(a: &mut Store<K, V>, b: &mut Store<K, V>) {
    let mut sa = Session::initiate(a, Default::default());
    let mut sb = Session::respond(Default::default());
    for _ in 0..64 {
        if sa.is_done() && sb.is_done() {
            break;
        }
        while let Some(m) = sa.poll_transmit() {
            sb.handle(b, &m).expect("responder accepts");
        }
        while let Some(m) = sb.poll_transmit() {
            sa.handle(a, &m).expect("initiator accepts");
        }
    }
    assert!(sa.is_done() && sb.is_done(), "session did not finish");
    assert_eq!(a.root_digest(), b.root_digest());
}

/// Two stores diverge on a few of 300 keys through `update`, then sync.
fn diverge_and_sync<V: StoreValue>(
    write: impl Fn(&mut V, ReplicaId, u32) -> Result<V, ()>,
) -> (Store<u32, V>, Store<u32, V>) {
    let mut a: Store<u32, V> = Store::new();
    for k in 0..300u32 {
        let _ = a.update(k, |v| write(v, r(1), k)).unwrap();
    }
    let mut b = a.clone();
    for k in [3u32, 150, 299] {
        let _ = a.update(k, |v| write(v, r(1), k + 1)).unwrap();
        let _ = b.update(k, |v| write(v, r(2), k + 2)).unwrap();
    }
    let _ = b.update(1000, |v| write(v, r(2), 7)).unwrap();
    let mut expected = a.clone();
    for (k, v) in b.iter() {
        expected.join(*k, v);
    }
    sync(&mut a, &mut b);
    assert!(a == expected && b == expected, "both stores hold the join");
    (a, b)
}

#[test]
fn bounded_counters_sync_between_stores() {
    let (a, _) = diverge_and_sync::<BoundedCounter>(|c, at, k| {
        // Increment, then move a unit to the other region when there is one.
        let mut d = c.increment(at, u64::from(k % 5) + 1).map_err(|_| ())?;
        let other = if at == r(1) { r(2) } else { r(1) };
        if let Ok(t) = c.transfer(at, other, 1) {
            d.join(&t);
        }
        Ok(d)
    });
    let c = a.get(&3).unwrap();
    // 3 % 5 + 1, 4 % 5 + 1 at region 1 and 5 % 5 + 1 at region 2.
    assert_eq!(c.value(), 4 + 5 + 1);
    assert_eq!(c.rights(r(1)) + c.rights(r(2)), c.value());
}

#[test]
fn flags_sync_between_stores() {
    let (a, _) = diverge_and_sync::<EwFlag>(|f, at, k| {
        Ok(if k % 2 == 0 {
            f.enable(at).map_err(|_| ())?
        } else {
            f.disable()
        })
    });
    // Key 3: disabled at first (3 odd); then region 1 enables (4) while
    // region 2 disables (5): enable wins.
    assert!(a.get(&3).unwrap().is_enabled());
    let (a, _) = diverge_and_sync::<DwFlag>(|f, at, k| {
        if k % 2 == 0 {
            f.enable(at)
        } else {
            f.disable(at)
        }
        .map_err(|_| ())
    });
    // The same history under disable-wins.
    assert!(!a.get(&3).unwrap().is_enabled());
    assert!(a.get(&3).unwrap().is_conflicted());
}

#[test]
fn rw_sets_and_maps_of_them_sync_between_stores() {
    let (a, _) = diverge_and_sync::<RwSet<u32>>(|s, at, k| {
        if k % 2 == 0 {
            s.add(at, k % 4)
        } else {
            s.remove(at, (k - 1) % 4)
        }
        .map_err(|_| ())
    });
    // Key 3: removed 2 (which it never held); then region 1 adds 0 (4 % 4)
    // while region 2 removes 0 ((5 - 1) % 4): the remove wins.
    let s = a.get(&3).unwrap();
    assert!(!s.contains(&0) && s.tombstones() == 2);
    let (a, _) = diverge_and_sync::<OrMap<u8, RwSet<u32>>>(|m, at, k| {
        m.try_update((k % 3) as u8, |s| s.add(at, k))
            .map_err(|_| ())
    });
    // Store key 150: 150 under map key 0, then 151 (region 1) under map key
    // 1 and 152 (region 2) under map key 2.
    let m = a.get(&150).unwrap();
    for (key, elem) in [(0u8, 150u32), (1, 151), (2, 152)] {
        assert!(m.get_value(&key).is_some_and(|s| s.contains(&elem)));
    }
}

// ---------------------------------------------------------------------------
// Exact encoded sizes of typical states.

#[test]
fn bounded_counter_of_three_regions() {
    let (eu, us, ap) = (r(1), r(2), r(3));
    let mut c = BoundedCounter::new();
    let _ = c.increment(eu, 1_000).unwrap();
    let _ = c.transfer(eu, us, 300).unwrap();
    let _ = c.transfer(eu, ap, 300).unwrap();
    let _ = c.decrement(eu, 100).unwrap();
    let _ = c.decrement(us, 50).unwrap();
    let _ = c.decrement(ap, 20).unwrap();
    // Replica table: length + 3 ids of 16 bytes.
    let table = 1 + 3 * 16;
    // EU's row: index, increments 1000 (2-byte varint), decrements 100,
    // backing 0, 2 transfers of (index, 300 in 2 bytes).
    let eu_row = 1 + 2 + 1 + 1 + (1 + 2 * (1 + 2));
    // US and AP rows: index, 0 increments, decrements 50 or 20, backing 300
    // (2 bytes), no transfer.
    let other_row = 1 + 1 + 1 + 2 + 1;
    assert_eq!(encoded_len(&c), table + 1 + eu_row + 2 * other_row);
    assert_eq!(encoded_len(&c), 74);
    // A sale's delta is the seller's row: 6 bytes plus its id.
    let d = c.decrement(us, 1).unwrap();
    assert_eq!(encoded_len(&d), (1 + 16) + 1 + other_row);
}

#[test]
fn flags_are_a_few_bytes() {
    let mut ew = EwFlag::new();
    let _ = ew.enable(r(1)).unwrap();
    // context: length, id, one range (gap, length - 1); store: length, dot.
    assert_eq!(encoded_len(&ew), (1 + 16 + 1 + 1 + 1) + (1 + 1 + 1));
    let _ = ew.disable();
    // Off: the context alone, with an empty store.
    assert_eq!(encoded_len(&ew), (1 + 16 + 1 + 1 + 1) + 1);

    let mut a = DwFlag::new();
    let mut b = DwFlag::new();
    let _ = a.enable(r(1)).unwrap();
    let _ = b.disable(r(2)).unwrap();
    a.join(&b);
    // Concurrent enable and disable: 2 replicas in the context, one dot in
    // each half.
    assert_eq!(
        encoded_len(&a),
        (1 + 2 * (16 + 1 + 1 + 1)) + 2 * (1 + 1 + 1)
    );
}

#[test]
fn rw_set_pays_for_tombstones_until_they_are_collected() {
    let mut s = RwSet::new();
    for e in 0..1_000u32 {
        let _ = s.add(r(1), e).unwrap();
    }
    let live = encoded_len(&s);
    // context: length + id + (length, gap 0, 2-byte length) = 21 bytes, then
    // the map's length (2 bytes); each element: value (1 or 2 bytes) +
    // adds (length, index, counter of 1-2 bytes) + empty removes (1 byte).
    let value_bytes = 128 + 2 * 872; // varints: 0..=127 take 1 byte
    let dot_bytes = 127 + 2 * 873; // dot counters 1..=127 take 1 byte
    assert_eq!(live, 21 + 2 + value_bytes + 1_000 * 3 + dot_bytes);
    for e in 0..100u32 {
        let _ = s.remove(r(1), e).unwrap();
    }
    // 100 tombstones. A removed element keeps its key, an empty add list
    // and a remove list of one dot (counters 1001..=1100: 2 bytes), where
    // it held an add dot of counter 1..=100 (1 byte): one byte more each.
    // An OR-Set would keep nothing of them.
    assert_eq!(s.tombstones(), 100);
    assert_eq!(s.len(), 900);
    assert_eq!(encoded_len(&s), live + 100);
    // Collected (here the only replica's own context is the whole
    // membership): the 100 elements are gone, the context is one range.
    let own = s.context().clone();
    let _ = s.compact([&own]).unwrap();
    assert_eq!(s.tombstones(), 0);
    assert_eq!(s.len(), 900);
    // 900 elements 100..=999: values 100..=127 in 1 byte, the rest in 2;
    // dot counters 101..=1000: 101..=127 in 1 byte, the rest in 2.
    let value_bytes = 28 + 2 * 872;
    let dot_bytes = 27 + 2 * 873;
    assert_eq!(encode(&s).len(), 21 + 2 + value_bytes + 900 * 3 + dot_bytes);
}
