//! A hostile peer cannot panic a session, loop it, or change the store
//! with a message the session rejects.
//!
//! The tests record honest sessions (a two-sided divergence that goes
//! through descent, key lists, values, summaries and a second pass forced
//! by a write in the middle; and a one-sided one that ends with `Done`), then
//! bring a fresh pair of sessions to every step of the transcript by
//! replaying its prefix, so that each hostile input meets a session in every
//! phase it can reach: responder waiting for `Hello`, either side mid-pass,
//! waiting for the verdict, finished. At each step they feed
//!
//! 1. seeded random byte strings of many lengths (half of them with the
//!    right version byte and a valid message tag, to get past the first
//!    checks);
//! 2. the honest message of that step, mutated (bits flipped, bytes
//!    inserted, deleted, overwritten, ranges duplicated, truncated);
//!
//! and check that `handle` never panics and that whenever it returns an
//! error the store is exactly what it was before the call (root digest and
//! contents). Specific cases follow: version, trailing bytes, claimed
//! lengths of 2^60 that must fail fast and allocate nothing, the size limit,
//! messages out of order, a replayed turn, values that decode but are
//! invalid, and a hostile node in the simulator flooding two honest ones.

use std::time::{Duration, Instant};

use accordant::codec::{self, SeqVec};
use accordant::{DecodeError, OrSet, ReplicaId};
use accordant_sync::error::SyncError;
use accordant_sync::key::key_bytes;
use accordant_sync::message::{self, Bytes, Message, NodeSketch, SyncLimits, Turn, VERSION};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::sim::{AntiEntropyConfig, AntiEntropyNode};
use accordant_sync::sim::{LinkConfig, RunOutcome, SimTime, Simulator};
use accordant_sync::store::Store;
use accordant_sync::tree::NodeId;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

type K = u32;
type V = OrSet<u32>;
type S = Store<K, V>;

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

/// Two stores that differ on both sides: keys only one side has, keys both
/// changed, small values (sent whole) and one big set (sent as a summary).
fn two_sided() -> (S, S) {
    let mut base = S::new();
    for k in 0..40u32 {
        for e in 0..3 {
            let _ = base.update(k, |s| s.add(r(1), k * 10 + e));
        }
    }
    for e in 0..120 {
        let _ = base.update(1000, |s| s.add(r(1), e));
    }
    let (mut a, mut b) = (base.clone(), base);
    for k in 0..6 {
        let _ = a.update(k, |s| s.add(r(2), 7));
        let _ = b.update(k + 3, |s| Ok::<_, ()>(s.remove(&((k + 3) * 10))));
    }
    for k in 100..104 {
        let _ = a.update(k, |s| s.add(r(2), k));
    }
    for k in 200..203 {
        let _ = b.update(k, |s| s.add(r(3), k));
    }
    let _ = a.update(1000, |s| s.add(r(2), 5000));
    let _ = b.update(1000, |s| Ok::<_, ()>(s.remove(&17)));
    (a, b)
}

/// The responder has everything the initiator has, and more: the
/// initiator ends up with nothing to send and says `Done`.
fn one_sided() -> (S, S) {
    let (a, _) = two_sided();
    let mut b = a.clone();
    for k in 0..3 {
        let _ = b.update(k, |s| s.add(r(4), 99));
    }
    (a, b)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Initiator,
    Responder,
}

/// An honest session, message by message.
struct Transcript {
    name: &'static str,
    a0: S,
    b0: S,
    /// Before delivering message `.0`, the responder writes to key `.1`.
    write_at: Option<(usize, K)>,
    /// Each message with the side it is delivered to, in order.
    msgs: Vec<(Side, Vec<u8>)>,
}

fn local_write(b: &mut S, key: K) {
    let _ = b.update(key, |s| s.add(r(9), 4242));
}

/// Sessions and stores after the first `k` messages of a transcript.
struct At {
    sa: Session<K, V>,
    sb: Session<K, V>,
    a: S,
    b: S,
}

impl At {
    /// The side a message is delivered to.
    fn side(&mut self, side: Side) -> (&mut Session<K, V>, &mut S) {
        match side {
            Side::Initiator => (&mut self.sa, &mut self.a),
            Side::Responder => (&mut self.sb, &mut self.b),
        }
    }
}

