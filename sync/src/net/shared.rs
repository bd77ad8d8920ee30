//! Node-wide state that channels and connections share: the connected
//! peers, the counters behind [`NodeStats`], and the event stream.
//!
//! It also keeps the node-wide budgets of [`NetLimits`](super::NetLimits):
//! the pending-handshake slots (in total and per address, with the slots
//! reserved for addresses members authenticated from) and the bytes
//! buffered for incomplete frames across all connections.
//!
//! This module depends on nothing else of `net` but the configuration and
//! TLS, so the dependencies of the transport run one way: `config` ←
//! `tls` ← `shared` ← `channel` ← `conn` ← `node`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, watch};

use super::config::NodeConfig;
use super::error::NetError;
use super::lag::LagTracker;
use super::metrics::{NodeMetrics, PeerMetrics};
use super::tls::TlsContext;
use crate::host::Outcome;
use crate::peer::PeerId;
use crate::session::SessionStats;
use crate::snapshot::SnapshotInfo;

/// Locks a mutex, ignoring poisoning: every critical section here leaves
/// its data consistent at each step (a store only ever joins).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A monotonic counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    fn max(&self, n: u64) {
        self.0.fetch_max(n, Ordering::Relaxed);
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The live counters behind [`NodeStats`].
        #[derive(Debug, Default)]
        pub(crate) struct Counters { $(pub(crate) $name: Counter,)* }

        /// What a node has done so far. Bytes are counted on the wire
        /// (frames with their headers), in both directions, on every
        /// connection.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[non_exhaustive]
        pub struct NodeStats { $($(#[$doc])* pub $name: u64,)* }

        impl Counters {
            pub(crate) fn snapshot(&self) -> NodeStats {
                NodeStats { $($name: self.$name.get(),)* }
            }
        }
    };
}

counters! {
    /// Bytes written to peers.
    bytes_sent,
    /// Bytes read from peers.
    bytes_received,
    /// Local writes through [`Channel::update`](super::Channel::update).
    local_writes,
    /// Delta frames written to peers.
    deltas_sent,
    /// Bytes of those delta frames.
    delta_bytes_sent,
    /// Delta frames dropped because a peer's queue was full.
    deltas_dropped,
    /// Delta frames received.
    deltas_received,
    /// Of those, frames skipped because the connection had just resumed
    /// from quiet: sent before the link went quiet, and carried by the
    /// session that follows (see
    /// [`NodeConfig::quiet_linger`](super::NodeConfig::quiet_linger)).
    deltas_skipped,
    /// Token pulls from peers left unanswered: over the member's pull rate
    /// ([`NetLimits::pulls_per_second`](super::NetLimits::pulls_per_second)).
    pulls_limited,
    /// Session frames sent, bytes.
    session_bytes_sent,
    /// Session frames received, bytes.
    session_bytes_received,
    /// Sessions this node initiated.
    sessions_initiated,
    /// Sessions this node answered.
    sessions_responded,
    /// Sessions (either side) that ended with verified equal roots.
    sessions_completed,
    /// Sessions that ended because the roots kept moving (writes during the
    /// session): what they exchanged stays; the next session goes on.
    sessions_interrupted,
    /// Sessions that failed (a protocol error, an abort from the peer).
    sessions_failed,
    /// Sessions abandoned after [`NodeConfig::session_timeout`].
    sessions_timed_out,
    /// Messages from peers refused as malformed or invalid (a session
    /// failing through the peer's fault, a delta that did not validate):
    /// nothing of them was applied.
    peer_faults,
    /// Round trips of the sessions this node initiated that ended
    /// (completed or interrupted).
    round_trips,
    /// Connections established (handshake done).
    connections,
    /// Connections that ended, or went quiet past the idle timeout.
    disconnects,
    /// Connections that went quiet past the idle timeout and then heard
    /// from the peer again: resumed without a new handshake (see
    /// [`NodeConfig::quiet_linger`](super::NodeConfig::quiet_linger)).
    resumed,
    /// Connection attempts that failed before the handshake completed.
    connect_failures,
    /// Snapshots written.
    snapshots,
    /// Values from peers refused by admission (a claim of this node's own
    /// writes that it never made, a number above the ceiling): the whole
    /// message was dropped and the connection closed.
    refusals,
    /// Connections refused before they were established: TLS failed (no
    /// certificate, another CA, not a member, plaintext), or the identity
    /// did not match (another node than dialed, a handshake frame naming
    /// another node than the certificate).
    auth_failures,
    /// Accepted connections closed at once because a limit was reached
    /// (pending handshakes in total or per address, connections).
    limit_refusals,
    /// Connections closed because a frame was too slow or the frame buffer
    /// budget was spent.
    frame_limit_closes,
    /// Gauge: connections now between accept and the end of the handshake.
    pending_handshakes,
    /// Gauge: connections now quiet past the idle timeout, kept open in
    /// case the peer speaks again (at most one per peer besides the live
    /// one, each for at most
    /// [`NodeConfig::quiet_linger`](super::NodeConfig::quiet_linger)).
    quiet_connections,
    /// Gauge: bytes now buffered for incomplete frames, all connections.
    frame_buffer_bytes,
    /// The largest `frame_buffer_bytes` seen.
    frame_buffer_peak,
}

/// Something that happened on a node, for logs, monitors and demos.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A connection's handshake completed.
    Connected {
        /// The peer.
        peer: PeerId,
        /// The peer's name.
        name: String,
        /// Whether this node dialed.
        dialed: bool,
        /// Whether this is a connection that had gone quiet (reported
        /// [`Disconnected`](NodeEvent::Disconnected)) and heard from the
        /// peer again: no new handshake was needed.
        resumed: bool,
    },
    /// A connection ended, or went quiet past the idle timeout.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// The peer's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A dial attempt failed; the next is in `retry_in`.
    ConnectFailed {
        /// Where.
        addr: String,
        /// Why.
        error: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// An anti-entropy session verified equal roots.
    SessionCompleted {
        /// The peer.
        peer: PeerId,
        /// The channel.
        channel: String,
        /// Whether this node initiated it.
        initiator: bool,
        /// Its traffic.
        stats: SessionStats,
        /// Its duration.
        elapsed: Duration,
    },
    /// An anti-entropy session ended without verifying (what it exchanged
    /// stays applied).
    SessionEnded {
        /// The peer.
        peer: PeerId,
        /// The channel.
        channel: String,
        /// Whether this node initiated it.
        initiator: bool,
        /// How it ended.
        outcome: Outcome,
        /// Its traffic.
        stats: SessionStats,
        /// Its duration.
        elapsed: Duration,
    },
    /// A snapshot was written.
    Snapshot(SnapshotInfo),
    /// A connection or a peer's data was refused (authentication, limits,
    /// admission).
    Refused {
        /// The remote address, when known.
        addr: Option<String>,
        /// The peer, once authenticated.
        peer: Option<PeerId>,
        /// Why.
        reason: String,
    },
}

/// One connected peer, as the channels see it.
pub(crate) struct PeerSlot {
    pub(crate) conn: u64,
    pub(crate) name: String,
    pub(crate) deltas: mpsc::Sender<Arc<[u8]>>,
    pub(crate) ae_soon: Arc<AtomicBool>,
    pub(crate) kill: watch::Sender<bool>,
    /// What the node counts about this peer.
    pub(crate) metrics: Arc<PeerMetrics>,
    /// This connection's replication lag.
    pub(crate) lag: Arc<Mutex<LagTracker>>,
}

/// Node-wide state shared by channels and connections.
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    pub(crate) peers: Mutex<BTreeMap<PeerId, PeerSlot>>,
    pub(crate) counters: Counters,
    /// Per-peer traffic, sessions, divergence; latencies; refusals.
    pub(crate) metrics: NodeMetrics,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) next_conn: AtomicU64,
    /// The TLS configurations (`None` in insecure plaintext); replaced by
    /// a reload, read by every new connection.
    pub(crate) tls: RwLock<Option<Arc<TlsContext>>>,
    pending: Mutex<Pending>,
}

