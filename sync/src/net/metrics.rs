//! What a node measures for its operators, per peer and node-wide, and the
//! snapshot [`Node::peer_stats`](super::Node::peer_stats) returns.
//!
//! Collection is plain atomics, always on with the transport: a few
//! relaxed additions per frame, a lock only where a peer's entry is first
//! made. The Prometheus exposition of the same numbers (the `metrics`
//! feature: [`Node::serve_metrics`](super::Node) and `Node::metrics_text`)
//! reads them at scrape time, so a node that is never scraped pays for the
//! counting only.
//!
//! Per peer (by node id, kept across reconnections): whether a link is up,
//! bytes and messages each way by [`Kind`], sessions started (by role) and
//! ended (by [`SessionOutcome`]), deltas dropped from its queue, and the
//! last [divergence estimate](super::divergence) per channel. Per
//! connection, read live: the delta queue's depth and the replication
//! [lag](super::lag). Node-wide: round trips per session, durable-commit
//! and write latencies ([`Histogram`]), and refused inputs by reason.
//!
//! ```
//! use accordant_sync::net::Histogram;
//! let h = Histogram::new(&[1.0, 2.0, 4.0]);
//! h.observe(1.0);
//! h.observe(3.0);
//! h.observe(9.0);
//! assert_eq!(h.buckets(), vec![(1.0, 1), (2.0, 0), (4.0, 1), (f64::INFINITY, 1)]);
//! assert_eq!((h.count(), h.sum()), (3, 13.0));
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::divergence::{DivergenceEstimate, DivergenceProbe};
use super::shared::{lock, Counter, Shared};
use crate::error::SyncError;
use crate::host::Outcome;
use crate::peer::PeerId;

/// What a frame on a connection carries, for the traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// Delta replication frames.
    Delta,
    /// Anti-entropy session frames.
    Session,
    /// Delivery acknowledgements of delta frames.
    Ack,
    /// Divergence probes.
    Probe,
    /// Handshake, keepalives, close.
    Control,
    /// Targeted pulls of one key for a token read, and their answers.
    Pull,
}

impl Kind {
    /// Every kind, in label order.
    pub const ALL: [Kind; 6] = [
        Kind::Delta,
        Kind::Session,
        Kind::Ack,
        Kind::Probe,
        Kind::Control,
        Kind::Pull,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Delta => "delta",
            Kind::Session => "session",
            Kind::Ack => "ack",
            Kind::Probe => "probe",
            Kind::Control => "control",
            Kind::Pull => "pull",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How a session ended, for the session counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SessionOutcome {
    /// Verified equal roots.
    Completed,
    /// The roots kept moving (writes during the session).
    Interrupted,
    /// Abandoned after the session timeout.
    TimedOut,
    /// The peer aborted it.
    AbortedByPeer,
    /// The peer's message was malformed or broke the protocol.
    PeerFault,
    /// The peer's data failed admission.
    Refused,
    /// A local failure (storage, turn budget).
    LocalError,
}

impl SessionOutcome {
    /// Every outcome, in label order.
    pub const ALL: [SessionOutcome; 7] = [
        SessionOutcome::Completed,
        SessionOutcome::Interrupted,
        SessionOutcome::TimedOut,
        SessionOutcome::AbortedByPeer,
        SessionOutcome::PeerFault,
        SessionOutcome::Refused,
        SessionOutcome::LocalError,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            SessionOutcome::Completed => "completed",
            SessionOutcome::Interrupted => "interrupted",
            SessionOutcome::TimedOut => "timed_out",
            SessionOutcome::AbortedByPeer => "aborted_by_peer",
            SessionOutcome::PeerFault => "peer_fault",
            SessionOutcome::Refused => "refused",
            SessionOutcome::LocalError => "local_error",
        }
    }

    /// The outcome of a host's session end; `None` for outcomes the host
    /// may add later.
    pub(crate) fn of(outcome: &Outcome) -> Option<Self> {
        Some(match outcome {
            Outcome::Completed => SessionOutcome::Completed,
            Outcome::Failed(SyncError::NotConverged(_)) => SessionOutcome::Interrupted,
            Outcome::Failed(SyncError::Refused(_)) => SessionOutcome::Refused,
            Outcome::Failed(e) if e.is_peer_fault() => SessionOutcome::PeerFault,
            Outcome::Failed(_) => SessionOutcome::LocalError,
            Outcome::TimedOut => SessionOutcome::TimedOut,
            Outcome::AbortedByPeer => SessionOutcome::AbortedByPeer,
            #[allow(unreachable_patterns)]
            _ => return None,
        })
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A histogram with fixed bucket bounds, in atomics: `observe` is lock-free.
/// Cheap to clone; clones share the counts.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: Vec<f64>,
    /// One per bound, and one above the last.
    counts: Vec<AtomicU64>,
    /// The sum's `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// Bounds of round trips per session.
    pub const ROUND_TRIPS: &'static [f64] = &[1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0];
    /// Bounds of latencies, seconds (100 µs to 10 s).
    pub const SECONDS: &'static [f64] = &[
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        10.0,
    ];

    /// An empty histogram over `bounds` (ascending upper bounds; values
    /// above the last fall in a last, infinite bucket).
    pub fn new(bounds: &[f64]) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    /// Records one value.
    pub fn observe(&self, v: f64) {
        let i = self.0.bounds.partition_point(|&b| b < v);
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .0
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Records a duration, in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// `(upper bound, count in that bucket)` per bucket, not cumulative;
    /// the last bound is infinite.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.0
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.0.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.0.sum.load(Ordering::Relaxed))
    }
}