impl Transcript {
    fn record(name: &'static str, (a0, b0): (S, S), write_at: Option<(usize, K)>) -> Self {
        let mut t = Transcript {
            name,
            a0,
            b0,
            write_at,
            msgs: Vec::new(),
        };
        let mut at = t.start();
        loop {
            let next = match (at.sa.poll_transmit(), at.sb.poll_transmit()) {
                (Some(m), None) => (Side::Responder, m),
                (None, Some(m)) => (Side::Initiator, m),
                (None, None) => break,
                (Some(_), Some(_)) => panic!("the session is strict ping-pong"),
            };
            if let Some((_, key)) = t.write_at.filter(|w| w.0 == t.msgs.len()) {
                local_write(&mut at.b, key);
            }
            let (s, store) = at.side(next.0);
            s.handle(store, &next.1).expect("honest");
            t.msgs.push(next);
            assert!(t.msgs.len() < 100, "{name}: runaway");
        }
        assert!(at.sa.is_done() && at.sb.is_done(), "{name}");
        assert_eq!(at.a.root_digest(), at.b.root_digest());
        t
    }

    fn start(&self) -> At {
        At {
            sa: Session::initiate(&self.a0, SessionConfig::default()),
            sb: Session::respond(SessionConfig::default()),
            a: self.a0.clone(),
            b: self.b0.clone(),
        }
    }

    /// Replays the first `k` messages (the outboxes are drained: the
    /// recorded bytes are what was sent).
    fn at(&self, k: usize) -> At {
        let mut at = self.start();
        for (i, (side, m)) in self.msgs[..k].iter().enumerate() {
            while at.sa.poll_transmit().is_some() {}
            while at.sb.poll_transmit().is_some() {}
            if let Some((_, key)) = self.write_at.filter(|w| w.0 == i) {
                local_write(&mut at.b, key);
            }
            let (s, store) = at.side(*side);
            s.handle(store, m).expect("replay");
        }
        at
    }

    /// The message kinds, for coverage.
    fn kinds(&self) -> Vec<&'static str> {
        self.msgs
            .iter()
            .map(|(_, m)| match message::decode(m, &SyncLimits::default()) {
                Ok(Message::Hello { .. }) => "Hello",
                Ok(Message::Turn(_)) => "Turn",
                Ok(Message::Done { .. }) => "Done",
                Ok(Message::Verified { .. }) => "Verified",
                Err(_) => "?",
            })
            .collect()
    }
}

/// A two-sided session in which the responder takes a write that the pass
/// does not pick up (in a part of the tree already compared), so the roots
/// differ at the end and a second pass runs.
fn two_passes() -> Transcript {
    for step in 2..8 {
        for key in 5000..5050 {
            let t = Transcript::record("two-sided, two passes", two_sided(), Some((step, key)));
            if t.kinds()[1..].contains(&"Hello") {
                return t;
            }
        }
    }
    panic!("no write forces a second pass");
}

fn transcripts() -> Vec<Transcript> {
    vec![
        two_passes(),
        Transcript::record("one-sided", one_sided(), None),
    ]
}

/// Feeds `bytes` to the side `side` of `at` and checks the contract: on
/// error, the store is exactly as before and the session is failed.
fn feed(at: &mut At, side: Side, bytes: &[u8]) -> Result<(), SyncError> {
    let (s, store) = at.side(side);
    let before = store.clone();
    let root = store.root_digest();
    let result = s.handle(store, bytes);
    if let Err(e) = &result {
        assert_eq!(store.root_digest(), root, "{e}: root changed");
        assert!(*store == before, "{e}: contents changed");
        if *e != SyncError::Finished {
            assert!(!s.is_done() && s.is_failed(), "{e}: the session failed");
        }
        assert!(
            s.handle(store, bytes).is_err(),
            "{e}: a failed session takes nothing more"
        );
    }
    result
}

#[test]
fn transcripts_reach_every_phase() {
    let ts = transcripts();
    let kinds: Vec<Vec<&str>> = ts.iter().map(Transcript::kinds).collect();
    eprintln!("{:?}", kinds);
    let all: Vec<&str> = kinds.concat();
    for k in ["Hello", "Turn", "Done", "Verified"] {
        assert!(all.contains(&k), "no {k} in {kinds:?}");
    }
    // The write forced a second pass: a Hello after the first message.
    assert!(kinds[0][1..].contains(&"Hello"), "{:?}", kinds[0]);
    // Both sides receive messages.
    for t in &ts {
        assert!(t.msgs.iter().any(|(s, _)| *s == Side::Initiator));
        assert!(t.msgs.iter().any(|(s, _)| *s == Side::Responder));
    }
}

