//! Scenarios for the bounded counter, the flags and the remove-wins set: the
//! seed article's inventory through a partition and exact encoded sizes of
//! typical states. (Their synchronisation between two stores by the
//! anti-entropy session is tested in `sync/tests/new_types_sync.rs`.)

use accordant::codec::{encode, encoded_len};
use accordant::{
    BoundedCounter, BoundedError, DwFlag, EwFlag, Lattice, PNCounter, ReplicaId, RightsPolicy,
    RwSet,
};
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
