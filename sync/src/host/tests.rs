//! Unit tests of the host with real sessions over a tiny in-memory network:
//! virtual time, and a seeded choice of which queued envelope moves next,
//! with loss and duplication.

use std::time::Duration;

use accordant::{GCounter, ReplicaId};

use super::*;
use crate::session::{Session, SessionConfig};
use crate::store::Store;

type S = Store<u32, GCounter>;
type H = SessionHost<usize, Session<u32, GCounter>>;
type Event = HostEvent<usize, Session<u32, GCounter>>;

fn respond() -> Option<Session<u32, GCounter>> {
    Some(Session::respond(SessionConfig::default()))
}

/// Hosts, their stores, and the envelopes in flight.
struct Net {
    hosts: Vec<H>,
    stores: Vec<S>,
    flight: Vec<(usize, usize, Vec<u8>)>,
    events: Vec<(usize, Event)>,
    now: Duration,
    rng: SplitMix64,
    loss: f64,
    dup: f64,
}

impl Net {
    fn new(n: usize, config: HostConfig, seed: u64) -> Self {
        let mut stores = Vec::new();
        for i in 0..n {
            let mut s = S::new();
            for k in 0..200u32 {
                let by = if k % 7 == i as u32 { 2 } else { 1 };
                let _ = s.update(k, |c| c.increment(ReplicaId::from_u128(i as u128), by));
            }
            stores.push(s);
        }
        Net {
            hosts: (0..n)
                .map(|i| SessionHost::new(config, seed * 100 + i as u64))
                .collect(),
            stores,
            flight: Vec::new(),
            events: Vec::new(),
            now: Duration::ZERO,
            rng: SplitMix64::new(seed),
            loss: 0.0,
            dup: 0.0,
        }
    }

    fn initiate(&mut self, from: usize, to: usize) -> Result<SessionId, Busy> {
        let s = Session::initiate(&self.stores[from], SessionConfig::default());
        let r = self.hosts[from].initiate(self.now, to, s);
        self.collect();
        r
    }

    fn collect(&mut self) {
        for i in 0..self.hosts.len() {
            while let Some(t) = self.hosts[i].poll_transmit() {
                self.flight.push((i, t.to, t.bytes));
            }
            while let Some(e) = self.hosts[i].poll_event() {
                self.events.push((i, e));
            }
        }
    }

    /// Delivers one random envelope in flight (or advances time to the
    /// next timeout); returns false when nothing is left to do.
    fn step(&mut self) -> bool {
        if self.flight.is_empty() {
            let next = self.hosts.iter().filter_map(|h| h.poll_timeout()).min();
            let Some(t) = next else { return false };
            self.now = self.now.max(t);
            for h in &mut self.hosts {
                h.handle_timeout(self.now);
            }
            self.collect();
            return true;
        }
        self.now += Duration::from_millis(1);
        let i = self.rng.below(self.flight.len() as u64) as usize;
        let (from, to, bytes) = self.flight.swap_remove(i);
        if self.rng.unit() < self.loss {
            return true;
        }
        if self.rng.unit() < self.dup {
            self.flight.push((from, to, bytes.clone()));
        }
        let now = self.now;
        self.hosts[to]
            .handle(now, from, &bytes, &mut self.stores[to], respond)
            .unwrap();
        self.collect();
        true
    }

