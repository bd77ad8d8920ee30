//! The sync crate's checks: session messages, whole sessions between two
//! stores, store synchronisation, node frames and token pulls.

use super::*;

/// The sync wire decoder: never panics; what it accepts re-encodes to a
/// message that decodes to the same value, and the coded symbols and item
/// lists inside are read (and peeled) in bounded work.
pub fn check_message(data: &[u8]) {
    use accordant_sync::message::{
        decode as decode_msg, encode as encode_msg, Message, SyncLimits,
    };
    use accordant_sync::sketch::{peel, read_symbols};
    let limits = SyncLimits::default().with_max_message_bytes(1 << 16);
    if let Ok(m) = decode_msg(data, &limits) {
        let again = encode_msg(&m);
        assert_eq!(decode_msg(&again, &limits).expect("re-decode"), m);
        match &m {
            // Symbols from a peer: refused or peeled, never a panic.
            Message::Symbols(s) => {
                if let Ok(symbols) = read_symbols(&s.symbols, 1 << 16) {
                    if let Some(d) = peel(&symbols) {
                        assert!(d.len() <= symbols.len(), "no more items than symbols");
                    }
                }
            }
            Message::Hello(h) => {
                let e = accordant_sync::sketch::Estimator::default().estimate(&h.estimator);
                assert!(e.is_finite() && e >= 0.0);
            }
            _ => {}
        }
    }
}

/// Input of the session target: an honest store and what a hostile peer sends.
#[derive(Arbitrary, Debug)]
pub struct SessionInput {
    /// Honest store content: key, replica, amount.
    pub writes: Vec<(u8, u8, u8)>,
    /// Whether the honest side initiates.
    pub initiate: bool,
    /// Raw messages from the peer.
    pub messages: Vec<Vec<u8>>,
    /// An honest peer's store, whose messages are recorded and mutated.
    pub honest_peer_writes: Vec<(u8, u8)>,
    /// Mutations applied to the honest peer's messages: (message, byte, xor).
    pub mutations: Vec<(u8, u16, u8)>,
    /// Local writes between messages: (after message, key, element).
    pub local_writes: Vec<(u8, u8, u8)>,
    /// The first batch's margin, in percent (small values force extensions
    /// and item lists).
    pub margin: u8,
}

/// One honest store against a peer sending arbitrary (and mutated honest)
/// messages, with local writes between them: the session never panics, a
/// rejected message changes nothing (but a final root that does not
/// match, after valid values), and the store always holds valid states.
pub fn check_session(input: &SessionInput) {
    use accordant_sync::error::SyncError;
    use accordant_sync::session::{Session, SessionConfig};
    use accordant_sync::store::Store;
    let mut config = SessionConfig::default();
    config.margin_percent = 1 + u32::from(input.margin);
    let mut honest: Store<u8, OrSet<u8>> = Store::new();
    for (k, r, e) in input.writes.iter().take(64) {
        let _ = honest.update(k % 32, |s| {
            s.add(ReplicaId::from_u128(u128::from(r % 4)), e % 8)
        });
    }
    // An honest peer's messages to our side, recorded, to mutate.
    let mut peer: Store<u8, OrSet<u8>> = Store::new();
    for (k, e) in input.honest_peer_writes.iter().take(64) {
        let _ = peer.update(k % 32, |s| s.add(ReplicaId::from_u128(9), e % 8));
    }
    let mut recorded: Vec<Vec<u8>> = Vec::new();
    {
        let (mut h2, mut p2) = (honest.clone(), peer.clone());
        let (mut sh, mut sp) = if input.initiate {
            (
                Session::initiate(&h2, config),
                Session::<u8, OrSet<u8>>::respond(config),
            )
        } else {
            (
                Session::<u8, OrSet<u8>>::respond(config),
                Session::initiate(&p2, config),
            )
        };
        for _ in 0..16 {
            while let Some(m) = sh.poll_transmit() {
                let _ = sp.handle(&mut p2, &m);
            }
            while let Some(m) = sp.poll_transmit() {
                recorded.push(m.clone());
                let _ = sh.handle(&mut h2, &m);
            }
        }
    }
    for (i, pos, x) in &input.mutations {
        let len = recorded.len().max(1);
        if let Some(m) = recorded.get_mut(usize::from(*i) % len) {
            if !m.is_empty() {
                let p = usize::from(*pos) % m.len();
                m[p] ^= x;
            }
        }
    }
    let mut session = if input.initiate {
        Session::initiate(&honest, config)
    } else {
        Session::respond(config)
    };
    for (n, m) in recorded
        .iter()
        .chain(input.messages.iter())
        .take(64)
        .enumerate()
    {
        for (after, k, e) in &input.local_writes {
            if usize::from(*after) == n {
                let _ = honest.update(k % 32, |s| s.add(ReplicaId::from_u128(3), e % 8));
            }
        }
        let before = honest.clone();
        if let Err(e) = session.handle(&mut honest, m) {
            if e != SyncError::NotConverged(1) {
                assert_eq!(
                    honest.root_digest(),
                    before.root_digest(),
                    "a rejected message changed the store"
                );
                assert!(honest == before);
            }
            assert!(session.is_failed() || e == SyncError::Finished);
        }
        while session.poll_transmit().is_some() {}
    }
    for (_, v) in honest.iter() {
        let bytes = encode(&v);
        let back: OrSet<u8> = decode(&bytes, &Limits::default()).expect("valid state");
        assert_eq!(back, v);
    }
}

