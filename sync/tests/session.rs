//! The anti-entropy session converges two stores to the join of both, in
//! both directions, for every kind of divergence, within a bounded number of
//! round trips.

use accordant::{GCounter, Hlc, LwwRegister, MvRegister, OrSet, ReplicaId};
use accordant_sync::session::{sync_pair, Session, SessionConfig};
use accordant_sync::store::{Store, StoreKey, StoreValue};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

/// The store both sides must end with: the key-wise join of both.
fn joined<K: StoreKey, V: StoreValue>(a: &Store<K, V>, b: &Store<K, V>) -> Store<K, V> {
    let mut j = a.clone();
    for (k, v) in b.iter() {
        j.join(k, &v);
    }
    j
}

fn check<K: StoreKey, V: StoreValue>(mut a: Store<K, V>, mut b: Store<K, V>, max_rtt: u64) {
    let expected = joined(&a, &b);
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).expect("sync");
    assert_eq!(a.root_digest(), expected.root_digest());
    assert_eq!(b.root_digest(), expected.root_digest());
    assert!(a == expected && b == expected);
    assert_eq!(sa.bytes_sent, sb.bytes_received);
    assert_eq!(sa.bytes_received, sb.bytes_sent);
    assert!(
        sa.round_trips() <= max_rtt,
        "{} round trips > {max_rtt}",
        sa.round_trips()
    );
}

fn counters(n: u32, seed: u64) -> (Store<u32, GCounter>, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = Store::new();
    for k in 0..n {
        let _ = s.update(k, |c: &mut GCounter| {
            c.increment(r(rng.random_range(0..3)), 1 + rng.random_range(0..5))
        });
    }
    (s, rng)
}

#[test]
fn equal_stores_take_one_round_trip_under_64_bytes_each_way() {
    let (a, _) = counters(5000, 1);
    let mut b = a.clone();
    let mut a = a;
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).unwrap();
    assert_eq!(sa.round_trips(), 1);
    assert!(sa.bytes_sent < 64 && sb.bytes_sent < 64, "{sa:?} {sb:?}");
}

#[test]
fn one_and_two_sided_divergence_of_counters_converges() {
    for (seed, n, d, two_sided) in [
        (1, 3000, 1, false),
        (2, 3000, 30, true),
        (3, 3000, 3000, true),
        (4, 50, 7, true),
        (5, 10_000, 100, false),
    ] {
        let (a, mut rng) = counters(n, seed);
        let mut b = a.clone();
        let mut a = a;
        for _ in 0..d {
            let k = rng.random_range(0..n + n / 10); // some keys are new
            let _ = a.update(k, |c| c.increment(r(7), 1));
            if two_sided {
                let k = rng.random_range(0..n + n / 10);
                let _ = b.update(k, |c| c.increment(r(8), 1));
            }
        }
        check(a, b, 6);
    }
}

#[test]
fn a_new_empty_replica_catches_up() {
    let (a, _) = counters(4000, 9);
    check(a.clone(), Store::new(), 2);
    check(Store::new(), a, 3);
}

#[test]
fn big_sets_ship_the_change_not_the_set() {
    let mut a: Store<u8, OrSet<u32>> = Store::new();
    for k in 0..20u8 {
        for e in 0..1000u32 {
            let _ = a.update(k, |s| s.add(r(1), e));
        }
    }
    let mut b = a.clone();
    let _ = a.update(3, |s| s.add(r(1), 5000));
    let _ = b.update(3, |s| Ok::<_, ()>(s.remove(&17)));
    let _ = b.update(4, |s| s.add(r(2), 6000));
    let expected = joined(&a, &b);
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).unwrap();
    assert!(a == expected && b == expected);
    let total = sa.bytes_sent + sb.bytes_sent;
    // One set encodes to ~5 KB; the changes are a few elements.
    assert!(total < 1500, "{total} bytes");
}

