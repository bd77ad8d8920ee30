//! Writes the seed corpora under `fuzz/corpus/<target>/`: valid encodings of
//! every CRDT type and every message kind, so the fuzzers start from deep
//! inside the decoders instead of rediscovering the formats. Run from `fuzz/`:
//! `cargo run --bin seed_corpus`.

use std::fs;
use std::path::Path;

use accordant::codec::{encode, Canonical};
use accordant::{
    BoundedCounter, CausalCounter, DwFlag, EwFlag, GCounter, Hlc, Lattice, LwwRegister, MvRegister,
    OrMap, OrSet, PNCounter, ReplicaId, RwSet, ShoppingCart,
};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::store::{Store, StoreKey, StoreValue};

fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::write(dir.join(name), bytes).expect("write seed");
}

/// Runs a session between `a` (initiating) and `b`, writing every message
/// as a seed `msg{n}`; returns the responder's messages concatenated.
fn record<K: StoreKey, V: StoreValue>(
    dir: &Path,
    n: &mut usize,
    a: &mut Store<K, V>,
    b: &mut Store<K, V>,
    config: SessionConfig,
) -> Vec<u8> {
    let mut sa = Session::initiate(a, config);
    let mut sb = Session::respond(config);
    let mut responder = Vec::new();
    for _ in 0..16 {
        while let Some(msg) = sa.poll_transmit() {
            write(dir, &format!("msg{n}"), &msg);
            *n += 1;
            let _ = sb.handle(b, &msg);
        }
        while let Some(msg) = sb.poll_transmit() {
            write(dir, &format!("msg{n}"), &msg);
            *n += 1;
            responder.extend_from_slice(&msg);
            let _ = sa.handle(a, &msg);
        }
    }
    responder
}

fn tagged<T: Canonical>(tag: u8, v: &T) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(encode(v));
    out
}

