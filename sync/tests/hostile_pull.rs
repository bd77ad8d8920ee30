//! A hostile peer's `Pull` and `Value` payloads (the targeted pull of
//! session-token reads, `net::pull`): truncated, oversized, claimed
//! lengths of 2^60, non-canonical, of the wrong type, for a key never
//! pulled (or pulled too long ago), and forged values that fail admission.
//! Each must be a typed error, and leave the store exactly as it was.

use std::time::{Duration, Instant};

use accordant::codec::{self, Limits};
use accordant::{GCounter, OrSet, ReplicaId, Summarize};
use accordant_sync::admission::Admission;
use accordant_sync::delta::NaivePush;
use accordant_sync::error::SyncError;
use accordant_sync::key::key_bytes;
use accordant_sync::net::{
    apply_pulled, decode_pull, decode_pulled, encode_pull, Pulls, PULL_ANSWER_WINDOW,
};
use accordant_sync::store::Store;

type S = Store<String, GCounter>;

const ME: u128 = 1;
const PEER: u128 = 2;

fn key() -> String {
    "stock".to_string()
}

/// A store holding one key, and the pulls of that key.
fn setup(now: Instant) -> (S, Pulls) {
    let mut store = S::new();
    let _ = store
        .update(key(), |c| c.increment(ReplicaId::from_u128(ME), 2))
        .unwrap();
    let _ = store
        .update("other".to_string(), |c| {
            c.increment(ReplicaId::from_u128(ME), 1)
        })
        .unwrap();
    let mut pulls = Pulls::new();
    pulls.asked(&key(), now);
    (store, pulls)
}

/// An honest answer: the peer's increments of the key.
fn honest() -> Vec<u8> {
    let mut c = GCounter::new();
    let d = c.increment(ReplicaId::from_u128(PEER), 5).unwrap();
    NaivePush::encode(&key(), &d)
}

fn admission() -> Admission {
    Admission::new(Some(ReplicaId::from_u128(ME)))
}

/// Applies `payload`; it must fail, and change nothing.
fn refused(payload: &[u8], limits: &Limits) -> SyncError {
    let now = Instant::now();
    let (mut store, pulls) = setup(now);
    let before = store.root_digest();
    let err = apply_pulled(&mut store, &pulls, &admission(), payload, limits, now)
        .expect_err("a hostile value was applied");
    assert_eq!(
        store.root_digest(),
        before,
        "a refused value changed the store"
    );
    err
}

#[test]
fn an_honest_answer_is_joined() {
    let now = Instant::now();
    let (mut store, pulls) = setup(now);
    apply_pulled(
        &mut store,
        &pulls,
        &admission(),
        &honest(),
        &Limits::default(),
        now,
    )
    .unwrap();
    assert_eq!(store.get(&key()).unwrap().value(), 7);
}

#[test]
fn every_truncation_is_refused() {
    let p = honest();
    for len in 0..p.len() {
        let e = refused(&p[..len], &Limits::default());
        assert!(
            matches!(e, SyncError::Malformed(_) | SyncError::Value { .. }),
            "prefix {len}: {e:?}"
        );
    }
}

#[test]
fn oversized_values_are_refused_by_the_limits() {
    let mut c = GCounter::new();
    for r in 10..200u128 {
        let _ = c.increment(ReplicaId::from_u128(r), 1).unwrap();
    }
    let p = NaivePush::encode(&key(), &c);
    let e = refused(&p, &Limits::new(64));
    assert!(matches!(e, SyncError::Value { .. }), "{e:?}");
}

#[test]
fn claimed_lengths_of_2_to_the_60_fail_fast() {
    // A key length prefix of 2^60 with three bytes behind it.
    let mut p = Vec::new();
    let mut n: u64 = 1 << 60;
    while n >= 0x80 {
        p.push((n as u8) | 0x80);
        n >>= 7;
    }
    p.push(n as u8);
    p.extend_from_slice(b"abc");
    let start = Instant::now();
    let e = refused(&p, &Limits::default());
    assert!(matches!(e, SyncError::Malformed(_)), "{e:?}");
    assert!(start.elapsed() < Duration::from_secs(1));
    // The same inside the value: a GCounter claiming 2^60 entries.
    let mut q = Vec::new();
    let kb = key_bytes(&key());
    q.push(kb.len() as u8);
    q.extend_from_slice(&kb);
    q.extend_from_slice(&p[..p.len() - 3]);
    assert!(matches!(
        refused(&q, &Limits::default()),
        SyncError::Value { .. }
    ));
}