/// Input of the store_sync target: two histories and a network.
#[derive(Arbitrary, Debug)]
pub struct StoreSyncInput {
    /// Writes at store A: (key, element, remove?).
    pub a: Vec<(u8, u8, bool)>,
    /// Writes at store B.
    pub b: Vec<(u8, u8, bool)>,
    /// Loss, duplication and reordering, in 1/256ths (capped at ~30%).
    pub loss: u8,
    /// Duplication.
    pub dup: u8,
    /// Reordering.
    pub reorder: u8,
    /// Simulator seed.
    pub seed: u64,
    /// Whether the driver deduplicates messages.
    pub dedupe: bool,
}

/// Two stores with arbitrary histories synchronise through the simulator
/// with arbitrary loss, duplication and reordering, and end equal to the
/// join of both.
pub fn check_store_sync(input: &StoreSyncInput) {
    use accordant_sync::sim::{AntiEntropyConfig, AntiEntropyNode};
    use accordant_sync::sim::{LinkConfig, SimTime, Simulator};
    use accordant_sync::store::Store;
    fn build(ops: &[(u8, u8, bool)], replica: u128) -> Store<u8, OrSet<u8>> {
        let mut s = Store::new();
        for (k, e, rm) in ops.iter().take(48) {
            let _ = s.update(k % 16, |set: &mut OrSet<u8>| {
                if *rm {
                    Ok(set.remove(&(e % 8)))
                } else {
                    set.add(ReplicaId::from_u128(replica), e % 8)
                }
            });
        }
        s
    }
    let (a, b) = (build(&input.a, 1), build(&input.b, 2));
    let mut expected = a.clone();
    for (k, v) in b.iter() {
        expected.join(k, &v);
    }
    let p = |x: u8| f64::from(x % 80) / 256.0;
    let mut sim = Simulator::new(input.seed);
    sim.set_default_link(
        LinkConfig::wan(SimTime::from_millis(50))
            .with_loss(p(input.loss))
            .with_duplicate(p(input.dup))
            .with_reorder(p(input.reorder), SimTime::from_millis(30)),
    );
    let config = AntiEntropyConfig::default()
        .with_interval(SimTime::from_millis(200))
        .with_timeout(SimTime::from_millis(400))
        .with_dedupe(input.dedupe);
    let na = sim.add_node(AntiEntropyNode::new(a, config));
    let nb = sim.add_node(AntiEntropyNode::new(b, config));
    let want = expected.root_digest();
    let _ = sim.run_until(SimTime::from_secs(600), |s| {
        [na, nb]
            .iter()
            .all(|n| s.node(*n).is_some_and(|x| x.store().root_digest() == want))
    });
    for n in [na, nb] {
        let store = sim.node(n).expect("node").store();
        assert_eq!(
            store.root_digest(),
            want,
            "replicas did not converge to the join"
        );
        assert!(store == &expected);
    }
}

// === The node protocol's framing and handshake (net, feature tokio) ===

