//! A hostile peer cannot panic a session, loop it, or change the store
//! with a message the session rejects.
//!
//! The tests record honest sessions (a two-sided divergence that goes
//! through symbols, values, summaries and closing deltas with a write in the
//! middle; a one-sided one that ends with the responder's answer; one whose
//! first symbols fall short, so it asks for more and then for the item
//! list; equal stores; a new, empty initiator), then bring a fresh pair of
//! sessions to every step of the transcript by replaying its prefix, so
//! that each hostile input meets a session in every phase it can reach:
//! responder waiting for `Hello`, initiator decoding symbols or a list,
//! responder waiting for the offer or the close, initiator waiting for the
//! answer, finished. At each step they feed
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
//! messages out of order, a replayed message, values that decode but are
//! invalid, hostile symbols (malformed, garbage, beyond what was asked,
//! never ending), truncated streams, and a hostile node in the simulator
//! flooding two honest ones.

use std::time::{Duration, Instant};

use accordant::codec::{self, SeqVec};
use accordant::{DecodeError, OrSet, ReplicaId};
use accordant_sync::driver::{AntiEntropyNode, DriverConfig};
use accordant_sync::error::SyncError;
use accordant_sync::key::key_bytes;
use accordant_sync::message::{
    self, Answer, Bytes, Close, Coded, Hello, KeySummary, KeyValue, Message, More, Offer, Reply,
    Root, Symbols, SyncLimits, VERSION,
};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::sim::{LinkConfig, RunOutcome, SimTime, Simulator};
use accordant_sync::sketch::SYMBOL_BYTES;
use accordant_sync::store::Store;
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
    for k in 0..400u32 {
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
    for k in 1100..1104 {
        let _ = a.update(k, |s| s.add(r(2), k));
    }
    for k in 1200..1203 {
        let _ = b.update(k, |s| s.add(r(3), k));
    }
    let _ = a.update(1000, |s| s.add(r(2), 5000));
    let _ = b.update(1000, |s| Ok::<_, ()>(s.remove(&17)));
    (a, b)
}

/// The responder has everything the initiator has, and more: the
/// initiator only wants, and the responder's answer ends the session.
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
    config: SessionConfig,
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
        Self::record_with(name, SessionConfig::default(), (a0, b0), write_at)
    }

    fn record_with(
        name: &'static str,
        config: SessionConfig,
        (a0, b0): (S, S),
        write_at: Option<(usize, K)>,
    ) -> Self {
        let mut t = Transcript {
            name,
            config,
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
        if t.write_at.is_none() {
            assert_eq!(at.a.root_digest(), at.b.root_digest());
        }
        t
    }

    fn start(&self) -> At {
        At {
            sa: Session::initiate(&self.a0, self.config),
            sb: Session::respond(self.config),
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
                Ok(msg) => msg.name(),
                Err(_) => "?",
            })
            .collect()
    }

    /// The first message of `kind` delivered to `side`, and its index.
    fn find(&self, side: Side, kind: &str) -> (usize, Vec<u8>) {
        self.msgs
            .iter()
            .enumerate()
            .find(|(i, (s, _))| *s == side && self.kinds()[*i] == kind)
            .map(|(i, (_, m))| (i, m.clone()))
            .unwrap_or_else(|| panic!("{}: no {kind} to the {side:?}", self.name))
    }
}

/// A first batch of symbols far too small: the initiator asks for more,
/// twice, then for the item list.
fn extended() -> Transcript {
    let mut config = SessionConfig::default();
    config.margin_percent = 1;
    Transcript::record_with("two-sided, extended", config, two_sided(), None)
}

