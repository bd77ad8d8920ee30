//! Admission on the sans-IO delta paths: a message carrying one value that
//! forges the receiver's own writes, or claims a number above the ceiling,
//! is refused whole — not even its valid values are joined — with a typed
//! error; true data, including the receiver's own writes echoed back, is
//! admitted. Sessions given the policy refuse the same way.

use accordant::{GCounter, OrSet, ReplicaId};
use accordant_sync::admission::{Admission, AdmitAll, Refusal};
use accordant_sync::delta::{AckedConfig, AckedDeltas, DeltaReplicator, NaivePush, Outbox};
use accordant_sync::error::SyncError;
use accordant_sync::peer::PeerId;
use accordant_sync::session::{sync_pair, Session, SessionConfig};
use accordant_sync::store::Store;
use std::sync::Arc;

/// Collects what a replicator sends.
#[derive(Default)]
struct Wire(Vec<(PeerId, Vec<u8>)>);

impl Outbox for Wire {
    fn peers(&self) -> Vec<PeerId> {
        vec![PeerId(1), PeerId(2)]
    }
    fn send(&mut self, peer: PeerId, payload: &[u8]) -> bool {
        self.0.push((peer, payload.to_vec()));
        true
    }
}

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

#[test]
fn naive_push_refuses_forgeries_and_admits_echoes() {
    let me = r(1);
    let admission = Admission::new(Some(me));
    let mut mine: Store<String, GCounter> = Store::new();
    let d = mine.update("k".into(), |c| c.increment(me, 2)).unwrap();
    let before = mine.root_digest();
    let mut push = NaivePush::default();
    let mut wire = Wire::default();

    // Our own write, echoed back: admitted (a no-op).
    let echo = NaivePush::encode(&"k".to_string(), &d);
    push.on_receive(PeerId(2), &echo, &mut mine, &admission, &mut wire)
        .unwrap();
    assert_eq!(mine.root_digest(), before);

    // A third increment of ours that we never made: refused.
    let mut forged = GCounter::new();
    let _ = forged.increment(me, 3).unwrap();
    let payload = NaivePush::encode(&"k".to_string(), &forged);
    let err = push
        .on_receive(PeerId(2), &payload, &mut mine, &admission, &mut wire)
        .unwrap_err();
    assert!(matches!(
        err,
        SyncError::Refused(Refusal::OwnReplica {
            claimed: 3,
            issued: 2,
            ..
        })
    ));
    assert!(err.is_peer_fault());
    assert_eq!(mine.root_digest(), before, "nothing joined");

    // Without the check the same payload goes in: the check is what stops it.
    push.on_receive(PeerId(2), &payload, &mut mine, &AdmitAll, &mut wire)
        .unwrap();
    assert_ne!(mine.root_digest(), before);
}

