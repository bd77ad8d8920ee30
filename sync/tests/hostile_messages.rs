//! A hostile peer's specific messages: a wrong version, trailing bytes,
//! claimed lengths of 2^60 that must fail fast and allocate nothing, the
//! size limit, messages out of order, a replayed message, values that
//! decode but are invalid, hostile symbols (malformed, garbage, beyond
//! what was asked, never ending) and truncated streams. Each meets a
//! session brought to the right step of an honest transcript
//! (`support/transcript.rs`), and each failure must leave the store as it
//! was.

#[path = "support/transcript.rs"]
mod transcript;

use std::time::{Duration, Instant};

use accordant::codec::{self, SeqVec};
use accordant::DecodeError;
use accordant_sync::error::SyncError;
use accordant_sync::key::key_bytes;
use accordant_sync::message::{
    self, Answer, Bytes, Close, Coded, Hello, KeySummary, KeyValue, Message, More, Offer, Reply,
    Root, Symbols, SyncLimits, VERSION,
};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::sketch::SYMBOL_BYTES;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transcript::{extended, feed, r, transcripts, two_sided, varint, Side, Transcript, S, V};

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
    let t = two_sided_t();
    let (offer_at, _) = t.find(Side::Responder, "Offer");
    let (answer_at, _) = t.find(Side::Initiator, "Answer");
    let (close_at, _) = t.find(Side::Responder, "Close");
    let bad = Bytes::from(dot_outside_context());
    let mut good_value = V::new();
    let _ = good_value.add(r(5), 77);
    let good = KeyValue {
        key: Bytes::from(key_bytes(&9999u32)),
        value: Bytes::from(codec::encode(&good_value)),
    };
    let bad_kv = KeyValue {
        key: Bytes::from(key_bytes(&7u32)),
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
                    key: Bytes::from(key_bytes(&7u32)),
                    summary: Bytes::from(vec![0xff]),
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
                    key: Bytes::from(bad_key),
                    value: Bytes::from(codec::encode(&good_value)),
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
            key: Bytes::from(key_bytes(&7u32)),
            value: Bytes::from(codec::encode(&good_value)),
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
        (
            "a partial symbol",
            with(&|s| s.symbols.extend_from_slice(&[0])),
        ),
        (
            "more symbols than the reserve",
            with(&|s| {
                s.reserve = 2;
                s.symbols = Bytes::from(vec![0; 3 * SYMBOL_BYTES]);
            }),
        ),
        ("an empty batch", with(&|s| s.symbols = Bytes::new())),
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
            s.symbols = Bytes::from(bytes.clone());
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
    let n = (honest.symbols.len() / SYMBOL_BYTES) as u64;
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
    let got = (first_batch.symbols.len() / SYMBOL_BYTES) as u64;
    let over = Symbols {
        first: got,
        symbols: Bytes::from(vec![0; (end - got + 1) as usize * SYMBOL_BYTES]),
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
        ids: Bytes::from(vec![0; 8]),
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
        ids: Bytes::from([2u64.to_be_bytes(), 1u64.to_be_bytes()].concat()),
        more: false,
    }));
    let mut at = listed.at(i);
    assert_eq!(
        feed(&mut at, Side::Initiator, &list),
        Err(SyncError::Malformed("items: out of order"))
    );
}