/// A connection's byte stream as a hostile peer sends it, cut into chunks:
/// the first byte sets the chunk length (1 to 255), the rest is the stream.
/// The frame reader and the handshake reader never panic; what is buffered
/// never exceeds what was pushed; a handshake longer than its 4 KiB limit
/// is refused from its length prefix alone, with at most one chunk
/// buffered; after the handshake no frame above the limit is returned; and
/// every frame returned re-encodes to bytes that decode to it again.
pub fn check_frame_stream(data: &[u8]) {
    use accordant_sync::net::wire::{read_handshake, Frame};
    use accordant_sync::wire::FrameReader;
    const HANDSHAKE_MAX: usize = 4096;
    const FRAME_MAX: usize = 1 << 16;
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk.max(1));
    let mut reader = FrameReader::new();
    let mut pushed = 0usize;
    let mut handshaken = false;
    for part in stream.chunks(chunk) {
        reader.push(part);
        pushed += part.len();
        assert!(reader.buffered() <= pushed);
        loop {
            if !handshaken {
                match read_handshake(&mut reader, HANDSHAKE_MAX) {
                    Ok(Some(h)) => {
                        let f = Frame::Handshake(h);
                        assert!(f.to_wire().len() <= HANDSHAKE_MAX + 10);
                        round_trip(&f);
                        handshaken = true;
                    }
                    Ok(None) => {
                        // Still waiting: the frame is within its limit,
                        // or its length is not known yet.
                        if let Ok(Some(len)) = reader.pending_len() {
                            assert!(len <= HANDSHAKE_MAX);
                        }
                        assert!(reader.buffered() <= HANDSHAKE_MAX + 10 + chunk);
                        break;
                    }
                    Err(_) => {
                        // Refused before more than the limit (and the chunk
                        // that revealed it) was buffered.
                        assert!(reader.buffered() <= HANDSHAKE_MAX + 10 + chunk);
                        return;
                    }
                }
            } else {
                match Frame::next(&mut reader, FRAME_MAX) {
                    Ok(Some(f)) => {
                        assert!(
                            !matches!(f, Frame::Handshake(_))
                                || f.to_wire().len() <= FRAME_MAX + 10
                        );
                        round_trip(&f);
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
}

fn round_trip(f: &accordant_sync::net::wire::Frame) {
    use accordant_sync::net::wire::Frame;
    use accordant_sync::wire::FrameReader;
    let mut r = FrameReader::new();
    r.push(&f.to_wire());
    assert_eq!(
        Frame::next(&mut r, usize::MAX).expect("re-decode").as_ref(),
        Some(f)
    );
    assert_eq!(r.buffered(), 0);
}

/// The payloads of the targeted pull (`Frame::Pull`, `Frame::Value`): the
/// first byte picks a parser; the rest is the payload. Decoding never
/// panics; what a parser accepts re-encodes to the same bytes; a pulled
/// value that is refused (malformed, of a key not pulled, failing
/// admission) leaves the store exactly as it was.
pub fn check_pull_value(data: &[u8]) {
    use accordant_sync::net::{decode_pull, encode_pull};
    use accordant_sync::store::Store;

    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let limits = Limits::new(4096);
    let now = std::time::Instant::now();
    let me = ReplicaId::from_u128(1);
    match which % 4 {
        0 => {
            if let Ok((k, s)) =
                decode_pull::<String, <GCounter as Summarize>::Summary>(payload, &limits)
            {
                assert_eq!(encode_pull(&k, &s), payload, "a pull is not canonical");
            }
        }
        1 => {
            if let Ok((k, s)) =
                decode_pull::<u8, <OrSet<u8> as Summarize>::Summary>(payload, &limits)
            {
                assert_eq!(encode_pull(&k, &s), payload, "a pull is not canonical");
            }
        }
        2 => {
            let mut store: Store<String, GCounter> = Store::new();
            let _ = store.update("a".to_string(), |c| c.increment(me, 3));
            check_pulled(
                store,
                &["a".to_string(), "b".to_string()],
                payload,
                &limits,
                me,
                now,
            );
        }
        _ => {
            let mut store: Store<u8, OrSet<u8>> = Store::new();
            let _ = store.update(1, |s| s.add(me, 7));
            check_pulled(store, &[1u8, 2], payload, &limits, me, now);
        }
    }
}

/// A pulled value decoded from `payload` re-encodes to it, and one that
/// `apply_pulled` refuses (keys `asked` were pulled) leaves `store` as it was.
fn check_pulled<K, V>(
    mut store: accordant_sync::store::Store<K, V>,
    asked: &[K],
    payload: &[u8],
    limits: &Limits,
    me: ReplicaId,
    now: std::time::Instant,
) where
    K: accordant_sync::store::StoreKey,
    V: accordant_sync::store::StoreValue + accordant::Claims,
{
    use accordant_sync::admission::Admission;
    use accordant_sync::delta::NaivePush;
    use accordant_sync::net::{apply_pulled, decode_pulled, Pulls};

    let mut pulls = Pulls::new();
    for k in asked {
        pulls.asked(k, now);
    }
    let before = store.root_digest();
    if let Ok((k, v)) = decode_pulled::<K, V>(payload, limits) {
        assert_eq!(
            NaivePush::encode(&k, &v),
            payload,
            "a value is not canonical"
        );
    }
    let r = apply_pulled(
        &mut store,
        &pulls,
        &Admission::new(Some(me)),
        payload,
        limits,
        now,
    );
    if r.is_err() {
        assert_eq!(
            store.root_digest(),
            before,
            "a refused value changed the store"
        );
    }
}