#[test]
fn non_canonical_encodings_are_refused() {
    let p = honest();
    // An overlong varint for the key's length (one byte, 6, spelled in two).
    assert_eq!(p[0] as usize, key_bytes(&key()).len());
    let mut overlong = vec![p[0] | 0x80, 0x00];
    overlong.extend_from_slice(&p[1..]);
    assert!(matches!(
        refused(&overlong, &Limits::default()),
        SyncError::Malformed(_)
    ));
    // A trailing byte after the value.
    let mut trailing = p.clone();
    trailing.push(0);
    assert!(matches!(
        refused(&trailing, &Limits::default()),
        SyncError::Value { .. }
    ));
    // A key that is not a canonical string encoding (its length says 7,
    // one byte short).
    let mut bad_key = p.clone();
    bad_key[1] = 7;
    assert!(matches!(
        refused(&bad_key, &Limits::default()),
        SyncError::Value { what: "key", .. }
    ));
}

#[test]
fn a_value_of_the_wrong_type_is_refused() {
    let mut set: OrSet<u32> = OrSet::new();
    let d = set.add(ReplicaId::from_u128(PEER), 9).unwrap();
    let p = NaivePush::encode(&key(), &d);
    let e = refused(&p, &Limits::default());
    assert!(matches!(e, SyncError::Value { .. }), "{e:?}");
    // A key of the wrong type (a number where a string is expected) is
    // refused too, or if it happens to decode, it is a key never pulled.
    let p = NaivePush::encode(&7u64, &GCounter::new());
    let _ = refused(&p, &Limits::default());
}

#[test]
fn a_value_for_a_key_not_pulled_is_refused() {
    let mut c = GCounter::new();
    let d = c.increment(ReplicaId::from_u128(PEER), 5).unwrap();
    let p = NaivePush::encode(&"other".to_string(), &d);
    assert_eq!(
        refused(&p, &Limits::default()),
        SyncError::Unexpected("a pulled value for a key not asked for")
    );
    // The pulled key, answered after the window.
    let then = Instant::now();
    let (mut store, pulls) = setup(then);
    let before = store.root_digest();
    let late = then + PULL_ANSWER_WINDOW + Duration::from_secs(1);
    let e = apply_pulled(
        &mut store,
        &pulls,
        &admission(),
        &honest(),
        &Limits::default(),
        late,
    );
    assert!(matches!(e, Err(SyncError::Unexpected(_))), "{e:?}");
    assert_eq!(store.root_digest(), before);
}

#[test]
fn a_forged_value_fails_admission() {
    // The peer claims increments by this node's own replica that it never
    // made.
    let mut c = GCounter::new();
    let d = c.increment(ReplicaId::from_u128(ME), 50).unwrap();
    let p = NaivePush::encode(&key(), &d);
    let e = refused(&p, &Limits::default());
    assert!(matches!(e, SyncError::Refused(_)), "{e:?}");
    // A value above the admission's ceiling.
    let mut c = GCounter::new();
    let d = c.increment(ReplicaId::from_u128(PEER), u64::MAX).unwrap();
    let p = NaivePush::encode(&key(), &d);
    assert!(matches!(
        refused(&p, &Limits::default()),
        SyncError::Refused(_)
    ));
}

#[test]
fn hostile_pulls_are_typed_errors() {
    let summary = GCounter::new().summary();
    let p = encode_pull(&key(), &summary);
    let (k, s) =
        decode_pull::<String, <GCounter as Summarize>::Summary>(&p, &Limits::default()).unwrap();
    assert_eq!((k, s), (key(), summary));
    for len in 0..p.len() {
        let r =
            decode_pull::<String, <GCounter as Summarize>::Summary>(&p[..len], &Limits::default());
        // An empty summary may be a valid prefix only at full length.
        assert!(r.is_err(), "prefix {len} decoded");
    }
    let mut trailing = p.clone();
    trailing.push(0);
    assert!(
        decode_pull::<String, <GCounter as Summarize>::Summary>(&trailing, &Limits::default())
            .is_err()
    );
    // A summary of the wrong type.
    let mut wrong = Vec::new();
    wrong.extend_from_slice(&p[..1 + key_bytes(&key()).len()]);
    let mut set: OrSet<u32> = OrSet::new();
    let _ = set.add(ReplicaId::from_u128(PEER), 9).unwrap();
    wrong.extend_from_slice(&codec::encode(&set));
    assert!(
        decode_pull::<String, <GCounter as Summarize>::Summary>(&wrong, &Limits::default())
            .is_err()
    );
    // decode_pulled agrees with apply_pulled on what parses.
    assert!(decode_pulled::<String, GCounter>(&honest(), &Limits::default()).is_ok());
}