/// What a node counts about one peer (kept across its connections).
#[derive(Debug)]
pub(crate) struct PeerMetrics {
    pub(crate) name: Mutex<String>,
    /// Connections to it established and not yet ended.
    pub(crate) links: AtomicI64,
    pub(crate) bytes_sent: [Counter; 6],
    pub(crate) bytes_received: [Counter; 6],
    pub(crate) messages_sent: [Counter; 6],
    pub(crate) messages_received: [Counter; 6],
    /// Sessions this node initiated, answered.
    pub(crate) sessions_started: [Counter; 2],
    pub(crate) sessions_ended: [Counter; 7],
    pub(crate) deltas_dropped: Counter,
    /// The last estimate per channel name.
    pub(crate) divergence: Mutex<BTreeMap<String, DivergenceEstimate>>,
    /// The peer's last probe per channel index, and when it came.
    pub(crate) probes: Mutex<BTreeMap<u16, (DivergenceProbe, std::time::Instant)>>,
}

impl PeerMetrics {
    fn new(name: &str) -> Self {
        PeerMetrics {
            name: Mutex::new(name.to_string()),
            links: AtomicI64::new(0),
            bytes_sent: Default::default(),
            bytes_received: Default::default(),
            messages_sent: Default::default(),
            messages_received: Default::default(),
            sessions_started: Default::default(),
            sessions_ended: Default::default(),
            deltas_dropped: Counter::default(),
            divergence: Mutex::new(BTreeMap::new()),
            probes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts one frame of `bytes` sent.
    pub(crate) fn sent(&self, kind: Kind, bytes: usize) {
        self.bytes_sent[kind.index()].add(bytes as u64);
        self.messages_sent[kind.index()].add(1);
    }

    /// Counts one frame of `bytes` received.
    pub(crate) fn received(&self, kind: Kind, bytes: usize) {
        self.bytes_received[kind.index()].add(bytes as u64);
        self.messages_received[kind.index()].add(1);
    }

    /// Counts a session started; `initiator` says which side this node is.
    pub(crate) fn session_started(&self, initiator: bool) {
        self.sessions_started[usize::from(!initiator)].add(1);
    }

    /// Counts a session ended.
    pub(crate) fn session_ended(&self, outcome: SessionOutcome) {
        self.sessions_ended[outcome.index()].add(1);
    }

    pub(crate) fn up(&self) -> bool {
        self.links.load(Ordering::Relaxed) > 0
    }
}

/// Node-wide measurements.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    pub(crate) peers: Mutex<BTreeMap<PeerId, Arc<PeerMetrics>>>,
    /// Round trips of sessions this node initiated that ended.
    pub(crate) round_trips: Histogram,
    /// Durable commits (group commits included): seconds each.
    pub(crate) commit_seconds: Histogram,
    /// Local writes, from `update` called to acknowledged.
    pub(crate) write_seconds: Histogram,
    /// Refused inputs, by reason label.
    pub(crate) refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            peers: Mutex::new(BTreeMap::new()),
            round_trips: Histogram::new(Histogram::ROUND_TRIPS),
            commit_seconds: Histogram::new(Histogram::SECONDS),
            write_seconds: Histogram::new(Histogram::SECONDS),
            refused: Mutex::new(BTreeMap::new()),
        }
    }
}

impl NodeMetrics {
    /// The most peers remembered: beyond, a peer with no link is
    /// forgotten to make room (members are few; in insecure plaintext a
    /// peer could name itself anything).
    pub(crate) const MAX_PEERS: usize = 1024;

    /// The entry of `peer`, made on first sight (named `name`).
    pub(crate) fn peer(&self, peer: PeerId, name: &str) -> Arc<PeerMetrics> {
        let mut peers = lock(&self.peers);
        if !peers.contains_key(&peer) && peers.len() >= Self::MAX_PEERS {
            let idle = peers.iter().find(|(_, m)| !m.up()).map(|(p, _)| *p);
            if let Some(idle) = idle {
                peers.remove(&idle);
            }
        }
        let m = peers
            .entry(peer)
            .or_insert_with(|| Arc::new(PeerMetrics::new(name)));
        let mut n = lock(&m.name);
        if *n != name {
            *n = name.to_string();
        }
        drop(n);
        Arc::clone(m)
    }

    /// Counts a refused input.
    pub(crate) fn refused(&self, reason: &'static str) {
        *lock(&self.refused).entry(reason).or_default() += 1;
    }
}