fn main() {
    let root = Path::new("corpus");
    for t in [
        "decode_state",
        "decode_message",
        "crdt_ops",
        "session",
        "store_sync",
        "net_frames",
        "pull_value",
    ] {
        fs::create_dir_all(root.join(t)).expect("corpus dir");
    }
    let dir = root.join("decode_state");
    let mut g = GCounter::new();
    let mut p = PNCounter::new();
    let mut cc = CausalCounter::new();
    let mut l = LwwRegister::new();
    let mut mv = MvRegister::new();
    let mut s = OrSet::new();
    let mut m: OrMap<u8, OrSet<u8>> = OrMap::new();
    let mut mm: OrMap<u8, OrMap<u8, MvRegister<u8>>> = OrMap::new();
    let mut cart = ShoppingCart::new();
    for i in 0..3u8 {
        let rep = r(u128::from(i));
        let _ = g.increment(rep, u64::from(i) + 1);
        let _ = p.add(rep, -i64::from(i));
        let _ = cc.add(rep, i64::from(i));
        let _ = l.write_at(Hlc::new(u64::from(i), 0), rep, i);
        let _ = mv.write(rep, i);
        let _ = s.add(rep, i);
        let _ = m.try_update(i, |x| x.add(rep, i));
        let _ = mm.try_update(i, |x| x.try_update(i, |y| y.write(rep, i)));
        let _ = cart.add(rep, i, u64::from(i) + 1);
    }
    let _ = s.remove(&1);
    let _ = cart.remove_item(&0);
    write(&dir, "gcounter", &tagged(0, &g));
    write(&dir, "pncounter", &tagged(1, &p));
    write(&dir, "causal_counter", &tagged(2, &cc));
    write(&dir, "lww", &tagged(3, &l));
    write(&dir, "mv", &tagged(4, &mv));
    write(&dir, "orset", &tagged(5, &s));
    write(&dir, "map_of_sets", &tagged(6, &m));
    write(&dir, "map_of_maps", &tagged(7, &mm));
    write(&dir, "cart", &tagged(8, &cart));

    // The bounded counter, the flags and the remove-wins set (tags 9-14).
    let mut bc = BoundedCounter::new();
    let _ = bc.increment(r(0), 100);
    let _ = bc.transfer(r(0), r(1), 30);
    let _ = bc.transfer(r(1), r(2), 10);
    let _ = bc.decrement(r(2), 4);
    let _ = bc.decrement(r(0), 7);
    let (mut ew, mut dw, mut dw2) = (EwFlag::new(), DwFlag::new(), DwFlag::new());
    let _ = ew.enable(r(0));
    let _ = dw.enable(r(0));
    let _ = dw2.disable(r(1));
    dw.join(&dw2);
    let mut rw = RwSet::new();
    let mut mdw: OrMap<u8, DwFlag> = OrMap::new();
    let mut mrw: OrMap<u8, RwSet<u8>> = OrMap::new();
    for i in 0..3u8 {
        let rep = r(u128::from(i));
        let _ = rw.add(rep, i);
        let _ = mdw.try_update(i, |f| {
            if i == 1 {
                f.disable(rep)
            } else {
                f.enable(rep)
            }
        });
        let _ = mrw.try_update(i, |s| s.remove(rep, i));
    }
    let _ = rw.remove(r(2), 0);
    write(&dir, "bounded_counter", &tagged(9, &bc));
    write(&dir, "ew_flag", &tagged(10, &ew));
    write(&dir, "dw_flag", &tagged(11, &dw));
    write(&dir, "rw_set", &tagged(12, &rw));
    write(&dir, "map_of_dw_flags", &tagged(13, &mdw));
    write(&dir, "map_of_rw_sets", &tagged(14, &mrw));

    // Every message kind, recorded from a real session with divergence.
    let dir = root.join("decode_message");
    let mut a: Store<u8, OrSet<u8>> = Store::new();
    for k in 0..200u8 {
        let _ = a.update(k, |x| x.add(r(1), k % 8));
    }
    let mut b = a.clone();
    let _ = a.update(3, |x| x.add(r(2), 9));
    let _ = b.update(250, |x| x.add(r(3), 1));
    let mut n = 0;
    let session_seed = record(&dir, &mut n, &mut a, &mut b, SessionConfig::default());
    // A larger store: coded symbols, an offer with wants and summaries, an
    // answer with replies, a close.
    let mut a: Store<u32, OrSet<u8>> = Store::new();
    for k in 0..3000u32 {
        let _ = a.update(k, |x| x.add(r(1), (k % 8) as u8));
    }
    for e in 0..64 {
        let _ = a.update(5000, |x| x.add(r(1), e));
    }
    let mut b = a.clone();
    for k in [7u32, 700, 1400, 2100, 2800] {
        let _ = a.update(k, |x| x.add(r(2), 9));
        let _ = b.update(k + 1, |x| x.add(r(3), 1));
    }
    let _ = a.update(5000, |x| x.add(r(2), 100));
    let _ = b.update(5000, |x| Ok::<_, ()>(x.remove(&3)));
    let _ = record(
        &dir,
        &mut n,
        &mut a.clone(),
        &mut b.clone(),
        SessionConfig::default(),
    );
    // Too few symbols: requests for more, and the item list.
    let mut tight = SessionConfig::default();
    tight.margin_percent = 1;
    let _ = record(&dir, &mut n, &mut a.clone(), &mut b.clone(), tight);
    // Equal stores, and a new initiator.
    let _ = record(
        &dir,
        &mut n,
        &mut a.clone(),
        &mut a.clone(),
        SessionConfig::default(),
    );
    let _ = record(
        &dir,
        &mut n,
        &mut Store::new(),
        &mut b,
        SessionConfig::default(),
    );

    // The structured targets take arbitrary bytes; a few plain seeds help.
    for (i, seed) in [vec![0u8; 64], (0..=255u8).collect(), session_seed]
        .iter()
        .enumerate()
    {
        write(&root.join("crdt_ops"), &format!("seed{i}"), seed);
        write(&root.join("session"), &format!("seed{i}"), seed);
        write(&root.join("store_sync"), &format!("seed{i}"), seed);
    }
    // A connection's stream: a handshake, then one frame of each kind,
    // cut into chunks of 1, 7 and 255 bytes (the first byte).
    {
        use accordant::codec::SeqVec;
        use accordant_sync::message::Bytes;
        use accordant_sync::net::wire::{Frame, Handshake, MAGIC};
        let mut stream = Frame::Handshake(Handshake {
            magic: MAGIC,
            node: 2,
            name: "us-east".into(),
            channels: SeqVec(vec!["views".into(), "tags".into()]),
        })
        .to_wire();
        for f in [
            Frame::Session {
                channel: 0,
                envelope: Bytes::from(vec![1, 2, 3, 4]),
            },
            Frame::Delta {
                channel: 1,
                payload: Bytes::from(vec![7; 40]),
            },
            Frame::Ping,
            Frame::Bye,
        ] {
            stream.extend(f.to_wire());
        }
        for chunk in [1u8, 7, 255] {
            let mut seed = vec![chunk];
            seed.extend(&stream);
            write(&root.join("net_frames"), &format!("stream{chunk}"), &seed);
        }
        // An oversized handshake prefix.
        write(
            &root.join("net_frames"),
            "oversized",
            &[16, 0x80, 0x80, 0x80, 0x08, 0],
        );
    }
    {
        use accordant::Summarize;
        use accordant_sync::delta::NaivePush;
        use accordant_sync::net::encode_pull;
        let dir = root.join("pull_value");
        let mut c = GCounter::new();
        let d = c.increment(ReplicaId::from_u128(2), 5).expect("increment");
        let mut seed = vec![0u8];
        seed.extend(encode_pull(&"a".to_string(), &c.summary()));
        write(&dir, "pull", &seed);
        let mut seed = vec![2u8];
        seed.extend(NaivePush::encode(&"a".to_string(), &d));
        write(&dir, "value", &seed);
        let mut s = OrSet::new();
        let d = s.add(ReplicaId::from_u128(2), 9u8).expect("add");
        let mut seed = vec![3u8];
        seed.extend(NaivePush::encode(&2u8, &d));
        write(&dir, "set_value", &seed);
    }
    println!("seed corpora written under {}", root.display());
}
