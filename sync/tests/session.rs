//! The anti-entropy session converges two stores to the join of both, in
//! both directions, for every kind of divergence, within a bounded number of
//! round trips; under sustained writes it finishes and verifies what it set
//! out to reconcile.

use accordant::{GCounter, Hlc, LwwRegister, MvRegister, OrSet, ReplicaId};
use accordant_sync::error::SyncError;
use accordant_sync::message::{self, Message, SyncLimits};
use accordant_sync::session::{sync_pair, Session, SessionConfig, SessionStats, Verified};
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

/// Syncs `a` (initiating) with `b`, checks both end with the join, and
/// that the session took at most `max_legs` one-way trips.
fn check<K: StoreKey, V: StoreValue>(
    mut a: Store<K, V>,
    mut b: Store<K, V>,
    max_legs: u64,
) -> (SessionStats, SessionStats) {
    let expected = joined(&a, &b);
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).expect("sync");
    assert_eq!(a.root_digest(), expected.root_digest());
    assert_eq!(b.root_digest(), expected.root_digest());
    assert!(a == expected && b == expected);
    assert_eq!(sa.bytes_sent, sb.bytes_received);
    assert_eq!(sa.bytes_received, sb.bytes_sent);
    assert_eq!(sa.legs(), sb.legs());
    assert!(
        sa.legs() <= max_legs,
        "{} legs > {max_legs}: {sa:?}",
        sa.legs()
    );
    // Whoever received the last message compared the full roots.
    let verified = [sa.verified, sb.verified];
    assert!(verified.contains(&Some(Verified::Roots)), "{verified:?}");
    (sa, sb)
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
    for n in [0, 1, 5000] {
        let (a, _) = counters(n, 1);
        let (sa, sb) = check(a.clone(), a, 2);
        assert_eq!(sa.round_trips(), 1);
        assert!(sa.bytes_sent < 64 && sb.bytes_sent < 64, "{sa:?} {sb:?}");
    }
}

#[test]
fn one_and_two_sided_divergence_of_counters_converges() {
    for (seed, n, d, two_sided) in [
        (1, 3000, 1, false),
        (2, 3000, 30, true),
        (3, 3000, 3000, true),
        (4, 50, 7, true),
        (5, 10_000, 100, false),
        (6, 200_000, 300, true),
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
        // Counters are small: full values and their deltas, two round
        // trips; an estimate that fell short costs one more.
        check(a, b, 6);
    }
}

#[test]
fn a_new_empty_replica_catches_up_in_one_round_trip_and_a_leg() {
    let (a, _) = counters(4000, 9);
    // The responder is empty: it lists nothing, the initiator sends all.
    let (sa, _) = check(a.clone(), Store::new(), 3);
    assert_eq!(sa.round_trips(), 1);
    // The initiator is empty: the responder sends all in its first answer.
    let (sa, _) = check(Store::new(), a, 2);
    assert_eq!(sa.round_trips(), 1);
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
    let (sa, sb) = check(a, b, 5);
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
    check(a, b, 7);
    check(am, bm, 7);
}

#[test]
fn the_winning_lww_value_travels_once() {
    let mut a: Store<u8, LwwRegister<Vec<u8>>> = Store::new();
    for k in 0..50 {
        let _ = a.update(k, |reg| {
            Ok::<_, ()>(reg.write_at(Hlc::new(1000, 0), r(1), vec![0; 256]))
        });
    }
    let mut b = a.clone();
    // Key 1 is newer at b, key 2 newer at a.
    let _ = b.update(1, |reg| {
        Ok::<_, ()>(reg.write_at(Hlc::new(2000, 0), r(2), vec![1; 256]))
    });
    let _ = a.update(2, |reg| {
        Ok::<_, ()>(reg.write_at(Hlc::new(2000, 0), r(1), vec![2; 256]))
    });
    let (sa, sb) = check(a.clone(), b.clone(), 5);
    // Each winning 256-byte value crosses once: a sends its stamps and one
    // value, b its symbols and one value; nobody echoes the loser's.
    assert!(sa.bytes_sent < 256 + 200, "{sa:?}");
    assert!(sb.bytes_sent < 256 + 400, "{sb:?}");
    assert_eq!(sa.keys_sent + sb.keys_sent, 4, "two stamps and two values");
}

#[test]
fn sparse_changes_in_a_large_store_take_two_round_trips() {
    // 20,000 counters, 20 changed on each side: the responder's first
    // symbols name the 80 items of difference, the values follow (counters
    // are small: full values and deltas), and nothing is left to close.
    let (a, mut rng) = counters(20_000, 11);
    let mut b = a.clone();
    let mut a = a;
    for _ in 0..20 {
        let _ = a.update(rng.random_range(0..20_000), |c| c.increment(r(7), 1));
        let _ = b.update(rng.random_range(0..20_000), |c| c.increment(r(8), 1));
    }
    let (sa, sb) = check(a, b, 6);
    // About 2 symbols of 11 bytes per item of difference, the values and
    // deltas (about 60 bytes per key): far under a descent's key lists.
    let total = sa.bytes_sent + sb.bytes_sent;
    assert!(total < 6000, "{total} bytes for 40 changed counters");
    assert!(sa.symbols > 0 && sa.items_listed == 0);
}

