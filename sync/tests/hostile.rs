//! A hostile peer cannot panic a session, loop it, or change the store
//! with a message the session rejects.
//!
//! The tests record honest sessions (a two-sided divergence that goes
//! through symbols, values, summaries and closing deltas with a write in the
//! middle; a one-sided one that ends with the responder's answer; one whose
//! first symbols fall short, so it asks for more and then for the item
//! list when needed; equal stores; a new, empty initiator; a new, empty
//! responder), then bring a fresh pair of
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
//! contents). A hostile node in the simulator then floods two honest ones.
//! Specific hostile messages are in `hostile_messages.rs`; the recorded
//! sessions in `support/transcript.rs`.

#[path = "support/transcript.rs"]
mod transcript;

use accordant_sync::error::SyncError;
use accordant_sync::message::{self, Hello, Message, Root, VERSION};
use accordant_sync::sim::{AntiEntropyConfig, AntiEntropyNode};
use accordant_sync::sim::{LinkConfig, RunOutcome, SimTime, Simulator};
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use transcript::{feed, transcripts, two_sided, varint, Side, Transcript, K, S, V};

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
    // The hostile node speaks the protocol honestly when spoken to, and floods
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
        assert!(
            s.host.messages_ignored + s.host.sessions_failed > 0,
            "{s:?}"
        );
    }
}
