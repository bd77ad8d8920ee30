//! Every type added for the CRDT databases' parity (the bounded counter,
//! the enable- and disable-wins flags, the remove-wins set, and maps of
//! them) in a `Store`, diverged on two replicas and synchronised by the
//! anti-entropy session.

use accordant::{BoundedCounter, DwFlag, EwFlag, Lattice, OrMap, ReplicaId, RwSet};
use accordant_sync::session::Session;
use accordant_sync::store::{Store, StoreKey, StoreValue};

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
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
        expected.join(k, &v);
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