#[test]
fn a_register_stamped_in_the_future_is_refused_on_the_delta_path() {
    use accordant::{Hlc, LwwRegister, SystemClock};
    let now = accordant::Clock::now_ms(&SystemClock);
    let admission = Admission::new(Some(r(1)));
    let mut mine: Store<String, LwwRegister<String>> = Store::new();
    let _ = mine
        .update("addr".into(), |v| {
            Ok::<_, ()>(v.write_at(Hlc::new(now, 0), r(1), "Berlin".into()))
        })
        .unwrap();
    let before = mine.root_digest();
    let mut push = NaivePush::default();
    let mut wire = Wire::default();
    let stamped = |ms: u64, v: &str| {
        let mut reg = LwwRegister::new();
        let _ = reg.write_at(Hlc::new(ms, 0), r(2), v.to_string());
        NaivePush::encode(&"addr".to_string(), &reg)
    };

    // A year ahead: it would beat every write on "addr" for a year.
    let year = stamped(now + 365 * 86_400_000, "frozen");
    let err = push
        .on_receive(PeerId(2), &year, &mut mine, &admission, &mut wire)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Refused(Refusal::StampAhead {
                max_ahead_ms: 60_000,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.is_peer_fault());
    assert_eq!(mine.root_digest(), before, "nothing joined");

    // A later write within the bound is an ordinary, winning write.
    push.on_receive(
        PeerId(2),
        &stamped(now + 1_000, "Paris"),
        &mut mine,
        &admission,
        &mut wire,
    )
    .unwrap();
    assert_eq!(
        mine.get("addr").unwrap().get().map(String::as_str),
        Some("Paris")
    );
}

#[test]
fn acked_deltas_refuse_a_whole_group_for_one_bad_value() {
    let (a_id, b_id) = (r(1), r(2));
    let mut a: Store<String, OrSet<String>> = Store::new();
    let mut b: Store<String, OrSet<String>> = Store::new();
    let cfg = AckedConfig::default().with_sync_every(1);
    let mut ra = AckedDeltas::with_incarnation(cfg, 11, &a);
    let mut rb = AckedDeltas::with_incarnation(cfg, 22, &b);
    let a_policy = Admission::new(Some(a_id));
    let mut wa = Wire::default();
    let mut wb = Wire::default();
    ra.on_connect(PeerId(2), &a, &mut wa);
    rb.on_connect(PeerId(1), &b, &mut wb);
    // A wrote one element.
    let d = a.update("s".into(), |s| s.add(a_id, "a1".into())).unwrap();
    ra.on_local_write(&"s".to_string(), &d, &mut a, &mut wa);
    let before = a.root_digest();

    // B writes a valid element under its own id, and forges a second dot
    // of A's on another key: both travel in one delta-group.
    let good = b.update("g".into(), |s| s.add(b_id, "b1".into())).unwrap();
    rb.on_local_write(&"g".to_string(), &good, &mut b, &mut wb);
    let mut forged: OrSet<String> = OrSet::new();
    let _ = forged.add(a_id, "x".into()).unwrap();
    let _ = forged.add(a_id, "y".into()).unwrap();
    let _ = b.join("s".into(), &forged);
    rb.on_local_write(&"s".to_string(), &forged, &mut b, &mut wb);
    wb.0.clear();
    rb.on_tick(&b, &mut wb);
    let to_a: Vec<Vec<u8>> =
        wb.0.iter()
            .filter(|(p, _)| *p == PeerId(1))
            .map(|(_, m)| m.clone())
            .collect();
    assert!(!to_a.is_empty(), "B sent its interval");
    let mut refused = 0;
    for msg in &to_a {
        match ra.on_receive(PeerId(2), msg, &mut a, &a_policy, &mut wa) {
            Err(SyncError::Refused(Refusal::OwnReplica { .. })) => refused += 1,
            Err(e) => panic!("{e}"),
            Ok(()) => {}
        }
    }
    assert_eq!(refused, 1, "the group carrying the forgery is refused");
    assert_eq!(a.root_digest(), before, "not even B's valid key was joined");
    assert!(a.get(&"g".to_string()).is_none());

    // A group above the ceiling is refused too, whoever it names.
    let strict = Admission::new(Some(a_id)).with_ceiling(1);
    let mut b2: Store<String, OrSet<String>> = Store::new();
    let mut rb2 = AckedDeltas::with_incarnation(cfg, 33, &b2);
    let mut w = Wire::default();
    rb2.on_connect(PeerId(1), &b2, &mut w);
    for e in ["p", "q"] {
        let d = b2.update("c".into(), |s| s.add(b_id, e.into())).unwrap();
        rb2.on_local_write(&"c".to_string(), &d, &mut b2, &mut w);
    }
    w.0.clear();
    rb2.on_tick(&b2, &mut w);
    let mut a2: Store<String, OrSet<String>> = Store::new();
    let mut ra2 = AckedDeltas::with_incarnation(cfg, 44, &a2);
    let mut wa2 = Wire::default();
    ra2.on_connect(PeerId(3), &a2, &mut wa2);
    let msg = &w.0.iter().find(|(p, _)| *p == PeerId(1)).unwrap().1;
    assert!(matches!(
        ra2.on_receive(PeerId(3), msg, &mut a2, &strict, &mut wa2),
        Err(SyncError::Refused(Refusal::AboveCeiling { claimed: 2, .. }))
    ));
    assert_eq!(a2.len(), 0);
}

/// Drives two sessions to the end or the first error; returns the error.
fn run_session(
    a: &mut Store<String, GCounter>,
    sa: &mut Session<String, GCounter>,
    b: &mut Store<String, GCounter>,
    sb: &mut Session<String, GCounter>,
) -> Result<(), SyncError> {
    for _ in 0..64 {
        let mut moved = false;
        while let Some(m) = sa.poll_transmit() {
            sb.handle(b, &m)?;
            moved = true;
        }
        while let Some(m) = sb.poll_transmit() {
            sa.handle(a, &m)?;
            moved = true;
        }
        if !moved {
            return Ok(());
        }
    }
    panic!("the session did not end");
}

/// A session's values pass the same admission as deltas, whichever side
/// the forgery reaches and in whichever message it travels: the victim
/// refuses the turn whole (its honest value too) and keeps its state.
#[test]
fn sessions_refuse_forged_values_before_joining_any() {
    let me = r(1);
    for victim_initiates in [false, true] {
        for honest_first in [false, true] {
            let mut victim: Store<String, GCounter> = Store::new();
            let _ = victim.update("k".into(), |c| c.increment(me, 2)).unwrap();
            let mut evil: Store<String, GCounter> = Store::new();
            // Four of the victim's increments when it made two, and an
            // honest key beside it (sent in the same turn).
            let _ = evil.update("k".into(), |c| c.increment(me, 4)).unwrap();
            let key = if honest_first { "a-honest" } else { "z-honest" };
            let _ = evil.update(key.into(), |c| c.increment(r(2), 7)).unwrap();
            let before = victim.clone();
            let admission = Arc::new(Admission::new(Some(me)));
            let config = SessionConfig::default();
            let result = if victim_initiates {
                let mut sv = Session::initiate(&victim, config).with_admission(admission);
                let mut se = Session::respond(config);
                run_session(&mut victim, &mut sv, &mut evil, &mut se)
            } else {
                let mut se = Session::initiate(&evil, config);
                let mut sv = Session::respond(config).with_admission(admission);
                run_session(&mut evil, &mut se, &mut victim, &mut sv)
            };
            assert!(
                matches!(
                    result,
                    Err(SyncError::Refused(Refusal::OwnReplica {
                        claimed: 4,
                        issued: 2,
                        ..
                    }))
                ),
                "victim initiates: {victim_initiates}: {result:?}"
            );
            assert!(victim == before, "nothing of the refused turn was joined");
        }
    }
    // Without a policy the same session joins the forgery: the check above
    // is what stops it.
    let mut victim: Store<String, GCounter> = Store::new();
    let _ = victim.update("k".into(), |c| c.increment(me, 2)).unwrap();
    let mut evil: Store<String, GCounter> = Store::new();
    let _ = evil.update("k".into(), |c| c.increment(me, 4)).unwrap();
    let (_, _) = sync_pair(&mut evil, &mut victim, SessionConfig::default()).unwrap();
    assert_eq!(victim.get(&"k".to_string()).unwrap().value(), 4);
}