/// Multiplies the number of random and mutated inputs per step (default 1;
/// `ACCORDANT_HOSTILE_SCALE=50 cargo test --release --test hostile` for a
/// deeper run).
fn scale() -> usize {
    std::env::var("ACCORDANT_HOSTILE_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

const LENGTHS: [usize; 22] = [
    0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 33, 34, 35, 36, 37, 40, 64, 100, 255, 1000, 4096, 70_000,
];

fn random_message(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = LENGTHS[rng.random_range(0..LENGTHS.len())];
    let mut m = vec![0u8; len];
    rng.fill_bytes(&mut m);
    if len >= 2 && rng.random_bool(0.5) {
        // Past the version check, into a message of a real kind.
        m[0] = VERSION;
        m[1] = rng.random_range(0..4);
        // Small lengths and counts are likelier to parse further.
        for b in m.iter_mut().skip(2) {
            if rng.random_bool(0.5) {
                *b &= 0x0f;
            }
        }
    }
    m
}

#[test]
fn random_bytes_never_panic_in_any_phase() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut inputs, mut accepted) = (0, 0);
    for t in transcripts() {
        // Every step, and once more after the end (both sides finished).
        for k in 0..=t.msgs.len() {
            for _ in 0..12 * scale() {
                let bytes = random_message(&mut rng);
                for side in [Side::Initiator, Side::Responder] {
                    let mut at = t.at(k);
                    inputs += 1;
                    let result = feed(&mut at, side, &bytes);
                    if k == t.msgs.len() {
                        assert_eq!(result, Err(SyncError::Finished), "{}", t.name);
                    }
                    accepted += usize::from(result.is_ok());
                }
            }
        }
    }
    eprintln!("{inputs} random inputs, {accepted} accepted");
    assert!(
        accepted * 100 < inputs,
        "random bytes are almost never valid"
    );
}

/// One seeded mutation of an honest message.
fn mutate(rng: &mut ChaCha8Rng, m: &[u8]) -> Vec<u8> {
    let mut m = m.to_vec();
    for _ in 0..rng.random_range(1..=3) {
        let len = m.len();
        let at = rng.random_range(0..=len);
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = at.min(len - 1);
                m[i] ^= 1 << rng.random_range(0..8);
            }
            1 => m.insert(at, rng.random()),
            2 if len > 0 => {
                m.remove(at.min(len - 1));
            }
            3 => m.truncate(at),
            4 if len > 0 => {
                let i = at.min(len - 1);
                m[i] = [0x00, 0x7f, 0x80, 0xff][rng.random_range(0..4)];
            }
            5 if len > 0 => {
                let start = rng.random_range(0..len);
                let end = rng.random_range(start..=len.min(start + 16));
                let chunk = m[start..end].to_vec();
                m.splice(at..at, chunk);
            }
            _ => {
                // A length-like byte claiming far more than there is.
                m.insert(at, 0xff);
                m.insert(at, 0xff);
            }
        }
    }
    m
}

#[test]
fn mutated_honest_messages_never_panic_nor_change_the_store_on_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (mut inputs, mut errors) = (0, 0);
    for t in transcripts() {
        for (k, (side, honest)) in t.msgs.iter().enumerate() {
            for _ in 0..24 * scale() {
                let bytes = mutate(&mut rng, honest);
                let mut at = t.at(k);
                inputs += 1;
                if feed(&mut at, *side, &bytes).is_err() {
                    errors += 1;
                }
            }
        }
    }
    eprintln!("{inputs} mutated messages, {errors} rejected");
    assert!(errors * 2 > inputs, "most mutations must be rejected");
}

// ----------------------------------------------------------- specific cases

fn hello(t: &Transcript) -> Vec<u8> {
    t.msgs[0].1.clone()
}