/// Pending handshakes, per address, and the addresses members
/// authenticated from.
#[derive(Default)]
struct Pending {
    total: usize,
    reserved_used: usize,
    per_ip: HashMap<IpAddr, usize>,
    member_ips: BTreeSet<IpAddr>,
}

/// Addresses remembered as members' (bounded).
const MAX_MEMBER_IPS: usize = 1024;

impl Shared {
    pub(crate) fn new(config: NodeConfig, tls: Option<Arc<TlsContext>>) -> Self {
        Shared {
            config,
            peers: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
            metrics: NodeMetrics::default(),
            events: broadcast::channel(4096).0,
            next_conn: AtomicU64::new(1),
            tls: RwLock::new(tls),
            pending: Mutex::new(Pending::default()),
        }
    }

    pub(crate) fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }

    /// The TLS configurations new connections use.
    pub(crate) fn tls(&self) -> Option<Arc<TlsContext>> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes a pending-handshake slot for a connection from `ip` (`None`:
    /// a stream with no address), or says which limit refused it.
    pub(crate) fn try_pending(
        self: &Arc<Self>,
        ip: Option<IpAddr>,
    ) -> Result<PendingSlot, &'static str> {
        let limits = &self.config.limits;
        let mut p = lock(&self.pending);
        let from_ip = ip.map_or(0, |ip| p.per_ip.get(&ip).copied().unwrap_or(0));
        if from_ip >= limits.max_pending_per_ip {
            return Err("too many pending handshakes from this address");
        }
        let general = p.total - p.reserved_used;
        let reserved = if general < limits.max_pending_handshakes {
            false
        } else if ip.is_some_and(|ip| p.member_ips.contains(&ip))
            && p.reserved_used < limits.reserved_member_handshakes
        {
            true
        } else {
            return Err("too many pending handshakes");
        };
        p.total += 1;
        if reserved {
            p.reserved_used += 1;
        }
        if let Some(ip) = ip {
            *p.per_ip.entry(ip).or_default() += 1;
        }
        self.counters.pending_handshakes.add(1);
        Ok(PendingSlot {
            shared: Arc::clone(self),
            ip,
            reserved,
        })
    }

    /// Remembers `ip` as an address a member authenticated from.
    pub(crate) fn member_seen(&self, ip: IpAddr) {
        let mut p = lock(&self.pending);
        if p.member_ips.len() < MAX_MEMBER_IPS {
            p.member_ips.insert(ip);
        }
    }
}

