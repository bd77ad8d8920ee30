//! Node-wide state that channels and connections share: the connected
//! peers, the counters behind [`NodeStats`], and the event stream.
//!
//! This module depends on nothing else of `net` but the configuration, so
//! the dependencies of the transport run one way: `config` ← `shared` ←
//! `channel` ← `conn` ← `node`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, watch};

use super::config::NodeConfig;
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
    /// Connections that ended.
    disconnects,
    /// Connection attempts that failed before the handshake completed.
    connect_failures,
    /// Snapshots written.
    snapshots,
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
    },
    /// A connection ended.
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
}

/// One connected peer, as the channels see it.
pub(crate) struct PeerSlot {
    pub(crate) conn: u64,
    pub(crate) name: String,
    pub(crate) deltas: mpsc::Sender<Arc<[u8]>>,
    pub(crate) ae_soon: Arc<AtomicBool>,
    pub(crate) kill: watch::Sender<bool>,
}

/// Node-wide state shared by channels and connections.
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    pub(crate) peers: Mutex<BTreeMap<PeerId, PeerSlot>>,
    pub(crate) counters: Counters,
    pub(crate) events: broadcast::Sender<NodeEvent>,
    pub(crate) next_conn: AtomicU64,
}

impl Shared {
    pub(crate) fn emit(&self, e: NodeEvent) {
        let _ = self.events.send(e);
    }
}

impl PeerSlot {
    /// Offers a delta frame to this peer's queue; drops and counts it when
    /// the queue is full, and asks the connection for anti-entropy soon.
    pub(crate) fn offer(&self, counters: &Counters, frame: Arc<[u8]>) -> bool {
        match self.deltas.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                counters.deltas_dropped.add(1);
                self.ae_soon.store(true, Ordering::Relaxed);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}
