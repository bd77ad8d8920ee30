//! Honest sessions recorded message by message, and a pair of sessions
//! brought to any step of one, for the hostile-peer tests.

#![allow(dead_code, unreachable_pub)]

use accordant::{OrSet, ReplicaId};
use accordant_sync::error::SyncError;
use accordant_sync::message::{self, SyncLimits};
use accordant_sync::session::{Session, SessionConfig};
use accordant_sync::store::Store;

pub type K = u32;
pub type V = OrSet<u32>;
pub type S = Store<K, V>;

pub fn r(n: u128) -> ReplicaId {
    ReplicaId::from_u128(n)
}

/// Two stores that differ on both sides: keys only one side has, keys both
/// changed, small values (sent whole) and one big set (sent as a summary).
pub fn two_sided() -> (S, S) {
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
pub fn one_sided() -> (S, S) {
    let (a, _) = two_sided();
    let mut b = a.clone();
    for k in 0..3 {
        let _ = b.update(k, |s| s.add(r(4), 99));
    }
    (a, b)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Initiator,
    Responder,
}

/// An honest session, message by message.
pub struct Transcript {
    pub name: &'static str,
    pub config: SessionConfig,
    pub a0: S,
    pub b0: S,
    /// Before delivering message `.0`, the responder writes to key `.1`.
    pub write_at: Option<(usize, K)>,
    /// Each message with the side it is delivered to, in order.
    pub msgs: Vec<(Side, Vec<u8>)>,
}

pub fn local_write(b: &mut S, key: K) {
    let _ = b.update(key, |s| s.add(r(9), 4242));
}

/// Sessions and stores after the first `k` messages of a transcript.
pub struct At {
    pub sa: Session<K, V>,
    pub sb: Session<K, V>,
    pub a: S,
    pub b: S,
}

impl At {
    /// The side a message is delivered to.
    pub fn side(&mut self, side: Side) -> (&mut Session<K, V>, &mut S) {
        match side {
            Side::Initiator => (&mut self.sa, &mut self.a),
            Side::Responder => (&mut self.sb, &mut self.b),
        }
    }
}

impl Transcript {
    pub fn record(name: &'static str, (a0, b0): (S, S), write_at: Option<(usize, K)>) -> Self {
        Self::record_with(name, SessionConfig::default(), (a0, b0), write_at)
    }

    pub fn record_with(
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

    pub fn start(&self) -> At {
        At {
            sa: Session::initiate(&self.a0, self.config),
            sb: Session::respond(self.config),
            a: self.a0.clone(),
            b: self.b0.clone(),
        }
    }

    /// Replays the first `k` messages (the outboxes are drained: the
    /// recorded bytes are what was sent).
    pub fn at(&self, k: usize) -> At {
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
    pub fn kinds(&self) -> Vec<&'static str> {
        self.msgs
            .iter()
            .map(|(_, m)| match message::decode(m, &SyncLimits::default()) {
                Ok(msg) => msg.name(),
                Err(_) => "?",
            })
            .collect()
    }

    /// The first message of `kind` delivered to `side`, and its index.
    pub fn find(&self, side: Side, kind: &str) -> (usize, Vec<u8>) {
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
pub fn extended() -> Transcript {
    let mut config = SessionConfig::default();
    config.margin_percent = 1;
    Transcript::record_with("two-sided, extended", config, two_sided(), None)
}

pub fn transcripts() -> Vec<Transcript> {
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
pub fn feed(at: &mut At, side: Side, bytes: &[u8]) -> Result<(), SyncError> {
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

/// `n` as a LEB128 varint.
pub fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}