    fn run(&mut self, max_steps: usize) {
        for _ in 0..max_steps {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence in {max_steps} steps");
    }

    fn ended(&self, host: usize) -> Vec<&SessionEnd<usize, Session<u32, GCounter>>> {
        self.events
            .iter()
            .filter(|(h, _)| *h == host)
            .filter_map(|(_, e)| match e {
                HostEvent::Ended(end) => Some(end),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn a_session_completes_on_both_sides_despite_duplicates_and_reordering() {
    for seed in 0..20 {
        let mut net = Net::new(2, HostConfig::default(), seed);
        net.dup = 0.3;
        net.initiate(0, 1).unwrap();
        net.run(10_000);
        assert_eq!(net.stores[0].root_digest(), net.stores[1].root_digest());
        for h in 0..2 {
            let ends = net.ended(h);
            assert_eq!(ends.len(), 1, "seed {seed} host {h}: {ends:?}");
            assert_eq!(ends[0].outcome, Outcome::Completed);
            assert_eq!(ends[0].id.initiated_here, h == 0);
        }
        assert!(net.hosts.iter().all(|h| h.sessions() == 0));
        assert_eq!(net.hosts[0].stats().sessions_completed_initiated, 1);
        if net.hosts[1].stats().messages_deduped + net.hosts[0].stats().messages_deduped == 0 {
            assert!(net.events.len() >= 2);
        }
    }
}

#[test]
fn simultaneous_opens_keep_exactly_one_session() {
    let mut superseded = 0;
    for seed in 0..40 {
        let mut net = Net::new(2, HostConfig::default(), seed);
        net.initiate(0, 1).unwrap();
        net.initiate(1, 0).unwrap();
        net.run(10_000);
        assert_eq!(net.stores[0].root_digest(), net.stores[1].root_digest());
        let completed: Vec<SessionId> = (0..2)
            .flat_map(|h| net.ended(h))
            .filter(|e| e.outcome == Outcome::Completed)
            .map(|e| e.id)
            .collect();
        // One session, completed on both sides, initiated by one of them.
        assert_eq!(completed.len(), 2, "seed {seed}");
        assert_ne!(completed[0].initiated_here, completed[1].initiated_here);
        let s: u64 = net
            .hosts
            .iter()
            .map(|h| h.stats().sessions_superseded)
            .sum();
        assert_eq!(s, 1, "seed {seed}: the loser drops its own session");
        superseded += s;
        assert!(net.hosts.iter().all(|h| h.stats().sessions_failed == 0));
    }
    assert_eq!(superseded, 40);
}

#[test]
fn a_first_session_wins_over_a_crossing_opening_in_every_order() {
    for seed in 0..40 {
        let mut net = Net::new(2, HostConfig::default(), seed);
        // Host 1's opening crosses host 0's `initiate_first` (as a stale
        // opening still in the socket crosses a dialer's session on
        // resuming); deliveries in a seeded random order.
        net.initiate(1, 0).unwrap();
        let s = Session::initiate(&net.stores[0], SessionConfig::default());
        let now = net.now;
        net.hosts[0].initiate_first(now, 1, s).unwrap();
        net.collect();
        net.run(10_000);
        assert_eq!(net.stores[0].root_digest(), net.stores[1].root_digest());
        let completed: Vec<(usize, SessionId)> = (0..2)
            .flat_map(|h| net.ended(h).into_iter().map(move |e| (h, e)))
            .filter(|(_, e)| e.outcome == Outcome::Completed)
            .map(|(h, e)| (h, e.id))
            .collect();
        // Host 0's session, on both sides; host 1's yielded.
        assert_eq!(completed.len(), 2, "seed {seed}: {completed:?}");
        for (h, id) in completed {
            assert_eq!(id.initiated_here, h == 0, "seed {seed}");
        }
        assert_eq!(net.hosts[0].stats().sessions_superseded, 0, "seed {seed}");
        assert_eq!(net.hosts[1].stats().sessions_superseded, 1, "seed {seed}");
    }
}

#[test]
fn losses_time_out_retry_with_backoff_and_converge() {
    let config = HostConfig::default()
        .with_session_timeout(Duration::from_millis(500))
        .with_retry(Duration::from_millis(100), Duration::from_secs(2));
    for seed in 0..10 {
        let mut net = Net::new(2, config, seed);
        net.loss = 0.3;
        net.initiate(0, 1).unwrap();
        let mut retries = 0;
        for _ in 0..200_000 {
            if !net.step() {
                break;
            }
            // The driver's part: retry when told.
            let due: Vec<usize> = net
                .events
                .iter()
                .filter_map(|(h, e)| match e {
                    HostEvent::RetryDue { peer } if *h == 0 => Some(*peer),
                    _ => None,
                })
                .collect();
            net.events
                .retain(|(_, e)| !matches!(e, HostEvent::RetryDue { .. }));
            for p in due {
                retries += 1;
                net.initiate(0, p).unwrap();
            }
            if net.stores[0].root_digest() == net.stores[1].root_digest()
                && net.hosts.iter().all(|h| h.sessions() == 0)
            {
                break;
            }
        }
        assert_eq!(
            net.stores[0].root_digest(),
            net.stores[1].root_digest(),
            "seed {seed}"
        );
        let failed = net.hosts[0].stats().sessions_timed_out
            + net.hosts[0].stats().sessions_aborted_by_peer
            + net.hosts[0].stats().sessions_failed;
        // One retry per failed session, but the last, if the stores
        // converged before its retry was due.
        assert!(
            failed == retries || failed == retries + 1,
            "seed {seed}: {failed} failed, {retries} retries"
        );
    }
}

#[test]
fn backoff_doubles_to_the_cap_with_jitter_and_resets_on_success() {
    let config = HostConfig::default()
        .with_session_timeout(Duration::from_millis(100))
        .with_retry(Duration::from_millis(100), Duration::from_millis(800));
    let mut host: H = SessionHost::new(config, 9);
    let store = S::new();
    let mut now = Duration::ZERO;
    let mut delays = Vec::new();
    for _ in 0..6 {
        host.initiate(now, 1, Session::initiate(&store, SessionConfig::default()))
            .unwrap();
        while host.poll_transmit().is_some() {}
        // Nobody answers: it times out.
        now = host.poll_timeout().unwrap();
        host.handle_timeout(now);
        let ended_at = now;
        let retry_at = host.poll_timeout().unwrap();
        host.handle_timeout(retry_at);
        let mut due = false;
        while let Some(e) = host.poll_event() {
            due |= matches!(e, HostEvent::RetryDue { peer: 1 });
        }
        assert!(due);
        delays.push(retry_at - ended_at);
        now = retry_at;
    }
    for (i, d) in delays.iter().enumerate() {
        let base = Duration::from_millis((100 << i).min(800));
        assert!(*d >= base && *d <= base + base / 2, "retry {i}: {d:?}");
    }
    assert_eq!(host.stats().sessions_timed_out, 6);
}

#[test]
fn the_cap_refuses_new_sessions_and_the_refused_peer_retries() {
    let config = HostConfig::default().with_max_sessions(1);
    let mut net = Net::new(3, config, 4);
    // Host 0 responds to host 1: at its cap.
    net.initiate(1, 0).unwrap();
    let open = net.flight.remove(0);
    net.hosts[0]
        .handle(net.now, 1, &open.2, &mut net.stores[0], respond)
        .unwrap();
    net.collect();
    assert_eq!(net.initiate(0, 2), Err(Busy::AtCapacity));
    // Host 2's session is refused.
    net.initiate(2, 0).unwrap();
    net.run(10_000);
    assert_eq!(net.hosts[0].stats().sessions_refused, 1);
    assert!(net
        .events
        .iter()
        .any(|(h, e)| *h == 0 && matches!(e, HostEvent::Refused { peer: 2 })));
    assert_eq!(net.ended(2)[0].outcome, Outcome::AbortedByPeer);
    assert_eq!(net.stores[0].root_digest(), net.stores[1].root_digest());
    // Host 2 got a retry; after it, 0 and 2 converge.
    assert!(net
        .events
        .iter()
        .any(|(h, e)| *h == 2 && matches!(e, HostEvent::RetryDue { peer: 0 })));
    assert!(!net.hosts[2].backing_off(0));
    net.initiate(2, 0).unwrap();
    net.run(10_000);
    assert_eq!(net.stores[0].root_digest(), net.stores[2].root_digest());
}

#[test]
fn at_the_cap_an_unanswered_opening_yields_to_a_peer_s_session() {
    let config = HostConfig::default().with_max_sessions(1);
    let mut net = Net::new(3, config, 5);
    net.initiate(0, 2).unwrap();
    let to_two = net.flight.remove(0);
    net.initiate(1, 0).unwrap();
    let open = net.flight.remove(0);
    net.hosts[0]
        .handle(net.now, 1, &open.2, &mut net.stores[0], respond)
        .unwrap();
    net.collect();
    // Host 0 dropped its own opening (and says so to host 2), and responds
    // to host 1.
    assert_eq!(net.ended(0)[0].outcome, Outcome::Superseded);
    assert!(net.ended(0)[0].id.initiated_here);
    let abort = envelope::decode(&net.flight[0].2).unwrap();
    assert_eq!((net.flight[0].1, abort.kind), (2, Kind::AbortByInitiator));
    assert!(!net.hosts[0].session(1).unwrap().0.initiated_here);
    assert_eq!(net.hosts[0].stats().sessions_refused, 0);
    // The late opening, then the abort, reach host 2: nothing is left.
    net.flight.insert(0, to_two);
    net.run(10_000);
    assert_eq!(net.hosts[2].sessions(), 0);
    assert_eq!(net.stores[0].root_digest(), net.stores[1].root_digest());
}

#[test]
fn stale_opens_and_stragglers_are_not_answered_twice() {
    let mut net = Net::new(2, HostConfig::default(), 1);
    net.initiate(0, 1).unwrap();
    let open = net.flight[0].2.clone();
    net.run(10_000);
    let before = net.hosts[1].stats().clone();
    // A late copy of the opening message: stale, no new session.
    net.hosts[1]
        .handle(net.now, 0, &open, &mut net.stores[1], respond)
        .unwrap();
    net.collect();
    assert_eq!(net.hosts[1].sessions(), 0);
    assert_eq!(
        net.hosts[1].stats().messages_ignored,
        before.messages_ignored + 1
    );
    assert!(net.flight.is_empty());
    // A message continuing a session that ended here gets one abort.
    let cont = envelope::encode(Kind::ToResponder, 1, 50, 0, b"x");
    for _ in 0..3 {
        net.hosts[1]
            .handle(net.now, 0, &cont, &mut net.stores[1], respond)
            .unwrap();
    }
    net.collect();
    assert_eq!(net.flight.len(), 1);
    let abort = envelope::decode(&net.flight[0].2).unwrap();
    assert_eq!(abort.kind, Kind::AbortByResponder);
    assert_eq!(abort.sid, 1);
}

#[test]
fn malformed_envelopes_and_failing_sessions_change_nothing() {
    let mut net = Net::new(2, HostConfig::default(), 2);
    let root = net.stores[1].root_digest();
    for bad in [&[][..], &[0x11, 0x80], &[0x37, 1, 0], &[0x13, 1, 0, 5]] {
        assert!(net.hosts[1]
            .handle(net.now, 0, bad, &mut net.stores[1], respond)
            .is_err());
    }
    // A well-formed envelope opening a session with a garbage message:
    // the session fails, the peer is told, the store is unchanged.
    let open = envelope::encode(Kind::ToResponder, 9, 0, 3, b"\x03garbage");
    net.hosts[1]
        .handle(net.now, 0, &open, &mut net.stores[1], respond)
        .unwrap();
    net.collect();
    assert_eq!(net.stores[1].root_digest(), root);
    let ends = net.ended(1);
    assert!(matches!(&ends[0].outcome, Outcome::Failed(e) if e.is_peer_fault()));
    assert_eq!(net.hosts[1].stats().sessions_failed_peer_fault, 1);
    let abort = envelope::decode(&net.flight[0].2).unwrap();
    assert_eq!((abort.kind, abort.sid), (Kind::AbortByResponder, 9));
}

#[test]
fn forget_drops_the_session_and_what_was_remembered() {
    let mut net = Net::new(2, HostConfig::default(), 3);
    net.initiate(0, 1).unwrap();
    let open = net.flight[0].2.clone();
    net.hosts[0].forget(1);
    net.collect();
    assert_eq!(net.hosts[0].sessions(), 0);
    assert_eq!(net.ended(0)[0].outcome, Outcome::Aborted);
    // Host 1 sees the opening, then forgets host 0 (it restarted): the same
    // session number opens a session again.
    net.flight.clear();
    for _ in 0..2 {
        net.hosts[1]
            .handle(net.now, 0, &open, &mut net.stores[1], respond)
            .unwrap();
        assert_eq!(net.hosts[1].sessions(), 1);
        net.hosts[1].forget(0);
        net.collect();
        net.flight.clear();
    }
}