/// The first Turn delivered to the responder, and its index.
fn turn_to_responder(t: &Transcript) -> (usize, Vec<u8>) {
    t.msgs
        .iter()
        .enumerate()
        .find(|(_, (s, m))| {
            *s == Side::Responder
                && matches!(
                    message::decode(m, &SyncLimits::default()),
                    Ok(Message::Turn(_))
                )
        })
        .map(|(i, (_, m))| (i, m.clone()))
        .expect("a turn to the responder")
}

#[test]
fn wrong_version_and_trailing_bytes() {
    let t = Transcript::record("two-sided", two_sided(), None);
    for v in [0u8, 1, 3, 0xff] {
        let mut m = hello(&t);
        m[0] = v;
        let mut at = t.at(0);
        assert_eq!(
            feed(&mut at, Side::Responder, &m),
            Err(SyncError::Version(v))
        );
    }
    for (k, (side, honest)) in t.msgs.iter().enumerate() {
        let mut m = honest.clone();
        m.push(0);
        let mut at = t.at(k);
        assert_eq!(
            feed(&mut at, *side, &m),
            Err(SyncError::Malformed("trailing bytes")),
            "message {k}"
        );
    }
    let mut at = t.at(0);
    assert!(matches!(
        feed(&mut at, Side::Responder, &[]),
        Err(SyncError::Malformed(_))
    ));
}

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

/// Peak virtual memory of this process, in kB (Linux only).
fn vm_peak_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmPeak:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn claimed_lengths_of_2_pow_60_fail_fast_without_allocating() {
    let t = Transcript::record("two-sided", two_sided(), None);
    let huge = varint(1 << 60);
    let cat = |parts: &[&[u8]]| parts.concat();
    let key = key_bytes(&7u32);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("fingerprint lists", cat(&[&[VERSION, 1], &huge])),
        ("item lists", cat(&[&[VERSION, 1, 0], &huge])),
        ("wanted keys", cat(&[&[VERSION, 1, 0, 0], &huge])),
        ("joins", cat(&[&[VERSION, 1, 0, 0, 0], &huge])),
        ("replies", cat(&[&[VERSION, 1, 0, 0, 0, 0, 0, 0], &huge])),
        ("a key's bytes", cat(&[&[VERSION, 1, 0, 0, 0, 1], &huge])),
        (
            "a value's context",
            cat(&[
                &[VERSION, 1, 0, 0, 0, 1],
                &varint(key.len() as u64),
                &key,
                &varint(huge.len() as u64),
                &huge,
                &[0, 0, 0, 0],
            ]),
        ),
        (
            "a value's elements",
            cat(&[
                &[VERSION, 1, 0, 0, 0, 1],
                &varint(key.len() as u64),
                &key,
                &varint(1 + huge.len() as u64),
                &[0],
                &huge,
                &[0, 0, 0, 0],
            ]),
        ),
    ];
    let (k, _) = turn_to_responder(&t);
    let peak_before = vm_peak_kb();
    for (what, bytes) in &cases {
        assert!(bytes.len() < 40, "{what}: a few bytes");
        for step in [0, k] {
            let mut at = t.at(step);
            let start = Instant::now();
            let result = feed(&mut at, Side::Responder, bytes);
            let took = start.elapsed();
            assert!(result.is_err(), "{what} at step {step}: accepted");
            assert!(took < Duration::from_millis(500), "{what}: took {took:?}");
        }
    }
    // A count is only a hint: a Hello claiming 2^64 - 1 keys is answered
    // at once, with fingerprints of our own tree.
    let mut m = vec![VERSION, 0, 0];
    m.extend_from_slice(&[0xab; 32]);
    m.extend(varint(u64::MAX));
    let mut at = t.at(0);
    let start = Instant::now();
    feed(&mut at, Side::Responder, &m).expect("a valid Hello");
    assert!(start.elapsed() < Duration::from_millis(500));
    let reply = at.sb.poll_transmit().expect("an answer");
    assert!(reply.len() < 4096, "{} bytes", reply.len());
    if let (Some(before), Some(after)) = (peak_before, vm_peak_kb()) {
        // Parallel tests share the process: allow them some, but not a GB.
        assert!(
            after - before < 512 * 1024,
            "peak virtual memory grew by {} MB",
            (after - before) / 1024
        );
    }
}