#[test]
fn an_estimate_that_falls_short_costs_an_extension_not_correctness() {
    let (a, mut rng) = counters(50_000, 12);
    let mut b = a.clone();
    let mut a = a;
    for _ in 0..300 {
        let _ = a.update(rng.random_range(0..50_000), |c| c.increment(r(7), 1));
        let _ = b.update(rng.random_range(0..50_000), |c| c.increment(r(8), 1));
    }
    let expected = joined(&a, &b);
    // A first batch for 60% of the estimate: too few symbols.
    let mut cfg = SessionConfig::default();
    cfg.margin_percent = 60;
    let (mut x, mut y) = (a.clone(), b.clone());
    let (sx, sy) = sync_pair(&mut x, &mut y, cfg).expect("sync");
    assert!(x == expected && y == expected);
    assert!(sx.extensions >= 1, "{sx:?}");
    assert!(sx.round_trips() >= 3 && sx.items_listed == 0, "{sx:?}");
    // A hundredth: two extensions do not reach it; the list does.
    cfg.margin_percent = 1;
    let (mut x, mut y) = (a, b);
    let (sx, sy2) = sync_pair(&mut x, &mut y, cfg).expect("sync");
    assert!(x == expected && y == expected);
    assert!(sx.items_listed >= 50_000, "{sx:?}");
    assert_eq!(sy.verified.or(sx.verified), Some(Verified::Roots));
    assert!(sy2.items_listed > 0);
}

#[test]
fn large_turns_travel_in_chunks_under_the_message_limit() {
    let (a, mut rng) = counters(3000, 31);
    let mut cfg = SessionConfig::default();
    cfg.limits = SyncLimits::default().with_max_message_bytes(4096);
    let mut changed = a.clone();
    for _ in 0..1500 {
        let _ = changed.update(rng.random_range(0..3000), |c| c.increment(r(9), 1));
    }
    for (x0, y0) in [
        (a.clone(), Store::new()),
        (Store::new(), a.clone()),
        (changed.clone(), a.clone()),
        (a.clone(), changed.clone()),
    ] {
        let expected = joined(&x0, &y0);
        let (mut x, mut y) = (x0, y0);
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
        assert!(x == expected && y == expected);
        assert!(largest <= 4096, "a message of {largest} bytes");
        let s = sx.stats();
        assert!(
            s.messages_sent + s.messages_received > 20,
            "the turns took many chunks: {s:?}"
        );
        assert!(s.legs() <= 7, "chunks do not count as legs: {s:?}");
    }
}

#[test]
fn a_replayed_or_misdirected_message_is_refused_not_answered() {
    let (mut a, _) = counters(3000, 41);
    let mut b = a.clone();
    let _ = a.update(5, |c| c.increment(r(9), 1));
    let _ = b.update(6, |c| c.increment(r(8), 1));
    let mut sa = Session::initiate(&a, SessionConfig::default());
    let mut sb = Session::respond(SessionConfig::default());
    let hello = sa.poll_transmit().unwrap();
    sb.handle(&mut b, &hello).unwrap();
    let symbols = sb.poll_transmit().unwrap();
    sa.handle(&mut a, &symbols).unwrap();
    assert!(sa.poll_transmit().is_some(), "the first copy is answered");
    let root = a.root_digest();
    let err = sa.handle(&mut a, &symbols).unwrap_err();
    assert_eq!(err, SyncError::Unexpected("message out of order"));
    assert!(sa.poll_transmit().is_none(), "the replay is not answered");
    assert_eq!(a.root_digest(), root);
    // A second Hello to a running responder.
    assert_eq!(
        sb.handle(&mut b, &hello),
        Err(SyncError::Unexpected("Hello in the middle of a session"))
    );
}

#[test]
fn a_version_2_peer_gets_a_clear_error() {
    // Version 2's Hello: version, tag 0, pass 0, a 32-byte root, a count.
    let mut v2 = vec![2u8, 0, 0];
    v2.extend_from_slice(&[7; 32]);
    v2.push(100);
    let mut s: Session<u32, GCounter> = Session::respond(SessionConfig::default());
    let mut store = Store::new();
    let e = s.handle(&mut store, &v2).unwrap_err();
    assert_eq!(e, SyncError::Version(2));
    assert!(e.to_string().contains("version 2"), "{e}");
    assert!(s.is_failed());
    // And a version-2 node receiving our Hello sees version 3.
    let (a, _) = counters(10, 1);
    let hello = Session::<u32, GCounter>::initiate(&a, SessionConfig::default())
        .poll_transmit()
        .unwrap();
    assert_eq!(hello[0], message::VERSION);
    assert_eq!(message::VERSION, 3);
}