#[test]
fn registers_converge_both_ways() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut a: Store<u16, LwwRegister<Vec<u8>>> = Store::new();
    let mut am: Store<u16, MvRegister<u64>> = Store::new();
    for k in 0..2000u16 {
        let _ = a.update(k, |reg| {
            Ok::<_, ()>(reg.write_at(Hlc::new(10, 0), r(1), vec![1; 256]))
        });
        let _ = am.update(k, |reg| reg.write(r(1), u64::from(k)));
    }
    let (mut b, mut bm) = (a.clone(), am.clone());
    for i in 0..40u64 {
        let k = rng.random_range(0..2000u16);
        let _ = a.update(k, |reg| {
            Ok::<_, ()>(reg.write_at(Hlc::new(20 + i, 0), r(1), vec![2; 256]))
        });
        let _ = am.update(k, |reg| reg.write(r(1), i));
        let k = rng.random_range(0..2000u16);
        let _ = b.update(k, |reg| {
            Ok::<_, ()>(reg.write_at(Hlc::new(20 + i, 0), r(2), vec![3; 256]))
        });
        let _ = bm.update(k, |reg| reg.write(r(2), i));
    }
    check(a, b, 6);
    check(am, bm, 6);
}

#[test]
fn a_write_during_a_session_costs_a_pass_not_correctness() {
    let (mut a, _) = counters(2000, 21);
    let mut b = a.clone();
    let _ = a.update(1, |c| c.increment(r(5), 1));
    let mut sa = Session::initiate(&a, SessionConfig::default());
    let mut sb = Session::respond(SessionConfig::default());
    let mut wrote = false;
    for _ in 0..40 {
        while let Some(m) = sa.poll_transmit() {
            sb.handle(&mut b, &m).unwrap();
        }
        if !wrote {
            // A local write lands at b in the middle of the session.
            let _ = b.update(2, |c| c.increment(r(6), 1));
            wrote = true;
        }
        while let Some(m) = sb.poll_transmit() {
            sa.handle(&mut a, &m).unwrap();
        }
        if sa.is_done() && sb.is_done() {
            break;
        }
    }
    assert!(sa.is_done() && sb.is_done());
    assert_eq!(a.root_digest(), b.root_digest());
    assert_eq!(a.get(&2).map(|c| c.count(&r(6))), Some(1));
    assert!(sa.stats().passes >= 2, "the write forces a second pass");
}

#[test]
fn large_turns_travel_in_chunks_under_the_message_limit() {
    let (a, _) = counters(3000, 31);
    let mut cfg = SessionConfig::default();
    cfg.limits = accordant_sync::message::SyncLimits::default().with_max_message_bytes(4096);
    for a_initiates in [true, false] {
        let (mut x, mut y) = if a_initiates {
            (a.clone(), Store::new())
        } else {
            (Store::new(), a.clone())
        };
        let mut sx = Session::initiate(&x, cfg);
        let mut sy = Session::respond(cfg);
        let mut largest = 0;
        for _ in 0..1000 {
            while let Some(m) = sx.poll_transmit() {
                largest = largest.max(m.len());
                sy.handle(&mut y, &m).unwrap();
            }
            while let Some(m) = sy.poll_transmit() {
                largest = largest.max(m.len());
                sx.handle(&mut x, &m).unwrap();
            }
            if sx.is_done() && sy.is_done() {
                break;
            }
        }
        assert!(sx.is_done() && sy.is_done());
        assert_eq!(x.root_digest(), a.root_digest());
        assert_eq!(y.root_digest(), a.root_digest());
        assert!(largest <= 4096, "a message of {largest} bytes");
        let s = sx.stats();
        assert!(
            s.messages_sent + s.messages_received > 20,
            "the store took many chunks"
        );
        assert!(s.round_trips() <= 3, "chunks do not count as round trips");
    }
}