#[test]
fn a_message_over_the_size_limit_is_refused_before_decoding() {
    // A new replica receives every value in one turn: make it big.
    let (a, _) = two_sided();
    let mut empty = S::new();
    let mut limits = SyncLimits::default().with_max_message_bytes(1000);
    limits.max_turns = 10;
    let mut small = SessionConfig::default();
    small.limits = limits;
    let mut si = Session::initiate(&empty, small);
    let mut sr = Session::respond(SessionConfig::default());
    let mut full = a.clone();
    sr.handle(&mut full, &si.poll_transmit().expect("hello"))
        .expect("hello");
    let big = sr.poll_transmit().expect("all values");
    assert!(big.len() > 1000, "{} bytes", big.len());
    let before = empty.clone();
    assert_eq!(
        si.handle(&mut empty, &big),
        Err(SyncError::TooLarge {
            len: big.len(),
            limit: 1000
        })
    );
    assert!(empty == before && empty.is_empty());
    assert!(si.is_failed());
}

#[test]
fn messages_out_of_order_are_refused() {
    let t = Transcript::record("two-sided", two_sided(), None);
    let (k, turn) = turn_to_responder(&t);
    // A Turn before Hello.
    let mut at = t.at(0);
    assert_eq!(
        feed(&mut at, Side::Responder, &turn),
        Err(SyncError::Unexpected("expected Hello"))
    );
    // A Hello in the middle of a pass (the responder is running).
    let mut at = t.at(k);
    assert_eq!(
        feed(&mut at, Side::Responder, &hello(&t)),
        Err(SyncError::Unexpected("Hello in the middle of a pass"))
    );
    // The initiator never accepts a Hello, nor its own messages back.
    let mut at = t.at(1);
    assert!(feed(&mut at, Side::Initiator, &hello(&t)).is_err());
    // Every message delivered to the wrong side, at every step.
    for (i, (side, m)) in t.msgs.iter().enumerate() {
        let wrong = match side {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        };
        let mut at = t.at(i);
        let _ = feed(&mut at, wrong, m);
    }
    // A message delivered twice: a duplicate Hello or verdict fails the
    // session; a duplicate Turn is a valid turn again (joins are
    // idempotent) and is bounded by `max_turns`, see the replay test.
    let mut failed = 0;
    for (i, (side, m)) in t.msgs.iter().enumerate() {
        let mut at = t.at(i + 1);
        failed += usize::from(feed(&mut at, *side, m).is_err());
    }
    assert!(failed > 0);
}

#[test]
fn a_replayed_turn_ends_the_session_within_max_turns() {
    let t = Transcript::record("two-sided", two_sided(), None);
    let max_turns = SyncLimits::default().max_turns;
    for (k, (side, m)) in t.msgs.iter().enumerate() {
        if !matches!(
            message::decode(m, &SyncLimits::default()),
            Ok(Message::Turn(_))
        ) {
            continue;
        }
        let mut at = t.at(k);
        let mut after_first = None;
        let mut ended = None;
        for n in 1..=max_turns as usize + 2 {
            let result = feed(&mut at, *side, m);
            let (_, store) = at.side(*side);
            if n == 1 {
                after_first = Some(store.clone());
            } else {
                // Joins are idempotent: the replays add nothing.
                assert!(
                    Some(&*store) == after_first.as_ref(),
                    "replay {n} changed the store"
                );
            }
            if let Err(e) = result {
                ended = Some((n, e));
                break;
            }
        }
        let (n, e) = ended.expect("the replay must end");
        // At most `max_turns` messages per pass are accepted, counting
        // the honest ones before the replay.
        assert!(n <= max_turns as usize + 1, "ended after {n} replays: {e}");
        eprintln!("turn {k} replayed: ended after {n} with {e}");
    }
}

/// An OR-Set value whose only dot is outside its causal context: it decodes
/// as bytes, but not as a state.
fn dot_outside_context() -> Vec<u8> {
    let mut s = V::new();
    let _ = s.add(r(1), 5);
    let mut bytes = codec::encode(&s);
    // ... (store: replica #0's live dots, 1 run: gap 0, length 1; 1 element, 5).
    assert_eq!(bytes[bytes.len() - 5..], [1, 0, 0, 1, 5]);
    let gap = bytes.len() - 4;
    bytes[gap] = 1;
    assert!(matches!(
        codec::decode::<V>(&bytes, &Default::default()),
        Err(DecodeError::Invalid(_))
    ));
    bytes
}

