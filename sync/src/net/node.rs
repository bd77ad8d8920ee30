//! The node: stores, listeners, dialers with backoff, statistics, events,
//! snapshots and shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use crate::error::SyncError;
use crate::session::{SessionConfig, SessionStats};
use crate::snapshot::{Snapshot, SnapshotError, SnapshotInfo, SnapshotLimits, SnapshotWriter};
use crate::store::{Store, StoreKey, StoreValue};

use super::channel::{lock, Channel, ChannelShared, ChannelState, ErasedChannel};
use super::conn;
use super::replicate::{DeltaReplicator, NaivePush, PeerId};

/// How a node behaves on the network. The defaults suit regions a few
/// hundred milliseconds apart; every field has a `with_` setter.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// This node's id: unique among the nodes that talk to each other.
    pub id: u64,
    /// A name for logs and events.
    pub name: String,
    /// Anti-entropy with each connected peer at least this often (jittered
    /// ±20%), on top of one at every (re)connect.
    pub ae_interval: Duration,
    /// After a delta to a peer was dropped (queue full), anti-entropy with
    /// that peer starts within this delay.
    pub ae_soon: Duration,
    /// A keepalive is sent this often.
    pub ping_interval: Duration,
    /// A connection that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// The peer's handshake must arrive within this delay.
    pub handshake_timeout: Duration,
    /// A connection attempt (TCP connect) must succeed within this delay.
    pub connect_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_timeout: Duration,
    /// A session that receives nothing for this long is aborted.
    pub session_timeout: Duration,
    /// First delay before reconnecting; doubles per failure.
    pub backoff_initial: Duration,
    /// Largest delay between reconnection attempts.
    pub backoff_max: Duration,
    /// Delta frames queued per peer before new ones are dropped.
    pub delta_queue: usize,
    /// Session and control frames queued per connection.
    pub ctrl_queue: usize,
    /// Timer resolution of connections, and the replicators' tick.
    pub tick: Duration,
    /// The anti-entropy sessions' configuration (and the frame size limit:
    /// its `limits.max_message_bytes`).
    pub session: SessionConfig,
    /// Seed of the jitter (backoff and anti-entropy timers).
    pub seed: u64,
    /// Where [`Node::shutdown`] and the periodic snapshot write.
    pub snapshot_path: Option<PathBuf>,
    /// Snapshot this often (needs `snapshot_path`).
    pub snapshot_interval: Option<Duration>,
}

impl NodeConfig {
    /// Defaults for node `id`.
    pub fn new(id: u64, name: impl Into<String>) -> Self {
        NodeConfig {
            id,
            name: name.into(),
            ae_interval: Duration::from_secs(5),
            ae_soon: Duration::from_millis(250),
            ping_interval: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            delta_queue: 1024,
            ctrl_queue: 256,
            tick: Duration::from_millis(25),
            session: SessionConfig::default(),
            seed: id,
            snapshot_path: None,
            snapshot_interval: None,
        }
    }

    /// Sets [`ae_interval`](Self::ae_interval).
    pub fn with_ae_interval(mut self, d: Duration) -> Self {
        self.ae_interval = d;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval) and
    /// [`idle_timeout`](Self::idle_timeout).
    pub fn with_keepalive(mut self, ping: Duration, idle_timeout: Duration) -> Self {
        self.ping_interval = ping;
        self.idle_timeout = idle_timeout;
        self
    }

    /// Sets the handshake, connect, write and session timeouts.
    pub fn with_timeouts(
        mut self,
        handshake: Duration,
        connect: Duration,
        write: Duration,
        session: Duration,
    ) -> Self {
        self.handshake_timeout = handshake;
        self.connect_timeout = connect;
        self.write_timeout = write;
        self.session_timeout = session;
        self
    }