#[test]
fn the_winning_lww_value_travels_once() {
    let mut a: Store<u8, LwwRegister<Vec<u8>>> = Store::new();
    let _ = a.update(1, |reg| {
        Ok::<_, ()>(reg.write_at(Hlc::new(1000, 0), r(1), vec![0; 256]))
    });
    let mut b = a.clone();
    let _ = b.update(1, |reg| {
        Ok::<_, ()>(reg.write_at(Hlc::new(2000, 0), r(2), vec![1; 256]))
    });
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).unwrap();
    assert_eq!(a.root_digest(), b.root_digest());
    assert_eq!(a.get(&1).and_then(|v| v.get().cloned()), Some(vec![1; 256]));
    // The 256-byte value crosses once, from b; a (which lost) never echoes
    // it back: a sends only its root, a stamp and `Done`.
    assert!(sa.bytes_sent < 128, "{sa:?}");
    assert!(sb.bytes_sent < 256 + 128, "{sb:?}");
}

#[test]
fn a_replayed_turn_is_refused_not_answered() {
    let (mut a, _) = counters(3000, 41);
    let mut b = a.clone();
    let _ = a.update(5, |c| c.increment(r(9), 1));
    let _ = b.update(6, |c| c.increment(r(8), 1));
    let mut sa = Session::initiate(&a, SessionConfig::default());
    let mut sb = Session::respond(SessionConfig::default());
    let hello = sa.poll_transmit().unwrap();
    sb.handle(&mut b, &hello).unwrap();
    let turn = sb.poll_transmit().unwrap();
    sa.handle(&mut a, &turn).unwrap();
    assert!(sa.poll_transmit().is_some(), "the first copy is answered");
    let root = a.root_digest();
    let err = sa.handle(&mut a, &turn).unwrap_err();
    assert_eq!(
        err,
        accordant_sync::error::SyncError::Unexpected("turn out of sequence")
    );
    assert!(sa.poll_transmit().is_none(), "the replay is not answered");
    assert_eq!(a.root_digest(), root);
}

#[test]
fn sparse_changes_in_a_large_store_take_at_most_four_round_trips() {
    // 20,000 keys: the responder opens with 256 fingerprints two levels
    // down, the initiator answers with one IBLT of the differing nodes'
    // items, and the values follow (counters are small: full values, no
    // summaries): three round trips, where a descent would take five.
    let (a, mut rng) = counters(20_000, 11);
    let mut b = a.clone();
    let mut a = a;
    for _ in 0..20 {
        let _ = a.update(rng.random_range(0..20_000), |c| c.increment(r(7), 1));
        let _ = b.update(rng.random_range(0..20_000), |c| c.increment(r(8), 1));
    }
    let expected = joined(&a, &b);
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).unwrap();
    assert!(a == expected && b == expected);
    assert!(sa.round_trips() <= 4, "{sa:?}");
    // A descent would send 16 fingerprints per level per changed key and
    // then list every key of each differing leaf (about 7 kB here); the
    // IBLT costs about 1.5 cells of 10 bytes per item of difference, plus
    // its margin, and the values about 2 kB.
    let total = sa.bytes_sent + sb.bytes_sent;
    assert!(total < 5500, "{total} bytes for 40 changed counters");
}

#[test]
fn clustered_changes_that_overflow_the_sketch_still_converge() {
    use accordant_sync::digest::KeyHash;
    use accordant_sync::key::key_bytes;
    // Every changed key under one node two levels below the root: one
    // differing node in 256 makes the session expect about one changed key,
    // the IBLT sized for that cannot peel 150, and the receiver falls back
    // to descending that node.
    let prefix = |k: u32| KeyHash::of(&key_bytes(&k)).0 >> 56;
    let (a, _) = counters(20_000, 12);
    let mut b = a.clone();
    let mut a = a;
    let target = prefix(0);
    let cluster: Vec<u32> = (0..20_000u32).filter(|k| prefix(*k) == target).collect();
    assert!(cluster.len() >= 60, "{} keys under the node", cluster.len());
    for (i, k) in cluster.iter().enumerate() {
        if i % 2 == 0 {
            let _ = a.update(*k, |c| c.increment(r(7), 1));
        } else {
            let _ = b.update(*k, |c| c.increment(r(8), 1));
        }
    }
    check(a, b, 8);
}