#[test]
fn values_that_decode_but_are_invalid_fail_with_a_typed_error_and_change_nothing() {
    let t = Transcript::record("two-sided", two_sided(), None);
    let (k, _) = turn_to_responder(&t);
    let bad = Bytes(dot_outside_context());
    let mut good_value = V::new();
    let _ = good_value.add(r(5), 77);
    let good = (
        Bytes(key_bytes(&9999u32)),
        Bytes(codec::encode(&good_value)),
    );
    let key = Bytes(key_bytes(&7u32));
    let mut summary = V::new();
    let _ = summary.add(r(1), 1);
    let summary = Bytes(codec::encode(summary.context()));
    let turns = [
        (
            "join",
            Turn {
                joins: SeqVec(vec![good.clone(), (key.clone(), bad.clone())]),
                ..Turn::default()
            },
        ),
        (
            "full value",
            Turn {
                joins: SeqVec(vec![good.clone()]),
                fulls: SeqVec(vec![(key.clone(), bad.clone())]),
                ..Turn::default()
            },
        ),
        (
            "delta",
            Turn {
                joins: SeqVec(vec![good.clone()]),
                replies: SeqVec(vec![(key.clone(), bad.clone(), summary.clone())]),
                ..Turn::default()
            },
        ),
        (
            "summary",
            Turn {
                joins: SeqVec(vec![good.clone()]),
                summaries: SeqVec(vec![(key.clone(), Bytes(vec![0xff]))]),
                ..Turn::default()
            },
        ),
    ];
    for (what, turn) in turns {
        let bytes = message::encode(&Message::Turn(turn));
        for step in [1, k] {
            let side = t.msgs[step].0;
            let mut at = t.at(step);
            let result = feed(&mut at, side, &bytes);
            assert!(
                matches!(result, Err(SyncError::Value { .. })),
                "{what} at step {step}: {result:?}"
            );
            let (_, store) = at.side(side);
            assert!(store.get(&9999).is_none(), "the valid part was not applied");
        }
    }
    // A key with bytes after it, and a key that is not a u32.
    for bad_key in [vec![7, 0], vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff]] {
        let turn = Turn {
            joins: SeqVec(vec![
                good.clone(),
                (Bytes(bad_key), Bytes(codec::encode(&good_value))),
            ]),
            ..Turn::default()
        };
        let mut at = t.at(k);
        let result = feed(
            &mut at,
            Side::Responder,
            &message::encode(&Message::Turn(turn)),
        );
        assert!(
            matches!(result, Err(SyncError::Value { what: "key", .. })),
            "{result:?}"
        );
    }
}

#[test]
fn malformed_or_garbage_sketches_fail_cleanly_or_fall_back() {
    let t = Transcript::record("two-sided", two_sided(), None);
    let (k, _) = turn_to_responder(&t);
    let good = (
        Bytes(key_bytes(&9999u32)),
        Bytes(codec::encode(&{
            let mut v = V::new();
            let _ = v.add(r(5), 77);
            v
        })),
    );
    let sketch = |level: u8, bitmap: usize, cells: Vec<u8>| Turn {
        joins: SeqVec(vec![good.clone()]),
        sketches: SeqVec(vec![NodeSketch {
            node: NodeId::ROOT,
            level,
            children: Bytes(vec![0xff; bitmap]),
            cells: Bytes(cells),
        }]),
        ..Turn::default()
    };
    let malformed = [
        ("level 0", sketch(0, 2, vec![0; 40])),
        ("level 3", sketch(3, 512, vec![0; 40])),
        ("bitmap length", sketch(1, 3, vec![0; 40])),
        ("no cells", sketch(1, 2, vec![])),
        ("a partial cell", sketch(1, 2, vec![0; 41])),
        ("cells not a multiple of 4", sketch(1, 2, vec![0; 30])),
    ];
    for (what, turn) in malformed {
        let mut at = t.at(k);
        let result = feed(
            &mut at,
            Side::Responder,
            &message::encode(&Message::Turn(turn)),
        );
        assert!(
            matches!(result, Err(SyncError::Malformed(_))),
            "{what}: {result:?}"
        );
        let (_, store) = at.side(Side::Responder);
        assert!(store.get(&9999).is_none(), "{what}: nothing applied");
    }
    // Well-formed tables of garbage: they peel into nonsense or not at all;
    // either way the receiver answers (a fall-back descent, values, wants)
    // without panicking, and the session can still fail only cleanly.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for round in 0..64 {
        let cells = 4 * (1 + round % 8);
        let mut bytes = vec![0u8; cells * 10];
        rng.fill_bytes(&mut bytes);
        if round % 2 == 0 {
            // Counts of +-1 make cells look pure more often.
            for c in bytes.chunks_mut(10) {
                c[0] = if rng.random() { 1 } else { 0xff };
            }
        }
        let mut at = t.at(k);
        let turn = sketch(
            if round % 3 == 0 { 2 } else { 1 },
            if round % 3 == 0 { 32 } else { 2 },
            bytes,
        );
        let _ = feed(
            &mut at,
            Side::Responder,
            &message::encode(&Message::Turn(turn)),
        );
    }
}