/// Whether every key of `before` is below its value in `after`.
fn covers<K: StoreKey, V: StoreValue>(after: &Store<K, V>, before: &Store<K, V>) -> bool {
    before
        .iter()
        .all(|(k, v)| after.get(&k).is_some_and(|mine| v.leq(&mine)))
}

#[test]
fn sessions_under_sustained_writes_finish_and_verify_what_they_reconciled() {
    // Both sides keep writing between every message delivery, as a region
    // under load does; a third of the writes hit a few hot keys that the
    // session is reconciling at the same time. Every session must finish,
    // report what it verified, and leave each side holding everything the
    // other held when the session began; the writes it did not carry are
    // the next session's.
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let (mut a, _) = counters(20_000, 51);
    let mut b = a.clone();
    let write = |s: &mut Store<u32, GCounter>, rng: &mut ChaCha8Rng, who: u128| {
        let k = if rng.random_bool(0.3) {
            rng.random_range(0..8)
        } else {
            rng.random_range(0..22_000)
        };
        let _ = s.update(k, |c| c.increment(r(who), 1));
    };
    for _ in 0..200 {
        write(&mut a, &mut rng, 10);
        write(&mut b, &mut rng, 11);
    }
    let mut reconciled = 0;
    let mut extended = 0;
    for session in 0..10 {
        let (a0, b0) = (a.clone(), b.clone());
        // Every other session starts with too few symbols, so that the
        // extension meets the writes made since the first batch.
        let mut config = SessionConfig::default();
        if session % 2 == 1 {
            config.margin_percent = 20;
        }
        let mut sa = Session::initiate(&a, config);
        let mut sb = Session::respond(config);
        let mut deliveries = 0;
        while !(sa.is_done() && sb.is_done()) {
            let mut progressed = false;
            while let Some(m) = sa.poll_transmit() {
                for _ in 0..5 {
                    write(&mut a, &mut rng, 10);
                    write(&mut b, &mut rng, 11);
                }
                sb.handle(&mut b, &m).expect("responder");
                progressed = true;
                deliveries += 1;
            }
            while let Some(m) = sb.poll_transmit() {
                for _ in 0..5 {
                    write(&mut a, &mut rng, 10);
                    write(&mut b, &mut rng, 11);
                }
                sa.handle(&mut a, &m).expect("initiator");
                progressed = true;
                deliveries += 1;
            }
            assert!(progressed, "session {session} stalled");
        }
        assert!(deliveries <= 11, "session {session}: {deliveries} messages");
        extended += usize::from(sa.stats().extensions > 0);
        let verified = sa.stats().verified.or(sb.stats().verified);
        assert_eq!(verified, Some(Verified::Reconciled), "session {session}");
        reconciled += 1;
        // Each side holds everything the other held when it began.
        assert!(
            covers(&a, &b0),
            "session {session}: a lacks some of b's start"
        );
        assert!(
            covers(&b, &a0),
            "session {session}: b lacks some of a's start"
        );
        assert_ne!(a.root_digest(), b.root_digest(), "writes kept landing");
    }
    assert_eq!(reconciled, 10);
    assert!(extended >= 3, "{extended} sessions extended");
    // The writes stop: the next session verifies full roots.
    let (sa, sb) = sync_pair(&mut a, &mut b, SessionConfig::default()).expect("quiet sync");
    assert_eq!(a.root_digest(), b.root_digest());
    assert_eq!(sa.verified.or(sb.verified), Some(Verified::Roots));
}

#[test]
fn a_lying_final_root_fails_a_quiet_session() {
    // The responder's last answer claims a root it does not hold, with no
    // write to explain it: the initiator refuses to report success.
    let (mut a, _) = counters(2000, 61);
    let mut b = a.clone();
    let _ = b.update(3, |c| c.increment(r(4), 1));
    let mut sa = Session::initiate(&a, SessionConfig::default());
    let mut sb = Session::respond(SessionConfig::default());
    let mut result = Ok(());
    'outer: for _ in 0..10 {
        while let Some(m) = sa.poll_transmit() {
            sb.handle(&mut b, &m).unwrap();
        }
        while let Some(m) = sb.poll_transmit() {
            let m = match message::decode(&m, &SyncLimits::default()).unwrap() {
                Message::Answer(mut ans) if ans.finish.is_some() => {
                    if let Some(f) = ans.finish.as_mut() {
                        f.root.0[0] ^= 1;
                    }
                    message::encode(&Message::Answer(ans))
                }
                _ => m,
            };
            result = sa.handle(&mut a, &m);
            if result.is_err() {
                break 'outer;
            }
        }
    }
    assert_eq!(result, Err(SyncError::NotConverged(1)));
    assert!(sa.is_failed());
}