fn transcripts() -> Vec<Transcript> {
    let (a, _) = two_sided();
    vec![
        // The responder writes after the Hello, and again before the close.
        Transcript::record("two-sided, under load", two_sided(), Some((1, 5000))),
        Transcript::record("one-sided", one_sided(), None),
        extended(),
        Transcript::record("equal", (a.clone(), a.clone()), None),
        Transcript::record("new initiator", (S::new(), a.clone()), None),
        // An empty responder lists its (no) items.
        Transcript::record("new responder", (a, S::new()), None),
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
        // The one error after applying: a final root that does not match
        // (the message's values were valid; only the comparison failed).
        if *e != SyncError::NotConverged(1) {
            assert_eq!(store.root_digest(), root, "{e}: root changed");
            assert!(*store == before, "{e}: contents changed");
        }
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
    eprintln!("{kinds:?}");
    let all: Vec<&str> = kinds.concat();
    for k in [
        "Hello", "InSync", "Symbols", "Items", "More", "Offer", "Answer", "Close",
    ] {
        assert!(all.contains(&k), "no {k} in {kinds:?}");
    }
    // The extended session asked for more symbols, then for the list.
    let more = kinds[2].iter().filter(|k| **k == "More").count();
    assert!(more >= 2, "{:?}", kinds[2]);
    assert_eq!(kinds[2][1], "Symbols", "{:?}", kinds[2]);
    assert!(kinds[0].contains(&"Symbols"), "{:?}", kinds[0]);
    // Both sides receive messages in the sessions that differ.
    for t in &ts[..3] {
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
        m[1] = rng.random_range(0..8);
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

/// The two-sided transcript without writes.
fn two_sided_t() -> Transcript {
    Transcript::record("two-sided", two_sided(), None)
}

#[test]
fn wrong_version_and_trailing_bytes() {
    let t = two_sided_t();
    for v in [0u8, 1, 2, 4, 0xff] {
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
    let t = two_sided_t();
    let huge = varint(1 << 60);
    let cat = |parts: &[&[u8]]| parts.concat();
    let key = key_bytes(&7u32);
    // Message tags: Symbols 2, Items 3, Offer 5, Answer 6, Close 7.
    let to_responder: Vec<(&str, Vec<u8>)> = vec![
        ("offered values", cat(&[&[VERSION, 5], &huge])),
        ("offered full values", cat(&[&[VERSION, 5, 0], &huge])),
        ("offered summaries", cat(&[&[VERSION, 5, 0, 0], &huge])),
        ("wanted ids", cat(&[&[VERSION, 5, 0, 0, 0], &huge])),
        ("a key's bytes", cat(&[&[VERSION, 5, 1], &huge])),
        ("closing deltas", cat(&[&[VERSION, 7], &huge])),
        (
            "a value's context",
            cat(&[
                &[VERSION, 5, 1],
                &varint(key.len() as u64),
                &key,
                &varint(huge.len() as u64),
                &huge,
                &[0, 0, 0, 0, 0],
            ]),
        ),
        (
            "a value's elements",
            cat(&[
                &[VERSION, 5, 1],
                &varint(key.len() as u64),
                &key,
                &varint(1 + huge.len() as u64),
                &[0],
                &huge,
                &[0, 0, 0, 0, 0],
            ]),
        ),
    ];
    let to_initiator: Vec<(&str, Vec<u8>)> = vec![
        ("symbols", cat(&[&[VERSION, 2, 0, 8, 0, 0], &huge])),
        ("listed ids", cat(&[&[VERSION, 3, 0, 0], &huge])),
        ("answered values", cat(&[&[VERSION, 6], &huge])),
        ("answered deltas", cat(&[&[VERSION, 6, 0], &huge])),
        ("replies", cat(&[&[VERSION, 6, 0, 0], &huge])),
    ];
    let (offer_at, _) = t.find(Side::Responder, "Offer");
    let (answer_at, _) = t.find(Side::Initiator, "Answer");
    let peak_before = vm_peak_kb();
    for (cases, side, steps) in [
        (&to_responder, Side::Responder, [0, offer_at]),
        (&to_initiator, Side::Initiator, [1, answer_at]),
    ] {
        for (what, bytes) in cases {
            assert!(bytes.len() < 40, "{what}: a few bytes");
            for step in steps {
                let mut at = t.at(step);
                let start = Instant::now();
                let result = feed(&mut at, side, bytes);
                let took = start.elapsed();
                assert!(result.is_err(), "{what} at step {step}: accepted");
                assert!(took < Duration::from_millis(500), "{what}: took {took:?}");
            }
        }
    }
    // A count is only a hint: a Hello claiming 2^64 - 1 keys, with
    // counters of a huge difference, is answered at once, with our list.
    let m = message::encode(&Message::Hello(Hello {
        root: Root([0xab; 32]),
        count: u64::MAX,
        estimator: [0x7f; 24],
    }));
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
    // A new replica receives every value in the first answer: make it big.
    let (a, _) = two_sided();
    let mut empty = S::new();
    let mut small = SessionConfig::default();
    small.limits = SyncLimits::default().with_max_message_bytes(1000);
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
    let t = two_sided_t();
    let (k, offer) = t.find(Side::Responder, "Offer");
    // An offer before Hello.
    let mut at = t.at(0);
    assert_eq!(
        feed(&mut at, Side::Responder, &offer),
        Err(SyncError::Unexpected("expected Hello"))
    );
    // A Hello in the middle of a session (the responder is waiting).
    let mut at = t.at(k);
    assert_eq!(
        feed(&mut at, Side::Responder, &hello(&t)),
        Err(SyncError::Unexpected("Hello in the middle of a session"))
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
        assert!(
            feed(&mut at, wrong, m).is_err(),
            "message {i} to the wrong side"
        );
    }
}

#[test]
fn a_replayed_message_is_refused_at_once_and_changes_nothing() {
    // Every turn moves the session on: the same message again is out of
    // order (or, after the last, for a finished session).
    for t in transcripts() {
        for (k, (side, m)) in t.msgs.iter().enumerate() {
            let mut at = t.at(k + 1);
            let (_, store) = at.side(*side);
            let before = store.clone();
            let result = feed(&mut at, *side, m);
            assert!(result.is_err(), "{}: message {k} accepted twice", t.name);
            let (_, store) = at.side(*side);
            assert!(*store == before, "{}: the replay changed the store", t.name);
        }
    }
}

/// An OR-Set value whose only dot is outside its causal context: it decodes
/// as bytes, but not as a state.
fn dot_outside_context() -> Vec<u8> {
    let mut s = V::new();
    let _ = s.add(r(1), 5);
    let mut bytes = codec::encode(&s);
    // ... (store: 1 element, 5, 1 dot, replica #0, counter 1).
    assert_eq!(bytes[bytes.len() - 5..], [1, 5, 1, 0, 1]);
    let last = bytes.len() - 1;
    bytes[last] = 2;
    assert!(matches!(
        codec::decode::<V>(&bytes, &Default::default()),
        Err(DecodeError::Invalid(_))
    ));
    bytes
}

#[test]
fn values_that_decode_but_are_invalid_fail_with_a_typed_error_and_change_nothing() {
    let t = two_sided_t();
    let (offer_at, _) = t.find(Side::Responder, "Offer");
    let (answer_at, _) = t.find(Side::Initiator, "Answer");
    let (close_at, _) = t.find(Side::Responder, "Close");
    let bad = Bytes(dot_outside_context());
    let mut good_value = V::new();
    let _ = good_value.add(r(5), 77);
    let good = KeyValue {
        key: Bytes(key_bytes(&9999u32)),
        value: Bytes(codec::encode(&good_value)),
    };
    let bad_kv = KeyValue {
        key: Bytes(key_bytes(&7u32)),
        value: bad.clone(),
    };
    let cases: Vec<(&str, usize, Side, Message)> = vec![
        (
            "offered value",
            offer_at,
            Side::Responder,
            Message::Offer(Offer {
                joins: SeqVec(vec![good.clone(), bad_kv.clone()]),
                ..Offer::default()
            }),
        ),
        (
            "offered full value",
            offer_at,
            Side::Responder,
            Message::Offer(Offer {
                joins: SeqVec(vec![good.clone()]),
                fulls: SeqVec(vec![bad_kv.clone()]),
                ..Offer::default()
            }),
        ),
        (
            "offered summary",
            offer_at,
            Side::Responder,
            Message::Offer(Offer {
                joins: SeqVec(vec![good.clone()]),
                summaries: SeqVec(vec![KeySummary {
                    key: Bytes(key_bytes(&7u32)),
                    summary: Bytes(vec![0xff]),
                }]),
                ..Offer::default()
            }),
        ),
        (
            "answered value",
            answer_at,
            Side::Initiator,
            Message::Answer(Answer {
                joins: SeqVec(vec![good.clone(), bad_kv.clone()]),
                ..Answer::default()
            }),
        ),
        (
            "answered delta",
            answer_at,
            Side::Initiator,
            Message::Answer(Answer {
                joins: SeqVec(vec![good.clone()]),
                replies: SeqVec(vec![Reply {
                    delta: bad.clone(),
                    summary: None,
                }]),
                ..Answer::default()
            }),
        ),
        (
            "closing delta",
            close_at,
            Side::Responder,
            Message::Close(Close {
                deltas: SeqVec(vec![bad.clone()]),
                ..Close::default()
            }),
        ),
    ];
    for (what, step, side, msg) in cases {
        let mut at = t.at(step);
        let result = feed(&mut at, side, &message::encode(&msg));
        assert!(
            matches!(result, Err(SyncError::Value { .. })),
            "{what}: {result:?}"
        );
        let (_, store) = at.side(side);
        assert!(
            store.get(&9999).is_none(),
            "{what}: the valid part was not applied"
        );
    }
    // A key with bytes after it, and a key that is not a u32.
    for bad_key in [vec![7, 0], vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff]] {
        let offer = Offer {
            joins: SeqVec(vec![
                good.clone(),
                KeyValue {
                    key: Bytes(bad_key),
                    value: Bytes(codec::encode(&good_value)),
                },
            ]),
            ..Offer::default()
        };
        let mut at = t.at(offer_at);
        let result = feed(
            &mut at,
            Side::Responder,
            &message::encode(&Message::Offer(offer)),
        );
        assert!(matches!(result, Err(SyncError::Value { .. })), "{result:?}");
    }
    // An offer that says it is the last message but asks for answers: the
    // initiator would never read them. Refused whole.
    let finishing = Message::Offer(Offer {
        joins: SeqVec(vec![good.clone()]),
        fulls: SeqVec(vec![KeyValue {
            key: Bytes(key_bytes(&7u32)),
            value: Bytes(codec::encode(&good_value)),
        }]),
        finish: Some(message::Finish {
            root: Root([0; 32]),
            quiet: false,
        }),
        ..Offer::default()
    });
    let mut at = t.at(offer_at);
    assert_eq!(
        feed(&mut at, Side::Responder, &message::encode(&finishing)),
        Err(SyncError::Malformed("offer: finished but asks for answers"))
    );
    // Answers that do not line up with the offer.
    let (_, honest) = t.find(Side::Initiator, "Answer");
    let Ok(Message::Answer(mut a)) = message::decode(&honest, &SyncLimits::default()) else {
        panic!("an answer")
    };
    a.replies.0.push(Reply {
        delta: Bytes::default(),
        summary: None,
    });
    let mut at = t.at(answer_at);
    assert_eq!(
        feed(
            &mut at,
            Side::Initiator,
            &message::encode(&Message::Answer(a))
        ),
        Err(SyncError::Malformed("answer: more answers than offers"))
    );
}

/// The first `Symbols` to the initiator, decoded, and its index.
fn first_symbols(t: &Transcript) -> (usize, Symbols) {
    let (k, m) = t.find(Side::Initiator, "Symbols");
    match message::decode(&m, &SyncLimits::default()) {
        Ok(Message::Symbols(s)) => (k, s),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_or_garbage_symbols_fail_cleanly_or_fall_back() {
    let t = two_sided_t();
    let (k, honest) = first_symbols(&t);
    let with = |f: &dyn Fn(&mut Symbols)| {
        let mut s = honest.clone();
        f(&mut s);
        message::encode(&Message::Symbols(s))
    };
    let max = SyncLimits::default().max_symbols;
    let malformed = [
        ("not from 0", with(&|s| s.first = 3)),
        ("no reserve", with(&|s| s.reserve = 0)),
        ("a reserve over the limit", with(&|s| s.reserve = max + 1)),
        ("a partial symbol", with(&|s| s.symbols.0.push(0))),
        (
            "more symbols than the reserve",
            with(&|s| {
                s.reserve = 2;
                s.symbols = Bytes(vec![0; 3 * SYMBOL_BYTES]);
            }),
        ),
        ("an empty batch", with(&|s| s.symbols = Bytes(Vec::new()))),
    ];
    for (what, bytes) in malformed {
        let mut at = t.at(k);
        let result = feed(&mut at, Side::Initiator, &bytes);
        assert!(
            matches!(result, Err(SyncError::Malformed(_))),
            "{what}: {result:?}"
        );
    }
    // Well-formed garbage: peeled into nonsense or not at all; either way
    // the initiator asks for more, for the list, or offers what it found,
    // without panicking, and fails only cleanly.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut asked = 0;
    for round in 0..64 {
        let n = 1 + round % 40;
        let mut bytes = vec![0u8; n * SYMBOL_BYTES];
        rng.fill_bytes(&mut bytes);
        if round % 2 == 0 {
            // Counts of ±1 make symbols look pure more often.
            for c in bytes.chunks_mut(SYMBOL_BYTES) {
                c[0] = if rng.random() { 1 } else { 0xff };
            }
        }
        let m = with(&|s| {
            s.symbols = Bytes(bytes.clone());
            s.reserve = 3 * n as u64;
        });
        let mut at = t.at(k);
        if feed(&mut at, Side::Initiator, &m).is_ok() {
            let reply = at.sa.poll_transmit().expect("a reply");
            asked += usize::from(matches!(
                message::decode(&reply, &SyncLimits::default()),
                Ok(Message::More(_))
            ));
        }
    }
    assert!(
        asked > 32,
        "garbage rarely peels: {asked} of 64 asked for more"
    );
}

#[test]
fn a_peer_that_never_stops_sending_symbols_is_cut_off() {
    let t = two_sided_t();
    let (k, honest) = first_symbols(&t);
    let n = (honest.symbols.0.len() / SYMBOL_BYTES) as u64;
    // An endless batch: chunks that always say more, past the reserve.
    let mut at = t.at(k);
    let mut first = 0;
    let mut result = Ok(());
    for _ in 0..1000 {
        let chunk = Symbols {
            first,
            more: true,
            ..honest.clone()
        };
        first += n;
        result = feed(
            &mut at,
            Side::Initiator,
            &message::encode(&Message::Symbols(chunk)),
        );
        if result.is_err() {
            break;
        }
    }
    assert!(
        matches!(
            result,
            Err(SyncError::Malformed("symbols: more than allowed"))
        ),
        "{result:?}"
    );
    assert!(first <= honest.reserve + n, "cut off at the reserve");
    // Symbols nobody asked for, after a complete batch: out of order.
    let mut at = t.at(k + 1);
    let again = Symbols {
        first: n,
        ..honest.clone()
    };
    assert!(feed(
        &mut at,
        Side::Initiator,
        &message::encode(&Message::Symbols(again))
    )
    .is_err());
    // An extension that goes past what was asked.
    let ext = extended();
    let (m, more) = ext.find(Side::Responder, "More");
    let Ok(Message::More(More::Symbols(end))) = message::decode(&more, &SyncLimits::default())
    else {
        panic!("a request for symbols")
    };
    let (_, first_batch) = first_symbols(&ext);
    let got = (first_batch.symbols.0.len() / SYMBOL_BYTES) as u64;
    let over = Symbols {
        first: got,
        symbols: Bytes(vec![0; (end - got + 1) as usize * SYMBOL_BYTES]),
        more: false,
        ..first_batch.clone()
    };
    let mut at = ext.at(m + 1);
    assert_eq!(
        feed(
            &mut at,
            Side::Initiator,
            &message::encode(&Message::Symbols(over))
        ),
        Err(SyncError::Malformed("symbols: more than allowed"))
    );
    // And a responder asked for symbols past its reserve refuses.
    let mut at = ext.at(m);
    let beyond = message::encode(&Message::More(More::Symbols(first_batch.reserve + 1)));
    assert!(feed(&mut at, Side::Responder, &beyond).is_err());
}

#[test]
fn a_truncated_stream_cannot_be_mixed_with_another_turn() {
    // A turn in chunks, cut short by a message of another kind.
    let t = two_sided_t();
    let (k, honest) = first_symbols(&t);
    let part = Symbols {
        more: true,
        ..honest.clone()
    };
    let mut at = t.at(k);
    feed(
        &mut at,
        Side::Initiator,
        &message::encode(&Message::Symbols(part)),
    )
    .expect("a chunk");
    let answer = message::encode(&Message::Answer(Answer::default()));
    assert_eq!(
        feed(&mut at, Side::Initiator, &answer),
        Err(SyncError::Unexpected(
            "another message in the middle of a turn"
        ))
    );
    // A list that claims a state it does not hold.
    let list = message::encode(&Message::Items(message::Items {
        coded: Coded { count: 3, sum: 0 },
        ids: Bytes(vec![0; 8]),
        more: false,
    }));
    let listed = Transcript::record("new responder", (two_sided().0, S::new()), None);
    let (i, _) = listed.find(Side::Initiator, "Items");
    let mut at = listed.at(i);
    assert_eq!(
        feed(&mut at, Side::Initiator, &list),
        Err(SyncError::Malformed(
            "items: the list does not match its state"
        ))
    );
    // Ids out of order.
    let list = message::encode(&Message::Items(message::Items {
        coded: Coded { count: 2, sum: 3 },
        ids: Bytes([2u64.to_be_bytes(), 1u64.to_be_bytes()].concat()),
        more: false,
    }));
    let mut at = listed.at(i);
    assert_eq!(
        feed(&mut at, Side::Initiator, &list),
        Err(SyncError::Malformed("items: out of order"))
    );
}

// ------------------------------------------------- a hostile simulator node

#[test]
fn a_hostile_node_cannot_stop_honest_ones_from_converging() {
    let (a, b) = two_sided();
    let mut expected = a.clone();
    for (k, v) in b.iter() {
        expected.join(*k, v);
    }
    let mut sim = Simulator::new(5);
    sim.set_default_link(LinkConfig::wan(SimTime::from_millis(100)).with_loss(0.05));
    let config = DriverConfig::default()
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
                    // A valid header with a valid Hello of random contents.
                    counter += 1;
                    m.extend(varint((u64::from(evil.0) << 32) | counter));
                    m.extend([1, 0]);
                    let mut root = [0u8; 32];
                    rng.fill_bytes(&mut root);
                    let mut estimator = [0u8; 24];
                    rng.fill_bytes(&mut estimator);
                    m.extend(message::encode(&Message::Hello(Hello {
                        root: Root(root),
                        count: rng.random(),
                        estimator,
                    })));
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
        assert!(s.messages_ignored + s.sessions_failed > 0, "{s:?}");
    }
}