/// The label of an admission refusal.
pub(crate) fn refusal_reason(r: &crate::admission::Refusal) -> &'static str {
    match r {
        crate::admission::Refusal::OwnReplica { .. } => "admission_own_replica",
        crate::admission::Refusal::AboveCeiling { .. } => "admission_above_ceiling",
        crate::admission::Refusal::StampAhead { .. } => "admission_stamp_ahead",
        #[allow(unreachable_patterns)]
        _ => "admission_other",
    }
}

/// One peer as [`Node::peer_stats`](super::Node::peer_stats) sees it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer.
    pub peer: PeerId,
    /// Its name.
    pub name: String,
    /// Whether a connection to it is established now.
    pub connected: bool,
    /// Age of the oldest delta it has not acknowledged (zero when none, or
    /// not connected).
    pub lag: Duration,
    /// Delta frames queued for it and not yet written.
    pub queue_depth: u64,
    /// Delta frames dropped because its queue was full.
    pub deltas_dropped: u64,
    /// Bytes sent to it, all kinds.
    pub bytes_sent: u64,
    /// Bytes received from it, all kinds.
    pub bytes_received: u64,
    /// Bytes sent by [`Kind`].
    pub bytes_sent_by_kind: Vec<(Kind, u64)>,
    /// The last divergence estimate per channel name.
    pub divergence: Vec<(String, DivergenceEstimate)>,
}

impl PeerStats {
    /// Estimated keys differing, summed over channels.
    pub fn divergent_keys(&self) -> f64 {
        self.divergence.iter().map(|(_, e)| e.keys).sum()
    }
}

/// Every peer the node knows, for [`Node::peer_stats`](super::Node::peer_stats).
pub(crate) fn peer_stats(shared: &Shared) -> Vec<PeerStats> {
    let now = std::time::Instant::now();
    let known: Vec<(PeerId, Arc<PeerMetrics>)> = lock(&shared.metrics.peers)
        .iter()
        .map(|(p, m)| (*p, Arc::clone(m)))
        .collect();
    let live: BTreeMap<PeerId, (Duration, u64)> = lock(&shared.peers)
        .iter()
        .map(|(p, slot)| (*p, (lock(&slot.lag).lag(now), slot.queue_depth())))
        .collect();
    known
        .into_iter()
        .map(|(peer, m)| {
            let (lag, queue_depth) = live.get(&peer).copied().unwrap_or_default();
            let by_kind: Vec<(Kind, u64)> = Kind::ALL
                .iter()
                .map(|k| (*k, m.bytes_sent[k.index()].get()))
                .collect();
            PeerStats {
                peer,
                name: lock(&m.name).clone(),
                connected: m.up(),
                lag,
                queue_depth,
                deltas_dropped: m.deltas_dropped.get(),
                bytes_sent: by_kind.iter().map(|(_, b)| b).sum(),
                bytes_received: m.bytes_received.iter().map(Counter::get).sum(),
                bytes_sent_by_kind: by_kind,
                divergence: lock(&m.divergence)
                    .iter()
                    .map(|(c, e)| (c.clone(), *e))
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_take_values_at_their_bound() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 2.5] {
            h.observe(v);
        }
        assert_eq!(
            h.buckets(),
            vec![(1.0, 2), (2.0, 2), (f64::INFINITY, 1)],
            "upper bounds are inclusive (Prometheus `le`)"
        );
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum(), 7.5);
        let clone = h.clone();
        clone.observe_duration(Duration::from_millis(500));
        assert_eq!(h.count(), 6, "clones share counts");
    }

    #[test]
    fn outcomes_map_to_their_labels() {
        let o = |x: Outcome| SessionOutcome::of(&x).unwrap().label();
        assert_eq!(o(Outcome::Completed), "completed");
        assert_eq!(
            o(Outcome::Failed(SyncError::NotConverged(2))),
            "interrupted"
        );
        assert_eq!(o(Outcome::Failed(SyncError::Malformed("x"))), "peer_fault");
        assert_eq!(
            o(Outcome::Failed(SyncError::LocalStorage("disk".into()))),
            "local_error"
        );
        assert_eq!(o(Outcome::TimedOut), "timed_out");
        assert_eq!(o(Outcome::AbortedByPeer), "aborted_by_peer");
    }

    #[test]
    fn a_peer_entry_survives_reconnection_and_follows_its_name() {
        let m = NodeMetrics::default();
        let a = m.peer(PeerId(2), "us");
        a.sent(Kind::Delta, 100);
        a.received(Kind::Session, 7);
        a.session_started(true);
        a.session_ended(SessionOutcome::Completed);
        let b = m.peer(PeerId(2), "us-east");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*lock(&b.name), "us-east");
        assert_eq!(b.bytes_sent[0].get(), 100);
        assert_eq!(b.messages_received[1].get(), 1);
        assert_eq!(b.sessions_started[0].get(), 1);
        assert_eq!(b.sessions_ended[0].get(), 1);
        m.refused("auth");
        m.refused("auth");
        assert_eq!(lock(&m.refused).get("auth"), Some(&2));
    }
}