    /// Sets the reconnection backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max;
        self
    }

    /// Sets [`delta_queue`](Self::delta_queue).
    pub fn with_delta_queue(mut self, frames: usize) -> Self {
        self.delta_queue = frames.max(1);
        self
    }

    /// Sets the session configuration.
    pub fn with_session(mut self, session: SessionConfig) -> Self {
        self.session = session;
        self
    }

    /// Sets the jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Snapshots to `path` on shutdown and, with `every`, periodically.
    pub fn with_snapshot(mut self, path: impl Into<PathBuf>, every: Option<Duration>) -> Self {
        self.snapshot_path = Some(path.into());
        self.snapshot_interval = every;
        self
    }
}

/// A monotonic counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
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
            fn snapshot(&self) -> NodeStats {
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
    /// Local writes through [`Channel::update`].
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
    /// Sessions (and new passes of finished sessions) this node answered.
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
        /// Why.
        error: SyncError,
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

/// Everything a running node's tasks share.
pub(crate) struct NodeInner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) channels: Vec<Arc<dyn ErasedChannel>>,
    pub(crate) stop: watch::Receiver<bool>,
    tasks: Mutex<JoinSet<()>>,
}

impl NodeInner {
    pub(crate) fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        while tasks.try_join_next().is_some() {}
        tasks.spawn(f);
    }
}

/// Builds a [`Node`]: its channels first, then [`NodeBuilder::start`].
pub struct NodeBuilder {
    shared: Arc<Shared>,
    channels: Vec<Arc<dyn ErasedChannel>>,
    restored: Option<Snapshot>,
}

impl NodeBuilder {
    /// A node with no channel yet.
    pub fn new(config: NodeConfig) -> Self {
        let (events, _) = broadcast::channel(4096);
        NodeBuilder {
            shared: Arc::new(Shared {
                config,
                peers: Mutex::new(BTreeMap::new()),
                counters: Counters::default(),
                events,
                next_conn: AtomicU64::new(1),
            }),
            channels: Vec::new(),
            restored: None,
        }
    }

    /// Restores the channels added next from the snapshot at `path`
    /// (verified whole first; see [`crate::snapshot`]). A channel with no
    /// section in the snapshot starts empty.
    pub fn restore(mut self, path: impl AsRef<Path>) -> Result<Self, SnapshotError> {
        self.restored = Some(Snapshot::read(path, &SnapshotLimits::default())?);
        Ok(self)
    }

    /// Adds a channel with the default delta path ([`NaivePush`]): empty,
    /// or from the restored snapshot's section `name`.
    ///
    /// # Panics
    ///
    /// If a channel of that name exists, or there are 65,536 channels.
    pub fn channel<K, V>(&mut self, name: &str) -> Result<Channel<K, V>, SnapshotError>
    where
        K: StoreKey + Send + 'static,
        V: StoreValue + Send + 'static,
    {
        let store = match &self.restored {
            Some(s) if s.section(name).is_some() => s.store(name)?,
            _ => Store::new(),
        };
        let push = NaivePush {
            limits: self.shared.config.session.limits.value,
        };
        Ok(self.channel_with(name, store, Box::new(push)))
    }

    /// Adds a channel holding `store`, with the delta path `replicator`.
    ///
    /// # Panics
    ///
    /// If a channel of that name exists, or there are 65,536 channels.
    pub fn channel_with<K, V>(
        &mut self,
        name: &str,
        store: Store<K, V>,
        replicator: Box<dyn DeltaReplicator<K, V>>,
    ) -> Channel<K, V>
    where
        K: StoreKey + Send + 'static,
        V: StoreValue + Send + 'static,
    {
        assert!(
            self.channels.iter().all(|c| c.name() != name),
            "channel {name:?} added twice"
        );
        let index = u16::try_from(self.channels.len()).expect("at most 65,536 channels");
        let inner = Arc::new(ChannelShared {
            name: name.to_string(),
            index,
            node: Arc::clone(&self.shared),
            state: Mutex::new(ChannelState { store, replicator }),
            session: self.shared.config.session,
        });
        self.channels.push(inner.clone());
        Channel { inner }
    }