/// A pending-handshake slot, released when dropped (the handshake ended,
/// either way).
pub(crate) struct PendingSlot {
    shared: Arc<Shared>,
    ip: Option<IpAddr>,
    reserved: bool,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut p = lock(&self.shared.pending);
        p.total -= 1;
        if self.reserved {
            p.reserved_used -= 1;
        }
        if let Some(ip) = self.ip {
            if let Some(n) = p.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    p.per_ip.remove(&ip);
                }
            }
        }
        self.shared.counters.pending_handshakes.sub(1);
    }
}

/// One connection's share of the node-wide frame buffer budget: what its
/// frame reader holds, charged to
/// [`NodeStats::frame_buffer_bytes`]; released when dropped.
pub(crate) struct BufferCharge {
    shared: Arc<Shared>,
    charged: u64,
}

impl BufferCharge {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        BufferCharge {
            shared: Arc::clone(shared),
            charged: 0,
        }
    }

    /// Sets this connection's charge to `buffered` bytes; an error when
    /// that would take the node over its budget (nothing is charged then:
    /// the connection closes).
    pub(crate) fn set(&mut self, buffered: usize) -> Result<(), NetError> {
        let buffered = buffered as u64;
        let c = &self.shared.counters;
        if buffered <= self.charged {
            c.frame_buffer_bytes.sub(self.charged - buffered);
            self.charged = buffered;
            return Ok(());
        }
        let more = buffered - self.charged;
        let budget = self.shared.config.limits.frame_buffer_budget as u64;
        let total = c.frame_buffer_bytes.0.fetch_add(more, Ordering::Relaxed) + more;
        if total > budget {
            c.frame_buffer_bytes.sub(more);
            return Err(NetError::Limit("the node's frame buffer budget is spent"));
        }
        c.frame_buffer_peak.max(total);
        self.charged = buffered;
        Ok(())
    }
}

impl Drop for BufferCharge {
    fn drop(&mut self) {
        self.shared.counters.frame_buffer_bytes.sub(self.charged);
    }
}

impl PeerSlot {
    /// Delta frames queued for this peer and not yet written.
    pub(crate) fn queue_depth(&self) -> u64 {
        (self.deltas.max_capacity() - self.deltas.capacity()) as u64
    }

    /// Offers a delta frame to this peer's queue; drops and counts it when
    /// the queue is full, and asks the connection for anti-entropy soon.
    pub(crate) fn offer(&self, counters: &Counters, frame: Arc<[u8]>) -> bool {
        // The lag's lock is held across the send, so the peer's
        // acknowledgement of this delta cannot be counted before it is.
        let mut lag = lock(&self.lag);
        match self.deltas.try_send(frame) {
            Ok(()) => {
                lag.queued(std::time::Instant::now());
                true
            }
            Err(TrySendError::Full(_)) => {
                counters.deltas_dropped.add(1);
                self.metrics.deltas_dropped.add(1);
                self.ae_soon.store(true, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}