// ------------------------------------------------- a hostile simulator node

#[test]
fn a_hostile_node_cannot_stop_honest_ones_from_converging() {
    let (a, b) = two_sided();
    let mut expected = a.clone();
    for (k, v) in b.iter() {
        expected.join(k, &v);
    }
    let mut sim = Simulator::new(5);
    sim.set_default_link(LinkConfig::wan(SimTime::from_millis(100)).with_loss(0.05));
    let config = AntiEntropyConfig::default()
        .with_interval(SimTime::from_millis(200))
        .with_timeout(SimTime::from_millis(500));
    let na = sim.add_node(AntiEntropyNode::new(a, config));
    let nb = sim.add_node(AntiEntropyNode::new(b, config));
    // The hostile node speaks the driver honestly when spoken to, and floods
    // on the side.
    let evil = sim.add_node(AntiEntropyNode::new(
        S::new(),
        config.with_interval(SimTime::ZERO),
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let honest_a_session = |rng: &mut ChaCha8Rng| (u64::from(na.0) << 32) | rng.random_range(0..64);
    let deadline = SimTime::from_secs(30);
    let mut counter = 1u64;
    let outcome = loop {
        for _ in 0..4 {
            let to = if rng.random_bool(0.5) { na } else { nb };
            let mut m = Vec::new();
            match rng.random_range(0..5) {
                0 => m = random_message(&mut rng),
                1 => {
                    // A new session from the hostile node, with garbage.
                    counter += 1;
                    m.extend(varint((u64::from(evil.0) << 32) | counter));
                    m.extend([1, 0]);
                    m.extend(random_message(&mut rng));
                }
                2 => {
                    // Forged: a reply in someone else's session.
                    m.extend(varint(honest_a_session(&mut rng)));
                    m.extend([2, rng.random_range(0..8)]);
                    m.extend(random_message(&mut rng));
                }
                3 => {
                    // Forged aborts, in its own name and others'.
                    m.extend(varint(if rng.random_bool(0.5) {
                        honest_a_session(&mut rng)
                    } else {
                        (u64::from(evil.0) << 32) | counter
                    }));
                    m.extend([3, 0]);
                }
                _ => {
                    // A valid header with a Hello-like payload.
                    counter += 1;
                    m.extend(varint((u64::from(evil.0) << 32) | counter));
                    m.extend([1, 0, VERSION, 0, 0]);
                    let mut root = [0u8; 32];
                    rng.fill_bytes(&mut root);
                    m.extend(root);
                    m.extend(varint(rng.random()));
                }
            }
            sim.send_from(evil, to, m);
        }
        let stop = sim.now() + SimTime::from_millis(20);
        let done = |s: &Simulator<AntiEntropyNode<K, V>>| {
            [na, nb].iter().all(|&id| {
                s.node(id).map(|n| n.store().root_digest()) == Some(expected.root_digest())
            })
        };
        match sim.run_until(stop, done) {
            RunOutcome::Condition => break RunOutcome::Condition,
            _ if sim.now() >= deadline => break RunOutcome::Deadline,
            _ => {}
        }
    };
    assert_eq!(
        outcome,
        RunOutcome::Condition,
        "honest nodes did not converge"
    );
    for id in [na, nb] {
        let node = sim.node(id).expect("node");
        assert!(*node.store() == expected);
        let s = node.stats();
        assert!(
            s.host.messages_ignored + s.host.sessions_failed > 0,
            "{s:?}"
        );
    }
}