    /// Starts the node's timers (the replicators' tick, periodic snapshots).
    /// Must be called inside a tokio runtime. The node then accepts
    /// connections through [`Node::listen`] or [`Node::accept_stream`] and
    /// makes them through [`Node::dial`] or [`Node::dial_with`].
    pub fn start(self) -> Node {
        let (stop_tx, stop) = watch::channel(false);
        let inner = Arc::new(NodeInner {
            shared: self.shared,
            channels: self.channels,
            stop,
            tasks: Mutex::new(JoinSet::new()),
        });
        let node = Node { inner, stop_tx };
        node.inner.spawn(tick_loop(Arc::clone(&node.inner)));
        if let (Some(_), Some(every)) = (
            &node.inner.shared.config.snapshot_path,
            node.inner.shared.config.snapshot_interval,
        ) {
            node.inner
                .spawn(snapshot_loop(Arc::clone(&node.inner), every));
        }
        node
    }
}

/// A running node: one or more [`Channel`]s (stores), kept in sync with
/// every connected peer. See the [module docs](super).
pub struct Node {
    inner: Arc<NodeInner>,
    stop_tx: watch::Sender<bool>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.inner.shared.config.id)
            .field("name", &self.inner.shared.config.name)
            .finish()
    }
}

impl Node {
    /// This node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.shared.config
    }

    /// Listens for peers on `addr` (port 0 picks one); returns the bound
    /// address. Each accepted stream runs as a connection.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let inner = Arc::clone(&self.inner);
        self.inner.spawn(async move {
            let mut stop = inner.stop.clone();
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let i = Arc::clone(&inner);
                            inner.spawn(async move {
                                let _ = conn::run(i, stream, false).await;
                            });
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    },
                    _ = stop.changed() => return,
                }
            }
        });
        Ok(local)
    }

    /// Keeps a connection to the peer at `addr`: connects, and reconnects
    /// with exponential backoff (capped, jittered) whenever it fails or
    /// ends, until shutdown. Dial each pair of nodes from one side only.
    pub fn dial(&self, addr: SocketAddr) {
        self.dial_with(addr.to_string(), move || async move {
            let s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Ok(s)
        });
    }

    /// Like [`Node::dial`] over any stream: `connect` is called for every
    /// attempt.
    pub fn dial_with<F, Fut, S>(&self, label: String, connect: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<S>> + Send + 'static,
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        self.inner.spawn(dial_loop(inner, label, connect));
    }

    /// Runs one connection over an already accepted stream (this node is
    /// the acceptor). Returns when the connection ends.
    pub async fn accept_stream<S>(&self, io: S) -> Result<(), super::NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        conn::run(Arc::clone(&self.inner), io, false).await.result
    }

    /// Runs one connection over an already connected stream (this node is
    /// the dialer), without reconnecting. Returns when it ends.
    pub async fn connect_stream<S>(&self, io: S) -> Result<(), super::NetError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        conn::run(Arc::clone(&self.inner), io, true).await.result
    }

    /// The peers connected now, with their names.
    pub fn peers(&self) -> Vec<(PeerId, String)> {
        lock(&self.inner.shared.peers)
            .iter()
            .map(|(p, s)| (*p, s.name.clone()))
            .collect()
    }

    /// Asks every connection for an anti-entropy session now.
    pub fn sync_now(&self) {
        for slot in lock(&self.inner.shared.peers).values() {
            slot.ae_soon.store(true, Ordering::Relaxed);
        }
    }

    /// Statistics so far.
    pub fn stats(&self) -> NodeStats {
        self.inner.shared.counters.snapshot()
    }

    /// Subscribes to the node's events (a bounded buffer: a subscriber
    /// that falls behind loses the oldest).
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.shared.events.subscribe()
    }

    /// The root digest of every channel, in channel order.
    pub fn roots(&self) -> Vec<crate::digest::Digest> {
        self.inner
            .channels
            .iter()
            .map(|c| c.root_digest())
            .collect()
    }

    /// Writes every channel to a snapshot file at `path`, atomically (see
    /// [`crate::snapshot`]). Every write acknowledged before this call is
    /// in the file once it returns `Ok`.
    pub async fn snapshot(&self, path: impl AsRef<Path>) -> Result<SnapshotInfo, SnapshotError> {
        snapshot_to(&self.inner, path.as_ref().to_path_buf()).await
    }

    /// Graceful shutdown: stops accepting and dialing, says `Bye` on every
    /// connection and flushes it, writes the final snapshot when
    /// [`NodeConfig::snapshot_path`] is set, and waits for every task.
    pub async fn shutdown(self) -> Result<NodeStats, SnapshotError> {
        let _ = self.stop_tx.send(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        let grace = self.inner.shared.config.write_timeout + Duration::from_secs(1);
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        if let Some(path) = self.inner.shared.config.snapshot_path.clone() {
            snapshot_to(&self.inner, path).await?;
        }
        Ok(self.stats())
    }

    /// Stops everything at once, as a crash would: no `Bye`, no flush, no
    /// snapshot. For tests and demos of recovery.
    pub async fn kill(self) -> NodeStats {
        let _ = self.stop_tx.send(true);
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        lock(&self.inner.shared.peers).clear();
        self.stats()
    }
}

async fn snapshot_to(inner: &NodeInner, path: PathBuf) -> Result<SnapshotInfo, SnapshotError> {
    let mut w = SnapshotWriter::new();
    let mut keys = 0;
    for c in &inner.channels {
        let (section, n) = c.encode_section();
        keys += n;
        w.raw(c.name(), section);
    }
    let info = tokio::task::spawn_blocking(move || w.write(path))
        .await
        .map_err(|e| SnapshotError::Io(io::Error::other(e)))??;
    let mut info = info;
    info.keys = keys;
    inner.shared.counters.snapshots.add(1);
    inner.shared.emit(NodeEvent::Snapshot(info));
    Ok(info)
}

async fn tick_loop(inner: Arc<NodeInner>) {
    let mut stop = inner.stop.clone();
    let mut t = tokio::time::interval(inner.shared.config.tick);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = t.tick() => {
                for c in &inner.channels {
                    c.tick();
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn snapshot_loop(inner: Arc<NodeInner>, every: Duration) {
    let mut stop = inner.stop.clone();
    let Some(path) = inner.shared.config.snapshot_path.clone() else {
        return;
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {
                let _ = snapshot_to(&inner, path.clone()).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// Exponential backoff with full jitter from a seeded generator: the n-th
/// delay is uniform in `[d/2, d]` with `d = min(initial * 2^n, max)`.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: ChaCha8Rng,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let d = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        d.mul_f64(self.rng.random_range(0.5..=1.0))
    }
}

async fn dial_loop<F, Fut, S>(inner: Arc<NodeInner>, label: String, mut connect: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let cfg = &inner.shared.config;
    let seed = cfg.seed ^ blake3::hash(label.as_bytes()).as_bytes()[0] as u64;
    let mut backoff = Backoff::new(cfg.backoff_initial, cfg.backoff_max, seed);
    let mut stop = inner.stop.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        let attempt = tokio::select! {
            r = tokio::time::timeout(cfg.connect_timeout, connect()) => r,
            _ = stop.changed() => return,
        };
        let error = match attempt {
            Ok(Ok(io)) => {
                let end = conn::run(Arc::clone(&inner), io, true).await;
                if end.established {
                    backoff.reset();
                }
                if *stop.borrow() {
                    return;
                }
                match end.result {
                    Ok(()) => None,
                    Err(e) if !end.established => Some(e.to_string()),
                    Err(_) => None,
                }
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("connect timed out".to_string()),
        };
        let delay = backoff.next_delay();
        if let Some(error) = error {
            inner.shared.counters.connect_failures.add(1);
            inner.shared.emit(NodeEvent::ConnectFailed {
                addr: label.clone(),
                error,
                retry_in: delay,
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        let ds: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        for (i, d) in ds.iter().enumerate() {
            let full = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(2));
            assert!(*d >= full / 2 && *d <= full, "{i}: {d:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
        // Seeded: the same seed gives the same delays.
        let mut c = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 7);
        assert_eq!((0..8).map(|_| c.next_delay()).collect::<Vec<_>>(), ds);
    }
}
